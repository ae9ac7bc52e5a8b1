//! LL-HLS load bench: 5,000 concurrent blocking playlist requests on one live stream.
//!
//! A real-time synthetic 2.5 Mbit/s stream (ultra-low mode: 0.334 s parts) is published into an
//! origin served by hyper on 127.0.0.1 (server runtime: 2 worker threads). A load generator in a
//! second process (this binary again, started under `nice -n 19`) holds 5,000 HTTP/1.1
//! keep-alive connections; each round, every connection sends `?_HLS_msn=M&_HLS_part=P` for a
//! part six ahead of the preload hint, so every request is parked before the part exists.
//!
//! Timing. A probe waiting on the origin directly marks the moment the part is published (the
//! earlier of the probe's wake-up and the first answer's arrival, so a late probe can only make
//! delays look longer). Two times are taken for each answer:
//! - **answered**: the kernel's receive timestamp (`SO_TIMESTAMPNS`) of the response's last
//!   bytes on the client's socket: the moment the server's write delivered it over loopback;
//! - **read**: when the load generator had read the whole response. The generator shares the
//!   2 cores with the server; at nice 19 it reads mostly after the server's burst, so this
//!   includes its own queueing. `LLHLS_LOAD_CLIENT_NICE=0` runs it at normal priority.
//!
//! The target (all 5,000 answered within 50 ms of each new part) is judged on **answered**:
//! a real audience is on other machines, and the loopback receive path is still paid by the
//! server's cores.
//!
//! Memory per waiting request is the growth of the server process's resident set while all
//! requests are parked, over 5,000: (a) origin-level waiters without HTTP, (b) parked HTTP
//! requests (connection, hyper state, request task).
//!
//! Bounded: `ROUNDS` rounds (`LLHLS_LOAD_ROUNDS=N`), each with a 10 s limit, 5,000 clients.
//! `LLHLS_LOAD_H2=1` sends the same requests as streams of 50 HTTP/2 (h2c) connections (the
//! answer time is then the receive timestamp of the read that completed the response, an
//! upper bound). `LLHLS_LOAD_SKIP=1` asks for delta playlists
//! (`_HLS_skip=YES`), as hls.js does.
//!
//! Run: `ulimit -n 20000; cargo bench -p sigma-benches --bench llhls_load`

use hyper_util::rt::{TokioExecutor, TokioIo};
use sigma_benches::{SyntheticStream, VIDEO, stream_info};
use sigma_core::bus::{self, Window};
use sigma_llhls::directive::Directives;
use sigma_llhls::{HttpService, LatencyMode, Origin, PublishOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

const CLIENTS: usize = 5000;
const ROUNDS: usize = 10;
const STREAM: &str = "load";
const H2_CONNECTIONS: usize = 50;
const ROUND_LIMIT: Duration = Duration::from_secs(10);

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

/// Wall-clock nanoseconds since the Unix epoch (the clock of `SO_TIMESTAMPNS`).
fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn main() {
    let h2 = std::env::var_os("LLHLS_LOAD_H2").is_some();
    match std::env::var("LLHLS_LOAD_CLIENT") {
        Ok(addr) => load_generator(addr.parse().expect("LLHLS_LOAD_CLIENT address"), h2),
        Err(_) => server(h2),
    }
}

// ---------------------------------------------------------------------------------------------
// The load generator (second process).

/// Each client's answer in the current round, in wall-clock ns: when the kernel received the
/// response's last bytes (0: unknown) and when the client had read it all (0: none yet or
/// failed). Clients write their own slots, so recording costs no lock or wake-up.
struct Slots {
    round: AtomicUsize,
    kernel: Vec<AtomicU64>,
    read: Vec<AtomicU64>,
    count: AtomicUsize,
}

impl Slots {
    fn new(n: usize) -> Self {
        Slots {
            round: AtomicUsize::new(usize::MAX),
            kernel: (0..n).map(|_| AtomicU64::new(0)).collect(),
            read: (0..n).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicUsize::new(0),
        }
    }

    /// Clears the slots for `round`, before its requests are sent.
    fn start(&self, round: usize) {
        for a in self.kernel.iter().chain(&self.read) {
            a.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.round.store(round, Ordering::Release);
    }

    /// Records client `me`'s answer: `(kernel, read)` times, or `None` for a failure.
    fn record(&self, me: usize, round: usize, answer: Option<(u64, u64)>) {
        if self.round.load(Ordering::Acquire) != round {
            return;
        }
        if let Some((kernel, read)) = answer {
            self.kernel[me].store(kernel, Ordering::Relaxed);
            self.read[me].store(read, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Release);
    }

    /// `ANSWERS {round} {kernel},{read} …`, one pair per client.
    fn line(&self, round: usize) -> String {
        let mut s = format!("ANSWERS {round}");
        for (k, r) in self.kernel.iter().zip(&self.read) {
            s.push_str(&format!(
                " {},{}",
                k.load(Ordering::Relaxed),
                r.load(Ordering::Relaxed)
            ));
        }
        s
    }
}

type Rounds = watch::Receiver<Option<(usize, Arc<str>)>>;

/// Reads once into `buf[have..]`, taking the kernel's receive timestamp of the data if the
/// socket gave one.
fn recv_stamped(fd: std::os::fd::RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Option<u64>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
        .map_err(std::io::Error::from)?;
    let mut stamp = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                stamp = Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64);
            }
        }
    }
    Ok((msg.bytes, stamp))
}

