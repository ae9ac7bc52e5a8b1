//! The REST API: a hyper service the server mounts on its API listener.
//!
//! Every `/v1` route but `/v1/openapi.json` needs `Authorization: Bearer TOKEN`; write routes
//! need the `write` scope. Bodies are JSON, at most [`MAX_BODY`] bytes, read within
//! [`BODY_TIMEOUT`]. Errors are `{"error": {"code", "message", "field"?}}`.
//! The OpenAPI 3.1 document ([`openapi`]) is generated from the handlers' annotations, and
//! [`ROUTES`] is the router's own table, so a test can check the two agree.

use crate::control::{AuthError, Command, Control, now_ms};
use crate::events::{Event, EventRecord, NewEvent};
use crate::id::{self, Kind};
use crate::lifecycle::{Input, Status};
use crate::model::*;
use crate::playback::{self};
use crate::simulcast::{
    CreateSimulcastTarget, SimulcastTarget, TargetList, TargetRecord, TargetStatus,
};
use crate::store::EventFilter;
use crate::store::{
    ApiTokenRecord, AttemptRecord, Cursor, Listed, SigningKeyRecord, StoreError, WebhookRecord,
};
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
    ("POST", "/v1/live-streams/{id}/kick"),
    ("POST", "/v1/live-streams/{id}/playback-ids"),
    ("DELETE", "/v1/live-streams/{id}/playback-ids/{playback_id}"),
    ("POST", "/v1/live-streams/{id}/simulcast-targets"),
    ("GET", "/v1/live-streams/{id}/simulcast-targets"),
    ("GET", "/v1/live-streams/{id}/simulcast-targets/{target_id}"),
    (
        "DELETE",
        "/v1/live-streams/{id}/simulcast-targets/{target_id}",
    ),
    ("POST", "/v1/signing-keys"),
    ("GET", "/v1/signing-keys"),
    ("GET", "/v1/signing-keys/{id}"),
    ("DELETE", "/v1/signing-keys/{id}"),
    ("POST", "/v1/api-tokens"),
    ("GET", "/v1/api-tokens"),
    ("GET", "/v1/api-tokens/{id}"),
    ("DELETE", "/v1/api-tokens/{id}"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/stream"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{id}"),
    ("PATCH", "/v1/webhooks/{id}"),
    ("DELETE", "/v1/webhooks/{id}"),
    ("POST", "/v1/webhooks/{id}/rotate-secret"),
    ("GET", "/v1/webhooks/{id}/deliveries"),
    ("POST", "/v1/webhooks/{id}/replay"),
];

