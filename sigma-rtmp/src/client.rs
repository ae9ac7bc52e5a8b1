//! The publish client session, sans-IO: connects, creates a stream, publishes, then turns
//! [`StreamInfo`] and [`Frame`]s back into FLV tags (RTMP 1.0 §7.2.1.1, §7.2.2.6).
//!
//! Same shape as the server session: [`ClientSession::input_mut`]/[`ClientSession::received`]
//! for input, [`ClientSession::poll_event`] to drive the command exchange,
//! [`ClientSession::poll_transmit`] for output. Once [`ClientEvent::Publishing`] is reported,
//! [`ClientSession::send_info`] and [`ClientSession::send_frame`] queue media and
//! [`ClientSession::finish`] sends `FCUnpublish` and `deleteStream`.

use crate::Error;
use crate::amf0::Value;
use crate::chunk::{ControlMessage, Message, message_type};
use crate::flv::{FlvMuxer, MuxedTag};
use crate::handshake::Handshake;
use crate::session::{CSID_COMMAND, Connection, SessionConfig, command_values};
use bytes::{Bytes, BytesMut};
use sigma_core::{Frame, StreamInfo};
use std::sync::Arc;
use std::time::Instant;

const CSID_STREAM: u32 = 4;
const CSID_VIDEO: u32 = 6;
const CSID_AUDIO: u32 = 7;
const TX_CONNECT: f64 = 1.0;
const TX_CREATE_STREAM: f64 = 4.0;

/// Where to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Application (first path segment), e.g. `live`.
    pub app: String,
    /// The URL sent as `tcUrl`, e.g. `rtmp://host:1935/live`.
    pub tc_url: String,
    /// Stream name, with any query string (`key?token=abc`).
    pub stream_name: String,
    /// Use the digest (Flash Player 9) handshake.
    pub digest_handshake: bool,
    /// Limits and timers.
    pub session: SessionConfig,
}

impl ClientConfig {
    /// Parses `rtmp://host[:port]/app/stream[?query]` into a config; returns it with
    /// `host:port` (port 1935 by default).
    pub fn from_url(url: &str) -> Result<(Self, String), Error> {
        let bad = |r: &str| Error::command("publish URL", format!("{r}: {url:?}"));
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| bad("not an rtmp:// URL"))?;
        let (host, path) = rest.split_once('/').ok_or_else(|| bad("no application"))?;
        let (app, stream) = path.split_once('/').ok_or_else(|| bad("no stream name"))?;
        if host.is_empty() || app.is_empty() || stream.is_empty() {
            return Err(bad("empty host, application or stream name"));
        }
        let addr = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:1935")
        };
        Ok((
            ClientConfig {
                app: app.to_owned(),
                tc_url: format!("rtmp://{host}/{app}"),
                stream_name: stream.to_owned(),
                digest_handshake: false,
                session: SessionConfig::default(),
            },
            addr,
        ))
    }
}

/// What the client session reports.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// `NetStream.Publish.Start`: media may be sent.
    Publishing {
        /// The message stream id the server gave us.
        stream_id: u32,
    },
    /// Any other `onStatus` from the server (level, code).
    Status {
        /// `status`, `warning` or `error`.
        level: String,
        /// Status code.
        code: String,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Handshaking,
    Connecting,
    CreatingStream,
    PublishSent(u32),
    Publishing(u32),
    Finished,
}

/// The client side of a publishing connection. See the module docs.
pub struct ClientSession {
    conn: Connection,
    config: ClientConfig,
    state: State,
    mux: FlvMuxer,
    last_ms: u32,
    pending: Option<ClientEvent>,
}

impl ClientSession {
    /// A session started at `now`; C0+C1 are queued at once.
    pub fn new(config: ClientConfig, now: Instant, seed: u64) -> Self {
        ClientSession {
            conn: Connection::new(
                config.session,
                Handshake::client(seed, config.digest_handshake),
                now,
            ),
            config,
            state: State::Handshaking,
            mux: FlvMuxer::new(),
            last_ms: 0,
            pending: None,
        }
    }

    /// The buffer socket reads go into.
    pub fn input_mut(&mut self) -> &mut BytesMut {
        &mut self.conn.input
    }

    /// Records that `n` bytes were appended to the input buffer at `now`.
    pub fn received(&mut self, now: Instant, n: usize) {
        self.conn.received(now, n);
    }

