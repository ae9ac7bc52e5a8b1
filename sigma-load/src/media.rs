//! The media a simulated broadcaster loops: an MP4 file read by sigma-core's test-media reader
//! ([`sigma_core::media`]: video as [`VIDEO`] at 90 kHz with AVCC payloads, audio as [`AUDIO`]
//! at the AAC sample rate), with the timing of one pass and the timestamp shift of each further
//! pass.

use sigma_core::time::rescale;
use sigma_core::{Frame, StreamInfo, TrackId};
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use sigma_core::media::{AUDIO, MAX_SAMPLES_PER_TRACK, MediaError, VIDEO, VIDEO_TIMESCALE};

/// A media file read into frames, ready to be published in a loop.
#[derive(Clone, Debug)]
pub struct Media {
    info: Arc<StreamInfo>,
    frames: Vec<Frame>,
    offsets: Vec<Duration>,
    loop_ticks_90k: i64,
    audio_rate: Option<u32>,
}

impl Media {
    /// Reads `path`.
    pub fn open(path: &Path) -> Result<Media, MediaError> {
        sigma_core::media::Media::open(path).map(Self::new)
    }

    /// Reads an MP4 of `size` bytes.
    pub fn read<R: Read + Seek>(reader: R, size: u64) -> Result<Media, MediaError> {
        sigma_core::media::Media::read(reader, size).map(Self::new)
    }

    /// Loops `media`.
    pub fn new(media: sigma_core::media::Media) -> Media {
        let audio_rate = media.info().track(AUDIO).map(|t| t.timescale());
        let mut end_90k = media.end(VIDEO).unwrap_or(0);
        if let (Some(rate), Some(end)) = (audio_rate, media.end(AUDIO)) {
            end_90k = end_90k.max(ceil_rescale(end, rate, VIDEO_TIMESCALE));
        }
        let (info, frames) = media.into_parts();
        let offsets = frames
            .iter()
            .map(|f| {
                let ts = info
                    .track(f.track())
                    .map_or(VIDEO_TIMESCALE, |t| t.timescale());
                Duration::from_micros(rescale(f.dts(), ts, 1_000_000).max(0) as u64)
            })
            .collect();
        Media {
            info,
            frames,
            offsets,
            loop_ticks_90k: end_90k.max(1),
            audio_rate,
        }
    }

    /// The stream description to send before the frames.
    pub fn info(&self) -> &Arc<StreamInfo> {
        &self.info
    }

    /// All frames of one pass, interleaved by decode time.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// When each frame of one pass is due, from the start of the pass.
    pub fn offsets(&self) -> &[Duration] {
        &self.offsets
    }

    /// The length of one pass: the end of the longest track.
    pub fn loop_duration(&self) -> Duration {
        Duration::from_secs_f64(self.loop_ticks_90k as f64 / f64::from(VIDEO_TIMESCALE))
    }

    /// How far pass `n` (from 0) shifts the timestamps of `track`'s frames, in its timescale.
    /// Exact for every pass (no drift), and never less than the previous pass's end.
    pub fn loop_shift(&self, track: TrackId, n: u64) -> i64 {
        let ticks = self.loop_ticks_90k.saturating_mul(n as i64);
        match (track, self.audio_rate) {
            (AUDIO, Some(rate)) => ceil_rescale(ticks, VIDEO_TIMESCALE, rate),
            _ => ticks,
        }
    }
}

/// `value * to / from`, rounded up.
fn ceil_rescale(value: i64, from: u32, to: u32) -> i64 {
    let n = i128::from(value) * i128::from(to);
    let d = i128::from(from);
    ((n + d - 1).div_euclid(d)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture() -> Media {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../sigma-llhls/testdata/testsrc2_bf3_aac.mp4"
        );
        Media::open(Path::new(path)).unwrap()
    }

    #[test]
    fn offsets_follow_the_frames() {
        let media = capture();
        assert_eq!(media.offsets().len(), media.frames().len());
        assert_eq!(media.offsets()[0], Duration::ZERO);
        assert!(media.offsets().windows(2).all(|o| o[0] <= o[1]));
        let len = media.loop_duration().as_secs_f64();
        assert!((6.0..6.1).contains(&len), "{len}");
    }

    #[test]
    fn each_pass_starts_after_the_previous_one_on_every_track() {
        let media = capture();
        for track in [VIDEO, AUDIO] {
            let last = media
                .frames()
                .iter()
                .rev()
                .find(|f| f.track() == track)
                .unwrap();
            let first = media.frames().iter().find(|f| f.track() == track).unwrap();
            for n in 1..4 {
                assert!(
                    first.dts() + media.loop_shift(track, n)
                        > last.dts() + media.loop_shift(track, n - 1)
                );
            }
        }
        assert_eq!(
            media.loop_shift(AUDIO, 1),
            ceil_rescale(media.loop_shift(VIDEO, 1), 90_000, 48_000)
        );
    }

    #[test]
    fn refuses_what_is_not_mp4() {
        let data = b"not an mp4 file at all".to_vec();
        let len = data.len() as u64;
        assert!(Media::read(std::io::Cursor::new(data), len).is_err());
        assert!(matches!(
            Media::open(Path::new("/nonexistent/sigma-load.mp4")),
            Err(MediaError::Io { .. })
        ));
    }
}
