//! The server session (RTMP 1.0 §7.2 NetConnection/NetStream commands), sans-IO.
//!
//! A [`ServerSession`] is one publisher connection: bytes and `now` go in, events and bytes come
//! out. It is pull-based: [`ServerSession::poll_event`] decodes just enough of the buffered input
//! to produce the next event, so the events held at any time are bounded, and while a publish
//! request waits for the application's answer nothing more is decoded (the driver stops reading,
//! so TCP pushes back on the publisher).
//!
//! ```text
//! driver:  read socket -> input_mut() + received(now, n)
//!          loop poll_event() -> PublishRequested / StreamInfo / Frame / Metadata / Unpublished
//!          accept_publish() / reject_publish()
//!          poll_transmit() -> write socket;  poll_timeout()/handle_timeout(now) for timers
//! ```
//!
//! Command flow answered (what ffmpeg, OBS, GStreamer `rtmp2sink` and Larix send):
//! `connect` → Window Acknowledgement Size, Set Peer Bandwidth, Set Chunk Size and `_result`
//! with `NetConnection.Connect.Success`; `releaseStream`/`FCPublish` → `_result` (and
//! `onFCPublish`); `createStream` → `_result` with the stream id; `publish` → (after the
//! application accepts) User Control Stream Begin and `onStatus NetStream.Publish.Start`, or
//! the [`Rejection`]'s `onStatus` error (`NetStream.Publish.BadName`, `.Denied` or `.Failed`)
//! and close; `FCUnpublish`/`closeStream`/`deleteStream` → `onStatus
//! NetStream.Unpublish.Success` and [`ServerEvent::Unpublished`].
//! `play` is refused with `NetStream.Play.Failed` (Sigma serves viewers over LL-HLS).

use crate::Error;
use crate::amf0::{self, AmfLimits, Value};
use crate::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkLimits, ControlMessage, Message, UserControl, message_type,
};
use crate::flv::{self, DemuxEvent, FlvDemuxer};
use crate::handshake::Handshake;
use bytes::{Bytes, BytesMut};
use sigma_core::bus::StreamError;
use sigma_core::{Frame, StreamInfo, StreamKey};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Chunk stream ids we send on (RTMP 1.0 §5.3.1.1: 2 is for protocol control).
pub(crate) const CSID_COMMAND: u32 = 3;
pub(crate) const CSID_STATUS: u32 = 5;

/// Limits and settings of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Chunk layer limits.
    pub chunk: ChunkLimits,
    /// AMF decoding limits for commands and metadata.
    pub amf: AmfLimits,
    /// Longest time from connection start to handshake completion.
    pub handshake_timeout: Duration,
    /// Longest time without any input once connected.
    pub idle_timeout: Duration,
    /// Most bytes the input buffer may hold before the driver must stop reading.
    pub max_input_buffer: usize,
    /// Chunk size we send with (announced with Set Chunk Size).
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size we announce (§5.4.4).
    pub window_ack_size: u32,
    /// Largest forward jump of a track's timestamp, in milliseconds.
    pub max_timestamp_jump_ms: i64,
}

impl Default for SessionConfig {
    /// 10 s handshake, 30 s idle, 64 KiB input reads, chunk size 4096, 2.5 MB ack window,
    /// 10 minute timestamp jumps, and the chunk/AMF defaults.
    fn default() -> Self {
        SessionConfig {
            chunk: ChunkLimits::default(),
            amf: AmfLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_input_buffer: 256 << 10,
            out_chunk_size: 4096,
            window_ack_size: 2_500_000,
            max_timestamp_jump_ms: 600_000,
        }
    }
}

