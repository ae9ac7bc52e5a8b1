//! Helpers for end-to-end tests: run `sigma-server`, publish with ffmpeg or GStreamer, play with
//! hls.js in headless Chromium (`e2e/play.mjs`). Loopback only; every child is killed on drop and
//! every wait is bounded.
#![allow(dead_code)]

pub mod api;

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
    /// The management API listener (`--api-listen`).
    pub api: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// Everything after the listen addresses on the command line, and the environment set.
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts the server binary with `extra` arguments and waits for `/healthz`.
    pub fn start(tag: &str, extra: &[&str]) -> Server {
        Self::start_with_config(tag, None, extra)
    }

    /// Like [`start`](Self::start), with a TOML configuration file written from `config`.
    pub fn start_with_config(tag: &str, config: Option<&str>, extra: &[&str]) -> Server {
        Self::launch(tag, config, extra, &[])
    }

    /// Like [`start`](Self::start), with environment variables set for the server (any
    /// `SIGMA_API_TOKEN` of the test's own environment is never passed on otherwise).
    pub fn start_with_env(tag: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::launch(tag, None, extra, env)
    }

    /// Like [`start_with_config`](Self::start_with_config), with environment variables set
    /// for the server as [`start_with_env`](Self::start_with_env) sets them.
    pub fn start_with_config_env(
        tag: &str,
        config: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Self::launch(tag, config, extra, env)
    }

    fn launch(tag: &str, config: Option<&str>, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = std::env::temp_dir().join(format!("sigma-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let mut args: Vec<String> = Vec::new();
        args.push("--data-dir".into());
        args.push(dir.join("data").display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        if let Some(text) = config {
            let path = dir.join("sigma.toml");
            std::fs::write(&path, text).expect("config file");
            args.push("--config".into());
            args.push(path.display().to_string());
        }
        let addr = || -> SocketAddr { format!("127.0.0.1:{}", free_port()).parse().unwrap() };
        let (rtmp, http, api) = (addr(), addr(), addr());
        let log = dir.join("server.log");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let proc = spawn_server(rtmp, http, api, &args, &env, &log);
        let server = Server {
            proc,
            rtmp,
            http,
            api,
            data_dir: dir,
            log,
            args,
            env,
        };
        server.wait_healthy();
        server
    }

    /// Stops the server (SIGTERM) and starts it again with the same data dir, addresses and
    /// arguments; the log file starts empty.
    pub fn restart(&mut self) {
        self.proc.terminate(Duration::from_secs(10));
        self.proc.kill();
        self.proc = spawn_server(
            self.rtmp, self.http, self.api, &self.args, &self.env, &self.log,
        );
        self.wait_healthy();
    }

    /// Kills the server with SIGKILL (a crash: no shutdown work at all) and starts it again
    /// with the same data dir, addresses, arguments and environment. The log of the killed
    /// process is kept as `server.log.killed` (appended to on each crash); the new log starts
    /// empty.
    pub fn kill_and_restart(&mut self) {
        self.proc.kill();
        let killed = self.log.with_extension("log.killed");
        let old = std::fs::read(&self.log).unwrap_or_default();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&killed)
        {
            use std::io::Write;
            let _ = f.write_all(&old);
            let _ = f.write_all(b"\n---- SIGKILL ----\n");
        }
        self.proc = spawn_server(
            self.rtmp, self.http, self.api, &self.args, &self.env, &self.log,
        );
        self.wait_healthy();
    }

    /// The log of every process [`kill_and_restart`](Self::kill_and_restart) killed, then the
    /// running one's.
    pub fn full_log_text(&self) -> String {
        let killed = std::fs::read_to_string(self.log.with_extension("log.killed"));
        format!("{}{}", killed.unwrap_or_default(), self.log_text())
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some((200, _)) = self.get("/healthz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sigma-server did not become healthy:\n{}", self.log_text());
    }

    /// The admin API token the server printed on its console at first start (the word after
    /// `api token:`); waits up to 10 s for the line.
    pub fn console_api_token(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(t) = printed_api_token(&self.log_text()) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "no `api token:` line on the console:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One management API call with `Authorization: Bearer token` (when given) and a JSON
    /// body (when given): (status, JSON body; `Null` when empty, a string when not JSON).
    pub fn api_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        api_call(self.api, method, path, token, body)
            .unwrap_or_else(|| panic!("no answer to {method} {path}\n{}", self.log_text()))
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

fn spawn_server(
    rtmp: SocketAddr,
    http: SocketAddr,
    api: SocketAddr,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigma-server"));
    cmd.args(["--rtmp-listen", &rtmp.to_string()])
        .args(["--http-listen", &http.to_string()])
        .args(["--api-listen", &api.to_string()])
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("SIGMA_API_TOKEN")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    Proc::spawn("sigma-server", &mut cmd)
}

/// The token on a console line `api token: TOKEN`, if `console` has one.
pub fn printed_api_token(console: &str) -> Option<String> {
    console
        .lines()
        .find_map(|l| l.split_once("api token:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// An HTTP response: status, header block (lower-cased), body (dechunked).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal blocking HTTP/1.1 request with `Connection: close` and a 20 s timeout: `headers`
/// as given, and `Content-Length` when there is a body. `None` when the server does not answer.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    exchange(s, addr, method, path, headers, body)
}

/// Like [`http_request`], from a chosen loopback source address (such as 127.0.0.2), so a
/// test's deliberate failures do not count against 127.0.0.1 in per-address limits.
pub fn http_request_from(
    source: std::net::Ipv4Addr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(v4) = addr else {
        return None;
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(source, 0)),
    )
    .ok()?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(v4)).ok()?;
    exchange(TcpStream::from(fd), addr, method, path, headers, body)
}

fn exchange(
    mut s: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    use std::io::Write;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = buf[head_end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    Some(Answer { status, head, body })
}

/// A minimal blocking HTTP/1.1 GET with `Connection: close` and a 20 s timeout.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    http_request(addr, "GET", path, &[], b"").map(|a| (a.status, a.body))
}

/// A management API call (see [`Server::api_call`]); `None` when the server does not answer.
pub fn api_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Option<(u16, serde_json::Value)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Accept", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    let a = http_request(addr, method, path, &headers, body.as_bytes())?;
    let v = if a.body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&a.body).unwrap_or_else(|_| serde_json::Value::String(a.text()))
    };
    Some((a.status, v))
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
