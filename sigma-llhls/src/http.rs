//! The HTTP layer: a hyper [`Service`](hyper::service::Service) over an [`Origin`]. The application owns the listener
//! and hands each connection to hyper (HTTP/1.1, or HTTP/2 including h2c with hyper-util's
//! auto builder) with this service.
//!
//! URL layout (under a prefix, `/live` by default):
//!
//! | path | what |
//! | --- | --- |
//! | `/live/{stream}/index.m3u8` | multivariant playlist |
//! | `/live/{stream}/{rendition}.m3u8` | media playlist; `_HLS_msn`, `_HLS_part`, `_HLS_skip` |
//! | `/live/{stream}/{rendition}/{epoch}/init-{generation}.mp4` | init segment |
//! | `/live/{stream}/{rendition}/{epoch}/seg-{msn}.m4s` | segment |
//! | `/live/{stream}/{rendition}/{epoch}/part-{msn}.{index}.m4s` | part (CMAF chunk) |
//!
//! `{epoch}` names one publication of the stream, so media URLs are never reused and can be
//! cached for a year. Names are `A-Z a-z 0-9 _ -` only, so no path can leave the namespace.
//!
//! Caching (RFC 8216bis Appendix B, Apple LL-HLS): media files are `immutable`; a blocking
//! playlist response is cacheable for 6 target durations (a CDN keys on the full query, and
//! the answer to a given `_HLS_msn`/`_HLS_part` does not get stale in a way that matters); a
//! plain playlist gets half a target duration (`no-cache` with parts); errors are not cached.

use crate::directive;
use crate::origin::{Origin, Refusal, Served};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use sigma_core::MediaKind;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A response body: a list of chunks sent one after the other, never copied.
#[derive(Default)]
pub struct Body {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("chunks", &self.chunks.len())
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl Body {
    /// A body of these chunks.
    pub fn from_chunks(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Body { chunks, remaining }
    }
    /// An empty body.
    pub fn empty() -> Self {
        Body::default()
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.chunks.pop_front() {
            Some(c) => {
                self.remaining -= c.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The hyper service. Cheap to clone: one per connection.
#[derive(Clone)]
pub struct HttpService {
    origin: Origin,
    prefix: std::sync::Arc<str>,
}

impl HttpService {
    /// Serves `origin` under `/live`.
    pub fn new(origin: Origin) -> Self {
        Self::with_prefix(origin, "/live")
    }

    /// Serves `origin` under `prefix` (e.g. `/hls`; no trailing slash).
    pub fn with_prefix(origin: Origin, prefix: &str) -> Self {
        HttpService {
            origin,
            prefix: prefix.trim_end_matches('/').into(),
        }
    }

    /// Answers one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        if req.method() == Method::OPTIONS {
            return preflight("*");
        }
        if req.method() != Method::GET && !head {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            return r;
        }
        let gzip = accepts_gzip(req.headers());
        let path = req.uri().path();
        let query = req.uri().query();
        let mut response = match route(&self.prefix, path) {
            Some(r) => self.answer(r, query, gzip).await,
            None => refusal(Refusal::NotFound, None),
        };
        cors(response.headers_mut());
        if head {
            let len = response.body().remaining;
            *response.body_mut() = Body::empty();
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        response
    }

    /// Cache lifetimes follow Appendix B.1: successful blocking playlist and media answers for
    /// 6 target durations (media never change, so a year), non-blocking playlists for half a
    /// target duration; 404s for 4 target durations after a blocking playlist request and 1
    /// otherwise. 400 and 503 are not cached: the same request may succeed a moment later.
    async fn answer(&self, r: Route<'_>, query: Option<&str>, gzip: bool) -> Response<Body> {
        let o = &self.origin;
        let td = |stream: &str| o.target_duration(stream);
        match r {
            Route::Multivariant { stream } => match o.multivariant(stream).await {
                Ok(text) => {
                    let mut resp = Response::new(Body::from_chunks([text]));
                    set(&mut resp, header::CONTENT_TYPE, PLAYLIST_TYPE);
                    set(&mut resp, header::CACHE_CONTROL, "public, max-age=2");
                    resp
                }
                Err(e) => refusal(e, td(stream)),
            },
            Route::Media { stream, rendition } => {
                let d = match directive::parse(query) {
                    Ok(d) => d,
                    Err(e) => return refusal(Refusal::BadRequest(e), None),
                };
                match o.media_playlist(stream, rendition, d, gzip).await {
                    Ok(p) => {
                        let mut resp = Response::new(Body::from_chunks([p.body]));
                        set(&mut resp, header::CONTENT_TYPE, PLAYLIST_TYPE);
                        let age = if p.blocking {
                            6 * p.target_duration
                        } else {
                            (p.target_duration / 2).max(1)
                        };
                        max_age(&mut resp, age);
                        if p.gzipped {
                            set(&mut resp, header::CONTENT_ENCODING, "gzip");
                        }
                        set(&mut resp, header::VARY, "Accept-Encoding");
                        resp
                    }
                    Err(e) => {
                        let factor = if d.is_blocking() { 4 } else { 1 };
                        refusal(e, td(stream).map(|t| factor * t))
                    }
                }
            }
            Route::Init {
                stream,
                rendition,
                epoch,
                generation,
            } => media(o.init(stream, rendition, epoch, generation), || td(stream)),
            Route::Segment {
                stream,
                rendition,
                epoch,
                msn,
            } => media(o.segment(stream, rendition, epoch, msn).await, || {
                td(stream)
            }),
            Route::Part {
                stream,
                rendition,
                epoch,
                msn,
                index,
            } => media(o.part(stream, rendition, epoch, msn, index).await, || {
                td(stream)
            }),
        }
    }
}

impl<B: Send + 'static> hyper::service::Service<Request<B>> for HttpService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

/// `application/vnd.apple.mpegurl` (RFC 8216bis §4).
pub const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

/// A parsed request path.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Multivariant {
        stream: &'a str,
    },
    Media {
        stream: &'a str,
        rendition: &'a str,
    },
    Init {
        stream: &'a str,
        rendition: &'a str,
        epoch: &'a str,
        generation: u64,
    },
    Segment {
        stream: &'a str,
        rendition: &'a str,
        epoch: &'a str,
        msn: u64,
    },
    Part {
        stream: &'a str,
        rendition: &'a str,
        epoch: &'a str,
        msn: u64,
        index: u64,
    },
}

fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Maps a path to a route; anything else (other characters, `..`, extra segments) is `None`.
fn route<'a>(prefix: &str, path: &'a str) -> Option<Route<'a>> {
    let rest = path.strip_prefix(prefix)?.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    let name = |s: &'a str| sigma_core::StreamKey::valid_name(s).then_some(s);
    match parts.as_slice() {
        [stream, file] => {
            let stream = name(stream)?;
            let base = name(file.strip_suffix(".m3u8")?)?;
            Some(if base == "index" {
                Route::Multivariant { stream }
            } else {
                Route::Media {
                    stream,
                    rendition: base,
                }
            })
        }
        [stream, rendition, epoch, file] => {
            let (stream, rendition, epoch) = (name(stream)?, name(rendition)?, name(epoch)?);
            if let Some(g) = file
                .strip_prefix("init-")
                .and_then(|f| f.strip_suffix(".mp4"))
            {
                return Some(Route::Init {
                    stream,
                    rendition,
                    epoch,
                    generation: decimal(g)?,
                });
            }
            if let Some(m) = file
                .strip_prefix("seg-")
                .and_then(|f| f.strip_suffix(".m4s"))
            {
                return Some(Route::Segment {
                    stream,
                    rendition,
                    epoch,
                    msn: decimal(m)?,
                });
            }
            let p = file.strip_prefix("part-")?.strip_suffix(".m4s")?;
            let (m, i) = p.split_once('.')?;
            Some(Route::Part {
                stream,
                rendition,
                epoch,
                msn: decimal(m)?,
                index: decimal(i)?,
            })
        }
        _ => None,
    }
}