    /// Copies `data` into the input buffer.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.conn.handle_input(now, data);
    }

    /// Bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.conn.poll_transmit()
    }

    /// Bytes queued for sending and not yet taken by [`ClientSession::poll_transmit`].
    pub fn pending_output(&self) -> usize {
        self.conn.out.len()
    }

    /// When [`ClientSession::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conn.poll_timeout()
    }

    /// Checks the handshake and idle timeouts.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.conn.handle_timeout(now)
    }

    /// True once publishing started (and until [`ClientSession::finish`]).
    pub fn is_publishing(&self) -> bool {
        matches!(self.state, State::Publishing(_))
    }

    /// Drives the command exchange; returns the next event, `Ok(None)` when more input is needed.
    pub fn poll_event(&mut self) -> Result<Option<ClientEvent>, Error> {
        loop {
            if let Some(e) = self.pending.take() {
                return Ok(Some(e));
            }
            if self.state == State::Handshaking {
                // Runs the handshake; the first message can only come after `connect`.
                let m = self.conn.next_message()?;
                if self.conn.handshake.is_done() {
                    self.send_connect();
                    self.state = State::Connecting;
                }
                match m {
                    Some(m) => self.handle_message(m)?,
                    None if self.state == State::Handshaking => return Ok(None),
                    None => {}
                }
                continue;
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

    fn send_connect(&mut self) {
        let chunk = self.conn.config.out_chunk_size;
        self.conn.send_control(ControlMessage::SetChunkSize(chunk));
        let obj = Value::object([
            ("app", Value::string(self.config.app.clone())),
            ("type", Value::string("nonprivate")),
            (
                "flashVer",
                Value::string("FMLE/3.0 (compatible; sigma-rtmp)"),
            ),
            ("tcUrl", Value::string(self.config.tc_url.clone())),
        ]);
        self.conn.send_command(
            CSID_COMMAND,
            0,
            &[Value::string("connect"), Value::Number(TX_CONNECT), obj],
        );
    }

    fn handle_message(&mut self, m: Message) -> Result<(), Error> {
        if !matches!(
            m.type_id,
            message_type::COMMAND_AMF0 | message_type::COMMAND_AMF3
        ) {
            return Ok(());
        }
        let values = command_values(&m, self.conn.config.amf)?;
        let name = values.first().and_then(Value::as_str).unwrap_or_default();
        let tx = values.get(1).and_then(Value::as_number).unwrap_or(0.0);
        let info = values.get(3);
        let code = info
            .and_then(|i| i.get_str("code"))
            .unwrap_or_default()
            .to_owned();
        let level = info
            .and_then(|i| i.get_str("level"))
            .unwrap_or_default()
            .to_owned();
        let desc = info
            .and_then(|i| i.get_str("description"))
            .unwrap_or_default()
            .to_owned();
        match (name, &self.state) {
            ("_result", State::Connecting) if tx == TX_CONNECT => {
                let name = Value::string(self.config.stream_name.clone());
                for (cmd, tx) in [("releaseStream", 2.0), ("FCPublish", 3.0)] {
                    self.conn.send_command(
                        CSID_COMMAND,
                        0,
                        &[
                            Value::string(cmd),
                            Value::Number(tx),
                            Value::Null,
                            name.clone(),
                        ],
                    );
                }
                self.conn.send_command(
                    CSID_COMMAND,
                    0,
                    &[
                        Value::string("createStream"),
                        Value::Number(TX_CREATE_STREAM),
                        Value::Null,
                    ],
                );
                self.state = State::CreatingStream;
                self.pending = Some(ClientEvent::Connected);
            }
            ("_error", State::Connecting) if tx == TX_CONNECT => {
                return Err(Error::PublishRefused {
                    code,
                    description: desc,
                });
            }
            ("_result", State::CreatingStream) if tx == TX_CREATE_STREAM => {
                let sid = values
                    .get(3)
                    .and_then(Value::as_number)
                    .ok_or_else(|| Error::command("createStream", "no stream id in _result"))?;
                let sid = sid as u32;
                self.conn.send_command(
                    CSID_STREAM,
                    sid,
                    &[
                        Value::string("publish"),
                        Value::Number(5.0),
                        Value::Null,
                        Value::string(self.config.stream_name.clone()),
                        Value::string("live"),
                    ],
                );
                self.state = State::PublishSent(sid);
            }
            ("_error", State::CreatingStream) => {
                return Err(Error::PublishRefused {
                    code,
                    description: desc,
                });
            }
            ("onStatus", _) => {
                if let State::PublishSent(sid) = self.state
                    && code == "NetStream.Publish.Start"
                {
                    self.state = State::Publishing(sid);
                    self.pending = Some(ClientEvent::Publishing { stream_id: sid });
                } else if level == "error" {
                    return Err(Error::PublishRefused {
                        code,
                        description: desc,
                    });
                } else {
                    self.pending = Some(ClientEvent::Status { level, code });
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn stream_id(&self) -> Result<u32, Error> {
        match self.state {
            State::Publishing(sid) => Ok(sid),
            _ => Err(Error::NotReady("not publishing")),
        }
    }

    fn send_tag(&mut self, sid: u32, tag: MuxedTag) {
        let csid = match tag.type_id {
            message_type::VIDEO => CSID_VIDEO,
            message_type::AUDIO => CSID_AUDIO,
            _ => CSID_STREAM,
        };
        self.conn.send(&Message {
            csid,
            timestamp: tag.timestamp,
            type_id: tag.type_id,
            stream_id: sid,
            payload: tag.body,
        });
    }

    /// Sends `@setDataFrame onMetaData` and the sequence headers for `info`.
    pub fn send_info(&mut self, info: Arc<StreamInfo>) -> Result<(), Error> {
        let sid = self.stream_id()?;
        for tag in self.mux.set_info(info, self.last_ms) {
            self.send_tag(sid, tag);
        }
        Ok(())
    }

    /// Sends one frame (after [`ClientSession::send_info`]).
    pub fn send_frame(&mut self, frame: &Frame) -> Result<(), Error> {
        let sid = self.stream_id()?;
        let tag = self.mux.mux(frame)?;
        self.last_ms = tag.timestamp;
        self.send_tag(sid, tag);
        Ok(())
    }

    /// Ends the publish: `FCUnpublish` and `deleteStream` (RTMP 1.0 §7.2.2.3).
    pub fn finish(&mut self) -> Result<(), Error> {
        let sid = self.stream_id()?;
        self.conn.send_command(
            CSID_COMMAND,
            0,
            &[
                Value::string("FCUnpublish"),
                Value::Number(6.0),
                Value::Null,
                Value::string(self.config.stream_name.clone()),
            ],
        );
        self.conn.send_command(
            CSID_COMMAND,
            0,
            &[
                Value::string("deleteStream"),
                Value::Number(7.0),
                Value::Null,
                Value::Number(f64::from(sid)),
            ],
        );
        self.state = State::Finished;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::{AUDIO_TRACK, VIDEO_TRACK};
    use crate::session::{PublishRequest, Rejection, ServerEvent, ServerSession};
    use sigma_core::time::rescale;
    use sigma_core::{AacConfig, CodecConfig, H264Config, TrackInfo};
    use std::time::Duration;

    fn info() -> Arc<StreamInfo> {
        let v = H264Config::from_avcc(crate::flv::tests::avcc()).unwrap();
        let a = AacConfig::from_audio_specific_config(crate::flv::tests::asc()).unwrap();
        StreamInfo::new(
            1,
            vec![
                TrackInfo::new(VIDEO_TRACK, 90_000, CodecConfig::H264(v)).unwrap(),
                TrackInfo::new(AUDIO_TRACK, 44_100, CodecConfig::Aac(a)).unwrap(),
            ],
        )
        .unwrap()
    }

    /// Frames starting at `start_ms`: 25 fps video with B-frame composition offsets and sizes
    /// from 10 bytes to 40 KB (many chunks), and 44.1 kHz AAC frames every 23 ms.
    pub(crate) fn frames(start_ms: i64, n: usize) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut x: u32 = 12345;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for i in 0..n {
            let ms = start_ms + 40 * i as i64;
            let cts = [80, 0, 40, 120, 40][i % 5];
            let len = if i % 25 == 0 {
                40_000
            } else {
                10 + (rnd() % 3000) as usize
            };
            let data: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            out.push(Frame::new(
                VIDEO_TRACK,
                ms * 90,
                (ms + cts) * 90,
                i % 25 == 0,
                data.into(),
            ));
            let ams = start_ms + 23 * i as i64;
            let t = rescale(ams, 1000, 44_100);
            let data: Vec<u8> = (0..(100 + rnd() % 300)).map(|_| rnd() as u8).collect();
            out.push(Frame::new(AUDIO_TRACK, t, t, true, data.into()));
        }
        out
    }

    thread_local! {
        static CLIENT_EVENTS: std::cell::RefCell<Vec<ClientEvent>> = const { std::cell::RefCell::new(Vec::new()) };
        static CLIENT_ERROR: std::cell::RefCell<Option<Error>> = const { std::cell::RefCell::new(None) };
    }

    /// Moves bytes both ways until neither side has output, then returns the server events.
    fn pump(
        c: &mut ClientSession,
        s: &mut ServerSession,
        now: Instant,
        decide: &mut dyn FnMut(&PublishRequest) -> Option<Rejection>,
    ) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        loop {
            let mut moved = false;
            loop {
                match c.poll_event() {
                    Ok(Some(e)) => CLIENT_EVENTS.with(|v| v.borrow_mut().push(e)),
                    Ok(None) => break,
                    Err(e) => {
                        CLIENT_ERROR.with(|v| *v.borrow_mut() = Some(e));
                        break;
                    }
                }
            }
            while let Some(b) = c.poll_transmit() {
                // Deliver in small pieces: the server must cope with any split.
                for piece in b.chunks(1000) {
                    s.handle_input(now, piece);
                }
                moved = true;
            }
            while let Some(e) = s.poll_event().unwrap() {
                if let ServerEvent::PublishRequested(r) = &e {
                    match decide(r) {
                        None => s.accept_publish().unwrap(),
                        Some(why) => s.reject_publish(&why).unwrap(),
                    }
                }
                events.push(e);
            }
            while let Some(b) = s.poll_transmit() {
                c.handle_input(now, &b);
                moved = true;
            }
            if !moved {
                return events;
            }
        }
    }

    fn publish_and_check(start_ms: i64, digest: bool) {
        let t0 = Instant::now();
        let (mut config, _) =
            ClientConfig::from_url("rtmp://127.0.0.1/live/cam1?token=s3cret").unwrap();
        config.digest_handshake = digest;
        let mut c = ClientSession::new(config, t0, 1);
        let mut s = ServerSession::new(SessionConfig::default(), t0, 2);
        let mut requests = Vec::new();
        let mut events = pump(&mut c, &mut s, t0, &mut |r| {
            requests.push(r.clone());
            None
        });
        let client_events = CLIENT_EVENTS.with(|v| std::mem::take(&mut *v.borrow_mut()));
        assert_eq!(
            client_events,
            vec![
                ClientEvent::Connected,
                ClientEvent::Publishing { stream_id: 1 }
            ]
        );
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].app, "live");
        assert_eq!(requests[0].name, "cam1");
        assert_eq!(requests[0].query.as_deref(), Some("token=s3cret"));
        assert!(c.is_publishing() && s.is_publishing());

        let sent = frames(start_ms, 60);
        c.send_info(info()).unwrap();
        let mut clock = t0;
        for f in &sent {
            c.send_frame(f).unwrap();
            clock += Duration::from_millis(20);
            events.extend(pump(&mut c, &mut s, clock, &mut |_| None));
            s.handle_timeout(clock).unwrap();
        }
        c.finish().unwrap();
        events.extend(pump(&mut c, &mut s, clock, &mut |_| None));
        let got: Vec<&Frame> = events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(got.len(), sent.len());
        for (g, f) in got.iter().zip(&sent) {
            assert_eq!(*g, f, "same track, timestamps, flags and bytes");
        }
        let infos: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::StreamInfo(i) => Some(i),
                _ => None,
            })
            .collect();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].tracks(), info().tracks());
        assert!(events.iter().any(|e| matches!(e, ServerEvent::Metadata(m) if m.get("height") == Some(&Value::Number(240.0)))));
        assert!(matches!(events.last(), Some(ServerEvent::Unpublished)));
    }

    #[test]
    fn client_publishes_to_server_in_memory() {
        publish_and_check(0, false);
    }

    #[test]
    fn extended_timestamps_and_digest_handshake() {
        // Starts just below 2^24 ms (extended timestamps start mid-stream).
        publish_and_check(0xFF_FF00, true);
    }

    #[test]
    fn timestamps_across_the_32_bit_wrap() {
        publish_and_check((1i64 << 32) - 1500, false);
    }

    #[test]
    fn rejection_sends_the_status_and_closes() {
        let t0 = Instant::now();
        let (config, _) = ClientConfig::from_url("rtmp://h/live/taken").unwrap();
        let mut c = ClientSession::new(config, t0, 1);
        let mut s = ServerSession::new(SessionConfig::default(), t0, 2);
        pump(&mut c, &mut s, t0, &mut |_| {
            Some(Rejection::AlreadyPublishing(sigma_core::StreamKey::new(
                "live", "taken",
            )))
        });
        match CLIENT_ERROR
            .with(|v| v.borrow_mut().take())
            .ok_or("no error")
        {
            Ok(Error::PublishRefused { code, description }) => {
                assert_eq!(code, "NetStream.Publish.BadName");
                assert_eq!(description, "stream live/taken is already being published");
            }
            other => panic!("{other:?}"),
        }
        assert!(s.is_closing());
        assert!(!s.wants_input());
    }

    /// Each refusal reason reaches the publisher with its own `onStatus` code and its text.
    #[test]
    fn every_rejection_reaches_the_client_with_its_code() {
        let key = sigma_core::StreamKey::new("live", "taken");
        let cases = [
            (
                Rejection::InvalidName("a b".into()),
                "NetStream.Publish.BadName",
            ),
            (
                Rejection::AlreadyPublishing(key.clone()),
                "NetStream.Publish.BadName",
            ),
            (
                Rejection::UnknownApp("nope".into()),
                "NetStream.Publish.Denied",
            ),
            (Rejection::BadKey, "NetStream.Publish.Denied"),
            (Rejection::Disabled(key), "NetStream.Publish.Denied"),
            (
                Rejection::Denied("off air".into()),
                "NetStream.Publish.Denied",
            ),
            (
                Rejection::failed(Error::AdmissionTimeout(Duration::from_secs(1))),
                "NetStream.Publish.Failed",
            ),
        ];
        for (why, want) in cases {
            assert_eq!(why.code(), want, "{why:?}");
            let t0 = Instant::now();
            let (config, _) = ClientConfig::from_url("rtmp://h/live/taken").unwrap();
            let mut c = ClientSession::new(config, t0, 1);
            let mut s = ServerSession::new(SessionConfig::default(), t0, 2);
            let sent = why.clone();
            pump(&mut c, &mut s, t0, &mut |_| Some(sent.clone()));
            match CLIENT_ERROR.with(|v| v.borrow_mut().take()) {
                Some(Error::PublishRefused { code, description }) => {
                    assert_eq!(code, want);
                    assert_eq!(description, why.to_string());
                }
                other => panic!("{why:?}: {other:?}"),
            }
            assert!(s.is_closing());
        }
    }

    #[test]
    fn query_from_the_app_and_republish_on_one_connection() {
        let t0 = Instant::now();
        let config = ClientConfig {
            app: "live?token=abc".into(),
            tc_url: "rtmp://h/live?token=abc".into(),
            stream_name: "cam".into(),
            digest_handshake: false,
            session: SessionConfig::default(),
        };
        let mut c = ClientSession::new(config, t0, 1);
        let mut s = ServerSession::new(SessionConfig::default(), t0, 2);
        let mut reqs = Vec::new();
        pump(&mut c, &mut s, t0, &mut |r| {
            reqs.push(r.clone());
            None
        });
        assert_eq!(reqs.len(), 1);
        assert_eq!(
            (reqs[0].app.as_str(), reqs[0].query.as_deref()),
            ("live", Some("token=abc"))
        );
        c.send_info(info()).unwrap();
        c.send_frame(&frames(0, 1)[0]).unwrap();
        c.finish().unwrap();
        let ev = pump(&mut c, &mut s, t0, &mut |_| None);
        assert!(matches!(ev.last(), Some(ServerEvent::Unpublished)));
        // Publishing again on the same connection is a new stream.
        let mut b = BytesMut::new();
        crate::amf0::encode_all(
            &[
                Value::string("publish"),
                Value::Number(0.0),
                Value::Null,
                Value::string("cam2"),
                Value::string("live"),
            ],
            &mut b,
        );
        c.conn.send(&Message {
            csid: CSID_STREAM,
            timestamp: 0,
            type_id: message_type::COMMAND_AMF0,
            stream_id: 1,
            payload: b.freeze(),
        });
        let mut again = Vec::new();
        pump(&mut c, &mut s, t0, &mut |r| {
            again.push(r.name.clone());
            None
        });
        assert_eq!(again, vec!["cam2".to_string()]);
        assert!(s.is_publishing());
    }

    #[test]
    fn acknowledgements_and_ping() {
        use crate::chunk::{ChunkDecoder, ChunkLimits, UserControl};
        let t0 = Instant::now();
        let (config, _) = ClientConfig::from_url("rtmp://h/live/a").unwrap();
        let mut c = ClientSession::new(config, t0, 1);
        let mut s = ServerSession::new(SessionConfig::default(), t0, 2);
        // Everything the server sends, for a plain decoder to read from the start.
        let mut tap = BytesMut::new();
        let exchange = |c: &mut ClientSession, s: &mut ServerSession, tap: &mut BytesMut| loop {
            let mut moved = false;
            while c.poll_event().unwrap().is_some() {}
            while let Some(b) = c.poll_transmit() {
                s.handle_input(t0, &b);
                moved = true;
            }
            while let Some(e) = s.poll_event().unwrap() {
                if let ServerEvent::PublishRequested(_) = e {
                    s.accept_publish().unwrap();
                }
            }
            while let Some(b) = s.poll_transmit() {
                c.handle_input(t0, &b);
                tap.extend_from_slice(&b);
                moved = true;
            }
            if !moved {
                return;
            }
        };
        exchange(&mut c, &mut s, &mut tap);
        assert!(c.is_publishing());
        // The client announces a 10,000-byte window and pings; then sends ~60 KB of media.
        c.conn.send_control(ControlMessage::WindowAckSize(10_000));
        c.conn
            .send_control(ControlMessage::UserControl(UserControl::PingRequest(4242)));
        c.send_info(info()).unwrap();
        for f in frames(0, 20) {
            c.send_frame(&f).unwrap();
        }
        exchange(&mut c, &mut s, &mut tap);
        let mut from_server = tap.split_off(1 + 2 * 1536);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let mut acks = Vec::new();
        let mut pong = None;
        while let Some(m) = dec.decode(&mut from_server).unwrap() {
            match ControlMessage::parse(m.type_id, &m.payload) {
                Some(Ok(ControlMessage::Acknowledgement(n))) => acks.push(n),
                Some(Ok(ControlMessage::UserControl(UserControl::PingResponse(t)))) => {
                    pong = Some(t)
                }
                _ => {}
            }
        }
        assert!(from_server.is_empty());
        assert_eq!(pong, Some(4242));
        assert!(acks.len() >= 4, "{acks:?}");
        assert!(acks.windows(2).all(|w| w[1] - w[0] >= 10_000));
    }

    #[test]
    fn timeouts_come_from_the_caller_clock() {
        let t0 = Instant::now();
        let mut s = ServerSession::new(SessionConfig::default(), t0, 2);
        s.handle_input(t0, &[3; 100]);
        assert!(s.poll_event().unwrap().is_none());
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        s.handle_timeout(t0 + Duration::from_secs(9)).unwrap();
        let e = s.handle_timeout(t0 + Duration::from_secs(10)).unwrap_err();
        assert!(matches!(e, Error::HandshakeTimeout(_)));
        assert_eq!(s.poll_timeout(), None, "a failed session has no timers");
        // Once connected, the idle timer counts from the last input.
        let (config, _) = ClientConfig::from_url("rtmp://h/live/a").unwrap();
        let mut c = ClientSession::new(config, t0, 1);
        let mut s = ServerSession::new(SessionConfig::default(), t0, 2);
        let t1 = t0 + Duration::from_secs(5);
        pump(&mut c, &mut s, t1, &mut |_| None);
        assert!(s.is_publishing());
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(30)));
        s.handle_timeout(t1 + Duration::from_secs(29)).unwrap();
        let e = s.handle_timeout(t1 + Duration::from_secs(30)).unwrap_err();
        assert!(matches!(e, Error::IdleTimeout(_)), "{e}");
    }
}
