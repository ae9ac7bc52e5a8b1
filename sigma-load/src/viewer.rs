//! One simulated viewer: loads a stream's playlists and media over HTTP/1.1 keep-alive
//! connections (hyper 1 client, one connection per rendition), as a player does.
//!
//! - [`Mode::Llhls`], like hls.js in low-latency mode: a blocking playlist reload for the next
//!   part (`?_HLS_msn=M&_HLS_part=P`, RFC 8216bis §6.2.5.2), then every newly listed part.
//! - [`Mode::Hls`], like a plain HLS player: the playlist every half target duration, then every
//!   newly listed segment.
//!
//! The delay measured for each part (or segment) runs from the moment the playlist response that
//! first lists it was read to the moment its last byte arrived. A viewer joins at the live edge:
//! what was listed in its first playlist is not fetched (except the init segment).

use crate::endpoint::{HttpEndpoint, resolve};
use crate::playlist::{MediaPlaylist, Playlist, parse};
use crate::stats::{Delays, ErrorCounts};
use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How viewers load media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Low-Latency HLS: blocking playlist reloads and parts.
    Llhls,
    /// Plain HLS: playlist polling and whole segments.
    Hls,
}

/// What one viewer (all its renditions) saw.
#[derive(Clone, Debug, Default)]
pub struct ViewerStats {
    /// Part (LL-HLS) or segment (HLS) delays.
    pub delays: Delays,
    /// Parts or segments fetched.
    pub fetched: u64,
    /// Media bytes fetched (parts, segments, init segments).
    pub bytes: u64,
    /// Playlist responses read.
    pub playlists: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// The most discontinuities any of its media playlists announced (a server-side gap, a
    /// publisher reconnect or a codec change each add one).
    pub discontinuities: u64,
}

impl ViewerStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &ViewerStats) {
        self.delays.merge(&other.delays);
        self.fetched += other.fetched;
        self.bytes += other.bytes;
        self.playlists += other.playlists;
        self.errors.merge(&other.errors);
        self.discontinuities = self.discontinuities.max(other.discontinuities);
    }
}

/// Where and how long one viewer watches.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The HTTP origin.
    pub endpoint: Arc<HttpEndpoint>,
    /// Stream name.
    pub stream: String,
    /// How to load.
    pub mode: Mode,
    /// When to start.
    pub start: Instant,
    /// When to stop (requests still running then are abandoned, not counted).
    pub end: Instant,
    /// Bound on each request (connect, headers and body).
    pub request_timeout: Duration,
}

/// Why a request failed.
#[derive(Debug)]
enum Failure {
    /// The run ended while waiting: not an error.
    Deadline,
    /// Connecting or the HTTP handshake failed.
    Connect,
    /// No complete answer within the request timeout.
    Timeout,
    /// A non-2xx status.
    Status(u16),
    /// The connection failed mid-request.
    Io,
}

impl Failure {
    fn kind(&self) -> String {
        match self {
            Failure::Deadline => "deadline".into(),
            Failure::Connect => "connect".into(),
            Failure::Timeout => "timeout".into(),
            Failure::Status(s) => format!("http {s}"),
            Failure::Io => "connection".into(),
        }
    }
}

/// One keep-alive HTTP/1.1 connection, reopened after a failure.
struct Connection {
    endpoint: Arc<HttpEndpoint>,
    sender: Option<SendRequest<Empty<Bytes>>>,
    timeout: Duration,
    end: Instant,
}

impl Connection {
    fn new(viewer: &Viewer) -> Self {
        Connection {
            endpoint: viewer.endpoint.clone(),
            sender: None,
            timeout: viewer.request_timeout,
            end: viewer.end,
        }
    }

    /// GETs `path`; returns the body when `keep` (else an empty one) and its length.
    async fn get(&mut self, path: &str, keep: bool) -> Result<(Vec<u8>, u64), Failure> {
        let by = (Instant::now() + self.timeout).min(self.end);
        let hit_deadline = by == self.end;
        match tokio::time::timeout_at(by, self.request(path, keep)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(if hit_deadline {
                    Failure::Deadline
                } else {
                    Failure::Timeout
                })
            }
        }
    }

    async fn request(&mut self, path: &str, keep: bool) -> Result<(Vec<u8>, u64), Failure> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let tcp = TcpStream::connect(self.endpoint.addr)
                .await
                .map_err(|_| Failure::Connect)?;
            let _ = tcp.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|_| Failure::Connect)?;
            // Ends when the sender is dropped or the server closes.
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err(Failure::Connect);
        };
        sender.ready().await.map_err(|_| Failure::Io)?;
        let req = Request::get(path)
            .header(header::HOST, &self.endpoint.host)
            .body(Empty::new())
            .map_err(|_| Failure::Io)?;
        let resp = sender.send_request(req).await.map_err(|_| Failure::Io)?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut kept = Vec::new();
        let mut len = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Failure::Io)?;
            if let Ok(data) = frame.into_data() {
                len += data.len() as u64;
                if keep {
                    kept.extend_from_slice(&data);
                }
            }
        }
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        Ok((kept, len))
    }

    async fn playlist(&mut self, path: &str) -> Result<Playlist, String> {
        let (text, _) = self.get(path, true).await.map_err(|e| e.kind())?;
        let text = std::str::from_utf8(&text).map_err(|_| "playlist not UTF-8".to_string())?;
        parse(text).map_err(|_| "playlist parse".to_string())
    }
}

