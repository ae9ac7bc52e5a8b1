//! Restreaming ("simulcast targets"): while a live stream is `active`, its source is pushed
//! over RTMP to each of its targets (another platform's ingest URL and stream key).
//!
//! Everything here is pure: the target resource and its validation, the status each target
//! reports, the event of each status change, and the reconnect backoff. The pushing itself
//! is the media side's (`sigma-server`'s `simulcast` module), with the `sigma-rtmp` publish
//! client.
//!
//! A target's `status`:
//! - `idle`: the live stream is not broadcasting (or the target was just added to one that
//!   is not);
//! - `starting`: the first connection of this broadcast is being made;
//! - `broadcasting`: the target accepted the publish and receives the stream;
//! - `errored`: the connection failed or was lost; it is retried with [`Backoff`], and the
//!   status stays `errored` (with the latest `error`) until a retry succeeds, so a target that
//!   is down for an hour raises one event, not one per attempt.
//!
//! The target's `stream_key` is a secret: it is shown once, in the create response, and never
//! in lists, events, logs or errors.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// Most targets per live stream.
pub const MAX_TARGETS: usize = 10;
/// Longest target `url`, in bytes.
pub const MAX_URL_BYTES: usize = 1024;
/// Longest target `stream_key`, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// A target's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetStatus {
    /// Not pushing: the live stream is not broadcasting.
    Idle,
    /// The first connection of a broadcast is being made.
    Starting,
    /// The target receives the stream.
    Broadcasting,
    /// The connection failed or dropped; retrying with backoff.
    Errored,
}

impl TargetStatus {
    /// Its API name.
    pub fn name(self) -> &'static str {
        match self {
            TargetStatus::Idle => "idle",
            TargetStatus::Starting => "starting",
            TargetStatus::Broadcasting => "broadcasting",
            TargetStatus::Errored => "errored",
        }
    }

    /// The status of an API name.
    pub fn from_name(s: &str) -> Option<Self> {
        [
            TargetStatus::Idle,
            TargetStatus::Starting,
            TargetStatus::Broadcasting,
            TargetStatus::Errored,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }

    /// The event type of a change into this status.
    pub fn event(self) -> &'static str {
        match self {
            TargetStatus::Idle => "live_stream.simulcast_target.idle",
            TargetStatus::Starting => "live_stream.simulcast_target.starting",
            TargetStatus::Broadcasting => "live_stream.simulcast_target.broadcasting",
            TargetStatus::Errored => "live_stream.simulcast_target.errored",
        }
    }
}

impl std::fmt::Display for TargetStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The simulcast target event types.
pub const TARGET_EVENTS: &[&str] = &[
    "live_stream.simulcast_target.starting",
    "live_stream.simulcast_target.broadcasting",
    "live_stream.simulcast_target.errored",
    "live_stream.simulcast_target.idle",
];

/// A stored target.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetRecord {
    /// `st_…`.
    pub id: String,
    /// The live stream it restreams.
    pub live_stream_id: String,
    /// `rtmp://host[:port]/app`.
    pub url: String,
    /// The target platform's stream key (a secret).
    pub stream_key: String,
    /// As last reported.
    pub status: TargetStatus,
    /// The last failure, while `errored`.
    pub error: Option<String>,
    /// Unix ms.
    pub status_changed_at: i64,
    /// Unix ms.
    pub created_at: i64,
}

impl std::fmt::Debug for TargetRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetRecord")
            .field("id", &self.id)
            .field("live_stream_id", &self.live_stream_id)
            .field("url", &self.url)
            .field("stream_key", &"[redacted]")
            .field("status", &self.status)
            .field("error", &self.error)
            .finish()
    }
}

impl TargetRecord {
    /// The URL to publish to: the target's URL and its key as the stream name.
    pub fn publish_url(&self) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), self.stream_key)
    }

    /// Text safe to show: `text` with the stream key replaced (an error a target's server
    /// sent may echo the stream name).
    pub fn redact(&self, text: &str) -> String {
        if self.stream_key.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.stream_key, "[stream key]")
        }
    }
}

