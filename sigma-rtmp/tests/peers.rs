//! Real peers on 127.0.0.1: ffmpeg and GStreamer publishing to our server, and our client
//! publishing to ffmpeg acting as a server. Received frames are checked against what
//! `ffprobe -show_packets` reports for the same source.
//!
//! With `SIGMA_RTMP_WRITE_TESTDATA=1` the publish byte streams are written to `testdata/` (see
//! testdata/README.md); the replay tests read them.

mod common;

use common::{collect, start};
use sigma_core::bus::Event;
use sigma_core::time::rescale;
use sigma_core::{Frame, StreamEvent, StreamKey};
use sigma_rtmp::publisher::Publisher;
use sigma_rtmp::server::{Notice, ServerConfig};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A child process killed when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ChildGuard {
    /// Waits for the process to exit, at most `limit`.
    async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let t0 = std::time::Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(t0.elapsed() < limit, "child did not exit within {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn spawn(cmd: &str, args: &[&str]) -> ChildGuard {
    ChildGuard(
        Command::new(cmd)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd} (installed by scripts/install-deps): {e}")),
    )
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd} (installed by scripts/install-deps): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sigma-rtmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One packet as ffprobe sees it, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    video: bool,
    dts: i64,
    pts: i64,
    size: usize,
    key: bool,
}

fn probe(path: &Path) -> Vec<Packet> {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_packets",
            "-show_entries",
            "packet=codec_type,pts,dts,size,flags",
            "-of",
            "csv=p=0:nk=0",
            path.to_str().unwrap(),
        ],
    );
    // Data tags (onMetaData) show up as a third stream; only audio and video count.
    out.lines()
        .filter(|l| l.contains("codec_type=video") || l.contains("codec_type=audio"))
        .map(|l| {
            let get = |k: &str| {
                l.split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .unwrap_or_else(|| panic!("{k} missing in {l}"))
            };
            Packet {
                video: get("codec_type") == "video",
                dts: get("dts").parse().unwrap(),
                pts: get("pts").parse().unwrap(),
                size: get("size").parse().unwrap(),
                key: get("flags").starts_with('K'),
            }
        })
        .collect()
}

fn as_packets(frames: &[Frame], audio_rate: u32) -> Vec<Packet> {
    frames
        .iter()
        .map(|f| {
            let video = f.track().0 == 1;
            let rate = if video { 90_000 } else { audio_rate };
            Packet {
                video,
                dts: rescale(f.dts(), rate, 1000),
                pts: rescale(f.pts(), rate, 1000),
                size: f.len(),
                key: f.is_keyframe(),
            }
        })
        .collect()
}

fn check_same(got: &[Packet], want: &[Packet]) {
    for video in [true, false] {
        let g: Vec<_> = got.iter().filter(|p| p.video == video).collect();
        let w: Vec<_> = want.iter().filter(|p| p.video == video).collect();
        if g.len() != w.len() {
            eprintln!(
                "got: {:?}\n...{:?}",
                &g[..3.min(g.len())],
                &g[g.len().saturating_sub(3)..]
            );
            eprintln!(
                "want: {:?}\n...{:?}",
                &w[..3.min(w.len())],
                &w[w.len().saturating_sub(3)..]
            );
        }
        assert_eq!(g.len(), w.len(), "packet count (video: {video})");
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            assert_eq!(a, b, "packet {i} (video: {video})");
        }
    }
}

/// A 2-second 320x240 25 fps H.264 (B-frames) + 44.1 kHz AAC FLV file.
fn make_source(dir: &Path) -> PathBuf {
    let src = dir.join("src.flv");
    run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "25",
            "-bf",
            "2",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "flv",
            src.to_str().unwrap(),
        ],
    );
    src
}

