//! The control plane end to end, against the real `sigma-server` binary on loopback: a new
//! user's first live stream (console token → API → ffmpeg → hls.js → reconnecting → idle) on
//! SQLite and on PostgreSQL; stream keys refused when wrong, reset, disabled or deleted, and
//! publishers on a reset or disabled key cut off within 1 s; the API's authorization on every
//! route; signed playback with JWTs minted by an independent implementation (`e2e/jwt.mjs`,
//! Node's crypto); deleted playback ids; preview for operators only; two servers on one
//! PostgreSQL; and `--no-open-publishing`. Stream keys never reach viewers or the log.
//!
//! Every process is started by the test that needs it, bounded in time and killed on drop.

mod support;

#[path = "../../sigma-control/tests/postgres.rs"]
mod postgres;

use postgres::Postgres;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::api::{
    SigningKey, act, assert_not_logged, create_stream, signing_key, start, status_of, text,
    watch_status,
};
use support::{Answer, Proc, Server, ffmpeg_publish, http_request, http_request_from, play};

/// How long a refused ffmpeg may take to give up.
const REFUSAL: Duration = Duration::from_secs(8);
/// How soon a publisher on a reset or disabled key must be cut off.
const CUT_OFF: Duration = Duration::from_secs(1);

// ---- small helpers -------------------------------------------------------------------------

fn position(seen: &[String], status: &str) -> Option<usize> {
    seen.iter().position(|s| s == status)
}

fn is_live(s: &str) -> bool {
    matches!(s, "connected" | "active" | "preview")
}

