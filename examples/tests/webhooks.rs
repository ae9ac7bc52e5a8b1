//! Webhooks end to end, against the real `sigma-server` binary on loopback and a real HTTP
//! receiver (`e2e/webhook_receiver.py`, Python's standard library, scripted to fail, answer 410
//! or 503 with `Retry-After`, or hang), with every signature checked by an independent
//! implementation (`e2e/verify_webhooks.py`, the `standardwebhooks` package from PyPI):
//! - a broadcast that drops, comes back within its reconnect window and drops for good is
//!   delivered as exactly created, connected, active, disconnected, reconnected, disconnected,
//!   idle, in sequence order, signed, equal to `GET /v1/events`, without the stream key; on
//!   SQLite and on PostgreSQL; an `event_types` filter delivers only what it names;
//! - the management API: the secret is shown only at creation and rotation, PATCH, enable and
//!   disable, DELETE; a rotated secret signs next to the old one, and replay re-delivers;
//! - the outbox survives SIGKILL and a receiver that is down for a while: every event arrives,
//!   in order per object, duplicates keep their `webhook-id`;
//! - retries follow `--webhook-retry-schedule` (jitter ±10 %), and an exhausted schedule leaves
//!   the endpoint "failing"; 410 disables an endpoint; 503 with `Retry-After` is honoured;
//! - loopback, private and link-local targets (and non-http URLs) are refused without
//!   `--webhooks-allow-private`;
//! - ten hanging endpoints do not delay a healthy one past 1 s;
//! - two servers on one PostgreSQL deliver each event once, whichever node made it (a stream
//!   disabled on one node and enabled on the other is idle on both, with both events).
//!
//! Every process is started by the test that needs it, bounded in time and killed on drop.

mod support;

#[path = "../../sigma-control/tests/postgres.rs"]
mod postgres;

use postgres::Postgres;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::api::{
    act, assert_not_in_log as assert_not_logged, create_stream, start, status_of, text,
    watch_status,
};
use support::{Proc, Server, ffmpeg_publish, free_port};

/// Every server here but the private-target test's delivers to loopback receivers.
const ALLOW_PRIVATE: &str = "--webhooks-allow-private";
/// The broadcast's reconnect window, in seconds: time enough for a second ffmpeg to connect.
const RECONNECT_WINDOW: u64 = 5;
/// What a broadcast that drops once, comes back within the window and drops for good gives.
const BROADCAST: &[&str] = &[
    "live_stream.created",
    "live_stream.connected",
    "live_stream.active",
    "live_stream.disconnected",
    "live_stream.reconnected",
    "live_stream.disconnected",
    "live_stream.idle",
];
/// Twenty retries a second apart: long enough to outlast a crash and a late receiver.
const LONG_SCHEDULE: &str = "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s";
/// Jitter allowed on each wait of the schedule, and slack on top for scheduling and IO.
const JITTER: f64 = 0.10;
const SLACK: f64 = 0.30;

// ---- the receiver and the verifier ----------------------------------------------------------

fn e2e(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../e2e")
        .join(script)
}

/// `e2e/webhook_receiver.py` on a loopback port, logging every POST to a JSON-lines file.
struct Receiver {
    name: String,
    port: u16,
    log: PathBuf,
    _proc: Proc,
}

impl Receiver {
    /// A receiver on a free port; `args` as `webhook_receiver.py` takes them.
    fn start(dir: &Path, name: &str, args: &[&str]) -> Receiver {
        Self::start_on(dir, name, free_port(), args)
    }

    /// A receiver on `port`; waits (up to 10 s) until it accepts connections.
    fn start_on(dir: &Path, name: &str, port: u16, args: &[&str]) -> Receiver {
        let log = dir.join(format!("receiver-{name}.jsonl"));
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new("python3");
        cmd.arg(e2e("webhook_receiver.py"))
            .args(["--port", &port.to_string()])
            .arg("--log")
            .arg(&log)
            .args(args)
            .stdout(Stdio::null());
        let mut proc = Proc::spawn("webhook_receiver.py", &mut cmd);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                proc.running(),
                "receiver {name} exited (port {port} taken?)"
            );
            assert!(
                Instant::now() < deadline,
                "receiver {name} not listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Receiver {
            name: name.to_string(),
            port,
            log,
            _proc: proc,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/{}", self.port, self.name)
    }

    /// Every request logged so far, in arrival order (a line still being written is left out).
    fn requests(&self) -> Vec<Hook> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(Hook::parse)
            .collect()
    }

    /// The distinct events received, in order of first arrival.
    fn events(&self) -> Vec<Hook> {
        first_arrivals(self.requests())
    }
}

/// One logged request.
#[derive(Clone, Debug)]
struct Hook {
    raw: String,
    /// Arrival, Unix seconds.
    t: f64,
    /// The status the receiver answered (`None` when hanging).
    status: Option<u64>,
    headers: serde_json::Map<String, Value>,
    body: String,
    /// The body as JSON (`Null` when it is not JSON).
    event: Value,
}

impl Hook {
    fn parse(line: &str) -> Hook {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("receiver log line is not JSON ({e}): {line}"));
        let body = v["body"].as_str().unwrap_or_default().to_string();
        Hook {
            raw: line.to_string(),
            t: v["t"].as_f64().expect("arrival time"),
            status: v["status"].as_u64(),
            headers: v["headers"].as_object().cloned().unwrap_or_default(),
            event: serde_json::from_str(&body).unwrap_or(Value::Null),
            body,
        }
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn id(&self) -> &str {
        self.header("webhook-id")
    }

    fn kind(&self) -> &str {
        self.event["type"].as_str().unwrap_or_default()
    }

