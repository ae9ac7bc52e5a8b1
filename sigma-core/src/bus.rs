//! The fan-out bus: one producer of a live stream, any number of consumers.
//!
//! The producer appends frames to a bounded window shared by every consumer; each consumer is
//! only a cursor into that window. Payloads are `Bytes`, so no consumer ever costs a copy.
//!
//! Policy, for a live stream:
//! - **Groups.** A group starts at each keyframe of the stream's primary video track; in a stream
//!   without video, at the first keyframe [`AUDIO_GROUP`] or more after the group's start (every
//!   audio frame is a keyframe: one-frame groups would leave a window of a few milliseconds, and
//!   a consumer a moment late would lose frames). The window holds whole groups.
//! - **Bounded.** The window holds at most [`Window::max_groups`] groups, [`Window::max_frames`]
//!   frames and [`Window::max_bytes`] payload bytes. When a push would exceed a bound, the oldest
//!   whole group is dropped (or, when only the current group is left, its oldest frames). Memory
//!   held never depends on what consumers do.
//! - **The producer never waits.** [`Producer::push`] takes a short lock, appends, evicts, and
//!   wakes waiting consumers; it never waits for a consumer to make progress.
//! - **Late joiners** start at the newest group, so a player gets a decodable picture at once.
//! - **Slow consumers** whose position was evicted skip to the newest group (back to live) and
//!   are told, with [`Event::Gap`], how many frames they lost. A gap always ends at a group
//!   start, so what a consumer receives after a gap is decodable.
//! - **Stream info** changes travel in order with the frames: a consumer receives
//!   [`Event::Info`] before the first frame that uses a new [`StreamInfo`] generation.
//! - **End and errors** reach every consumer after it has drained what it can still read.

use crate::{Error, Frame, StreamInfo, TrackId};
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::Notify;

/// The error a producer ends a stream with, shared by every consumer.
pub type StreamError = Arc<dyn std::error::Error + Send + Sync>;

/// Bounds of the shared window. Every bound is enforced after every push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Most groups (GOPs) kept. At least 1.
    pub max_groups: usize,
    /// Most frames kept, across all tracks. At least 1.
    pub max_frames: usize,
    /// Most payload bytes kept. A single frame larger than this is refused.
    pub max_bytes: usize,
}

impl Default for Window {
    /// Three groups, 8,192 frames and 64 MiB: about three 2-second GOPs of a 4K stream at
    /// 60 Mbit/s, far more than a 1080p stream needs.
    fn default() -> Self {
        Window {
            max_groups: 3,
            max_frames: 8192,
            max_bytes: 64 << 20,
        }
    }
}

/// What a consumer receives.
#[derive(Clone)]
pub enum Event {
    /// The stream's tracks; sent first, and again before the first frame of a new generation.
    Info(Arc<StreamInfo>),
    /// The next frame.
    Frame(Frame),
    /// The consumer fell out of the window and lost `frames` frames; the next frame starts a
    /// group.
    Gap {
        /// How many frames this consumer did not receive.
        frames: u64,
    },
    /// The producer finished the stream normally. Nothing follows.
    End,
    /// The producer ended the stream with an error. Nothing follows.
    Error(StreamError),
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Info(i) => f.debug_tuple("Info").field(&i.generation()).finish(),
            Event::Frame(fr) => f.debug_tuple("Frame").field(fr).finish(),
            Event::Gap { frames } => f.debug_struct("Gap").field("frames", frames).finish(),
            Event::End => f.write_str("End"),
            Event::Error(e) => f.debug_tuple("Error").field(&e.to_string()).finish(),
        }
    }
}

/// How much the window holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retained {
    /// Groups (whole or partial) in the window.
    pub groups: usize,
    /// Frames in the window.
    pub frames: usize,
    /// Payload bytes in the window.
    pub bytes: usize,
}

struct Entry {
    frame: Frame,
    info: Arc<StreamInfo>,
    group_start: bool,
}

#[derive(Clone)]
enum Closed {
    End,
    Error(StreamError),
}

