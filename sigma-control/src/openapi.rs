//! The OpenAPI 3.1 document, generated from these annotations and the models' schemas.
//! Each function here stands for one route of [`crate::api::ROUTES`]; a test checks that the
//! two lists agree.
#![allow(dead_code)]

use crate::api::ErrorBody;
use crate::model::*;
use crate::simulcast::{CreateSimulcastTarget, SimulcastTarget, TargetList};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "This document")))]
fn openapi_doc() {}

#[utoipa::path(post, path = "/v1/live-streams", tag = "live-streams", request_body(content = CreateLiveStream, description = "Optional; every field has a default"),
    responses((status = 201, body = LiveStream), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
fn create_live_stream() {}

#[utoipa::path(get, path = "/v1/live-streams", tag = "live-streams",
    params(("limit" = Option<u32>, Query, description = "1–100, default 25"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = List<LiveStream>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
fn list_live_streams() {}

#[utoipa::path(get, path = "/v1/live-streams/{id}", tag = "live-streams", params(("id" = String, Path)),
    responses((status = 200, body = LiveStream), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn get_live_stream() {}

#[utoipa::path(patch, path = "/v1/live-streams/{id}", tag = "live-streams", params(("id" = String, Path)), request_body = UpdateLiveStream,
    responses((status = 200, body = LiveStream), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
fn update_live_stream() {}

#[utoipa::path(delete, path = "/v1/live-streams/{id}", tag = "live-streams", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted; a broadcast in progress ends"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn delete_live_stream() {}

#[utoipa::path(post, path = "/v1/live-streams/{id}/reset-stream-key", tag = "live-streams", params(("id" = String, Path)),
    responses((status = 200, body = LiveStream, description = "With the new key; the old one stops working and its publisher is disconnected"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn reset_stream_key() {}

#[utoipa::path(post, path = "/v1/live-streams/{id}/disable", tag = "live-streams", params(("id" = String, Path)),
    responses((status = 200, body = LiveStream), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn disable_live_stream() {}

#[utoipa::path(post, path = "/v1/live-streams/{id}/enable", tag = "live-streams", params(("id" = String, Path)),
    responses((status = 200, body = LiveStream), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn enable_live_stream() {}

#[utoipa::path(post, path = "/v1/live-streams/{id}/complete", tag = "live-streams", params(("id" = String, Path)),
    responses((status = 200, body = LiveStream, description = "The broadcast ends now"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
fn complete_live_stream() {}

#[utoipa::path(post, path = "/v1/live-streams/{id}/start", tag = "live-streams", params(("id" = String, Path)),
    responses((status = 200, body = LiveStream, description = "preview becomes active"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
fn start_live_stream() {}

#[utoipa::path(post, path = "/v1/live-streams/{id}/playback-ids", tag = "live-streams", params(("id" = String, Path)), request_body = CreatePlaybackId,
    responses((status = 201, body = PlaybackId), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
fn create_playback_id() {}

#[utoipa::path(delete, path = "/v1/live-streams/{id}/playback-ids/{playback_id}", tag = "live-streams", params(("id" = String, Path), ("playback_id" = String, Path)),
    responses((status = 204, description = "It stops playing within one target duration"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn delete_playback_id() {}

#[utoipa::path(post, path = "/v1/live-streams/{id}/simulcast-targets", tag = "simulcast-targets", params(("id" = String, Path)), request_body = CreateSimulcastTarget,
    responses((status = 201, body = SimulcastTarget, description = "With its stream_key, shown this once; pushed to while the live stream is active"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The live stream has the most targets allowed"), (status = 422, body = ErrorBody)))]
fn create_simulcast_target() {}

#[utoipa::path(get, path = "/v1/live-streams/{id}/simulcast-targets", tag = "simulcast-targets", params(("id" = String, Path)),
    responses((status = 200, body = TargetList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn list_simulcast_targets() {}

#[utoipa::path(get, path = "/v1/live-streams/{id}/simulcast-targets/{target_id}", tag = "simulcast-targets", params(("id" = String, Path), ("target_id" = String, Path)),
    responses((status = 200, body = SimulcastTarget), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn get_simulcast_target() {}

#[utoipa::path(delete, path = "/v1/live-streams/{id}/simulcast-targets/{target_id}", tag = "simulcast-targets", params(("id" = String, Path), ("target_id" = String, Path)),
    responses((status = 204, description = "Pushing to it stops"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn delete_simulcast_target() {}

#[utoipa::path(post, path = "/v1/signing-keys", tag = "signing-keys",
    responses((status = 201, body = NewSigningKey, description = "The private key, shown this once"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
fn create_signing_key() {}

#[utoipa::path(get, path = "/v1/signing-keys", tag = "signing-keys",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = List<SigningKey>), (status = 401, body = ErrorBody)))]
fn list_signing_keys() {}

#[utoipa::path(get, path = "/v1/signing-keys/{id}", tag = "signing-keys", params(("id" = String, Path)),
    responses((status = 200, body = SigningKey), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn get_signing_key() {}

#[utoipa::path(delete, path = "/v1/signing-keys/{id}", tag = "signing-keys", params(("id" = String, Path)),
    responses((status = 204, description = "Tokens it signed stop verifying"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn delete_signing_key() {}

#[utoipa::path(post, path = "/v1/api-tokens", tag = "api-tokens", request_body = CreateApiToken,
    responses((status = 201, body = NewApiToken, description = "The token, shown this once"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
fn create_api_token() {}

#[utoipa::path(get, path = "/v1/api-tokens", tag = "api-tokens",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = List<ApiToken>), (status = 401, body = ErrorBody)))]
fn list_api_tokens() {}

#[utoipa::path(get, path = "/v1/api-tokens/{id}", tag = "api-tokens", params(("id" = String, Path)),
    responses((status = 200, body = ApiToken), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn get_api_token() {}

#[utoipa::path(delete, path = "/v1/api-tokens/{id}", tag = "api-tokens", params(("id" = String, Path)),
    responses((status = 204, description = "It stops working at once"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn delete_api_token() {}

#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("object_id" = Option<String>, Query, description = "Only this object's events"),
        ("type" = Option<String>, Query, description = "Event types, comma-separated or repeated; wildcards such as `live_stream.*`"),
        ("after" = Option<String>, Query, description = "Only events after this event id (`now`: after the newest event, for a cursor to poll from)"),
        ("limit" = Option<u32>, Query, description = "1–100, default 25"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = List<crate::events::Event>, description = "Oldest first; a page may hold fewer than `limit` events and still have a `next_cursor`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
fn list_events() {}

#[utoipa::path(get, path = "/v1/events/stream", tag = "events",
    params(("object_id" = Option<String>, Query, description = "Only this object's events"),
        ("type" = Option<String>, Query, description = "Event types, as for /v1/events"),
        ("after" = Option<String>, Query, description = "Start after this event id (default: from the start of the log; `now`: only new events)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (sent by EventSource on reconnect; wins over `after`)")),
    responses((status = 200, content_type = "text/event-stream", body = String, description = "Server-Sent Events: `id` the event id, `event` its type, `data` the event as JSON; the log first, then new events as they happen"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
fn stream_events() {}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = Webhook, description = "With `secret`, shown this once"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody, description = "A bad field, or `private_target`")))]
fn create_webhook() {}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    params(("limit" = Option<u32>, Query, description = "1–100, default 25"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = List<Webhook>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
fn list_webhooks() {}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Webhook), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn get_webhook() {}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), request_body = UpdateWebhook,
    responses((status = 200, body = Webhook), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
fn update_webhook() {}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted, with its queued deliveries"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn delete_webhook() {}

#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Webhook, description = "With the new `secret`; the old one keeps signing, as a second signature, for 24 h"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn rotate_webhook_secret() {}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path),
        ("limit" = Option<u32>, Query, description = "1–100, default 25"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = List<WebhookAttempt>, description = "Attempts, newest first"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
fn webhook_deliveries() {}

#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks", params(("id" = String, Path)), request_body = ReplayWebhook,
    responses((status = 202, body = Replayed), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
fn replay_webhook() {}

#[utoipa::path(post, path = "/v1/live-streams/{id}/kick", tag = "live-streams", params(("id" = String, Path)),
    responses((status = 200, body = LiveStream, description = "The publisher is disconnected; the broadcast waits reconnect_window for it to return"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "No publisher")))]
fn kick_publisher() {}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sigma API", description = "Live streams, playback ids, signing keys, API tokens the event log and webhooks."),
    paths(openapi_doc, create_live_stream, list_live_streams, get_live_stream, update_live_stream, delete_live_stream,
        reset_stream_key, disable_live_stream, enable_live_stream, complete_live_stream, start_live_stream, kick_publisher,
        create_playback_id, delete_playback_id, create_simulcast_target, list_simulcast_targets,
        get_simulcast_target, delete_simulcast_target, create_signing_key, list_signing_keys, get_signing_key, delete_signing_key,
        create_api_token, list_api_tokens, get_api_token, delete_api_token, list_events, stream_events,
        create_webhook, list_webhooks, get_webhook, update_webhook, delete_webhook, rotate_webhook_secret,
        webhook_deliveries, replay_webhook),
    components(schemas(ErrorBody, crate::lifecycle::Status, crate::events::Event, crate::events::EventObject)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
pub struct ApiDoc;