    fn object_id(&self) -> &str {
        self.event
            .pointer("/object/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn sequence(&self) -> i64 {
        self.event["sequence"].as_i64().unwrap_or(-1)
    }
}

/// The first request of each `webhook-id`, in arrival order.
fn first_arrivals(hooks: Vec<Hook>) -> Vec<Hook> {
    let mut seen = HashSet::new();
    hooks
        .into_iter()
        .filter(|h| seen.insert(h.id().to_string()))
        .collect()
}

/// Writes `hooks` as a receiver log, to verify a subset of what arrived.
fn write_log(path: &Path, hooks: &[&Hook]) {
    let text: String = hooks.iter().map(|h| format!("{}\n", h.raw)).collect();
    std::fs::write(path, text).expect("write a log subset");
}

fn run_verifier(log: &Path, secrets: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("python3");
    cmd.arg(e2e("verify_webhooks.py"));
    for s in secrets {
        cmd.args(["--secret", s]);
    }
    cmd.arg(log)
        .stdin(Stdio::null())
        .output()
        .expect("python3 e2e/verify_webhooks.py")
}

/// Every request in `log` verifies under one of `secrets` (Standard Webhooks, PyPI library);
/// the verifier's summary.
fn verify(log: &Path, secrets: &[&str]) -> Value {
    let out = run_verifier(log, secrets);
    assert!(
        out.status.success(),
        "verify_webhooks.py {}: {}{}",
        log.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the verifier's JSON summary")
}

/// Some request in `log` does not verify under `secrets`.
fn assert_unverified(log: &Path, secrets: &[&str], what: &str) {
    let out = run_verifier(log, secrets);
    assert!(
        !out.status.success(),
        "{what}: verified, but should not: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// What every delivery must be, whatever the test: the `webhook-id` is the event's id (the
/// same on every redelivery, with the same event), JSON, a v1 signature, a timestamp of the
/// attempt, a live stream event with all its fields.
fn assert_well_formed(hooks: &[Hook]) {
    let mut first: HashMap<&str, &Value> = HashMap::new();
    for h in hooks {
        let at = &h.raw;
        assert!(h.id().starts_with("evt_"), "webhook-id: {at}");
        assert_eq!(h.event["id"].as_str(), Some(h.id()), "body id: {at}");
        assert!(
            h.header("content-type").starts_with("application/json"),
            "content-type: {at}"
        );
        let sigs = h.header("webhook-signature");
        assert!(
            !sigs.is_empty() && sigs.split(' ').all(|s| s.starts_with("v1,") && s.len() > 3),
            "webhook-signature: {at}"
        );
        let ts: f64 = h
            .header("webhook-timestamp")
            .parse()
            .unwrap_or_else(|_| panic!("webhook-timestamp is not Unix seconds: {at}"));
        assert!(
            (ts - h.t).abs() <= 5.0,
            "webhook-timestamp {ts} is not the attempt's time ({}): {at}",
            h.t
        );
        assert_eq!(h.event.pointer("/object/type"), Some(&json!("live_stream")));
        assert!(h.object_id().starts_with("ls_"), "object id: {at}");
        assert!(h.kind().starts_with("live_stream."), "type: {at}");
        assert!(h.sequence() >= 1, "sequence: {at}");
        assert!(h.event.get("data").is_some(), "data: {at}");
        unix_seconds(h.event["timestamp"].as_str().unwrap_or_default());
        let before = *first.entry(h.id()).or_insert(&h.event);
        assert_eq!(before, &h.event, "a redelivery carries the same event");
    }
}

/// Per object, the first arrivals are exactly the event log's events, in its (sequence) order.
fn assert_delivered_in_order(hooks: &[Hook], events: &[Value], what: &str) {
    let firsts = first_arrivals(hooks.to_vec());
    let mut objects: Vec<&str> = Vec::new();
    for e in events {
        let o = e.pointer("/object/id").and_then(Value::as_str).unwrap();
        if !objects.contains(&o) {
            objects.push(o);
        }
    }
    for o in objects {
        let want: Vec<(&str, i64)> = events
            .iter()
            .filter(|e| e.pointer("/object/id").and_then(Value::as_str) == Some(o))
            .map(|e| (e["id"].as_str().unwrap(), e["sequence"].as_i64().unwrap()))
            .collect();
        let got: Vec<(&str, i64)> = firsts
            .iter()
            .filter(|h| h.object_id() == o)
            .map(|h| (h.id(), h.sequence()))
            .collect();
        assert_eq!(
            got, want,
            "{what}: object {o}: delivered (first arrivals) vs GET /v1/events"
        );
    }
}

// ---- the API --------------------------------------------------------------------------------

/// Polls `f` every 100 ms until it gives something, for up to `within`.
fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `POST /v1/webhooks`: the created endpoint, with its secret.
fn create_webhook(server: &Server, token: &str, body: Value) -> Value {
    let (status, wh) = server.api_call("POST", "/v1/webhooks", Some(token), Some(&body));
    assert_eq!(status, 201, "create webhook {body}: {wh}");
    assert!(text(&wh, "/id").starts_with("wh_"), "{wh}");
    assert!(text(&wh, "/secret").starts_with("whsec_"), "{wh}");
    assert_eq!(wh["url"], body["url"], "{wh}");
    assert_eq!(wh["status"], "enabled", "{wh}");
    wh
}

fn get_webhook(server: &Server, token: &str, id: &str) -> Value {
    let (status, wh) = server.api_call("GET", &format!("/v1/webhooks/{id}"), Some(token), None);
    assert_eq!(status, 200, "get webhook: {wh}");
    assert!(
        wh.get("secret").is_none(),
        "the secret is shown only once: {wh}"
    );
    wh
}

fn patch_webhook(server: &Server, token: &str, id: &str, body: Value) -> Value {
    let path = format!("/v1/webhooks/{id}");
    let (status, wh) = server.api_call("PATCH", &path, Some(token), Some(&body));
    assert_eq!(status, 200, "PATCH webhook {body}: {wh}");
    assert!(
        wh.get("secret").is_none(),
        "the secret is shown only once: {wh}"
    );
    wh
}

/// Waits up to `within` for the webhook's status to be `want`.
fn wait_webhook_status(server: &Server, token: &str, id: &str, want: &str, within: Duration) {
    let mut last = Value::Null;
    let found = eventually(within, || {
        last = get_webhook(server, token, id);
        (last["status"] == want).then_some(())
    });
    assert!(
        found.is_some(),
        "webhook {id} not {want:?} after {within:?}: {last}"
    );
}

fn patch_stream(server: &Server, token: &str, id: &str, body: Value) -> Value {
    let path = format!("/v1/live-streams/{id}");
    let (status, ls) = server.api_call("PATCH", &path, Some(token), Some(&body));
    assert_eq!(status, 200, "PATCH live stream: {ls}");
    ls
}

/// A cursor or value as a query parameter.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every item of a list route, following `next_cursor` to the end.
fn list_all(server: &Server, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let p = match &cursor {
            None => path.to_string(),
            Some(c) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                format!("{path}{sep}cursor={}", pct(c))
            }
        };
        let (status, page) = server.api_call("GET", &p, Some(token), None);
        assert_eq!(status, 200, "GET {p}: {page}");
        let data = page["data"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {p}: no data: {page}"));
        out.extend(data.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => {
                assert!(!data.is_empty(), "GET {p}: an empty page with a cursor");
                cursor = Some(c.to_string());
            }
            _ => return out,
        }
    }
    panic!("GET {path}: more than 1000 pages");
}

/// `GET /v1/events?object_id=`: the object's events, oldest first.
fn events_of(server: &Server, token: &str, object_id: &str) -> Vec<Value> {
    list_all(
        server,
        token,
        &format!("/v1/events?object_id={object_id}&limit=100"),
    )
}

/// `GET /v1/webhooks/{id}/deliveries`: one row per attempt, newest first.
fn deliveries(server: &Server, token: &str, webhook: &str, limit: u32) -> Vec<Value> {
    let rows = list_all(
        server,
        token,
        &format!("/v1/webhooks/{webhook}/deliveries?limit={limit}"),
    );
    let times: Vec<f64> = rows.iter().map(|r| unix_seconds(&text(r, "/at"))).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "deliveries are newest first: {rows:?}"
    );
    rows
}

/// The delivery rows of one event, newest first.
fn attempts_of(rows: &[Value], event_id: &str) -> Vec<Value> {
    rows.iter()
        .filter(|r| r["event_id"] == event_id)
        .cloned()
        .collect()
}

/// `(attempt, outcome, status_code)` of rows.
fn summary(rows: &[Value]) -> Vec<(i64, String, Option<i64>)> {
    rows.iter()
        .map(|r| {
            (
                r["attempt"].as_i64().unwrap_or(-1),
                r["outcome"].as_str().unwrap_or("?").to_string(),
                r["status_code"].as_i64(),
            )
        })
        .collect()
}

fn ids(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| text(e, "/id")).collect()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| text(e, "/type")).collect()
}

