//! The API's resources and request bodies, with their validation (pure: no IO).

use crate::lifecycle::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Largest `reconnect_window`, in seconds.
pub const MAX_RECONNECT_WINDOW: u64 = 1800;
/// Default `reconnect_window`, in seconds.
pub const DEFAULT_RECONNECT_WINDOW: u64 = 10;
/// Largest `metadata`, serialized, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Longest `name`, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A latency mode by its API name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum LatencyMode {
    /// About 20 s.
    #[serde(rename = "normal")]
    Normal,
    /// About 3–6 s.
    #[serde(rename = "low")]
    Low,
    /// LL-HLS parts, about 1 s.
    #[serde(rename = "ultra-low")]
    UltraLow,
}

impl LatencyMode {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            LatencyMode::Normal => "normal",
            LatencyMode::Low => "low",
            LatencyMode::UltraLow => "ultra-low",
        }
    }

    /// Parses an API name.
    pub fn from_name(s: &str) -> Option<Self> {
        [LatencyMode::Normal, LatencyMode::Low, LatencyMode::UltraLow]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

/// Who may play a playback id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Anyone with the URL.
    Public,
    /// Viewers with a JWT signed by one of the signing keys.
    Signed,
}

impl Policy {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Public => "public",
            Policy::Signed => "signed",
        }
    }

    /// Parses an API name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Policy::Public),
            "signed" => Some(Policy::Signed),
            _ => None,
        }
    }
}

/// A playback id: the public handle viewers use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlaybackId {
    /// `pb_…`.
    pub id: String,
    /// Who may play it.
    pub policy: Policy,
}

/// `ingest` of a live stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ingest {
    /// The full RTMP publish URL, with the stream key.
    pub rtmp: String,
}

/// `playback` of a live stream: URLs for its first playback id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Playback {
    /// The multivariant playlist.
    pub hls: String,
    /// The player page.
    pub player: String,
}

/// A live stream as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveStreamRecord {
    /// `ls_…`.
    pub id: String,
    /// A label for humans.
    pub name: String,
    /// The secret stream key.
    pub stream_key: String,
    /// The lifecycle status.
    pub status: Status,
    /// When `status` last changed (Unix ms).
    pub status_changed_at: i64,
    /// Latency mode.
    pub latency_mode: LatencyMode,
    /// Policy of the first playback id.
    pub playback_policy: Policy,
    /// Seconds a lost publisher may take to come back.
    pub reconnect_window: u64,
    /// Whether the first segment makes it active (else preview).
    pub auto_start: bool,
    /// A configured ladder's name.
    pub ladder: Option<String>,
    /// Free-form string map.
    pub metadata: BTreeMap<String, String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// Its playback ids, oldest first.
    pub playback_ids: Vec<PlaybackId>,
}

/// A live stream, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveStream {
    /// `ls_…`.
    pub id: String,
    /// A label for humans.
    pub name: String,
    /// Lifecycle status.
    pub status: Status,
    /// When `status` last changed (RFC 3339).
    pub status_changed_at: String,
    /// The secret stream key (also inside `ingest.rtmp`).
    pub stream_key: String,
    /// `normal`, `low` or `ultra-low`.
    pub latency_mode: LatencyMode,
    /// Policy of the first playback id.
    pub playback_policy: Policy,
    /// Seconds a lost publisher may take to come back before the broadcast ends.
    pub reconnect_window: u64,
    /// Whether the stream goes active on its own (else it waits in preview for `start`).
    pub auto_start: bool,
    /// The ladder it is transcoded with, or null (packaged as published).
    pub ladder: Option<String>,
    /// Free-form string map.
    pub metadata: BTreeMap<String, String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Where to publish.
    pub ingest: Ingest,
    /// Its playback ids.
    pub playback_ids: Vec<PlaybackId>,
    /// URLs for the first playback id (absent when it has none).
    pub playback: Option<Playback>,
    /// What the node serving the broadcast measures of its publisher, while one is
    /// connected (null otherwise, and on the other nodes).
    #[serde(default)]
    pub ingest_stats: Option<IngestStats>,
}