/// Whether `Accept-Encoding` allows gzip (a `gzip` coding without `q=0`).
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut it = coding.split(';');
            let name = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            name.eq_ignore_ascii_case("gzip") && !q_zero
        })
}

fn set(resp: &mut Response<Body>, name: header::HeaderName, value: &'static str) {
    resp.headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

fn cors(h: &mut http::HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Age, Date, Content-Length"),
    );
}

/// A CORS preflight answer (204) for GET and HEAD from any origin, allowing the request
/// headers `allow_headers` (`*` for any but `Authorization`, which a wildcard never covers).
pub fn preflight(allow_headers: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    cors(h);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(allow_headers),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from_chunks([Bytes::from(text.to_owned())]));
    *r.status_mut() = status;
    set(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    set(&mut r, header::CACHE_CONTROL, "no-store");
    r
}

fn max_age(resp: &mut Response<Body>, seconds: u64) {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={seconds}"))
            .unwrap_or(HeaderValue::from_static("no-cache")),
    );
}

/// The answer to a refused request. `not_found_age`: how long a 404 may be cached (seconds),
/// `None` when nothing is known of the stream (a name may be published any moment).
fn refusal(e: Refusal, not_found_age: Option<u64>) -> Response<Body> {
    match e {
        Refusal::NotFound => {
            let mut r = plain(StatusCode::NOT_FOUND, "not found\n");
            if let Some(age) = not_found_age {
                max_age(&mut r, age);
            }
            r
        }
        Refusal::BadRequest(e) => plain(StatusCode::BAD_REQUEST, &format!("{e}\n")),
        Refusal::Unavailable => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "media not available in time\n",
        ),
    }
}

