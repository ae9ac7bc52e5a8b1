//! Reads an MP4 file (H.264 + AAC) into Sigma frames to publish in a loop.
//!
//! Video becomes [`VIDEO`] at 90 kHz with AVCC payloads and the `avc1` sample entry's `avcC` as
//! its configuration; audio becomes [`AUDIO`] at the AAC sample rate with an
//! AudioSpecificConfig rebuilt from the `esds` descriptor (ISO/IEC 14496-3 §1.6.2.1). Edit lists
//! are ignored: timestamps start where the sample tables start, which is what a loop needs.

use bytes::Bytes;
use mp4::WriteBox;
use sigma_core::time::rescale;
use sigma_core::{AacConfig, CodecConfig, Frame, H264Config, StreamInfo, TrackId, TrackInfo};
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The video track id frames are published with.
pub const VIDEO: TrackId = TrackId(1);
/// The audio track id frames are published with.
pub const AUDIO: TrackId = TrackId(2);
/// The video timescale.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// Samples above this count per track are refused (about 75 minutes at 60 fps).
pub const MAX_SAMPLES_PER_TRACK: u32 = 270_000;

/// Why a media file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The `mp4` crate could not read the container.
    #[error("not a readable MP4: {0}")]
    Mp4(#[from] mp4::Error),
    /// A codec configuration Sigma refuses.
    #[error("codec configuration: {0}")]
    Codec(#[from] sigma_core::Error),
    /// No H.264 track.
    #[error("no H.264 (avc1) video track")]
    NoVideo,
    /// A track holds no samples or more than [`MAX_SAMPLES_PER_TRACK`].
    #[error("track {track}: {count} samples (need 1..={MAX_SAMPLES_PER_TRACK})")]
    SampleCount {
        /// The MP4 track id.
        track: u32,
        /// Its sample count.
        count: u32,
    },
    /// A sample listed in the tables is missing.
    #[error("track {track}: sample {sample} unreadable")]
    MissingSample {
        /// The MP4 track id.
        track: u32,
        /// The 1-based sample number.
        sample: u32,
    },
}

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
        let io = |source| MediaError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Self::read(BufReader::new(file), size)
    }

    /// Reads an MP4 of `size` bytes.
    pub fn read<R: Read + Seek>(reader: R, size: u64) -> Result<Media, MediaError> {
        let mut r = mp4::Mp4Reader::read_header(reader, size)?;
        let mut ids: Vec<u32> = r.tracks().keys().copied().collect();
        ids.sort_unstable();
        let mut video = None;
        let mut audio = None;
        for id in ids {
            let t = &r.tracks()[&id];
            let stsd = &t.trak.mdia.minf.stbl.stsd;
            if let (Some(avc1), None) = (&stsd.avc1, &video) {
                let mut buf = Vec::new();
                avc1.avcc.write_box(&mut buf)?;
                // Skip the box header: `from_avcc` wants the record body.
                let cfg = H264Config::from_avcc(Bytes::from(buf).slice(8..))?;
                video = Some((id, t.timescale(), cfg));
            } else if let (Some(mp4a), None) = (&stsd.mp4a, &audio) {
                let Some(esds) = &mp4a.esds else { continue };
                let d = &esds.es_desc.dec_config.dec_specific;
                // audioObjectType(5) samplingFrequencyIndex(4) channelConfiguration(4), then
                // GASpecificConfig's three zero flags.
                let asc = (u16::from(d.profile) << 11)
                    | (u16::from(d.freq_index) << 7)
                    | (u16::from(d.chan_conf) << 3);
                let cfg = AacConfig::from_audio_specific_config(Bytes::copy_from_slice(
                    &asc.to_be_bytes(),
                ))?;
                audio = Some((id, t.timescale(), cfg));
            }
        }
        let (video_id, video_ts, video_cfg) = video.ok_or(MediaError::NoVideo)?;
        let mut tracks = vec![TrackInfo::new(
            VIDEO,
            VIDEO_TIMESCALE,
            CodecConfig::H264(video_cfg),
        )?];
        // (time in seconds, frame) for every sample, to interleave by decode time.
        let mut timed: Vec<(f64, Frame)> = Vec::new();
        let mut end_90k = read_track(
            &mut r,
            video_id,
            video_ts,
            VIDEO,
            VIDEO_TIMESCALE,
            &mut timed,
        )?;
        let mut audio_rate = None;
        if let Some((id, ts, cfg)) = audio {
            let rate = cfg.sample_rate();
            tracks.push(TrackInfo::new(AUDIO, rate, CodecConfig::Aac(cfg))?);
            let end = read_track(&mut r, id, ts, AUDIO, rate, &mut timed)?;
            end_90k = end_90k.max(ceil_rescale(end, rate, VIDEO_TIMESCALE));
            audio_rate = Some(rate);
        }
        timed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.track().cmp(&b.1.track())));
        let offsets = timed
            .iter()
            .map(|(t, _)| Duration::from_secs_f64(t.max(0.0)))
            .collect();
        Ok(Media {
            info: StreamInfo::new(1, tracks)?,
            frames: timed.into_iter().map(|(_, f)| f).collect(),
            offsets,
            loop_ticks_90k: end_90k.max(1),
            audio_rate,
        })
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

