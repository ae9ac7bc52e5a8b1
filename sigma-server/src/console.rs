//! The web console: a single page under `/console` on the API listener, embedded in the binary
//! (it loads nothing from the internet). It signs in with an API token, which it keeps in
//! `sessionStorage` and sends only in `Authorization` headers, and then speaks the public API
//! of the same listener, like any other client: the stream list and timelines follow
//! `GET /v1/events/stream`, and the preview player fetches the stream's multivariant playlist
//! from the viewers' listener with the token in a header (see [`crate::playback`]).
//!
//! | path | answer |
//! |---|---|
//! | `/console`, `/console/` | the page |
//! | `/console/console.js`, `/console/console.css` | its script and style |
//! | `/console/hls.min.js` | the bundled hls.js, for the preview player |

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use sigma_control::api::Body;

const INDEX: &str = include_str!("../assets/console/index.html");
const SCRIPT: &str = include_str!("../assets/console/console.js");
const STYLE: &str = include_str!("../assets/console/console.css");

/// The page's content security policy: its own scripts and styles only; media from blob URLs
/// (Media Source Extensions) and playlists from the viewers' listener, on another port.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:; \
                   connect-src 'self' http: https:; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

/// Whether `path` is the console's (the API listener hands those requests here).
pub fn owns(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Answers a request for one of the console's paths.
pub fn handle<B>(req: &Request<B>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"method not allowed\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let (content_type, body): (&'static str, &'static [u8]) = match req.uri().path() {
        "/console" | "/console/" => ("text/html; charset=utf-8", INDEX.as_bytes()),
        "/console/console.js" => ("text/javascript; charset=utf-8", SCRIPT.as_bytes()),
        "/console/console.css" => ("text/css; charset=utf-8", STYLE.as_bytes()),
        "/console/hls.min.js" => ("text/javascript; charset=utf-8", crate::server::HLS_JS),
        _ => return answer(StatusCode::NOT_FOUND, "text/plain", b"not found\n"),
    };
    // For HEAD, hyper sends the headers (with the length) and leaves the body out.
    answer(StatusCode::OK, content_type, body)
}

fn answer(status: StatusCode, content_type: &'static str, body: &'static [u8]) -> Response<Body> {
    let mut r = Response::new(Full::new(bytes::Bytes::from_static(body)).boxed_unsync());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated on every load, so an upgraded server never runs an old script.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: Method, path: &str) -> Response<Body> {
        handle(
            &Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap(),
        )
    }

    #[test]
    fn serves_its_files_and_nothing_else() {
        assert!(owns("/console") && owns("/console/console.js"));
        assert!(!owns("/consoles") && !owns("/v1/live-streams"));
        for (path, kind) in [
            ("/console", "text/html"),
            ("/console/", "text/html"),
            ("/console/console.js", "text/javascript"),
            ("/console/console.css", "text/css"),
            ("/console/hls.min.js", "text/javascript"),
        ] {
            let r = get(Method::GET, path);
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let ct = r.headers()[header::CONTENT_TYPE].to_str().unwrap();
            assert!(ct.starts_with(kind), "{path}: {ct}");
            assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        }
        assert_eq!(
            get(Method::GET, "/console/../v1/live-streams").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(Method::GET, "/console/x.js").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(Method::POST, "/console").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            get(Method::HEAD, "/console/console.js").status(),
            StatusCode::OK
        );
    }

    /// The page loads nothing from elsewhere: every `src` and `href` is the console's own.
    #[test]
    fn the_page_loads_only_its_own_files() {
        for attr in ["src=\"", "href=\""] {
            for piece in INDEX.split(attr).skip(1) {
                let url = piece.split('"').next().unwrap();
                assert!(
                    url.starts_with("/console/") || url.starts_with('#'),
                    "{attr}{url}"
                );
            }
        }
        assert!(!SCRIPT.contains("http://") && !SCRIPT.contains("https://"));
    }
}
