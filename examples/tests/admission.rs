//! Admission hooks end to end, against the real `sigma-server` binary on loopback and a real
//! HTTP hook (`e2e/admission_hook.py`, Python's standard library, scripted to allow, deny with a
//! reason, hang, answer 500 or garbage), with every request's signature checked by an
//! independent implementation (the `standardwebhooks` package from PyPI, through
//! `admission_hook.py --verify`):
//! - a hook that allows admits API stream keys and open-app names alike; its requests are
//!   signed with `SIGMA_ADMISSION_SECRET`, carry the live stream id or the stream name, the
//!   client and the query with `key` and `token` redacted, and never the stream key; without
//!   `playback = true` playback is not asked about;
//! - a refusal reaches ffmpeg (it gives up at once), keeps the live stream idle and puts the
//!   hook's reason in the log;
//! - a hook that hangs past its `timeout`, answers 500, answers something that is not JSON or is
//!   not listening applies `on_error`: `deny` refuses (after the timeout, not before), `allow`
//!   admits;
//! - a hung hook holds up only its own publish: another publisher goes live meanwhile;
//! - several hooks are asked in order and the first refusal wins;
//! - with `playback = true` the playlist and the player of a playback id ask too, after the
//!   token checks (a signed id without a valid JWT is refused before the hook is asked, and the
//!   JWT reaches the hook redacted); a refusal is a 403 with the reason; the open app's
//!   playlists are not API live streams and are not asked about; without the environment
//!   variable the secret is generated into `DATA_DIR/admission-secret` (0600).
//!
//! Every process is started by the test that needs it, bounded in time and killed on drop.

mod support;

use serde_json::{Value, json};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::api::{
    SigningKey, assert_not_logged, create_stream, signing_key, status_of, text, watch_status,
};
use support::{Answer, Proc, Server, ffmpeg_publish, free_port, http_request};

/// The secret the servers sign with (`SIGMA_ADMISSION_SECRET`), and one they do not.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_QWxzb0FTZWNyZXRCdXROb3RUaGVPbmVVc2Vk";
/// How long a refused ffmpeg may take to give up.
const REFUSAL: Duration = Duration::from_secs(8);
/// The embedded default configuration: a `--config` file is a complete one, hooks appended.
const DEFAULTS: &str = include_str!("../../sigma-server/assets/sigma.toml");

// ---- the hook and its verifier --------------------------------------------------------------

fn e2e(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../e2e")
        .join(script)
}

/// A scratch directory for the hooks' logs of one test (the server's own directory is made
/// when it starts, after its hooks).
fn hook_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sigma-e2e-hooks-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("hook dir");
    dir
}

/// `e2e/admission_hook.py` on a loopback port, logging every request to a JSON-lines file.
struct Hook {
    port: u16,
    log: PathBuf,
    _proc: Proc,
}

impl Hook {
    /// A hook on a free port; `args` as `admission_hook.py` takes them.
    fn start(dir: &Path, name: &str, args: &[&str]) -> Hook {
        Self::start_on(dir, name, free_port(), args)
    }

    /// A hook on `port`; waits (up to 10 s) until it accepts connections.
    fn start_on(dir: &Path, name: &str, port: u16, args: &[&str]) -> Hook {
        let log = dir.join(format!("hook-{name}.jsonl"));
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new("python3");
        cmd.arg(e2e("admission_hook.py"))
            .args(["--port", &port.to_string()])
            .arg("--log")
            .arg(&log)
            .args(args)
            .stdout(Stdio::null());
        let mut proc = Proc::spawn("admission_hook.py", &mut cmd);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(proc.running(), "hook {name} exited (port {port} taken?)");
            assert!(
                Instant::now() < deadline,
                "hook {name} not listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Hook {
            port,
            log,
            _proc: proc,
        }
    }

    fn url(&self) -> String {
        hook_url(self.port)
    }