/// One kept-alive HTTP/1.1 connection: per round, one request, one response read by
/// `Content-Length`.
async fn client(tcp: tokio::net::TcpStream, mut rounds: Rounds, slots: Arc<Slots>, me: usize) {
    use std::os::fd::AsRawFd;
    use tokio::io::{AsyncWriteExt, Interest};
    let mut tcp = tcp;
    let mut buf = vec![0u8; 64 * 1024];
    while rounds.changed().await.is_ok() {
        let Some((round, path)) = rounds.borrow_and_update().clone() else {
            return;
        };
        let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
        let answer = async {
            tcp.write_all(req.as_bytes()).await.ok()?;
            let mut have = 0;
            let mut kernel = 0;
            loop {
                tcp.readable().await.ok()?;
                let fd = tcp.as_raw_fd();
                let (n, stamp) =
                    match tcp.try_io(Interest::READABLE, || recv_stamped(fd, &mut buf[have..])) {
                        Ok(r) => r,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => return None,
                    };
                if n == 0 {
                    return None;
                }
                have += n;
                kernel = stamp.unwrap_or(kernel);
                let Some(head_end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
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
                    return Some((kernel, wall_ns()));
                }
                if have == buf.len() {
                    return None;
                }
            }
        }
        .await;
        slots.record(me, round, answer);
    }
}

/// A TCP stream that reads with `recvmsg` and keeps the kernel receive timestamp of the
/// latest read: for HTTP/2, where hyper owns the socket, a response completed by a read
/// arrived no later than that read's timestamp (an upper bound, so delays are not flattered).
struct Stamped {
    tcp: tokio::net::TcpStream,
    last: Arc<AtomicU64>,
}