/// The parts of a connection both roles share: handshake, chunk codec, acknowledgements,
/// timers and the input/output buffers.
pub(crate) struct Connection {
    pub(crate) config: SessionConfig,
    pub(crate) handshake: Handshake,
    pub(crate) decoder: ChunkDecoder,
    pub(crate) encoder: ChunkEncoder,
    pub(crate) input: BytesMut,
    pub(crate) out: BytesMut,
    started: Instant,
    last_input: Instant,
    /// Total bytes received (for Acknowledgement, §5.4.3).
    received: u64,
    acked: u64,
    peer_window: Option<u32>,
    /// The Window Acknowledgement Size we last announced.
    our_window: Option<u32>,
    pub(crate) dead: bool,
}

impl Connection {
    pub(crate) fn new(config: SessionConfig, handshake: Handshake, now: Instant) -> Self {
        // The decoder's default never leaves payload bytes in the input buffer (see
        // `ChunkDecoder::set_zero_copy_max`), which keeps the copy-at-most-once guarantee.
        let decoder = ChunkDecoder::new(config.chunk);
        Connection {
            config,
            handshake,
            decoder,
            encoder: ChunkEncoder::new(),
            input: BytesMut::with_capacity(64 << 10),
            out: BytesMut::new(),
            started: now,
            last_input: now,
            received: 0,
            acked: 0,
            peer_window: None,
            our_window: None,
            dead: false,
        }
    }

    pub(crate) fn received(&mut self, now: Instant, n: usize) {
        self.last_input = now;
        self.received += n as u64;
    }

    pub(crate) fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.input.extend_from_slice(data);
        self.received(now, data.len());
    }

    pub(crate) fn wants_input(&self) -> bool {
        !self.dead && self.input.len() < self.config.max_input_buffer
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        if let Some(b) = self.handshake.poll_transmit() {
            return Some(b);
        }
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.dead {
            return None;
        }
        Some(if self.handshake.is_done() {
            self.last_input + self.config.idle_timeout
        } else {
            (self.started + self.config.handshake_timeout)
                .min(self.last_input + self.config.idle_timeout)
        })
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if self.dead {
            return Ok(());
        }
        if !self.handshake.is_done() && now >= self.started + self.config.handshake_timeout {
            self.dead = true;
            return Err(Error::HandshakeTimeout(self.config.handshake_timeout));
        }
        if now >= self.last_input + self.config.idle_timeout {
            self.dead = true;
            return Err(Error::IdleTimeout(self.config.idle_timeout));
        }
        Ok(())
    }

    pub(crate) fn send(&mut self, msg: &Message) {
        self.encoder.encode(msg, &mut self.out);
    }

    pub(crate) fn send_control(&mut self, c: ControlMessage) {
        self.send(&c.to_message(0));
        match c {
            ControlMessage::SetChunkSize(n) => self.encoder.set_chunk_size(n),
            ControlMessage::WindowAckSize(n) => self.our_window = Some(n),
            _ => {}
        }
    }

    pub(crate) fn send_command(&mut self, csid: u32, stream_id: u32, values: &[Value]) {
        let mut b = BytesMut::new();
        amf0::encode_all(values, &mut b);
        self.send(&Message {
            csid,
            timestamp: 0,
            type_id: message_type::COMMAND_AMF0,
            stream_id,
            payload: b.freeze(),
        });
    }

    /// The next message after the handshake, handling the chunk-level control messages
    /// (acknowledgement window, ping) itself. `Ok(None)` means more input is needed.
    pub(crate) fn next_message(&mut self) -> Result<Option<Message>, Error> {
        if self.dead {
            return Ok(None);
        }
        let r = self.next_message_inner();
        if r.is_err() {
            self.dead = true;
        }
        r
    }

    fn next_message_inner(&mut self) -> Result<Option<Message>, Error> {
        if !self.handshake.is_done() {
            self.handshake.handle_input(&mut self.input)?;
            if !self.handshake.is_done() {
                return Ok(None);
            }
        }
        loop {
            self.maybe_ack();
            let Some(m) = self.decoder.decode(&mut self.input)? else {
                return Ok(None);
            };
            match ControlMessage::parse(m.type_id, &m.payload) {
                None => return Ok(Some(m)),
                Some(c) => match c? {
                    ControlMessage::WindowAckSize(w) => self.peer_window = Some(w.max(1)),
                    // §5.4.5: answer with a Window Acknowledgement Size when it differs from
                    // the one we last sent.
                    ControlMessage::SetPeerBandwidth(size, _) if self.our_window != Some(size) => {
                        self.send_control(ControlMessage::WindowAckSize(size))
                    }
                    ControlMessage::UserControl(UserControl::PingRequest(t)) => {
                        self.send_control(ControlMessage::UserControl(UserControl::PingResponse(t)))
                    }
                    // Set Chunk Size and Abort were applied by the decoder; the others need no
                    // answer.
                    _ => {}
                },
            }
        }
    }

    fn maybe_ack(&mut self) {
        if let Some(w) = self.peer_window {
            let consumed = self.received - self.input.len() as u64;
            if consumed - self.acked >= u64::from(w) {
                self.acked = consumed;
                self.send_control(ControlMessage::Acknowledgement(consumed as u32));
            }
        }
    }
}

