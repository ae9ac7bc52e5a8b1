//! The REST API: a hyper service the server mounts on its API listener.
//!
//! Every `/v1` route but `/v1/openapi.json` needs `Authorization: Bearer TOKEN`; write routes
//! need the `write` scope. Bodies are JSON, at most [`MAX_BODY`] bytes, read within
//! [`BODY_TIMEOUT`]. Errors are `{"error": {"code", "message", "field"?}}`.
//! The OpenAPI 3.1 document ([`openapi`]) is generated from the handlers' annotations, and
//! [`ROUTES`] is the router's own table, so a test can check the two agree.

use crate::control::{AuthError, Command, Control, now_ms};
use crate::id::{self, Kind};
use crate::lifecycle::{Input, Status};
use crate::model::*;
use crate::playback::{self};
use crate::store::{ApiTokenRecord, Cursor, Listed, SigningKeyRecord, StoreError};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::IpAddr;
use std::time::Duration;
use utoipa::OpenApi;

/// Largest request body.
pub const MAX_BODY: usize = 64 << 10;
/// Longest time to receive a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The router's table: method and path template of every route it serves.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/live-streams"),
    ("GET", "/v1/live-streams"),
    ("GET", "/v1/live-streams/{id}"),
    ("PATCH", "/v1/live-streams/{id}"),
    ("DELETE", "/v1/live-streams/{id}"),
    ("POST", "/v1/live-streams/{id}/reset-stream-key"),
    ("POST", "/v1/live-streams/{id}/disable"),
    ("POST", "/v1/live-streams/{id}/enable"),
    ("POST", "/v1/live-streams/{id}/complete"),
    ("POST", "/v1/live-streams/{id}/start"),
    ("POST", "/v1/live-streams/{id}/playback-ids"),
    ("DELETE", "/v1/live-streams/{id}/playback-ids/{playback_id}"),
    ("POST", "/v1/signing-keys"),
    ("GET", "/v1/signing-keys"),
    ("GET", "/v1/signing-keys/{id}"),
    ("DELETE", "/v1/signing-keys/{id}"),
    ("POST", "/v1/api-tokens"),
    ("GET", "/v1/api-tokens"),
    ("GET", "/v1/api-tokens/{id}"),
    ("DELETE", "/v1/api-tokens/{id}"),
];

/// The response body type.
pub type Body = Full<Bytes>;

/// An error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error's fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// snake_case code, stable.
    pub code: String,
    /// For humans.
    pub message: String,
    /// JSON path of the offending field, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An API error: status and body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
        field: None,
        retry_after: None,
    }
}

fn not_found(what: &str) -> ApiError {
    err(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such {what}"),
    )
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "store error");
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the store did not answer; retry",
        )
    }
}