/// What the ingest measures of a connected publisher, over the last few seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IngestStats {
    /// Bits per second received (audio and video payloads).
    pub bitrate: u64,
    /// Video frames per second received.
    pub fps: f64,
    /// Seconds between the last two video keyframes (null before the second one).
    pub keyframe_interval: Option<f64>,
    /// When the last frame arrived (RFC 3339).
    pub last_frame_at: String,
}

/// `POST /v1/live-streams`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLiveStream {
    /// A label for humans (≤ 200 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// Default: the server's.
    #[serde(default)]
    pub latency_mode: Option<LatencyMode>,
    /// Policy of the first playback id; default `public`.
    #[serde(default)]
    pub playback_policy: Option<Policy>,
    /// Seconds, 0–1800; default 10.
    #[serde(default)]
    pub reconnect_window: Option<u64>,
    /// Default true.
    #[serde(default)]
    pub auto_start: Option<bool>,
    /// A configured ladder's name, or null.
    #[serde(default)]
    pub ladder: Option<String>,
    /// String map, ≤ 4 KiB serialized.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `PATCH /v1/live-streams/{id}`: fields to change; absent ones stay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLiveStream {
    /// A label for humans.
    #[serde(default)]
    pub name: Option<String>,
    /// Takes effect at the next broadcast.
    #[serde(default)]
    pub latency_mode: Option<LatencyMode>,
    /// Seconds, 0–1800; takes effect at the next broadcast.
    #[serde(default)]
    pub reconnect_window: Option<u64>,
    /// Takes effect at the next first segment.
    #[serde(default)]
    pub auto_start: Option<bool>,
    /// A configured ladder's name; `null` clears it. Next broadcast.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub ladder: Option<Option<String>>,
    /// Replaces the map.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// `POST /v1/live-streams/{id}/playback-ids`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlaybackId {
    /// `public` or `signed`.
    pub policy: Policy,
}

/// `POST /v1/api-tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// A label for humans.
    pub name: String,
    /// `["read"]` or `["read", "write"]`.
    pub scopes: Vec<Scope>,
}

/// An API token's permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// GET routes.
    Read,
    /// Every other route.
    Write,
}

/// An API token as listed (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    /// `tok_…`.
    pub id: String,
    /// Label.
    pub name: String,
    /// Permissions.
    pub scopes: Vec<Scope>,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v1/api-tokens` answer: the token, shown this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewApiToken {
    /// `tok_…`.
    pub id: String,
    /// Label.
    pub name: String,
    /// Permissions.
    pub scopes: Vec<Scope>,
    /// RFC 3339.
    pub created_at: String,
    /// The bearer token (`sgt_…`); only its digest is kept.
    pub token: String,
}

/// A signing key as listed (public part only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SigningKey {
    /// `key_…`: the JWT `kid`.
    pub id: String,
    /// Always `EdDSA`.
    pub algorithm: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v1/signing-keys` answer: the private key, shown this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewSigningKey {
    /// `key_…`: the JWT `kid`.
    pub id: String,
    /// Always `EdDSA`.
    pub algorithm: String,
    /// RFC 3339.
    pub created_at: String,
    /// Ed25519 private key, PKCS#8 PEM; the server keeps only the public key.
    pub private_key: String,
}

/// A list page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct List<T> {
    /// This page, newest first.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// JSON path of the field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

/// What validation checks beyond types: names the server knows.
pub struct Rules<'a> {
    /// The configured ladders' names.
    pub ladders: &'a [String],
}

fn check_name(name: &str) -> Result<(), Invalid> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid("name", "at most 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("name", "no control characters"));
    }
    Ok(())
}

