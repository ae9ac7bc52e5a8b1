//! `sigma-server`'s wiring: the RTMP listener feeds the [`Registry`], whose streams the LL-HLS
//! origins serve over one HTTP listener, next to `/healthz` and the player page.
//!
//! Routes of the HTTP listener (the viewers'), by first path segment:
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | `{"status":"ok","streams":N,"publishing":M}` |
//! | `/assets/hls.min.js` | the bundled hls.js |
//! | `/{app}/{stream}/player` | the player page for that stream |
//! | `/{app}/…` | the application's LL-HLS origin ([`sigma_llhls::HttpService`]) |
//!
//! The first segments in [`RESERVED_SEGMENTS`] belong to the server (some for routes to come),
//! so configuration validation refuses an application with one of those names.
//!
//! Everything here is glue; protocol and packaging logic lives in `sigma-rtmp` and
//! `sigma-llhls`.

use crate::config::Config;
use crate::registry::Registry;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sigma_core::StreamKey;
use sigma_core::bus::Producer;
use sigma_llhls::HttpService;
use sigma_llhls::http::Body;
use sigma_rtmp::server::{Application, Notice, Server as RtmpServer, ServerConfig};
use sigma_rtmp::session::{PublishRequest, Rejection};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const PLAYER_HTML: &str = include_str!("../assets/player.html");
const HLS_JS: &[u8] = include_bytes!("../assets/hls.min.js");

/// First path segments the HTTP listener keeps for itself: `assets` (the player's scripts),
/// `v` (playback by id), `healthz`, `livez`, `readyz` and `metrics`. No application may take
/// one of these names ([`Config::validate`] refuses it).
pub const RESERVED_SEGMENTS: &[&str] = &["assets", "v", "healthz", "livez", "readyz", "metrics"];

/// The last path segment of a stream's player page: `/{app}/{stream}/player`. The LL-HLS
/// origin's routes never end in a bare `player` (its files end in `.m3u8`, `.mp4` or `.m4s`).
pub const PLAYER_SEGMENT: &str = "player";

/// Bridges RTMP admission to the registry.
struct Ingest {
    registry: Registry,
}

impl Application for Ingest {
    fn admit(
        &self,
        stream: StreamKey,
        request: PublishRequest,
        remote: SocketAddr,
    ) -> impl Future<Output = Result<Producer, Rejection>> + Send {
        let query = request.query.unwrap_or_default();
        let r = match self.registry.admit(&stream.app, &stream.name, &query) {
            Ok(a) => {
                tracing::info!(stream = %a.key, %remote, mode = a.mode.name(), resumed = a.resumed, "publish accepted");
                Ok(a.producer)
            }
            Err(e) => {
                tracing::warn!(stream = %stream, %remote, reason = %e, code = e.code(), "publish refused");
                Err(e)
            }
        };
        std::future::ready(r)
    }

    fn notice(&self, notice: Notice) {
        match notice {
            Notice::ConnectionClosed {
                remote,
                error: Some(error),
            } => tracing::info!(%remote, %error, "RTMP connection closed"),
            Notice::Stream(ev) => tracing::debug!(?ev, "stream event"),
            Notice::ConnectionClosed { .. } => {}
        }
    }
}

/// The HTTP front: the routes in the module docs.
#[derive(Clone)]
struct Front {
    registry: Registry,
    services: Arc<HashMap<String, HttpService>>,
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Body::from_chunks([body.into()]));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

impl Front {
    /// A front for `registry`'s applications, each origin under `/{app}`.
    fn new(registry: Registry) -> Front {
        let services = registry
            .config()
            .apps
            .iter()
            .filter_map(|a| {
                let origin = registry.origin(&a.name)?.clone();
                Some((
                    a.name.clone(),
                    HttpService::with_prefix(origin, &format!("/{}", a.name)),
                ))
            })
            .collect();
        Front {
            registry,
            services: Arc::new(services),
        }
    }
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "text/plain", "not found\n")
}

impl Front {
    async fn handle<B: Send + 'static>(&self, req: Request<B>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["healthz"] => {
                let streams = self.registry.streams_now();
                let live = streams.iter().filter(|s| s.2).count();
                let body = serde_json::json!({ "status": "ok", "streams": streams.len(), "publishing": live });
                let mut r = text(StatusCode::OK, "application/json", body.to_string());
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            ["assets", "hls.min.js"] => {
                let mut r = text(
                    StatusCode::OK,
                    "text/javascript; charset=utf-8",
                    bytes::Bytes::from_static(HLS_JS),
                );
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                );
                r
            }
            [first, ..] if RESERVED_SEGMENTS.contains(first) => not_found(),
            [app, name, last] if *last == PLAYER_SEGMENT => self.player(app, name),
            [app, ..] => match self.services.get(*app) {
                Some(service) => service.handle(req).await,
                None => not_found(),
            },
            [] => not_found(),
        }
    }

    fn player(&self, app: &str, name: &str) -> Response<Body> {
        // Valid names are A-Z a-z 0-9 _ - only, so they are safe to put in the page.
        if self.services.get(app).is_none() || !StreamKey::valid_name(name) {
            return not_found();
        }
        let mode = self.registry.mode_of(app, name);
        let page = PLAYER_HTML
            .replace("{{SRC}}", &format!("/{app}/{name}/index.m3u8"))
            .replace("{{STREAM}}", name)
            .replace("{{MODE}}", mode.name());
        let mut r = text(StatusCode::OK, "text/html; charset=utf-8", page);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    }
}