struct State {
    window: Window,
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`.
    base: u64,
    /// Sequence numbers of the group starts still in the window, oldest first.
    group_starts: VecDeque<u64>,
    bytes: usize,
    info: Option<Arc<StreamInfo>>,
    closed: Option<Closed>,
}

impl State {
    fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    fn over(&self) -> bool {
        self.group_starts.len() > self.window.max_groups
            || self.entries.len() > self.window.max_frames
            || self.bytes > self.window.max_bytes
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.frame.len();
            if self.group_starts.front() == Some(&self.base) {
                self.group_starts.pop_front();
            }
            self.base += 1;
        }
    }

    /// Drops the oldest frames until every bound holds, whole groups first. The newest frame is
    /// never dropped (a single frame larger than the byte window is refused before it gets here).
    fn evict(&mut self) {
        while self.over() && self.entries.len() > 1 {
            let stop = match (self.group_starts.front(), self.group_starts.get(1)) {
                // Frames before the first group start are undecodable: drop them all.
                (Some(&first), _) if first > self.base => first,
                // The window starts at a group: drop that whole group.
                (Some(_), Some(&second)) => second,
                // Only the current group (or no group at all): trim it from the front.
                _ => self.base + 1,
            };
            while self.base < stop {
                self.pop_front();
            }
        }
    }
}

struct Shared {
    state: RwLock<State>,
    notify: Notify,
    /// Set by [`Subscriber::revoke`]: the producer's next push fails.
    revoked: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A poisoned lock means a panic happened while holding it; the state is still coherent
        // because every mutation keeps the invariants between statements that can panic.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates a bus with the given window: the producer, and a handle to subscribe consumers.
pub fn channel(window: Window) -> (Producer, Subscriber) {
    let window = Window {
        max_groups: window.max_groups.max(1),
        max_frames: window.max_frames.max(1),
        max_bytes: window.max_bytes,
    };
    let shared = Arc::new(Shared {
        state: RwLock::new(State {
            window,
            entries: VecDeque::new(),
            base: 0,
            group_starts: VecDeque::new(),
            bytes: 0,
            info: None,
            closed: None,
        }),
        notify: Notify::new(),
        revoked: std::sync::atomic::AtomicBool::new(false),
    });
    (
        Producer {
            shared: shared.clone(),
            primary: None,
            audio_group: None,
            finished: false,
        },
        Subscriber { shared },
    )
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.read();
        f.debug_struct("Bus")
            .field("base", &st.base)
            .field("frames", &st.entries.len())
            .field("groups", &st.group_starts.len())
            .field("bytes", &st.bytes)
            .field("closed", &st.closed.is_some())
            .finish()
    }
}

/// How much media a group of a stream without video spans, at least: 1 s.
pub const AUDIO_GROUP: std::time::Duration = std::time::Duration::from_secs(1);

/// In a stream without video: whether `frame` (a keyframe) starts a group, that is, lies
/// [`AUDIO_GROUP`] or more after the current group's start (or before it, or on another
/// track). Records the new group's start in `group`.
fn starts_audio_group(
    group: &mut Option<(TrackId, i64)>,
    frame: &Frame,
    info: &StreamInfo,
) -> bool {
    let timescale = info.track(frame.track()).map_or(1, |t| t.timescale());
    let span = crate::time::rescale(AUDIO_GROUP.as_millis() as i64, 1000, timescale);
    let starts = match *group {
        Some((track, at)) if track == frame.track() => {
            !(0..span).contains(&frame.dts().saturating_sub(at))
        }
        _ => true,
    };
    if starts {
        *group = Some((frame.track(), frame.dts()));
    }
    starts
}

/// The producing end of a bus. Dropping it ends the stream normally.
#[derive(Debug)]
pub struct Producer {
    shared: Arc<Shared>,
    primary: Option<Option<TrackId>>,
    /// Without video: the track and decode time that started the current group.
    audio_group: Option<(TrackId, i64)>,
    finished: bool,
}

impl Producer {
    /// Sets the stream's tracks. Frames pushed after this use `info`; consumers receive it
    /// before the first such frame. Generations should grow; the bus does not renumber them.
    pub fn set_info(&mut self, info: Arc<StreamInfo>) {
        self.primary = Some(info.primary_video().map(|t| t.id()));
        self.audio_group = None;
        self.shared.write().info = Some(info);
    }

    /// The stream info in force, if any.
    pub fn info(&self) -> Option<Arc<StreamInfo>> {
        self.shared.read().info.clone()
    }

    /// Appends a frame and wakes waiting consumers. Never waits for a consumer.
    ///
    /// Errors: [`Error::UnknownTrack`] when no stream info was set or the frame's track is not
    /// in it; [`Error::LimitExceeded`] when the frame alone is larger than the byte window;
    /// [`Error::Revoked`] once a consumer side [revoked](Subscriber::revoke) the bus.
    pub fn push(&mut self, frame: Frame) -> Result<(), Error> {
        if self
            .shared
            .revoked
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(Error::Revoked);
        }
        let Some(primary) = self.primary else {
            return Err(Error::UnknownTrack(frame.track().0));
        };
        {
            let mut st = self.shared.write();
            let info = match &st.info {
                Some(info) if info.track(frame.track()).is_some() => info.clone(),
                _ => return Err(Error::UnknownTrack(frame.track().0)),
            };
            let group_start = frame.is_keyframe()
                && match primary {
                    Some(p) => p == frame.track(),
                    None => starts_audio_group(&mut self.audio_group, &frame, &info),
                };
            if frame.len() > st.window.max_bytes {
                return Err(Error::LimitExceeded {
                    what: "frame size",
                    size: frame.len() as u64,
                    limit: st.window.max_bytes as u64,
                });
            }
            if group_start {
                let seq = st.end();
                st.group_starts.push_back(seq);
            }
            st.bytes += frame.len();
            st.entries.push_back(Entry {
                frame,
                info,
                group_start,
            });
            st.evict();
        }
        self.shared.notify.notify_waiters();
        Ok(())
    }

    /// Ends the stream normally: consumers drain what is left, then receive [`Event::End`].
    pub fn finish(mut self) {
        self.close(Closed::End);
    }

    /// Ends the stream with an error: consumers drain what is left, then receive
    /// [`Event::Error`].
    pub fn fail(mut self, error: StreamError) {
        self.close(Closed::Error(error));
    }

    /// What the window holds now.
    pub fn retained(&self) -> Retained {
        let st = self.shared.read();
        Retained {
            groups: st.group_starts.len(),
            frames: st.entries.len(),
            bytes: st.bytes,
        }
    }

    /// A handle to subscribe consumers.
    pub fn subscriber(&self) -> Subscriber {
        Subscriber {
            shared: self.shared.clone(),
        }
    }

    fn close(&mut self, how: Closed) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.shared.write().closed = Some(how);
        self.shared.notify.notify_waiters();
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.close(Closed::End);
    }
}

/// A cloneable handle that subscribes new consumers to a bus.
#[derive(Clone, Debug)]
pub struct Subscriber {
    shared: Arc<Shared>,
}

impl Subscriber {
    /// Tells the producer to stop: its next [`push`](Producer::push) fails with
    /// [`Error::Revoked`], so an ingest driver closes the publisher's connection (a disabled
    /// stream, a reset key). Frames already in the window stay readable.
    pub fn revoke(&self) {
        self.shared
            .revoked
            .store(true, std::sync::atomic::Ordering::Release);
        self.shared.notify.notify_waiters();
    }

    /// Whether [`revoke`](Self::revoke) was called.
    pub fn is_revoked(&self) -> bool {
        self.shared
            .revoked
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// A consumer that starts at the newest group in the window (or, if there is none yet, at
    /// the next group the producer starts).
    pub fn subscribe(&self) -> Consumer {
        let st = self.shared.read();
        let (next, need_group_start) = match st.group_starts.back() {
            Some(&s) => (s, false),
            None => (st.end(), true),
        };
        Consumer {
            shared: self.shared.clone(),
            next,
            need_group_start,
            count_skipped: false,
            lost: 0,
            generation: None,
            done: false,
        }
    }
}

/// A cursor into a bus. Cloning a consumer makes another at the same position.
#[derive(Clone, Debug)]
pub struct Consumer {
    shared: Arc<Shared>,
    next: u64,
    need_group_start: bool,
    /// Whether frames skipped while waiting for a group start count as lost (after a lag) or
    /// not (a new subscriber waiting for its first keyframe).
    count_skipped: bool,
    lost: u64,
    generation: Option<u64>,
    done: bool,
}

impl Consumer {
    /// The next event if one is ready, without waiting. `None` means nothing yet (or, after
    /// [`Event::End`] / [`Event::Error`] was returned, nothing ever again).
    pub fn pull(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let st = self.shared.read();
        loop {
            if self.next < st.base {
                // Fell out of the window: back to live at the newest group.
                match st.group_starts.back() {
                    Some(&s) => {
                        self.lost += s - self.next;
                        self.next = s;
                        self.need_group_start = false;
                    }
                    None => {
                        self.lost += st.end() - self.next;
                        self.next = st.end();
                        self.need_group_start = true;
                        self.count_skipped = true;
                    }
                }
            }
            if self.next == st.end() {
                return match &st.closed {
                    None => None,
                    Some(closed) => {
                        if self.lost > 0 {
                            return Some(Event::Gap {
                                frames: std::mem::take(&mut self.lost),
                            });
                        }
                        self.done = true;
                        Some(match closed {
                            Closed::End => Event::End,
                            Closed::Error(e) => Event::Error(e.clone()),
                        })
                    }
                };
            }
            let entry = &st.entries[(self.next - st.base) as usize];
            if self.need_group_start && !entry.group_start {
                if self.count_skipped {
                    self.lost += 1;
                }
                self.next += 1;
                continue;
            }
            self.need_group_start = false;
            self.count_skipped = false;
            if self.lost > 0 {
                return Some(Event::Gap {
                    frames: std::mem::take(&mut self.lost),
                });
            }
            if self.generation != Some(entry.info.generation()) {
                self.generation = Some(entry.info.generation());
                return Some(Event::Info(entry.info.clone()));
            }
            self.next += 1;
            return Some(Event::Frame(entry.frame.clone()));
        }
    }

    /// The next event, waiting for the producer if need be. `None` once the stream's end or
    /// error has been returned.
    pub async fn recv(&mut self) -> Option<Event> {
        let shared = self.shared.clone();
        loop {
            let notified = shared.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(ev) = self.pull() {
                return Some(ev);
            }
            if self.done {
                return None;
            }
            notified.await;
        }
    }

    /// How many frames this consumer is behind the producer (0 when caught up).
    pub fn lag(&self) -> u64 {
        let st = self.shared.read();
        st.end().saturating_sub(self.next.max(st.base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AacConfig, CodecConfig, H264Config, TrackInfo};
    use bytes::Bytes;
    use proptest::prelude::*;

    const V: TrackId = TrackId(1);
    const A: TrackId = TrackId(2);

    fn testdata(name: &str) -> Bytes {
        let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        Bytes::from(std::fs::read(&path).unwrap())
    }

    #[tokio::test]
    async fn audio_only_groups_span_a_second_so_a_late_consumer_loses_nothing() {
        let full = info(1);
        let audio = StreamInfo::new(1, vec![full.track(A).unwrap().clone()]).unwrap();
        let (mut p, sub) = channel(Window::default());
        p.set_info(audio);
        let mut c = sub.subscribe();
        // 3 s of AAC frames (all keyframes) pushed before the consumer reads any: with one
        // group per frame the 3-group window would have kept 3 frames.
        let n = 3 * 48_000 / 1024;
        for i in 0..n {
            let t = i64::from(i) * 1024;
            p.push(Frame::new(A, t, t, true, Bytes::from_static(b"aac")))
                .unwrap();
        }
        assert_eq!(p.retained().groups, 3);
        p.finish();
        let mut frames = 0;
        while let Some(e) = c.recv().await {
            match e {
                Event::Frame(_) => frames += 1,
                Event::Gap { frames } => panic!("lost {frames}"),
                Event::End => break,
                _ => {}
            }
        }
        assert_eq!(frames, n);
    }

    #[test]
    fn a_revoked_bus_refuses_the_producer_and_keeps_what_it_has() {
        let full = info(1);
        let audio = StreamInfo::new(1, vec![full.track(A).unwrap().clone()]).unwrap();
        let (mut p, sub) = channel(Window::default());
        p.set_info(audio);
        let mut c = sub.subscribe();
        p.push(Frame::new(A, 0, 0, true, Bytes::from_static(b"aac")))
            .unwrap();
        assert!(!sub.is_revoked());
        sub.revoke();
        assert!(sub.is_revoked());
        let e = p.push(Frame::new(A, 1024, 1024, true, Bytes::from_static(b"aac")));
        assert_eq!(e, Err(crate::Error::Revoked));
        assert!(matches!(c.pull(), Some(Event::Info(_))));
        assert!(matches!(c.pull(), Some(Event::Frame(_))));
    }

    fn info(generation: u64) -> Arc<StreamInfo> {
        let v = H264Config::from_avcc(testdata("x264_baseline_360p25.avcc")).unwrap();
        let a = AacConfig::from_audio_specific_config(testdata("aac_lc_48k_stereo.asc")).unwrap();
        StreamInfo::new(
            generation,
            vec![
                TrackInfo::new(V, 90_000, CodecConfig::H264(v)).unwrap(),
                TrackInfo::new(A, 48_000, CodecConfig::Aac(a)).unwrap(),
            ],
        )
        .unwrap()
    }

    /// A frame whose dts is its sequence number in the producer's order.
    fn frame(seq: u64, track: TrackId, key: bool, len: usize) -> Frame {
        Frame::new(
            track,
            seq as i64,
            seq as i64,
            key,
            Bytes::from(vec![0u8; len]),
        )
    }

    fn drain(c: &mut Consumer) -> Vec<Event> {
        std::iter::from_fn(|| c.pull()).collect()
    }

    fn frames(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some(f.dts() as u64),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn late_joiner_starts_at_newest_keyframe_with_info_first() {
        let (mut p, sub) = channel(Window::default());
        p.set_info(info(1));
        for seq in 0..10 {
            p.push(frame(seq, V, seq % 4 == 0, 10)).unwrap();
        }
        let mut c = sub.subscribe();
        let ev = drain(&mut c);
        assert!(matches!(&ev[0], Event::Info(i) if i.generation() == 1));
        assert_eq!(frames(&ev), vec![8, 9]);
    }

    #[test]
    fn subscriber_before_any_keyframe_waits_for_one_without_reporting_loss() {
        let (mut p, sub) = channel(Window::default());
        p.set_info(info(1));
        let mut c = sub.subscribe();
        p.push(frame(0, A, true, 10)).unwrap();
        p.push(frame(1, V, false, 10)).unwrap();
        p.push(frame(2, V, true, 10)).unwrap();
        p.push(frame(3, A, true, 10)).unwrap();
        let ev = drain(&mut c);
        assert!(!ev.iter().any(|e| matches!(e, Event::Gap { .. })), "{ev:?}");
        assert_eq!(frames(&ev), vec![2, 3]);
    }

    #[test]
    fn payloads_are_shared_not_copied() {
        let (mut p, sub) = channel(Window::default());
        p.set_info(info(1));
        let data = Bytes::from(vec![1u8; 1000]);
        let mut a = sub.subscribe();
        let mut b = sub.subscribe();
        p.push(Frame::new(V, 0, 0, true, data.clone())).unwrap();
        for c in [&mut a, &mut b] {
            let got = drain(c)
                .into_iter()
                .find_map(|e| match e {
                    Event::Frame(f) => Some(f),
                    _ => None,
                })
                .unwrap();
            assert_eq!(got.data().as_ptr(), data.as_ptr());
        }
    }

    #[test]
    fn info_change_arrives_before_the_first_frame_that_uses_it() {
        let (mut p, sub) = channel(Window::default());
        p.set_info(info(1));
        let mut c = sub.subscribe();
        p.push(frame(0, V, true, 1)).unwrap();
        p.set_info(info(2));
        p.push(frame(1, V, true, 1)).unwrap();
        let gens: Vec<String> = drain(&mut c)
            .iter()
            .map(|e| match e {
                Event::Info(i) => format!("info{}", i.generation()),
                Event::Frame(f) => format!("frame{}", f.dts()),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(gens, ["info1", "frame0", "info2", "frame1"]);
    }

    #[test]
    fn end_and_error_reach_every_consumer_after_draining() {
        let (mut p, sub) = channel(Window::default());
        p.set_info(info(1));
        let mut cs: Vec<_> = (0..3).map(|_| sub.subscribe()).collect();
        p.push(frame(0, V, true, 1)).unwrap();
        p.finish();
        for c in &mut cs {
            let ev = drain(c);
            assert_eq!(frames(&ev), vec![0]);
            assert!(matches!(ev.last(), Some(Event::End)), "{ev:?}");
            assert!(c.pull().is_none());
        }

        let (mut p, sub) = channel(Window::default());
        p.set_info(info(1));
        let mut c = sub.subscribe();
        let err: StreamError = Arc::new(std::io::Error::other("publisher reset"));
        p.push(frame(0, V, true, 1)).unwrap();
        p.fail(err);
        let ev = drain(&mut c);
        assert!(
            matches!(ev.last(), Some(Event::Error(e)) if e.to_string() == "publisher reset"),
            "{ev:?}"
        );
        // A consumer subscribed after the end still learns of it.
        let mut late = sub.subscribe();
        assert!(matches!(drain(&mut late).last(), Some(Event::Error(_))));
    }

    #[test]
    fn dropping_the_producer_ends_the_stream() {
        let (mut p, sub) = channel(Window::default());
        p.set_info(info(1));
        let mut c = sub.subscribe();
        drop(p);
        assert!(matches!(c.pull(), Some(Event::End)));
    }

    #[test]
    fn push_errors_are_typed() {
        let (mut p, _sub) = channel(Window {
            max_groups: 2,
            max_frames: 10,
            max_bytes: 100,
        });
        assert_eq!(p.push(frame(0, V, true, 1)), Err(Error::UnknownTrack(1)));
        p.set_info(info(1));
        assert_eq!(
            p.push(frame(0, TrackId(9), true, 1)),
            Err(Error::UnknownTrack(9))
        );
        assert!(matches!(
            p.push(frame(0, V, true, 101)),
            Err(Error::LimitExceeded {
                size: 101,
                limit: 100,
                ..
            })
        ));
        assert_eq!(p.retained(), Retained::default());
    }

    #[test]
    fn slow_consumer_skips_to_newest_group_and_is_told() {
        let (mut p, sub) = channel(Window {
            max_groups: 2,
            max_frames: 1000,
            max_bytes: 1 << 20,
        });
        p.set_info(info(1));
        let mut slow = sub.subscribe();
        for seq in 0..20 {
            p.push(frame(seq, V, seq % 5 == 0, 10)).unwrap();
        }
        // Window holds groups starting at 10 and 15; the consumer was at 0.
        let ev = drain(&mut slow);
        let gap = ev.iter().find_map(|e| match e {
            Event::Gap { frames } => Some(*frames),
            _ => None,
        });
        assert_eq!(gap, Some(15));
        assert_eq!(frames(&ev), (15..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn recv_waits_for_the_producer() {
        let (mut p, sub) = channel(Window::default());
        p.set_info(info(1));
        let mut c = sub.subscribe();
        let task = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(ev) = c.recv().await {
                got.push(ev);
            }
            got
        });
        for seq in 0..50 {
            p.push(frame(seq, V, seq % 10 == 0, 10)).unwrap();
            tokio::task::yield_now().await;
        }
        p.finish();
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("consumer finished")
            .unwrap();
        assert_eq!(frames(&got), (0..50).collect::<Vec<_>>());
        assert!(matches!(got.last(), Some(Event::End)));
    }

    /// The producer pushes a long stream while a thousand consumers never read and others read
    /// from another thread: it finishes regardless (a push that waited on a consumer would hang
    /// here until the watchdog fails the test).
    #[test]
    fn producer_never_waits_for_consumers() {
        let (mut p, sub) = channel(Window {
            max_groups: 2,
            max_frames: 200,
            max_bytes: 1 << 20,
        });
        p.set_info(info(1));
        let idle: Vec<_> = (0..1000).map(|_| sub.subscribe()).collect();
        let mut busy = sub.subscribe();
        let reader = std::thread::spawn(move || {
            let mut n = 0u64;
            loop {
                match busy.pull() {
                    Some(Event::End) => return n,
                    Some(Event::Frame(_)) => n += 1,
                    _ => std::thread::yield_now(),
                }
            }
        });
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let producer = std::thread::spawn(move || {
            for seq in 0..100_000 {
                p.push(frame(seq, V, seq % 30 == 0, 16)).unwrap();
                assert!(p.retained().frames <= 200);
            }
            p.finish();
            done_tx.send(()).unwrap();
        });
        done_rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("producer blocked");
        producer.join().unwrap();
        assert!(reader.join().unwrap() > 0);
        drop(idle);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Video { key: bool, len: usize },
        Audio { len: usize },
        Pull { consumer: usize, max: usize },
        Subscribe,
        NewInfo,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (prop::bool::weighted(0.15), 0usize..400).prop_map(|(key, len)| Op::Video { key, len }),
            3 => (0usize..100).prop_map(|len| Op::Audio { len }),
            4 => (0usize..4, 0usize..30).prop_map(|(consumer, max)| Op::Pull { consumer, max }),
            1 => Just(Op::Subscribe),
            1 => Just(Op::NewInfo),
        ]
    }

    fn window() -> impl Strategy<Value = Window> {
        (1usize..5, 1usize..60, 400usize..4000).prop_map(|(max_groups, max_frames, max_bytes)| {
            Window {
                max_groups,
                max_frames,
                max_bytes,
            }
        })
    }

    /// What one consumer saw, checked as it arrives.
    struct Seen {
        consumer: Consumer,
        last: Option<u64>,
        pending_gap: Option<u64>,
        generation: Option<u64>,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn bus_invariants(window in window(), ops in prop::collection::vec(op(), 1..400)) {
            let (mut p, sub) = channel(window);
            let mut generation = 1;
            p.set_info(info(generation));
            // Every frame pushed, by sequence: (is group start, info generation).
            let mut pushed: Vec<(bool, u64)> = Vec::new();
            let mut seen: Vec<Seen> = Vec::new();
            let new_seen = |c: Consumer| Seen { consumer: c, last: None, pending_gap: None, generation: None };
            seen.push(new_seen(sub.subscribe()));
            for op in ops {
                match op {
                    Op::Video { key, len } => {
                        let seq = pushed.len() as u64;
                        p.push(frame(seq, V, key, len)).unwrap();
                        pushed.push((key, generation));
                    }
                    Op::Audio { len } => {
                        let seq = pushed.len() as u64;
                        p.push(frame(seq, A, true, len)).unwrap();
                        pushed.push((false, generation));
                    }
                    Op::Subscribe => seen.push(new_seen(sub.subscribe())),
                    Op::NewInfo => {
                        generation += 1;
                        p.set_info(info(generation));
                    }
                    Op::Pull { consumer, max } => {
                        let n = seen.len();
                        let s = &mut seen[consumer % n];
                        for _ in 0..max {
                            match s.consumer.pull() {
                                None => break,
                                Some(Event::Gap { frames }) => {
                                    prop_assert!(frames > 0);
                                    // Falling behind again before reading the next frame adds up.
                                    s.pending_gap = Some(s.pending_gap.unwrap_or(0) + frames);
                                }
                                Some(Event::Info(i)) => {
                                    prop_assert!(Some(i.generation()) != s.generation);
                                    s.generation = Some(i.generation());
                                }
                                Some(Event::Frame(f)) => {
                                    let seq = f.dts() as u64;
                                    let (group_start, g) = pushed[seq as usize];
                                    prop_assert_eq!(s.generation, Some(g), "frame before its info");
                                    match s.last {
                                        // First frame of a consumer: a group start.
                                        None => prop_assert!(group_start, "consumer started at {}", seq),
                                        Some(last) => {
                                            prop_assert!(seq > last, "order/duplicate: {} after {}", seq, last);
                                            let missed = seq - last - 1;
                                            if missed > 0 {
                                                prop_assert_eq!(s.pending_gap, Some(missed), "gap misreported");
                                                prop_assert!(group_start, "gap ended mid-group at {}", seq);
                                            } else {
                                                prop_assert_eq!(s.pending_gap, None);
                                            }
                                        }
                                    }
                                    s.pending_gap = None;
                                    s.last = Some(seq);
                                }
                                Some(other) => prop_assert!(false, "unexpected {:?}", other),
                            }
                        }
                    }
                }
                let r = p.retained();
                prop_assert!(r.groups <= window.max_groups, "{:?} {:?}", r, window);
                prop_assert!(r.frames <= window.max_frames, "{:?} {:?}", r, window);
                prop_assert!(r.bytes <= window.max_bytes, "{:?} {:?}", r, window);
            }
            // After the end, every consumer drains to End and saw no frame twice.
            p.finish();
            for s in &mut seen {
                let mut last = s.last;
                let mut ended = false;
                while let Some(ev) = s.consumer.pull() {
                    prop_assert!(!ended, "event after End");
                    match ev {
                        Event::Frame(f) => {
                            let seq = f.dts() as u64;
                            prop_assert!(last.is_none_or(|l| seq > l));
                            last = Some(seq);
                        }
                        Event::End => ended = true,
                        _ => {}
                    }
                }
                prop_assert!(ended);
            }
        }
    }
}
