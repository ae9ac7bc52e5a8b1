//! Playback by playback id: the viewers' routes under `/v/{playback_id}/`.
//!
//! | path | who may fetch it |
//! |---|---|
//! | `/v/{pid}/index.m3u8` | anyone for a `public` id; `?token=JWT` for a `signed` one |
//! | `/v/{pid}/player` | the same: a player page for the multivariant playlist |
//! | `/v/{pid}/t/{media token}/…` | holders of the media token (playlists and media) |
//! | `/v/{pid}/…` (no token) | anyone, for a `public` id of a stream not in preview |
//!
//! The entry routes answer a CORS preflight allowing `Authorization`, so the console (on the
//! API listener's origin) can preview with the operator's token in a header, never in a URL.
//!
//! When the multivariant playlist is fetched with a JWT (or, in preview, an operator's API
//! token in `Authorization: Bearer`), the media playlist URIs in it are rewritten to
//! `t/{media token}/…`. The media token is an HMAC of the playback id, the audience and a time
//! window ([`sigma_control::playback::WINDOW`]), so every viewer of one id gets the same URIs
//! in a window and a CDN caches one copy; the media playlists' own URIs are relative, so they
//! carry the token on without being rewritten, and hls.js never resends the JWT.
//!
//! While a live stream is in `preview`, only the `p` audience (a JWT with `aud: "p"`, or an
//! API token) may watch it. Refusals are 403 with no media bytes; unknown or deleted playback
//! ids are 404 (this node drops a deleted id at once, others within
//! [`sigma_control::control::CACHE_TTL`]).

use crate::ingest::{API_NAMESPACE, INGEST_APP};
use crate::registry::Registry;
use crate::server::{PLAYER_HTML, text as answer};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use sigma_control::Control;
use sigma_control::admission::{Client, Decision, HookRequest, Hooks, redact_query};
use sigma_control::playback::Audience;
use sigma_llhls::http::{Body, PLAYLIST_TYPE};
use sigma_llhls::{HttpService, Origin};
use std::net::SocketAddr;
use std::sync::Arc;

/// The viewers' side of API live streams.
#[derive(Clone)]
pub(crate) struct Playback {
    control: Control,
    registry: Registry,
    hooks: Option<Arc<Hooks>>,
    origin: Origin,
    service: HttpService,
}