/// Reads every sample of MP4 track `id` (timescale `from`) as frames of `track` at `to`;
/// returns the track's end time in `to` units.
fn read_track<R: Read + Seek>(
    r: &mut mp4::Mp4Reader<R>,
    id: u32,
    from: u32,
    track: TrackId,
    to: u32,
    out: &mut Vec<(f64, Frame)>,
) -> Result<i64, MediaError> {
    let count = r.sample_count(id)?;
    if count == 0 || count > MAX_SAMPLES_PER_TRACK {
        return Err(MediaError::SampleCount { track: id, count });
    }
    let mut end = 0;
    for i in 1..=count {
        let s = r.read_sample(id, i)?.ok_or(MediaError::MissingSample {
            track: id,
            sample: i,
        })?;
        let start = s.start_time as i64;
        let dts = rescale(start, from, to);
        let pts = rescale(start + i64::from(s.rendering_offset), from, to);
        end = end.max(rescale(start + i64::from(s.duration), from, to));
        out.push((
            dts as f64 / f64::from(to),
            Frame::new(track, dts, pts, s.is_sync, s.bytes),
        ));
    }
    Ok(end)
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
    use std::process::Command;

    /// Writes a 3 s 320x180 clip (2 s GOP, B-frames) with 44.1 kHz AAC using ffmpeg.
    fn clip(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("clip.mp4");
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args([
                "-t",
                "3",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "50",
            ])
            .args([
                "-bf", "2", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
            ])
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        path
    }

    /// ffprobe's packets of one stream: (dts, keyframe, size), in decode order.
    fn probe(path: &Path, stream: &str) -> Vec<(i64, bool, usize)> {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", stream, "-show_packets"])
            .args(["-show_entries", "packet=dts,flags,size", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (
                    f[0].parse().unwrap(),
                    f[2].starts_with('K'),
                    f[1].parse().unwrap(),
                )
            })
            .collect()
    }

    fn time_base(path: &Path, stream: &str) -> u32 {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", stream])
            .args(["-show_entries", "stream=time_base", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        let text = String::from_utf8(out.stdout).unwrap();
        text.trim().strip_prefix("1/").unwrap().parse().unwrap()
    }

    #[test]
    fn frames_match_ffprobe_packets() {
        let dir = std::env::temp_dir().join(format!("sigma-load-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = clip(&dir);
        let media = Media::open(&path).unwrap();

        let tracks = media.info().tracks();
        assert_eq!(tracks.len(), 2);
        let CodecConfig::H264(v) = tracks[0].codec() else {
            panic!("video first")
        };
        assert_eq!((v.width(), v.height()), (320, 180));
        assert_eq!(tracks[1].id(), AUDIO);
        assert_eq!(tracks[1].timescale(), 44_100);

        for (track, stream, to) in [(VIDEO, "v:0", VIDEO_TIMESCALE), (AUDIO, "a:0", 44_100)] {
            let packets = probe(&path, stream);
            let from = time_base(&path, stream);
            let frames: Vec<&Frame> = media
                .frames()
                .iter()
                .filter(|f| f.track() == track)
                .collect();
            assert_eq!(frames.len(), packets.len(), "{stream} frame count");
            let first = packets[0].0;
            for (i, (f, (dts, key, size))) in frames.iter().zip(&packets).enumerate() {
                assert_eq!(
                    f.dts(),
                    rescale(dts - first, from, to),
                    "{stream} dts of {i}"
                );
                assert_eq!(f.len(), *size, "{stream} size of {i}");
                if track == VIDEO {
                    assert_eq!(f.is_keyframe(), *key, "{stream} keyframe flag of {i}");
                    assert!(f.pts() >= f.dts());
                }
            }
        }
        let first_video = media.frames().iter().find(|f| f.track() == VIDEO).unwrap();
        assert!(first_video.is_keyframe() && first_video.dts() == 0);

        // Interleaved by time, offsets follow.
        let secs = |f: &Frame| {
            f.dts() as f64 / f64::from(if f.track() == VIDEO { 90_000 } else { 44_100 })
        };
        for (w, o) in media.frames().windows(2).zip(media.offsets().windows(2)) {
            assert!(secs(&w[0]) <= secs(&w[1]) + 1e-9);
            assert!(o[0] <= o[1]);
        }
        // Looping: each pass starts after the previous one ended, on every track.
        let len = media.loop_duration().as_secs_f64();
        assert!((2.9..3.2).contains(&len), "{len}");
        for track in [VIDEO, AUDIO] {
            let last = media
                .frames()
                .iter()
                .rev()
                .find(|f| f.track() == track)
                .unwrap();
            for n in 1..4 {
                let first = media.frames().iter().find(|f| f.track() == track).unwrap();
                assert!(
                    first.dts() + media.loop_shift(track, n)
                        > last.dts() + media.loop_shift(track, n - 1)
                );
            }
        }
        assert_eq!(
            media.loop_shift(AUDIO, 1),
            ceil_rescale(media.loop_shift(VIDEO, 1), 90_000, 44_100)
        );
        let _ = std::fs::remove_dir_all(&dir);
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
