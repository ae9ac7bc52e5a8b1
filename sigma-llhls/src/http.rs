//! The HTTP layer: a hyper [`Service`] over an [`Origin`]. The application owns the listener
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
#[derive(Debug, Default)]
pub struct Body {
    chunks: VecDeque<Bytes>,
    remaining: u64,
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
            return preflight();
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
            None => refusal(Refusal::NotFound),
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

    async fn answer(&self, r: Route<'_>, query: Option<&str>, gzip: bool) -> Response<Body> {
        let o = &self.origin;
        match r {
            Route::Multivariant { stream } => match o.multivariant(stream).await {
                Ok(text) => {
                    let mut resp = Response::new(Body::from_chunks([text]));
                    set(&mut resp, header::CONTENT_TYPE, PLAYLIST_TYPE);
                    set(&mut resp, header::CACHE_CONTROL, "public, max-age=2");
                    resp
                }
                Err(e) => refusal(e),
            },
            Route::Media { stream, rendition } => {
                let d = match directive::parse(query) {
                    Ok(d) => d,
                    Err(e) => return refusal(Refusal::BadRequest(e)),
                };
                match o.media_playlist(stream, rendition, d, gzip).await {
                    Ok(p) => {
                        let mut resp = Response::new(Body::from_chunks([p.body]));
                        set(&mut resp, header::CONTENT_TYPE, PLAYLIST_TYPE);
                        let cc = if p.blocking {
                            format!("public, max-age={}", 6 * p.target_duration)
                        } else if p.low_latency {
                            "no-cache".to_owned()
                        } else {
                            format!("public, max-age={}", (p.target_duration / 2).max(1))
                        };
                        if let Ok(v) = HeaderValue::from_str(&cc) {
                            resp.headers_mut().insert(header::CACHE_CONTROL, v);
                        }
                        if p.gzipped {
                            set(&mut resp, header::CONTENT_ENCODING, "gzip");
                        }
                        set(&mut resp, header::VARY, "Accept-Encoding");
                        resp
                    }
                    Err(e) => refusal(e),
                }
            }
            Route::Init {
                stream,
                rendition,
                epoch,
                generation,
            } => media(o.init(stream, rendition, epoch, generation)),
            Route::Segment {
                stream,
                rendition,
                epoch,
                msn,
            } => media(o.segment(stream, rendition, epoch, msn).await),
            Route::Part {
                stream,
                rendition,
                epoch,
                msn,
                index,
            } => media(o.part(stream, rendition, epoch, msn, index).await),
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
    let name = |s: &'a str| crate::origin::valid_name(s).then_some(s);
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
            if let Some(g) = file.strip_prefix("init-").and_then(|f| f.strip_suffix(".mp4")) {
                return Some(Route::Init {
                    stream,
                    rendition,
                    epoch,
                    generation: decimal(g)?,
                });
            }
            if let Some(m) = file.strip_prefix("seg-").and_then(|f| f.strip_suffix(".m4s")) {
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

fn preflight() -> Response<Body> {
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
        HeaderValue::from_static("*"),
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

fn refusal(e: Refusal) -> Response<Body> {
    match e {
        Refusal::NotFound => plain(StatusCode::NOT_FOUND, "not found\n"),
        Refusal::BadRequest(e) => plain(StatusCode::BAD_REQUEST, &format!("{e}\n")),
        Refusal::Unavailable => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "media not available in time\n",
        ),
    }
}

fn media(r: Result<Served, Refusal>) -> Response<Body> {
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
        Err(e) => refusal(e),
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