/// Forwards one connection to `target`, recording what the client sent.
async fn capture_proxy(
    target: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    Arc<Mutex<Vec<u8>>>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let rec = log.clone();
    let task = tokio::spawn(async move {
        let Ok(Ok((client, _))) =
            tokio::time::timeout(Duration::from_secs(30), listener.accept()).await
        else {
            return;
        };
        let server = TcpStream::connect(target).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = async {
            let mut buf = vec![0u8; 65536];
            loop {
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        rec.lock().unwrap().extend_from_slice(&buf[..n]);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sw.shutdown().await;
        };
        let down = async {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
            let _ = cw.shutdown().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(60), futures_join(up, down)).await;
    });
    (addr, log, task)
}

async fn futures_join(
    a: impl std::future::Future<Output = ()>,
    b: impl std::future::Future<Output = ()>,
) {
    tokio::join!(a, b);
}

fn write_testdata(name: &str, bytes: &[u8], packets: &[Packet]) {
    if std::env::var_os("SIGMA_RTMP_WRITE_TESTDATA").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    std::fs::write(dir.join(format!("{name}.rtmp")), bytes).unwrap();
    let text: String = packets
        .iter()
        .map(|p| {
            format!(
                "{},{},{},{},{}\n",
                if p.video { "video" } else { "audio" },
                p.dts,
                p.pts,
                p.size,
                if p.key { "K" } else { "_" }
            )
        })
        .collect();
    std::fs::write(dir.join(format!("{name}.packets.csv")), text).unwrap();
}

/// Publishes with `publish` (a command line that connects to the URL it is given) through a
/// capturing proxy, returns the frames received and the bytes captured.
async fn receive_from(
    name: &str,
    publish: impl FnOnce(&str) -> ChildGuard,
) -> (Vec<Frame>, Vec<u8>, u32) {
    let mut srv = start(ServerConfig::default(), None).await;
    let (proxy, log, proxy_task) = capture_proxy(srv.addr).await;
    let url = format!("rtmp://{proxy}/live/{name}");
    let mut child = publish(&url);
    srv.wait_notice("published", |n| {
        matches!(n, Notice::Stream(StreamEvent::Published { .. }))
    })
    .await;
    let consumer = srv
        .app
        .take_early(&StreamKey::new("live", name))
        .expect("subscribed at admission");
    let (frames, infos, ended) = collect(consumer, Duration::from_secs(40)).await;
    assert!(ended, "stream ended cleanly");
    let status = child.wait(Duration::from_secs(20)).await;
    assert!(status.success(), "publisher exited with {status}");
    let _ = tokio::time::timeout(Duration::from_secs(10), proxy_task).await;
    let rate = infos
        .last()
        .and_then(|i| i.track(sigma_core::TrackId(2)))
        .map(|t| t.timescale())
        .expect("audio track");
    srv.shutdown().await;
    let bytes = log.lock().unwrap().clone();
    (frames, bytes, rate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_to_our_server() {
    let dir = tempdir("ffmpeg-pub");
    let src = make_source(&dir);
    let want = probe(&src);
    let src_s = src.to_str().unwrap().to_owned();
    let (frames, bytes, rate) = receive_from("ff", |url| {
        spawn(
            "ffmpeg",
            &[
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-i",
                &src_s,
                "-c",
                "copy",
                "-f",
                "flv",
                url,
            ],
        )
    })
    .await;
    let got = as_packets(&frames, rate);
    check_same(&got, &want);
    write_testdata("ffmpeg_publish", &bytes, &want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// ffmpeg publishing at timestamps above 2^24 ms (4.66 h), so every message header uses the
/// extended timestamp field, also on continuation chunks of multi-chunk keyframes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_with_extended_timestamps() {
    let dir = tempdir("ffmpeg-ext");
    let src = make_source(&dir);
    // The reference: the same remux with the same offset, written to a file.
    let reference = dir.join("ref.flv");
    run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            src.to_str().unwrap(),
            "-c",
            "copy",
            "-output_ts_offset",
            "16780",
            "-f",
            "flv",
            reference.to_str().unwrap(),
        ],
    );
    let want = probe(&reference);
    assert!(want[0].dts > 0xFF_FFFF, "reference starts above 2^24 ms");
    let src_s = src.to_str().unwrap().to_owned();
    let (frames, bytes, rate) = receive_from("ext", |url| {
        spawn(
            "ffmpeg",
            &[
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-i",
                &src_s,
                "-c",
                "copy",
                "-output_ts_offset",
                "16780",
                "-f",
                "flv",
                url,
            ],
        )
    })
    .await;
    // The capture really used extended timestamps: a type-0 header with 0xFFFFFF.
    assert!(
        bytes
            .windows(4)
            .any(|w| w[0] >> 6 == 0 && w[1..4] == [0xFF, 0xFF, 0xFF])
    );
    check_same(&as_packets(&frames, rate), &want);
    let _ = std::fs::remove_dir_all(&dir);
}

fn gst_pipeline(sink: &str) -> Vec<String> {
    format!(
        "-q videotestsrc num-buffers=50 pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! x264enc key-int-max=25 bframes=2 speed-preset=veryfast threads=1 ! h264parse ! queue \
         ! flvmux name=m streamable=true ! {sink} \
         audiotestsrc num-buffers=86 ! audio/x-raw,rate=44100,channels=2 ! voaacenc ! aacparse ! queue ! m."
    )
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_publishes_to_our_server() {
    let dir = tempdir("gst-pub");
    let file = dir.join("gst.flv");
    let args = gst_pipeline(&format!("filesink location={}", file.display()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("gst-launch-1.0", &args);
    let want = probe(&file);
    assert!(want.len() > 100, "reference has {} packets", want.len());
    let (frames, bytes, rate) = receive_from("gst", |url| {
        let args = gst_pipeline(&format!("rtmp2sink location={url}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn("gst-launch-1.0", &args)
    })
    .await;
    let got = as_packets(&frames, rate);
    check_same(&got, &want);
    write_testdata("gstreamer_publish", &bytes, &want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_publishes_to_ffmpeg() {
    let dir = tempdir("ffmpeg-listen");
    // The frames: the captured ffmpeg publish, demuxed by our own server session.
    let (info, frames) = sigma_rtmp_replay::demux_capture("ffmpeg_publish.rtmp");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = dir.join("out.flv");
    let url = format!("rtmp://127.0.0.1:{port}/live/x");
    let mut child = spawn(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-listen",
            "1",
            "-i",
            &url,
            "-c",
            "copy",
            "-f",
            "flv",
            out.to_str().unwrap(),
        ],
    );
    // Wait for ffmpeg to listen.
    let mut publisher = None;
    for _ in 0..100 {
        match Publisher::connect(&url, Duration::from_secs(10)).await {
            Ok(p) => {
                publisher = Some(p);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut p = publisher.expect("ffmpeg listens");
    p.send_info(info).await.unwrap();
    for f in &frames {
        p.send(f).await.unwrap();
    }
    p.finish().await.unwrap();
    let status = child.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "ffmpeg exited with {status}");
    let got = probe(&out);
    let rate = 44_100;
    check_same(&got, &as_packets(&frames, rate));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Replays a captured publish through the sans-IO server session.
mod sigma_rtmp_replay {
    use super::common::testdata;
    use sigma_core::{Frame, StreamInfo};
    use sigma_rtmp::session::{ServerEvent, ServerSession, SessionConfig};
    use std::sync::Arc;
    use std::time::Instant;

    pub fn demux_capture(name: &str) -> (Arc<StreamInfo>, Vec<Frame>) {
        let bytes = testdata(name);
        let now = Instant::now();
        let mut s = ServerSession::new(SessionConfig::default(), now, 1);
        let mut info = None;
        let mut frames = Vec::new();
        for piece in bytes.chunks(4096) {
            s.handle_input(now, piece);
            while let Some(ev) = s.poll_event().unwrap() {
                match ev {
                    ServerEvent::PublishRequested(_) => s.accept_publish().unwrap(),
                    ServerEvent::StreamInfo(i) => info = Some(i),
                    ServerEvent::Frame(f) => frames.push(f),
                    _ => {}
                }
            }
        }
        (info.expect("stream info"), frames)
    }
}

#[allow(dead_code)]
fn unused(_: Event) {}

/// ffmpeg as a player validates the server's digest handshake (S1 digest and S2 signature); it
/// only gets as far as our `NetStream.Play.Failed` answer if our digest reply is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_player_accepts_our_digest_handshake() {
    let srv = start(ServerConfig::default(), None).await;
    let url = format!("rtmp://{}/live/none", srv.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("ffprobe")
            .args(["-hide_banner", "-rw_timeout", "10000000", &url])
            .stdin(Stdio::null())
            .output()
            .expect("ffprobe (installed by scripts/install-deps)")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "playback is refused");
    assert!(
        stderr.contains("publishers only"),
        "ffmpeg should reach our play refusal, not fail the handshake: {stderr}"
    );
    srv.shutdown().await;
}
