//! Control-plane costs: JWT verification per token, the publish admission lookup by stream
//! key, and the API's create and get (p99 latency and requests/s) on SQLite and PostgreSQL.
//!
//! `cargo bench -p sigma-control --bench control`. The API part starts a throwaway
//! PostgreSQL cluster like the tests do, and drives the hyper service in process with 8
//! concurrent clients, so the figures are the API and store, not a socket.

#[path = "../tests/postgres.rs"]
mod postgres;

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::Request;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::SeedableRng;
use sigma_control::Store;
use sigma_control::api::Api;
use sigma_control::control::{Control, ControlConfig};
use sigma_control::model::LatencyMode;
use sigma_control::playback::{new_signing_key, verify_jwt};
use std::time::{Duration, Instant};

const ADMIN: &str = "sgt_bench-admin-token-0000000000000000000000000";

fn jwt(c: &mut Criterion) {
    let (pem, public) = new_signing_key(&mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some("key_1".into());
    let token = jsonwebtoken::encode(
        &h,
        &serde_json::json!({"sub": "pb_1", "aud": "v", "exp": 2_000_000_000i64}),
        &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap();
    c.bench_function("jwt_verify", |b| {
        b.iter(|| verify_jwt(&token, "pb_1", |_| Some(public), 1_800_000_000).unwrap())
    });
}

async fn control(url: &str) -> Control {
    let store = Store::open(url).await.unwrap();
    Control::start(
        store,
        ControlConfig {
            rtmp_base: "rtmp://127.0.0.1:1935/live".into(),
            http_base: "http://127.0.0.1:8080".into(),
            default_latency: LatencyMode::Low,
            ladders: vec![],
            admin_token: Some(ADMIN.into()),
            webhooks: sigma_control::delivery::WebhookSettings::default(),
            simulcast_allow_private: false,
        },
        Box::new(rand::rngs::StdRng::seed_from_u64(2)),
    )
    .await
    .unwrap()
}

async fn call(api: &Api, method: &str, path: &str) -> (u16, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = api.handle(req, "127.0.0.1".parse().unwrap()).await;
    let s = r.status().as_u16();
    (s, r.into_body().collect().await.unwrap().to_bytes())
}

fn admission(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("sigma-bench-admit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ctl = rt.block_on(control(&Store::sqlite_url(&dir.join("c.db"))));
    let api = Api::new(ctl.clone());
    let mut key = String::new();
    rt.block_on(async {
        for _ in 0..1000 {
            let (_, b) = call(&api, "POST", "/v1/live-streams").await;
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            key = v["stream_key"].as_str().unwrap().to_string();
        }
    });
    c.bench_function("admission_lookup_sqlite_1000_streams", |b| {
        b.iter(|| {
            rt.block_on(ctl.store().live_stream_by_key(&key))
                .unwrap()
                .unwrap()
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn api_load(name: &str, url: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let api = Api::new(control(url).await);
        for (what, n) in [("create", 2000usize), ("get", 5000)] {
            let mut ids = Vec::new();
            if what == "get" {
                let (_, b) = call(&api, "GET", "/v1/live-streams?limit=100").await;
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                ids = v["data"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect();
            }
            let start = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..8 {
                let api = api.clone();
                let ids = ids.clone();
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    for i in (w..n).step_by(8) {
                        let t = Instant::now();
                        let (s, _) = if what == "create" {
                            call(&api, "POST", "/v1/live-streams").await
                        } else {
                            call(&api, "GET", &format!("/v1/live-streams/{}", ids[i % ids.len()])).await
                        };
                        assert!(s == 200 || s == 201, "{s}");
                        lat.push(t.elapsed());
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            let secs = start.elapsed().as_secs_f64();
            let p50 = percentile(&mut all, 0.5);
            let p99 = percentile(&mut all, 0.99);
            println!(
                "api_{what}_{name}: {n} requests, 8 clients: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
                n as f64 / secs,
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    });
}

criterion_group!(benches, jwt, admission);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let dir = std::env::temp_dir().join(format!("sigma-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    api_load("sqlite", &Store::sqlite_url(&dir.join("api.db")));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = postgres::Postgres::start();
    api_load("postgres", &pg.database("bench"));
}
