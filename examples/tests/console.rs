//! The web console end to end: `e2e/console.mjs` drives it in headless Chromium against the
//! real binary (sign-in, the create dialog, an ffmpeg publish followed live, the preview
//! player for a public and a signed preview stream, a failing simulcast target, the actions,
//! the webhooks page), and plain HTTP checks of what the listeners serve.
//!
//! With `SIGMA_CONSOLE_SCREENSHOTS=1` the browser test writes the guide's screenshots to
//! `docs/images/`.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use support::api::{self, text};
use support::{free_port, http_request};

#[test]
fn an_operator_runs_a_broadcast_from_the_console() {
    let (server, admin) = api::start(
        "console",
        &[
            "--webhooks-allow-private",
            "--simulcast-allow-private",
            "--webhook-retry-schedule",
            "1s,1s",
        ],
    );
    // The operator's own token (the bootstrap one is printed on the console at first start).
    let (s, made) = server.api_call(
        "POST",
        "/v1/api-tokens",
        Some(&admin),
        Some(&json!({"name": "operator", "scopes": ["read", "write"]})),
    );
    assert_eq!(s, 201, "{made}");
    let token = text(&made, "/token");
    // An endpoint nobody answers, for the webhooks page's failures.
    let dead = free_port();
    let (s, hook) = server.api_call(
        "POST",
        "/v1/webhooks",
        Some(&token),
        Some(&json!({"url": format!("http://127.0.0.1:{dead}/hooks"), "description": "nobody listens"})),
    );
    assert_eq!(s, 201, "{hook}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new("node");
    cmd.arg(root.join("e2e/console.mjs"))
        .arg(format!("http://{}", server.api))
        .arg(&token)
        .args([
            "--target",
            &format!("rtmp://127.0.0.1:{}/live", free_port()),
        ])
        .stdin(Stdio::null());
    if std::env::var_os("SIGMA_CONSOLE_SCREENSHOTS").is_some() {
        cmd.arg("--screenshots").arg(root.join("docs/images"));
    }
    let out = cmd.output().expect("node e2e/console.mjs");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let diag = format!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{diag}\n{}", server.log_text());
    let v: Value = serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {diag}"));
    // Every check ran and held (the script stops at the first that does not).
    let names: Vec<String> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["ok"], true, "{c}");
            text(c, "/name")
        })
        .collect();
    for must in [
        "wrong token refused",
        "page shows active within 3 s of the API",
        "no reload",
        "active: preview plays",
        "target errored, shown live",
        "complete makes it idle (API)",
        "preview (signed): preview plays",
        "start makes it active",
        "no URL carries the token",
        "no page errors",
    ] {
        assert!(names.iter().any(|n| n == must), "{must} missing: {names:?}");
    }
    assert_eq!(v["webhooks"], json!(["failing"]), "{v}");
    println!(
        "console: active on the page {} ms after the API; API active {} ms after the publish",
        v["timings"]["page_behind_api_ms"], v["timings"]["api_active_after_publish_ms"]
    );
    api::assert_not_logged(&server, &token, "the API token");
}

#[test]
fn the_console_is_on_the_api_listener_only_and_preview_preflights() {
    let (server, token) = api::start("console-http", &[]);
    let page = http_request(server.api, "GET", "/console", &[], b"").expect("console");
    assert_eq!(page.status, 200);
    assert!(
        page.head.contains("content-type: text/html"),
        "{}",
        page.head
    );
    assert!(
        page.head
            .contains("content-security-policy: default-src 'self'")
    );
    assert!(page.text().contains("/console/console.js"));
    for path in [
        "/console/console.js",
        "/console/console.css",
        "/console/hls.min.js",
    ] {
        let a = http_request(server.api, "GET", path, &[], b"").expect(path);
        assert_eq!(a.status, 200, "{path}");
        assert!(!a.body.is_empty(), "{path}");
    }
    // Not an API route: no token needed for the page itself, and the API still wants one.
    let (s, _) = server.api_call("GET", "/v1/live-streams", None, None);
    assert_eq!(s, 401);
    // The viewers' listener has no console.
    let (s, _) = support::http_get(server.http, "/console").unwrap();
    assert_eq!(s, 404);
    // The preview's preflight: a page on the API's origin may send Authorization to the
    // multivariant playlist of the viewers' listener.
    let ls = api::create_stream(&server, &token, json!({}));
    let pid = text(&ls, "/playback_ids/0/id");
    let pre = http_request(
        server.http,
        "OPTIONS",
        &format!("/v/{pid}/index.m3u8"),
        &[
            ("Origin", &format!("http://{}", server.api)),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(pre.status, 204, "{}", pre.head);
    assert!(pre.head.contains("access-control-allow-origin: *"));
    assert!(
        pre.head
            .contains("access-control-allow-headers: authorization"),
        "{}",
        pre.head
    );
}