/// A running server.
pub struct Running {
    /// Where RTMP listens.
    pub rtmp_addr: SocketAddr,
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// The stream registry.
    pub registry: Registry,
    stop: watch::Sender<bool>,
    rtmp_task: JoinHandle<std::io::Result<()>>,
    http_task: JoinHandle<()>,
}

/// Binds both listeners and starts serving.
pub async fn start(config: Config) -> std::io::Result<Running> {
    let rtmp_listener = TcpListener::bind(config.server.rtmp_listen).await?;
    let http_listener = TcpListener::bind(config.server.http_listen).await?;
    let rtmp_addr = rtmp_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let registry = Registry::new(config);
    let (stop, stop_rx) = watch::channel(false);

    let ingest = Arc::new(Ingest {
        registry: registry.clone(),
    });
    let rtmp = RtmpServer::new(ingest, ServerConfig::default());
    let mut rtmp_stop = stop_rx.clone();
    let rtmp_task = tokio::spawn(async move {
        rtmp.serve(rtmp_listener, async move {
            let _ = rtmp_stop.wait_for(|s| *s).await;
        })
        .await
    });

    let front = Front::new(registry.clone());
    let http_task = tokio::spawn(serve_http(http_listener, front, stop_rx));

    Ok(Running {
        rtmp_addr,
        http_addr,
        registry,
        stop,
        rtmp_task,
        http_task,
    })
}

async fn serve_http(listener: TcpListener, front: Front, mut stop: watch::Receiver<bool>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, _remote) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let front = front.clone();
                let service = hyper::service::service_fn(move |req| {
                    let front = front.clone();
                    async move { Ok::<_, Infallible>(front.handle(req).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    // Let in-flight responses finish, but not forever (blocking playlist requests can wait
    // several target durations).
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

impl Running {
    /// Stops accepting, closes publishers (their playlists end), and waits for both listeners.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.registry.shutdown();
        if let Ok(Err(e)) = self.rtmp_task.await {
            tracing::warn!(error = %e, "RTMP listener ended with an error");
        }
        let _ = self.http_task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EMBEDDED_DEFAULT;
    use http_body_util::BodyExt;

    fn front(apps: &[&str]) -> Front {
        let mut text = EMBEDDED_DEFAULT.to_string();
        for app in apps.iter().skip(1) {
            text.push_str(&format!("\n[[app]]\nname = \"{app}\"\n"));
        }
        let text = text.replacen("name = \"live\"", &format!("name = \"{}\"", apps[0]), 1);
        Front::new(Registry::new(Config::parse(&text, "test").unwrap()))
    }

    async fn get(front: &Front, path: &str) -> (StatusCode, String) {
        let r = front.handle(Request::get(path).body(()).unwrap()).await;
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn routes() {
        let f = front(&["live", "player"]);
        let (status, page) = get(&f, "/live/cam/player").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("\"/live/cam/index.m3u8\""), "{page}");
        assert!(page.contains("src=\"/assets/hls.min.js\""), "{page}");
        // An application named `player` is not shadowed by the player page.
        let (status, page) = get(&f, "/player/cam/player").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("\"/player/cam/index.m3u8\""), "{page}");
        let (status, js) = get(&f, "/assets/hls.min.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(js.len(), HLS_JS.len());
        let (status, health) = get(&f, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert!(health.contains("\"streams\":0"), "{health}");
        for missing in [
            "/",
            "/player/cam",
            "/player/hls.min.js",
            "/assets/other.js",
            "/v/abc/index.m3u8",
            "/metrics",
            "/live/bad%20name/player",
            "/other/cam/player",
            "/live/cam/index.m3u8",
            "/player/cam/index.m3u8",
        ] {
            assert_eq!(get(&f, missing).await.0, StatusCode::NOT_FOUND, "{missing}");
        }
    }

    #[test]
    fn the_origin_never_serves_a_bare_player_file() {
        // The player route takes `/{app}/{stream}/player`; the origin's stream files end in
        // .m3u8, .mp4 or .m4s, so a stream named `player` still has its playlists.
        assert!(!RESERVED_SEGMENTS.contains(&PLAYER_SEGMENT));
        assert!(StreamKey::valid_name(PLAYER_SEGMENT));
    }
}
