//! Misbehaving publishers and viewers must not stop other streams: garbage and stalled RTMP
//! connections, a viewer that never reads, and 10,000 idle HTTP connections, all while hls.js
//! plays a healthy stream.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use support::{Server, ffmpeg_publish, play};

#[test]
fn misbehaving_peers_do_not_stop_a_healthy_stream() {
    let server = Server::start("robust", &["--latency", "ultra-low"]);
    let _good = ffmpeg_publish(&server.rtmp_url("good"), 90, &[]);
    server
        .wait_for("/live/good/video.m3u8", Duration::from_secs(30), |t| {
            t.contains("#EXTINF")
        })
        .unwrap_or_else(|| panic!("healthy stream did not start\n{}", server.log_text()));

    // Publishers: garbage instead of a handshake, a valid C0 then garbage, and stalled sockets.
    let mut bad_rtmp = Vec::new();
    for i in 0..5u8 {
        let mut s = TcpStream::connect(server.rtmp).expect("rtmp connect");
        let garbage: Vec<u8> = (0..4096u32)
            .map(|n| (n as u8).wrapping_mul(31).wrapping_add(i))
            .collect();
        let _ = s.write_all(&garbage);
        bad_rtmp.push(s);
        let mut s = TcpStream::connect(server.rtmp).expect("rtmp connect");
        let _ = s.write_all(&[3]);
        let _ = s.write_all(&[0xff; 3000]);
        bad_rtmp.push(s);
        bad_rtmp.push(TcpStream::connect(server.rtmp).expect("rtmp connect (stalled)"));
    }

    // Viewers: a client that asks for a playlist and segments and never reads the answers.
    let mut stalled_viewers = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(server.http).expect("http connect");
        for _ in 0..50 {
            let _ = write!(
                s,
                "GET /live/good/video.m3u8 HTTP/1.1\r\nHost: x\r\n\r\nGET /assets/hls.min.js HTTP/1.1\r\nHost: x\r\n\r\n"
            );
        }
        stalled_viewers.push(s);
    }

    // 10,000 idle HTTP connections.
    rlimit::increase_nofile_limit(30_000).expect("raise the test's open-file limit");
    let mut idle = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        match TcpStream::connect_timeout(&server.http, Duration::from_secs(5)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("idle connection {i} refused: {e}\n{}", server.log_text()),
        }
    }

    let health = server
        .get("/healthz")
        .expect("health answers with 10,000 idle connections");
    assert_eq!(health.0, 200);
    let played = play(&server.player_url("good"), 8, &[]);
    assert!(
        played.ok,
        "healthy stream stopped playing: {}\n{}",
        played.json,
        server.log_text()
    );
    drop(idle);
    drop(stalled_viewers);
    drop(bad_rtmp);
}
