//! MP4 test media: an MP4 file (H.264 + AAC) read into Sigma's [`Frame`]s and [`StreamInfo`], as
//! RTMP ingest would have produced them. Tests, benches and `sigma-load` share this one reader.
//!
//! Behind the `media` cargo feature, which pulls in the `mp4` crate; unlike the rest of this
//! crate, [`Media::open`] reads a file.
//!
//! - Video: the first `avc1` track becomes [`VIDEO`] at [`VIDEO_TIMESCALE`] (90 kHz, as RTMP
//!   ingest makes it), AVCC payloads, the sample entry's `avcC` as its configuration (ISO/IEC
//!   14496-15 §5.3.3.1).
//! - Audio: the first `mp4a` track becomes [`AUDIO`] at the AAC sample rate, with an
//!   AudioSpecificConfig rebuilt from the `esds` descriptor (ISO/IEC 14496-3 §1.6.2.1); every
//!   AAC frame is a random access point.
//! - Frames are interleaved by decode time (video first on a tie). Edit lists are ignored:
//!   timestamps start where the sample tables start.
//!
//! ```
//! use sigma_core::media::{Media, VIDEO};
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../sigma-llhls/testdata/testsrc2_bf3_aac.mp4");
//! let media = Media::open(std::path::Path::new(path))?;
//! assert_eq!(media.info().tracks().len(), 2);
//! let first = &media.frames()[0];
//! assert!(first.track() == VIDEO && first.is_keyframe());
//! println!("{} frames, {:?}", media.frames().len(), media.duration());
//! # Ok::<(), sigma_core::media::MediaError>(())
//! ```

use crate::time::rescale;
use crate::{AacConfig, CodecConfig, Frame, H264Config, StreamInfo, TrackId, TrackInfo};
use bytes::Bytes;
use mp4::WriteBox;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The video track id frames get.
pub const VIDEO: TrackId = TrackId(1);
/// The audio track id frames get.
pub const AUDIO: TrackId = TrackId(2);
/// The video timescale (90 kHz, as RTMP ingest makes it).
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Samples above this count per track are refused (about 75 minutes at 60 fps).
pub const MAX_SAMPLES_PER_TRACK: u32 = 270_000;

/// Why a media file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    Codec(#[from] crate::Error),
    /// No H.264 (`avc1`) track.
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

/// An MP4 file read into frames. See the module docs.
#[derive(Clone, Debug)]
pub struct Media {
    info: Arc<StreamInfo>,
    frames: Vec<Frame>,
    /// Per track: its end (the last sample's start plus duration) in its timescale.
    ends: Vec<(TrackId, i64)>,
}

impl Media {
    /// Reads the file at `path`.
    pub fn open(path: &Path) -> Result<Media, MediaError> {
        let io = |source| MediaError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Self::read(BufReader::new(file), size)
    }

    /// Reads an MP4 of `size` bytes from `reader`.
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
        let mut frames = Vec::new();
        let video_end = read_track(
            &mut r,
            (video_id, video_ts),
            (VIDEO, VIDEO_TIMESCALE),
            &mut frames,
        )?;
        let mut ends = vec![(VIDEO, video_end)];
        let mut timescales = vec![(VIDEO, VIDEO_TIMESCALE)];
        if let Some((id, ts, cfg)) = audio {
            let rate = cfg.sample_rate();
            tracks.push(TrackInfo::new(AUDIO, rate, CodecConfig::Aac(cfg))?);
            ends.push((
                AUDIO,
                read_track(&mut r, (id, ts), (AUDIO, rate), &mut frames)?,
            ));
            timescales.push((AUDIO, rate));
        }
        let timescale = |t: TrackId| {
            timescales
                .iter()
                .find(|(id, _)| *id == t)
                .map_or(1, |&(_, ts)| ts)
        };
        // Interleave by decode time, compared exactly across timescales.
        frames.sort_by(|a, b| {
            let (ta, tb) = (timescale(a.track()), timescale(b.track()));
            let x = i128::from(a.dts()) * i128::from(tb);
            let y = i128::from(b.dts()) * i128::from(ta);
            x.cmp(&y).then(a.track().cmp(&b.track()))
        });
        Ok(Media {
            info: StreamInfo::new(1, tracks)?,
            frames,
            ends,
        })
    }

    /// The stream description to send before the frames.
    pub fn info(&self) -> &Arc<StreamInfo> {
        &self.info
    }

    /// All frames, interleaved by decode time.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// The stream description and the frames.
    pub fn into_parts(self) -> (Arc<StreamInfo>, Vec<Frame>) {
        (self.info, self.frames)
    }

    /// Where `track` ends (its last sample's start plus duration), in its timescale.
    pub fn end(&self, track: TrackId) -> Option<i64> {
        self.ends.iter().find(|(t, _)| *t == track).map(|&(_, e)| e)
    }

    /// The end of the longest track.
    pub fn duration(&self) -> Duration {
        self.ends
            .iter()
            .filter_map(|&(t, end)| {
                let ts = self.info.track(t)?.timescale();
                Some(Duration::from_secs_f64(end.max(0) as f64 / f64::from(ts)))
            })
            .max()
            .unwrap_or_default()
    }
}