/// A simulcast target, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SimulcastTarget {
    /// `st_…`.
    pub id: String,
    /// The live stream it restreams.
    pub live_stream_id: String,
    /// Where the stream is pushed: `rtmp://host[:port]/app`.
    pub url: String,
    /// The target's stream key: in the create response only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stream_key: Option<String>,
    /// `idle`, `starting`, `broadcasting` or `errored`.
    pub status: TargetStatus,
    /// Why the last connection failed, while `errored`.
    pub error: Option<String>,
    /// When `status` last changed (RFC 3339).
    pub status_changed_at: String,
    /// RFC 3339.
    pub created_at: String,
}

/// The API view of `t` (with its key only when `with_key`, for the create response).
pub fn show(t: &TargetRecord, with_key: bool) -> SimulcastTarget {
    SimulcastTarget {
        id: t.id.clone(),
        live_stream_id: t.live_stream_id.clone(),
        url: t.url.clone(),
        stream_key: with_key.then(|| t.stream_key.clone()),
        status: t.status,
        error: t.error.clone(),
        status_changed_at: crate::model::rfc3339(t.status_changed_at),
        created_at: crate::model::rfc3339(t.created_at),
    }
}

/// `GET /v1/live-streams/{id}/simulcast-targets`: every target (at most [`MAX_TARGETS`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetList {
    /// Oldest first.
    pub data: Vec<SimulcastTarget>,
}

/// An event's data for `t`: the target without its key.
pub fn target_data(t: &TargetRecord) -> serde_json::Value {
    serde_json::to_value(show(t, false)).unwrap_or(serde_json::Value::Null)
}

/// `POST /v1/live-streams/{id}/simulcast-targets`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSimulcastTarget {
    /// `rtmp://host[:port]/app`: the target platform's ingest URL, without the key.
    pub url: String,
    /// The target platform's stream key (appended to `url` as the stream name).
    pub stream_key: String,
}

/// Why a target was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The URL is not `rtmp://host[:port]/app`.
    #[error("url must be rtmp://host[:port]/app (rtmp only, no credentials, no query)")]
    Url,
    /// The stream key is empty, too long, or has spaces, slashes or control characters.
    #[error("stream_key must be 1 to 512 printable characters without spaces or slashes")]
    Key,
}

impl TargetError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            TargetError::Url => "url",
            TargetError::Key => "stream_key",
        }
    }
}

/// Checks a create request; returns the URL's host and port (1935 by default) for the
/// private-address check.
pub fn check(r: &CreateSimulcastTarget) -> Result<(url::Host<String>, u16), TargetError> {
    if r.url.len() > MAX_URL_BYTES {
        return Err(TargetError::Url);
    }
    let u = url::Url::parse(&r.url).map_err(|_| TargetError::Url)?;
    let host = u.host().ok_or(TargetError::Url)?.to_owned();
    let app = u.path().trim_matches('/');
    if u.scheme() != "rtmp"
        || !u.username().is_empty()
        || u.password().is_some()
        || u.query().is_some()
        || u.fragment().is_some()
        || app.is_empty()
        || app.contains('/')
    {
        return Err(TargetError::Url);
    }
    let k = &r.stream_key;
    if k.is_empty()
        || k.len() > MAX_KEY_BYTES
        || k.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(TargetError::Key);
    }
    Ok((host, u.port().unwrap_or(1935)))
}

