//! `sigma-server`'s wiring: the RTMP listener feeds the [`Registry`] (through
//! [`crate::ingest`], which asks the control plane about API stream keys), whose streams the
//! LL-HLS origins serve over the viewers' HTTP listener, next to `/healthz` and the player
//! pages. The management API ([`sigma_control::Api`]) has a listener of its own
//! (`[control] api_listen`, loopback by default), so it is never on the viewers' port; the web
//! console ([`crate::console`]) is served there too, under `/console`.
//!
//! Routes of the HTTP listener (the viewers'), by first path segment:
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | `{"status":"ok","streams":N,"publishing":M}` |
//! | `/assets/hls.min.js` | the bundled hls.js |
//! | `/v/{playback_id}/…` | an API live stream, by playback id ([`crate::playback`]) |
//! | `/{app}/{stream}/player` | the player page for that stream |
//! | `/{app}/…` | the application's LL-HLS origin ([`sigma_llhls::HttpService`]) |
//!
//! The first segments in [`RESERVED_SEGMENTS`] belong to the server (some for routes to come),
//! so configuration validation refuses an application with one of those names.
//!
//! Everything here is glue; protocol and packaging logic lives in `sigma-rtmp` and
//! `sigma-llhls`.

use crate::config::Config;
use crate::ingest::{self, API_NAMESPACE, INGEST_APP, Ingest, api_mode};
use crate::playback::Playback;
use crate::registry::Registry;
use crate::simulcast::Simulcasts;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::SeedableRng;
use sigma_control::admission::Hooks;
use sigma_control::lifecycle::Input;
use sigma_control::store::StoreError;
use sigma_control::{Api, Control, ControlConfig, Store};
use sigma_core::StreamKey;
use sigma_llhls::HttpService;
use sigma_llhls::http::Body;
use sigma_rtmp::server::{Server as RtmpServer, ServerConfig};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The player page, for the applications' streams and for playback ids.
pub(crate) const PLAYER_HTML: &str = include_str!("../assets/player.html");
pub(crate) const HLS_JS: &[u8] = include_bytes!("../assets/hls.min.js");

/// First path segments the HTTP listener keeps for itself: `assets` (the player's scripts),
/// `v` (playback by id), `healthz`, `livez`, `readyz` and `metrics`. No application may take
/// one of these names ([`Config::validate`] refuses it).
pub const RESERVED_SEGMENTS: &[&str] = &["assets", "v", "healthz", "livez", "readyz", "metrics"];

/// The last path segment of a stream's player page: `/{app}/{stream}/player`. The LL-HLS
/// origin's routes never end in a bare `player` (its files end in `.m3u8`, `.mp4` or `.m4s`).
pub const PLAYER_SEGMENT: &str = "player";

/// The HTTP front: the routes in the module docs.
#[derive(Clone)]
struct Front {
    registry: Registry,
    services: Arc<HashMap<String, HttpService>>,
    playback: Playback,
}

/// A response of `status` with `body` as `content_type`.
pub(crate) fn text(
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
    /// A front for `registry`'s applications, each origin under `/{app}`, and `control`'s
    /// live streams under `/v`.
    fn new(registry: Registry, control: Control, hooks: Option<Arc<Hooks>>) -> Front {
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
            playback: Playback::new(control, registry.clone(), hooks),
            registry,
            services: Arc::new(services),
        }
    }
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "text/plain", "not found\n")
}

