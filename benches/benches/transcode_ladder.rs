//! The 720p → 3-rung ladder (1280x720 2.5 Mbit/s High, 854x480 1.2 Mbit/s Main, 640x360
//! 0.6 Mbit/s Main; x264 `veryfast`, capped ABR with a one-second VBV, keyframes at the source's)
//! through Sigma and through the `ffmpeg` command line with the same x264 settings, in one run.
//!
//! Reports CPU-seconds per media-second for both (user + system time: Sigma's from
//! `/proc/self/stat`, ffmpeg's as the children's time of this process), their ratio, and how many
//! such ladders fit in real time on this machine's cores.
//!
//! Run with `cargo bench -p sigma-benches --bench transcode_ladder` (optionally
//! `-- --seconds N`, default 20).

use bytes::Bytes;
use sigma_core::bus::{self, Window};
use sigma_core::{CodecConfig, Frame, H264Config, StreamInfo, TrackId, TrackInfo};
use sigma_transcode::ladder::Ladder;
use sigma_transcode::scheduler::{Options, Overload, Transcoder};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Linux's USER_HZ: the unit of the CPU times in /proc/<pid>/stat (fixed at 100 by the ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// (own CPU seconds, waited-for children's CPU seconds).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime is field 14 (index 11 here).
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    (
        (f[11] + f[12]) / TICKS_PER_SECOND,
        (f[13] + f[14]) / TICKS_PER_SECOND,
    )
}

fn avcc(sps: &[u8], pps: &[u8]) -> Bytes {
    let mut b = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    b.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    b.extend_from_slice(sps);
    b.push(1);
    b.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    b.extend_from_slice(pps);
    Bytes::from(b)
}

/// The source's video track as sigma-core frames at 90 kHz, in decode order.
fn read_source(path: &Path) -> (std::sync::Arc<StreamInfo>, Vec<Frame>) {
    let data = std::fs::read(path).expect("source");
    let size = data.len() as u64;
    let mut r = mp4::Mp4Reader::read_header(std::io::Cursor::new(data), size).expect("mp4");
    let (id, ts, config) = r
        .tracks()
        .values()
        .find(|t| matches!(t.track_type(), Ok(mp4::TrackType::Video)))
        .map(|t| {
            let c = H264Config::from_avcc(avcc(
                t.sequence_parameter_set().expect("sps"),
                t.picture_parameter_set().expect("pps"),
            ))
            .expect("avcC");
            (t.track_id(), t.timescale(), c)
        })
        .expect("a video track");
    let mut frames = Vec::new();
    for s in 1..=r.sample_count(id).expect("samples") {
        let Some(sample) = r.read_sample(id, s).expect("sample") else {
            continue;
        };
        let dts = sigma_core::time::rescale(sample.start_time as i64, ts, 90_000);
        let pts = sigma_core::time::rescale(
            sample.start_time as i64 + i64::from(sample.rendering_offset),
            ts,
            90_000,
        );
        frames.push(Frame::new(
            TrackId(1),
            dts,
            pts,
            sample.is_sync,
            sample.bytes,
        ));
    }
    let info = StreamInfo::new(
        1,
        vec![TrackInfo::new(TrackId(1), 90_000, CodecConfig::H264(config)).expect("track")],
    )
    .expect("info");
    (info, frames)
}

fn run_sigma(info: &std::sync::Arc<StreamInfo>, frames: &[Frame]) -> (f64, f64, Vec<u64>) {
    let options = Options {
        overload: Overload::Block,
        window: Window {
            max_groups: 10_000,
            max_frames: 100_000,
            max_bytes: 1 << 30,
        },
        ..Options::default()
    };
    let ladder = Ladder::default_ladder();
    let (cpu0, _) = cpu_seconds();
    let wall = Instant::now();
    let (mut t, outputs) = Transcoder::new(&ladder, info, options).expect("transcoder");
    // A consumer per rendition; the window holds the whole run, so they are drained at the end.
    let mut consumers: Vec<_> = outputs
        .renditions
        .iter()
        .map(|r| r.subscriber.subscribe())
        .collect();
    for f in frames {
        t.push(f.clone());
    }
    t.finish().expect("finish");
    let counts = consumers
        .iter_mut()
        .map(|c| {
            let mut n = 0u64;
            while let Some(ev) = c.pull() {
                if let bus::Event::Frame(_) = ev {
                    n += 1;
                }
            }
            n
        })
        .collect();
    let wall = wall.elapsed().as_secs_f64();
    let (cpu1, _) = cpu_seconds();
    (cpu1 - cpu0, wall, counts)
}

fn run_ffmpeg(src: &Path) -> (f64, f64) {
    let rung = |label: &str, kbps: u32, profile: &str| -> Vec<String> {
        let rate = format!("{kbps}k");
        [
            "-map",
            label,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            profile,
            "-b:v",
            &rate,
            "-maxrate",
            &rate,
            "-bufsize",
            &rate,
            "-x264-params",
            "keyint=infinite:scenecut=0:open-gop=0",
            "-force_key_frames",
            "source",
            "-f",
            "null",
            "-",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut args: Vec<String> = [
        "-v",
        "error",
        "-nostdin",
        "-i",
        src.to_str().expect("path"),
        "-filter_complex",
        "[0:v]split=3[a][b][c];[a]scale=1280:720[o1];[b]scale=854:480[o2];[c]scale=640:360[o3]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(rung("[o1]", 2500, "high"));
    args.extend(rung("[o2]", 1200, "main"));
    args.extend(rung("[o3]", 600, "main"));
    let (_, child0) = cpu_seconds();
    let wall = Instant::now();
    let status = Command::new("timeout")
        .arg("600")
        .arg("ffmpeg")
        .args(&args)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg failed");
    let wall = wall.elapsed().as_secs_f64();
    let (_, child1) = cpu_seconds();
    (child1 - child0, wall)
}

fn main() {
    let mut seconds = 20u32;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--seconds") {
        seconds = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(seconds);
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sigma-bench-transcode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("source-720p30.mp4");
    // A 720p30 High-profile source with B-frames and a keyframe every 2 s, as a camera or OBS
    // would send (testsrc2 with light film grain so rate control has work to do).
    let status = Command::new("timeout")
        .args(["600", "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1280x720:rate=30,noise=alls=8:allf=t")
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args(["-profile:v", "high", "-bf", "3", "-g", "60", "-b:v", "4M"])
        .arg(&src)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "making the source failed");
    let (info, frames) = read_source(&src);
    let media = frames.len() as f64 / 30.0;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;

    let (sigma_cpu, sigma_wall, counts) = run_sigma(&info, &frames);
    let (ff_cpu, ff_wall) = run_ffmpeg(&src);
    assert!(
        counts.iter().all(|&n| n == frames.len() as u64),
        "{counts:?}"
    );

    let sigma = sigma_cpu / media;
    let ff = ff_cpu / media;
    println!("720p30 -> 3-rung ladder, {media:.1} s of media, {cores} cores");
    println!(
        "sigma : {sigma_cpu:7.2} CPU-s, {sigma_wall:6.2} s wall, {sigma:.3} CPU-s per media-s, \
         {:.2} ladders in real time",
        cores / sigma
    );
    println!(
        "ffmpeg: {ff_cpu:7.2} CPU-s, {ff_wall:6.2} s wall, {ff:.3} CPU-s per media-s, \
         {:.2} ladders in real time",
        cores / ff
    );
    println!("ratio sigma/ffmpeg: {:.3}", sigma / ff);
    let _ = std::fs::remove_dir_all(&dir);
}
