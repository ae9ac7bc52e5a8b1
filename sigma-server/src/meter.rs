//! What the ingest measures of a publisher: bitrate, video frame rate and keyframe interval
//! over the last few seconds (pure: frames and `now` in, figures out).
//!
//! Rates are over arrival time (what reached the server in the last [`WINDOW`]), so a
//! publisher that falls behind shows it; the keyframe interval is over media time (the
//! decode timestamps of the last two video keyframes), so it is the encoder's setting
//! whatever the network did.

use sigma_core::{Frame, MediaKind, StreamInfo};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the rates look.
pub const WINDOW: Duration = Duration::from_secs(5);

/// The figures at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// Payload bits per second, audio and video.
    pub bitrate: u64,
    /// Video frames per second.
    pub fps: f64,
    /// Seconds between the last two video keyframes.
    pub keyframe_interval: Option<f64>,
    /// When the last frame arrived.
    pub last_frame: Instant,
}

/// The meter of one stream.
#[derive(Debug, Default)]
pub struct IngestMeter {
    /// Arrivals in the window: (when, payload bytes, whether a video frame).
    arrivals: VecDeque<(Instant, usize, bool)>,
    bytes: usize,
    video_frames: usize,
    /// The last video keyframe's dts, in seconds.
    last_keyframe: Option<f64>,
    keyframe_interval: Option<f64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl IngestMeter {
    /// A meter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `frame` (of a track in `info`), arrived at `now`.
    pub fn observe(&mut self, now: Instant, info: &StreamInfo, frame: &Frame) {
        let Some(track) = info.track(frame.track()) else {
            return;
        };
        let video = track.kind() == MediaKind::Video;
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.arrivals.push_back((now, frame.len(), video));
        self.bytes += frame.len();
        self.video_frames += usize::from(video);
        if video && frame.is_keyframe() {
            let t = frame.dts() as f64 / f64::from(track.timescale().max(1));
            if let Some(prev) = self.last_keyframe {
                if t > prev {
                    self.keyframe_interval = Some(t - prev);
                }
            }
            self.last_keyframe = Some(t);
        }
        self.expire(now);
    }

    /// A new publisher (or a timeline reset): the keyframe interval starts again.
    pub fn restart_timeline(&mut self) {
        self.last_keyframe = None;
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, len, video)) = self.arrivals.front() {
            if now.saturating_duration_since(at) <= WINDOW {
                break;
            }
            self.arrivals.pop_front();
            self.bytes -= len;
            self.video_frames -= usize::from(video);
        }
    }

    /// The figures at `now`, or `None` before the first frame. The rates are over the window,
    /// or over the time since the first frame when that is shorter (at least 1 s, so the
    /// first frames do not read as a burst).
    pub fn reading(&mut self, now: Instant) -> Option<Reading> {
        self.expire(now);
        let first = self.first?;
        let last_frame = self.last.unwrap_or(first);
        let span = now
            .saturating_duration_since(first)
            .clamp(Duration::from_secs(1), WINDOW)
            .as_secs_f64();
        Some(Reading {
            bitrate: (self.bytes as f64 * 8.0 / span).round() as u64,
            fps: (self.video_frames as f64 / span * 100.0).round() / 100.0,
            keyframe_interval: self
                .keyframe_interval
                .map(|k| (k * 1000.0).round() / 1000.0),
            last_frame,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use sigma_core::{AacConfig, CodecConfig, H264Config, TrackId, TrackInfo};
    use std::sync::Arc;

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

    /// `seconds` of 30 fps video of `video_bytes` per frame with a keyframe every `gop`
    /// frames, and 48 kHz AAC (1024-sample frames) of 100 bytes, arriving in real time.
    fn feed(m: &mut IngestMeter, t0: Instant, seconds: u32, video_bytes: usize, gop: u32) {
        let info = info();
        let mut events = Vec::new();
        for i in 0..seconds * 30 {
            let at = Duration::from_secs_f64(f64::from(i) / 30.0);
            let f = Frame::new(
                V,
                i64::from(i) * 3000,
                i64::from(i) * 3000,
                i % gop == 0,
                Bytes::from(vec![0; video_bytes]),
            );
            events.push((at, f));
        }
        let audio = seconds * 48_000 / 1024;
        for i in 0..audio {
            let at = Duration::from_secs_f64(f64::from(i) * 1024.0 / 48_000.0);
            let dts = i64::from(i) * 1024;
            events.push((at, Frame::new(A, dts, dts, true, Bytes::from(vec![0; 100]))));
        }
        events.sort_by_key(|e| e.0);
        for (at, f) in events {
            m.observe(t0 + at, &info, &f);
        }
    }

    #[test]
    fn a_steady_publisher_reads_as_its_settings() {
        let mut m = IngestMeter::new();
        let t0 = Instant::now();
        assert!(m.reading(t0).is_none());
        feed(&mut m, t0, 10, 10_000, 60);
        let r = m.reading(t0 + Duration::from_secs(10)).unwrap();
        // 30 × 10,000 B + 46.875 × 100 B per second.
        let expected = (30.0 * 10_000.0 + 46.875 * 100.0) * 8.0;
        assert!(
            (r.bitrate as f64 - expected).abs() / expected < 0.02,
            "{r:?}"
        );
        assert!((r.fps - 30.0).abs() < 0.5, "{r:?}");
        assert_eq!(r.keyframe_interval, Some(2.0));
    }

    #[test]
    fn a_silent_publisher_reads_as_zero_and_keeps_its_last_frame() {
        let mut m = IngestMeter::new();
        let t0 = Instant::now();
        feed(&mut m, t0, 3, 5_000, 30);
        let last = m.reading(t0 + Duration::from_secs(3)).unwrap().last_frame;
        let r = m.reading(t0 + Duration::from_secs(20)).unwrap();
        assert_eq!((r.bitrate, r.fps), (0, 0.0));
        assert_eq!(r.last_frame, last);
        assert_eq!(r.keyframe_interval, Some(1.0));
    }

    proptest! {
        /// Whatever the frames, the meter's running sums agree with its window.
        #[test]
        fn sums_match_the_window(
            frames in proptest::collection::vec((0u64..3000, 0usize..50_000, any::<bool>(), any::<bool>()), 0..200)
        ) {
            let info = info();
            let mut m = IngestMeter::new();
            let t0 = Instant::now();
            let mut at = 0;
            for (gap, len, video, key) in frames {
                at += gap;
                let track = if video { V } else { A };
                let f = Frame::new(track, at as i64 * 90, at as i64 * 90, key, Bytes::from(vec![0; len]));
                m.observe(t0 + Duration::from_millis(at), &info, &f);
                prop_assert_eq!(m.bytes, m.arrivals.iter().map(|a| a.1).sum::<usize>());
                prop_assert_eq!(m.video_frames, m.arrivals.iter().filter(|a| a.2).count());
            }
            if let Some(r) = m.reading(t0 + Duration::from_millis(at)) {
                prop_assert!(r.fps >= 0.0);
            }
        }
    }
}