/// Reads every sample of MP4 track `id` (timescale `from`) as frames of `track` at timescale
/// `to`; returns the track's end in `to` units.
fn read_track<R: Read + Seek>(
    r: &mut mp4::Mp4Reader<R>,
    (id, from): (u32, u32),
    (track, to): (TrackId, u32),
    out: &mut Vec<Frame>,
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
        let key = s.is_sync || track == AUDIO;
        out.push(Frame::new(track, dts, pts, key, s.bytes));
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn capture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sigma-llhls/testdata/testsrc2_bf3_aac.mp4")
    }

    /// The captured file (see sigma-llhls/testdata/README.md): 6 s of 320x180 30 fps High with
    /// 3 B-frames and 1 s GOPs, 48 kHz stereo AAC.
    #[test]
    fn reads_the_captured_file() {
        let media = Media::open(&capture()).unwrap();
        let tracks = media.info().tracks();
        assert_eq!(tracks.len(), 2);
        let CodecConfig::H264(v) = tracks[0].codec() else {
            panic!("video first")
        };
        assert_eq!((v.width(), v.height()), (320, 180));
        assert_eq!((tracks[0].id(), tracks[0].timescale()), (VIDEO, 90_000));
        assert_eq!((tracks[1].id(), tracks[1].timescale()), (AUDIO, 48_000));
        let video: Vec<&Frame> = media
            .frames()
            .iter()
            .filter(|f| f.track() == VIDEO)
            .collect();
        assert_eq!(video.len(), 180);
        assert_eq!(video.iter().filter(|f| f.is_keyframe()).count(), 6);
        assert!(video.iter().any(|f| f.pts() > f.dts()), "B-frames reorder");
        assert!(
            media
                .frames()
                .iter()
                .all(|f| f.track() == VIDEO || f.is_keyframe())
        );
        assert_eq!(media.end(VIDEO), Some(6 * 90_000));
        let d = media.duration().as_secs_f64();
        assert!((6.0..6.1).contains(&d), "{d}");
        // Interleaved by decode time.
        let secs = |f: &Frame| {
            f.dts() as f64
                / if f.track() == VIDEO {
                    90_000.0
                } else {
                    48_000.0
                }
        };
        assert!(
            media
                .frames()
                .windows(2)
                .all(|w| secs(&w[0]) <= secs(&w[1]))
        );
    }

    /// Writes a 3 s 320x180 clip (2 s GOP, B-frames) with 44.1 kHz AAC using ffmpeg.
    fn clip(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("clip.mp4");
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", "3", "-c:v", "libx264", "-preset", "ultrafast"])
            .args(["-g", "50", "-bf", "2", "-pix_fmt", "yuv420p"])
            .args(["-c:a", "aac", "-b:a", "64k"])
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
        let dir = std::env::temp_dir().join(format!("sigma-core-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = clip(&dir);
        let media = Media::open(&path).unwrap();
        assert_eq!(media.info().tracks()[1].timescale(), 44_100);
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
        let len = media.duration().as_secs_f64();
        assert!((2.9..3.2).contains(&len), "{len}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_what_is_not_mp4() {
        let data = b"not an mp4 file at all".to_vec();
        let len = data.len() as u64;
        assert!(Media::read(std::io::Cursor::new(data), len).is_err());
        assert!(matches!(
            Media::open(Path::new("/nonexistent/sigma-media.mp4")),
            Err(MediaError::Io { .. })
        ));
    }
}
