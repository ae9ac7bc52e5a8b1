//! Webhook delivery: the delay from an event's commit to its arrival at each of 10 healthy
//! receivers (p50, p99, max), deliveries per second, and the process CPU time per delivery;
//! then the same with 10 more endpoints that accept connections and never answer.
//!
//! `cargo bench -p sigma-control --bench webhooks` (SQLite; add `-- --postgres` for a
//! throwaway PostgreSQL cluster as well). Events are live stream creations through the API
//! service in process, paced at `RATE` per second; the receivers are hyper servers on
//! loopback that answer 204 and record when each event arrived.

#[path = "../tests/postgres.rs"]
mod postgres;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use sigma_control::Store;
use sigma_control::api::Api;
use sigma_control::control::{Control, ControlConfig};
use sigma_control::delivery::WebhookSettings;
use sigma_control::model::LatencyMode;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ADMIN: &str = "sgt_bench-admin-token-0000000000000000000000000";
const EVENTS: usize = 1000;
const HEALTHY: usize = 10;
const DEAD: usize = 10;
const RATE: f64 = 100.0;

fn unix_ms_f() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// Arrivals: (receiver, event id) → Unix ms.
type Arrivals = Arc<Mutex<HashMap<(usize, String), f64>>>;

async fn receiver(n: usize, arrivals: Arrivals) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let arrivals = arrivals.clone();
                    async move {
                        let at = unix_ms_f();
                        let id = req
                            .headers()
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let _ = req.into_body().collect().await;
                        arrivals.lock().unwrap().entry((n, id)).or_insert(at);
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = http::StatusCode::NO_CONTENT;
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// Accepts connections and never answers.
async fn dead() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    addr
}

async fn call(api: &Api, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let r = api.handle(req, "127.0.0.1".parse().unwrap()).await;
    let s = r.status().as_u16();
    let b = r.into_body().collect().await.unwrap().to_bytes();
    (
        s,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

fn cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

async fn run(label: &str, url: &str, dead_endpoints: usize) {
    let store = Store::open(url).await.unwrap();
    let control = Control::start(
        store,
        ControlConfig {
            rtmp_base: "rtmp://127.0.0.1:1935/live".into(),
            http_base: "http://127.0.0.1:8080".into(),
            default_latency: LatencyMode::Low,
            ladders: vec![],
            admin_token: Some(ADMIN.into()),
            webhooks: WebhookSettings {
                allow_private: true,
                ..Default::default()
            },
            simulcast_allow_private: false,
        },
        Box::new(rand::rngs::StdRng::seed_from_u64(3)),
    )
    .await
    .unwrap();
    let api = Api::new(control.clone());
    let arrivals: Arrivals = Arc::default();
    for n in 0..HEALTHY {
        let a = receiver(n, arrivals.clone()).await;
        let body =
            format!(r#"{{"url": "http://{a}/hook", "event_types": ["live_stream.created"]}}"#);
        assert_eq!(call(&api, "POST", "/v1/webhooks", &body).await.0, 201);
    }
    for _ in 0..dead_endpoints {
        let a = dead().await;
        let body =
            format!(r#"{{"url": "http://{a}/hook", "event_types": ["live_stream.created"]}}"#);
        assert_eq!(call(&api, "POST", "/v1/webhooks", &body).await.0, 201);
    }
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let mut created: Vec<(String, f64)> = Vec::with_capacity(EVENTS);
    let gap = Duration::from_secs_f64(1.0 / RATE);
    for i in 0..EVENTS {
        let due = started + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (s, ls) = call(&api, "POST", "/v1/live-streams", "{}").await;
        assert_eq!(s, 201);
        created.push((ls["id"].as_str().unwrap().to_string(), unix_ms_f()));
    }
    // Map each stream to its created event's id and commit time.
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().unwrap().len() < EVENTS * HEALTHY {
        assert!(
            Instant::now() < deadline,
            "only {} of {} deliveries",
            arrivals.lock().unwrap().len(),
            EVENTS * HEALTHY
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let mut ids: HashMap<String, f64> = HashMap::new();
    let mut after = String::new();
    loop {
        let path = format!("/v1/events?type=live_stream.created&limit=100{after}");
        let (_, page) = call(&api, "GET", &path, "").await;
        for e in page["data"].as_array().unwrap() {
            // The event's own timestamp is its commit time (ms), as the receivers see it.
            let ts = e["timestamp"].as_str().unwrap();
            let t = time_ms(ts);
            ids.insert(e["id"].as_str().unwrap().to_string(), t);
        }
        match page["next_cursor"].as_str() {
            Some(c) => after = format!("&cursor={c}"),
            None => break,
        }
    }
    let mut delays: Vec<f64> = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter_map(|((_, id), at)| ids.get(id).map(|t| at - t))
        .collect();
    delays.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| delays[((delays.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{label}: {EVENTS} events x {HEALTHY} healthy endpoints (+{dead_endpoints} dead), {RATE} events/s: \
         delay p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.0} deliveries/s; CPU {:.0} µs per delivery (process, incl. the API and receivers)",
        q(0.5),
        q(0.99),
        delays.last().unwrap(),
        delays.len() as f64 / elapsed,
        cpu / delays.len() as f64 * 1e6,
    );
    drop(created);
    control.shutdown().await;
}

fn time_ms(rfc3339: &str) -> f64 {
    sigma_control::model::parse_rfc3339(rfc3339).unwrap() as f64
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let postgres = std::env::args().any(|a| a == "--postgres");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for dead_endpoints in [0, DEAD] {
            let dir = std::env::temp_dir().join(format!(
                "sigma-bench-webhooks-{}-{dead_endpoints}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            run(
                "SQLite",
                &Store::sqlite_url(&dir.join("c.db")),
                dead_endpoints,
            )
            .await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        if postgres {
            let pg = postgres::Postgres::start();
            for dead_endpoints in [0, DEAD] {
                let url = pg.database(&format!("bench{dead_endpoints}"));
                run("PostgreSQL", &url, dead_endpoints).await;
            }
        }
    });
}