impl From<Invalid> for ApiError {
    fn from(i: Invalid) -> Self {
        ApiError {
            field: Some(i.field.to_string()),
            ..err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", i.message)
        }
    }
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl ApiError {
    fn response(self) -> Response<Body> {
        let mut r = json(
            self.status,
            &ErrorBody {
                error: ErrorDetail {
                    code: self.code.into(),
                    message: self.message,
                    field: self.field,
                },
            },
        );
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// A matched route.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    OpenApi,
    CreateStream,
    ListStreams,
    GetStream(&'a str),
    UpdateStream(&'a str),
    DeleteStream(&'a str),
    Action(&'a str, &'a str),
    CreatePlaybackId(&'a str),
    DeletePlaybackId(&'a str, &'a str),
    CreateKey,
    ListKeys,
    GetKey(&'a str),
    DeleteKey(&'a str),
    CreateToken,
    ListTokens,
    GetToken(&'a str),
    DeleteToken(&'a str),
}

impl Route<'_> {
    fn writes(&self) -> bool {
        !matches!(
            self,
            Route::OpenApi
                | Route::ListStreams
                | Route::GetStream(_)
                | Route::ListKeys
                | Route::GetKey(_)
                | Route::ListTokens
                | Route::GetToken(_)
        )
    }
}

/// Matches a request line: `Err(true)` when the path exists with another method (405),
/// `Err(false)` when it does not (404).
fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, bool> {
    match route_exact(method.as_str(), path) {
        Some(r) => Ok(r),
        None => Err(["GET", "POST", "PATCH", "DELETE"]
            .iter()
            .any(|m| route_exact(m, path).is_some())),
    }
}

fn route_exact<'a>(m: &str, path: &'a str) -> Option<Route<'a>> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let r = match (segs.as_slice(), m) {
        (["", "v1", "openapi.json"], "GET") => Route::OpenApi,
        (["", "v1", "live-streams"], "POST") => Route::CreateStream,
        (["", "v1", "live-streams"], "GET") => Route::ListStreams,
        (["", "v1", "live-streams", id], "GET") => Route::GetStream(id),
        (["", "v1", "live-streams", id], "PATCH") => Route::UpdateStream(id),
        (["", "v1", "live-streams", id], "DELETE") => Route::DeleteStream(id),
        (
            [
                "",
                "v1",
                "live-streams",
                id,
                a @ ("reset-stream-key" | "disable" | "enable" | "complete" | "start"),
            ],
            "POST",
        ) => Route::Action(id, a),
        (["", "v1", "live-streams", id, "playback-ids"], "POST") => Route::CreatePlaybackId(id),
        (["", "v1", "live-streams", id, "playback-ids", p], "DELETE") => {
            Route::DeletePlaybackId(id, p)
        }
        (["", "v1", "signing-keys"], "POST") => Route::CreateKey,
        (["", "v1", "signing-keys"], "GET") => Route::ListKeys,
        (["", "v1", "signing-keys", id], "GET") => Route::GetKey(id),
        (["", "v1", "signing-keys", id], "DELETE") => Route::DeleteKey(id),
        (["", "v1", "api-tokens"], "POST") => Route::CreateToken,
        (["", "v1", "api-tokens"], "GET") => Route::ListTokens,
        (["", "v1", "api-tokens", id], "GET") => Route::GetToken(id),
        (["", "v1", "api-tokens", id], "DELETE") => Route::DeleteToken(id),
        _ => return None,
    };
    Some(r)
}

/// The REST service; cheap to clone.
#[derive(Clone)]
pub struct Api {
    control: Control,
}

struct Query {
    limit: u32,
    cursor: Option<Cursor>,
}

fn list_query(q: Option<&str>) -> Result<Query, ApiError> {
    let mut out = Query {
        limit: 25,
        cursor: None,
    };
    for (k, v) in form_pairs(q.unwrap_or("")) {
        match k.as_str() {
            "limit" => {
                out.limit = match v.parse::<u32>() {
                    Ok(n) if (1..=100).contains(&n) => n,
                    _ => {
                        return Err(ApiError {
                            field: Some("limit".into()),
                            ..err(
                                StatusCode::BAD_REQUEST,
                                "invalid_query",
                                "limit is 1 to 100",
                            )
                        });
                    }
                }
            }
            "cursor" => {
                out.cursor = Some(Cursor::decode(&v).ok_or_else(|| ApiError {
                    field: Some("cursor".into()),
                    ..err(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        "not a cursor from next_cursor",
                    )
                })?)
            }
            _ => {
                return Err(ApiError {
                    field: Some(k.clone()),
                    ..err(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        format!("unknown query parameter {k:?}"),
                    )
                });
            }
        }
    }
    Ok(out)
}

fn form_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn page<T, R: Listed>(rows: Vec<R>, limit: u32, show: impl Fn(R) -> T) -> List<T> {
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.cursor().encode()))
        .flatten();
    List {
        data: rows.into_iter().map(show).collect(),
        next_cursor,
    }
}

async fn read_body<B>(body: B) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Err(_) => Err(err(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the body did not arrive in time",
        )),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(err(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "bodies are at most 64 KiB",
                ))
            } else {
                Err(err(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    "the body could not be read",
                ))
            }
        }
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// Parses a JSON body strictly: 400 for malformed JSON, 422 with the field for wrong types,
/// unknown fields and bad enum values. An empty body is `{}`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let r: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match r {
        Ok(v) => {
            if de.end().is_err() {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "trailing characters after the JSON value",
                ));
            }
            Ok(v)
        }
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(err(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    inner.to_string(),
                ))
            } else {
                Err(ApiError {
                    field: (path != ".").then_some(path),
                    ..err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_field",
                        inner.to_string(),
                    )
                })
            }
        }
    }
}

impl Api {
    /// The API over `control`.
    pub fn new(control: Control) -> Self {
        Api { control }
    }