/// Decodes a command message (AMF0, or AMF3 with its leading format byte) into values.
pub(crate) fn command_values(m: &Message, limits: AmfLimits) -> Result<Vec<Value>, Error> {
    let body = match m.type_id {
        message_type::COMMAND_AMF3 | message_type::DATA_AMF3 if m.payload.first() == Some(&0) => {
            &m.payload[1..]
        }
        _ => &m.payload[..],
    };
    amf0::decode_all(body, limits)
}

/// A request to publish, waiting for the application's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishRequest {
    /// The application (first path segment of the URL), without any query string.
    pub app: String,
    /// The stream name, without any query string.
    pub name: String,
    /// The query string (without `?`) of the stream name, or else of the app/tcUrl, e.g.
    /// `token=abc`.
    pub query: Option<String>,
    /// The `tcUrl` the client connected with.
    pub tc_url: Option<String>,
    /// The publishing type (`live`, `record`, `append`).
    pub publish_type: String,
    /// The message stream id the publish arrived on.
    pub stream_id: u32,
}

/// Why a publish request is refused: the one refusal type from the application's admission to
/// the `onStatus` error the publisher receives. Each reason has its code, as RTMP servers send
/// them (nginx-rtmp and SRS answer a second publisher of a stream with
/// `NetStream.Publish.BadName`; authorisation refusals are `NetStream.Publish.Denied`):
///
/// | variant | `onStatus` code |
/// |---|---|
/// | [`InvalidName`](Self::InvalidName), [`AlreadyPublishing`](Self::AlreadyPublishing) | `NetStream.Publish.BadName` |
/// | [`UnknownApp`](Self::UnknownApp), [`BadKey`](Self::BadKey), [`Disabled`](Self::Disabled), [`Denied`](Self::Denied) | `NetStream.Publish.Denied` |
/// | [`Failed`](Self::Failed) | `NetStream.Publish.Failed` |
///
/// The description sent with the code is the variant's `Display` text.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The stream name is malformed (empty, too long, characters outside `A-Z a-z 0-9 _ -`, or
    /// a name the application reserves).
    #[error("invalid stream name {0:?}")]
    InvalidName(String),
    /// Someone is publishing this stream already.
    #[error("stream {0} is already being published")]
    AlreadyPublishing(StreamKey),
    /// No application of that name.
    #[error("unknown application {0:?}")]
    UnknownApp(String),
    /// The stream key (or token) is missing, unknown or not accepted.
    #[error("stream key not accepted")]
    BadKey,
    /// The stream exists but publishing to it is turned off.
    #[error("stream {0} is disabled")]
    Disabled(StreamKey),
    /// Refused by the application's policy (hours, quotas, a bad publish parameter); the text
    /// says why.
    #[error("{0}")]
    Denied(String),
    /// The server could not start the stream: a packager or internal failure, or no admission
    /// decision in time ([`Error::AdmissionTimeout`]).
    #[error("{0}")]
    Failed(StreamError),
}