fn check_window(w: u64) -> Result<(), Invalid> {
    if w > MAX_RECONNECT_WINDOW {
        return Err(invalid("reconnect_window", "at most 1800 seconds"));
    }
    Ok(())
}

fn check_metadata(m: &BTreeMap<String, String>) -> Result<(), Invalid> {
    let size: usize = m.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
    if size > MAX_METADATA_BYTES {
        return Err(invalid("metadata", "at most 4096 bytes"));
    }
    Ok(())
}

/// The checks create and update share, on the fields each may carry.
fn check_fields(
    name: Option<&str>,
    reconnect_window: Option<u64>,
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<(), Invalid> {
    if let Some(n) = name {
        check_name(n)?;
    }
    if let Some(w) = reconnect_window {
        check_window(w)?;
    }
    if let Some(m) = metadata {
        check_metadata(m)?;
    }
    Ok(())
}

impl Rules<'_> {
    fn check_ladder(&self, l: &Option<String>) -> Result<(), Invalid> {
        match l {
            Some(name) if !self.ladders.iter().any(|x| x == name) => Err(invalid(
                "ladder",
                format!("no ladder named {name:?} is configured"),
            )),
            _ => Ok(()),
        }
    }

    /// Validates a create request.
    pub fn create(&self, r: &CreateLiveStream) -> Result<(), Invalid> {
        check_fields(r.name.as_deref(), r.reconnect_window, r.metadata.as_ref())?;
        self.check_ladder(&r.ladder)
    }

    /// Validates an update request.
    pub fn update(&self, r: &UpdateLiveStream) -> Result<(), Invalid> {
        check_fields(r.name.as_deref(), r.reconnect_window, r.metadata.as_ref())?;
        if let Some(l) = &r.ladder {
            self.check_ladder(l)?;
        }
        Ok(())
    }

    /// Validates a token request; returns its scopes sorted, without repeats.
    pub fn api_token(&self, r: &CreateApiToken) -> Result<Vec<Scope>, Invalid> {
        check_name(&r.name)?;
        let mut s = r.scopes.clone();
        s.sort();
        s.dedup();
        if s != [Scope::Read] && s != [Scope::Read, Scope::Write] {
            return Err(invalid("scopes", "[\"read\"] or [\"read\", \"write\"]"));
        }
        Ok(s)
    }
}