/// A media file's answer. `not_found_age` is asked only for a 404 (it looks up the stream).
fn media(
    r: Result<Served, Refusal>,
    not_found_age: impl FnOnce() -> Option<u64>,
) -> Response<Body> {
    match r {
        Ok(s) => {
            let mut resp = Response::new(Body::from_chunks(s.chunks));
            set(
                &mut resp,
                header::CONTENT_TYPE,
                match s.kind {
                    MediaKind::Video => "video/mp4",
                    MediaKind::Audio => "audio/mp4",
                },
            );
            set(
                &mut resp,
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable",
            );
            resp
        }
        Err(e) => refusal(e, not_found_age()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/live", "/live/s1/index.m3u8"),
            Some(Route::Multivariant { stream: "s1" })
        );
        assert_eq!(
            route("/live", "/live/s1/video.m3u8"),
            Some(Route::Media {
                stream: "s1",
                rendition: "video"
            })
        );
        assert_eq!(
            route("/live", "/live/s/v/e1/part-12.3.m4s"),
            Some(Route::Part {
                stream: "s",
                rendition: "v",
                epoch: "e1",
                msn: 12,
                index: 3
            })
        );
        assert_eq!(
            route("/live", "/live/s/v/e1/init-2.mp4"),
            Some(Route::Init {
                stream: "s",
                rendition: "v",
                epoch: "e1",
                generation: 2
            })
        );
        for bad in [
            "/live/../etc/passwd",
            "/live/s/../video.m3u8",
            "/live/s/v/e/../../x.m3u8",
            "/live/s/%2e%2e.m3u8",
            "/live/s/v/e/seg-1.m4s/x",
            "/live/s/v/e/seg--1.m4s",
            "/live/s/v/e/part-1.m4s",
            "/live/s/v/e/part-1.2.3.m4s",
            "/live/s/.m3u8",
            "/live/s/v.m3u8x",
            "/live//v.m3u8",
            "/livex/s/v.m3u8",
            "/other/s/v.m3u8",
            "/live/s/v/e/seg-99999999999999999999999.m4s",
        ] {
            assert_eq!(route("/live", bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// Any path routes or is refused without panicking, and a route never carries a name
        /// that could leave the namespace.
        #[test]
        fn any_path_is_safe(path in "(/live)?(/[a-z0-9._%-]{0,12}){0,6}") {
            if let Some(r) = route("/live", &path) {
                let names: Vec<&str> = match r {
                    Route::Multivariant { stream } => vec![stream],
                    Route::Media { stream, rendition } => vec![stream, rendition],
                    Route::Init { stream, rendition, epoch, .. }
                    | Route::Segment { stream, rendition, epoch, .. }
                    | Route::Part { stream, rendition, epoch, .. } => vec![stream, rendition, epoch],
                };
                for n in names {
                    proptest::prop_assert!(sigma_core::StreamKey::valid_name(n), "{}", n);
                }
            }
        }
    }

    #[test]
    fn gzip_negotiation() {
        let h = |v: &'static str| {
            let mut m = http::HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            m
        };
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(accepts_gzip(&h("br;q=1.0, GZIP;q=0.5")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br")));
        assert!(!accepts_gzip(&http::HeaderMap::new()));
    }
}

/// Request-level tests over loopback TCP: a bus feeds an origin, hyper serves it, a hyper
/// client asks. Every network wait has a timeout.
#[cfg(test)]
mod request_tests {
    use super::*;
    use crate::fixture::{self, AUDIO, VIDEO};
    use crate::{LatencyMode, PublishOptions, Timing};
    use http_body_util::BodyExt;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use sigma_core::Frame;
    use sigma_core::bus::{self, Producer, Window};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    const NET: Duration = Duration::from_secs(20);

    async fn serve(origin: Origin) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = HttpService::new(origin);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let svc = svc.clone();
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        addr
    }

    struct Reply {
        status: StatusCode,
        headers: http::HeaderMap,
        body: Bytes,
    }

    impl Reply {
        fn text(&self) -> String {
            String::from_utf8(self.body.to_vec()).unwrap()
        }
        fn header(&self, name: &str) -> &str {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        }
    }

    async fn request(
        addr: SocketAddr,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        h2: bool,
    ) -> Reply {
        tokio::time::timeout(NET, async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut req = Request::builder()
                .method(method)
                .uri(format!("http://{addr}{path}"));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req.body(http_body_util::Empty::<Bytes>::new()).unwrap();
            let resp = if h2 {
                let (mut s, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                s.send_request(req).await.unwrap()
            } else {
                let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                s.send_request(req).await.unwrap()
            };
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        })
        .await
        .expect("request timed out")
    }

    async fn get(addr: SocketAddr, path: &str) -> Reply {
        request(addr, Method::GET, path, &[], false).await
    }

    /// A live stream fed by the test: publish, then push frames on demand.
    struct Live {
        origin: Origin,
        addr: SocketAddr,
        producer: Option<Producer>,
        frames: std::vec::IntoIter<Frame>,
        pushed_secs: f64,
        _publication: crate::Publication,
    }

    impl Live {
        async fn start(timing: Timing) -> Live {
            Live::start_with(timing, fixture::synthetic_frames(600, 60)).await
        }

        /// A stream that will be fed `frames`.
        async fn start_with(timing: Timing, frames: Vec<Frame>) -> Live {
            let origin = Origin::new();
            let (mut producer, subscriber) = bus::channel(Window {
                max_groups: 64,
                max_frames: 1 << 16,
                max_bytes: 1 << 30,
            });
            producer.set_info(fixture::synthetic_info(1));
            let mut opts = PublishOptions::new(LatencyMode::UltraLow);
            opts.timing = timing;
            let publication = origin.publish("s", &subscriber, opts).unwrap();
            let addr = serve(origin.clone()).await;
            Live {
                origin,
                addr,
                producer: Some(producer),
                frames: frames.into_iter(),
                pushed_secs: 0.0,
                _publication: publication,
            }
        }

        /// Pushes frames up to `secs` of media time, optionally paced in real time.
        async fn push_until(&mut self, secs: f64, paced: bool) {
            let p = self.producer.as_mut().unwrap();
            let start = Instant::now();
            let from = self.pushed_secs;
            for f in self.frames.by_ref() {
                let t = if f.track() == VIDEO {
                    f.dts() as f64 / 90_000.0
                } else {
                    f.dts() as f64 / 48_000.0
                };
                if paced && t > from {
                    let due = start + Duration::from_secs_f64(t - from);
                    tokio::time::sleep_until(due.into()).await;
                }
                p.push(f).unwrap();
                self.pushed_secs = t;
                if t >= secs {
                    break;
                }
            }
        }

        /// A stream started with `secs` of media pushed (unpaced) and processed.
        async fn with(secs: f64) -> Live {
            let mut live = Live::start(ultra_low()).await;
            live.push_until(secs, false).await;
            live.settle().await;
            live
        }

        /// The video playlist's `EXT-X-PRELOAD-HINT` URI now.
        async fn hint(&self) -> String {
            let text = get(self.addr, "/live/s/video.m3u8").await.text();
            fixture::parse_media_playlist(&text)
                .unwrap()
                .preload_hint
                .unwrap()
        }

        fn slot(&self, name: &str) -> std::sync::Arc<crate::origin::Slot> {
            self.origin.stream("s").unwrap().slot(name).unwrap()
        }

        fn last(&self, name: &str) -> Option<(u64, Option<u32>)> {
            crate::origin::tests_lock(&self.slot(name)).last()
        }

        fn epoch(&self) -> String {
            self.origin.stream("s").unwrap().epoch.clone()
        }

        /// Waits until the origin has processed everything pushed so far.
        async fn settle(&self) {
            let deadline = Instant::now() + NET;
            let want_msn = |secs: f64| (secs / 2.0).floor() as u64;
            loop {
                if let Some((m, _)) = self.last("video") {
                    if m + 1 >= want_msn(self.pushed_secs) && self.origin.stream("s").is_some() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return;
                    }
                }
                assert!(Instant::now() < deadline, "origin did not catch up");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    fn ultra_low() -> Timing {
        LatencyMode::UltraLow.timing()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_playlists_segments_and_parts_over_http1_and_h2c() {
        let mut live = Live::start(ultra_low()).await;
        live.push_until(9.0, false).await;
        live.settle().await;
        let addr = live.addr;

        for h2 in [false, true] {
            let r = request(addr, Method::GET, "/live/s/index.m3u8", &[], h2).await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.header("content-type"), PLAYLIST_TYPE);
            assert_eq!(r.header("access-control-allow-origin"), "*");
            let t = r.text();
            assert!(t.contains("CODECS=\"avc1.64001f,mp4a.40.2\""), "{t}");
            assert!(t.contains("RESOLUTION=1280x720,FRAME-RATE=30.000"), "{t}");
            assert!(t.contains("AVERAGE-BANDWIDTH="), "{t}");
            assert!(
                t.contains("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\""),
                "{t}"
            );
            assert!(t.contains("\nvideo.m3u8\n"), "{t}");
        }

        let r = get(addr, "/live/s/video.m3u8").await;
        assert_eq!(r.status, StatusCode::OK);
        // Appendix B.1: a non-blocking playlist is cached for half a target duration (2 s).
        assert_eq!(r.header("cache-control"), "public, max-age=1");
        let p = fixture::parse_media_playlist(&r.text()).unwrap();
        assert_eq!(p.reports, ["audio.m3u8"]);
        let epoch = live.epoch();
        assert_eq!(p.maps, [format!("video/{epoch}/init-1.mp4")]);

        let init = get(addr, &format!("/live/s/{}", p.maps[0])).await;
        assert_eq!(init.status, StatusCode::OK);
        assert_eq!(init.header("content-type"), "video/mp4");
        assert_eq!(
            init.header("cache-control"),
            "public, max-age=31536000, immutable"
        );
        fixture::read_init(&init.body);

        // Every listed segment equals the concatenation of its listed parts, over both HTTP
        // versions, and holds the samples pushed.
        let mut media = Vec::new();
        for (i, (uri, _, parts)) in p.segments.iter().enumerate() {
            let seg = request(
                addr,
                Method::GET,
                &format!("/live/s/{uri}"),
                &[],
                i % 2 == 1,
            )
            .await;
            assert_eq!(seg.status, StatusCode::OK, "{uri}");
            assert_eq!(seg.header("content-length"), seg.body.len().to_string());
            if !parts.is_empty() {
                let mut cat = Vec::new();
                for (puri, _, _) in parts {
                    let part = get(addr, &format!("/live/s/{puri}")).await;
                    assert_eq!(part.status, StatusCode::OK, "{puri}");
                    cat.extend_from_slice(&part.body);
                }
                assert_eq!(cat, seg.body.to_vec(), "{uri}");
            }
            media.extend_from_slice(&seg.body);
        }
        let samples = fixture::read_fragments(&media);
        assert!(samples.len() > 100);
        assert!(samples[0].sync);

        let audio = get(addr, "/live/s/audio.m3u8").await;
        let pa = fixture::parse_media_playlist(&audio.text()).unwrap();
        assert_eq!(pa.reports, ["video.m3u8"]);
        let a0 = get(addr, &format!("/live/s/{}", pa.segments[0].0)).await;
        assert_eq!(a0.header("content-type"), "audio/mp4");

        // HEAD: headers and length, no body.
        let h = request(
            addr,
            Method::HEAD,
            &format!("/live/s/{}", p.segments[0].0),
            &[],
            false,
        )
        .await;
        assert_eq!(h.status, StatusCode::OK);
        assert!(h.body.is_empty());
        assert!(h.header("content-length").parse::<usize>().unwrap() > 1000);
    }

    /// The ffmpeg capture end to end: bus → origin → HTTP; the init segment and every part
    /// fetched over HTTP decode with ffprobe to exactly the frames pushed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn captured_stream_served_over_http_decodes_with_ffprobe() {
        let (info, frames) = fixture::capture();
        let origin = Origin::new();
        let (mut producer, subscriber) = bus::channel(Window {
            max_groups: 64,
            max_frames: 1 << 16,
            max_bytes: 1 << 30,
        });
        producer.set_info(info);
        let publication = origin
            .publish(
                "cap",
                &subscriber,
                PublishOptions::new(LatencyMode::UltraLow),
            )
            .unwrap();
        for f in frames.iter().cloned() {
            producer.push(f).unwrap();
        }
        producer.finish();
        tokio::time::timeout(NET, publication.finished())
            .await
            .unwrap();
        let addr = serve(origin).await;
        let dir = std::env::temp_dir().join(format!("sigma-llhls-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, track) in [("video", VIDEO), ("audio", AUDIO)] {
            let text = get(addr, &format!("/live/cap/{name}.m3u8")).await.text();
            let p = fixture::parse_media_playlist(&text).unwrap();
            assert!(p.ended);
            let mut file = get(addr, &format!("/live/cap/{}", p.maps[0]))
                .await
                .body
                .to_vec();
            // Segments without listed parts are fetched whole, the others part by part.
            for (uri, _, parts) in &p.segments {
                if parts.is_empty() {
                    file.extend_from_slice(&get(addr, &format!("/live/cap/{uri}")).await.body);
                }
                for (puri, _, _) in parts {
                    let r = get(addr, &format!("/live/cap/{puri}")).await;
                    assert_eq!(r.status, StatusCode::OK, "{puri}");
                    file.extend_from_slice(&r.body);
                }
            }
            let path = dir.join(format!("{name}.mp4"));
            std::fs::write(&path, &file).unwrap();
            let out = std::process::Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-count_packets",
                    "-show_entries",
                    "stream=nb_read_packets",
                ])
                .args(["-of", "csv=p=0"])
                .arg(&path)
                .output()
                .expect("ffprobe runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let n: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            assert_eq!(
                n,
                frames.iter().filter(|f| f.track() == track).count(),
                "{name}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abr_variants_share_the_audio_group_and_report_each_other() {
        let origin = Origin::new();
        let window = Window {
            max_groups: 64,
            max_frames: 1 << 16,
            max_bytes: 1 << 30,
        };
        let (mut hi, hi_sub) = bus::channel(window);
        let (mut lo, lo_sub) = bus::channel(window);
        hi.set_info(fixture::synthetic_info(1));
        let small =
            sigma_core::H264Config::from_avcc(fixture::core_testdata("x264_baseline_360p25.avcc"))
                .unwrap();
        lo.set_info(
            sigma_core::StreamInfo::new(
                1,
                vec![
                    sigma_core::TrackInfo::new(VIDEO, 90_000, sigma_core::CodecConfig::H264(small))
                        .unwrap(),
                ],
            )
            .unwrap(),
        );
        let mut opts = PublishOptions::new(LatencyMode::UltraLow);
        opts.variant = "720p".into();
        let _a = origin.publish("s", &hi_sub, opts.clone()).unwrap();
        opts.variant = "360p".into();
        opts.audio = false;
        let _b = origin.publish("s", &lo_sub, opts.clone()).unwrap();
        assert!(matches!(
            origin.publish("s", &lo_sub, opts),
            Err(crate::Error::AlreadyPublished(_))
        ));
        for f in fixture::synthetic_frames(5, 60) {
            if f.track() == VIDEO {
                lo.push(f.clone()).unwrap();
            }
            hi.push(f).unwrap();
        }
        let addr = serve(origin.clone()).await;
        let t = get(addr, "/live/s/index.m3u8").await.text();
        assert!(
            t.contains("CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720"),
            "{t}"
        );
        assert!(t.contains("CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=25.000,AUDIO=\"audio\"\n360p.m3u8"), "{t}");
        let p =
            fixture::parse_media_playlist(&get(addr, "/live/s/360p.m3u8").await.text()).unwrap();
        let mut reports = p.reports.clone();
        reports.sort();
        assert_eq!(reports, ["720p.m3u8", "audio.m3u8"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_cors_and_gzip() {
        let mut live = Live::start(ultra_low()).await;
        live.push_until(7.0, false).await;
        live.settle().await;
        let addr = live.addr;
        let (msn, part) = live.last("video").unwrap();
        let part = part.unwrap();
        let bad = [
            "_HLS_part=1".to_owned(),
            "_HLS_msn=abc".to_owned(),
            "_HLS_skip=maybe".to_owned(),
            format!("_HLS_msn={}", msn + 3),
            format!("_HLS_msn={msn}&_HLS_part={}", part + 9),
        ];
        for q in &bad {
            let started = Instant::now();
            let r = get(addr, &format!("/live/s/video.m3u8?{q}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text());
            assert!(started.elapsed() < Duration::from_secs(2), "400 at once");
            assert_eq!(r.header("cache-control"), "no-store");
        }
        let epoch = live.epoch();
        // 404s: not cached when nothing is known of the stream; within a known stream cached
        // for one target duration (2 s), four after a blocking playlist request (B.1).
        for (path, cache) in [
            ("/live/nope/video.m3u8".to_owned(), "no-store"),
            ("/live/s/../s/video.m3u8".to_owned(), "no-store"),
            ("/live/s/video/../../etc/passwd".to_owned(), "no-store"),
            ("/favicon.ico".to_owned(), "no-store"),
            ("/live/s/nope.m3u8".to_owned(), "public, max-age=2"),
            (
                "/live/s/nope.m3u8?_HLS_msn=1".to_owned(),
                "public, max-age=8",
            ),
            (
                "/live/s/video/wrongepoch/seg-0.m4s".to_owned(),
                "public, max-age=2",
            ),
            (
                format!("/live/s/video/{epoch}/init-7.mp4"),
                "public, max-age=2",
            ),
            (
                format!("/live/s/video/{epoch}/seg-{}.m4s", msn + 40),
                "public, max-age=2",
            ),
        ] {
            let r = get(addr, &path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(r.header("cache-control"), cache, "{path}");
        }
        let r = request(addr, Method::POST, "/live/s/video.m3u8", &[], false).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        let r = request(
            addr,
            Method::OPTIONS,
            "/live/s/video.m3u8",
            &[("origin", "https://x.example")],
            false,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(r.header("access-control-allow-origin"), "*");
        assert!(r.header("access-control-allow-methods").contains("GET"));

        let plain = get(addr, "/live/s/video.m3u8").await;
        let gz = request(
            addr,
            Method::GET,
            "/live/s/video.m3u8",
            &[("accept-encoding", "gzip")],
            false,
        )
        .await;
        assert_eq!(gz.header("content-encoding"), "gzip");
        assert_eq!(gz.header("vary"), "Accept-Encoding");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz.body[..]), &mut text)
            .unwrap();
        assert_eq!(text, plain.text());
        assert!(gz.body.len() < plain.body.len());

        // Delta updates, both spellings.
        for q in ["_HLS_skip=YES", "_HLS_skip=v2"] {
            let r = get(addr, &format!("/live/s/video.m3u8?{q}")).await;
            assert_eq!(r.status, StatusCode::OK);
            fixture::parse_media_playlist(&r.text()).unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delta_update_skips_old_segments() {
        let mut live = Live::start(ultra_low()).await;
        live.push_until(40.0, false).await;
        live.settle().await;
        let full =
            fixture::parse_media_playlist(&get(live.addr, "/live/s/video.m3u8").await.text())
                .unwrap();
        let r = get(live.addr, "/live/s/video.m3u8?_HLS_skip=YES").await;
        let delta = fixture::parse_media_playlist(&r.text()).unwrap();
        assert!(delta.skipped > 0);
        assert_eq!(delta.version, 9);
        assert_eq!(delta.media_sequence, full.media_sequence);
        assert_eq!(
            delta.skipped as usize + delta.segments.len(),
            full.segments.len()
        );
        assert_eq!(delta.segments.last(), full.segments.last());
        assert!(!r.text().contains("RECENTLY-REMOVED-DATERANGES"));
        // §4.4.5.2: a v2 delta also lists the recently removed date ranges (none here).
        let v2 = get(live.addr, "/live/s/video.m3u8?_HLS_skip=v2")
            .await
            .text();
        assert!(
            v2.contains(&format!(
                "#EXT-X-SKIP:SKIPPED-SEGMENTS={},RECENTLY-REMOVED-DATERANGES=\"\"",
                delta.skipped
            )),
            "{v2}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_reload_waits_for_the_part_then_answers() {
        let mut live = Live::start(ultra_low()).await;
        live.push_until(5.0, false).await;
        live.settle().await;
        let (msn, part) = live.last("video").unwrap();
        let next = part.unwrap() + 1;
        let addr = live.addr;
        let q = format!("/live/s/video.m3u8?_HLS_msn={msn}&_HLS_part={next}");
        let waiting = tokio::spawn(async move { get(addr, &q).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "answered before the part existed");
        live.push_until(live.pushed_secs + 1.0, false).await;
        let r = waiting.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("cache-control"), "public, max-age=12");
        let p = fixture::parse_media_playlist(&r.text()).unwrap();
        let want = format!("video/{}/part-{msn}.{next}.m4s", live.epoch());
        let has = p
            .segments
            .iter()
            .flat_map(|s| s.2.iter())
            .chain(&p.open_parts)
            .any(|x| x.0 == want);
        assert!(has, "{want} in\n{}", r.text());
        // A request for an existing part answers at once; _HLS_msn alone waits for a complete
        // segment.
        let r = get(
            addr,
            &format!("/live/s/video.m3u8?_HLS_msn={msn}&_HLS_part=0"),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let r = get(
            addr,
            &format!("/live/s/audio.m3u8?_HLS_msn={}", msn.saturating_sub(1)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_reload_gives_503_after_three_target_durations() {
        let timing = Timing {
            segment_target: Duration::from_secs(1),
            part_target: Some(Duration::from_millis(250)),
            playlist_segments: 6,
        };
        let mut live = Live::start(timing).await;
        live.push_until(4.0, false).await;
        live.settle().await;
        // The synthetic GOP is 2 s, so the target duration is 2 and the limit 6 s.
        let (msn, _) = live.last("video").unwrap();
        let started = Instant::now();
        let r = get(
            live.addr,
            &format!("/live/s/video.m3u8?_HLS_msn={}", msn + 1),
        )
        .await;
        let waited = started.elapsed();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            waited >= Duration::from_secs(6) && waited < Duration::from_secs(12),
            "{waited:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn preload_hint_is_answered_within_one_part_duration_of_completion() {
        let mut live = Live::with(3.0).await;
        let addr = live.addr;
        let hint = live.hint().await;
        let (msn, part) = live.last("video").unwrap();
        let hinted = (msn, part.unwrap() + 1);
        let path = format!("/live/s/{hint}");
        let waiting = tokio::spawn(async move {
            let r = get(addr, &path).await;
            (r, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        // Feed in real time and note when the hinted part completes at the origin.
        let slot = live.slot("video");
        let watcher = tokio::spawn(async move {
            loop {
                let done = crate::origin::tests_lock(&slot)
                    .part(hinted.0, u64::from(hinted.1))
                    .is_some();
                if done {
                    return Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        live.push_until(live.pushed_secs + 1.5, true).await;
        let completed = tokio::time::timeout(NET, watcher).await.unwrap().unwrap();
        let (r, answered) = waiting.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        let parts = fixture::read_fragments(&r.body);
        assert!(!parts.is_empty());
        // CI-safe margin: one part duration (334 ms); typically well under 5 ms.
        let delay = answered.saturating_duration_since(completed);
        assert!(delay < Duration::from_millis(334), "{delay:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn end_of_stream_gets_endlist_and_releases_waiters() {
        let mut live = Live::start(ultra_low()).await;
        live.push_until(5.0, false).await;
        live.settle().await;
        let (msn, _) = live.last("video").unwrap();
        let addr = live.addr;
        let waiting = tokio::spawn(async move {
            get(addr, &format!("/live/s/video.m3u8?_HLS_msn={}", msn + 1)).await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        live.producer.take().unwrap().finish();
        let r = waiting.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        let p = fixture::parse_media_playlist(&r.text()).unwrap();
        assert!(p.ended, "{}", r.text());
        for name in ["video", "audio"] {
            let t = get(addr, &format!("/live/s/{name}.m3u8")).await.text();
            assert!(
                t.ends_with("#EXT-X-ENDLIST\n")
                    || t.contains("#EXT-X-ENDLIST\n#EXT-X-RENDITION-REPORT"),
                "{t}"
            );
        }
        let _ = AUDIO;
    }

    /// §6.2.1: EXT-X-TARGETDURATION never changes, in any rendition, even when the publisher
    /// switches from 2 s to 3.5 s keyframe intervals: segments are cut short instead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn target_duration_is_fixed_when_keyframes_get_sparser() {
        let first = fixture::synthetic_frames(6, 60);
        let later = fixture::synthetic_frames(14, 105).into_iter().map(|f| {
            let shift = if f.track() == VIDEO {
                6 * 90_000
            } else {
                6 * 48_000
            };
            f.shifted(shift)
        });
        let mut live =
            Live::start_with(ultra_low(), first.into_iter().chain(later).collect()).await;
        let addr = live.addr;
        let mut seen = Vec::new();
        // Sample the playlists as the stream goes (from 3 s: the first segment is complete).
        for secs in 3..=20 {
            live.push_until(f64::from(secs), false).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            for name in ["video", "audio"] {
                let r = get(addr, &format!("/live/s/{name}.m3u8")).await;
                if r.status == StatusCode::OK {
                    seen.push((name, fixture::parse_media_playlist(&r.text()).unwrap()));
                }
            }
        }
        live.producer.take().unwrap().finish();
        tokio::time::sleep(Duration::from_millis(200)).await;
        for name in ["video", "audio"] {
            let r = get(addr, &format!("/live/s/{name}.m3u8")).await;
            seen.push((name, fixture::parse_media_playlist(&r.text()).unwrap()));
        }
        assert!(seen.len() > 10);
        let last_video = &seen.iter().rev().find(|(n, _)| *n == "video").unwrap().1;
        assert!(last_video.segments.len() >= 8, "{:?}", last_video.segments);
        for (name, p) in &seen {
            assert_eq!(p.target_duration, 2, "{name}");
            for (uri, d, _) in &p.segments {
                assert!(d.round() <= 2.0, "{name} {uri} lasts {d}");
            }
        }
    }

    /// §6.2.6: only the hinted part waits; a part past the hint and the segment in progress
    /// are 404 at once (and were never listed).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_hinted_part_waits() {
        let mut live = Live::with(3.0).await;
        let addr = live.addr;
        let hint = live.hint().await;
        let (m, i) = hint
            .rsplit('/')
            .next()
            .and_then(|f| {
                f.strip_prefix("part-")?
                    .strip_suffix(".m4s")?
                    .split_once('.')
            })
            .map(|(m, i)| (m.parse::<u64>().unwrap(), i.parse::<u64>().unwrap()))
            .unwrap();
        let epoch = live.epoch();
        for path in [
            format!("/live/s/video/{epoch}/part-{m}.{}.m4s", i + 1),
            format!("/live/s/video/{epoch}/part-{}.0.m4s", m + 1),
            format!("/live/s/video/{epoch}/seg-{m}.m4s"),
        ] {
            let started = Instant::now();
            let r = get(addr, &path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
            assert!(started.elapsed() < Duration::from_secs(1), "{path} waited");
        }
        // The hinted one waits (and is answered once it completes).
        let path = format!("/live/s/{hint}");
        let waiting = tokio::spawn(async move { get(addr, &path).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "hinted part answered before it existed"
        );
        live.push_until(live.pushed_secs + 1.0, false).await;
        assert_eq!(waiting.await.unwrap().status, StatusCode::OK);
    }

    /// §6.2.1: when a stream is removed, or replaced by a new publication under the same
    /// name, the media its last playlist lists stay fetchable by their old URIs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn media_of_a_removed_or_replaced_stream_stay_available() {
        let mut live = Live::start(ultra_low()).await;
        live.push_until(7.0, false).await;
        live.settle().await;
        let addr = live.addr;
        let before =
            fixture::parse_media_playlist(&get(addr, "/live/s/video.m3u8").await.text()).unwrap();
        let first = format!("/live/s/{}", before.segments[0].0);
        let init = format!("/live/s/{}", before.maps[0]);
        let body = get(addr, &first).await.body;
        assert!(!body.is_empty());

        // Replaced: the old stream ends and a new publication takes the name.
        live.producer.take().unwrap().finish();
        let deadline = Instant::now() + NET;
        while !live
            .origin
            .stream("s")
            .unwrap()
            .slot("video")
            .is_some_and(|s| crate::origin::tests_lock(&s).is_ended())
        {
            assert!(Instant::now() < deadline, "stream did not end");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_p2, sub2) = bus::channel(Window::default());
        let _pub2 = live
            .origin
            .publish("s", &sub2, PublishOptions::new(LatencyMode::UltraLow))
            .unwrap();
        assert_ne!(live.epoch(), before.maps[0].split('/').nth(1).unwrap());
        let r = get(addr, &first).await;
        assert_eq!(r.status, StatusCode::OK, "old segment after replacement");
        assert_eq!(r.body, body);
        assert_eq!(get(addr, &init).await.status, StatusCode::OK);

        // Removed: playlists answer 404, media are still served.
        live.origin.remove("s");
        assert_eq!(
            get(addr, "/live/s/video.m3u8").await.status,
            StatusCode::NOT_FOUND
        );
        let r = get(addr, &first).await;
        assert_eq!(r.status, StatusCode::OK, "old segment after removal");
        assert_eq!(r.body, body);
    }
}