impl Rejection {
    /// A [`Failed`](Self::Failed) rejection for `error`.
    pub fn failed(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Rejection::Failed(Arc::new(error))
    }

    /// The `onStatus` code (see the table on [`Rejection`]).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::InvalidName(_) | Rejection::AlreadyPublishing(_) => {
                "NetStream.Publish.BadName"
            }
            Rejection::UnknownApp(_)
            | Rejection::BadKey
            | Rejection::Disabled(_)
            | Rejection::Denied(_) => "NetStream.Publish.Denied",
            Rejection::Failed(_) => "NetStream.Publish.Failed",
        }
    }

    /// The description sent to the client with the code.
    pub fn description(&self) -> String {
        self.to_string()
    }
}

/// What a server session reports.
#[derive(Clone, Debug)]
pub enum ServerEvent {
    /// The client connected to an application (after `connect`).
    Connected {
        /// The application.
        app: String,
    },
    /// The client asks to publish. Answer with [`ServerSession::accept_publish`] or
    /// [`ServerSession::reject_publish`]; nothing more is decoded until then.
    PublishRequested(PublishRequest),
    /// New or changed tracks; applies to the frames that follow.
    StreamInfo(Arc<StreamInfo>),
    /// One access unit.
    Frame(Frame),
    /// `@setDataFrame`/`onMetaData` from the publisher.
    Metadata(Value),
    /// The publisher stopped publishing (FCUnpublish, closeStream or deleteStream).
    Unpublished,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Before `connect`.
    Connecting,
    /// Connected; no publish yet.
    Connected,
    /// Waiting for the application's decision.
    PublishPending(u32),
    /// Publishing on this message stream.
    Publishing(u32),
    /// Unpublished; only teardown commands are expected.
    Unpublished,
    /// Refused; the connection should close once output is flushed.
    Closing,
}

/// The server side of one RTMP connection. See the module docs.
pub struct ServerSession {
    conn: Connection,
    state: State,
    app: String,
    app_query: Option<String>,
    tc_url: Option<String>,
    next_stream_id: u32,
    demux: FlvDemuxer,
    events: VecDeque<ServerEvent>,
    publish_name: String,
}

fn split_query(s: &str) -> (String, Option<String>) {
    match s.split_once('?') {
        Some((a, q)) => (a.to_owned(), Some(q.to_owned())),
        None => (s.to_owned(), None),
    }
}

fn status(level: &str, code: &str, description: &str) -> Value {
    Value::object([
        ("level", Value::string(level)),
        ("code", Value::string(code)),
        ("description", Value::string(description)),
    ])
}

impl ServerSession {
    /// A session for a connection accepted at `now`; `seed` drives the handshake's random bytes.
    pub fn new(config: SessionConfig, now: Instant, seed: u64) -> Self {
        ServerSession {
            conn: Connection::new(config, Handshake::server(seed), now),
            state: State::Connecting,
            app: String::new(),
            app_query: None,
            tc_url: None,
            next_stream_id: 1,
            demux: FlvDemuxer::new(config.max_timestamp_jump_ms),
            events: VecDeque::with_capacity(4),
            publish_name: String::new(),
        }
    }

    /// The buffer socket reads go into (read directly into it, then call
    /// [`ServerSession::received`]): the only copy of a payload byte on the way to a frame
    /// happens after this, into a buffer of the message's size, so no frame keeps this
    /// buffer alive.
    pub fn input_mut(&mut self) -> &mut BytesMut {
        &mut self.conn.input
    }

    /// Records that `n` bytes were appended to [`ServerSession::input_mut`] at `now`.
    pub fn received(&mut self, now: Instant, n: usize) {
        self.conn.received(now, n);
    }

