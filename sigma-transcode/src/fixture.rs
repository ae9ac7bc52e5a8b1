//! Test fixtures: sources made at test time with the `ffmpeg` and `gst-launch-1.0` command
//! lines, read into sigma-core frames by sigma-core's test-media reader, a minimal FLV writer for
//! outputs (FLV keeps absolute timestamps, so ffprobe times are comparable across files), and
//! ffprobe/ffmpeg helpers. Every child process runs under `timeout`.

// Some helpers serve only the encoder tests.
#![cfg_attr(not(all(feature = "x264", feature = "fdk-aac")), allow(dead_code))]

use bytes::{BufMut, BytesMut};
use sigma_core::{CodecConfig, Frame, MediaKind, StreamInfo, TrackId, TrackInfo};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

/// A directory for this test process.
pub fn tmp_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Remove what earlier test processes (no longer running) left behind.
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("sigma-transcode-")
                    && pid.parse::<u32>().is_ok()
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let d = std::env::temp_dir().join(format!("sigma-transcode-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
    .clone()
}

/// Runs `program args` under `timeout secs`, panicking with its stderr on failure; returns
/// (stdout, stderr).
pub fn run(secs: u32, program: &str, args: &[&str]) -> (String, String) {
    let out = Command::new("timeout")
        .arg(secs.to_string())
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{program} {args:?} failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// Source keyframe times (seconds) forced in the ffmpeg-made source: irregular on purpose.
pub const FFMPEG_KEYFRAMES: [f64; 5] = [0.0, 1.5, 2.7, 4.0, 5.2];

/// 6 s of 1280x720 30 fps High-profile H.264 with 3 B-frames, CABAC and the 8x8 transform
/// (ffmpeg + libx264, keyframes at [`FFMPEG_KEYFRAMES`]) and 48 kHz stereo AAC-LC (a 440 Hz
/// tone).
pub fn ffmpeg_source() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let p = tmp_dir().join("ffmpeg-x264-high-720p30.mp4");
        let kf: Vec<String> = FFMPEG_KEYFRAMES.iter().map(|k| k.to_string()).collect();
        run(
            120,
            "ffmpeg",
            &[
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "6",
                "-c:v",
                "libx264",
                "-profile:v",
                "high",
                "-preset",
                "veryfast",
                "-bf",
                "3",
                "-g",
                "1000",
                "-sc_threshold",
                "0",
                "-force_key_frames",
                &kf.join(","),
                "-b:v",
                "4M",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-ac",
                "2",
                p.to_str().unwrap(),
            ],
        );
        p
    })
    .clone()
}

/// 1 s of 854x480 30 fps Main-profile H.264 (ffmpeg + libx264), video only: a second source
/// of another size for mid-stream changes.
pub fn ffmpeg_source_480p() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let p = tmp_dir().join("ffmpeg-x264-main-480p30.mp4");
        run(
            120,
            "ffmpeg",
            &[
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=854x480:rate=30",
                "-t",
                "1",
                "-c:v",
                "libx264",
                "-profile:v",
                "main",
                "-preset",
                "veryfast",
                "-bf",
                "2",
                "-g",
                "30",
                "-an",
                p.to_str().unwrap(),
            ],
        );
        p
    })
    .clone()
}

/// 6 s of 1280x720 30 fps High-profile H.264 from GStreamer's x264enc (2 B-frames, a keyframe
/// every 45 frames), video only.
pub fn gst_source() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let p = tmp_dir().join("gst-x264enc-high-720p30.mp4");
        let loc = format!("location={}", p.display());
        run(
            120,
            "gst-launch-1.0",
            &[
                "-q",
                "videotestsrc",
                "num-buffers=180",
                "horizontal-speed=4",
                "!",
                "video/x-raw,width=1280,height=720,framerate=30/1",
                "!",
                "x264enc",
                "bframes=2",
                "key-int-max=45",
                "bitrate=4000",
                "speed-preset=veryfast",
                "!",
                "video/x-h264,profile=high",
                "!",
                "h264parse",
                "!",
                "mp4mux",
                "!",
                "filesink",
                &loc,
            ],
        );
        p
    })
    .clone()
}

/// A source read into memory: stream info as RTMP ingest makes it (video track 1 at 90 kHz,
/// audio track 2 at its sample rate) and frames interleaved by decode time.
pub struct Source {
    pub info: Arc<StreamInfo>,
    pub frames: Vec<Frame>,
}

impl Source {
    pub fn video(&self) -> impl Iterator<Item = &Frame> {
        self.frames.iter().filter(|f| f.track() == TrackId(1))
    }
    pub fn video_info(&self) -> &TrackInfo {
        self.info.track(TrackId(1)).unwrap()
    }
}

/// Reads an mp4 file's first video and audio tracks into sigma-core frames, with sigma-core's
/// test-media reader.
pub fn read_mp4(path: &Path) -> Source {
    let media =
        sigma_core::media::Media::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (info, frames) = media.into_parts();
    Source { info, frames }
}