/// A refusal: plain text, never cached, no media bytes.
fn refuse(status: StatusCode, why: impl std::fmt::Display) -> Response<Body> {
    let mut r = answer(status, "text/plain; charset=utf-8", format!("{why}\n"));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

fn forbidden() -> Response<Body> {
    refuse(StatusCode::FORBIDDEN, "forbidden")
}

fn not_found() -> Response<Body> {
    refuse(StatusCode::NOT_FOUND, "not found")
}

/// Prefixes every URI in a multivariant playlist with `prefix` (relative URIs stay relative):
/// the URI lines and the `URI="…"` attributes.
pub fn prefix_uris(playlist: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(playlist.len() + 16 * prefix.len());
    for line in playlist.lines() {
        if line.is_empty() {
        } else if !line.starts_with('#') {
            out.push_str(prefix);
            out.push_str(line);
        } else if let Some(at) = line.find("URI=\"") {
            let (head, tail) = line.split_at(at + 5);
            out.push_str(head);
            out.push_str(prefix);
            out.push_str(tail);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn bearer(req: &http::request::Parts) -> Option<&str> {
    req.headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl Playback {
    pub(crate) fn new(control: Control, registry: Registry, hooks: Option<Arc<Hooks>>) -> Self {
        let origin = registry.api_origin().clone();
        Playback {
            control,
            registry,
            hooks: hooks.filter(|h| h.guards_playback()),
            service: HttpService::with_prefix(origin.clone(), ""),
            origin,
        }
    }

    /// Answers `/v/{pid}/{rest}`.
    pub(crate) async fn handle<B: Send + 'static>(
        &self,
        req: Request<B>,
        pid: &str,
        rest: &[&str],
        remote: SocketAddr,
    ) -> Response<Body> {
        let target = match self.control.playback(pid).await {
            Ok(Some(t)) => t,
            Ok(None) => return not_found(),
            Err(e) => {
                tracing::warn!(error = %e, "playback id lookup failed");
                return refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
            }
        };
        let id = target.live_stream_id;
        let preview = self.control.in_preview(&id);
        let (parts, body) = req.into_parts();
        let entry = matches!(rest, ["index.m3u8"] | ["player"]);
        if entry && parts.method == Method::OPTIONS {
            // A page on another origin (the console) may send an operator's API token, for
            // preview, in `Authorization`.
            return sigma_llhls::http::preflight("Authorization");
        }
        if entry && parts.method != Method::GET && parts.method != Method::HEAD {
            return refuse(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        match rest {
            ["index.m3u8" | "player"] => {
                let token = query_param(parts.uri.query(), "token");
                let audience = match &token {
                    Some(jwt) => match self.control.verify_jwt(pid, jwt).await {
                        Ok(aud) => Some(aud),
                        Err(e) => {
                            tracing::debug!(playback_id = %pid, error = %e, "playback token refused");
                            return forbidden();
                        }
                    },
                    None => match bearer(&parts) {
                        Some(t) => match self.control.authenticate(Some(t), remote.ip()).await {
                            Ok(_) => Some(Audience::Preview),
                            Err(_) => return forbidden(),
                        },
                        None => None,
                    },
                };
                let allowed = match audience {
                    Some(Audience::Preview) => true,
                    Some(Audience::View) => !preview,
                    None => !preview && target.policy == sigma_control::model::Policy::Public,
                };
                if !allowed {
                    return forbidden();
                }
                if let Some(hooks) = &self.hooks {
                    let req = HookRequest {
                        action: "play",
                        live_stream_id: Some(id.clone()),
                        playback_id: Some(pid.to_string()),
                        app: INGEST_APP.to_string(),
                        stream: None,
                        client: Client {
                            ip: remote.ip().to_string(),
                            port: remote.port(),
                        },
                        query: redact_query(parts.uri.query().unwrap_or("")),
                    };
                    if let Decision::Deny(reason) = hooks.decide(&req).await {
                        tracing::info!(playback_id = %pid, %reason, "playback refused by the admission hook");
                        return refuse(StatusCode::FORBIDDEN, format!("forbidden: {reason}"));
                    }
                }
                let prefix =
                    audience.map(|aud| format!("t/{}/", self.control.media_token(pid, aud)));
                if rest == ["player"] {
                    return self.player(pid, &id, prefix.as_deref());
                }
                self.multivariant(&id, prefix.as_deref()).await
            }
            ["t", token, file @ ..] => {
                let Some(aud) = self.control.verify_media_token(pid, token) else {
                    return forbidden();
                };
                if preview && aud != Audience::Preview {
                    return forbidden();
                }
                self.forward(parts, body, &id, file).await
            }
            file => {
                if preview || target.policy != sigma_control::model::Policy::Public {
                    return forbidden();
                }
                self.forward(parts, body, &id, file).await
            }
        }
    }

    async fn multivariant(&self, id: &str, prefix: Option<&str>) -> Response<Body> {
        match self.origin.multivariant(id).await {
            Ok(text) => {
                let body = match prefix {
                    Some(p) => prefix_uris(&String::from_utf8_lossy(&text), p).into(),
                    None => text,
                };
                let mut r = answer(StatusCode::OK, PLAYLIST_TYPE, body);
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(if prefix.is_some() {
                        "private, max-age=2"
                    } else {
                        "public, max-age=2"
                    }),
                );
                r.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                r
            }
            Err(sigma_llhls::origin::Refusal::NotFound) => not_found(),
            Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        }
    }

    fn player(&self, pid: &str, id: &str, prefix: Option<&str>) -> Response<Body> {
        // The playback id and the media token are URL-safe characters only: safe in the page.
        let src = format!("/v/{pid}/{}index.m3u8", prefix.unwrap_or(""));
        let mode = self.registry.mode_of(API_NAMESPACE, id).name();
        let page = PLAYER_HTML
            .replace("{{SRC}}", &src)
            .replace("{{STREAM}}", pid)
            .replace("{{MODE}}", mode);
        let mut r = answer(StatusCode::OK, "text/html; charset=utf-8", page);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }

    /// Serves `file` of live stream `id` from the origin (playlists and media).
    async fn forward<B: Send + 'static>(
        &self,
        mut parts: http::request::Parts,
        body: B,
        id: &str,
        file: &[&str],
    ) -> Response<Body> {
        let mut path = format!("/{id}");
        for f in file {
            path.push('/');
            path.push_str(f);
        }
        let uri = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        parts.uri = match uri.parse::<Uri>() {
            Ok(u) => u,
            Err(_) => return not_found(),
        };
        self.service.handle(Request::from_parts(parts, body)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_playlist_uris_get_the_prefix() {
        let mv = "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
                  #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"audio\",URI=\"audio.m3u8\"\n\
                  #EXT-X-STREAM-INF:BANDWIDTH=1000,AUDIO=\"a\"\nvideo.m3u8\n\n";
        let out = prefix_uris(mv, "t/v1-abc/");
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"audio\",URI=\"t/v1-abc/audio.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1000,AUDIO=\"a\"\nt/v1-abc/video.m3u8\n\n"
        );
    }
}
