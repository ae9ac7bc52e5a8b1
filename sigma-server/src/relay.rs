//! Publisher continuity: one long-lived stream bus fed by a sequence of publisher connections.
//!
//! Each RTMP connection publishes into a bus of its own. A relay task forwards that bus into the
//! stream's long-lived bus, which the packager consumes. When a publisher drops, the relay waits
//! up to the grace period for the next one; if it comes, the stream continues with a new
//! [`StreamInfo`] generation (so the packager writes a discontinuity) and timestamps shifted to
//! carry on just after the previous ones; if not, the stream's bus ends and the playlists close.
//!
//! Forwarding clones `Frame`s, which shares their payloads: nothing is copied.

use sigma_core::bus::{self, Consumer, Event, Producer, Subscriber, Window};
use sigma_core::time::rescale;
use sigma_core::{Frame, StreamInfo, TrackId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

/// Microseconds, the common unit for lining up tracks across publishers.
const MICROS: u32 = 1_000_000;
/// Space left between the last frame of one publisher and the first of the next.
const RESUME_GAP_US: i64 = 100_000;

/// What a relay is doing, as [`RelayHandle::watch`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayState {
    /// A publisher is connected (or has claimed the stream).
    pub connected: bool,
    /// The stream has ended: its bus is finished and no publisher can resume it.
    pub ended: bool,
}

/// Handle to a running relay: hands it the next publisher's bus, or ends the stream.
#[derive(Clone, Debug)]
pub struct RelayHandle {
    next: mpsc::Sender<Consumer>,
    state: Arc<watch::Sender<RelayState>>,
    end: Arc<Notify>,
}

impl RelayHandle {
    /// Claims the stream for a new publisher: true if no publisher is connected now (the caller
    /// must then [`resume`](Self::resume)), false if one is.
    pub fn claim(&self) -> bool {
        self.state.send_if_modified(|s| {
            let free = !s.connected;
            s.connected = true;
            free
        })
    }

    /// Whether a publisher is connected (or claimed) now.
    pub fn is_connected(&self) -> bool {
        self.state.borrow().connected
    }

    /// The relay's state, as it changes (publisher lost, stream ended).
    pub fn watch(&self) -> watch::Receiver<RelayState> {
        self.state.subscribe()
    }

    /// Hands over a new publisher's bus after a successful [`claim`](Self::claim). Fails if
    /// the relay has already ended the stream (the grace period ran out), in which case the
    /// caller starts a new stream.
    pub fn resume(&self, publisher: Consumer) -> Result<(), Consumer> {
        self.next.try_send(publisher).map_err(|e| {
            self.state.send_modify(|s| s.connected = false);
            match e {
                mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s) => s,
            }
        })
    }

    /// Ends the stream now, without waiting for the grace period: the current publisher's
    /// frames stop being forwarded and the stream's bus finishes (its playlists end).
    pub fn end(&self) {
        self.end.notify_one();
    }
}

/// What the relay reports when it stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelaySummary {
    /// Publisher connections served.
    pub publishers: u32,
    /// Frames forwarded.
    pub frames: u64,
    /// Frames the relay itself lost by falling behind a publisher's bus.
    pub lost: u64,
}

/// Starts a relay for a stream whose first publisher writes into the bus `first` reads.
/// Consumers are made by the caller before the publisher starts, so nothing is missed. Returns the stream's
/// long-lived bus (for the packager), the handle for later publishers, and the task's join
/// handle, which yields a summary when the stream ends.
pub fn spawn(
    first: Consumer,
    window: Window,
    grace: Duration,
) -> (
    Subscriber,
    RelayHandle,
    tokio::task::JoinHandle<RelaySummary>,
) {
    let (producer, stream) = bus::channel(window);
    let (tx, rx) = mpsc::channel(1);
    let state = Arc::new(
        watch::channel(RelayState {
            connected: true,
            ended: false,
        })
        .0,
    );
    let end = Arc::new(Notify::new());
    let task = tokio::spawn(run(first, producer, rx, grace, state.clone(), end.clone()));
    (
        stream,
        RelayHandle {
            next: tx,
            state,
            end,
        },
        task,
    )
}

struct Continuity {
    generation: u64,
    /// Per track: timescale, and the last forwarded dts in that timescale.
    last: HashMap<TrackId, (u32, i64)>,
    /// Offset added to the current publisher's timestamps, in microseconds.
    offset_us: Option<i64>,
}