/// Waits up to `within` for `p` to exit, polling every 20 ms; how long it took and how.
fn wait_exit(p: &mut Proc, within: Duration) -> Option<(Duration, ExitStatus)> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(Some(status)) = p.child.try_wait() {
            return Some((start.elapsed(), status));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// ffmpeg publishing to `url` is refused: it exits non-zero within `within`.
fn assert_refused(server: &Server, url: &str, what: &str, within: Duration) {
    let mut ffmpeg = ffmpeg_publish(url, 25, &[]);
    match wait_exit(&mut ffmpeg, within) {
        Some((_, status)) => assert!(!status.success(), "{what}: ffmpeg exited with success"),
        None => panic!(
            "{what}: ffmpeg still publishing after {within:?}\n{}",
            server.log_text()
        ),
    }
}

/// The path (and query) of an `http://host:port/...` URL.
fn path_of(url: &str) -> String {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    rest[rest.find('/').unwrap_or(rest.len())..].to_string()
}

/// A GET on the viewers' listener with `headers`.
fn viewer(server: &Server, path: &str, headers: &[(&str, &str)]) -> Answer {
    http_request(server.http, "GET", path, headers, b"")
        .unwrap_or_else(|| panic!("no answer to GET {path}\n{}", server.log_text()))
}

/// GETs `path` until it answers `status` (every 50 ms, up to `within`).
fn viewer_until(server: &Server, path: &str, status: u16, within: Duration) -> Answer {
    let deadline = Instant::now() + within;
    loop {
        let a = viewer(server, path, &[]);
        if a.status == status || Instant::now() >= deadline {
            assert_eq!(a.status, status, "GET {path}: {}", a.text());
            return a;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first media playlist a multivariant playlist at `/v/{pid}/index.m3u8` lists, as a path.
fn media_playlist_path(pid: &str, multivariant: &str) -> String {
    let uri = multivariant
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no media playlist in\n{multivariant}"));
    if uri.starts_with('/') {
        uri.to_string()
    } else {
        format!("/v/{pid}/{uri}")
    }
}

/// A refusal: `status` and no media bytes.
fn assert_refusal(a: &Answer, status: u16, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.text());
    assert!(
        !a.text().contains("#EXT") && !a.body.windows(4).any(|w| w == b"moof" || w == b"mdat"),
        "{what}: a refusal carries no media: {}",
        a.text()
    );
}

/// Plays a player page with hls.js and fails with everything useful if it does not play.
fn assert_plays(server: &Server, url: &str, seconds: u32) {
    let played = play(url, seconds, &[]);
    assert!(
        played.ok,
        "hls.js did not play {url}: {}\nserver log:\n{}",
        played.json,
        server.log_text()
    );
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A JWT minted by `e2e/jwt.mjs` (Node's crypto, not the server's library).
fn jwt(key: &SigningKey, sub: &str, aud: &str, exp: i64, nbf: Option<i64>) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/jwt.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .arg("--key")
        .arg(&key.pem)
        .args(["--kid", &key.id, "--sub", sub, "--aud", aud])
        .args(["--exp", &exp.to_string()]);
    if let Some(nbf) = nbf {
        cmd.args(["--nbf", &nbf.to_string()]);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("node e2e/jwt.mjs");
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

/// A live stream publishing with ffmpeg for `seconds`, waited until `until` accepts its status.
struct Live {
    ls: Value,
    id: String,
    key: String,
    pid: String,
    publisher: Proc,
}

fn publish(server: &Server, token: &str, body: Value, seconds: u32, until: &str) -> Live {
    let ls = create_stream(server, token, body);
    let publisher = ffmpeg_publish(&text(&ls, "/ingest/rtmp"), seconds, &[]);
    let id = text(&ls, "/id");
    watch_status(server, token, &id, Duration::from_secs(30), |s| s == until);
    Live {
        key: text(&ls, "/stream_key"),
        pid: text(&ls, "/playback_ids/0/id"),
        id,
        ls,
        publisher,
    }
}

// ---- 1. a new user's first live stream ------------------------------------------------------

fn new_user_flow(server: Server) {
    let admin = server.console_api_token();
    assert!(admin.starts_with("sgt_"), "admin token {admin:?}");
    let ls = create_stream(
        &server,
        &admin,
        json!({"name": "first", "reconnect_window": 3}),
    );
    let (id, key) = (text(&ls, "/id"), text(&ls, "/stream_key"));
    let pid = text(&ls, "/playback_ids/0/id");
    assert_eq!(ls["status"], "idle");
    assert_eq!(ls["reconnect_window"], 3);
    assert_eq!(ls["playback_ids"][0]["policy"], "public");
    let ingest = text(&ls, "/ingest/rtmp");
    assert_eq!(ingest, format!("rtmp://{}/live/{key}", server.rtmp));
    let hls = text(&ls, "/playback/hls");
    let player = text(&ls, "/playback/player");
    assert_eq!(hls, format!("http://{}/v/{pid}/index.m3u8", server.http));
    assert_eq!(player, format!("http://{}/v/{pid}/player", server.http));

    let mut publisher = ffmpeg_publish(&ingest, 25, &[]);
    let seen = watch_status(&server, &admin, &id, Duration::from_secs(30), |s| {
        s == "active"
    });
    let connected = position(&seen, "connected");
    assert!(
        connected.is_some() && connected < position(&seen, "active"),
        "expected connected then active: {seen:?}"
    );

    // What a viewer fetches: none of it may carry the stream key.
    let mut fetched = Vec::new();
    let mv = viewer(&server, &path_of(&hls), &[]);
    assert_eq!(mv.status, 200, "multivariant: {}", mv.text());
    assert!(mv.text().starts_with("#EXTM3U"), "{}", mv.text());
    let media = viewer_until(
        &server,
        &media_playlist_path(&pid, &mv.text()),
        200,
        Duration::from_secs(5),
    );
    assert!(media.text().contains("#EXTINF"), "{}", media.text());
    let page = viewer(&server, &path_of(&player), &[]);
    assert_eq!(page.status, 200, "player page: {}", page.text());
    let health = viewer(&server, "/healthz", &[]);
    assert_eq!(health.status, 200);
    fetched.extend([mv, media, page, health]);

    assert_plays(&server, &player, 8);

    publisher.kill();
    let lost = Instant::now();
    let seen = watch_status(&server, &admin, &id, Duration::from_secs(3 + 5), |s| {
        s == "idle"
    });
    let idle_after = lost.elapsed();
    let reconnecting = position(&seen, "reconnecting");
    assert!(
        reconnecting.is_some() && reconnecting < position(&seen, "idle"),
        "expected reconnecting then idle: {seen:?}"
    );
    assert!(
        idle_after >= Duration::from_millis(2500),
        "idle after {idle_after:?}: the 3 s reconnect window was not kept"
    );

    for a in &fetched {
        assert!(
            !a.head.contains(&key.to_ascii_lowercase()) && !a.text().contains(&key),
            "the stream key reached a viewer:\n{}\n{}",
            a.head,
            a.text()
        );
    }
    assert_not_logged(&server, &key, "the stream key");
}

#[test]
fn new_user_flow_sqlite() {
    new_user_flow(Server::start("flow-sqlite", &[]));
}

#[test]
fn new_user_flow_postgres() {
    let pg = Postgres::start();
    let url = pg.database("flow");
    new_user_flow(Server::start("flow-pg", &["--database-url", &url]));
    drop(pg);
}

#[test]
fn admin_token_is_printed_once_saved_0600_and_kept_across_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let (mut server, admin) = start("token", &[]);
    let console = server.log_text();
    assert!(
        console
            .lines()
            .any(|l| l.contains("curl") && l.contains(&server.api.to_string())),
        "a curl example for the API:\n{console}"
    );
    let file = server.data_dir.join("data/api-token");
    let meta = std::fs::metadata(&file).expect("DATA_DIR/api-token");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "{}",
        file.display()
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), admin);

    server.restart();
    let console = server.log_text();
    assert!(
        support::printed_api_token(&console).is_none(),
        "the token is printed only when made:\n{console}"
    );
    let (status, list) = server.api_call("GET", "/v1/live-streams", Some(&admin), None);
    assert_eq!(status, 200, "the saved token still works: {list}");
    assert!(list["data"].is_array(), "{list}");
}

// ---- 2. security ----------------------------------------------------------------------------

#[test]
fn wrong_and_deleted_stream_keys_are_refused() {
    let (server, admin) = start("keys", &[]);
    let ls = create_stream(&server, &admin, json!({}));
    let key = text(&ls, "/stream_key");
    // Same shape as a real key, one character off.
    let last = key.chars().last().unwrap();
    let wrong = format!(
        "{}{}",
        &key[..key.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    let wrong_url = text(&ls, "/ingest/rtmp").replace(&key, &wrong);
    assert_refused(&server, &wrong_url, "wrong key", REFUSAL);
    assert_eq!(status_of(&server, &admin, &text(&ls, "/id")), "idle");

    // A key that worked a moment ago stops working once its stream is deleted.
    let mut live = publish(
        &server,
        &admin,
        json!({"reconnect_window": 1}),
        25,
        "active",
    );
    live.publisher.kill();
    let path = format!("/v1/live-streams/{}", live.id);
    let (status, body) = server.api_call("DELETE", &path, Some(&admin), None);
    assert_eq!(status, 204, "delete: {body}");
    assert_eq!(server.api_call("GET", &path, Some(&admin), None).0, 404);
    assert_refused(
        &server,
        &text(&live.ls, "/ingest/rtmp"),
        "deleted key",
        REFUSAL,
    );

    for (k, what) in [
        (&key, "a stream key"),
        (&wrong, "a wrong key"),
        (&live.key, "a deleted key"),
    ] {
        assert_not_logged(&server, k, what);
    }
}

#[test]
fn reset_key_cuts_the_publisher_off_within_1s_and_only_the_new_key_works() {
    let (server, admin) = start("reset", &[]);
    let mut live = publish(&server, &admin, json!({}), 25, "active");
    let old_url = text(&live.ls, "/ingest/rtmp");

    let reset = act(&server, &admin, &live.id, "reset-stream-key");
    let (cut, _) = wait_exit(&mut live.publisher, Duration::from_secs(5)).unwrap_or_else(|| {
        panic!(
            "ffmpeg on the old key kept publishing\n{}",
            server.log_text()
        )
    });
    assert!(
        cut <= CUT_OFF,
        "publisher on the old key cut off after {cut:?}"
    );
    let new_key = text(&reset, "/stream_key");
    assert_ne!(new_key, live.key);
    let new_url = text(&reset, "/ingest/rtmp");
    assert_eq!(new_url, old_url.replace(&live.key, &new_key));

    watch_status(&server, &admin, &live.id, Duration::from_secs(3), |s| {
        s == "reconnecting"
    });
    assert_refused(&server, &old_url, "old key after reset", REFUSAL);
    assert_eq!(status_of(&server, &admin, &live.id), "reconnecting");
    let _new = ffmpeg_publish(&new_url, 25, &[]);
    watch_status(&server, &admin, &live.id, Duration::from_secs(15), |s| {
        s == "connected" || s == "active"
    });
    assert_not_logged(&server, &live.key, "the old stream key");
    assert_not_logged(&server, &new_key, "the new stream key");
}

#[test]
fn disable_cuts_the_publisher_off_within_1s_and_refuses_its_key() {
    let (server, admin) = start("disable", &[]);
    let mut live = publish(&server, &admin, json!({}), 25, "active");
    let disabled = act(&server, &admin, &live.id, "disable");
    let (cut, _) = wait_exit(&mut live.publisher, Duration::from_secs(5)).unwrap_or_else(|| {
        panic!(
            "ffmpeg kept publishing when disabled\n{}",
            server.log_text()
        )
    });
    assert!(cut <= CUT_OFF, "publisher cut off after {cut:?}");
    assert_eq!(disabled["status"], "disabled");
    assert_refused(
        &server,
        &text(&live.ls, "/ingest/rtmp"),
        "disabled key",
        REFUSAL,
    );
    assert_eq!(status_of(&server, &admin, &live.id), "disabled");

    // Enabled again, the same key is admitted.
    act(&server, &admin, &live.id, "enable");
    let _again = ffmpeg_publish(&text(&live.ls, "/ingest/rtmp"), 25, &[]);
    watch_status(&server, &admin, &live.id, Duration::from_secs(15), is_live);
    assert_not_logged(&server, &live.key, "the stream key");
}

#[test]
fn every_api_route_needs_a_token_and_writes_need_the_write_scope() {
    let (server, admin) = start("routes", &[]);
    let body = json!({"name": "dashboard", "scopes": ["read"]});
    let (status, t) = server.api_call("POST", "/v1/api-tokens", Some(&admin), Some(&body));
    assert_eq!(status, 201, "read token: {t}");
    let read = text(&t, "/token");
    let unknown = format!("sgt_{}", "x".repeat(43));
    // Deliberate failures come from their own loopback addresses, so the per-address limit
    // on failed attempts (20 a minute) never answers.
    let call = |from: Ipv4Addr, method: &str, path: &str, token: Option<&str>| -> (u16, String) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let body: &[u8] = if method == "GET" || method == "DELETE" {
            b""
        } else {
            b"{}"
        };
        let a = http_request_from(from, server.api, method, path, &headers, body)
            .unwrap_or_else(|| panic!("no answer to {method} {path}"));
        (a.status, a.text())
    };
    let ok = Ipv4Addr::LOCALHOST;
    let mut checked = 0;
    for (i, (method, template)) in sigma_control::api::ROUTES.iter().enumerate() {
        // One source address per route and kind of failure.
        let (anon, guess) = (
            Ipv4Addr::new(127, 0, 1, i as u8 + 1),
            Ipv4Addr::new(127, 0, 2, i as u8 + 1),
        );
        let path = template
            .replace("{id}", "ls_AAAAAAAAAAAAAAAAAAAAAA")
            .replace("{playback_id}", "pb_AAAAAAAAAAAAAAAAAAAAAA")
            .replace("{target_id}", "st_AAAAAAAAAAAAAAAAAAAAAA");
        let path = if template.starts_with("/v1/signing-keys/") {
            path.replace("ls_", "key_")
        } else if template.starts_with("/v1/api-tokens/") {
            path.replace("ls_", "tok_")
        } else if *template == "/v1/events/stream" {
            // An authorized request would stream for ever; an unknown `after` makes it a 400,
            // which still shows the token was accepted (authorization comes first).
            format!("{path}?after=evt_AAAAAAAAAAAAAAAAAAAAAA")
        } else {
            path
        };
        if *template == "/v1/openapi.json" {
            assert_eq!(
                call(anon, method, &path, None).0,
                200,
                "the API description is public"
            );
            continue;
        }
        let (s, e) = call(anon, method, &path, None);
        assert_eq!(s, 401, "{method} {path} without a token: {e}");
        assert!(e.contains("\"unauthorized\""), "{method} {path}: {e}");
        let (s, e) = call(guess, method, &path, Some(&unknown));
        assert_eq!(s, 401, "{method} {path} with an unknown token: {e}");
        let (s, e) = call(ok, method, &path, Some(&read));
        if *method == "GET" {
            assert!(
                s != 401 && s != 403,
                "{method} {path} with a read token: {s} {e}"
            );
        } else {
            assert_eq!(s, 403, "{method} {path} with a read token: {e}");
            assert!(e.contains("\"forbidden\""), "{method} {path}: {e}");
        }
        let (s, e) = call(ok, method, &path, Some(&admin));
        assert!(s != 401 && s != 403, "{method} {path} as admin: {s} {e}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} routes");
}

#[test]
fn signed_playback_needs_a_valid_jwt_and_plays_with_one() {
    let (server, admin) = start("signed", &[]);
    let live = publish(
        &server,
        &admin,
        json!({"playback_policy": "signed"}),
        40,
        "active",
    );
    let pid = &live.pid;
    assert_eq!(live.ls["playback_ids"][0]["policy"], "signed");
    let mv_path = path_of(&text(&live.ls, "/playback/hls"));
    let player = text(&live.ls, "/playback/player");
    let other = create_stream(&server, &admin, json!({"playback_policy": "signed"}));
    let other_pid = text(&other, "/playback_ids/0/id");
    let key = signing_key(&server, &admin);
    let now = unix_now();

    // A good token: the multivariant lists media playlists under a media token, never the JWT.
    let good = jwt(&key, pid, "v", now + 600, Some(now - 10));
    let mv = viewer(&server, &format!("{mv_path}?token={good}"), &[]);
    assert_eq!(mv.status, 200, "good token: {}", mv.text());
    let listed = media_playlist_path(pid, &mv.text());
    assert!(listed.starts_with(&format!("/v/{pid}/t/")), "{}", mv.text());
    assert!(
        !mv.text().contains(&good),
        "the JWT is not passed on: {}",
        mv.text()
    );
    let media = viewer(&server, &listed, &[]);
    assert_eq!(
        media.status,
        200,
        "media playlist under the media token: {}",
        media.text()
    );
    assert!(media.text().contains("#EXTINF"), "{}", media.text());

    // No token: nothing, neither the entry points nor the media playlist without its token.
    let untokened = format!("/v/{pid}/{}", listed.rsplit('/').next().unwrap());
    for path in [mv_path.clone(), path_of(&player), untokened] {
        assert_refusal(
            &viewer(&server, &path, &[]),
            403,
            &format!("{path} without a token"),
        );
    }

    // Bad tokens.
    let tampered = {
        // The payload of a longer-lived token under the good token's signature.
        let longer = jwt(&key, pid, "v", now + 86_400, None);
        let mut parts: Vec<&str> = longer.split('.').collect();
        parts[2] = good.rsplit('.').next().unwrap();
        parts.join(".")
    };
    let flipped = {
        let mut b = good.clone().into_bytes();
        let at = good.rfind('.').unwrap() + 10;
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let doomed = signing_key(&server, &admin);
    let deleted_key = jwt(&doomed, pid, "v", now + 600, None);
    assert_eq!(
        viewer(&server, &format!("{mv_path}?token={deleted_key}"), &[]).status,
        200,
        "the second key works before it is deleted"
    );
    let (status, _) = server.api_call(
        "DELETE",
        &format!("/v1/signing-keys/{}", doomed.id),
        Some(&admin),
        None,
    );
    assert_eq!(status, 204);
    std::thread::sleep(Duration::from_millis(1500)); // caches are 0.5 s
    let bad = [
        ("expired", jwt(&key, pid, "v", now - 60, None)),
        (
            "not yet valid",
            jwt(&key, pid, "v", now + 600, Some(now + 300)),
        ),
        ("wrong sub", jwt(&key, &other_pid, "v", now + 600, None)),
        ("wrong aud", jwt(&key, pid, "x", now + 600, None)),
        ("tampered payload", tampered),
        ("tampered signature", flipped),
        ("deleted key", deleted_key),
        ("not a JWT", "abc.def.ghi".to_string()),
    ];
    for (what, token) in &bad {
        for path in [&mv_path, &path_of(&player)] {
            let a = viewer(&server, &format!("{path}?token={token}"), &[]);
            assert_refusal(&a, 403, &format!("{path} with a token {what}"));
        }
    }

    // hls.js plays the player page with the good token.
    let page = viewer(&server, &format!("{}?token={good}", path_of(&player)), &[]);
    assert_eq!(page.status, 200, "player page: {}", page.text());
    assert!(
        !page.text().contains(&good),
        "the page does not resend the JWT"
    );
    assert_plays(&server, &format!("{player}?token={good}"), 6);
    assert_not_logged(&server, &live.key, "the stream key");
}

#[test]
fn deleted_playback_id_is_404_within_2s() {
    let (server, admin) = start("pbdel", &[]);
    let live = publish(&server, &admin, json!({}), 30, "active");
    let path = format!("/v1/live-streams/{}/playback-ids", live.id);
    let (status, extra) = server.api_call(
        "POST",
        &path,
        Some(&admin),
        Some(&json!({"policy": "public"})),
    );
    assert_eq!(status, 201, "new playback id: {extra}");
    assert_eq!(extra["policy"], "public");
    let extra_id = text(&extra, "/id");
    let mv_path = format!("/v/{extra_id}/index.m3u8");
    let mv = viewer_until(&server, &mv_path, 200, Duration::from_secs(2));
    let media_path = media_playlist_path(&extra_id, &mv.text());
    assert_eq!(
        viewer(&server, &media_path, &[]).status,
        200,
        "{media_path}"
    );

    let (status, _) = server.api_call("DELETE", &format!("{path}/{extra_id}"), Some(&admin), None);
    assert_eq!(status, 204);
    let deleted = Instant::now();
    let deadline = deleted + Duration::from_secs(2);
    loop {
        let (a, b) = (
            viewer(&server, &mv_path, &[]),
            viewer(&server, &media_path, &[]),
        );
        if a.status == 404 && b.status == 404 {
            assert_refusal(&a, 404, "deleted id's multivariant");
            assert_refusal(&b, 404, "deleted id's media playlist");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} / {} {:?} after the DELETE",
            a.status,
            b.status,
            deleted.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = server.api_call("DELETE", &format!("{path}/{extra_id}"), Some(&admin), None);
    assert_eq!(status, 404, "already deleted");
    // The stream's other playback id plays on.
    let first = path_of(&text(&live.ls, "/playback/hls"));
    assert_eq!(viewer(&server, &first, &[]).status, 200);
}

#[test]
fn preview_plays_only_for_operators_until_started() {
    let (server, admin) = start("preview", &[]);
    let live = publish(&server, &admin, json!({"auto_start": false}), 30, "preview");
    let pid = &live.pid;
    let mv_path = format!("/v/{pid}/index.m3u8");
    let key = signing_key(&server, &admin);
    let now = unix_now();
    let bearer = format!("Bearer {admin}");

    assert_refusal(
        &viewer(&server, &mv_path, &[]),
        403,
        "preview without a token",
    );
    let view = jwt(&key, pid, "v", now + 600, None);
    let a = viewer(&server, &format!("{mv_path}?token={view}"), &[]);
    assert_refusal(&a, 403, "preview with an aud \"v\" token");
    let a = viewer(
        &server,
        &mv_path,
        &[("Authorization", "Bearer sgt_not-a-token")],
    );
    assert_refusal(&a, 403, "preview with an unknown API token");

    let operator = jwt(&key, pid, "p", now + 600, None);
    let a = viewer(&server, &format!("{mv_path}?token={operator}"), &[]);
    assert_eq!(
        a.status,
        200,
        "preview with an aud \"p\" token: {}",
        a.text()
    );
    let media = viewer(&server, &media_playlist_path(pid, &a.text()), &[]);
    assert_eq!(
        media.status,
        200,
        "preview media under the p token: {}",
        media.text()
    );
    let a = viewer(&server, &mv_path, &[("Authorization", bearer.as_str())]);
    assert_eq!(
        a.status,
        200,
        "preview with the admin API token: {}",
        a.text()
    );
    assert!(a.text().starts_with("#EXTM3U"), "{}", a.text());

    let started = act(&server, &admin, &live.id, "start");
    assert_eq!(started["status"], "active", "{started}");
    assert_eq!(status_of(&server, &admin, &live.id), "active");
    let a = viewer_until(&server, &mv_path, 200, Duration::from_secs(2));
    assert!(a.text().starts_with("#EXTM3U"), "{}", a.text());
}

#[test]
fn complete_ends_the_broadcast_now() {
    let (server, admin) = start("complete", &[]);
    // A long reconnect window: the end must not wait for it.
    let mut live = publish(
        &server,
        &admin,
        json!({"reconnect_window": 600}),
        40,
        "active",
    );
    let mv = viewer(&server, &path_of(&text(&live.ls, "/playback/hls")), &[]);
    assert_eq!(mv.status, 200, "{}", mv.text());
    let media_path = media_playlist_path(&live.pid, &mv.text());
    let before = viewer(&server, &media_path, &[]);
    assert!(
        before.text().contains("#EXTINF") && !before.text().contains("#EXT-X-ENDLIST"),
        "{}",
        before.text()
    );

    act(&server, &admin, &live.id, "complete");
    let ended = Instant::now();
    wait_exit(&mut live.publisher, Duration::from_secs(5)).unwrap_or_else(|| {
        panic!(
            "ffmpeg kept publishing after complete\n{}",
            server.log_text()
        )
    });
    watch_status(&server, &admin, &live.id, Duration::from_secs(5), |s| {
        s == "idle"
    });
    let deadline = ended + Duration::from_secs(5);
    loop {
        let a = viewer(&server, &media_path, &[]);
        if a.status == 200 && a.text().contains("#EXT-X-ENDLIST") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the media playlist did not end: {} {}",
            a.status,
            a.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The same key starts a new broadcast afterwards.
    let _again = ffmpeg_publish(&text(&live.ls, "/ingest/rtmp"), 25, &[]);
    watch_status(&server, &admin, &live.id, Duration::from_secs(15), is_live);
}

#[test]
fn kick_disconnects_the_publisher_and_the_broadcast_waits_for_it() {
    let (server, admin) = start("kick", &[]);
    let path = |id: &str| format!("/v1/live-streams/{id}/kick");
    let idle = create_stream(&server, &admin, json!({}));
    let (status, e) = server.api_call("POST", &path(&text(&idle, "/id")), Some(&admin), None);
    assert_eq!(status, 409, "nothing to kick: {e}");
    let mut live = publish(
        &server,
        &admin,
        json!({"reconnect_window": 30}),
        40,
        "active",
    );
    act(&server, &admin, &live.id, "kick");
    let (cut, _) = wait_exit(&mut live.publisher, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("ffmpeg kept publishing after kick\n{}", server.log_text()));
    assert!(cut <= CUT_OFF, "kicked after {cut:?}");
    watch_status(&server, &admin, &live.id, Duration::from_secs(3), |s| {
        s == "reconnecting"
    });
    // The same key comes back into the same broadcast.
    let _again = ffmpeg_publish(&text(&live.ls, "/ingest/rtmp"), 25, &[]);
    watch_status(&server, &admin, &live.id, Duration::from_secs(15), |s| {
        s == "active"
    });
    assert_not_logged(&server, &live.key, "the stream key");
}

// ---- 3. two servers, one PostgreSQL ---------------------------------------------------------

#[test]
fn two_servers_share_one_postgres() {
    let pg = Postgres::start();
    let url = pg.database("shared");
    let token = "sgt_e2e-shared-admin-token-0123456789abcdefghij";
    let env = [("SIGMA_API_TOKEN", token)];
    let a = Server::start_with_env("pg-a", &["--database-url", &url], &env);
    let b = Server::start_with_env("pg-b", &["--database-url", &url], &env);

    let ls = create_stream(
        &a,
        token,
        json!({"name": "shared", "metadata": {"room": "7"}}),
    );
    let id = text(&ls, "/id");
    let (status, list) = b.api_call("GET", "/v1/live-streams", Some(token), None);
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(ids.contains(&id.as_str()), "B lists A's stream: {list}");
    let (status, got) = b.api_call("GET", &format!("/v1/live-streams/{id}"), Some(token), None);
    assert_eq!(status, 200, "{got}");
    for field in [
        "/id",
        "/name",
        "/stream_key",
        "/playback_ids/0/id",
        "/metadata/room",
    ] {
        assert_eq!(got.pointer(field), ls.pointer(field), "{field}");
    }
    // B shows its own public URLs.
    assert_eq!(
        text(&got, "/ingest/rtmp"),
        format!("rtmp://{}/live/{}", b.rtmp, text(&ls, "/stream_key"))
    );
    drop((a, b));
    drop(pg);
}

// ---- 4. --no-open-publishing ----------------------------------------------------------------

#[test]
fn no_open_publishing_refuses_unknown_names() {
    let (server, admin) = start("closed", &["--no-open-publishing"]);
    assert_refused(
        &server,
        &server.rtmp_url("cam"),
        "open name",
        Duration::from_secs(10),
    );
    assert_eq!(server.get("/live/cam/index.m3u8").map(|r| r.0), Some(404));

    // An API key on the same server is admitted.
    let live = publish(&server, &admin, json!({}), 25, "active");
    assert!(is_live(&status_of(&server, &admin, &live.id)));
}
