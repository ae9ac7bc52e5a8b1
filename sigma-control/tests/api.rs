//! The control plane's store and REST API, run against both backends: SQLite in a temp dir
//! and a real PostgreSQL cluster started for the test. In process: requests go straight to
//! the hyper service.

mod postgres;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use rand::SeedableRng;
use serde_json::{Value, json};
use sigma_control::api::Body;
use sigma_control::api::{self, Api, ROUTES};
use sigma_control::control::{AdmitError, Control, ControlConfig};
use sigma_control::lifecycle::{Input, Status};
use sigma_control::model::LatencyMode;
use sigma_control::{Command, Store};
use std::net::IpAddr;

const ADMIN: &str = "sgt_test-admin-token-of-enough-length-000000000";

struct Client {
    api: Api,
    control: Control,
    ip: IpAddr,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, path, token, Bytes::from(body)).await
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Bytes,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = self
            .api
            .handle(req.body(Full::new(body)).unwrap(), self.ip)
            .await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, v)
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(ADMIN), body).await
    }
}

async fn client(url: &str, seed: u64) -> Client {
    let store = Store::open(url).await.unwrap();
    let config = ControlConfig {
        rtmp_base: "rtmp://127.0.0.1:1935/live".into(),
        http_base: "http://127.0.0.1:8080".into(),
        default_latency: LatencyMode::Low,
        ladders: vec!["default".into()],
        admin_token: Some(ADMIN.into()),
        webhooks: sigma_control::delivery::WebhookSettings::default(),
        simulcast_allow_private: false,
    };
    let control = Control::start(
        store,
        config,
        Box::new(rand::rngs::StdRng::seed_from_u64(seed)),
    )
    .await
    .unwrap();
    Client {
        api: Api::new(control.clone()),
        control,
        ip: "127.0.0.1".parse().unwrap(),
    }
}

