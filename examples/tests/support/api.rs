//! Helpers for the tests that drive the management API of a running server (control,
//! webhooks, admission): one copy of the small calls they all make.

use super::Server;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A server on the embedded defaults (plus `extra`) and the admin token from its console.
pub fn start(tag: &str, extra: &[&str]) -> (Server, String) {
    let server = Server::start(tag, extra);
    let admin = server.console_api_token();
    assert!(admin.starts_with("sgt_"), "admin token {admin:?}");
    (server, admin)
}

/// The string at JSON `pointer` in `v`; fails when there is none.
pub fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
        .to_string()
}

/// `POST /v1/live-streams` with `body`; the created resource.
pub fn create_stream(server: &Server, token: &str, body: Value) -> Value {
    let (status, ls) = server.api_call("POST", "/v1/live-streams", Some(token), Some(&body));
    assert_eq!(status, 201, "create live stream: {ls}");
    ls
}

/// `POST /v1/live-streams/{id}/{action}`; the resource after it.
pub fn act(server: &Server, token: &str, id: &str, action: &str) -> Value {
    let path = format!("/v1/live-streams/{id}/{action}");
    let (status, ls) = server.api_call("POST", &path, Some(token), None);
    assert_eq!(status, 200, "{action}: {ls}");
    ls
}

/// The live stream's `status`.
pub fn status_of(server: &Server, token: &str, id: &str) -> String {
    let (status, ls) = server.api_call("GET", &format!("/v1/live-streams/{id}"), Some(token), None);
    assert_eq!(status, 200, "get live stream: {ls}");
    text(&ls, "/status")
}

/// Polls the live stream's status every 50 ms until `done` accepts it; the distinct statuses
/// seen in order. Fails after `within`.
pub fn watch_status(
    server: &Server,
    token: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let s = status_of(server, token, id);
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if done(&s) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "status of {id} never got there; seen {seen:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that `secret` is in no line of `log`.
pub fn assert_not_in_log(log: &str, secret: &str, what: &str) {
    if let Some(line) = log.lines().find(|l| l.contains(secret)) {
        panic!("{what} in the server log: {line}");
    }
}

/// Asserts that `secret` is in no line of the server's log.
pub fn assert_not_logged(server: &Server, secret: &str, what: &str) {
    assert_not_in_log(&server.log_text(), secret, what);
}

/// A signing key made through the API: its id and its private key written to a PEM file.
pub struct SigningKey {
    pub id: String,
    pub pem: PathBuf,
}

/// `POST /v1/signing-keys`, the private key written next to the server's data.
pub fn signing_key(server: &Server, token: &str) -> SigningKey {
    let (status, k) = server.api_call("POST", "/v1/signing-keys", Some(token), None);
    assert_eq!(status, 201, "create signing key: {k}");
    assert_eq!(k["algorithm"], "EdDSA");
    let id = text(&k, "/id");
    let pem = server.data_dir.join(format!("{id}.pem"));
    std::fs::write(&pem, text(&k, "/private_key")).expect("write the PEM");
    SigningKey { id, pem }
}