/// The response body type.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

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
    let mut r = Response::new(full(body));
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
    CreateTarget(&'a str),
    ListTargets(&'a str),
    GetTarget(&'a str, &'a str),
    DeleteTarget(&'a str, &'a str),
    CreateKey,
    ListKeys,
    GetKey(&'a str),
    DeleteKey(&'a str),
    CreateToken,
    ListTokens,
    GetToken(&'a str),
    DeleteToken(&'a str),
    ListEvents,
    StreamEvents,
    CreateWebhook,
    ListWebhooks,
    GetWebhook(&'a str),
    UpdateWebhook(&'a str),
    DeleteWebhook(&'a str),
    RotateWebhook(&'a str),
    WebhookDeliveries(&'a str),
    ReplayWebhook(&'a str),
}

impl Route<'_> {
    fn writes(&self) -> bool {
        !matches!(
            self,
            Route::OpenApi
                | Route::ListStreams
                | Route::GetStream(_)
                | Route::ListTargets(_)
                | Route::GetTarget(_, _)
                | Route::ListKeys
                | Route::GetKey(_)
                | Route::ListTokens
                | Route::GetToken(_)
                | Route::ListEvents
                | Route::StreamEvents
                | Route::ListWebhooks
                | Route::GetWebhook(_)
                | Route::WebhookDeliveries(_)
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
                a @ ("reset-stream-key" | "disable" | "enable" | "complete" | "start" | "kick"),
            ],
            "POST",
        ) => Route::Action(id, a),
        (["", "v1", "live-streams", id, "playback-ids"], "POST") => Route::CreatePlaybackId(id),
        (["", "v1", "live-streams", id, "playback-ids", p], "DELETE") => {
            Route::DeletePlaybackId(id, p)
        }
        (["", "v1", "live-streams", id, "simulcast-targets"], "POST") => Route::CreateTarget(id),
        (["", "v1", "live-streams", id, "simulcast-targets"], "GET") => Route::ListTargets(id),
        (["", "v1", "live-streams", id, "simulcast-targets", t], "GET") => Route::GetTarget(id, t),
        (["", "v1", "live-streams", id, "simulcast-targets", t], "DELETE") => {
            Route::DeleteTarget(id, t)
        }
        (["", "v1", "signing-keys"], "POST") => Route::CreateKey,
        (["", "v1", "signing-keys"], "GET") => Route::ListKeys,
        (["", "v1", "signing-keys", id], "GET") => Route::GetKey(id),
        (["", "v1", "signing-keys", id], "DELETE") => Route::DeleteKey(id),
        (["", "v1", "api-tokens"], "POST") => Route::CreateToken,
        (["", "v1", "api-tokens"], "GET") => Route::ListTokens,
        (["", "v1", "api-tokens", id], "GET") => Route::GetToken(id),
        (["", "v1", "api-tokens", id], "DELETE") => Route::DeleteToken(id),
        (["", "v1", "events"], "GET") => Route::ListEvents,
        (["", "v1", "events", "stream"], "GET") => Route::StreamEvents,
        (["", "v1", "webhooks"], "POST") => Route::CreateWebhook,
        (["", "v1", "webhooks"], "GET") => Route::ListWebhooks,
        (["", "v1", "webhooks", id], "GET") => Route::GetWebhook(id),
        (["", "v1", "webhooks", id], "PATCH") => Route::UpdateWebhook(id),
        (["", "v1", "webhooks", id], "DELETE") => Route::DeleteWebhook(id),
        (["", "v1", "webhooks", id, "rotate-secret"], "POST") => Route::RotateWebhook(id),
        (["", "v1", "webhooks", id, "deliveries"], "GET") => Route::WebhookDeliveries(id),
        (["", "v1", "webhooks", id, "replay"], "POST") => Route::ReplayWebhook(id),
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
            let mut resp = Response::new(full(openapi_json()));
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
                self.control.flush().await;
                let event = self
                    .control
                    .resource_event("live_stream.deleted", &self.show(s.clone()));
                if !self
                    .control
                    .store()
                    .delete_live_stream(&s.id, &event)
                    .await?
                {
                    return Err(not_found("live stream"));
                }
                self.control.note_appended();
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
                let mut s = self.stream(id).await?;
                let p = PlaybackId {
                    id: self.control.with_rng(|r| id::new_id(Kind::PlaybackId, r)),
                    policy: body.policy,
                };
                let sid = s.id.clone();
                s.playback_ids.push(p.clone());
                self.control.flush().await;
                let event = self
                    .control
                    .resource_event("live_stream.updated", &self.show(s));
                self.control
                    .store()
                    .insert_playback_id(&sid, &p, now_ms(), &event)
                    .await?;
                self.control.note_appended();
                self.control.invalidate_playback(&p.id);
                Ok(json(StatusCode::CREATED, &p))
            }
            Route::CreateTarget(id) => {
                no_query()?;
                let body: CreateSimulcastTarget = parse_json(&bytes)?;
                self.create_target(id, body).await
            }
            Route::ListTargets(id) => {
                no_query()?;
                let s = self.stream(id).await?;
                let live = self.control.status_of(&s).0.is_live();
                let data = self
                    .control
                    .store()
                    .simulcast_targets(&s.id)
                    .await?
                    .iter()
                    .map(|t| show_target(t, live, false))
                    .collect();
                Ok(json(StatusCode::OK, &TargetList { data }))
            }
            Route::GetTarget(id, tid) => {
                no_query()?;
                let (s, t) = self.target(id, tid).await?;
                let live = self.control.status_of(&s).0.is_live();
                Ok(json(StatusCode::OK, &show_target(&t, live, false)))
            }
            Route::DeleteTarget(id, tid) => {
                no_query()?;
                let (s, mut t) = self.target(id, tid).await?;
                // A target being pushed to says it stopped, in the same transaction.
                let pushing = self.control.forget_target(&t.id).is_some()
                    || (self.control.status_of(&s).0.is_live() && t.status != TargetStatus::Idle);
                let event = pushing.then(|| {
                    t.status = TargetStatus::Idle;
                    t.error = None;
                    t.status_changed_at = now_ms();
                    NewEvent {
                        id: self.control.with_rng(|r| id::new_id(Kind::Event, r)),
                        kind: TargetStatus::Idle.event(),
                        object_type: "simulcast_target",
                        object_id: t.id.clone(),
                        at: t.status_changed_at,
                        data: crate::simulcast::target_data(&t),
                    }
                });
                self.control.flush().await;
                if !self
                    .control
                    .store()
                    .delete_simulcast_target(&s.id, &t.id, event.as_ref())
                    .await?
                {
                    return Err(not_found("simulcast target"));
                }
                if event.is_some() {
                    self.control.note_appended();
                }
                self.control.send(Command::SimulcastChanged {
                    live_stream_id: s.id.clone(),
                });
                tracing::info!(live_stream = %s.id, simulcast_target = %t.id, "simulcast target deleted");
                Ok(no_content())
            }
            Route::DeletePlaybackId(id, pid) => {
                no_query()?;
                let mut s = self.stream(id).await?;
                if !Kind::PlaybackId.matches(pid) {
                    return Err(not_found("playback id"));
                }
                let sid = s.id.clone();
                s.playback_ids.retain(|p| p.id != *pid);
                self.control.flush().await;
                let event = self
                    .control
                    .resource_event("live_stream.updated", &self.show(s));
                if !self
                    .control
                    .store()
                    .delete_playback_id(&sid, pid, &event)
                    .await?
                {
                    return Err(not_found("playback id"));
                }
                self.control.note_appended();
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
            Route::ListEvents => {
                let q = self.event_query(q, None).await?;
                let page = self
                    .control
                    .store()
                    .events(&q.filter, q.after, q.limit)
                    .await?;
                let list = List {
                    data: page
                        .events
                        .iter()
                        .map(EventRecord::show)
                        .collect::<Vec<Event>>(),
                    next_cursor: page.more.then(|| event_cursor(page.last)),
                };
                Ok(json(StatusCode::OK, &list))
            }
            Route::CreateWebhook => {
                no_query()?;
                let body: CreateWebhook = parse_json(&bytes)?;
                self.create_webhook(body).await
            }
            Route::ListWebhooks => {
                let q = list_query(q)?;
                let rows = self
                    .control
                    .store()
                    .webhooks(q.cursor.as_ref(), q.limit)
                    .await?;
                Ok(json(
                    StatusCode::OK,
                    &page(rows, q.limit, |w| show_webhook(w, false)),
                ))
            }
            Route::GetWebhook(id) => {
                no_query()?;
                Ok(json(
                    StatusCode::OK,
                    &show_webhook(self.webhook(id).await?, false),
                ))
            }
            Route::UpdateWebhook(id) => {
                no_query()?;
                let body: UpdateWebhook = parse_json(&bytes)?;
                self.update_webhook(id, body).await
            }
            Route::DeleteWebhook(id) => {
                no_query()?;
                let w = self.webhook(id).await?;
                if !self.control.store().delete_webhook(&w.id).await? {
                    return Err(not_found("webhook"));
                }
                tracing::info!(webhook = %w.id, "webhook deleted");
                Ok(no_content())
            }
            Route::RotateWebhook(id) => {
                no_query()?;
                let mut w = self.webhook(id).await?;
                let now = now_ms();
                let old = std::mem::replace(
                    &mut w.secret,
                    self.control.with_rng(|r| crate::webhooks::new_secret(r)),
                );
                w.previous = Some((
                    old,
                    now + crate::webhooks::ROTATION_OVERLAP.as_millis() as i64,
                ));
                w.updated_at = now;
                if !self.control.store().update_webhook(&w).await? {
                    return Err(not_found("webhook"));
                }
                tracing::info!(webhook = %w.id, "webhook secret rotated");
                Ok(json(StatusCode::OK, &show_webhook(w, true)))
            }
            Route::WebhookDeliveries(id) => {
                let w = self.webhook(id).await?;
                let q = list_query(q)?;
                let before = q
                    .cursor
                    .as_ref()
                    .and_then(|c| attempt_cursor(&c.id).map(|(p, a)| (c.created_at, p, a)));
                if q.cursor.is_some() && before.is_none() {
                    return Err(ApiError {
                        field: Some("cursor".into()),
                        ..err(
                            StatusCode::BAD_REQUEST,
                            "invalid_query",
                            "not a cursor from next_cursor",
                        )
                    });
                }
                let rows = self
                    .control
                    .store()
                    .attempts(&w.id, before, q.limit)
                    .await?;
                let next_cursor = (rows.len() == q.limit as usize)
                    .then(|| {
                        rows.last().map(|r| {
                            Cursor {
                                created_at: r.at,
                                id: format!("{}.{}", r.position, r.attempt),
                            }
                            .encode()
                        })
                    })
                    .flatten();
                let list = List {
                    data: rows.into_iter().map(show_attempt).collect::<Vec<_>>(),
                    next_cursor,
                };
                Ok(json(StatusCode::OK, &list))
            }
            Route::ReplayWebhook(id) => {
                no_query()?;
                let body: ReplayWebhook = parse_json(&bytes)?;
                let since = parse_rfc3339(&body.since).ok_or_else(|| ApiError {
                    field: Some("since".into()),
                    ..err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_field",
                        "an RFC 3339 time",
                    )
                })?;
                let w = self.webhook(id).await?;
                let queued = self.control.store().replay(&w, since, now_ms()).await?;
                self.control.note_appended();
                tracing::info!(webhook = %w.id, queued, "webhook replay");
                Ok(json(StatusCode::ACCEPTED, &Replayed { queued }))
            }
            Route::StreamEvents => {
                let last_id = parts
                    .headers
                    .get("last-event-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let q = self.event_query(q, last_id.as_deref()).await?;
                Ok(sse(self.control.clone(), q.filter, q.after))
            }
        }
    }

    async fn webhook(&self, id: &str) -> Result<WebhookRecord, ApiError> {
        if !Kind::Webhook.matches(id) {
            return Err(not_found("webhook"));
        }
        self.control
            .store()
            .webhook(id)
            .await?
            .ok_or_else(|| not_found("webhook"))
    }

    /// Refuses a target that is malformed or, unless private targets are allowed, that is or
    /// resolves to a non-public address. (A name that does not resolve now is accepted: the
    /// delivery client checks every address it connects to.)
    async fn check_target(&self, url: &str) -> Result<(), ApiError> {
        let u = crate::webhooks::check_url(url).map_err(|e| ApiError {
            field: Some("url".into()),
            ..err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                e.to_string(),
            )
        })?;
        if self.control.config().webhooks.allow_private {
            return Ok(());
        }
        let private = || ApiError {
            field: Some("url".into()),
            ..err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "private_target",
                "the URL is on a loopback, private or link-local address (allow_private_targets permits it)",
            )
        };
        if crate::delivery::literal_private(&u) {
            return Err(private());
        }
        if let Some(url::Host::Domain(host)) = u.host() {
            let port = u.port_or_known_default().unwrap_or(443);
            let lookup = tokio::net::lookup_host((host, port));
            if let Ok(Ok(addrs)) = tokio::time::timeout(Duration::from_secs(2), lookup).await {
                if addrs
                    .into_iter()
                    .any(|a| !crate::webhooks::is_public(a.ip()))
                {
                    return Err(private());
                }
            }
        }
        Ok(())
    }

    async fn create_webhook(&self, body: CreateWebhook) -> Result<Response<Body>, ApiError> {
        check_webhook_fields(body.event_types.as_deref(), body.description.as_deref())?;
        self.check_target(&body.url).await?;
        let now = now_ms();
        let w = WebhookRecord {
            id: self.control.with_rng(|r| id::new_id(Kind::Webhook, r)),
            url: body.url,
            description: body.description.unwrap_or_default(),
            event_types: body.event_types.unwrap_or_else(|| vec!["*".into()]),
            secret: self.control.with_rng(|r| crate::webhooks::new_secret(r)),
            previous: None,
            status: "enabled".into(),
            created_at: now,
            updated_at: now,
        };
        self.control.store().insert_webhook(&w).await?;
        tracing::info!(webhook = %w.id, "webhook created");
        Ok(json(StatusCode::CREATED, &show_webhook(w, true)))
    }

    async fn update_webhook(
        &self,
        id: &str,
        body: UpdateWebhook,
    ) -> Result<Response<Body>, ApiError> {
        check_webhook_fields(body.event_types.as_deref(), body.description.as_deref())?;
        let mut w = self.webhook(id).await?;
        if let Some(u) = body.url {
            self.check_target(&u).await?;
            w.url = u;
        }
        if let Some(t) = body.event_types {
            w.event_types = t;
        }
        if let Some(d) = body.description {
            w.description = d;
        }
        match body.enabled {
            Some(false) => w.status = "disabled".into(),
            Some(true) if w.status == "disabled" => w.status = "enabled".into(),
            _ => {}
        }
        w.updated_at = now_ms();
        if !self.control.store().update_webhook(&w).await? {
            return Err(not_found("webhook"));
        }
        self.control.note_appended(); // an enabled endpoint's pending deliveries resume
        Ok(json(StatusCode::OK, &show_webhook(w, false)))
    }

    /// The query of the event routes: `object_id`, `type` (repeatable or comma-separated,
    /// wildcards such as `live_stream.*`), `after` (an event id, or `now` for the end of the
    /// log; or, for the SSE stream, the `Last-Event-ID` header, which wins), `cursor` and
    /// `limit`.
    async fn event_query(
        &self,
        q: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<EventQuery, ApiError> {
        let bad = |field: &str, message: String| ApiError {
            field: Some(field.to_string()),
            ..err(StatusCode::BAD_REQUEST, "invalid_query", message)
        };
        let mut out = EventQuery {
            filter: EventFilter::default(),
            after: 0,
            limit: 25,
        };
        let mut after_id: Option<String> = None;
        for (k, v) in form_pairs(q.unwrap_or("")) {
            match k.as_str() {
                "object_id" => {
                    if !Kind::LiveStream.matches(&v) && !Kind::SimulcastTarget.matches(&v) {
                        return Err(bad("object_id", format!("not an object id: {v:?}")));
                    }
                    out.filter.object_id = Some(v);
                }
                "type" => {
                    for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                        if !crate::events::valid_type_pattern(t) {
                            return Err(bad("type", format!("unknown event type {t:?}")));
                        }
                        out.filter.types.push(t.to_string());
                    }
                }
                "after" => after_id = Some(v),
                "cursor" => {
                    out.after = parse_event_cursor(&v)
                        .ok_or_else(|| bad("cursor", "not a cursor from next_cursor".into()))?;
                }
                "limit" => {
                    out.limit = match v.parse::<u32>() {
                        Ok(n) if (1..=100).contains(&n) => n,
                        _ => return Err(bad("limit", "limit is 1 to 100".into())),
                    }
                }
                _ => return Err(bad(&k, format!("unknown query parameter {k:?}"))),
            }
        }
        if let Some(id) = last_event_id.map(str::to_string).or(after_id) {
            let field = if last_event_id.is_some() {
                "Last-Event-ID"
            } else {
                "after"
            };
            let position = if id == "now" && last_event_id.is_none() {
                Some(self.control.store().last_event_position().await?)
            } else if Kind::Event.matches(&id) {
                self.control.store().event_position(&id).await?
            } else {
                None
            };
            out.after = out
                .after
                .max(position.ok_or_else(|| bad(field, format!("no event {id:?}")))?);
        }
        Ok(out)
    }

    async fn target(
        &self,
        id: &str,
        target_id: &str,
    ) -> Result<(LiveStreamRecord, TargetRecord), ApiError> {
        let s = self.stream(id).await?;
        if !Kind::SimulcastTarget.matches(target_id) {
            return Err(not_found("simulcast target"));
        }
        match self.control.store().simulcast_target(target_id).await? {
            Some(t) if t.live_stream_id == s.id => Ok((s, t)),
            _ => Err(not_found("simulcast target")),
        }
    }

    async fn create_target(
        &self,
        id: &str,
        body: CreateSimulcastTarget,
    ) -> Result<Response<Body>, ApiError> {
        let invalid = |e: crate::simulcast::TargetError| ApiError {
            field: Some(e.field().into()),
            ..err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                e.to_string(),
            )
        };
        let (host, port) = crate::simulcast::check(&body).map_err(invalid)?;
        let s = self.stream(id).await?;
        if !self.control.config().simulcast_allow_private && !public_host(&host, port).await {
            return Err(ApiError {
                field: Some("url".into()),
                ..err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "private_target",
                    "the URL is on a loopback, private or link-local address (allow_private_targets in [simulcast] permits it)",
                )
            });
        }
        let now = now_ms();
        let t = TargetRecord {
            id: self
                .control
                .with_rng(|r| id::new_id(Kind::SimulcastTarget, r)),
            live_stream_id: s.id.clone(),
            url: body.url.trim_end_matches('/').to_string(),
            stream_key: body.stream_key,
            status: TargetStatus::Idle,
            error: None,
            status_changed_at: now,
            created_at: now,
        };
        if !self
            .control
            .store()
            .insert_simulcast_target(&t, crate::simulcast::MAX_TARGETS)
            .await?
        {
            return Err(err(
                StatusCode::CONFLICT,
                "too_many_targets",
                format!(
                    "a live stream has at most {} simulcast targets",
                    crate::simulcast::MAX_TARGETS
                ),
            ));
        }
        tracing::info!(live_stream = %s.id, simulcast_target = %t.id, "simulcast target created");
        // An active stream starts pushing to it now.
        self.control.send(Command::SimulcastChanged {
            live_stream_id: s.id.clone(),
        });
        Ok(json(StatusCode::CREATED, &show_target(&t, false, true)))
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
        self.control.view(s)
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
            let event = self
                .control
                .resource_event("live_stream.created", &self.show(rec.clone()));
            match self.control.store().insert_live_stream(&rec, &event).await {
                Ok(()) => break,
                Err(StoreError::Conflict(_)) if attempt == 0 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.control.note_appended();
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
        self.control.flush().await;
        let event = self
            .control
            .resource_event("live_stream.updated", &self.show(s.clone()));
        if !self.control.store().update_live_stream(&s, &event).await? {
            return Err(not_found("live stream"));
        }
        self.control.note_appended();
        Ok(json(StatusCode::OK, &self.show(s)))
    }

    async fn action(&self, id: &str, action: &str) -> Result<Response<Body>, ApiError> {
        // The stored status includes every change this node queued.
        self.control.flush().await;
        let mut s = self.stream(id).await?;
        let input = match action {
            "reset-stream-key" => {
                let key = self.control.with_rng(|r| id::new_stream_key(r));
                s.stream_key = key.clone();
                s.updated_at = now_ms();
                self.control.flush().await;
                let event = self
                    .control
                    .resource_event("live_stream.stream_key_reset", &self.show(s.clone()));
                if !self
                    .control
                    .store()
                    .set_stream_key(&s.id, &key, s.updated_at, &event)
                    .await?
                {
                    return Err(not_found("live stream"));
                }
                self.control.note_appended();
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
            "kick" => {
                // Disconnects the publisher; the broadcast waits `reconnect_window` for it (or
                // another with the key) to come back, as after a dropped connection.
                let status = self.control.status_of(&s).0;
                if !matches!(status, Status::Connected | Status::Preview | Status::Active) {
                    return Err(err(
                        StatusCode::CONFLICT,
                        "invalid_state",
                        format!("no publisher to kick: the live stream is {status}"),
                    ));
                }
                self.control.send(Command::DisconnectPublisher {
                    live_stream_id: s.id.clone(),
                });
                tracing::info!(live_stream = %s.id, "publisher kicked");
                return Ok(json(StatusCode::OK, &self.show(s)));
            }
            "disable" => Input::Disable,
            "enable" => Input::Enable,
            "complete" => Input::Complete,
            "start" => Input::Start,
            _ => return Err(not_found("action")),
        };
        match self.control.apply(&s, input) {
            Ok(_) => {
                // Answer with the change stored, so a read that follows sees it too.
                self.control.flush().await;
                let s = self.stream(id).await?;
                Ok(json(StatusCode::OK, &self.show(s)))
            }
            Err(r) => Err(err(
                StatusCode::CONFLICT,
                "invalid_state",
                format!("cannot {action} a live stream that is {}", r.status),
            )),
        }
    }
}

/// A target as the API shows it: `idle` whatever was last stored when its live stream is not
/// broadcasting (a node that stopped abruptly leaves its last report behind).
fn show_target(t: &TargetRecord, live: bool, with_key: bool) -> SimulcastTarget {
    let mut v = crate::simulcast::show(t, with_key);
    if !live && !with_key {
        v.status = TargetStatus::Idle;
        v.error = None;
    }
    v
}

/// Whether `host` is (or, for a name, resolves within 2 s only to) public addresses. A name
/// that does not resolve now passes: the pusher checks every address it connects to.
async fn public_host(host: &url::Host<String>, port: u16) -> bool {
    match host {
        url::Host::Ipv4(ip) => crate::webhooks::is_public((*ip).into()),
        url::Host::Ipv6(ip) => crate::webhooks::is_public((*ip).into()),
        url::Host::Domain(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), port));
            match tokio::time::timeout(Duration::from_secs(2), lookup).await {
                Ok(Ok(addrs)) => addrs
                    .into_iter()
                    .all(|a| crate::webhooks::is_public(a.ip())),
                _ => true,
            }
        }
    }
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
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

fn show_webhook(w: WebhookRecord, with_secret: bool) -> Webhook {
    Webhook {
        id: w.id,
        url: w.url,
        event_types: w.event_types,
        description: w.description,
        status: w.status,
        created_at: rfc3339(w.created_at),
        updated_at: rfc3339(w.updated_at),
        secret: with_secret.then_some(w.secret),
    }
}

fn show_attempt(a: AttemptRecord) -> WebhookAttempt {
    WebhookAttempt {
        event_id: a.event_id,
        event_type: a.event_type,
        attempt: a.attempt,
        at: rfc3339(a.at),
        status_code: a.status_code,
        duration_ms: a.duration_ms,
        error: a.error,
        outcome: a.outcome,
    }
}

/// The `{position}.{attempt}` part of an attempts cursor.
fn attempt_cursor(s: &str) -> Option<(i64, i64)> {
    let (p, a) = s.split_once('.')?;
    Some((p.parse().ok()?, a.parse().ok()?))
}

struct EventQuery {
    filter: EventFilter,
    after: i64,
    limit: u32,
}

/// The cursor of an event page: opaque to clients (it is the log position read up to).
fn event_cursor(position: i64) -> String {
    format!("e{position}")
}

fn parse_event_cursor(s: &str) -> Option<i64> {
    s.strip_prefix('e')?.parse::<i64>().ok().filter(|p| *p >= 0)
}

/// How often an SSE stream asks the store for events other nodes appended (this node's own
/// wake it at once).
pub const SSE_POLL: Duration = Duration::from_secs(1);
/// How often an idle SSE stream sends a comment, so proxies keep it open.
pub const SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// `GET /v1/events/stream`: the event log after `after` that passes `filter`, then every new
/// event, as Server-Sent Events (`id` the event id, `event` its type, `data` the event). A
/// slow reader holds up only its own stream: at most 16 frames wait for it.
fn sse(control: Control, filter: EventFilter, mut after: i64) -> Response<Body> {
    use hyper::body::Frame;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(16);
    tokio::spawn(async move {
        let send = |b: Bytes| tx.send(Ok(Frame::data(b)));
        if send(Bytes::from_static(b"retry: 2000\n\n")).await.is_err() {
            return;
        }
        let mut appended = control.appended();
        let mut closing = control.closing();
        let mut keepalive = tokio::time::interval(SSE_KEEPALIVE);
        keepalive.reset();
        loop {
            if *closing.borrow() {
                return;
            }
            // Everything up to now.
            loop {
                match control.store().events(&filter, after, 100).await {
                    Ok(page) => {
                        for e in &page.events {
                            let data = serde_json::to_string(&e.show()).unwrap_or_default();
                            let frame =
                                format!("id: {}\nevent: {}\ndata: {data}\n\n", e.id, e.kind);
                            if send(Bytes::from(frame)).await.is_err() {
                                return;
                            }
                        }
                        after = page.last;
                        if !page.more {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream: store read failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = appended.changed() => {}
                () = tokio::time::sleep(SSE_POLL) => {}
                _ = keepalive.tick() => {
                    if send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
                // It only ever turns true.
                _ = closing.changed() => return,
                () = tx.closed() => return,
            }
        }
    });
    let body = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut r = Response::new(body.boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::openapi::ApiDoc::openapi()
}

fn openapi_json() -> String {
    openapi().to_pretty_json().unwrap_or_default()
}