/// Every event `GET /v1/events?{query}` lists, following `next_cursor` with pages of `limit`.
async fn all_events(c: &Client, query: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/v1/events?{query}&limit={limit}");
        if let Some(cur) = &cursor {
            path.push_str(&format!("&cursor={cur}"));
        }
        let (s, page) = c.admin("GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit as usize);
        out.extend(data.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
    panic!("the event pages never ended");
}

/// The suite both backends pass.
async fn suite(url: &str) {
    let c = client(url, 1).await;

    // Create with defaults.
    let (s, ls) = c.admin("POST", "/v1/live-streams", None).await;
    assert_eq!(s, StatusCode::CREATED, "{ls}");
    let id = ls["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ls_"));
    assert_eq!(ls["status"], "idle");
    assert_eq!(ls["latency_mode"], "low", "the server's default");
    assert_eq!(ls["playback_policy"], "public");
    assert_eq!(ls["reconnect_window"], 10);
    assert_eq!(ls["auto_start"], true);
    assert_eq!(ls["ladder"], Value::Null);
    let key = ls["stream_key"].as_str().unwrap().to_string();
    assert!(key.len() >= 22);
    assert_eq!(
        ls["ingest"]["rtmp"],
        format!("rtmp://127.0.0.1:1935/live/{key}")
    );
    let pid = ls["playback_ids"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        ls["playback"]["hls"],
        format!("http://127.0.0.1:8080/v/{pid}/index.m3u8")
    );
    assert!(
        !ls["playback"].to_string().contains(&key),
        "the key is not in playback URLs"
    );
    assert!(ls["created_at"].as_str().unwrap().ends_with('Z'));

    // Create with every field.
    let body = json!({"name": "Town hall", "latency_mode": "ultra-low", "playback_policy": "signed",
        "reconnect_window": 30, "auto_start": false, "ladder": "default", "metadata": {"room": "a"}});
    let (s, full) = c.admin("POST", "/v1/live-streams", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{full}");
    assert_eq!(full["latency_mode"], "ultra-low");
    assert_eq!(full["playback_ids"][0]["policy"], "signed");
    assert_eq!(full["metadata"]["room"], "a");
    let full_id = full["id"].as_str().unwrap().to_string();

    // Get, list, paginate.
    let (s, got) = c
        .admin("GET", &format!("/v1/live-streams/{id}"), None)
        .await;
    assert_eq!((s, got["id"].clone()), (StatusCode::OK, json!(id)));
    for _ in 0..3 {
        c.admin("POST", "/v1/live-streams", None).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cur) => format!("/v1/live-streams?limit=2&cursor={cur}"),
            None => "/v1/live-streams?limit=2".into(),
        };
        let (s, page) = c.admin("GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for x in page["data"].as_array().unwrap() {
            seen.push(x["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 5, "no repeats across pages");
    assert_eq!(
        c.admin("GET", "/v1/live-streams?limit=101", None).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.admin("GET", "/v1/live-streams?cursor=%%%", None).await.0,
        StatusCode::BAD_REQUEST
    );

    // Patch.
    let (s, p) = c
        .admin(
            "PATCH",
            &format!("/v1/live-streams/{id}"),
            Some(json!({"name": "renamed", "reconnect_window": 60})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        (p["name"].clone(), p["reconnect_window"].clone()),
        (json!("renamed"), json!(60))
    );
    let (_, p) = c
        .admin("GET", &format!("/v1/live-streams/{id}"), None)
        .await;
    assert_eq!(p["name"], "renamed", "stored");

    // Admission by key, lifecycle, reset, disable.
    let mut commands = c.control.commands();
    let a = c.control.admit(&key).await.unwrap();
    assert_eq!(a.live_stream_id, id);
    assert!(matches!(
        c.control.admit(&key).await,
        Err(AdmitError::AlreadyPublishing(_))
    ));
    assert!(matches!(
        c.control.admit("not-a-key").await,
        Err(AdmitError::UnknownKey)
    ));
    c.control.report(&id, Input::FirstSegment);
    assert_eq!(
        c.admin("GET", &format!("/v1/live-streams/{id}"), None)
            .await
            .1["status"],
        "active"
    );
    // Going active tells the media side to start its restreams.
    assert_eq!(
        commands.recv().await.unwrap(),
        Command::SimulcastChanged {
            live_stream_id: id.clone()
        }
    );
    let (s, reset) = c
        .admin(
            "POST",
            &format!("/v1/live-streams/{id}/reset-stream-key"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let new_key = reset["stream_key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_eq!(
        commands.recv().await.unwrap(),
        Command::DisconnectPublisher {
            live_stream_id: id.clone()
        }
    );
    c.control.report(&id, Input::PublisherLost);
    assert!(
        matches!(c.control.admit(&key).await, Err(AdmitError::UnknownKey)),
        "old key refused"
    );
    assert!(
        c.control.admit(&new_key).await.unwrap().resumed,
        "the new key resumes the broadcast"
    );
    let (s, d) = c
        .admin("POST", &format!("/v1/live-streams/{id}/disable"), None)
        .await;
    assert_eq!(
        (s, d["status"].clone()),
        (StatusCode::OK, json!("disabled"))
    );
    assert_eq!(
        commands.recv().await.unwrap(),
        Command::EndBroadcast {
            live_stream_id: id.clone()
        }
    );
    assert!(matches!(
        c.control.admit(&new_key).await,
        Err(AdmitError::Disabled(_))
    ));
    assert_eq!(
        c.admin("POST", &format!("/v1/live-streams/{id}/start"), None)
            .await
            .0,
        StatusCode::CONFLICT
    );
    let (_, e) = c
        .admin("POST", &format!("/v1/live-streams/{id}/enable"), None)
        .await;
    assert_eq!(e["status"], "idle");
    // Transitions are stored with their time (the writer is asynchronous).
    let mut tries = 0;
    loop {
        let t = c.control.store().transitions(&id).await.unwrap();
        let names: Vec<Status> = t.iter().map(|x| x.0).collect();
        if names.ends_with(&[Status::Disabled, Status::Idle]) {
            assert_eq!(names[0], Status::Idle);
            assert!(names.contains(&Status::Active) && names.contains(&Status::Reconnecting));
            break;
        }
        tries += 1;
        assert!(tries < 100, "{names:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The event log holds every change of the stream, in order, without secrets.
    let expected = [
        "live_stream.created",
        "live_stream.updated",
        "live_stream.connected",
        "live_stream.active",
        "live_stream.stream_key_reset",
        "live_stream.disconnected",
        "live_stream.reconnected",
        "live_stream.disabled",
        "live_stream.enabled",
    ];
    let events = all_events(&c, &format!("object_id={id}"), 2).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, expected, "{events:#?}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence"], json!(i + 1), "{e}");
        assert_eq!(e["object"], json!({"type": "live_stream", "id": id}));
        assert!(e["id"].as_str().unwrap().starts_with("evt_"));
        assert!(e["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(e["data"]["id"], json!(id));
        assert!(e["data"].get("stream_key").is_none() && e["data"].get("ingest").is_none());
        let text = e.to_string();
        assert!(
            !text.contains(&key) && !text.contains(&new_key),
            "a key in {text}"
        );
    }
    assert_eq!(
        events[1]["data"]["name"], "renamed",
        "data is the resource after"
    );
    assert_eq!(
        events[6]["data"]["status"], "active",
        "reconnected to active"
    );
    assert_eq!(events[8]["data"]["status"], "idle");
    // Filters: by type (with a list), and after an event id.
    let some = all_events(
        &c,
        &format!("object_id={id}&type=live_stream.disabled,live_stream.enabled"),
        25,
    )
    .await;
    assert_eq!(some.len(), 2, "{some:#?}");
    let third = events[2]["id"].as_str().unwrap();
    let rest = all_events(&c, &format!("object_id={id}&after={third}"), 25).await;
    assert_eq!(rest.as_slice(), &events[3..]);
    let (s, tail) = c.admin("GET", "/v1/events?after=now", None).await;
    assert_eq!((s, &tail["data"]), (StatusCode::OK, &json!([])), "{tail}");
    for bad in [
        "type=live_stream.bogus",
        "type=live_*",
        "object_id=nope",
        "after=evt_AAAAAAAAAAAAAAAAAAAAAA",
        "cursor=zzz",
        "limit=0",
        "color=red",
    ] {
        let (s, e) = c.admin("GET", &format!("/v1/events?{bad}"), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
    }

    // Preview without auto_start, then start.
    let k2 = full["stream_key"].as_str().unwrap();
    c.control.admit(k2).await.unwrap();
    c.control.report(&full_id, Input::FirstSegment);
    assert_eq!(
        c.admin("GET", &format!("/v1/live-streams/{full_id}"), None)
            .await
            .1["status"],
        "preview"
    );
    assert!(c.control.in_preview(&full_id));
    let (_, st) = c
        .admin("POST", &format!("/v1/live-streams/{full_id}/start"), None)
        .await;
    assert_eq!(st["status"], "active");
    let (_, done) = c
        .admin(
            "POST",
            &format!("/v1/live-streams/{full_id}/complete"),
            None,
        )
        .await;
    assert_eq!(done["status"], "idle");

    // Playback ids.
    let (s, p2) = c
        .admin(
            "POST",
            &format!("/v1/live-streams/{id}/playback-ids"),
            Some(json!({"policy": "signed"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p2}");
    let p2 = p2["id"].as_str().unwrap().to_string();
    assert_eq!(
        c.control
            .playback(&p2)
            .await
            .unwrap()
            .unwrap()
            .live_stream_id,
        id
    );
    assert_eq!(
        c.admin(
            "DELETE",
            &format!("/v1/live-streams/{id}/playback-ids/{p2}"),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.control.playback(&p2).await.unwrap(),
        None,
        "gone at once on this node"
    );
    assert_eq!(
        c.admin(
            "DELETE",
            &format!("/v1/live-streams/{id}/playback-ids/{p2}"),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // Signing keys and tokens.
    let (s, k) = c.admin("POST", "/v1/signing-keys", None).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(k["algorithm"], "EdDSA");
    assert!(
        k["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let kid = k["id"].as_str().unwrap().to_string();
    let (_, keys) = c.admin("GET", "/v1/signing-keys", None).await;
    assert!(
        keys["data"][0].get("private_key").is_none(),
        "shown only once"
    );
    assert_eq!(
        c.admin("GET", &format!("/v1/signing-keys/{kid}"), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        c.admin("DELETE", &format!("/v1/signing-keys/{kid}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.admin("GET", &format!("/v1/signing-keys/{kid}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let (s, rt) = c
        .admin(
            "POST",
            "/v1/api-tokens",
            Some(json!({"name": "dash", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rt}");
    let read = rt["token"].as_str().unwrap().to_string();
    let (_, wt) = c
        .admin(
            "POST",
            "/v1/api-tokens",
            Some(json!({"name": "app", "scopes": ["read", "write"]})),
        )
        .await;
    let write = wt["token"].as_str().unwrap().to_string();
    let (_, tokens) = c.admin("GET", "/v1/api-tokens", None).await;
    assert!(
        !tokens.to_string().contains(&read),
        "tokens are never listed"
    );
    assert_eq!(
        c.call("GET", "/v1/live-streams", Some(&read), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        c.call("POST", "/v1/live-streams", Some(&read), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call("POST", "/v1/live-streams", Some(&write), None)
            .await
            .0,
        StatusCode::CREATED
    );

    // Every route: 401 without a token, 403 for writes with a read token.
    for (i, (method, template)) in ROUTES.iter().enumerate() {
        let path = template.replace("{id}", &id).replace("{playback_id}", &pid);
        if *template == "/v1/openapi.json" {
            assert_eq!(c.call(method, &path, None, None).await.0, StatusCode::OK);
            continue;
        }
        let anon = Client {
            api: c.api.clone(),
            control: c.control.clone(),
            // One address per route, so the failure limit (20 a minute) never answers.
            ip: IpAddr::from([10, 9, 9, i as u8]),
        };
        let (s, e) = anon.call(method, &path, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path}: {e}");
        assert_eq!(e["error"]["code"], "unauthorized");
        if *method != "GET" {
            assert_eq!(
                c.call(method, &path, Some(&read), None).await.0,
                StatusCode::FORBIDDEN,
                "{method} {path}"
            );
        }
    }
    let rid = rt["id"].as_str().unwrap();
    assert_eq!(
        c.admin("DELETE", &format!("/v1/api-tokens/{rid}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.call("GET", "/v1/live-streams", Some(&read), None).await.0,
        StatusCode::UNAUTHORIZED,
        "deleted"
    );

    // Bad input: clear errors, nothing changed.
    let before = c.admin("GET", "/v1/live-streams?limit=100", None).await.1["data"]
        .as_array()
        .unwrap()
        .len();
    let bad = |body: &'static str| {
        c.raw(
            "POST",
            "/v1/live-streams",
            Some(ADMIN),
            Bytes::from_static(body.as_bytes()),
        )
    };
    let (s, e) = bad("{\"name\": ").await;
    assert_eq!(
        (s, e["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_json"))
    );
    let (s, e) = bad("{\"latency_mode\": \"fast\"}").await;
    assert_eq!(
        (s, e["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("latency_mode"))
    );
    let (s, e) = bad("{\"reconnect_window\": \"ten\"}").await;
    assert_eq!(
        (s, e["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("reconnect_window"))
    );
    let (s, _) = bad("{\"colour\": 1}").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, e) = bad("{\"reconnect_window\": 1801}").await;
    assert_eq!(
        (s, e["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("reconnect_window"))
    );
    let (s, _) = bad("[1, 2]").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, e) = c
        .raw(
            "POST",
            "/v1/live-streams",
            Some(ADMIN),
            Bytes::from(vec![b' '; 70 << 10]),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("body_too_large"))
    );
    assert_eq!(
        c.admin("GET", "/v1/live-streams/ls_nope", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.admin("GET", "/v1/live-streams/ls_AAAAAAAAAAAAAAAAAAAAAA", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.admin("GET", "/v1/live-streams/../../etc", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.admin("GET", "/v1/nothing", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.admin("PUT", "/v1/live-streams", None).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        c.admin("GET", &format!("/v1/live-streams/{id}?x=1"), None)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let after = c.admin("GET", "/v1/live-streams?limit=100", None).await.1["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "bad requests created nothing");

    // Delete.
    assert_eq!(
        c.admin("DELETE", &format!("/v1/live-streams/{id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.admin("GET", &format!("/v1/live-streams/{id}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert!(
        matches!(c.control.admit(&new_key).await, Err(AdmitError::UnknownKey)),
        "deleted key refused"
    );
    assert_eq!(c.control.playback(&pid).await.unwrap(), None);

    simulcast_targets(&c).await;

    // Failed attempts are limited per address; others are not harmed.
    let attacker = Client {
        api: c.api.clone(),
        control: c.control.clone(),
        ip: "10.1.2.3".parse().unwrap(),
    };
    let mut codes = Vec::new();
    for _ in 0..25 {
        codes.push(
            attacker
                .call("GET", "/v1/live-streams", Some("sgt_guess"), None)
                .await
                .0,
        );
    }
    assert_eq!(
        codes.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{codes:?}"
    );
    assert_eq!(
        attacker
            .call("GET", "/v1/live-streams", Some(ADMIN), None)
            .await
            .0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        c.admin("GET", "/v1/live-streams", None).await.0,
        StatusCode::OK
    );

    c.control.shutdown().await;
}

/// Simulcast targets: validation, the key shown once, the status reports of a pusher with
/// their events (one per status change), `idle` while the stream does not broadcast, delete.
async fn simulcast_targets(c: &Client) {
    let (_, ls) = c
        .admin(
            "POST",
            "/v1/live-streams",
            Some(json!({"name": "restreamed"})),
        )
        .await;
    let id = ls["id"].as_str().unwrap().to_string();
    let key = ls["stream_key"].as_str().unwrap().to_string();
    let base = format!("/v1/live-streams/{id}/simulcast-targets");
    // Refusals, each with its field.
    for (body, code, field) in [
        (
            json!({"url": "http://8.8.8.8/live", "stream_key": "k"}),
            "invalid_field",
            "url",
        ),
        (
            json!({"url": "rtmp://8.8.8.8", "stream_key": "k"}),
            "invalid_field",
            "url",
        ),
        (
            json!({"url": "rtmp://8.8.8.8/live", "stream_key": "a b"}),
            "invalid_field",
            "stream_key",
        ),
        (
            json!({"url": "rtmp://127.0.0.1/live", "stream_key": "k"}),
            "private_target",
            "url",
        ),
        (
            json!({"url": "rtmp://[::1]:1935/live", "stream_key": "k"}),
            "private_target",
            "url",
        ),
        (
            json!({"url": "rtmp://10.0.0.1/live", "stream_key": "k"}),
            "private_target",
            "url",
        ),
    ] {
        let (s, e) = c.admin("POST", &base, Some(body.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {e}");
        assert_eq!(
            (e["error"]["code"].as_str(), e["error"]["field"].as_str()),
            (Some(code), Some(field)),
            "{e}"
        );
    }
    let (s, _) = c
        .admin(
            "POST",
            &base,
            Some(json!({"url": "rtmp://8.8.8.8/live", "extra": 1, "stream_key": "k"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    assert_eq!(
        c.admin(
            "POST",
            "/v1/live-streams/ls_nope/simulcast-targets",
            Some(json!({"url": "rtmp://8.8.8.8/live", "stream_key": "k"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // Created: the key is in this answer only.
    let (s, t) = c
        .admin(
            "POST",
            &base,
            Some(json!({"url": "rtmp://8.8.8.8/live2/", "stream_key": "third-party-secret"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let tid = t["id"].as_str().unwrap().to_string();
    assert!(tid.starts_with("st_"));
    assert_eq!(t["stream_key"], "third-party-secret");
    assert_eq!(
        (t["url"].as_str(), t["status"].as_str()),
        (Some("rtmp://8.8.8.8/live2"), Some("idle"))
    );
    let (s, list) = c.admin("GET", &base, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("third-party-secret"), "{list}");
    let (s, one) = c.admin("GET", &format!("{base}/{tid}"), None).await;
    assert_eq!(
        (s, one["id"].as_str()),
        (StatusCode::OK, Some(tid.as_str()))
    );
    assert!(one.get("stream_key").is_none());
    assert_eq!(
        c.admin("GET", &format!("{base}/st_nope"), None).await.0,
        StatusCode::NOT_FOUND
    );

    // While broadcasting, the pusher's reports show, with an event per status change.
    c.control.admit(&key).await.unwrap();
    c.control.report(&id, Input::FirstSegment);
    for (status, error) in [
        ("starting", None),
        ("broadcasting", None),
        ("errored", Some("connection refused")),
        ("errored", Some("connection reset")), // a new error, no new event
        ("errored", Some("connection reset")), // nothing new at all
        ("broadcasting", None),
    ] {
        let st = sigma_control::simulcast::TargetStatus::from_name(status).unwrap();
        c.control.report_target(&tid, st, error.map(str::to_string));
    }
    c.control.flush().await;
    let (_, one) = c.admin("GET", &format!("{base}/{tid}"), None).await;
    assert_eq!(
        (one["status"].as_str(), &one["error"]),
        (Some("broadcasting"), &Value::Null)
    );
    c.control.report_target(
        &tid,
        sigma_control::simulcast::TargetStatus::Errored,
        Some("connection reset".into()),
    );
    c.control.flush().await;
    let (_, one) = c.admin("GET", &format!("{base}/{tid}"), None).await;
    assert_eq!(
        (one["status"].as_str(), one["error"].as_str()),
        (Some("errored"), Some("connection reset"))
    );
    let events = all_events(c, &format!("object_id={tid}"), 10).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "live_stream.simulcast_target.starting",
            "live_stream.simulcast_target.broadcasting",
            "live_stream.simulcast_target.errored",
            "live_stream.simulcast_target.broadcasting",
            "live_stream.simulcast_target.errored",
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["object"], json!({"type": "simulcast_target", "id": tid}));
        assert_eq!(e["sequence"], json!(i + 1));
        assert_eq!(e["data"]["live_stream_id"], json!(id));
        assert!(!e.to_string().contains("third-party-secret"), "{e}");
    }
    let typed = all_events(c, "type=live_stream.simulcast_target.*", 100).await;
    assert!(typed.len() >= 5);

    // At most ten per live stream.
    for _ in 1..10 {
        let (s, _) = c
            .admin(
                "POST",
                &base,
                Some(json!({"url": "rtmp://8.8.8.8/live", "stream_key": "k"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, e) = c
        .admin(
            "POST",
            &base,
            Some(json!({"url": "rtmp://8.8.8.8/live", "stream_key": "k"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_targets"))
    );

    // Deleting a target that is being pushed to says `idle` in its last event.
    assert_eq!(
        c.admin("DELETE", &format!("{base}/{tid}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.admin("DELETE", &format!("{base}/{tid}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    let events = all_events(c, &format!("object_id={tid}"), 10).await;
    assert_eq!(
        events.last().unwrap()["type"],
        "live_stream.simulcast_target.idle"
    );

    // Once the broadcast ends, the others show `idle` whatever was last reported.
    let other = c.admin("GET", &base, None).await.1["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.control.report_target(
        &other,
        sigma_control::simulcast::TargetStatus::Errored,
        Some("x".into()),
    );
    c.control.report(&id, Input::PublisherLost);
    c.control.report(&id, Input::BroadcastEnded);
    c.control.flush().await;
    let (_, list) = c.admin("GET", &base, None).await;
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "idle" && t["error"].is_null()),
        "{list}"
    );
    // Deleting the live stream deletes its targets.
    assert_eq!(
        c.admin("DELETE", &format!("/v1/live-streams/{id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert!(
        c.control
            .store()
            .simulcast_targets(&id)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backend_passes_the_suite() {
    let dir = std::env::temp_dir().join(format!("sigma-control-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    suite(&Store::sqlite_url(&dir.join("control.db"))).await;
    // Reopening applies no migration twice and keeps the data.
    let store = Store::open(&Store::sqlite_url(&dir.join("control.db")))
        .await
        .unwrap();
    assert!(!store.live_streams(None, 10).await.unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads SSE frames from `body` until `n` events arrived (or 5 s passed): (id, type, data).
async fn sse_events<B>(body: &mut B, n: usize) -> Vec<(String, String, Value)>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut text = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while out.len() < n {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events in 5 s: {text}", out.len()))
            .expect("the stream goes on")
            .unwrap();
        text.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(v).unwrap());
                }
            }
            if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
                out.push((id, kind, data));
            }
        }
    }
    out
}

async fn open_sse(c: &Client, query: &str, last_event_id: Option<&str>) -> Response<Body> {
    let mut req = Request::get(format!("/v1/events/stream{query}"))
        .header("authorization", format!("Bearer {ADMIN}"));
    if let Some(l) = last_event_id {
        req = req.header("last-event-id", l);
    }
    let r = c
        .api
        .handle(req.body(Full::new(Bytes::new())).unwrap(), c.ip)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    r
}

/// `GET /v1/events/stream`: the log, then new events as they happen; resumable with
/// `Last-Event-ID`; filtered like the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_follows_the_log_and_resumes() {
    let dir = std::env::temp_dir().join(format!("sigma-control-sse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = client(&Store::sqlite_url(&dir.join("control.db")), 30).await;
    let (_, a) = c.admin("POST", "/v1/live-streams", None).await;
    let a_id = a["id"].as_str().unwrap().to_string();
    c.admin("POST", &format!("/v1/live-streams/{a_id}/disable"), None)
        .await;

    let mut all = open_sse(&c, "", None).await.into_body();
    let mut only_b_types = open_sse(&c, "?type=live_stream.created", None)
        .await
        .into_body();
    let first = sse_events(&mut all, 2).await;
    assert_eq!(
        first.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        ["live_stream.created", "live_stream.disabled"]
    );
    assert_eq!(first[0].2["id"], json!(first[0].0), "data is the event");
    assert_eq!(first[0].2["object"]["id"], json!(a_id));
    // A new event arrives on the open stream, well before the poll interval.
    let started = std::time::Instant::now();
    let (_, b) = c.admin("POST", "/v1/live-streams", None).await;
    let b_id = b["id"].as_str().unwrap().to_string();
    let next = sse_events(&mut all, 1).await;
    assert!(started.elapsed() < api::SSE_POLL, "{:?}", started.elapsed());
    assert_eq!(next[0].1, "live_stream.created");
    assert_eq!(next[0].2["object"]["id"], json!(b_id));
    let created = sse_events(&mut only_b_types, 2).await;
    assert!(created.iter().all(|e| e.1 == "live_stream.created"));
    // Resuming after the first event gives the rest, in order.
    let mut resumed = open_sse(&c, "", Some(&first[0].0)).await.into_body();
    let rest = sse_events(&mut resumed, 2).await;
    assert_eq!(rest[0].0, first[1].0);
    assert_eq!(rest[1].0, next[0].0);
    // `after=now`: only what happens from now on.
    let mut new_only = open_sse(&c, "?after=now", None).await.into_body();
    c.admin("POST", &format!("/v1/live-streams/{b_id}/disable"), None)
        .await;
    let only = sse_events(&mut new_only, 1).await;
    assert_eq!(only[0].1, "live_stream.disabled");
    assert_eq!(only[0].2["object"]["id"], json!(b_id));
    // An unknown Last-Event-ID is refused.
    let req = Request::get("/v1/events/stream")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("last-event-id", "evt_AAAAAAAAAAAAAAAAAAAAAA")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        c.api.handle(req, c.ip).await.status(),
        StatusCode::BAD_REQUEST
    );
    // Shutting the control plane down ends open streams.
    c.control.shutdown().await;
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(f) = all.frame().await {
            f.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "the stream ends at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server that stopped without ending its broadcast leaves a live status in the store; the
/// next start admits the stream's publisher again, from `idle`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_live_status_does_not_lock_the_stream_out() {
    let dir = std::env::temp_dir().join(format!("sigma-control-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = Store::sqlite_url(&dir.join("control.db"));
    let before = client(&url, 20).await;
    let (_, ls) = before.admin("POST", "/v1/live-streams", None).await;
    let (id, key) = (
        ls["id"].as_str().unwrap().to_string(),
        ls["stream_key"].as_str().unwrap().to_string(),
    );
    before.control.admit(&key).await.unwrap();
    before.control.report(&id, Input::FirstSegment);
    before.control.shutdown().await; // the status write lands; no BroadcastEnded follows
    drop(before);
    let after = client(&url, 21).await;
    let (_, stored) = after
        .admin("GET", &format!("/v1/live-streams/{id}"), None)
        .await;
    assert_eq!(
        stored["status"], "active",
        "the stale status is what was stored"
    );
    let a = after.control.admit(&key).await.expect("admitted again");
    assert!(!a.resumed, "a new broadcast, not a resumption");
    let (_, now) = after
        .admin("GET", &format!("/v1/live-streams/{id}"), None)
        .await;
    assert_eq!(now["status"], "connected");
    after.control.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_passes_the_suite_and_two_nodes_share_it() {
    let pg = postgres::Postgres::start();
    suite(&pg.database("suite")).await;

    // Two nodes on one database see each other's live streams.
    let url = pg.database("shared");
    let a = client(&url, 10).await;
    let b = client(&url, 11).await;
    let (_, ls) = a
        .admin("POST", "/v1/live-streams", Some(json!({"name": "from a"})))
        .await;
    let id = ls["id"].as_str().unwrap();
    let (s, seen) = b
        .admin("GET", &format!("/v1/live-streams/{id}"), None)
        .await;
    assert_eq!((s, seen["name"].clone()), (StatusCode::OK, json!("from a")));
    // A key reset on one node is refused at the other's admission.
    let old = ls["stream_key"].as_str().unwrap();
    a.admin(
        "POST",
        &format!("/v1/live-streams/{id}/reset-stream-key"),
        None,
    )
    .await;
    assert!(matches!(
        b.control.admit(old).await,
        Err(AdmitError::UnknownKey)
    ));
    // Both agree on the media-token secret.
    let pid = ls["playback_ids"][0]["id"].as_str().unwrap();
    let t = a
        .control
        .media_token(pid, sigma_control::playback::Audience::View);
    assert!(b.control.verify_media_token(pid, &t).is_some());
}

#[test]
fn every_route_is_in_the_openapi_document_and_it_validates() {
    let doc = api::openapi();
    let v: Value = serde_json::to_value(&doc).unwrap();
    assert_eq!(v["openapi"].as_str().unwrap().get(..3), Some("3.1"));
    for (method, template) in ROUTES {
        let op = &v["paths"][template][method.to_lowercase()];
        assert!(
            op.is_object(),
            "{method} {template} missing from openapi.json"
        );
    }
    let documented: usize = v["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "every documented operation is routed"
    );
    // An independent validator (openapi-spec-validator, from PyPI, installed by the scripts).
    let path = std::env::temp_dir().join(format!("sigma-openapi-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("python3");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
