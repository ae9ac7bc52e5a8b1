//! End to end: real publishers (ffmpeg, GStreamer) → sigma-server → hls.js in headless
//! Chromium. Loopback only; every process is bounded in time and killed when a test ends.

mod support;

use std::time::Duration;
use support::{Server, ffmpeg_publish, ffmpeg_publish_sized, gst_publish, play};

/// Plays `stream` for `seconds` and fails with everything useful if it does not play.
fn assert_plays(server: &Server, stream: &str, seconds: u32) -> String {
    let played = play(&server.player_url(stream), seconds, &[]);
    assert!(
        played.ok,
        "hls.js did not play {stream}: {}\nserver log:\n{}",
        played.json,
        server.log_text()
    );
    played.json
}

fn wait_for_segments(
    server: &Server,
    stream: &str,
    rendition: &str,
    segments: usize,
    within: Duration,
) -> String {
    let path = format!("/live/{stream}/{rendition}.m3u8");
    server
        .wait_for(&path, within, |t| t.matches("#EXTINF").count() >= segments)
        .unwrap_or_else(|| {
            panic!(
                "{path} never had {segments} segments\n{}",
                server.log_text()
            )
        })
}

fn plays_in_mode(mode: &str, warmup_segments: usize, play_seconds: u32) {
    let server = Server::start(mode, &["--latency", mode]);
    let _pub = ffmpeg_publish(&server.rtmp_url("cam"), 90, &[]);
    let playlist = wait_for_segments(
        &server,
        "cam",
        "video",
        warmup_segments,
        Duration::from_secs(40),
    );
    let target: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("target duration");
    match mode {
        "ultra-low" => assert!(
            playlist.contains("#EXT-X-PART-INF") && target <= 2,
            "{playlist}"
        ),
        "low" => assert!(
            !playlist.contains("#EXT-X-PART") && target <= 2,
            "{playlist}"
        ),
        _ => assert!(
            !playlist.contains("#EXT-X-PART") && target >= 6,
            "{playlist}"
        ),
    }
    assert_plays(&server, "cam", play_seconds);
}

#[test]
fn ffmpeg_to_hlsjs_ultra_low() {
    plays_in_mode("ultra-low", 1, 8);
}

#[test]
fn ffmpeg_to_hlsjs_low() {
    plays_in_mode("low", 2, 8);
}

#[test]
fn ffmpeg_to_hlsjs_normal() {
    plays_in_mode("normal", 1, 10);
}

#[test]
fn gstreamer_publisher_plays() {
    let server = Server::start("gst", &["--latency", "ultra-low"]);
    let _pub = gst_publish(&server.rtmp_url("gst"), 60);
    let master = server
        .wait_for("/live/gst/index.m3u8", Duration::from_secs(30), |t| {
            t.contains("RESOLUTION=640x360")
        })
        .unwrap_or_else(|| panic!("no multivariant playlist\n{}", server.log_text()));
    assert!(master.contains("mp4a.40.2"), "{master}");
    assert_plays(&server, "gst", 8);
}

#[test]
fn two_streams_run_independently() {
    let server = Server::start("two", &["--latency", "ultra-low"]);
    let mut a = ffmpeg_publish(&server.rtmp_url("a"), 60, &[]);
    let _b = ffmpeg_publish(&server.rtmp_url("b"), 60, &[]);
    wait_for_segments(&server, "a", "video", 1, Duration::from_secs(30));
    wait_for_segments(&server, "b", "video", 1, Duration::from_secs(30));
    // Stopping one publisher leaves the other playing.
    a.kill();
    assert_plays(&server, "b", 6);
}

#[test]
fn publisher_restarted_within_grace_resumes_with_discontinuity() {
    let server = Server::start(
        "grace",
        &["--latency", "ultra-low", "--grace-period", "15s"],
    );
    let mut first = ffmpeg_publish(&server.rtmp_url("cam"), 60, &[]);
    let before = wait_for_segments(&server, "cam", "video", 2, Duration::from_secs(30));
    first.kill();
    std::thread::sleep(Duration::from_secs(2));
    let _second = ffmpeg_publish(&server.rtmp_url("cam"), 60, &[]);
    let after = server
        .wait_for("/live/cam/video.m3u8", Duration::from_secs(30), |t| {
            t.contains("#EXT-X-DISCONTINUITY") && t.matches("#EXTINF").count() >= 4
        })
        .unwrap_or_else(|| panic!("no discontinuity after restart\n{}", server.log_text()));
    assert!(!after.contains("#EXT-X-ENDLIST"), "{after}");
    // Same playlist: the media URIs keep the first publication's epoch.
    let epoch = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("video/"))
            .and_then(|l| l.split('/').nth(1))
            .map(str::to_owned)
    };
    assert_eq!(epoch(&before), epoch(&after), "{before}\n---\n{after}");
    assert!(
        server
            .log_text()
            .contains("resumed within the grace period")
    );
    assert_plays(&server, "cam", 6);
}

#[test]
fn unknown_stream_is_404() {
    let server = Server::start("404", &[]);
    for path in [
        "/live/nothing/index.m3u8",
        "/live/nothing/video.m3u8",
        "/live/../../etc/passwd",
        "/other/x/index.m3u8",
        "/live/bad%20name/player",
        "/player/cam",
        "/other/cam/player",
    ] {
        let (status, _) = server.get(path).expect("answer");
        assert_eq!(status, 404, "{path}");
    }
}