/// Reconnect delays: 1 s, 2 s, 4 s, … up to 30 s, each within ±20 % jitter; back to the
/// start once a connection has held for [`Backoff::STABLE`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The first delay.
    pub const FIRST: Duration = Duration::from_secs(1);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(30);
    /// How long a connection must hold for the delays to start again from [`Self::FIRST`].
    pub const STABLE: Duration = Duration::from_secs(30);

    /// The delay before the next attempt, after one more failure; `jitter` in `[0, 1)` picks
    /// where in ±20 % it falls.
    pub fn next(&mut self, jitter: f64) -> Duration {
        let base = Self::FIRST
            .saturating_mul(1u32 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
    }

    /// A connection held for `held`: if long enough, start again from the first delay.
    pub fn connected_for(&mut self, held: Duration) {
        if held >= Self::STABLE {
            self.failures = 0;
        }
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// What a target's pusher reports, and whether it is a change worth an event: only a new
/// status is (a new error text while `errored` updates the target without an event).
pub fn is_change(old: Option<TargetStatus>, new: TargetStatus) -> bool {
    old != Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(url: &str, key: &str) -> CreateSimulcastTarget {
        CreateSimulcastTarget {
            url: url.into(),
            stream_key: key.into(),
        }
    }

    #[test]
    fn targets_are_checked() {
        let (h, p) = check(&req("rtmp://a.rtmp.youtube.com/live2", "abcd-1234")).unwrap();
        assert_eq!((h.to_string().as_str(), p), ("a.rtmp.youtube.com", 1935));
        let (_, p) = check(&req("rtmp://127.0.0.1:1936/live/", "k")).unwrap();
        assert_eq!(p, 1936);
        for bad in [
            "http://host/live",
            "rtmps://host/live",
            "rtmp://host",
            "rtmp://host/",
            "rtmp://host/a/b",
            "rtmp://user:pw@host/live",
            "rtmp://host/live?x=1",
            "rtmp://host/live#f",
            "not a url",
        ] {
            assert_eq!(check(&req(bad, "k")), Err(TargetError::Url), "{bad}");
        }
        for bad in ["", "a b", "a/b", "a\nb", &"k".repeat(513)] {
            assert_eq!(
                check(&req("rtmp://h/live", bad)),
                Err(TargetError::Key),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_key_never_shows() {
        let t = TargetRecord {
            id: "st_1".into(),
            live_stream_id: "ls_1".into(),
            url: "rtmp://h/live".into(),
            stream_key: "sekrit".into(),
            status: TargetStatus::Errored,
            error: Some("refused".into()),
            status_changed_at: 0,
            created_at: 0,
        };
        assert_eq!(t.publish_url(), "rtmp://h/live/sekrit");
        assert!(!format!("{t:?}").contains("sekrit"));
        assert!(!target_data(&t).to_string().contains("\"stream_key\""));
        assert_eq!(show(&t, true).stream_key.as_deref(), Some("sekrit"));
        assert_eq!(t.redact("refused sekrit"), "refused [stream key]");
    }

    #[test]
    fn every_status_has_its_event() {
        for s in [
            TargetStatus::Idle,
            TargetStatus::Starting,
            TargetStatus::Broadcasting,
            TargetStatus::Errored,
        ] {
            assert!(TARGET_EVENTS.contains(&s.event()));
            assert_eq!(TargetStatus::from_name(s.name()), Some(s));
        }
        assert!(is_change(None, TargetStatus::Starting));
        assert!(!is_change(
            Some(TargetStatus::Errored),
            TargetStatus::Errored
        ));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_after_a_stable_connection() {
        let mut b = Backoff::default();
        let d: Vec<u64> = (0..8).map(|_| b.next(0.5).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.connected_for(Duration::from_secs(5));
        assert_eq!(b.next(0.5), Backoff::MAX);
        b.connected_for(Backoff::STABLE);
        assert_eq!(b.next(0.5), Backoff::FIRST);
    }

    proptest! {
        #[test]
        fn delays_stay_within_the_jitter(failures in 0u32..64, jitter in 0.0f64..1.0) {
            let mut b = Backoff { failures };
            let base = Backoff::FIRST.saturating_mul(1 << failures.min(16)).min(Backoff::MAX);
            let d = b.next(jitter);
            prop_assert!(d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2));
            prop_assert!(d <= Backoff::MAX.mul_f64(1.2));
        }

        #[test]
        fn checking_never_panics(url in ".{0,80}", key in ".{0,40}") {
            let _ = check(&req(&url, &key));
        }
    }
}