/// RFC 3339 UTC text of Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules() -> Vec<String> {
        vec!["default".into()]
    }

    #[test]
    fn bodies_parse_strictly() {
        let r: CreateLiveStream =
            serde_json::from_str(r#"{"latency_mode":"ultra-low","playback_policy":"signed"}"#)
                .unwrap();
        assert_eq!(r.latency_mode, Some(LatencyMode::UltraLow));
        assert!(serde_json::from_str::<CreateLiveStream>(r#"{"latency":"low"}"#).is_err());
        assert!(serde_json::from_str::<CreateLiveStream>(r#"{"latency_mode":"fast"}"#).is_err());
        assert!(serde_json::from_str::<CreateLiveStream>(r#"{"auto_start":"yes"}"#).is_err());
        let u: UpdateLiveStream = serde_json::from_str(r#"{"ladder":null}"#).unwrap();
        assert_eq!(u.ladder, Some(None));
        let u: UpdateLiveStream = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(u.ladder, None);
    }

    #[test]
    fn values_are_checked_with_their_field() {
        let l = rules();
        let r = Rules { ladders: &l };
        let bad = |c: CreateLiveStream| r.create(&c).unwrap_err().field;
        assert_eq!(
            bad(CreateLiveStream {
                reconnect_window: Some(1801),
                ..Default::default()
            }),
            "reconnect_window"
        );
        assert_eq!(
            bad(CreateLiveStream {
                ladder: Some("huge".into()),
                ..Default::default()
            }),
            "ladder"
        );
        let big = (0..100)
            .map(|i| (format!("k{i}"), "x".repeat(40)))
            .collect();
        assert_eq!(
            bad(CreateLiveStream {
                metadata: Some(big),
                ..Default::default()
            }),
            "metadata"
        );
        assert!(
            r.create(&CreateLiveStream {
                ladder: Some("default".into()),
                reconnect_window: Some(1800),
                ..Default::default()
            })
            .is_ok()
        );
        let t = |s: &[Scope]| {
            r.api_token(&CreateApiToken {
                name: "x".into(),
                scopes: s.to_vec(),
            })
        };
        assert!(t(&[Scope::Read]).is_ok());
        assert!(t(&[Scope::Write, Scope::Read]).is_ok());
        assert!(t(&[Scope::Write]).is_err());
        assert!(t(&[]).is_err());
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000_123), "2027-01-15T08:00:00.123Z");
    }

    proptest! {
        /// Any JSON text either parses into a request that validation then judges, or is
        /// refused by the parser; neither panics.
        #[test]
        fn arbitrary_bodies_never_panic(s in ".{0,300}") {
            let l = rules();
            let r = Rules { ladders: &l };
            if let Ok(c) = serde_json::from_str::<CreateLiveStream>(&s) { let _ = r.create(&c); }
            if let Ok(u) = serde_json::from_str::<UpdateLiveStream>(&s) { let _ = r.update(&u); }
        }

        /// Validation accepts exactly the documented ranges.
        #[test]
        fn reconnect_window_range(w in 0u64..5000) {
            let l = rules();
            let r = Rules { ladders: &l };
            let ok = r.create(&CreateLiveStream { reconnect_window: Some(w), ..Default::default() }).is_ok();
            prop_assert_eq!(ok, w <= MAX_RECONNECT_WINDOW);
        }
    }
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    /// `wh_…`.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types it takes: names, `*`, or wildcards such as `live_stream.*`.
    pub event_types: Vec<String>,
    /// For humans.
    pub description: String,
    /// `enabled`; `disabled` (by PATCH, or after the receiver answered 410); `failing` (a
    /// delivery exhausted its retries; the next success clears it).
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The signing secret (`whsec_…`): only in the answers of create and rotate-secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `POST /v1/webhooks`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// An `http` or `https` URL on a public address (private ones need
    /// `allow_private_targets`).
    pub url: String,
    /// Default `["*"]`.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// For humans (≤ 200 characters).
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /v1/webhooks/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// A new target.
    #[serde(default)]
    pub url: Option<String>,
    /// New types.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// `false` disables the endpoint, `true` enables it again (pending deliveries resume).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttempt {
    /// The event (`evt_…`, also the `webhook-id` header).
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// When it was made (RFC 3339).
    pub at: String,
    /// The receiver's status, or null when it did not answer.
    pub status_code: Option<i64>,
    /// How long it took.
    pub duration_ms: i64,
    /// Why it failed, or null.
    pub error: Option<String>,
    /// `delivered`, `retrying`, `failed` (retries exhausted) or `disabled` (410).
    pub outcome: String,
}

/// `POST /v1/webhooks/{id}/replay`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayWebhook {
    /// RFC 3339: every event at or after it that the endpoint takes is delivered again.
    pub since: String,
}

/// The answer of replay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    /// How many events were queued.
    pub queued: u64,
}

/// Checks the fields of a webhook create or update.
pub fn check_webhook_fields(
    event_types: Option<&[String]>,
    description: Option<&str>,
) -> Result<(), Invalid> {
    if let Some(types) = event_types {
        if types.is_empty() || types.len() > 50 {
            return Err(invalid("event_types", "1 to 50 types"));
        }
        for t in types {
            if !crate::events::valid_type_pattern(t) {
                return Err(invalid("event_types", format!("unknown event type {t:?}")));
            }
        }
    }
    if let Some(d) = description {
        if d.chars().count() > MAX_NAME_CHARS {
            return Err(invalid("description", "at most 200 characters"));
        }
    }
    Ok(())
}