    /// Convenience for tests and simple drivers: copies `data` into the input buffer.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.conn.handle_input(now, data);
    }

    /// Whether the driver should read more input now (false while a publish request awaits a
    /// decision, while the input buffer is full, and once the session is closed or closing).
    pub fn wants_input(&self) -> bool {
        self.conn.wants_input() && !matches!(self.state, State::PublishPending(_) | State::Closing)
    }

    /// True when the connection should be closed once pending output is flushed.
    pub fn is_closing(&self) -> bool {
        self.state == State::Closing || self.conn.dead
    }

    /// The handshake flavour the client used, once known.
    pub fn handshake_flavour(&self) -> Option<crate::handshake::Flavour> {
        self.conn.handshake.flavour()
    }

    /// True while publishing.
    pub fn is_publishing(&self) -> bool {
        matches!(self.state, State::Publishing(_))
    }

    /// Bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.conn.poll_transmit()
    }

    /// When [`ServerSession::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conn.poll_timeout()
    }

    /// Checks the handshake and idle timeouts; an error closes the connection.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.conn.handle_timeout(now)
    }

    /// Bytes received and not yet decoded, plus bytes held in partly received messages.
    pub fn buffered(&self) -> usize {
        self.conn.input.len() + self.conn.decoder.buffered()
    }

    /// The next event, decoding buffered input as needed. `Ok(None)`: need more input (or a
    /// publish decision). An error is fatal for this connection.
    pub fn poll_event(&mut self) -> Result<Option<ServerEvent>, Error> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if let Some(d) = self.demux.pull() {
                return Ok(Some(match d {
                    DemuxEvent::Info(i) => ServerEvent::StreamInfo(i),
                    DemuxEvent::Frame(f) => ServerEvent::Frame(f),
                }));
            }
            if matches!(self.state, State::PublishPending(_) | State::Closing) {
                return Ok(None);
            }
            let Some(m) = self.conn.next_message()? else {
                return Ok(None);
            };
            if let Err(e) = self.handle_message(m) {
                self.conn.dead = true;
                return Err(e);
            }
        }
    }

    /// Accepts the pending publish request: sends Stream Begin and `NetStream.Publish.Start`.
    pub fn accept_publish(&mut self) -> Result<(), Error> {
        let State::PublishPending(sid) = self.state else {
            return Err(Error::NotReady("no publish request pending"));
        };
        self.conn
            .send_control(ControlMessage::UserControl(UserControl::StreamBegin(sid)));
        let desc = format!("{} is now published.", self.publish_name);
        let mut info = status("status", "NetStream.Publish.Start", &desc);
        if let Value::Object(p) = &mut info {
            p.push(("details".into(), Value::string(self.publish_name.clone())));
        }
        self.send_status(sid, info);
        self.state = State::Publishing(sid);
        Ok(())
    }

    /// Refuses the pending publish request with the matching `onStatus` error; the session is
    /// then closing.
    pub fn reject_publish(&mut self, why: &Rejection) -> Result<(), Error> {
        let State::PublishPending(sid) = self.state else {
            return Err(Error::NotReady("no publish request pending"));
        };
        self.send_reject(sid, why);
        Ok(())
    }

    /// Sends `onStatus` with the info object `info` on stream `sid`.
    fn send_status(&mut self, sid: u32, info: Value) {
        self.conn.send_command(
            CSID_STATUS,
            sid,
            &[
                Value::string("onStatus"),
                Value::Number(0.0),
                Value::Null,
                info,
            ],
        );
    }

    fn send_reject(&mut self, sid: u32, why: &Rejection) {
        self.send_status(sid, status("error", why.code(), &why.description()));
        self.state = State::Closing;
    }

    fn handle_message(&mut self, m: Message) -> Result<(), Error> {
        match m.type_id {
            message_type::COMMAND_AMF0 | message_type::COMMAND_AMF3 => {
                let values = command_values(&m, self.conn.config.amf)?;
                self.handle_command(m.stream_id, values)
            }
            message_type::DATA_AMF0 | message_type::DATA_AMF3 => {
                let values = command_values(&m, self.conn.config.amf)?;
                self.handle_data(values);
                Ok(())
            }
            message_type::AUDIO | message_type::VIDEO => {
                if self.state != State::Publishing(m.stream_id) {
                    // Media for a stream that is not publishing: ignored (RTMP servers do).
                    tracing::debug!(stream_id = m.stream_id, "media outside a publish ignored");
                    return Ok(());
                }
                self.push_media(m.type_id, m.timestamp, m.payload)
            }
            message_type::AGGREGATE => {
                if self.state != State::Publishing(m.stream_id) {
                    return Ok(());
                }
                for t in flv::split_aggregate(m.timestamp, &m.payload)? {
                    match t.type_id {
                        message_type::AUDIO | message_type::VIDEO => {
                            self.push_media(t.type_id, t.timestamp, t.body)?
                        }
                        message_type::DATA_AMF0 => {
                            let values = amf0::decode_all(&t.body, self.conn.config.amf)?;
                            self.handle_data(values);
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            // Shared objects and anything else: not used by publishers; ignored.
            _ => Ok(()),
        }
    }

    fn push_media(&mut self, type_id: u8, timestamp: u32, payload: Bytes) -> Result<(), Error> {
        if type_id == message_type::VIDEO {
            self.demux.push_video(timestamp, payload)
        } else {
            self.demux.push_audio(timestamp, payload)
        }
    }

    fn handle_data(&mut self, values: Vec<Value>) {
        let mut it = values.into_iter();
        let mut first = it.next();
        if first.as_ref().and_then(Value::as_str) == Some("@setDataFrame") {
            first = it.next();
        }
        if first.as_ref().and_then(Value::as_str) == Some("onMetaData")
            && let Some(meta) = it.next()
            && matches!(self.state, State::Publishing(_))
        {
            self.events.push_back(ServerEvent::Metadata(meta));
        }
    }

    fn result(&mut self, tx: f64, props: Value, info: Value) {
        self.conn.send_command(
            CSID_COMMAND,
            0,
            &[Value::string("_result"), Value::Number(tx), props, info],
        );
    }

    fn handle_command(&mut self, stream_id: u32, values: Vec<Value>) -> Result<(), Error> {
        let mut it = values.into_iter();
        let Some(Value::String(name)) = it.next() else {
            return Err(Error::command("?", "command name is not a string"));
        };
        let tx = it.next().and_then(|v| v.as_number()).unwrap_or(0.0);
        let obj = it.next().unwrap_or(Value::Null);
        let args: Vec<Value> = it.collect();
        let arg_str = |i: usize| args.get(i).and_then(Value::as_str).map(str::to_owned);
        tracing::debug!(command = %name, tx, stream_id, "RTMP command");
        match name.as_str() {
            "connect" => {
                if self.state != State::Connecting {
                    return Err(Error::command(&name, "connect sent twice"));
                }
                let app = obj.get_str("app").unwrap_or_default();
                let (app, q) = split_query(app.trim_matches('/'));
                self.app = app;
                self.tc_url = obj.get_str("tcUrl").map(str::to_owned);
                self.app_query = q.or_else(|| {
                    self.tc_url
                        .as_deref()
                        .and_then(|u| u.split_once('?'))
                        .map(|(_, q)| q.to_owned())
                });
                let encoding = obj.get("objectEncoding").and_then(Value::as_number);
                let c = self.conn.config;
                self.conn
                    .send_control(ControlMessage::WindowAckSize(c.window_ack_size));
                self.conn
                    .send_control(ControlMessage::SetPeerBandwidth(c.window_ack_size, 2));
                self.conn
                    .send_control(ControlMessage::SetChunkSize(c.out_chunk_size));
                let props = Value::object([
                    ("fmsVer", Value::string("FMS/3,5,7,7009")),
                    ("capabilities", Value::Number(31.0)),
                    ("mode", Value::Number(1.0)),
                ]);
                let mut info = status(
                    "status",
                    "NetConnection.Connect.Success",
                    "Connection succeeded.",
                );
                if let Value::Object(p) = &mut info {
                    p.push((
                        "objectEncoding".into(),
                        Value::Number(encoding.unwrap_or(0.0)),
                    ));
                }
                self.result(tx, props, info);
                self.state = State::Connected;
                self.events.push_back(ServerEvent::Connected {
                    app: self.app.clone(),
                });
            }
            _ if self.state == State::Connecting => {
                return Err(Error::command(&name, "command before connect"));
            }
            "releaseStream" | "FCPublish" => {
                if tx != 0.0 {
                    self.result(tx, Value::Null, Value::Undefined);
                }
                if name == "FCPublish" {
                    let n = arg_str(0).unwrap_or_default();
                    self.conn.send_command(
                        CSID_COMMAND,
                        0,
                        &[
                            Value::string("onFCPublish"),
                            Value::Number(0.0),
                            Value::Null,
                            status("status", "NetStream.Publish.Start", &n),
                        ],
                    );
                }
            }
            "createStream" => {
                let sid = self.next_stream_id;
                self.next_stream_id = self.next_stream_id.saturating_add(1).min(1 << 20);
                self.result(tx, Value::Null, Value::Number(f64::from(sid)));
            }
            "publish" => {
                match self.state {
                    State::Connected => {}
                    State::Unpublished => {
                        // A new publish on the same connection starts a fresh stream.
                        self.demux = FlvDemuxer::new(self.conn.config.max_timestamp_jump_ms);
                    }
                    _ => return Err(Error::command(&name, "publish while already publishing")),
                }
                let full = arg_str(0).unwrap_or_default();
                let (stream_name, q) = split_query(&full);
                let publish_type = arg_str(1).unwrap_or_else(|| "live".into());
                if stream_id == 0 {
                    return Err(Error::command(&name, "publish on message stream 0"));
                }
                self.publish_name = stream_name.clone();
                if stream_name.is_empty() || stream_name.contains('/') {
                    self.send_reject(stream_id, &Rejection::InvalidName(full.clone()));
                    return Ok(());
                }
                self.state = State::PublishPending(stream_id);
                self.events
                    .push_back(ServerEvent::PublishRequested(PublishRequest {
                        app: self.app.clone(),
                        name: stream_name,
                        query: q.or_else(|| self.app_query.clone()),
                        tc_url: self.tc_url.clone(),
                        publish_type,
                        stream_id,
                    }));
            }
            "FCUnpublish" | "closeStream" | "deleteStream" => {
                let target = if name == "deleteStream" {
                    args.first()
                        .and_then(Value::as_number)
                        .map(|n| n as u32)
                        .unwrap_or(stream_id)
                } else if name == "closeStream" {
                    stream_id
                } else {
                    match self.state {
                        State::Publishing(s) => s,
                        _ => 0,
                    }
                };
                if let State::Publishing(sid) = self.state
                    && (sid == target || name == "FCUnpublish")
                {
                    let desc = format!("{} is now unpublished.", self.publish_name);
                    self.send_status(sid, status("status", "NetStream.Unpublish.Success", &desc));
                    self.state = State::Unpublished;
                    self.events.push_back(ServerEvent::Unpublished);
                }
                if name == "FCUnpublish" && tx != 0.0 {
                    self.result(tx, Value::Null, Value::Undefined);
                }
            }
            "play" | "play2" => {
                self.send_status(
                    stream_id,
                    status(
                        "error",
                        "NetStream.Play.Failed",
                        "This server takes publishers only; watch over HLS.",
                    ),
                );
                self.state = State::Closing;
            }
            "getStreamLength" => {
                self.result(tx, Value::Null, Value::Number(0.0));
            }
            _ => {
                // Unknown commands (e.g. `_checkbw`, `setDataFrame` as a command): answer with
                // `_error` when a reply is expected, never fail the connection for them.
                if tx != 0.0 {
                    self.conn.send_command(
                        CSID_COMMAND,
                        0,
                        &[
                            Value::string("_error"),
                            Value::Number(tx),
                            Value::Null,
                            status("error", "NetConnection.Call.Failed", "unknown command"),
                        ],
                    );
                }
            }
        }
        Ok(())
    }
}