impl Front {
    async fn handle<B: Send + 'static>(
        &self,
        req: Request<B>,
        remote: SocketAddr,
    ) -> Response<Body> {
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
            ["v", pid, rest @ ..] if !rest.is_empty() => {
                self.playback.handle(req, pid, rest, remote).await
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
    /// Where the viewers' HTTP listens.
    pub http_addr: SocketAddr,
    /// Where the management API listens.
    pub api_addr: SocketAddr,
    /// The stream registry.
    pub registry: Registry,
    /// The control plane (live streams, tokens, playback ids).
    pub control: Control,
    /// The admin API token generated at this start, when the store had none and no
    /// `SIGMA_API_TOKEN` was given; also written to [`Running::api_token_file`].
    pub bootstrap_token: Option<String>,
    /// `DATA_DIR/api-token`, where a generated admin token is kept (mode 0600).
    pub api_token_file: PathBuf,
    stop: watch::Sender<bool>,
    rtmp_task: JoinHandle<std::io::Result<()>>,
    http_task: JoinHandle<()>,
    api_task: JoinHandle<()>,
    commands_task: JoinHandle<()>,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        /// Which listener: `rtmp`, `http` or `api`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened, migrated or read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The admission hooks' HTTP client could not be made.
    #[error("admission hooks: {0}")]
    Admission(String),
    /// The data directory or the token file could not be written.
    #[error("{path}: {source}")]
    File {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let err = |source| StartError::Listen { what, addr, source };
    let l = TcpListener::bind(addr).await.map_err(err)?;
    let local = l.local_addr().map_err(err)?;
    Ok((l, local))
}

/// `host:port` of a listen address as a client on this machine reaches it: an unspecified
/// address (`0.0.0.0`, `::`) becomes loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// Writes a generated admin token to `path`, readable by its owner only.
fn write_token_file(path: &std::path::Path, token: &str) -> Result<(), StartError> {
    use std::io::Write;
    let err = |source| StartError::File {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| StartError::File {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    writeln!(f, "{token}").map_err(err)
}

/// The configured admission hooks, signing with `SIGMA_ADMISSION_SECRET` or, when it is not
/// given, a secret generated once into `secret_file` (mode 0600).
fn admission_hooks(
    config: &Config,
    secret_file: &std::path::Path,
) -> Result<Option<Arc<Hooks>>, StartError> {
    if config.admission.is_empty() {
        return Ok(None);
    }
    let secret = match &config.control.admission_secret {
        Some(s) => s.clone(),
        None => match std::fs::read_to_string(secret_file) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                let s = sigma_control::webhooks::new_secret(&mut rand::rngs::StdRng::from_os_rng());
                write_token_file(secret_file, &s)?;
                tracing::info!(file = %secret_file.display(), "admission hook secret generated");
                s
            }
        },
    };
    let hooks = config
        .admission
        .iter()
        .map(|h| sigma_control::admission::Hook {
            url: h.url.clone(),
            timeout: h.timeout,
            on_error: h.on_error,
            playback: h.playback,
        })
        .collect();
    let hooks = Hooks::new(hooks, secret, Box::new(rand::rngs::StdRng::from_os_rng()))
        .map_err(|e| StartError::Admission(e.to_string()))?;
    Ok(Some(Arc::new(hooks)))
}

/// Binds the three listeners (RTMP, the viewers' HTTP, the management API), opens the store
/// (migrating it), and starts serving.
///
/// When the store holds no API token and `config.control.admin_token` is `None`, an admin
/// token is generated, written to `DATA_DIR/api-token` (mode 0600) and returned in
/// [`Running::bootstrap_token`] for the console.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let (rtmp_listener, rtmp_addr) = bind("rtmp", config.server.rtmp_listen).await?;
    let (http_listener, http_addr) = bind("http", config.server.http_listen).await?;
    let (api_listener, api_addr) = bind("api", config.control.api_listen).await?;

    let data_dir = config.server.data_dir.clone();
    let data_dir = &data_dir;
    if config.control.database_url.is_none() {
        std::fs::create_dir_all(data_dir).map_err(|source| StartError::File {
            path: data_dir.clone(),
            source,
        })?;
    }
    let store = Store::open(&config.database_url()).await?;
    let rtmp_base = match &config.control.public_rtmp_url {
        Some(u) => format!("{}/{INGEST_APP}", u.trim_end_matches('/')),
        None => format!("rtmp://{}/{INGEST_APP}", reachable(rtmp_addr)),
    };
    let http_base = match &config.control.public_http_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("http://{}", reachable(http_addr)),
    };
    let mut ladders: Vec<String> = config.ladders.iter().map(|l| l.name.clone()).collect();
    if !ladders.iter().any(|l| l == "default") {
        ladders.push("default".into());
    }
    let control_config = ControlConfig {
        rtmp_base,
        http_base,
        default_latency: api_mode(config.server.latency),
        ladders,
        admin_token: config.control.admin_token.clone(),
        webhooks: config.webhook_settings(),
        simulcast_allow_private: config.simulcast.allow_private_targets,
    };
    let control = Control::start(
        store,
        control_config,
        Box::new(rand::rngs::StdRng::from_os_rng()),
    )
    .await?;
    let api_token_file = data_dir.join("api-token");
    let bootstrap_token = if config.control.admin_token.is_none() {
        let token = control.bootstrap_token().await?;
        if let Some(t) = &token {
            write_token_file(&api_token_file, t)?;
        }
        token
    } else {
        None
    };

    let hooks = admission_hooks(&config, &data_dir.join("admission-secret"))?;
    // A publish waits for every hook in turn; the RTMP side must not give up first.
    let mut rtmp_config = ServerConfig::default();
    let hooks_wait: Duration = config.admission.iter().map(|h| h.timeout).sum();
    rtmp_config.admission_timeout = rtmp_config
        .admission_timeout
        .max(hooks_wait + Duration::from_secs(5));

    let registry = Registry::new(config);
    let (stop, stop_rx) = watch::channel(false);

    let simulcasts = Simulcasts::default();
    let commands_task = tokio::spawn(ingest::run_commands(
        registry.clone(),
        simulcasts.clone(),
        control.commands(),
    ));
    let ingest = Arc::new(Ingest::new(
        registry.clone(),
        control.clone(),
        hooks.clone(),
        simulcasts,
    ));
    let rtmp = RtmpServer::new(ingest, rtmp_config);
    let mut rtmp_stop = stop_rx.clone();
    let rtmp_task = tokio::spawn(async move {
        rtmp.serve(rtmp_listener, async move {
            let _ = rtmp_stop.wait_for(|s| *s).await;
        })
        .await
    });

    let front = Front::new(registry.clone(), control.clone(), hooks);
    let http_task = tokio::spawn(serve_http(
        http_listener,
        move |req, remote| {
            let front = front.clone();
            async move { front.handle(req, remote).await }
        },
        stop_rx.clone(),
    ));
    let api = Api::new(control.clone());
    let api_task = tokio::spawn(serve_http(
        api_listener,
        move |req, remote| {
            let api = api.clone();
            async move {
                if crate::console::owns(req.uri().path()) {
                    return crate::console::handle(&req);
                }
                api.handle(req, remote.ip()).await
            }
        },
        stop_rx,
    ));

    Ok(Running {
        rtmp_addr,
        http_addr,
        api_addr,
        registry,
        control,
        bootstrap_token,
        api_token_file,
        stop,
        rtmp_task,
        http_task,
        api_task,
        commands_task,
    })
}

