//! The 720p → 3-rung ladder (1280x720 2.5 Mbit/s High, 854x480 1.2 Mbit/s Main, 640x360
//! 0.6 Mbit/s Main; x264 `veryfast`, capped ABR with a one-second VBV, keyframes at the source's)
//! through Sigma and through the `ffmpeg` command line with the same x264 settings, in one run.
//!
//! Reports CPU-seconds per media-second for both (user + system time: Sigma's from
//! `/proc/self/stat`, ffmpeg's as the children's time of this process), their ratio, and how many
//! such ladders fit in real time on this machine's cores.
//!
//! Then measures latency in the ultra-low mode (every rung `zerolatency`, one decoder thread,
//! a source without B-frames fed in real time): per picture, the time from `Transcoder::push`
//! to the 720p frame on its bus, against the encoder's own latency (push → frame out of the
//! same three x264 encoders fed pre-decoded, pre-scaled pictures in real time, so the CPU
//! contention is the same). The difference is what transcoding adds (decode, queues, scaling).
//!
//! Run with `cargo bench -p sigma-benches --bench transcode_ladder` (optionally
//! `-- --seconds N`, default 20; `--repeat N` alternating runs of each, default 2;
//! `--latency-seconds N`, default 10).

use sigma_core::bus::{self, Window};
use sigma_core::media::{Media, VIDEO};
use sigma_core::{CodecConfig, Frame, StreamInfo, TrackId};
use sigma_transcode::decode::{DecoderOptions, Picture, VideoDecoder};
use sigma_transcode::encode::{H264Encoder, Preset};
use sigma_transcode::filter::{Size, VideoFilter, VideoInput, VideoProcessing};
use sigma_transcode::ladder::Ladder;
use sigma_transcode::scheduler::{Options, Overload, Transcoder};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The source's video track as sigma-core frames at 90 kHz, in decode order (sigma-core's
/// test-media reader; the audio is left out).
fn read_source(path: &Path) -> (std::sync::Arc<StreamInfo>, Vec<Frame>) {
    let media = Media::open(path).expect("source");
    let video = media.info().track(VIDEO).expect("a video track").clone();
    let info = StreamInfo::new(1, vec![video]).expect("info");
    let frames = media
        .frames()
        .iter()
        .filter(|f| f.track() == VIDEO)
        .cloned()
        .collect();
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

/// The default ladder with every rung in x264's `zerolatency` tune.
fn ultra_low_ladder() -> Ladder {
    let mut ladder = Ladder::default_ladder();
    for r in &mut ladder.renditions {
        r.video.zerolatency = true;
        r.video.preset = Preset::Veryfast;
    }
    ladder
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Sleeps until `start + i` frame periods.
fn pace(start: Instant, i: usize) {
    let due = start + Duration::from_secs_f64(i as f64 / 30.0);
    if let Some(d) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// End-to-end latency (ms) of the 720p rung, per picture, feeding the source in real time.
fn pipeline_latency(info: &Arc<StreamInfo>, frames: &[Frame]) -> Vec<f64> {
    let options = Options {
        decoder: DecoderOptions { threads: 1 },
        overload: Overload::Drop,
        ..Options::default()
    };
    let (mut t, outputs) = Transcoder::new(&ultra_low_ladder(), info, options).expect("ladder");
    let mut consumer = outputs.renditions[0].subscriber.subscribe();
    let watcher = std::thread::spawn(move || {
        let mut seen = HashMap::new();
        loop {
            match consumer.pull() {
                Some(bus::Event::Frame(f)) => {
                    seen.insert(f.pts(), Instant::now());
                }
                Some(bus::Event::End | bus::Event::Error(_)) => return seen,
                Some(_) => {}
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    });
    let mut pushed = HashMap::new();
    let start = Instant::now();
    for (i, f) in frames.iter().enumerate() {
        pace(start, i);
        pushed.insert(f.pts(), Instant::now());
        t.push(f.clone());
    }
    t.finish().expect("finish");
    let seen = watcher.join().expect("watcher");
    pushed
        .iter()
        .filter_map(|(pts, t0)| Some((*seen.get(pts)? - *t0).as_secs_f64() * 1000.0))
        .collect()
}

/// The three encoders alone, fed pre-scaled pictures in real time, each on its own thread;
/// returns the 720p encoder's push → frame latency (ms) per picture.
fn encoder_latency(info: &Arc<StreamInfo>, frames: &[Frame]) -> Vec<f64> {
    let track = info.primary_video().expect("video");
    let CodecConfig::H264(c) = track.codec() else {
        panic!("not H.264")
    };
    // Two seconds of decoded pictures, looped.
    let mut d = VideoDecoder::new(c, 90_000, 1, DecoderOptions { threads: 1 }).expect("decoder");
    let mut decoded = Vec::new();
    for f in frames.iter().take(60) {
        d.push(f).expect("decode");
        while let Some(p) = d.pull().expect("decode") {
            decoded.push(p);
        }
    }
    d.finish().expect("decode");
    while let Some(p) = d.pull().expect("decode") {
        decoded.push(p);
    }
    let ladder = ultra_low_ladder();
    let plan = ladder
        .plan(Size {
            width: c.width(),
            height: c.height(),
        })
        .expect("plan");
    let n = frames.len();
    let handles: Vec<_> = plan
        .renditions
        .iter()
        .map(|r| {
            let scale = VideoProcessing {
                resize: Some(r.size),
                ..VideoProcessing::default()
            };
            let first = &decoded[0];
            let mut g = VideoFilter::new(
                &scale,
                VideoInput {
                    width: first.width(),
                    height: first.height(),
                    format: first.format(),
                    timescale: 90_000,
                },
            )
            .expect("scale");
            let mut scaled: Vec<Picture> = Vec::new();
            for p in &decoded {
                g.push(p).expect("scale");
                while let Some(o) = g.pull().expect("scale") {
                    scaled.push(o);
                }
            }
            let settings = r.rendition.video.clone();
            let size = r.size;
            std::thread::spawn(move || {
                let mut e =
                    H264Encoder::new(&settings, size.width, size.height, 90_000, TrackId(1))
                        .expect("encoder");
                let mut lat = Vec::new();
                let start = Instant::now();
                for i in 0..n {
                    pace(start, i);
                    let t0 = Instant::now();
                    e.push(&scaled[i % scaled.len()], i % 30 == 0)
                        .expect("encode");
                    if e.pull().is_some() {
                        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<Vec<f64>> = handles
        .into_iter()
        .map(|h| h.join().expect("encoder"))
        .collect();
    all.remove(0)
}

fn make_source(path: &Path, seconds: u32, x264: &[&str]) {
    // testsrc2 with light film grain so rate control has work to do.
    let status = Command::new("timeout")
        .args(["600", "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1280x720:rate=30,noise=alls=8:allf=t")
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
        ])
        .args(x264)
        .arg(path)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "making the source failed");
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
    let mut repeat = 2u32;
    if let Some(i) = args.iter().position(|a| a == "--repeat") {
        repeat = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(repeat)
            .max(1);
    }
    let mut latency_seconds = 10u32;
    if let Some(i) = args.iter().position(|a| a == "--latency-seconds") {
        latency_seconds = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(latency_seconds);
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sigma-bench-transcode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("source-720p30.mp4");
    // A 720p30 High-profile source with B-frames and a keyframe every 2 s, as a camera or OBS
    // would send.
    make_source(
        &src,
        seconds,
        &["-preset", "veryfast", "-bf", "3", "-g", "60", "-b:v", "4M"],
    );
    let (info, frames) = read_source(&src);
    let media = frames.len() as f64 / 30.0;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;

    // Alternate the two so that load from other processes hits both alike.
    let (mut sigma_cpu, mut sigma_wall, mut ff_cpu, mut ff_wall) = (0.0, 0.0, 0.0, 0.0);
    println!("720p30 -> 3-rung ladder, {media:.1} s of media, {cores} cores, {repeat} runs each");
    for run in 0..repeat {
        let (cpu, wall, counts) = run_sigma(&info, &frames);
        assert!(
            counts.iter().all(|&n| n == frames.len() as u64),
            "{counts:?}"
        );
        let (fcpu, fwall) = run_ffmpeg(&src);
        println!(
            "  run {run}: sigma {:.3}, ffmpeg {:.3} CPU-s per media-s",
            cpu / media,
            fcpu / media
        );
        sigma_cpu += cpu;
        sigma_wall += wall;
        ff_cpu += fcpu;
        ff_wall += fwall;
    }
    let n = f64::from(repeat);
    let (sigma_cpu, sigma_wall, ff_cpu, ff_wall) =
        (sigma_cpu / n, sigma_wall / n, ff_cpu / n, ff_wall / n);
    let sigma = sigma_cpu / media;
    let ff = ff_cpu / media;
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

    // Ultra-low-latency mode.
    let ll = dir.join("source-720p30-zerolatency.mp4");
    make_source(
        &ll,
        latency_seconds,
        &[
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-b:v",
            "4M",
        ],
    );
    let (info, frames) = read_source(&ll);
    let mut end_to_end = pipeline_latency(&info, &frames);
    let mut encoder = encoder_latency(&info, &frames);
    let (p50, p95) = (
        percentile(&mut end_to_end, 0.5),
        percentile(&mut end_to_end, 0.95),
    );
    let (e50, e95) = (
        percentile(&mut encoder, 0.5),
        percentile(&mut encoder, 0.95),
    );
    println!(
        "latency, ultra-low mode, 720p rung, {} pictures in real time:",
        end_to_end.len()
    );
    println!("  push -> rendition bus : median {p50:6.1} ms, p95 {p95:6.1} ms");
    println!("  x264 alone (same load): median {e50:6.1} ms, p95 {e95:6.1} ms");
    println!(
        "  added by transcoding  : median {:6.1} ms = {:.2} frames at 30 fps",
        p50 - e50,
        (p50 - e50) / (1000.0 / 30.0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
