//! The event log: every lifecycle transition and resource change, appended to the store in
//! the same transaction as the change, and read back by `GET /v1/events` (oldest first) and
//! `GET /v1/events/stream` (Server-Sent Events).
//!
//! An event is `{id, type, timestamp, object: {type, id}, sequence, data}`: `sequence` grows by
//! one per object, and `data` is the resource as it was after the change, without secrets (a
//! live stream's `stream_key` and `ingest` are left out). Events are totally ordered by their
//! position in the log, which the store hands out under a lock in the appending transaction,
//! so positions commit in order on every backend and a reader that resumes after position `p`
//! misses nothing.
//!
//! Everything here is pure; the store appends and reads.

use crate::lifecycle::{Status, Transition};
use crate::model::LiveStream;
use serde::Serialize;
use utoipa::ToSchema;

/// The live stream event types (`live_stream.` and the name).
pub const LIVE_STREAM_EVENTS: &[&str] = &[
    "live_stream.created",
    "live_stream.updated",
    "live_stream.deleted",
    "live_stream.connected",
    "live_stream.preview",
    "live_stream.active",
    "live_stream.disconnected",
    "live_stream.reconnected",
    "live_stream.idle",
    "live_stream.disabled",
    "live_stream.enabled",
    "live_stream.stream_key_reset",
    "live_stream.simulcast_target.starting",
    "live_stream.simulcast_target.broadcasting",
    "live_stream.simulcast_target.errored",
    "live_stream.simulcast_target.idle",
];

/// An event to append: the store gives it its position and sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// `evt_…`.
    pub id: String,
    /// One of [`LIVE_STREAM_EVENTS`] (or a later issue's types).
    pub kind: &'static str,
    /// `live_stream`.
    pub object_type: &'static str,
    /// The object's id.
    pub object_id: String,
    /// Unix milliseconds.
    pub at: i64,
    /// The resource after the change, without secrets.
    pub data: serde_json::Value,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Its place in the log (1, 2, …), in commit order.
    pub position: i64,
    /// `evt_…`.
    pub id: String,
    /// The type.
    pub kind: String,
    /// The object's type.
    pub object_type: String,
    /// The object's id.
    pub object_id: String,
    /// 1, 2, … per object.
    pub sequence: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// JSON text.
    pub data: String,
}

/// The object an event is about.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct EventObject {
    /// `live_stream`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// An event as the API, the SSE stream and webhooks show it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Event {
    /// `evt_…`: unique, the receiver's idempotency key.
    pub id: String,
    /// For example `live_stream.active`.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// What it is about.
    pub object: EventObject,
    /// 1, 2, … per object, in the order of the changes.
    pub sequence: i64,
    /// The resource after the change, without secrets.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl EventRecord {
    /// The API view (data that does not parse, which the store never writes, shows as null).
    pub fn show(&self) -> Event {
        Event {
            id: self.id.clone(),
            kind: self.kind.clone(),
            timestamp: crate::model::rfc3339(self.at),
            object: EventObject {
                kind: self.object_type.clone(),
                id: self.object_id.clone(),
            },
            sequence: self.sequence,
            data: serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The event type of a status change, or `None` when the status did not change.
///
/// - into `reconnecting`: `disconnected`; out of it back to a live status: `reconnected`;
/// - out of `disabled` (into `idle`): `enabled`;
/// - otherwise the new status's name (`connected`, `preview`, `active`, `idle`, `disabled`).
pub fn transition_event(t: &Transition) -> Option<&'static str> {
    if !t.changed() {
        return None;
    }
    Some(match (t.from, t.to) {
        (_, Status::Reconnecting) => "live_stream.disconnected",
        (Status::Reconnecting, to) if to.is_live() => "live_stream.reconnected",
        (Status::Disabled, Status::Idle) => "live_stream.enabled",
        (_, Status::Idle) => "live_stream.idle",
        (_, Status::Connected) => "live_stream.connected",
        (_, Status::Preview) => "live_stream.preview",
        (_, Status::Active) => "live_stream.active",
        (_, Status::Disabled) => "live_stream.disabled",
    })
}

/// A live stream as event data: the API resource without its secrets (`stream_key`, and
/// `ingest`, whose URL carries the key) and without its momentary `ingest_stats`.
pub fn live_stream_data(s: &LiveStream) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("stream_key");
        o.remove("ingest");
        o.remove("ingest_stats");
    }
    v
}

/// Whether event type `kind` matches `pattern`: equal, `*` (everything), or a prefix
/// wildcard such as `live_stream.*`.
pub fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => prefix.ends_with('.') && kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// Whether `pattern` is a valid `type` filter: a known type, `*`, or `prefix.*` for a prefix
/// some known type has.
pub fn valid_type_pattern(pattern: &str) -> bool {
    pattern == "*" || LIVE_STREAM_EVENTS.iter().any(|t| type_matches(pattern, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{Input, Lifecycle};

    fn kinds(auto_start: bool, inputs: &[Input]) -> Vec<&'static str> {
        let mut l = Lifecycle::new(Status::Idle, auto_start);
        inputs
            .iter()
            .filter_map(|i| l.apply(*i).ok().and_then(|t| transition_event(&t)))
            .collect()
    }

    #[test]
    fn a_broadcast_with_one_reconnect() {
        use Input::*;
        assert_eq!(
            kinds(
                true,
                &[
                    PublisherConnected,
                    FirstSegment,
                    PublisherLost,
                    PublisherConnected,
                    PublisherLost,
                    BroadcastEnded
                ]
            ),
            [
                "live_stream.connected",
                "live_stream.active",
                "live_stream.disconnected",
                "live_stream.reconnected",
                "live_stream.disconnected",
                "live_stream.idle"
            ]
        );
    }

    #[test]
    fn preview_start_disable_enable() {
        use Input::*;
        assert_eq!(
            kinds(
                false,
                &[PublisherConnected, FirstSegment, Start, Disable, Enable]
            ),
            [
                "live_stream.connected",
                "live_stream.preview",
                "live_stream.active",
                "live_stream.disabled",
                "live_stream.enabled"
            ]
        );
    }

    #[test]
    fn every_transition_has_a_known_type() {
        use Input::*;
        let inputs = [
            PublisherConnected,
            FirstSegment,
            PublisherLost,
            BroadcastEnded,
            Start,
            Complete,
            Disable,
            Enable,
        ];
        for auto in [true, false] {
            // Every pair of inputs from every reachable state of a short walk.
            for a in inputs {
                for b in inputs {
                    for c in inputs {
                        for k in kinds(auto, &[a, b, c]) {
                            assert!(LIVE_STREAM_EVENTS.contains(&k), "{k}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn wildcards() {
        assert!(type_matches("*", "live_stream.idle"));
        assert!(type_matches("live_stream.*", "live_stream.idle"));
        assert!(type_matches("live_stream.idle", "live_stream.idle"));
        assert!(!type_matches("live_stream.idl", "live_stream.idle"));
        assert!(!type_matches("live_stream*", "live_stream.idle"));
        assert!(!type_matches("asset.*", "live_stream.idle"));
        assert!(valid_type_pattern("live_stream.*"));
        assert!(valid_type_pattern("live_stream.active"));
        assert!(!valid_type_pattern("live_stream.bogus"));
        assert!(!valid_type_pattern("nothing.*"));
        assert!(!valid_type_pattern(""));
    }
}
