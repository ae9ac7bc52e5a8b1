//! The live stream lifecycle: one pure state machine whose state names are the API's `status`
//! and the event names (`live_stream.connected`, …).
//!
//! ```text
//!            publish admitted              first segment playable
//!   idle ─────────────────────▶ connected ───────────────────────▶ active
//!    ▲                              │  └──(auto_start: false)──▶ preview ──POST start──▶ active
//!    │ reconnect_window elapsed     │ publisher lost (from connected, preview or active)
//!    └──────────── reconnecting ◀───┘
//!                      │ publisher returns: back to where it was (active, preview, connected)
//!   any ──disable──▶ disabled ──enable──▶ idle
//!   live ──complete──▶ idle (publisher disconnected, playlists end)
//! ```
//!
//! [`Lifecycle::apply`] takes an [`Input`] and returns the effects the shell must carry out;
//! it never touches a clock or IO. An input that does not apply in the current state is
//! refused with [`Refused`] and changes nothing.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A live stream's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No publisher.
    Idle,
    /// A publish was admitted; nothing playable yet.
    Connected,
    /// Media flows but only operators may watch until `start`.
    Preview,
    /// The first segment is playable and viewers may watch.
    Active,
    /// The publisher was lost; playlists stay open for `reconnect_window`.
    Reconnecting,
    /// Publishing is refused until `enable`.
    Disabled,
}

impl Status {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Connected => "connected",
            Status::Preview => "preview",
            Status::Active => "active",
            Status::Reconnecting => "reconnecting",
            Status::Disabled => "disabled",
        }
    }

    /// Parses an API name.
    pub fn from_name(s: &str) -> Option<Status> {
        [
            Status::Idle,
            Status::Connected,
            Status::Preview,
            Status::Active,
            Status::Reconnecting,
            Status::Disabled,
        ]
        .into_iter()
        .find(|st| st.name() == s)
    }

    /// Whether a broadcast is going on (a publisher, or one expected back).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Status::Connected | Status::Preview | Status::Active | Status::Reconnecting
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A publisher was admitted.
    PublisherConnected,
    /// The broadcast's first segment can be played.
    FirstSegment,
    /// The publisher's connection ended.
    PublisherLost,
    /// No publisher came back within `reconnect_window`: the broadcast is over.
    BroadcastEnded,
    /// `POST …/start`.
    Start,
    /// `POST …/complete`.
    Complete,
    /// `POST …/disable`.
    Disable,
    /// `POST …/enable`.
    Enable,
}

/// What the shell must do after a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Disconnect the current publisher, if any; the broadcast itself goes on
    /// (not emitted by this machine; the stream-key reset does it without a transition).
    DisconnectPublisher,
    /// Disconnect the publisher and end the broadcast now: playlists end.
    EndBroadcast,
}

/// An input that does not apply in the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {input:?} a live stream that is {status}")]
pub struct Refused {
    /// The state.
    pub status: Status,
    /// The input.
    pub input: Input,
}

/// A live stream's lifecycle state: the status and what it needs to decide the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    status: Status,
    /// `auto_start` of the live stream.
    auto_start: bool,
    /// `start` was asked for during this broadcast (before the first segment, or in preview).
    started: bool,
    /// While reconnecting: the state to go back to when the publisher returns.
    resume_to: Status,
}

/// The result of a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The status before.
    pub from: Status,
    /// The status after (may equal `from`: nothing to store).
    pub to: Status,
    /// What the shell must do.
    pub effect: Option<Effect>,
}

