//! The producing end of each rendition's bus, shared by the rendition's video thread and the
//! audio path (the audio thread, or the caller's thread when audio is copied). No thread of its
//! own and no IO: pushing locks the sink and hands frames to the bus.

use sigma_core::bus::{Producer, StreamError};
use sigma_core::{Frame, MediaKind, StreamInfo, TrackId};
use std::sync::{Arc, Mutex};

/// Most audio frames a rendition holds back while its video catches up (about 10 s of AAC at
/// 48 kHz); past this the oldest go out regardless.
const MAX_HELD_AUDIO: usize = 500;

/// The producing end of one rendition's bus, shared by its video thread and the audio path.
///
/// Video leaves the encoder later than the audio that goes with it (encoder lookahead, queues),
/// so audio frames are held until the rendition's video has reached their time: the bus stays
/// interleaved in time, and a consumer starting at the first GOP gets the audio from there on.
pub(super) struct RungSink {
    producer: Option<Producer>,
    held_audio: std::collections::VecDeque<Frame>,
    /// Decode time of the newest video frame pushed, in seconds.
    video_time: Option<f64>,
    video_timescale: u32,
    audio_timescale: u32,
    video_track: TrackId,
}

impl RungSink {
    fn push(&mut self, frame: Frame) {
        if frame.track() == self.video_track {
            self.video_time = Some(frame.dts() as f64 / f64::from(self.video_timescale));
            self.send(frame);
            self.release(false);
        } else {
            self.held_audio.push_back(frame);
            self.release(false);
        }
    }

    fn release(&mut self, all: bool) {
        while let Some(a) = self.held_audio.front() {
            let t = a.pts() as f64 / f64::from(self.audio_timescale.max(1));
            let due = all
                || self.held_audio.len() > MAX_HELD_AUDIO
                || self.video_time.is_some_and(|v| t <= v);
            if !due {
                break;
            }
            if let Some(a) = self.held_audio.pop_front() {
                self.send(a);
            }
        }
    }

    fn send(&mut self, frame: Frame) {
        if let Some(p) = self.producer.as_mut() {
            // A frame larger than the window is refused by the bus; the rendition goes on.
            let _ = p.push(frame);
        }
    }
}

impl Drop for RungSink {
    fn drop(&mut self) {
        // The end of the stream: what audio is left goes out, then the bus ends.
        self.release(true);
    }
}

pub(super) type SharedProducer = Arc<Mutex<RungSink>>;

pub(super) fn shared_sink(producer: Producer, info: &StreamInfo) -> SharedProducer {
    let video = info.primary_video();
    let audio = info.tracks().iter().find(|t| t.kind() == MediaKind::Audio);
    Arc::new(Mutex::new(RungSink {
        producer: Some(producer),
        held_audio: std::collections::VecDeque::new(),
        video_time: None,
        video_timescale: video.map_or(90_000, |t| t.timescale()),
        audio_timescale: audio.map_or(48_000, |t| t.timescale()),
        video_track: video.map_or(TrackId(1), |t| t.id()),
    }))
}

pub(super) fn push_to(p: &SharedProducer, frame: Frame) {
    p.lock().unwrap_or_else(|e| e.into_inner()).push(frame);
}

/// Ends the rendition with `error`, dropping the audio held back for it.
pub(super) fn fail(p: &SharedProducer, error: StreamError) {
    let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
    g.held_audio.clear();
    if let Some(prod) = g.producer.take() {
        prod.fail(error);
    }
}