/// Writes frames to an FLV file (video track 1, audio track 2) with timestamps in
/// milliseconds, all shifted by `OFFSET_MS` so that B-frame decode times stay positive.
pub fn write_flv(path: &Path, info: &StreamInfo, frames: &[Frame]) {
    const OFFSET_MS: i64 = 10_000;
    let mut out = BytesMut::new();
    out.put_slice(b"FLV\x01");
    let has_audio = info.tracks().iter().any(|t| t.kind() == MediaKind::Audio);
    out.put_u8(if has_audio { 5 } else { 1 });
    out.put_u32(9);
    out.put_u32(0);
    let tag = |out: &mut BytesMut, kind: u8, ms: i64, body: &[u8]| {
        let ms = ms as u32;
        out.put_u8(kind);
        out.put_uint(body.len() as u64, 3);
        out.put_uint(u64::from(ms & 0xff_ffff), 3);
        out.put_u8((ms >> 24) as u8);
        out.put_uint(0, 3);
        out.put_slice(body);
        out.put_u32(11 + body.len() as u32);
    };
    for t in info.tracks() {
        match t.codec() {
            CodecConfig::H264(c) => {
                let mut b = vec![0x17, 0, 0, 0, 0];
                b.extend_from_slice(c.avcc());
                tag(&mut out, 9, OFFSET_MS, &b);
            }
            CodecConfig::Aac(c) => {
                let mut b = vec![0xaf, 0];
                b.extend_from_slice(c.audio_specific_config());
                tag(&mut out, 8, OFFSET_MS, &b);
            }
            _ => {}
        }
    }
    for f in frames {
        let Some(t) = info.track(f.track()) else {
            continue;
        };
        let ts = t.timescale();
        let dts = sigma_core::time::rescale(f.dts(), ts, 1000) + OFFSET_MS;
        let pts = sigma_core::time::rescale(f.pts(), ts, 1000) + OFFSET_MS;
        if t.kind() == MediaKind::Video {
            let mut b = vec![if f.is_keyframe() { 0x17 } else { 0x27 }, 1];
            let cts = (pts - dts) as i32;
            b.extend_from_slice(&cts.to_be_bytes()[1..]);
            b.extend_from_slice(f.data());
            tag(&mut out, 9, dts, &b);
        } else {
            let mut b = vec![0xaf, 1];
            b.extend_from_slice(f.data());
            tag(&mut out, 8, dts, &b);
        }
    }
    std::fs::write(path, &out).unwrap();
}

/// One video frame as ffprobe sees it.
#[derive(Clone, Debug)]
pub struct Probed {
    pub pts_time: f64,
    pub key: bool,
    pub width: u32,
    pub height: u32,
    pub size: u64,
}

/// ffprobe's view of the first video stream's frames (decoded, so sizes are real).
pub fn probe_video(path: &Path) -> Vec<Probed> {
    let (out, _) = run(
        120,
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time,key_frame,width,height,pkt_size",
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ],
    );
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // ffprobe prints the requested entries in its own order:
            // key_frame,pts_time,pkt_size,width,height.
            let v: Vec<&str> = l.split(',').collect();
            Probed {
                key: v[0] == "1",
                pts_time: v[1].parse().unwrap(),
                size: v[2].parse().unwrap(),
                width: v[3].parse().unwrap(),
                height: v[4].parse().unwrap(),
            }
        })
        .collect()
}

/// PSNR (average over Y, U, V, in dB) of `distorted` against `reference`, by ffmpeg's `psnr`
/// filter.
pub fn psnr(distorted: &Path, reference: &Path) -> f64 {
    let (_, err) = run(
        180,
        "ffmpeg",
        &[
            "-v",
            "info",
            "-nostats",
            "-i",
            distorted.to_str().unwrap(),
            "-i",
            reference.to_str().unwrap(),
            "-lavfi",
            "[0:v][1:v]psnr",
            "-f",
            "null",
            "-",
        ],
    );
    let at = err
        .rfind("average:")
        .unwrap_or_else(|| panic!("no PSNR in {err}"));
    err[at + 8..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A YUV 4:2:0 picture whose luma is `luma(x, y)` and chroma neutral.
pub fn picture(
    w: u32,
    h: u32,
    pts: i64,
    key: bool,
    luma: impl Fn(u32, u32) -> u8,
) -> crate::decode::Picture {
    let mut f = ffmpeg_next::frame::Video::new(ffmpeg_next::format::Pixel::YUV420P, w, h);
    let stride = f.stride(0);
    let y = f.data_mut(0);
    for row in 0..h {
        for col in 0..w {
            y[row as usize * stride + col as usize] = luma(col, row);
        }
    }
    for plane in 1..3 {
        f.data_mut(plane).fill(128);
    }
    crate::decode::Picture::new(f, pts, key)
}

/// A moving picture with detail: frame `i` of a scrolling pattern with per-frame noise.
pub fn moving_picture(w: u32, h: u32, i: i64, key: bool) -> crate::decode::Picture {
    picture(w, h, i * 3000, key, move |x, y| {
        let v = (x as i64 * 3 + y as i64 * 2 + i * 5) as u32;
        let n =
            (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ (i as u32).wrapping_mul(97))
                >> 27;
        ((v % 200) + 16 + n) as u8
    })
}
