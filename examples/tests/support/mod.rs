//! Helpers for end-to-end tests: run `sigma-server`, publish with ffmpeg or GStreamer, play with
//! hls.js in headless Chromium (`e2e/play.mjs`). Loopback only; every child is killed on drop and
//! every wait is bounded.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGKILL (a publisher "killed mid-stream").
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port (bound then released; fine for tests run in one process).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running sigma-server on loopback ports.
pub struct Server {
    pub proc: Proc,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Server {
    /// Starts the server binary with `extra` arguments and waits for `/healthz`.
    pub fn start(tag: &str, extra: &[&str]) -> Server {
        Self::start_with_config(tag, None, extra)
    }

    /// Like [`start`](Self::start), with a TOML configuration file written from `config`.
    pub fn start_with_config(tag: &str, config: Option<&str>, extra: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!("sigma-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if let Some(text) = config {
            let path = dir.join("sigma.toml");
            std::fs::write(&path, text).expect("config file");
            extra.push("--config".into());
            extra.push(path.display().to_string());
        }
        let rtmp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join("server.log");
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigma-server"));
        cmd.args(["--rtmp-listen", &rtmp.to_string()])
            .args(["--http-listen", &http.to_string()])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(&extra)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let proc = Proc::spawn("sigma-server", &mut cmd);
        let server = Server {
            proc,
            rtmp,
            http,
            data_dir: dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some((200, _)) = server.get("/healthz") {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "sigma-server did not become healthy:\n{}",
            server.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn rtmp_url(&self, stream: &str) -> String {
        format!("rtmp://{}/live/{stream}", self.rtmp)
    }

    pub fn player_url(&self, stream: &str) -> String {
        format!("http://{}/live/{stream}/player", self.http)
    }

    /// A plain HTTP/1.1 GET: (status, body). `None` when the server does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        http_get(self.http, path)
    }

    /// Polls `path` until it answers 200 and `check` accepts the body, or `within` passes.
    pub fn wait_for(
        &self,
        path: &str,
        within: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some((200, body)) = self.get(path) {
                let text = String::from_utf8_lossy(&body).into_owned();
                if check(&text) {
                    return Some(text);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

/// A minimal blocking HTTP/1.1 GET with `Connection: close` and a 20 s timeout.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    use std::io::Write;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = buf[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Some((status, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// ffmpeg publishing a synthetic 640x360 30 fps H.264 (1 s keyframe interval) + AAC stream in
/// real time for `seconds`.
pub fn ffmpeg_publish(url: &str, seconds: u32, extra_video: &[&str]) -> Proc {
    ffmpeg_publish_sized(url, seconds, "640x360", extra_video)
}

/// Like [`ffmpeg_publish`] with a picture size such as `1280x720`.
pub fn ffmpeg_publish_sized(url: &str, seconds: u32, size: &str, extra_video: &[&str]) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
        ])
        .args(["-pix_fmt", "yuv420p", "-b:v", "800k"])
        .args(extra_video)
        .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proc::spawn("ffmpeg", &mut cmd)
}

/// GStreamer publishing 640x360 x264 (1 s keyframe interval) + AAC (voaacenc) through
/// `flvmux ! rtmp2sink` for `seconds`.
pub fn gst_publish(url: &str, seconds: u32) -> Proc {
    let video_buffers = (seconds * 30).to_string();
    let audio_buffers = (seconds * 48_000 / 1024).to_string();
    let pipeline = format!(
        "videotestsrc is-live=true num-buffers={video_buffers} \
         ! video/x-raw,width=640,height=360,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=1000 ! h264parse ! queue ! mux. \
         audiotestsrc is-live=true num-buffers={audio_buffers} samplesperbuffer=1024 \
         ! audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=96000 ! aacparse ! queue ! mux. \
         flvmux name=mux streamable=true ! rtmp2sink location={url}"
    );
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-q")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proc::spawn("gst-launch-1.0", &mut cmd)
}

/// Result of playing a page with hls.js in headless Chromium.
pub struct Played {
    pub ok: bool,
    pub json: String,
}

/// Runs `e2e/play.mjs` against `url` for `seconds`.
pub fn play(url: &str, seconds: u32, extra: &[&str]) -> Played {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("node")
        .arg(root.join("e2e/play.mjs"))
        .arg(url)
        .args(["--seconds", &seconds.to_string(), "--settle", "2"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("node e2e/play.mjs");
    Played {
        ok: out.status.success(),
        json: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
