//! sigma-load against a real sigma-server: 2 streams x 3 viewers for ~8 s over loopback, in
//! ultra-low mode. Checks correctness (nothing lost, no errors, delays measured), not speed:
//! speed figures come from benches/scripts/load.sh.

mod support;

use sigma_load::Config;
use sigma_load::media::Media;
use sigma_load::viewer::Mode;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use support::Server;

/// A 4 s 640x360 30 fps clip with a 1 s GOP and AAC, made with ffmpeg.
fn media(dir: &std::path::Path) -> Media {
    let path = dir.join("load-clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-b:v", "600k", "-c:a", "aac", "-b:a", "64k",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg failed");
    Media::open(&path).expect("clip reads")
}

#[test]
fn two_streams_three_viewers_ultra_low() {
    let server = Server::start("load", &["--latency", "ultra-low"]);
    let media = Arc::new(media(&server.data_dir));
    let config = Config {
        rtmp: format!("rtmp://{}/live", server.rtmp),
        http: format!("http://{}/live", server.http),
        media,
        streams: 2,
        viewers_per_stream: 3,
        duration: Duration::from_secs(8),
        warmup: Duration::from_secs(3),
        stream_prefix: "loadtest".into(),
        mode: Mode::Llhls,
        server_pids: vec![server.proc.child.id()],
        request_timeout: Duration::from_secs(10),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(sigma_load::run(config))
        .expect("run starts");
    let context = || format!("{}\nserver log:\n{}", report.to_text(), server.log_text());
    assert!(report.clean(), "losses or errors:\n{}", context());
    assert_eq!(report.per_stream.len(), 2);
    for s in &report.per_stream {
        // 11 s of 30 fps video and 48 kHz AAC, minus connection setup.
        assert!(s.ingest.frames_sent > 11 * 70, "{}", context());
        assert_eq!(s.ingest.frames_not_sent, 0);
        // Three viewers, video and audio, ~3 parts/s each for ~7 s.
        assert!(s.delay.count >= 3 * 2 * 3 * 5, "{}", context());
        assert!(s.delay.p50_ms > 0.0 && s.delay.max_ms >= s.delay.p99_ms);
        assert_eq!(s.discontinuities, 0, "{}", context());
    }
    let server_stats = report.server.as_ref().expect("server measured");
    assert!(server_stats.vm_rss_kib > 0 && server_stats.exited.is_empty());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["totals"]["viewer_errors"], 0);
    assert_eq!(json["mode"], "llhls");
}

#[test]
fn refuses_non_loopback_targets() {
    let dir = std::env::temp_dir().join(format!("sigma-load-refuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = Config {
        rtmp: "rtmp://192.0.2.1/live".into(),
        http: "http://127.0.0.1:9/live".into(),
        media: Arc::new(media(&dir)),
        streams: 1,
        viewers_per_stream: 1,
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        stream_prefix: "x".into(),
        mode: Mode::Llhls,
        server_pids: vec![],
        request_timeout: Duration::from_secs(1),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime.block_on(sigma_load::run(config)).unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