    /// Every request logged so far, in arrival order (a line still being written is left out).
    fn requests(&self) -> Vec<Req> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(Req::parse)
            .collect()
    }

    /// The requests once `done` accepts them; fails after `within`.
    fn requests_when(&self, within: Duration, done: impl Fn(&[Req]) -> bool) -> Vec<Req> {
        let deadline = Instant::now() + within;
        loop {
            let reqs = self.requests();
            if done(&reqs) {
                return reqs;
            }
            assert!(
                Instant::now() < deadline,
                "the hook's requests never got there: {reqs:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn hook_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/hook")
}

/// One logged hook request.
#[derive(Clone, Debug)]
struct Req {
    raw: String,
    /// Arrival, Unix seconds.
    t: f64,
    method: String,
    path: String,
    headers: serde_json::Map<String, Value>,
    /// The body as JSON (`Null` when it is not JSON).
    body: Value,
    /// What the hook did: allow, deny, hang, status:500, garbage.
    decision: String,
}

impl Req {
    fn parse(line: &str) -> Req {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("hook log line is not JSON ({e}): {line}"));
        let body = v["body"].as_str().unwrap_or_default();
        Req {
            raw: line.to_string(),
            t: v["t"].as_f64().expect("arrival time"),
            method: v["method"].as_str().unwrap_or_default().to_string(),
            path: v["path"].as_str().unwrap_or_default().to_string(),
            headers: v["headers"].as_object().cloned().unwrap_or_default(),
            body: serde_json::from_str(body).unwrap_or(Value::Null),
            decision: v["decision"].as_str().unwrap_or_default().to_string(),
        }
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn action(&self) -> &str {
        self.body["action"].as_str().unwrap_or_default()
    }

    fn query(&self) -> &str {
        self.body["query"].as_str().unwrap_or_default()
    }
}

fn run_verifier(log: &Path, secret: &str) -> std::process::Output {
    Command::new("python3")
        .arg(e2e("admission_hook.py"))
        .arg("--verify")
        .arg(log)
        .args(["--secret", secret])
        .stdin(Stdio::null())
        .output()
        .expect("python3 e2e/admission_hook.py --verify")
}

/// Every request in `log` verifies under `secret` (Standard Webhooks, the PyPI library), each
/// with its own `adm_` id; the verifier's summary.
fn verify(log: &Path, secret: &str) -> Value {
    let out = run_verifier(log, secret);
    assert!(
        out.status.success(),
        "admission_hook.py --verify {}: {}{}",
        log.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the verifier's JSON summary")
}

/// No request in `log` verifies under `secret` (so [`verify`] checks something).
fn assert_unverified(log: &Path, secret: &str) {
    let out = run_verifier(log, secret);
    assert!(
        !out.status.success(),
        "verified under a secret the server does not have: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// What every hook request must be, whatever the test: a POST to the configured path, JSON,
/// a fresh `adm_` id, a v1 signature, a timestamp of the call, from a loopback client.
fn assert_well_formed(reqs: &[Req]) {
    let mut ids = std::collections::HashSet::new();
    for r in reqs {
        let at = &r.raw;
        assert_eq!(r.method, "POST", "{at}");
        assert_eq!(r.path, "/hook", "{at}");
        assert!(
            r.header("content-type").starts_with("application/json"),
            "content-type: {at}"
        );
        let id = r.header("webhook-id");
        assert!(id.starts_with("adm_") && id.len() > 4, "webhook-id: {at}");
        assert!(ids.insert(id.to_string()), "webhook-id reused: {at}");
        let sigs = r.header("webhook-signature");
        assert!(
            !sigs.is_empty() && sigs.split(' ').all(|s| s.starts_with("v1,") && s.len() > 3),
            "webhook-signature: {at}"
        );
        let ts: f64 = r
            .header("webhook-timestamp")
            .parse()
            .unwrap_or_else(|_| panic!("webhook-timestamp is not Unix seconds: {at}"));
        assert!(
            (ts - r.t).abs() <= 5.0,
            "webhook-timestamp {ts} is not the call's time ({}): {at}",
            r.t
        );
        assert!(r.body.is_object(), "the body is a JSON object: {at}");
        assert!(matches!(r.action(), "publish" | "play"), "action: {at}");
        assert_eq!(r.body["app"], "live", "app: {at}");
        assert_eq!(
            r.body.pointer("/client/ip"),
            Some(&json!("127.0.0.1")),
            "{at}"
        );
        let port = r.body.pointer("/client/port").and_then(Value::as_u64);
        assert!(
            port.is_some_and(|p| (1..=65535).contains(&p)),
            "client port: {at}"
        );
        assert!(r.body["query"].is_string(), "query: {at}");
    }
}

// ---- servers --------------------------------------------------------------------------------

/// One `[[admission]]` table for `url`, with `extra` lines (`timeout = "1s"` and so on).
fn admission(url: &str, extra: &str) -> String {
    format!("\n[[admission]]\nurl = \"{url}\"\n{extra}\n")
}

/// A server on the default configuration with `tables` appended, signing with [`SECRET`]
/// from the environment (or, without `env_secret`, with the secret it generates).
fn start(tag: &str, tables: &[String], env_secret: bool) -> (Server, String) {
    let config = format!("{DEFAULTS}\n{}", tables.concat());
    let env: &[(&str, &str)] = if env_secret {
        &[("SIGMA_ADMISSION_SECRET", SECRET)]
    } else {
        &[]
    };
    let server = Server::start_with_config_env(tag, Some(&config), &[], env);
    let admin = server.console_api_token();
    (server, admin)
}

// ---- small helpers ---------------------------------------------------------------------------

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Waits up to `within` for `p` to exit, polling every 20 ms; when (Unix seconds) and how.
fn wait_exit(p: &mut Proc, within: Duration) -> Option<(f64, ExitStatus)> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = p.child.try_wait() {
            return Some((unix_now(), status));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// ffmpeg publishing to `url` is refused: it exits non-zero within [`REFUSAL`]. Meanwhile the
/// live stream `id` (when given) is polled, and never leaves `idle`. When ffmpeg exited (Unix
/// seconds).
fn assert_refused(server: &Server, admin: &str, id: Option<&str>, url: &str, what: &str) -> f64 {
    let mut ffmpeg = ffmpeg_publish(url, 25, &[]);
    let deadline = Instant::now() + REFUSAL;
    let mut seen: Vec<String> = Vec::new();
    let look = |seen: &mut Vec<String>| {
        if let Some(id) = id {
            let s = status_of(server, admin, id);
            if seen.last() != Some(&s) {
                seen.push(s);
            }
        }
    };
    let exited = loop {
        if let Ok(Some(status)) = ffmpeg.child.try_wait() {
            break (unix_now(), status);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: ffmpeg still publishing after {REFUSAL:?}\n{}",
            server.log_text()
        );
        look(&mut seen);
        std::thread::sleep(Duration::from_millis(20));
    };
    look(&mut seen);
    assert!(!exited.1.success(), "{what}: ffmpeg exited with success");
    if id.is_some() {
        assert!(
            seen.iter().all(|s| s == "idle"),
            "{what}: the live stream left idle: {seen:?}"
        );
    }
    exited.0
}

/// ffmpeg publishing a short test pattern to `url`, its errors written to `stderr`.
fn ffmpeg_to(url: &str, stderr: &Path) -> Proc {
    let err = std::fs::File::create(stderr).expect("ffmpeg stderr file");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
        .args(["-t", "20", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-pix_fmt", "yuv420p", "-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(err);
    Proc::spawn("ffmpeg", &mut cmd)
}

/// The open app's stream `name` is live: its multivariant playlist answers within `within`.
fn assert_open_live(server: &Server, name: &str, within: Duration, what: &str) {
    let path = format!("/live/{name}/index.m3u8");
    let got = server.wait_for(&path, within, |t| t.starts_with("#EXTM3U"));
    assert!(
        got.is_some(),
        "{what}: {path} not live within {within:?}\n{}",
        server.log_text()
    );
}

/// A GET on the viewers' listener.
fn viewer(server: &Server, path: &str) -> Answer {
    http_request(server.http, "GET", path, &[], b"")
        .unwrap_or_else(|| panic!("no answer to GET {path}\n{}", server.log_text()))
}

/// A 403 naming `reason`, with no media.
fn assert_refused_with(a: &Answer, reason: &str, what: &str) {
    assert_eq!(a.status, 403, "{what}: {}", a.text());
    assert!(a.text().contains(reason), "{what}: no reason: {}", a.text());
    assert!(!a.text().contains("#EXT"), "{what}: {}", a.text());
}

/// A playlist JWT (`aud` "v") for `sub`, minted by `e2e/jwt.mjs` (Node's crypto).
fn jwt(key: &SigningKey, sub: &str) -> String {
    let exp = unix_now() as i64 + 600;
    let out = Command::new("node")
        .arg(e2e("jwt.mjs"))
        .arg("--key")
        .arg(&key.pem)
        .args(["--kid", &key.id, "--sub", sub, "--aud", "v"])
        .args(["--exp", &exp.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("node e2e/jwt.mjs");
    assert!(
        out.status.success(),
        "jwt.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("ASCII token")
        .trim()
        .to_string()
}

// ---- 1. allowed, signed, redacted -----------------------------------------------------------

#[test]
fn allow_admits_and_the_request_is_signed_and_redacted() {
    let dir = hook_dir("allow");
    let hook = Hook::start(&dir, "allow", &["--decision", "allow"]);
    let (server, admin) = start("adm-allow", &[admission(&hook.url(), "")], true);
    let ls = create_stream(&server, &admin, json!({"name": "hooked"}));
    let (id, key, pid) = (
        text(&ls, "/id"),
        text(&ls, "/stream_key"),
        text(&ls, "/playback_ids/0/id"),
    );
    // Secrets a publisher may put in the query: both must reach the hook redacted.
    let (token_value, open_key) = ("t0k3n-s3cret-value", "k3y-s3cret-value");

    let ingest = format!("{}?token={token_value}&x=1", text(&ls, "/ingest/rtmp"));
    let _api = ffmpeg_publish(&ingest, 30, &[]);
    watch_status(&server, &admin, &id, Duration::from_secs(30), |s| {
        s == "active"
    });
    let open = server.rtmp_url(&format!("cam?latency=low&key={open_key}"));
    let _open = ffmpeg_publish(&open, 30, &[]);
    assert_open_live(&server, "cam", Duration::from_secs(30), "open app");

    // Without `playback = true`, viewers are not asked about.
    let mv = viewer(&server, &format!("/v/{pid}/index.m3u8"));
    assert_eq!(mv.status, 200, "multivariant: {}", mv.text());
    assert!(mv.text().starts_with("#EXTM3U"), "{}", mv.text());
    assert_eq!(viewer(&server, &format!("/v/{pid}/player")).status, 200);
    std::thread::sleep(Duration::from_millis(500));

    let reqs = hook.requests();
    assert_eq!(
        reqs.len(),
        2,
        "one request per publish, none for playback: {reqs:#?}"
    );
    assert_well_formed(&reqs);
    let (api, cam) = (&reqs[0], &reqs[1]);
    assert_eq!(api.action(), "publish", "{}", api.raw);
    assert_eq!(api.body["live_stream_id"], id.as_str(), "{}", api.raw);
    assert!(
        api.body["stream"].is_null(),
        "an API stream has no name: {}",
        api.raw
    );
    assert!(api.body["playback_id"].is_null(), "{}", api.raw);
    assert_eq!(api.query(), "token=[redacted]&x=1", "{}", api.raw);
    assert_eq!(api.decision, "allow");

    assert_eq!(cam.action(), "publish", "{}", cam.raw);
    assert!(cam.body["live_stream_id"].is_null(), "{}", cam.raw);
    assert_eq!(cam.body["stream"], "cam", "{}", cam.raw);
    assert!(cam.body["playback_id"].is_null(), "{}", cam.raw);
    assert_eq!(cam.query(), "latency=low&key=[redacted]", "{}", cam.raw);
    assert_ne!(
        api.body["client"]["port"], cam.body["client"]["port"],
        "two publishers, two client ports"
    );

    for r in &reqs {
        for (secret, what) in [
            (key.as_str(), "the stream key"),
            (token_value, "a token"),
            (open_key, "an app key"),
        ] {
            assert!(
                !r.raw.contains(secret),
                "{what} reached the hook: {}",
                r.raw
            );
        }
    }
    let summary = verify(&hook.log, SECRET);
    assert_eq!(summary["requests"], 2, "{summary}");
    assert_unverified(&hook.log, OTHER_SECRET);
    assert_not_logged(&server, &key, "the stream key");
    assert_not_logged(&server, SECRET, "the admission secret");
}

// ---- 2. denied ------------------------------------------------------------------------------

#[test]
fn deny_refuses_with_the_reason() {
    let dir = hook_dir("deny");
    let hook = Hook::start(
        &dir,
        "deny",
        &["--decision", "deny", "--reason", "no credit"],
    );
    let (server, admin) = start("adm-deny", &[admission(&hook.url(), "")], true);
    let ls = create_stream(&server, &admin, json!({}));
    let (id, key) = (text(&ls, "/id"), text(&ls, "/stream_key"));

    assert_refused(
        &server,
        &admin,
        Some(&id),
        &text(&ls, "/ingest/rtmp"),
        "API key",
    );
    assert_eq!(status_of(&server, &admin, &id), "idle");
    let reqs = hook.requests_when(Duration::from_secs(2), |r| !r.is_empty());
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].body["live_stream_id"], id.as_str());
    assert_eq!(reqs[0].decision, "deny");
    let log = server.log_text();
    assert!(
        log.contains("no credit"),
        "the reason is not logged:\n{log}"
    );

    // The open app is asked too.
    assert_refused(&server, &admin, None, &server.rtmp_url("cam"), "open app");
    assert_eq!(server.get("/live/cam/index.m3u8").map(|r| r.0), Some(404));
    let reqs = hook.requests_when(Duration::from_secs(2), |r| r.len() >= 2);
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_eq!(reqs[1].body["stream"], "cam");
    assert_eq!(reqs[1].decision, "deny");
    assert_well_formed(&reqs);
    verify(&hook.log, SECRET);

    // What the RTMP side sent: the code and the hook's reason, for both publishes.
    let log = server.log_text();
    let sent = log
        .lines()
        .filter(|l| l.contains("NetStream.Publish.Denied") && l.contains("no credit"))
        .count();
    assert!(
        sent >= 2,
        "each refusal is NetStream.Publish.Denied with the reason:\n{log}"
    );
    // And what ffmpeg was told.
    let stderr = dir.join("ffmpeg-denied.txt");
    let mut ffmpeg = ffmpeg_to(&text(&ls, "/ingest/rtmp"), &stderr);
    let (_, status) = wait_exit(&mut ffmpeg, REFUSAL).expect("ffmpeg gave up");
    assert!(!status.success());
    let told = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(told.contains("no credit"), "ffmpeg said: {told}");
    assert_not_logged(&server, &key, "the stream key");
}

// ---- 3. on_error ----------------------------------------------------------------------------

#[test]
fn timeouts_apply_on_error() {
    let dir = hook_dir("onerror");

    // on_error = "deny": a hang past the timeout, a 500, garbage and no hook at all refuse.
    let port = free_port();
    let mut hook = Some(Hook::start_on(
        &dir,
        "deny-hang",
        port,
        &["--decision", "hang"],
    ));
    let table = admission(&hook_url(port), "timeout = \"1s\"\non_error = \"deny\"");
    let (server, admin) = start("adm-err-deny", &[table], true);
    let ls = create_stream(&server, &admin, json!({}));
    let (id, ingest) = (text(&ls, "/id"), text(&ls, "/ingest/rtmp"));

    let exited = assert_refused(&server, &admin, Some(&id), &ingest, "hung hook, deny");
    let h = hook.as_ref().unwrap();
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].decision, "hang");
    let waited = exited - reqs[0].t;
    assert!(
        (0.9..=4.0).contains(&waited),
        "refused {waited:.2} s after the hook was asked: the 1 s timeout was not applied"
    );
    for decision in ["status:500", "garbage"] {
        drop(hook.take());
        let name = format!("deny-{}", decision.replace(':', "-"));
        let h = Hook::start_on(&dir, &name, port, &["--decision", decision]);
        assert_refused(&server, &admin, Some(&id), &ingest, decision);
        let reqs = h.requests_when(Duration::from_secs(2), |r| !r.is_empty());
        assert_eq!(reqs.len(), 1, "{decision}: {reqs:#?}");
        assert_eq!(reqs[0].decision, decision);
        assert_well_formed(&reqs);
        verify(&h.log, SECRET);
        hook = Some(h);
    }
    drop(hook.take());
    assert_refused(&server, &admin, Some(&id), &ingest, "no hook listening");
    // The same key with a hook that allows: it was the hook's failures that refused.
    let h = Hook::start_on(&dir, "deny-allow", port, &["--decision", "allow"]);
    let _publisher = ffmpeg_publish(&ingest, 30, &[]);
    watch_status(&server, &admin, &id, Duration::from_secs(30), |s| {
        s == "active"
    });
    assert_eq!(h.requests().len(), 1);
    drop(server);

    // on_error = "allow": the same failures admit.
    let hang = Hook::start(&dir, "allow-hang", &["--decision", "hang"]);
    let table = admission(&hang.url(), "timeout = \"1s\"\non_error = \"allow\"");
    let (server, admin) = start("adm-err-allow", &[table], true);
    let ls = create_stream(&server, &admin, json!({}));
    let id = text(&ls, "/id");
    let _api = ffmpeg_publish(&text(&ls, "/ingest/rtmp"), 30, &[]);
    watch_status(&server, &admin, &id, Duration::from_secs(30), |s| {
        s == "active"
    });
    let reqs = hang.requests();
    assert_eq!(reqs.len(), 1, "the hanging hook was asked: {reqs:#?}");
    assert_eq!(reqs[0].body["live_stream_id"], id.as_str());
    verify(&hang.log, SECRET);

    let port = hang.port;
    drop(hang);
    let failing = Hook::start_on(&dir, "allow-500", port, &["--decision", "status:500"]);
    let _open = ffmpeg_publish(&server.rtmp_url("c500"), 30, &[]);
    assert_open_live(&server, "c500", Duration::from_secs(30), "500, allow");
    let reqs = failing.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].body["stream"], "c500");
}

// ---- 4. isolation ---------------------------------------------------------------------------

#[test]
fn a_hung_hook_blocks_only_its_request() {
    let dir = hook_dir("hung");
    let hook = Hook::start(
        &dir,
        "hung",
        &["--decision", "allow", "--hang-if-query", "hang=1"],
    );
    let table = admission(&hook.url(), "timeout = \"10s\"\non_error = \"deny\"");
    let (server, _admin) = start("adm-hung", &[table], true);

    let mut a = ffmpeg_publish(&server.rtmp_url("a?hang=1"), 30, &[]);
    let reqs = hook.requests_when(Duration::from_secs(10), |r| {
        r.iter().any(|r| r.body["stream"] == "a")
    });
    let a_asked = reqs[0].t;
    assert_eq!(reqs[0].decision, "hang", "{reqs:#?}");

    let b_started = Instant::now();
    let _b = ffmpeg_publish(&server.rtmp_url("b"), 30, &[]);
    assert_open_live(
        &server,
        "b",
        Duration::from_secs(6),
        "B while A's hook hangs",
    );
    let b_live = b_started.elapsed();
    assert!(
        unix_now() - a_asked < 9.0 && a.running(),
        "B went live only as A's hook timed out ({b_live:?} after B started)"
    );
    let reqs = hook.requests();
    let b = reqs
        .iter()
        .find(|r| r.body["stream"] == "b")
        .unwrap_or_else(|| panic!("B's request: {reqs:#?}"));
    assert_eq!(b.decision, "allow");
    assert!(b.t > a_asked);

    let (a_exited, status) = wait_exit(&mut a, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("A never refused\n{}", server.log_text()));
    assert!(
        !status.success(),
        "A was admitted by a hook that never answered"
    );
    let waited = a_exited - a_asked;
    assert!(
        (9.5..=14.0).contains(&waited),
        "A refused {waited:.2} s after its hook was asked, not after the 10 s timeout"
    );
    assert_eq!(server.get("/live/a/index.m3u8").map(|r| r.0), Some(404));
    // B plays on.
    assert_open_live(&server, "b", Duration::from_secs(2), "B after A's refusal");
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_well_formed(&reqs);
    verify(&hook.log, SECRET);
}

// ---- 5. several hooks -----------------------------------------------------------------------

#[test]
fn hooks_are_asked_in_order_and_the_first_refusal_wins() {
    let dir = hook_dir("order");
    let first = Hook::start(&dir, "first", &["--decision", "allow"]);
    let second = Hook::start(
        &dir,
        "second",
        &["--decision", "deny", "--reason", "second says no"],
    );
    let third = Hook::start(
        &dir,
        "third",
        &["--decision", "deny", "--reason", "third says no"],
    );
    let tables = [
        admission(&first.url(), ""),
        admission(&second.url(), ""),
        admission(&third.url(), ""),
    ];
    let (server, admin) = start("adm-order", &tables, true);
    assert_refused(
        &server,
        &admin,
        None,
        &server.rtmp_url("cam"),
        "three hooks",
    );
    let log = server.log_text();
    assert!(log.contains("second says no"), "{log}");
    assert!(
        !log.contains("third says no"),
        "the first refusal wins:\n{log}"
    );
    let (a, b) = (first.requests(), second.requests());
    assert_eq!((a.len(), b.len()), (1, 1), "{a:#?}\n{b:#?}");
    assert!(a[0].t <= b[0].t, "asked in order: {a:#?}\n{b:#?}");
    assert_eq!(a[0].body, b[0].body, "every hook is asked the same");
    assert_ne!(
        a[0].header("webhook-id"),
        b[0].header("webhook-id"),
        "a fresh id per call"
    );
}

// ---- 6. playback ----------------------------------------------------------------------------

#[test]
fn playback_hook_guards_playback_sessions() {
    let dir = hook_dir("play");
    let hook = Hook::start(
        &dir,
        "play",
        &[
            "--decision",
            "allow",
            "--deny-action",
            "play",
            "--reason",
            "geo blocked",
        ],
    );
    let (server, admin) = start(
        "adm-play",
        &[admission(&hook.url(), "playback = true")],
        true,
    );
    let ls = create_stream(&server, &admin, json!({}));
    let (id, pid) = (text(&ls, "/id"), text(&ls, "/playback_ids/0/id"));
    let _publisher = ffmpeg_publish(&text(&ls, "/ingest/rtmp"), 40, &[]);
    watch_status(&server, &admin, &id, Duration::from_secs(30), |s| {
        s == "active"
    });
    let plays = |n: usize| -> Vec<Req> {
        let reqs = hook.requests_when(Duration::from_secs(2), |r| {
            r.iter().filter(|r| r.action() == "play").count() >= n
        });
        reqs.into_iter().filter(|r| r.action() == "play").collect()
    };
    assert_eq!(plays(0).len(), 0, "no playback yet");

    let mv = viewer(&server, &format!("/v/{pid}/index.m3u8?viewer=v1"));
    assert_refused_with(&mv, "geo blocked", "multivariant");
    let page = viewer(&server, &format!("/v/{pid}/player"));
    assert_refused_with(&page, "geo blocked", "player");
    let p = plays(2);
    assert_eq!(p.len(), 2, "{p:#?}");
    for r in &p {
        assert_eq!(r.body["playback_id"], pid.as_str(), "{}", r.raw);
        assert_eq!(r.body["live_stream_id"], id.as_str(), "{}", r.raw);
        assert!(r.body["stream"].is_null(), "{}", r.raw);
        assert_eq!(r.decision, "deny");
    }
    assert_eq!(p[0].query(), "viewer=v1");
    assert_eq!(p[1].query(), "");

    // A signed playback id: the token is checked first, and reaches the hook redacted.
    let signed = create_stream(&server, &admin, json!({"playback_policy": "signed"}));
    let (sid, spid) = (text(&signed, "/id"), text(&signed, "/playback_ids/0/id"));
    let _signed_publisher = ffmpeg_publish(&text(&signed, "/ingest/rtmp"), 40, &[]);
    watch_status(&server, &admin, &sid, Duration::from_secs(30), |s| {
        s == "active"
    });
    let mv_path = format!("/v/{spid}/index.m3u8");
    let a = viewer(&server, &mv_path);
    assert_eq!(a.status, 403, "no token: {}", a.text());
    assert!(!a.text().contains("geo blocked"), "{}", a.text());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(plays(2).len(), 2, "asked before the token check");
    let key = signing_key(&server, &admin);
    let token = jwt(&key, &spid);
    let a = viewer(&server, &format!("{mv_path}?token={token}"));
    assert_refused_with(&a, "geo blocked", "signed, good token");
    let p = plays(3);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert_eq!(p[2].body["playback_id"], spid.as_str());
    assert_eq!(p[2].body["live_stream_id"], sid.as_str());
    assert_eq!(p[2].query(), "token=[redacted]");

    // The open app's streams are not API live streams: not asked about.
    let _open = ffmpeg_publish(&server.rtmp_url("cam"), 30, &[]);
    assert_open_live(&server, "cam", Duration::from_secs(30), "open app");
    let reqs = hook.requests();
    assert_eq!(
        reqs.iter().filter(|r| r.action() == "play").count(),
        3,
        "{reqs:#?}"
    );
    assert_eq!(
        reqs.iter().filter(|r| r.action() == "publish").count(),
        3,
        "{reqs:#?}"
    );
    for r in &reqs {
        assert!(
            !r.raw.contains(&token),
            "the JWT reached the hook: {}",
            r.raw
        );
    }
    assert_well_formed(&reqs);
    let summary = verify(&hook.log, SECRET);
    assert_eq!(summary["requests"], 6, "{summary}");
    drop(server);

    // A hook that allows playback: it plays, and the secret is the generated one.
    let hook = Hook::start(&dir, "play-allow", &["--decision", "allow"]);
    let (server, admin) = start(
        "adm-play-allow",
        &[admission(&hook.url(), "playback = true")],
        false,
    );
    let ls = create_stream(&server, &admin, json!({}));
    let (id, pid) = (text(&ls, "/id"), text(&ls, "/playback_ids/0/id"));
    let _publisher = ffmpeg_publish(&text(&ls, "/ingest/rtmp"), 30, &[]);
    watch_status(&server, &admin, &id, Duration::from_secs(30), |s| {
        s == "active"
    });
    let mv = viewer(&server, &format!("/v/{pid}/index.m3u8"));
    assert_eq!(mv.status, 200, "allowed: {}", mv.text());
    assert!(mv.text().starts_with("#EXTM3U"), "{}", mv.text());
    let page = viewer(&server, &format!("/v/{pid}/player"));
    assert_eq!(page.status, 200, "allowed player: {}", page.text());
    let reqs = hook.requests_when(Duration::from_secs(2), |r| r.len() >= 3);
    let p: Vec<&Req> = reqs.iter().filter(|r| r.action() == "play").collect();
    assert_eq!(p.len(), 2, "{reqs:#?}");
    assert!(
        p.iter()
            .all(|r| r.body["playback_id"] == pid.as_str() && r.decision == "allow")
    );

    use std::os::unix::fs::PermissionsExt;
    let file = server.data_dir.join("data/admission-secret");
    let meta = std::fs::metadata(&file).expect("DATA_DIR/admission-secret");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "{}",
        file.display()
    );
    let generated = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(generated.starts_with("whsec_"), "{}", file.display());
    assert_ne!(generated, SECRET);
    verify(&hook.log, &generated);
    assert_unverified(&hook.log, SECRET);
    assert_not_logged(&server, &generated, "the admission secret");
}