/// The events of `objects` (each oldest first, one object after the other) once their types
/// are `want`: status changes reach the log through the server's write queue, so an event may
/// land a moment after the API call that caused it. Fails after 5 s.
fn settled_events(server: &Server, token: &str, objects: &[&str], want: &[&str]) -> Vec<Value> {
    let mut events = Vec::new();
    let settled = eventually(Duration::from_secs(5), || {
        events = objects
            .iter()
            .flat_map(|o| events_of(server, token, o))
            .collect();
        (kinds(&events) == want).then_some(())
    });
    if settled.is_none() {
        assert_eq!(kinds(&events), want, "every change is an event");
    }
    events
}

/// Unix seconds of an RFC 3339 time such as `2027-01-15T08:00:00.123Z` or `…+02:00`.
fn unix_seconds(ts: &str) -> f64 {
    sigma_control::model::parse_rfc3339(ts)
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {ts:?}")) as f64
        / 1000.0
}

// ---- 1. a broadcast, delivered exactly and signed ------------------------------------------

fn broadcast_is_signed_and_matches_the_log(server: Server) {
    let admin = server.console_api_token();
    let dir = server.data_dir.clone();
    let all = Receiver::start(&dir, "all", &[]);
    let some = Receiver::start(&dir, "some", &[]);
    let body = json!({"url": all.url(), "event_types": ["live_stream.*"], "description": "e2e"});
    let wh = create_webhook(&server, &admin, body);
    assert_eq!(wh["event_types"], json!(["live_stream.*"]), "{wh}");
    assert_eq!(wh["description"], "e2e", "{wh}");
    let (wh_id, secret) = (text(&wh, "/id"), text(&wh, "/secret"));
    let body =
        json!({"url": some.url(), "event_types": ["live_stream.active", "live_stream.idle"]});
    let wh_some = create_webhook(&server, &admin, body);
    let secret_some = text(&wh_some, "/secret");
    assert_ne!(secret, secret_some);

    let ls = create_stream(
        &server,
        &admin,
        json!({"name": "hooked", "reconnect_window": RECONNECT_WINDOW}),
    );
    let (id, key, ingest) = (
        text(&ls, "/id"),
        text(&ls, "/stream_key"),
        text(&ls, "/ingest/rtmp"),
    );
    let mut first = ffmpeg_publish(&ingest, 30, &[]);
    watch_status(&server, &admin, &id, Duration::from_secs(30), |s| {
        s == "active"
    });
    first.kill();
    watch_status(&server, &admin, &id, Duration::from_secs(3), |s| {
        s == "reconnecting"
    });
    let mut second = ffmpeg_publish(&ingest, 30, &[]);
    let seen = watch_status(&server, &admin, &id, Duration::from_secs(20), |s| {
        s == "active" || s == "idle"
    });
    assert_eq!(
        seen.last().map(String::as_str),
        Some("active"),
        "the publisher did not come back within the window: {seen:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    second.kill();
    watch_status(
        &server,
        &admin,
        &id,
        Duration::from_secs(RECONNECT_WINDOW + 8),
        |s| s == "idle",
    );

    let idle = eventually(Duration::from_secs(20), || {
        let events = all.events();
        events
            .iter()
            .any(|h| h.object_id() == id && h.kind() == "live_stream.idle")
            .then_some(())
    });
    assert!(
        idle.is_some(),
        "the idle event never arrived; got {:?}\n{}",
        all.events().iter().map(Hook::kind).collect::<Vec<_>>(),
        server.log_text()
    );
    // Whatever else would come (a stray or misordered event) comes now.
    std::thread::sleep(Duration::from_millis(1500));

    let requests = all.requests();
    let hooks: Vec<Hook> = requests
        .iter()
        .filter(|h| h.object_id() == id)
        .cloned()
        .collect();
    assert_well_formed(&hooks);
    let firsts = first_arrivals(hooks.clone());
    let types: Vec<&str> = firsts.iter().map(Hook::kind).collect();
    assert_eq!(types, BROADCAST, "the broadcast's events, as delivered");
    let sequences: Vec<i64> = firsts.iter().map(Hook::sequence).collect();
    assert_eq!(sequences, (1..=BROADCAST.len() as i64).collect::<Vec<_>>());
    for h in &requests {
        assert!(
            !h.body.contains(&key) && h.headers.values().all(|v| !v.to_string().contains(&key)),
            "the stream key was delivered: {}",
            h.raw
        );
    }

    let summary_all = verify(&all.log, &[&secret]);
    assert_eq!(summary_all["requests"], requests.len(), "{summary_all}");
    // The other endpoint's secret signs nothing here.
    assert_unverified(&all.log, &[&secret_some], "another endpoint's secret");

    let events = events_of(&server, &admin, &id);
    assert_eq!(
        firsts.iter().map(Hook::id).collect::<Vec<_>>(),
        ids(&events),
        "delivered vs GET /v1/events?object_id="
    );
    for (h, e) in firsts.iter().zip(&events) {
        assert_eq!(&h.event, e, "the delivered body is the event in the log");
    }

    // The filtered endpoint got only what it named.
    let filtered: Vec<String> = some.events().iter().map(|h| h.kind().to_string()).collect();
    assert_eq!(filtered, ["live_stream.active", "live_stream.idle"]);
    verify(&some.log, &[&secret_some]);

    // One delivery row per attempt: here every event once, delivered with a 200.
    let mut rows = Vec::new();
    let complete = eventually(Duration::from_secs(5), || {
        rows = deliveries(&server, &admin, &wh_id, 3);
        (rows.len() >= requests.len()).then_some(())
    });
    assert!(
        complete.is_some(),
        "{} rows for {} requests: {rows:?}",
        rows.len(),
        requests.len()
    );
    assert_eq!(rows.len(), requests.len(), "one row per attempt: {rows:?}");
    for h in &firsts {
        let mine = attempts_of(&rows, h.id());
        assert!(
            summary(&mine).contains(&(1, "delivered".to_string(), Some(200))),
            "{}: {mine:?}",
            h.id()
        );
        for r in &mine {
            assert_eq!(r["event_type"], h.kind(), "{r}");
            assert!(r["duration_ms"].is_number(), "{r}");
            if r["outcome"] == "delivered" {
                assert!(r["error"].is_null(), "{r}");
            }
        }
    }

    // The secret is never shown again, nor logged.
    let got = get_webhook(&server, &admin, &wh_id);
    assert_eq!(got["status"], "enabled", "{got}");
    let list = list_all(&server, &admin, "/v1/webhooks");
    assert!(list.iter().all(|w| w.get("secret").is_none()), "{list:?}");
    let log = server.log_text();
    assert_not_logged(&log, &secret, "the webhook secret");
    assert_not_logged(&log, &key, "the stream key");
}

#[test]
fn event_sequence_is_signed_and_matches_the_log() {
    broadcast_is_signed_and_matches_the_log(Server::start("wh-flow", &[ALLOW_PRIVATE]));
}

#[test]
fn event_sequence_is_signed_and_matches_the_log_postgres() {
    let pg = Postgres::start();
    let url = pg.database("webhooks");
    broadcast_is_signed_and_matches_the_log(Server::start(
        "wh-flow-pg",
        &[ALLOW_PRIVATE, "--database-url", &url],
    ));
    drop(pg);
}

// ---- 2. the management API ------------------------------------------------------------------

#[test]
fn webhooks_crud_shows_the_secret_only_once() {
    let (server, admin) = start("wh-crud", &[ALLOW_PRIVATE]);
    let wh = create_webhook(&server, &admin, json!({"url": "http://127.0.0.1:9/a"}));
    assert_eq!(wh["event_types"], json!(["*"]), "the default: {wh}");
    let (id, secret) = (text(&wh, "/id"), text(&wh, "/secret"));
    // >= 128 bits: at least 22 base64 characters after the prefix.
    assert!(secret.len() >= "whsec_".len() + 22, "{secret}");
    let created = unix_seconds(&text(&wh, "/created_at"));
    unix_seconds(&text(&wh, "/updated_at"));

    let got = get_webhook(&server, &admin, &id);
    for field in ["id", "url", "event_types", "status", "created_at"] {
        assert_eq!(got[field], wh[field], "{field}");
    }
    let list = list_all(&server, &admin, "/v1/webhooks");
    assert!(list.iter().any(|w| w["id"] == id), "{list:?}");
    assert!(list.iter().all(|w| w.get("secret").is_none()), "{list:?}");

    let changed = patch_webhook(
        &server,
        &admin,
        &id,
        json!({"url": "http://127.0.0.1:9/b", "event_types": ["live_stream.idle"], "description": "changed"}),
    );
    assert_eq!(changed["url"], "http://127.0.0.1:9/b", "{changed}");
    assert_eq!(
        changed["event_types"],
        json!(["live_stream.idle"]),
        "{changed}"
    );
    assert_eq!(changed["description"], "changed", "{changed}");
    assert!(
        unix_seconds(&text(&changed, "/updated_at")) >= created,
        "{changed}"
    );
    assert_eq!(
        get_webhook(&server, &admin, &id)["url"],
        "http://127.0.0.1:9/b"
    );

    let off = patch_webhook(&server, &admin, &id, json!({"enabled": false}));
    assert_eq!(off["status"], "disabled", "{off}");
    let on = patch_webhook(&server, &admin, &id, json!({"enabled": true}));
    assert_eq!(on["status"], "enabled", "{on}");

    let path = format!("/v1/webhooks/{id}/rotate-secret");
    let (status, rotated) = server.api_call("POST", &path, Some(&admin), None);
    assert_eq!(status, 200, "rotate: {rotated}");
    let new_secret = text(&rotated, "/secret");
    assert!(
        new_secret.starts_with("whsec_") && new_secret != secret,
        "{rotated}"
    );
    get_webhook(&server, &admin, &id);

    let (status, body) = server.api_call("POST", "/v1/webhooks", Some(&admin), Some(&json!({})));
    assert!(matches!(status, 400 | 422), "no url: {status} {body}");

    let path = format!("/v1/webhooks/{id}");
    let (status, body) = server.api_call("DELETE", &path, Some(&admin), None);
    assert_eq!(status, 204, "delete: {body}");
    assert_eq!(server.api_call("GET", &path, Some(&admin), None).0, 404);
    assert_eq!(server.api_call("DELETE", &path, Some(&admin), None).0, 404);
    let list = list_all(&server, &admin, "/v1/webhooks");
    assert!(list.iter().all(|w| w["id"] != id), "{list:?}");
    let log = server.log_text();
    assert_not_logged(&log, &secret, "the webhook secret");
    assert_not_logged(&log, &new_secret, "the rotated secret");
}

#[test]
fn rotated_secrets_sign_twice_and_replay_redelivers() {
    let (server, admin) = start("wh-rotate", &[ALLOW_PRIVATE]);
    let receiver = Receiver::start(&server.data_dir, "rotate", &[]);
    let wh = create_webhook(&server, &admin, json!({"url": receiver.url()}));
    let (wh_id, old) = (text(&wh, "/id"), text(&wh, "/secret"));
    let ls = create_stream(&server, &admin, json!({"name": "rotate"}));
    let id = text(&ls, "/id");
    let got_one = eventually(Duration::from_secs(10), || {
        (receiver.requests().len() == 1).then_some(())
    });
    assert!(
        got_one.is_some(),
        "created not delivered\n{}",
        server.log_text()
    );

    let path = format!("/v1/webhooks/{wh_id}/rotate-secret");
    let (status, rotated) = server.api_call("POST", &path, Some(&admin), None);
    assert_eq!(status, 200, "rotate: {rotated}");
    let new = text(&rotated, "/secret");
    assert_ne!(new, old);
    patch_stream(&server, &admin, &id, json!({"name": "rotated"}));
    let got_two = eventually(Duration::from_secs(10), || {
        (receiver.requests().len() == 2).then_some(())
    });
    assert!(
        got_two.is_some(),
        "updated not delivered\n{}",
        server.log_text()
    );
    let hooks = receiver.requests();
    assert_well_formed(&hooks);
    assert_eq!(hooks[1].kind(), "live_stream.updated");
    assert_eq!(
        hooks[1].header("webhook-signature").split(' ').count(),
        2,
        "the old secret signs next to the new one: {}",
        hooks[1].raw
    );
    // Each secret alone verifies the delivery after the rotation.
    let dir = &server.data_dir;
    let (before, after) = (
        dir.join("before-rotation.jsonl"),
        dir.join("after-rotation.jsonl"),
    );
    write_log(&before, &[&hooks[0]]);
    write_log(&after, &[&hooks[1]]);
    verify(&after, &[&old]);
    verify(&after, &[&new]);
    verify(&before, &[&old]);
    assert_unverified(
        &before,
        &[&new],
        "the new secret on a delivery made before it",
    );

    // Replay from the first event's time: both events again, same ids, same events, in order.
    let events = events_of(&server, &admin, &id);
    assert_eq!(ids(&events), [hooks[0].id(), hooks[1].id()]);
    let since = text(&events[0], "/timestamp");
    let path = format!("/v1/webhooks/{wh_id}/replay");
    let (status, queued) =
        server.api_call("POST", &path, Some(&admin), Some(&json!({"since": since})));
    assert_eq!(status, 202, "replay: {queued}");
    assert_eq!(queued["queued"], 2, "{queued}");
    let (status, none) = server.api_call(
        "POST",
        &path,
        Some(&admin),
        Some(&json!({"since": "2100-01-01T00:00:00Z"})),
    );
    assert_eq!(status, 202, "replay from the future: {none}");
    assert_eq!(none["queued"], 0, "{none}");
    let replayed = eventually(Duration::from_secs(10), || {
        (receiver.requests().len() >= 4).then_some(())
    });
    assert!(
        replayed.is_some(),
        "replay not delivered\n{}",
        server.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let hooks = receiver.requests();
    assert_eq!(hooks.len(), 4, "{hooks:#?}");
    assert_well_formed(&hooks);
    assert_eq!(
        [hooks[2].id(), hooks[3].id()],
        [hooks[0].id(), hooks[1].id()]
    );
    verify(&receiver.log, &[&old]);
}

// ---- 3. durable delivery ---------------------------------------------------------------------

#[test]
fn deliveries_survive_sigkill_and_a_receiver_down_for_a_while() {
    let (mut server, admin) = start(
        "wh-crash",
        &[ALLOW_PRIVATE, "--webhook-retry-schedule", LONG_SCHEDULE],
    );
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks/late");
    let wh = create_webhook(&server, &admin, json!({"url": url}));
    let (wh_id, secret) = (text(&wh, "/id"), text(&wh, "/secret"));

    let a = text(&create_stream(&server, &admin, json!({"name": "a"})), "/id");
    act(&server, &admin, &a, "disable");
    act(&server, &admin, &a, "enable");
    let b = text(&create_stream(&server, &admin, json!({"name": "b"})), "/id");
    patch_stream(&server, &admin, &b, json!({"name": "b2"}));
    let c = text(&create_stream(&server, &admin, json!({"name": "c"})), "/id");
    act(&server, &admin, &c, "reset-stream-key");
    let (status, body) = server.api_call(
        "DELETE",
        &format!("/v1/live-streams/{c}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 204, "delete: {body}");
    let objects = [a.as_str(), b.as_str(), c.as_str()];
    let expected = [
        "live_stream.created",
        "live_stream.disabled",
        "live_stream.enabled",
        "live_stream.created",
        "live_stream.updated",
        "live_stream.created",
        "live_stream.stream_key_reset",
        "live_stream.deleted",
    ];
    let events = settled_events(&server, &admin, &objects, &expected);

    // Nothing listens yet: attempts fail and are due again.
    let mut rows = Vec::new();
    let failing = eventually(Duration::from_secs(10), || {
        rows = deliveries(&server, &admin, &wh_id, 100);
        rows.iter()
            .any(|r| r["outcome"] == "retrying")
            .then_some(())
    });
    assert!(failing.is_some(), "no failed attempt recorded: {rows:?}");
    let failed = rows.iter().find(|r| r["outcome"] == "retrying").unwrap();
    assert!(
        failed["status_code"].is_null(),
        "connection refused has no status: {failed}"
    );
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "a failed attempt says why: {failed}"
    );

    server.kill_and_restart();
    let after: Vec<Value> = objects
        .iter()
        .flat_map(|o| events_of(&server, &admin, o))
        .collect();
    assert_eq!(ids(&after), ids(&events), "the event log after SIGKILL");
    std::thread::sleep(Duration::from_secs(2));
    let receiver = Receiver::start_on(&server.data_dir, "late", port, &[]);

    let want: BTreeSet<String> = ids(&events).into_iter().collect();
    let all_in = eventually(Duration::from_secs(45), || {
        let got: BTreeSet<String> = receiver
            .requests()
            .iter()
            .map(|h| h.id().to_string())
            .collect();
        want.is_subset(&got).then_some(())
    });
    if all_in.is_none() {
        let got: BTreeSet<String> = receiver
            .requests()
            .iter()
            .map(|h| h.id().to_string())
            .collect();
        panic!(
            "missing after the restart: {:?}\n{}",
            want.difference(&got).collect::<Vec<_>>(),
            server.full_log_text()
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let hooks = receiver.requests();
    assert_well_formed(&hooks);
    assert_delivered_in_order(&hooks, &events, "after SIGKILL");
    verify(&receiver.log, &[&secret]);
    assert_not_logged(&server.full_log_text(), &secret, "the webhook secret");
}

// ---- 4. retries, 410 and Retry-After ---------------------------------------------------------

/// The gap between two arrivals is `wait` seconds, give or take the jitter and the slack.
fn assert_gap(from: &Hook, to: &Hook, wait: f64, what: &str) {
    let gap = to.t - from.t;
    let (lo, hi) = (wait * (1.0 - JITTER) - SLACK, wait * (1.0 + JITTER) + SLACK);
    assert!(
        (lo..=hi).contains(&gap),
        "{what}: {gap:.3} s between attempts, want {wait} s ({lo:.2}..{hi:.2})"
    );
}

#[test]
fn retries_follow_the_schedule() {
    let (server, admin) = start(
        "wh-retry",
        &[ALLOW_PRIVATE, "--webhook-retry-schedule", "1s,2s"],
    );
    let dir = server.data_dir.clone();
    let flaky = Receiver::start(&dir, "flaky", &["--responses", "500,500,200"]);
    let broken = Receiver::start(&dir, "broken", &["--responses", "500,500,500"]);
    let wh = create_webhook(&server, &admin, json!({"url": flaky.url()}));
    let wh_broken = create_webhook(&server, &admin, json!({"url": broken.url()}));
    let ls = create_stream(&server, &admin, json!({"name": "retried"}));
    let events = events_of(&server, &admin, &text(&ls, "/id"));
    assert_eq!(kinds(&events), ["live_stream.created"]);
    let event_id = text(&events[0], "/id");

    let three = eventually(Duration::from_secs(15), || {
        (flaky.requests().len() >= 3 && broken.requests().len() >= 3).then_some(())
    });
    assert!(
        three.is_some(),
        "three attempts each: {} and {}\n{}",
        flaky.requests().len(),
        broken.requests().len(),
        server.log_text()
    );
    // A fourth attempt (there must be none) would come within this.
    std::thread::sleep(Duration::from_millis(2500));

    for (receiver, webhook, statuses, outcomes) in [
        (
            &flaky,
            &wh,
            [500, 500, 200],
            ["delivered", "retrying", "retrying"],
        ),
        (
            &broken,
            &wh_broken,
            [500, 500, 500],
            ["failed", "retrying", "retrying"],
        ),
    ] {
        let name = &receiver.name;
        let hooks = receiver.requests();
        assert_eq!(hooks.len(), 3, "{name}: exactly three attempts: {hooks:#?}");
        assert_well_formed(&hooks);
        assert!(
            hooks.iter().all(|h| h.id() == event_id),
            "{name}: every attempt carries the event's webhook-id: {hooks:#?}"
        );
        let answered: Vec<u64> = hooks.iter().filter_map(|h| h.status).collect();
        assert_eq!(answered, statuses.map(|s| s as u64), "{name}");
        assert_gap(&hooks[0], &hooks[1], 1.0, &format!("{name}: first retry"));
        assert_gap(&hooks[1], &hooks[2], 2.0, &format!("{name}: second retry"));
        let stamps: Vec<i64> = hooks
            .iter()
            .map(|h| h.header("webhook-timestamp").parse().unwrap())
            .collect();
        assert!(
            stamps[2] - stamps[0] >= 2,
            "{name}: each attempt has its own timestamp: {stamps:?}"
        );
        verify(&receiver.log, &[&text(webhook, "/secret")]);

        let wh_id = text(webhook, "/id");
        let mut rows = Vec::new();
        let listed = eventually(Duration::from_secs(5), || {
            rows = attempts_of(&deliveries(&server, &admin, &wh_id, 100), &event_id);
            (rows.len() >= 3).then_some(())
        });
        assert!(listed.is_some(), "{name}: delivery rows {rows:?}");
        let want: Vec<(i64, String, Option<i64>)> = (0..3)
            .map(|i| (3 - i as i64, outcomes[i].to_string(), Some(statuses[2 - i])))
            .collect();
        assert_eq!(summary(&rows), want, "{name}: deliveries, newest first");
    }
    assert_eq!(
        get_webhook(&server, &admin, &text(&wh, "/id"))["status"],
        "enabled"
    );
    wait_webhook_status(
        &server,
        &admin,
        &text(&wh_broken, "/id"),
        "failing",
        Duration::from_secs(5),
    );
}

#[test]
fn gone_disables_and_retry_after_is_honoured() {
    let (server, admin) = start(
        "wh-gone",
        &[ALLOW_PRIVATE, "--webhook-retry-schedule", "1s"],
    );
    let dir = server.data_dir.clone();
    // Both answer 200 after their script: anything sent to `gone` later would be seen.
    let gone = Receiver::start(&dir, "gone", &["--responses", "410"]);
    let busy = Receiver::start(&dir, "busy", &["--responses", "503", "--retry-after", "3"]);
    let wh_gone = create_webhook(&server, &admin, json!({"url": gone.url()}));
    let wh_busy = create_webhook(&server, &admin, json!({"url": busy.url()}));
    let gone_id = text(&wh_gone, "/id");

    let first = text(
        &create_stream(&server, &admin, json!({"name": "first"})),
        "/id",
    );
    wait_webhook_status(
        &server,
        &admin,
        &gone_id,
        "disabled",
        Duration::from_secs(10),
    );
    assert_eq!(gone.requests().len(), 1);
    assert_eq!(gone.requests()[0].status, Some(410));

    patch_stream(&server, &admin, &first, json!({"name": "renamed"}));
    act(&server, &admin, &first, "disable");
    act(&server, &admin, &first, "enable");
    let second = text(
        &create_stream(&server, &admin, json!({"name": "second"})),
        "/id",
    );
    let events = settled_events(
        &server,
        &admin,
        &[&first, &second],
        &[
            "live_stream.created",
            "live_stream.updated",
            "live_stream.disabled",
            "live_stream.enabled",
            "live_stream.created",
        ],
    );
    let want: BTreeSet<String> = ids(&events).into_iter().collect();
    let all_in = eventually(Duration::from_secs(20), || {
        let got: BTreeSet<String> = busy.requests().iter().map(|h| h.id().to_string()).collect();
        want.is_subset(&got).then_some(())
    });
    assert!(all_in.is_some(), "busy endpoint: {:#?}", busy.requests());
    std::thread::sleep(Duration::from_secs(1));

    // 410: disabled, one attempt recorded as such, and nothing more sent.
    let sent = gone.requests();
    assert_eq!(sent.len(), 1, "requests after a 410: {sent:#?}");
    assert_eq!(get_webhook(&server, &admin, &gone_id)["status"], "disabled");
    let rows = deliveries(&server, &admin, &gone_id, 100);
    assert_eq!(
        summary(&rows),
        [(1, "disabled".to_string(), Some(410))],
        "{rows:?}"
    );
    verify(&gone.log, &[&text(&wh_gone, "/secret")]);

    // 503 with Retry-After: 3 — the retry waits 3 s, not the schedule's 1 s.
    let hooks = busy.requests();
    assert_well_formed(&hooks);
    assert_delivered_in_order(&hooks, &events, "busy endpoint");
    let created = &events[0];
    let attempts: Vec<&Hook> = hooks.iter().filter(|h| h.id() == created["id"]).collect();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(
        attempts.iter().map(|h| h.status).collect::<Vec<_>>(),
        [Some(503), Some(200)]
    );
    let gap = attempts[1].t - attempts[0].t;
    assert!(
        (2.9..=5.0).contains(&gap),
        "Retry-After 3 not honoured: retried after {gap:.3} s"
    );
    let rows = attempts_of(
        &deliveries(&server, &admin, &text(&wh_busy, "/id"), 100),
        &text(created, "/id"),
    );
    assert_eq!(
        summary(&rows),
        [
            (2, "delivered".to_string(), Some(200)),
            (1, "retrying".to_string(), Some(503))
        ],
        "{rows:?}"
    );
    verify(&busy.log, &[&text(&wh_busy, "/secret")]);
}

// ---- 5. private targets ----------------------------------------------------------------------

#[test]
fn private_targets_are_refused_without_the_flag() {
    let (server, admin) = start("wh-private", &[]);
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost:9/",
        "http://[::1]:9/",
        "http://169.254.169.254/",
        "http://10.0.0.1/",
    ] {
        let body = json!({"url": url});
        let (status, answer) = server.api_call("POST", "/v1/webhooks", Some(&admin), Some(&body));
        assert_eq!(status, 422, "{url}: {answer}");
        assert_eq!(answer["error"]["code"], "private_target", "{url}: {answer}");
    }
    let body = json!({"url": "ftp://example.com/"});
    let (status, answer) = server.api_call("POST", "/v1/webhooks", Some(&admin), Some(&body));
    assert_eq!(status, 422, "ftp: {answer}");
    assert!(answer["error"]["code"].is_string(), "{answer}");
    assert!(list_all(&server, &admin, "/v1/webhooks").is_empty());

    // A public address is taken (nothing happens in this test, so nothing is sent to it), and
    // a PATCH may not point it somewhere private.
    let wh = create_webhook(
        &server,
        &admin,
        json!({"url": "http://93.184.216.34/hooks"}),
    );
    let path = format!("/v1/webhooks/{}", text(&wh, "/id"));
    let body = json!({"url": "http://127.0.0.1:9/x"});
    let (status, answer) = server.api_call("PATCH", &path, Some(&admin), Some(&body));
    assert_eq!(status, 422, "PATCH to loopback: {answer}");
    assert_eq!(answer["error"]["code"], "private_target", "{answer}");
    let got = get_webhook(&server, &admin, &text(&wh, "/id"));
    assert_eq!(got["url"], "http://93.184.216.34/hooks");
    assert_eq!(server.api_call("DELETE", &path, Some(&admin), None).0, 204);
}

// ---- 6. isolation ----------------------------------------------------------------------------

#[test]
fn dead_endpoints_do_not_slow_a_healthy_one() {
    let (server, admin) = start("wh-dead", &[ALLOW_PRIVATE]);
    let dir = server.data_dir.clone();
    let dead: Vec<Receiver> = (0..10)
        .map(|i| Receiver::start(&dir, &format!("dead{i}"), &["--hang"]))
        .collect();
    for d in &dead {
        create_webhook(&server, &admin, json!({"url": d.url()}));
    }
    // Made last, so an endpoint-by-endpoint sender would reach it last.
    let healthy = Receiver::start(&dir, "healthy", &[]);
    let wh = create_webhook(&server, &admin, json!({"url": healthy.url()}));

    const N: usize = 20;
    for i in 0..N {
        create_stream(&server, &admin, json!({"name": format!("s{i}")}));
        std::thread::sleep(Duration::from_millis(100));
    }
    let all_in = eventually(Duration::from_secs(20), || {
        (healthy.events().len() >= N).then_some(())
    });
    assert!(
        all_in.is_some(),
        "{} of {N} events reached the healthy endpoint\n{}",
        healthy.events().len(),
        server.log_text()
    );
    let hooks = healthy.events();
    assert_well_formed(&hooks);
    let mut late: Vec<f64> = hooks
        .iter()
        .map(|h| h.t - unix_seconds(h.event["timestamp"].as_str().unwrap()))
        .collect();
    late.sort_by(f64::total_cmp);
    let p50 = late[late.len() / 2];
    let p99 = late[(late.len() * 99).div_ceil(100) - 1];
    assert!(late[0] > -0.1, "delivered before its timestamp? {late:?}");
    assert!(
        p99 <= 1.0,
        "healthy endpoint behind the dead ones: p50 {p50:.3} s, p99 {p99:.3} s: {late:?}"
    );
    // The dead ones were being tried all along.
    let tried = eventually(Duration::from_secs(5), || {
        dead.iter().all(|d| !d.requests().is_empty()).then_some(())
    });
    assert!(
        tried.is_some(),
        "requests per dead endpoint: {:?}",
        dead.iter().map(|d| d.requests().len()).collect::<Vec<_>>()
    );
    verify(&healthy.log, &[&text(&wh, "/secret")]);
}

// ---- 7. two servers, one PostgreSQL ---------------------------------------------------------

#[test]
fn two_nodes_deliver_each_event_once_per_attempt() {
    let pg = Postgres::start();
    let url = pg.database("webhooks_shared");
    let token = "sgt_e2e-webhooks-admin-token-0123456789abcdefgh";
    let env = [("SIGMA_API_TOKEN", token)];
    let args = [ALLOW_PRIVATE, "--database-url", &url];
    let a = Server::start_with_env("wh-pg-a", &args, &env);
    let b = Server::start_with_env("wh-pg-b", &args, &env);
    let receiver = Receiver::start(&a.data_dir, "shared", &[]);
    let wh = create_webhook(&a, token, json!({"url": receiver.url()}));
    let wh_id = text(&wh, "/id");

    let mut objects = Vec::new();
    for i in 0..4 {
        let (made_on, acted_on) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let id = text(
            &create_stream(made_on, token, json!({"name": format!("n{i}")})),
            "/id",
        );
        act(acted_on, token, &id, "disable");
        act(made_on, token, &id, "enable");
        patch_stream(
            acted_on,
            token,
            &id,
            json!({"name": format!("n{i}-renamed")}),
        );
        objects.push(id);
    }
    // Disabled on one node and enabled on the other, each stream ends up idle on both.
    for id in &objects {
        for (name, node) in [("A", &a), ("B", &b)] {
            let mut last = String::new();
            let idle = eventually(Duration::from_secs(5), || {
                last = status_of(node, token, id);
                (last == "idle").then_some(())
            });
            assert!(idle.is_some(), "{id} on {name}: {last:?} after enable");
        }
    }
    let per_object = [
        "live_stream.created",
        "live_stream.disabled",
        "live_stream.enabled",
        "live_stream.updated",
    ];
    let objects: Vec<&str> = objects.iter().map(String::as_str).collect();
    let events = settled_events(&a, token, &objects, &per_object.repeat(objects.len()));
    assert_eq!(
        ids(&events),
        objects
            .iter()
            .flat_map(|o| ids(&events_of(&b, token, o)))
            .collect::<Vec<_>>(),
        "both nodes read one log"
    );
    let want: BTreeSet<String> = ids(&events).into_iter().collect();
    let all_in = eventually(Duration::from_secs(30), || {
        let got: BTreeSet<String> = receiver
            .requests()
            .iter()
            .map(|h| h.id().to_string())
            .collect();
        want.is_subset(&got).then_some(())
    });
    assert!(
        all_in.is_some(),
        "not all delivered: {:#?}\nA:\n{}\nB:\n{}",
        receiver.requests(),
        a.log_text(),
        b.log_text()
    );
    // A second delivery by the other node would come within this.
    std::thread::sleep(Duration::from_secs(3));
    let hooks = receiver.requests();
    assert_well_formed(&hooks);
    assert_delivered_in_order(&hooks, &events, "two nodes");
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &hooks {
        *count.entry(h.id()).or_default() += 1;
    }
    let rows = deliveries(&b, token, &wh_id, 100);
    let twice: Vec<(&str, Vec<Value>)> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| (*id, attempts_of(&rows, id)))
        .collect();
    assert!(
        twice.is_empty(),
        "a healthy receiver got these more than once (with their delivery rows): {twice:?}"
    );
    assert_eq!(rows.len(), want.len(), "one attempt per event: {rows:?}");
    verify(&receiver.log, &[&text(&wh, "/secret")]);
    drop((a, b));
    drop(pg);
}