impl Continuity {
    fn end_us(&self) -> Option<i64> {
        self.last
            .values()
            .map(|&(ts, dts)| rescale(dts, ts, MICROS))
            .max()
    }

    fn forward(&mut self, info: &StreamInfo, frame: Frame) -> Frame {
        let Some(track) = info.track(frame.track()) else {
            return frame;
        };
        let ts = track.timescale();
        let offset_us = match self.offset_us {
            Some(o) => o,
            None => {
                // First frame of this publisher: the first publisher keeps its timestamps; a
                // resumed one continues just after the latest frame forwarded so far.
                let o = match self.end_us() {
                    None => 0,
                    Some(end) => end + RESUME_GAP_US - rescale(frame.dts(), ts, MICROS),
                };
                self.offset_us = Some(o);
                o
            }
        };
        let shifted = frame.shifted(rescale(offset_us, MICROS, ts));
        self.last.insert(shifted.track(), (ts, shifted.dts()));
        shifted
    }
}

async fn run(
    first: Consumer,
    mut out: Producer,
    mut next: mpsc::Receiver<Consumer>,
    grace: Duration,
    state: Arc<watch::Sender<RelayState>>,
    end: Arc<Notify>,
) -> RelaySummary {
    let mut summary = RelaySummary {
        publishers: 0,
        frames: 0,
        lost: 0,
    };
    let mut continuity = Continuity {
        generation: 0,
        last: HashMap::new(),
        offset_us: None,
    };
    let mut publisher = Some(first);
    let mut ended_early = false;
    while let Some(mut consumer) = publisher.take() {
        summary.publishers += 1;
        continuity.offset_us = None;
        let mut info: Option<Arc<StreamInfo>> = None;
        loop {
            let event = tokio::select! {
                e = consumer.recv() => e,
                () = end.notified() => {
                    ended_early = true;
                    None
                }
            };
            let Some(event) = event else { break };
            match event {
                Event::Info(i) => {
                    continuity.generation += 1;
                    // Same tracks, renumbered so generations keep growing across publishers.
                    match StreamInfo::new(continuity.generation, i.tracks().to_vec()) {
                        Ok(renumbered) => out.set_info(renumbered),
                        Err(e) => {
                            tracing::warn!(error = %e, "publisher stream info refused");
                            break;
                        }
                    }
                    info = Some(i);
                }
                Event::Frame(frame) => {
                    let Some(i) = &info else { continue };
                    let frame = continuity.forward(i, frame);
                    match out.push(frame) {
                        Ok(()) => summary.frames += 1,
                        Err(e) => tracing::warn!(error = %e, "frame refused by stream bus"),
                    }
                }
                Event::Gap { frames } => summary.lost += frames,
                Event::End => break,
                Event::Error(e) => {
                    tracing::info!(error = %e, "publisher ended with an error");
                    break;
                }
            }
        }
        // The publisher is gone: wait for the next one within the grace period.
        state.send_modify(|s| s.connected = false);
        if ended_early {
            break;
        }
        publisher = tokio::select! {
            r = tokio::time::timeout(grace, next.recv()) => r.ok().flatten(),
            () = end.notified() => None,
        };
    }
    // Refuse late publishers explicitly: they will start a new stream.
    next.close();
    out.finish();
    state.send_modify(|s| {
        s.connected = false;
        s.ended = true;
    });
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sigma_core::{AacConfig, CodecConfig, H264Config, TrackInfo};

    const V: TrackId = TrackId(1);
    const A: TrackId = TrackId(2);

    fn info() -> Arc<StreamInfo> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sigma-core/testdata/");
        let avcc = std::fs::read(format!("{dir}x264_baseline_360p25.avcc")).unwrap();
        let asc = std::fs::read(format!("{dir}aac_lc_48k_stereo.asc")).unwrap();
        StreamInfo::new(
            1,
            vec![
                TrackInfo::new(
                    V,
                    90_000,
                    CodecConfig::H264(H264Config::from_avcc(avcc.into()).unwrap()),
                )
                .unwrap(),
                TrackInfo::new(
                    A,
                    48_000,
                    CodecConfig::Aac(AacConfig::from_audio_specific_config(asc.into()).unwrap()),
                )
                .unwrap(),
            ],
        )
        .unwrap()
    }

    /// One second of 25 fps video and 48 kHz AAC starting at dts 0, keyframe first.
    fn publish_one_second(p: &mut Producer) {
        p.set_info(info());
        for i in 0..25i64 {
            p.push(Frame::new(
                V,
                i * 3600,
                i * 3600,
                i == 0,
                Bytes::from_static(b"v"),
            ))
            .unwrap();
            for j in 0..2i64 {
                let n = i * 2 + j;
                p.push(Frame::new(
                    A,
                    n * 1024,
                    n * 1024,
                    true,
                    Bytes::from_static(b"a"),
                ))
                .unwrap();
            }
        }
    }

    async fn collect(sub: &Subscriber, c: &mut bus::Consumer) -> Vec<Event> {
        let _ = sub;
        let mut v = Vec::new();
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), c.recv()).await {
            v.push(ev);
        }
        v
    }

    #[tokio::test]
    async fn resumed_publisher_continues_with_new_generation_and_later_timestamps() {
        let (mut p1, s1) = bus::channel(Window::default());
        let (stream, handle, task) =
            spawn(s1.subscribe(), Window::default(), Duration::from_secs(5));
        let mut out = stream.subscribe();
        publish_one_second(&mut p1);
        p1.finish();
        // The first publisher is gone once the relay has drained it.
        for _ in 0..100 {
            if !handle.is_connected() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(handle.claim(), "stream free for the next publisher");
        assert!(!handle.claim(), "and claimed only once");
        let (mut p2, s2) = bus::channel(Window::default());
        handle.resume(s2.subscribe()).unwrap();
        tokio::task::yield_now().await;
        publish_one_second(&mut p2);
        p2.finish();
        drop(handle);
        let summary = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(summary.publishers, 2);
        assert_eq!(summary.frames, 150);
        let events = collect(&stream, &mut out).await;
        let gens: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                Event::Info(i) => Some(i.generation()),
                _ => None,
            })
            .collect();
        assert_eq!(gens, [1, 2]);
        let video: Vec<i64> = events
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f) if f.track() == V => Some(f.dts()),
                _ => None,
            })
            .collect();
        assert_eq!(video.len(), 50);
        assert!(
            video.windows(2).all(|w| w[1] > w[0]),
            "video dts must keep growing"
        );
        // The second publisher starts 100 ms after the latest first-publisher frame (the last
        // audio frame, at 49 * 1024 / 48000 s).
        let last_audio_us = rescale(49 * 1024, 48_000, MICROS);
        assert_eq!(
            video[25],
            rescale(last_audio_us + RESUME_GAP_US, MICROS, 90_000)
        );
        assert!(matches!(events.last(), Some(Event::End)));
    }

    #[tokio::test(start_paused = true)]
    async fn stream_ends_when_grace_period_passes() {
        let (mut p1, s1) = bus::channel(Window::default());
        let (stream, handle, task) =
            spawn(s1.subscribe(), Window::default(), Duration::from_secs(10));
        let mut out = stream.subscribe();
        publish_one_second(&mut p1);
        p1.finish();
        let summary = task.await.unwrap();
        assert_eq!(summary.publishers, 1);
        let events = collect(&stream, &mut out).await;
        assert!(matches!(events.last(), Some(Event::End)));
        // A publisher arriving after the grace period is refused: it starts a new stream.
        let (_p2, s2) = bus::channel(Window::default());
        assert!(handle.claim());
        assert!(handle.resume(s2.subscribe()).is_err());
        assert!(!handle.is_connected());
    }

    /// `end()` finishes the stream at once, with the publisher still connected and a long
    /// grace period: the API's `complete`.
    #[tokio::test]
    async fn end_finishes_the_stream_now() {
        let (mut p1, s1) = bus::channel(Window::default());
        let (stream, handle, task) =
            spawn(s1.subscribe(), Window::default(), Duration::from_secs(3600));
        let mut out = stream.subscribe();
        let mut state = handle.watch();
        publish_one_second(&mut p1);
        assert!(!state.borrow().ended);
        handle.end();
        let summary = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the relay ends without waiting for the grace period")
            .unwrap();
        assert_eq!(summary.publishers, 1);
        let events = collect(&stream, &mut out).await;
        assert!(matches!(events.last(), Some(Event::End)), "{events:?}");
        state.wait_for(|s| s.ended).await.unwrap();
        assert!(!handle.is_connected());
        // Nothing resumes an ended stream.
        let (_p2, s2) = bus::channel(Window::default());
        assert!(handle.resume(s2.subscribe()).is_err());
    }
}
