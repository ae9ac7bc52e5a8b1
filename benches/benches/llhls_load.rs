//! LL-HLS load bench: 5,000 concurrent blocking playlist requests on one live stream.
//!
//! A real-time synthetic 2.5 Mbit/s stream (ultra-low mode: 0.334 s parts) is published into an
//! origin served by hyper on 127.0.0.1 (server runtime: 2 worker threads). 5,000 HTTP/1.1
//! keep-alive clients (their own 2-thread runtime) each send `?_HLS_msn=M&_HLS_part=P` for a part
//! two ahead of the preload hint, so every request is parked before the part exists. A probe
//! waiting on the origin directly marks the moment the part is published; each client's answer
//! time minus that moment is its wake-to-answer delay. Bounded: `ROUNDS` rounds, each with a
//! 10 s limit, 5,000 clients.
//!
//! Memory per waiting request is the growth of the process's resident set while all requests
//! are parked, over 5,000: (a) origin-level waiters without HTTP, (b) HTTP requests, client and
//! server side together (an upper bound for the server's share).
//!
//! Run: `ulimit -n 20000; cargo bench -p sigma-benches --bench llhls_load`
//! (`LLHLS_LOAD_H2=1` for HTTP/2 over 50 connections, `LLHLS_LOAD_ROUNDS=N` for N parts).

use hyper_util::rt::{TokioExecutor, TokioIo};
use sigma_benches::{SyntheticStream, VIDEO, stream_info};
use sigma_core::bus::{self, Window};
use sigma_llhls::directive::Directives;
use sigma_llhls::{HttpService, LatencyMode, Origin, PublishOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

const CLIENTS: usize = 5000;
const ROUNDS: usize = 10;
const STREAM: &str = "load";
const H2_CONNECTIONS: usize = 50;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The part after the preload hint's: `(msn, part)` of `#EXT-X-PRELOAD-HINT` plus `ahead`.
async fn part_ahead(origin: &Origin, ahead: u64) -> (u64, u64) {
    let text = origin
        .media_playlist(STREAM, "video", Directives::default(), false)
        .await
        .expect("playlist")
        .body;
    let text = String::from_utf8_lossy(&text);
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .expect("preload hint");
    let name = hint.rsplit('/').next().expect("file name");
    let (m, i) = name
        .trim_start_matches("part-")
        .trim_end_matches(".m4s\"")
        .split_once('.')
        .expect("msn.part");
    (
        m.parse().expect("msn"),
        i.parse::<u64>().expect("part") + ahead,
    )
}

/// One kept-alive HTTP/1.1 connection: per round, one request, one response read by
/// `Content-Length`, the arrival time reported.
async fn client(
    mut tcp: tokio::net::TcpStream,
    mut rounds: watch::Receiver<Option<(usize, Arc<str>)>>,
    done: mpsc::Sender<(usize, Option<Instant>)>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while rounds.changed().await.is_ok() {
        let Some((round, path)) = rounds.borrow_and_update().clone() else {
            return;
        };
        let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
        let answered = async {
            tcp.write_all(req.as_bytes()).await.ok()?;
            let mut have = 0;
            loop {
                let n = tcp.read(&mut buf[have..]).await.ok()?;
                if n == 0 {
                    return None;
                }
                have += n;
                let head_end = buf[..have].windows(4).position(|w| w == b"\r\n\r\n")?;
                let head = std::str::from_utf8(&buf[..head_end]).ok()?;
                if !head.starts_with("HTTP/1.1 200") {
                    return None;
                }
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))?
                    .trim()
                    .parse()
                    .ok()?;
                if have >= head_end + 4 + len {
                    return Some(Instant::now());
                }
                if have == buf.len() {
                    return None;
                }
            }
        }
        .await;
        if done.send((round, answered)).await.is_err() {
            return;
        }
    }
}

/// One HTTP/2 stream slot on a shared connection: per round, one request, the arrival time
/// of the complete response reported.
async fn h2_client(
    mut send: hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    mut rounds: watch::Receiver<Option<(usize, Arc<str>)>>,
    done: mpsc::Sender<(usize, Option<Instant>)>,
) {
    use http_body_util::BodyExt;
    while rounds.changed().await.is_ok() {
        let Some((round, path)) = rounds.borrow_and_update().clone() else {
            return;
        };
        let answered = async {
            let req = http::Request::get(format!("http://127.0.0.1{path}"))
                .body(http_body_util::Empty::new())
                .ok()?;
            let resp = send.send_request(req).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            resp.into_body().collect().await.ok()?;
            Some(Instant::now())
        }
        .await;
        if done.send((round, answered)).await.is_err() {
            return;
        }
    }
}