impl tokio::io::AsyncRead for Stamped {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::os::fd::AsRawFd;
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if let Err(e) = std::task::ready!(this.tcp.poll_read_ready(cx)) {
                return Poll::Ready(Err(e));
            }
            let fd = this.tcp.as_raw_fd();
            let dst = buf.initialize_unfilled();
            match this
                .tcp
                .try_io(tokio::io::Interest::READABLE, || recv_stamped(fd, dst))
            {
                Ok((n, stamp)) => {
                    if let Some(t) = stamp {
                        this.last.store(t, Ordering::Relaxed);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl tokio::io::AsyncWrite for Stamped {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Turns on `SO_TIMESTAMPNS` (kernel receive timestamps) and `TCP_NODELAY`.
fn stamp_receives(tcp: &tokio::net::TcpStream) {
    tcp.set_nodelay(true).expect("nodelay");
    nix::sys::socket::setsockopt(tcp, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
        .expect("SO_TIMESTAMPNS");
}

/// One HTTP/2 stream slot on a shared connection: per round, one request; the answer time is
/// the receive timestamp of the read that completed the response.
async fn h2_client(
    mut send: hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    last_read: Arc<AtomicU64>,
    mut rounds: Rounds,
    slots: Arc<Slots>,
    me: usize,
) {
    use http_body_util::BodyExt;
    while rounds.changed().await.is_ok() {
        let Some((round, path)) = rounds.borrow_and_update().clone() else {
            return;
        };
        let answer = async {
            let req = http::Request::get(format!("http://127.0.0.1{path}"))
                .body(http_body_util::Empty::new())
                .ok()?;
            let resp = send.send_request(req).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            resp.into_body().collect().await.ok()?;
            Some((last_read.load(Ordering::Relaxed), wall_ns()))
        }
        .await;
        slots.record(me, round, answer);
    }
}

/// The load generator: connects, prints `READY`, then for each `ROUND {n} {path}` line on
/// stdin sends the requests and prints one `ANSWERS` line when all are answered (or after
/// `ROUND_LIMIT`). Single-threaded, so it takes at most one core from the server.
fn load_generator(addr: SocketAddr, h2: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    rt.block_on(async move {
        let (round_tx, round_rx) = watch::channel::<Option<(usize, Arc<str>)>>(None);
        let slots = Arc::new(Slots::new(CLIENTS));
        if h2 {
            let per = CLIENTS / H2_CONNECTIONS;
            for c in 0..H2_CONNECTIONS {
                let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                stamp_receives(&tcp);
                let last = Arc::new(AtomicU64::new(0));
                let io = Stamped {
                    tcp,
                    last: last.clone(),
                };
                let (send, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                        .await
                        .expect("h2 handshake");
                tokio::spawn(conn);
                for i in 0..per {
                    let (rx, slots) = (round_rx.clone(), slots.clone());
                    let last = last.clone();
                    tokio::spawn(h2_client(send.clone(), last, rx, slots, c * per + i));
                }
            }
        } else {
            for b in 0..CLIENTS / 250 {
                let batch: Vec<_> = (0..250)
                    .map(|_| tokio::spawn(tokio::net::TcpStream::connect(addr)))
                    .collect();
                for (i, t) in batch.into_iter().enumerate() {
                    let tcp = t.await.expect("connect task").expect("connect");
                    stamp_receives(&tcp);
                    let (rx, slots) = (round_rx.clone(), slots.clone());
                    tokio::spawn(client(tcp, rx, slots, b * 250 + i));
                }
            }
        }
        println!("READY");
        let _ = std::io::stdout().flush();
        let (line_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = lines.recv().await {
            let mut words = line.split_whitespace();
            let (Some("ROUND"), Some(round), Some(path)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let Ok(round) = round.parse::<usize>() else {
                continue;
            };
            slots.start(round);
            round_tx.send_replace(Some((round, path.into())));
            let by = tokio::time::Instant::now() + ROUND_LIMIT;
            while slots.count.load(Ordering::Acquire) < CLIENTS && tokio::time::Instant::now() < by
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            println!("{}", slots.line(round));
            let _ = std::io::stdout().flush();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The server (this process) and the measurement.

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

/// Percentiles of a sorted list of delays.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
        .as_secs_f64()
        * 1e3
}

fn summary(name: &str, mut delays: Vec<Duration>) {
    delays.sort();
    println!(
        "  {name}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} answers)",
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        pct(&delays, 1.0),
        delays.len()
    );
}

fn server(h2: bool) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()
        .expect("server runtime");

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

    // (b) The load generator, in its own process.
    let nice = std::env::var("LLHLS_LOAD_CLIENT_NICE").unwrap_or_else(|_| "19".into());
    let mut generator = std::process::Command::new("nice")
        .args(["-n", &nice])
        .arg(std::env::current_exe().expect("own path"))
        .env("LLHLS_LOAD_CLIENT", addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the load generator");
    let mut to_generator = generator.stdin.take().expect("stdin");
    let mut from_generator = BufReader::new(generator.stdout.take().expect("stdout"));
    let mut line = String::new();
    from_generator.read_line(&mut line).expect("READY");
    assert_eq!(line.trim(), "READY", "load generator failed to connect");

    let skip = if std::env::var_os("LLHLS_LOAD_SKIP").is_some() {
        "&_HLS_skip=YES"
    } else {
        ""
    };
    let mut answered: Vec<Duration> = Vec::new();
    let mut read: Vec<Duration> = Vec::new();
    let mut round_max = Vec::new();
    let mut per_request_http = 0.0;
    let mut failures = 0usize;
    let mut not_parked_rounds = 0usize;
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
                    wall_ns()
                })
        });
        let idle = rss_kib();
        writeln!(
            to_generator,
            "ROUND {round} /live/{STREAM}/video.m3u8?_HLS_msn={msn}&_HLS_part={part}{skip}"
        )
        .and_then(|()| to_generator.flush())
        .expect("to the load generator");
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
        let probe_woke = probe.join().expect("probe");
        line.clear();
        from_generator
            .read_line(&mut line)
            .expect("answers from the load generator");
        let pairs: Vec<(u64, u64)> = line
            .split_whitespace()
            .skip(2)
            .filter_map(|p| {
                let (k, r) = p.split_once(',')?;
                Some((k.parse().ok()?, r.parse().ok()?))
            })
            .collect();
        assert_eq!(pairs.len(), CLIENTS, "malformed answers line");
        // The part's publication: the probe's wake-up, or the first answer if that came first.
        let first = pairs
            .iter()
            .map(|&(k, r)| if k > 0 { k } else { r })
            .filter(|&t| t > 0)
            .min()
            .unwrap_or(probe_woke);
        let published = probe_woke.min(first);
        let since = |t: u64| Duration::from_nanos(t.saturating_sub(published));
        let mut max = Duration::ZERO;
        for (k, r) in pairs {
            if r == 0 {
                failures += 1;
                continue;
            }
            // Without a kernel timestamp, the read time is the answer time.
            let a = since(if k > 0 { k } else { r });
            max = max.max(a);
            answered.push(a);
            read.push(since(r));
        }
        round_max.push(max);
    }
    stop.store(true, Ordering::Relaxed);
    drop(to_generator);
    let _ = generator.wait();

    let transport = if h2 {
        format!("HTTP/2 (h2c) over {H2_CONNECTIONS} connections")
    } else {
        format!("HTTP/1.1 over {CLIENTS} connections")
    };
    println!(
        "llhls_load: {CLIENTS} concurrent blocking playlist requests{}, {rounds} parts, {transport}, loopback; server: 2 threads; load generator: 1 thread at nice {nice}",
        if skip.is_empty() { "" } else { " (delta)" }
    );
    summary("answered (kernel receive time)", answered);
    summary("read by the load generator", read);
    println!(
        "  per-round max answered (ms): {:?}",
        round_max
            .iter()
            .map(|d| (d.as_secs_f64() * 1e4).round() / 10.0)
            .collect::<Vec<_>>()
    );
    println!("  failed: {failures}");
    println!(
        "  memory per waiting request: {:.0} B origin-level ({answered_a}/{CLIENTS} answered), {:.0} B per parked HTTP request (server process)",
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