impl Transition {
    /// Whether the status changed.
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

impl Lifecycle {
    /// A lifecycle at `status` (as stored) for a live stream with `auto_start`. A stored live
    /// status with no publisher here (a restarted server) is the shell's to correct with
    /// [`Input::BroadcastEnded`].
    pub fn new(status: Status, auto_start: bool) -> Self {
        Lifecycle {
            status,
            auto_start,
            started: false,
            resume_to: Status::Connected,
        }
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether only operators may watch now: in `preview`, or on the way there (`connected`
    /// with `auto_start` off and no `start` yet), or `reconnecting` from either.
    pub fn is_preview(&self) -> bool {
        let heading = !self.auto_start && !self.started;
        match self.status {
            Status::Preview => true,
            Status::Connected => heading,
            Status::Reconnecting => match self.resume_to {
                Status::Preview => true,
                Status::Connected => heading,
                _ => false,
            },
            _ => false,
        }
    }

    /// Changes `auto_start` (a PATCH); it takes effect at the next first segment.
    pub fn set_auto_start(&mut self, auto_start: bool) {
        self.auto_start = auto_start;
    }

    /// Applies `input`.
    pub fn apply(&mut self, input: Input) -> Result<Transition, Refused> {
        use Input as I;
        use Status as S;
        let from = self.status;
        let refused = Err(Refused {
            status: from,
            input,
        });
        let (to, effect) = match (from, input) {
            (S::Disabled, I::Enable) => (S::Idle, None),
            (S::Disabled, I::Disable) => (S::Disabled, None),
            // The publisher's connection or broadcast ending after a disable changes nothing.
            (S::Disabled, I::PublisherLost | I::BroadcastEnded | I::FirstSegment) => {
                (S::Disabled, None)
            }
            (S::Disabled, _) => return refused,
            (_, I::Disable) => (S::Disabled, from.is_live().then_some(Effect::EndBroadcast)),
            (_, I::Enable) => (from, None),
            (S::Idle, I::PublisherConnected) => {
                self.started = false;
                (S::Connected, None)
            }
            (S::Reconnecting, I::PublisherConnected) => (self.resume_to, None),
            (S::Connected, I::FirstSegment) => {
                if self.auto_start || self.started {
                    (S::Active, None)
                } else {
                    (S::Preview, None)
                }
            }
            // A resumed broadcast keeps its state; later segments change nothing.
            (S::Preview | S::Active | S::Reconnecting, I::FirstSegment) => (from, None),
            (S::Connected, I::Start) => {
                self.started = true;
                (S::Connected, None)
            }
            (S::Preview, I::Start) => {
                self.started = true;
                (S::Active, None)
            }
            (S::Active, I::Start) => (S::Active, None),
            (S::Reconnecting, I::Start) => {
                self.started = true;
                if self.resume_to == S::Preview {
                    self.resume_to = S::Active;
                }
                (S::Reconnecting, None)
            }
            (S::Connected | S::Preview | S::Active, I::PublisherLost) => {
                self.resume_to = from;
                (S::Reconnecting, None)
            }
            (S::Reconnecting | S::Idle, I::PublisherLost) => (from, None),
            (S::Reconnecting, I::BroadcastEnded) => (S::Idle, None),
            // The broadcast ended without the loss being seen first (shutdown, complete).
            (S::Connected | S::Preview | S::Active, I::BroadcastEnded) => (S::Idle, None),
            (S::Idle, I::BroadcastEnded) => (S::Idle, None),
            (S::Connected | S::Preview | S::Active | S::Reconnecting, I::Complete) => {
                (S::Idle, Some(Effect::EndBroadcast))
            }
            // Completing an idle stream is a no-op, so retries are safe.
            (S::Idle, I::Complete) => (S::Idle, None),
            (S::Idle, I::Start | I::FirstSegment) => return refused,
            (S::Connected | S::Preview | S::Active, I::PublisherConnected) => return refused,
        };
        self.status = to;
        Ok(Transition { from, to, effect })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Input as I;
    use Status as S;
    use proptest::prelude::*;

    #[test]
    fn preview_is_private_until_start() {
        let mut l = Lifecycle::new(S::Idle, false);
        assert!(!l.is_preview());
        l.apply(I::PublisherConnected).unwrap();
        assert!(l.is_preview(), "connected, heading to preview");
        l.apply(I::FirstSegment).unwrap();
        assert_eq!(l.status(), S::Preview);
        assert!(l.is_preview());
        l.apply(I::PublisherLost).unwrap();
        assert!(l.is_preview(), "reconnecting from preview");
        l.apply(I::Start).unwrap();
        assert!(!l.is_preview(), "started while reconnecting");
        l.apply(I::PublisherConnected).unwrap();
        assert_eq!(l.status(), S::Active);
        assert!(!l.is_preview());
        // With auto_start on, a connected stream is public from the start.
        let mut l = Lifecycle::new(S::Idle, true);
        l.apply(I::PublisherConnected).unwrap();
        assert!(!l.is_preview());
        // Start before the first segment skips preview.
        let mut l = Lifecycle::new(S::Idle, false);
        l.apply(I::PublisherConnected).unwrap();
        l.apply(I::Start).unwrap();
        assert!(!l.is_preview());
        l.apply(I::FirstSegment).unwrap();
        assert_eq!(l.status(), S::Active);
    }

    fn run(auto_start: bool, inputs: &[Input]) -> Vec<Status> {
        let mut l = Lifecycle::new(S::Idle, auto_start);
        inputs
            .iter()
            .map(|i| {
                let _ = l.apply(*i);
                l.status()
            })
            .collect()
    }

    #[test]
    fn a_broadcast_goes_connected_active_reconnecting_idle() {
        assert_eq!(
            run(
                true,
                &[
                    I::PublisherConnected,
                    I::FirstSegment,
                    I::PublisherLost,
                    I::BroadcastEnded
                ]
            ),
            [S::Connected, S::Active, S::Reconnecting, S::Idle]
        );
    }

    #[test]
    fn a_returning_publisher_resumes_where_it_was() {
        assert_eq!(
            run(
                true,
                &[
                    I::PublisherConnected,
                    I::FirstSegment,
                    I::PublisherLost,
                    I::PublisherConnected
                ]
            ),
            [S::Connected, S::Active, S::Reconnecting, S::Active]
        );
        assert_eq!(
            run(
                false,
                &[
                    I::PublisherConnected,
                    I::FirstSegment,
                    I::PublisherLost,
                    I::PublisherConnected,
                    I::Start
                ]
            ),
            [
                S::Connected,
                S::Preview,
                S::Reconnecting,
                S::Preview,
                S::Active
            ]
        );
    }

    #[test]
    fn without_auto_start_the_stream_previews_until_started() {
        assert_eq!(
            run(false, &[I::PublisherConnected, I::FirstSegment, I::Start]),
            [S::Connected, S::Preview, S::Active]
        );
        // Started before the first segment: straight to active.
        assert_eq!(
            run(false, &[I::PublisherConnected, I::Start, I::FirstSegment]),
            [S::Connected, S::Connected, S::Active]
        );
        // The next broadcast previews again.
        assert_eq!(
            run(
                false,
                &[
                    I::PublisherConnected,
                    I::Start,
                    I::FirstSegment,
                    I::Complete,
                    I::PublisherConnected,
                    I::FirstSegment
                ]
            ),
            [
                S::Connected,
                S::Connected,
                S::Active,
                S::Idle,
                S::Connected,
                S::Preview
            ]
        );
    }

    #[test]
    fn disable_ends_the_broadcast_and_refuses_until_enabled() {
        let mut l = Lifecycle::new(S::Idle, true);
        l.apply(I::PublisherConnected).unwrap();
        let t = l.apply(I::Disable).unwrap();
        assert_eq!(t.effect, Some(Effect::EndBroadcast));
        assert_eq!(l.status(), S::Disabled);
        assert!(l.apply(I::PublisherConnected).is_err());
        assert!(l.apply(I::Start).is_err());
        assert_eq!(l.apply(I::PublisherLost).unwrap().to, S::Disabled);
        assert_eq!(l.apply(I::Enable).unwrap().to, S::Idle);
        assert_eq!(
            l.apply(I::Disable).unwrap().effect,
            None,
            "idle: nothing to end"
        );
    }

    #[test]
    fn complete_ends_a_live_broadcast_and_is_idempotent() {
        let mut l = Lifecycle::new(S::Idle, true);
        l.apply(I::PublisherConnected).unwrap();
        l.apply(I::FirstSegment).unwrap();
        let t = l.apply(I::Complete).unwrap();
        assert_eq!((t.to, t.effect), (S::Idle, Some(Effect::EndBroadcast)));
        let t = l.apply(I::Complete).unwrap();
        assert_eq!((t.to, t.effect, t.changed()), (S::Idle, None, false));
    }

    #[test]
    fn inputs_that_do_not_apply_are_refused_and_change_nothing() {
        let mut l = Lifecycle::new(S::Idle, true);
        assert_eq!(
            l.apply(I::Start),
            Err(Refused {
                status: S::Idle,
                input: I::Start
            })
        );
        l.apply(I::PublisherConnected).unwrap();
        assert!(l.apply(I::PublisherConnected).is_err(), "one publisher");
        assert_eq!(l.status(), S::Connected);
    }

    #[test]
    fn names_round_trip() {
        for s in [
            S::Idle,
            S::Connected,
            S::Preview,
            S::Active,
            S::Reconnecting,
            S::Disabled,
        ] {
            assert_eq!(Status::from_name(s.name()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
        }
    }

    fn any_input() -> impl Strategy<Value = Input> {
        prop_oneof![
            Just(I::PublisherConnected),
            Just(I::FirstSegment),
            Just(I::PublisherLost),
            Just(I::BroadcastEnded),
            Just(I::Start),
            Just(I::Complete),
            Just(I::Disable),
            Just(I::Enable),
        ]
    }

    proptest! {
        /// Whatever happens: a refused input changes nothing; only disable reaches disabled
        /// and only enable leaves it; preview is only entered from connected or by a return;
        /// `EndBroadcast` comes only from a live state.
        #[test]
        fn invariants(auto_start: bool, inputs in proptest::collection::vec(any_input(), 0..60)) {
            let mut l = Lifecycle::new(S::Idle, auto_start);
            for i in inputs {
                let before = l;
                match l.apply(i) {
                    Err(_) => prop_assert_eq!(l, before),
                    Ok(t) => {
                        prop_assert_eq!(t.from, before.status());
                        prop_assert_eq!(t.to, l.status());
                        if t.to == S::Disabled && t.from != S::Disabled { prop_assert_eq!(i, I::Disable); }
                        if t.from == S::Disabled && t.to != S::Disabled { prop_assert_eq!(i, I::Enable); }
                        if t.to == S::Preview && t.from != S::Preview {
                            prop_assert!(!auto_start);
                            prop_assert!(matches!(t.from, S::Connected | S::Reconnecting));
                        }
                        if t.effect == Some(Effect::EndBroadcast) { prop_assert!(t.from.is_live()); }
                        if auto_start { prop_assert_ne!(t.to, S::Preview); }
                    }
                }
            }
        }
    }
}