fn main() {
    // `LLHLS_LOAD_H2=1`: the same 5,000 requests as streams of 50 HTTP/2 (h2c) connections,
    // as browsers and CDN edges send them (Apple requires HTTP/2 for LL-HLS).
    let h2 = std::env::var_os("LLHLS_LOAD_H2").is_some();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()
        .expect("client runtime");

    let origin = Origin::new();
    let stop = Arc::new(AtomicBool::new(false));
    let addr: SocketAddr = server_rt.block_on(async {
        let (mut producer, subscriber) = bus::channel(Window::default());
        producer.set_info(stream_info());
        let publication = origin
            .publish(
                STREAM,
                &subscriber,
                PublishOptions::new(LatencyMode::UltraLow),
            )
            .expect("publish");
        std::mem::forget(publication);
        let stop = stop.clone();
        tokio::spawn(async move {
            // Real-time feeder.
            let mut stream = SyntheticStream::new(60);
            let start = tokio::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let f = stream.next_frame();
                let secs = if f.track() == VIDEO {
                    f.dts() as f64 / 90_000.0
                } else {
                    f.dts() as f64 / 48_000.0
                };
                tokio::time::sleep_until(start + Duration::from_secs_f64(secs)).await;
                producer.push(f).expect("push");
            }
            producer.finish();
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let svc = HttpService::new(origin.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let svc = svc.clone();
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        addr
    });

    // Wait for the first segment.
    server_rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(20),
            origin.media_playlist(STREAM, "video", Directives::default(), false),
        )
        .await
        .expect("first segment in time")
        .expect("playlist");
    });

    // (a) Origin-level waiters, no HTTP.
    let (per_waiter_origin, answered_a, origin_spread) = server_rt.block_on(async {
        let before = rss_kib();
        let (msn, part) = part_ahead(&origin, 4).await;
        let d = Directives {
            msn: Some(msn),
            part: Some(part),
            ..Directives::default()
        };
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let o = origin.clone();
                tokio::spawn(async move {
                    o.media_playlist(STREAM, "video", d, false)
                        .await
                        .ok()
                        .map(|_| Instant::now())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let during = rss_kib();
        let mut done = Vec::new();
        for t in tasks {
            if let Ok(Some(at)) = t.await {
                done.push(at);
            }
        }
        let spread = match (done.iter().min(), done.iter().max()) {
            (Some(a), Some(b)) => b.saturating_duration_since(*a),
            _ => Duration::ZERO,
        };
        (
            (during.saturating_sub(before) as f64 * 1024.0 / CLIENTS as f64),
            done.len(),
            spread,
        )
    });

    // HTTP/1.1 clients: one kept-alive connection each, driven round by round. The client is
    // deliberately minimal (write a request, read one response by Content-Length) so that it
    // takes as little of the 2 cores from the server as possible.
    let (round_tx, round_rx) = watch::channel::<Option<(usize, Arc<str>)>>(None);
    let (done_tx, mut done_rx) = mpsc::channel::<(usize, Option<Instant>)>(CLIENTS * 2);
    client_rt.block_on(async {
        if h2 {
            for _ in 0..H2_CONNECTIONS {
                let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                tcp.set_nodelay(true).expect("nodelay");
                let (send, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                        .await
                        .expect("h2 handshake");
                tokio::spawn(conn);
                for _ in 0..CLIENTS / H2_CONNECTIONS {
                    tokio::spawn(h2_client(send.clone(), round_rx.clone(), done_tx.clone()));
                }
            }
            return;
        }
        for _ in 0..CLIENTS / 250 {
            let batch: Vec<_> = (0..250)
                .map(|_| tokio::spawn(tokio::net::TcpStream::connect(addr)))
                .collect();
            for b in batch {
                let tcp = b.await.expect("connect task").expect("connect");
                tcp.set_nodelay(true).expect("nodelay");
                tokio::spawn(client(tcp, round_rx.clone(), done_tx.clone()));
            }
        }
    });
    drop(done_tx);

    let mut delays: Vec<Duration> = Vec::new();
    let mut round_max = Vec::new();
    let mut per_request_http = 0.0;
    let mut failures = 0usize;
    let mut not_parked_rounds = 0usize;
    // `LLHLS_LOAD_ROUNDS` shortens or lengthens the run (e.g. 0 to profile the origin phase).
    let rounds: usize = std::env::var("LLHLS_LOAD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS);
    for round in 0..rounds {
        // Six parts past the hint (~2 s ahead, within the Advance Part Limit of 8.98 parts):
        // every request is parked before the part exists.
        let (msn, part) = server_rt.block_on(part_ahead(&origin, 6));
        let d = Directives {
            msn: Some(msn),
            part: Some(part),
            ..Directives::default()
        };
        // The probe waits on its own thread, so it wakes the moment the part is published
        // rather than somewhere in the order of the 5,000 woken requests.
        let o = origin.clone();
        let probe = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("probe runtime")
                .block_on(async move {
                    let _ = o.media_playlist(STREAM, "video", d, false).await;
                    Instant::now()
                })
        });
        let idle = rss_kib();
        let path: Arc<str> =
            format!("/live/{STREAM}/video.m3u8?_HLS_msn={msn}&_HLS_part={part}").into();
        round_tx.send_replace(Some((round, path)));
        // Wait until all requests (and the probe) are parked at the origin.
        let parked_by = Instant::now() + Duration::from_secs(5);
        while origin.waiting(STREAM) < CLIENTS + 1 && Instant::now() < parked_by {
            std::thread::sleep(Duration::from_millis(5));
        }
        if origin.waiting(STREAM) < CLIENTS + 1 {
            not_parked_rounds += 1;
        }
        if round == 0 {
            per_request_http = rss_kib().saturating_sub(idle) as f64 * 1024.0 / CLIENTS as f64;
        }
        let woke = probe.join().expect("probe");
        let answers = client_rt.block_on(async {
            let mut v = Vec::with_capacity(CLIENTS);
            while v.len() < CLIENTS {
                match tokio::time::timeout(Duration::from_secs(10), done_rx.recv()).await {
                    Ok(Some((r, at))) if r == round => v.push(at),
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            v
        });
        failures += CLIENTS - answers.len();
        let mut max = Duration::ZERO;
        for at in answers {
            match at {
                Some(at) => {
                    let d = at.saturating_duration_since(woke);
                    max = max.max(d);
                    delays.push(d);
                }
                None => failures += 1,
            }
        }
        round_max.push(max);
    }
    stop.store(true, Ordering::Relaxed);

    delays.sort();
    let pct = |p: f64| {
        delays
            .get(((delays.len() as f64 * p) as usize).min(delays.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let transport = if h2 {
        format!("HTTP/2 (h2c) over {H2_CONNECTIONS} connections")
    } else {
        format!("HTTP/1.1 over {CLIENTS} connections")
    };
    println!(
        "llhls_load: {CLIENTS} concurrent blocking playlist requests, {rounds} parts, {transport}, loopback, 2 server + 2 client threads"
    );
    println!(
        "  wake-to-answer: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} answers, {failures} failed)",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        delays.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        delays.len()
    );
    println!(
        "  per-round max (ms): {:?}",
        round_max
            .iter()
            .map(|d| (d.as_secs_f64() * 1e4).round() / 10.0)
            .collect::<Vec<_>>()
    );
    println!(
        "  memory per waiting request: {:.0} B origin-level ({answered_a}/{CLIENTS} answered), {:.0} B per parked HTTP request (client + server, upper bound)",
        per_waiter_origin, per_request_http
    );
    println!(
        "  origin only (no HTTP): {CLIENTS} parked waiters answered within {:.1} ms of each other",
        origin_spread.as_secs_f64() * 1e3
    );
    println!("  rounds where not every request was parked before the part: {not_parked_rounds}");
    let all_within = not_parked_rounds == 0
        && failures == 0
        && round_max.iter().all(|m| *m <= Duration::from_millis(50));
    println!("  all answered within 50 ms of each new part: {all_within}");
}