/// Playlist requests one rendition may make per second of the run (about six times what
/// 0.334 s parts need), a bound against a server that answers blocking requests at once.
const REQUESTS_PER_SECOND: u64 = 20;

impl Viewer {
    /// Watches until the end; every loop is bounded by the end time and a request budget.
    pub async fn run(self) -> ViewerStats {
        tokio::time::sleep_until(self.start).await;
        let mut stats = ViewerStats::default();
        let index = self.endpoint.index_path(&self.stream);
        let mut conn = Connection::new(&self);
        // The first variant and the first audio rendition, as a player picks them.
        let (video, audio) = match conn.playlist(&index).await {
            Ok(Playlist::Multivariant(m)) => {
                let pick = |uris: &[String]| {
                    uris.first()
                        .and_then(|uri| resolve(&index, uri, &self.endpoint))
                };
                (pick(&m.variants), pick(&m.audio))
            }
            Ok(Playlist::Media(_)) => (Some(index.clone()), None),
            Err(kind) => {
                if kind != "deadline" {
                    stats.errors.add(kind);
                }
                return stats;
            }
        };
        let Some(video) = video else {
            stats.errors.add("media URI on another origin");
            return stats;
        };
        let audio_conn = Connection::new(&self);
        let (v, a) = tokio::join!(self.follow(conn, video), async {
            match audio {
                Some(path) => self.follow(audio_conn, path).await,
                None => ViewerStats::default(),
            }
        });
        stats.merge(&v);
        stats.merge(&a);
        stats
    }

    async fn follow(&self, mut conn: Connection, path: String) -> ViewerStats {
        let mut stats = ViewerStats::default();
        let budget =
            self.end.saturating_duration_since(Instant::now()).as_secs() * REQUESTS_PER_SECOND + 20;
        let mut last_part: Option<(u64, u64)> = None;
        let mut last_msn: Option<u64> = None;
        let mut init: Option<String> = None;
        let mut requests = 0u64;
        while Instant::now() < self.end {
            if requests == budget {
                stats.errors.add("request budget exhausted");
                break;
            }
            requests += 1;
            let request = match (self.mode, last_part) {
                (Mode::Llhls, Some(last)) => {
                    let (msn, part) = MediaPlaylist::next_part_after(last);
                    format!("{path}?_HLS_msn={msn}&_HLS_part={part}")
                }
                _ => path.clone(),
            };
            let playlist = match conn.playlist(&request).await {
                Ok(Playlist::Media(m)) => m,
                Ok(Playlist::Multivariant(_)) => {
                    stats.errors.add("multivariant where media expected");
                    break;
                }
                Err(kind) if kind == "deadline" => break,
                Err(kind) => {
                    stats.errors.add(kind);
                    // Start over from a plain reload after a short pause.
                    last_part = None;
                    last_msn = None;
                    self.pause(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let listed_at = Instant::now();
            stats.playlists += 1;
            stats.discontinuities = stats.discontinuities.max(playlist.total_discontinuities());
            if let Some(map) = &playlist.map {
                if init.as_ref() != Some(map) {
                    init = Some(map.clone());
                    self.fetch(&mut conn, &request, map, None, &mut stats).await;
                }
            }
            match self.mode {
                Mode::Llhls => {
                    if playlist.part_target.is_none() {
                        stats.errors.add("no parts (not an LL-HLS playlist)");
                        break;
                    }
                    if let Some(last) = last_part {
                        let new: Vec<&str> = playlist
                            .parts
                            .iter()
                            .filter(|p| p.position() > last)
                            .map(|p| p.uri.as_str())
                            .collect();
                        if new.is_empty() && !playlist.ended {
                            stats.errors.add("blocking reload without the part");
                        }
                        for uri in new {
                            self.fetch(&mut conn, &request, uri, Some(listed_at), &mut stats)
                                .await;
                        }
                    }
                    last_part = playlist.last_part().map(|p| p.position()).or(last_part);
                }
                Mode::Hls => {
                    if let Some(last) = last_msn {
                        for s in playlist.segments.iter().filter(|s| s.msn > last) {
                            self.fetch(&mut conn, &request, &s.uri, Some(listed_at), &mut stats)
                                .await;
                        }
                    }
                    last_msn = playlist.last_msn().or(last_msn);
                }
            }
            if playlist.ended {
                stats.errors.add("stream ended");
                break;
            }
            if self.mode == Mode::Hls {
                let half =
                    Duration::from_secs_f64((playlist.target_duration / 2.0).clamp(0.1, 10.0));
                self.pause(half.saturating_sub(listed_at.elapsed())).await;
            }
        }
        stats
    }

    /// Fetches `uri` (relative to `base`); records its delay from `listed_at` when given.
    async fn fetch(
        &self,
        conn: &mut Connection,
        base: &str,
        uri: &str,
        listed_at: Option<Instant>,
        stats: &mut ViewerStats,
    ) {
        let Some(path) = resolve(base, uri, &self.endpoint) else {
            stats.errors.add("media URI on another origin");
            return;
        };
        match conn.get(&path, false).await {
            Ok((_, len)) => {
                stats.bytes += len;
                if let Some(at) = listed_at {
                    stats.fetched += 1;
                    stats.delays.record(at.elapsed());
                }
            }
            Err(Failure::Deadline) => {}
            Err(e) => stats.errors.add(e.kind()),
        }
    }

    async fn pause(&self, d: Duration) {
        tokio::time::sleep_until((Instant::now() + d).min(self.end)).await;
    }
}