/// Serves HTTP/1.1 and HTTP/2 on `listener` with `handle` until `stop` turns true.
async fn serve_http<H, F, RB>(listener: TcpListener, handle: H, mut stop: watch::Receiver<bool>)
where
    H: Fn(Request<hyper::body::Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<RB>> + Send + 'static,
    RB: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, remote) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handle = handle.clone();
                let service = hyper::service::service_fn(move |req| {
                    let fut = handle(req, remote);
                    async move { Ok::<_, Infallible>(fut.await) }
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
    /// Stops accepting, closes publishers (their playlists end, API live streams go `idle`),
    /// writes the last status changes, and waits for the listeners.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for (key, _, _) in self.registry.streams_now() {
            if key.app == API_NAMESPACE {
                self.control.report(&key.name, Input::BroadcastEnded);
            }
        }
        self.registry.shutdown();
        // Writes what is queued and ends the open event streams, so the API listener's
        // graceful shutdown does not wait for them.
        self.control.shutdown().await;
        if let Ok(Err(e)) = self.rtmp_task.await {
            tracing::warn!(error = %e, "RTMP listener ended with an error");
        }
        let _ = self.http_task.await;
        let _ = self.api_task.await;
        self.commands_task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EMBEDDED_DEFAULT;
    use http_body_util::BodyExt;

    async fn front(apps: &[&str]) -> Front {
        let mut text = EMBEDDED_DEFAULT.to_string();
        for app in apps.iter().skip(1) {
            text.push_str(&format!("\n[[app]]\nname = \"{app}\"\n"));
        }
        let text = text.replacen("name = \"live\"", &format!("name = \"{}\"", apps[0]), 1);
        let config = Config::parse(&text, "test").unwrap();
        let db = std::env::temp_dir().join(format!(
            "sigma-server-front-{}-{}.db",
            std::process::id(),
            apps.join("-")
        ));
        let _ = std::fs::remove_file(&db);
        let store = Store::open(&Store::sqlite_url(&db)).await.unwrap();
        let control = Control::start(
            store,
            ControlConfig {
                rtmp_base: "rtmp://127.0.0.1/live".into(),
                http_base: "http://127.0.0.1".into(),
                default_latency: api_mode(config.server.latency),
                ladders: vec![],
                admin_token: None,
                webhooks: Default::default(),
                simulcast_allow_private: false,
            },
            Box::new(rand::rngs::StdRng::seed_from_u64(7)),
        )
        .await
        .unwrap();
        Front::new(Registry::new(config), control, None)
    }

    async fn get(front: &Front, path: &str) -> (StatusCode, String) {
        let r = front
            .handle(
                Request::get(path).body(()).unwrap(),
                SocketAddr::from(([127, 0, 0, 1], 40000)),
            )
            .await;
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn routes() {
        let f = front(&["live", "player"]).await;
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