#[test]
fn refused_stream_key_gets_an_rtmp_error_and_creates_nothing() {
    let config = r#"
[server]
rtmp_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
data_dir = "./sigma-data"
latency = "ultra-low"
grace_period = "2s"
ended_retention = "1m"

[[app]]
name = "live"
stream_keys = ["s3cret"]
"#;
    let server = Server::start_with_config("keys", Some(config), &[]);
    let mut refused = ffmpeg_publish(&server.rtmp_url("cam?key=wrong"), 20, &[]);
    let status = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            refused.child.try_wait().ok().flatten()
        })
        .expect("ffmpeg gave up on the refused publish");
    assert!(!status.success(), "ffmpeg should fail on a refused publish");
    assert!(
        server.log_text().contains("publish refused")
            && server.log_text().contains("NetStream.Publish.Denied"),
        "a bad key is denied, not a bad name:\n{}",
        server.log_text()
    );
    assert_eq!(server.get("/live/cam/index.m3u8").map(|r| r.0), Some(404));
    let health = server.get("/healthz").expect("health");
    assert!(String::from_utf8_lossy(&health.1).contains("\"streams\":0"));
    // The right key is accepted.
    let _ok = ffmpeg_publish(&server.rtmp_url("cam?key=s3cret"), 30, &[]);
    wait_for_segments(&server, "cam", "video", 1, Duration::from_secs(30));
}

#[test]
fn transcoded_ladder_plays_and_switches_levels() {
    let server = Server::start(
        "ladder",
        &["--latency", "ultra-low", "--transcode", "default"],
    );
    let _pub = ffmpeg_publish_sized(&server.rtmp_url("tc"), 90, "1280x720", &["-b:v", "2500k"]);
    let master = server
        .wait_for("/live/tc/index.m3u8", Duration::from_secs(40), |t| {
            t.matches("#EXT-X-STREAM-INF").count() == 3
        })
        .unwrap_or_else(|| panic!("no 3-rung multivariant playlist\n{}", server.log_text()));
    for (res, codec) in [
        ("1280x720", "avc1.64"),
        ("854x480", "avc1.4d"),
        ("640x360", "avc1.4d"),
    ] {
        let line = master
            .lines()
            .find(|l| l.contains(&format!("RESOLUTION={res}")))
            .unwrap_or_else(|| panic!("no {res} rendition:\n{master}"));
        assert!(
            line.contains(codec) && line.contains("AUDIO=\"audio\""),
            "{line}"
        );
    }
    assert_eq!(
        master.matches("TYPE=AUDIO").count(),
        1,
        "one audio group:\n{master}"
    );
    let played = play(&server.player_url("tc"), 14, &["--switch-level"]);
    assert!(played.ok, "{}\n{}", played.json, server.log_text());
    assert!(
        played.json.contains("\"levels\":3") && !played.json.contains("\"levelSwitches\":0"),
        "expected a level switch: {}",
        played.json
    );
}

#[test]
fn ladder_never_upscales_and_says_so() {
    let config = r#"
[server]
rtmp_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
data_dir = "./sigma-data"
latency = "low"
grace_period = "2s"
ended_retention = "1m"
transcode = "with1080"

[[app]]
name = "live"

[[ladder]]
name = "with1080"
[[ladder.renditions]]
name = "1080p"
height = 1080
video = { bitrate_kbps = 4500 }
[[ladder.renditions]]
name = "360p"
height = 360
video = { bitrate_kbps = 600 }
"#;
    let server = Server::start_with_config("upscale", Some(config), &[]);
    let _pub = ffmpeg_publish_sized(&server.rtmp_url("cam"), 60, "1280x720", &[]);
    let master = server
        .wait_for("/live/cam/index.m3u8", Duration::from_secs(40), |t| {
            t.contains("#EXT-X-STREAM-INF")
        })
        .unwrap_or_else(|| panic!("no multivariant playlist\n{}", server.log_text()));
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 1, "{master}");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    assert!(!master.contains("1080p.m3u8"), "{master}");
    assert!(master.contains("# rendition 1080p skipped:"), "{master}");
    assert_eq!(server.get("/live/cam/1080p.m3u8").map(|r| r.0), Some(404));
    let log = server.log_text();
    assert!(
        log.contains("rendition skipped") && log.contains("1080p"),
        "{log}"
    );
}

#[test]
fn transcoded_stream_gets_keyframes_at_the_mode_cadence_whatever_the_source_gop() {
    // The source keeps x264's default 250-frame (8.3 s) keyframe interval; the ladder's
    // keyframes are Sigma's (1 s in low mode), so its rendition's segments are 1 s and the
    // target duration is the mode's, where the source packaged as published would get 9.
    let server = Server::start("cadence", &["--latency", "low", "--transcode", "default"]);
    let _pub = ffmpeg_publish(&server.rtmp_url("tc"), 60, &["-g", "250"]);
    let playlist = server
        .wait_for("/live/tc/360p.m3u8", Duration::from_secs(40), |t| {
            t.matches("#EXTINF").count() >= 4
        })
        .unwrap_or_else(|| panic!("no 360p playlist\n{}", server.log_text()));
    assert!(playlist.contains("#EXT-X-TARGETDURATION:1\n"), "{playlist}");
    let durations: Vec<f64> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|v| v.trim_end_matches(',').parse().ok())
        .collect();
    assert!(
        durations.iter().all(|d| *d < 1.5),
        "segments follow Sigma's 1 s keyframes: {durations:?}"
    );
    assert!(
        !server.log_text().contains("cut between keyframes"),
        "{}",
        server.log_text()
    );
}