    /// Answers one request from `remote`.
    pub async fn handle<B>(&self, req: Request<B>, remote: IpAddr) -> Response<Body>
    where
        B: hyper::body::Body + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        match self.answer(req, remote).await {
            Ok(r) => r,
            Err(e) => e.response(),
        }
    }

    async fn answer<B>(&self, req: Request<B>, remote: IpAddr) -> Result<Response<Body>, ApiError>
    where
        B: hyper::body::Body + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().map(str::to_string);
        let r = match route(&parts.method, &path) {
            Ok(r) => r,
            Err(true) => {
                return Err(err(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "method not allowed on this path",
                ));
            }
            Err(false) => return Err(err(StatusCode::NOT_FOUND, "not_found", "no such route")),
        };
        if r == Route::OpenApi {
            let mut resp = Response::new(Full::new(Bytes::from(openapi_json())));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(resp);
        }
        let token = crate::auth::bearer(
            parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        );
        let scopes = match self.control.authenticate(token, remote).await {
            Ok(s) => s,
            Err(AuthError::Unauthorized) => {
                return Err(err(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a valid API token is required: Authorization: Bearer TOKEN",
                ));
            }
            Err(AuthError::Limited(wait)) => {
                return Err(ApiError {
                    retry_after: Some(wait.as_secs().max(1)),
                    ..err(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        "too many failed attempts from this address",
                    )
                });
            }
            Err(AuthError::Unavailable) => {
                return Err(err(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store did not answer; retry",
                ));
            }
        };
        if r.writes() && !scopes.contains(&Scope::Write) {
            return Err(err(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token may only read",
            ));
        }
        // Read (bounded, timed) on every route; routes without a body ignore it.
        let bytes = read_body(body).await?;
        let q = query.as_deref();
        let no_query = || -> Result<(), ApiError> {
            match q {
                Some(q) if !q.is_empty() => Err(err(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    "this route takes no query",
                )),
                _ => Ok(()),
            }
        };
        match r {
            Route::OpenApi => unreachable_route(),
            Route::CreateStream => {
                no_query()?;
                let body: CreateLiveStream = parse_json(&bytes)?;
                self.create_stream(body).await
            }
            Route::ListStreams => {
                let q = list_query(q)?;
                let rows = self
                    .control
                    .store()
                    .live_streams(q.cursor.as_ref(), q.limit)
                    .await?;
                Ok(json(StatusCode::OK, &page(rows, q.limit, |s| self.show(s))))
            }
            Route::GetStream(id) => {
                no_query()?;
                let s = self.stream(id).await?;
                Ok(json(StatusCode::OK, &self.show(s)))
            }
            Route::UpdateStream(id) => {
                no_query()?;
                let body: UpdateLiveStream = parse_json(&bytes)?;
                self.update_stream(id, body).await
            }
            Route::DeleteStream(id) => {
                no_query()?;
                let s = self.stream(id).await?;
                let live = self.control.status_of(&s).0.is_live();
                self.control.store().delete_live_stream(&s.id).await?;
                if live {
                    self.control.send(Command::EndBroadcast {
                        live_stream_id: s.id.clone(),
                    });
                }
                for p in &s.playback_ids {
                    self.control.invalidate_playback(&p.id);
                }
                self.control.forget(&s.id);
                Ok(no_content())
            }
            Route::Action(id, action) => {
                no_query()?;
                self.action(id, action).await
            }
            Route::CreatePlaybackId(id) => {
                no_query()?;
                let body: CreatePlaybackId = parse_json(&bytes)?;
                let s = self.stream(id).await?;
                let p = PlaybackId {
                    id: self.control.with_rng(|r| id::new_id(Kind::PlaybackId, r)),
                    policy: body.policy,
                };
                self.control
                    .store()
                    .insert_playback_id(&s.id, &p, now_ms())
                    .await?;
                self.control.invalidate_playback(&p.id);
                Ok(json(StatusCode::CREATED, &p))
            }
            Route::DeletePlaybackId(id, pid) => {
                no_query()?;
                let s = self.stream(id).await?;
                if !Kind::PlaybackId.matches(pid)
                    || !self.control.store().delete_playback_id(&s.id, pid).await?
                {
                    return Err(not_found("playback id"));
                }
                self.control.invalidate_playback(pid);
                Ok(no_content())
            }
            Route::CreateKey => {
                no_query()?;
                let (pem, public) = self
                    .control
                    .with_rng(|r| playback::new_signing_key(r))
                    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
                let rec = SigningKeyRecord {
                    id: self.control.with_rng(|r| id::new_id(Kind::SigningKey, r)),
                    public_key: public,
                    created_at: now_ms(),
                };
                self.control.store().insert_signing_key(&rec).await?;
                self.control.invalidate_key(&rec.id);
                Ok(json(
                    StatusCode::CREATED,
                    &NewSigningKey {
                        id: rec.id,
                        algorithm: "EdDSA".into(),
                        created_at: rfc3339(rec.created_at),
                        private_key: pem,
                    },
                ))
            }
            Route::ListKeys => {
                let q = list_query(q)?;
                let rows = self
                    .control
                    .store()
                    .signing_keys(q.cursor.as_ref(), q.limit)
                    .await?;
                Ok(json(StatusCode::OK, &page(rows, q.limit, show_key)))
            }
            Route::GetKey(id) => {
                no_query()?;
                let k = match Kind::SigningKey.matches(id) {
                    true => self.control.store().signing_key(id).await?,
                    false => None,
                };
                Ok(json(
                    StatusCode::OK,
                    &show_key(k.ok_or_else(|| not_found("signing key"))?),
                ))
            }
            Route::DeleteKey(id) => {
                no_query()?;
                if !Kind::SigningKey.matches(id)
                    || !self.control.store().delete_signing_key(id).await?
                {
                    return Err(not_found("signing key"));
                }
                self.control.invalidate_key(id);
                Ok(no_content())
            }
            Route::CreateToken => {
                no_query()?;
                let body: CreateApiToken = parse_json(&bytes)?;
                let scopes = Rules {
                    ladders: &self.control.config().ladders,
                }
                .api_token(&body)?;
                let token = self.control.with_rng(|r| id::new_api_token(r));
                let rec = ApiTokenRecord {
                    id: self.control.with_rng(|r| id::new_id(Kind::ApiToken, r)),
                    name: body.name,
                    scopes,
                    token_hash: id::digest(&token),
                    created_at: now_ms(),
                };
                self.control.store().insert_api_token(&rec).await?;
                Ok(json(
                    StatusCode::CREATED,
                    &NewApiToken {
                        id: rec.id,
                        name: rec.name,
                        scopes: rec.scopes,
                        created_at: rfc3339(rec.created_at),
                        token,
                    },
                ))
            }
            Route::ListTokens => {
                let q = list_query(q)?;
                let rows = self
                    .control
                    .store()
                    .api_tokens(q.cursor.as_ref(), q.limit)
                    .await?;
                Ok(json(StatusCode::OK, &page(rows, q.limit, show_token)))
            }
            Route::GetToken(id) => {
                no_query()?;
                let t = match Kind::ApiToken.matches(id) {
                    true => self.control.store().api_token(id).await?,
                    false => None,
                };
                Ok(json(
                    StatusCode::OK,
                    &show_token(t.ok_or_else(|| not_found("API token"))?),
                ))
            }
            Route::DeleteToken(id) => {
                no_query()?;
                if !Kind::ApiToken.matches(id) || !self.control.store().delete_api_token(id).await?
                {
                    return Err(not_found("API token"));
                }
                Ok(no_content())
            }
        }
    }

    async fn stream(&self, id: &str) -> Result<LiveStreamRecord, ApiError> {
        if !Kind::LiveStream.matches(id) {
            return Err(not_found("live stream"));
        }
        self.control
            .store()
            .live_stream(id)
            .await?
            .ok_or_else(|| not_found("live stream"))
    }

    /// The resource as the API shows it.
    pub fn show(&self, s: LiveStreamRecord) -> LiveStream {
        let c = self.control.config();
        let (status, changed) = self.control.status_of(&s);
        let playback = s.playback_ids.first().map(|p| Playback {
            hls: format!("{}/v/{}/index.m3u8", c.http_base, p.id),
            player: format!("{}/v/{}/player", c.http_base, p.id),
        });
        LiveStream {
            ingest: Ingest {
                rtmp: format!("{}/{}", c.rtmp_base, s.stream_key),
            },
            id: s.id,
            name: s.name,
            status,
            status_changed_at: rfc3339(changed),
            stream_key: s.stream_key,
            latency_mode: s.latency_mode,
            playback_policy: s.playback_policy,
            reconnect_window: s.reconnect_window,
            auto_start: s.auto_start,
            ladder: s.ladder,
            metadata: s.metadata,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
            playback_ids: s.playback_ids,
            playback,
        }
    }

    async fn create_stream(&self, body: CreateLiveStream) -> Result<Response<Body>, ApiError> {
        let c = self.control.config();
        Rules {
            ladders: &c.ladders,
        }
        .create(&body)?;
        let now = now_ms();
        let policy = body.playback_policy.unwrap_or(Policy::Public);
        let mut rec = LiveStreamRecord {
            id: String::new(),
            name: body.name.unwrap_or_default(),
            stream_key: String::new(),
            status: Status::Idle,
            status_changed_at: now,
            latency_mode: body.latency_mode.unwrap_or(c.default_latency),
            playback_policy: policy,
            reconnect_window: body.reconnect_window.unwrap_or(DEFAULT_RECONNECT_WINDOW),
            auto_start: body.auto_start.unwrap_or(true),
            ladder: body.ladder,
            metadata: body.metadata.unwrap_or_default(),
            created_at: now,
            updated_at: now,
            playback_ids: Vec::new(),
        };
        // A collision of 128-bit ids or 192-bit keys is not expected; retry once anyway.
        for attempt in 0..2 {
            rec.id = self.control.with_rng(|r| id::new_id(Kind::LiveStream, r));
            rec.stream_key = self.control.with_rng(|r| id::new_stream_key(r));
            rec.playback_ids = vec![PlaybackId {
                id: self.control.with_rng(|r| id::new_id(Kind::PlaybackId, r)),
                policy,
            }];
            match self.control.store().insert_live_stream(&rec).await {
                Ok(()) => break,
                Err(StoreError::Conflict(_)) if attempt == 0 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(live_stream = %rec.id, "live stream created");
        Ok(json(StatusCode::CREATED, &self.show(rec)))
    }

    async fn update_stream(
        &self,
        id: &str,
        body: UpdateLiveStream,
    ) -> Result<Response<Body>, ApiError> {
        Rules {
            ladders: &self.control.config().ladders,
        }
        .update(&body)?;
        let mut s = self.stream(id).await?;
        if let Some(n) = body.name {
            s.name = n;
        }
        if let Some(m) = body.latency_mode {
            s.latency_mode = m;
        }
        if let Some(w) = body.reconnect_window {
            s.reconnect_window = w;
        }
        if let Some(a) = body.auto_start {
            s.auto_start = a;
        }
        if let Some(l) = body.ladder {
            s.ladder = l;
        }
        if let Some(m) = body.metadata {
            s.metadata = m;
        }
        s.updated_at = now_ms();
        if !self.control.store().update_live_stream(&s).await? {
            return Err(not_found("live stream"));
        }
        Ok(json(StatusCode::OK, &self.show(s)))
    }

    async fn action(&self, id: &str, action: &str) -> Result<Response<Body>, ApiError> {
        let mut s = self.stream(id).await?;
        let input = match action {
            "reset-stream-key" => {
                let key = self.control.with_rng(|r| id::new_stream_key(r));
                self.control
                    .store()
                    .set_stream_key(&s.id, &key, now_ms())
                    .await?;
                s.stream_key = key;
                // The old key stops working at once (admission reads the store); a publisher
                // on it is disconnected, and may come back with the new key.
                if self.control.status_of(&s).0.is_live() {
                    self.control.send(Command::DisconnectPublisher {
                        live_stream_id: s.id.clone(),
                    });
                }
                tracing::info!(live_stream = %s.id, "stream key reset");
                return Ok(json(StatusCode::OK, &self.show(s)));
            }
            "disable" => Input::Disable,
            "enable" => Input::Enable,
            "complete" => Input::Complete,
            "start" => Input::Start,
            _ => return Err(not_found("action")),
        };
        match self.control.apply(&s, input) {
            Ok(_) => Ok(json(StatusCode::OK, &self.show(s))),
            Err(r) => Err(err(
                StatusCode::CONFLICT,
                "invalid_state",
                format!("cannot {action} a live stream that is {}", r.status),
            )),
        }
    }
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn show_key(k: SigningKeyRecord) -> SigningKey {
    SigningKey {
        id: k.id,
        algorithm: "EdDSA".into(),
        created_at: rfc3339(k.created_at),
    }
}

fn show_token(t: ApiTokenRecord) -> ApiToken {
    ApiToken {
        id: t.id,
        name: t.name,
        scopes: t.scopes,
        created_at: rfc3339(t.created_at),
    }
}

#[cold]
fn unreachable_route() -> Result<Response<Body>, ApiError> {
    Err(err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "route handled earlier",
    ))
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::openapi::ApiDoc::openapi()
}

fn openapi_json() -> String {
    openapi().to_pretty_json().unwrap_or_default()
}
