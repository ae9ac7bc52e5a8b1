//! The chunk stream (RTMP 1.0 §5.3) and protocol control messages (§5.4, §6.2), sans-IO.
//!
//! [`ChunkDecoder`] reassembles messages from chunks of up to 65,599 interleaved chunk streams
//! (all four header formats of §5.3.1.2, extended timestamps of §5.3.1.3 including on type-3
//! chunks). It applies Set Chunk Size and Abort itself, since they change how later chunks are
//! read, and still returns them so the session can see them.
//!
//! **Copies.** The decoder works on the connection's input buffer (`BytesMut`). A message that
//! is complete in one chunk when its header is parsed is copied out of that buffer into a
//! buffer of its own size (one copy); any other message gets one `BytesMut` of its announced
//! length at its first chunk, and each chunk's payload is appended as soon as its bytes are in
//! the input, even partly (one copy). Frames are then `Bytes::slice`s of the message, so a
//! retained frame never keeps a read buffer alive: a `split_to` slice of the input would pin
//! the whole allocation (64 KiB or more per socket read) for as long as the frame lives, and
//! small audio frames are held for a minute in a playlist window. Only
//! [`ChunkDecoder::set_zero_copy_max`] opts into such slices. After
//! every `decode` that needs more input, only an incomplete chunk header (under 18 bytes) is
//! left in the input, so growing the input buffer for the next read never moves payload bytes:
//! every payload byte is copied at most once between the socket buffer and a frame.
//!
//! **Limits** ([`ChunkLimits`]): the chunk size a peer may set, the message length it may
//! announce, how many chunk streams it may use, and how many bytes of partly received messages
//! the connection may hold. Each is a distinct [`Error`] variant.
//!
//! [`ChunkEncoder`] writes messages as chunks, choosing the most compact header format
//! (§5.3.1.2) and repeating the extended timestamp on continuation chunks.

use crate::Error;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::HashMap;

/// The chunk size every connection starts with (RTMP 1.0 §5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Timestamps at or above this value use the extended timestamp field (§5.3.1.3).
const EXTENDED: u32 = 0x00FF_FFFF;

/// Message type ids (RTMP 1.0 §5.4, §7.1).
pub mod message_type {
    /// Set Chunk Size (§5.4.1).
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message (§5.4.2).
    pub const ABORT: u8 = 2;
    /// Acknowledgement (§5.4.3).
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message (§6.2).
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size (§5.4.4).
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth (§5.4.5).
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio (§7.1.4).
    pub const AUDIO: u8 = 8;
    /// Video (§7.1.5).
    pub const VIDEO: u8 = 9;
    /// AMF3 data message (§7.1.2).
    pub const DATA_AMF3: u8 = 15;
    /// AMF3 shared object (§7.1.3).
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// AMF3 command (§7.1.1).
    pub const COMMAND_AMF3: u8 = 17;
    /// AMF0 data message (§7.1.2).
    pub const DATA_AMF0: u8 = 18;
    /// AMF0 shared object (§7.1.3).
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// AMF0 command (§7.1.1).
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message (§7.1.6).
    pub const AGGREGATE: u8 = 22;
}

/// One reassembled message (RTMP 1.0 §5.3.1, §6.1).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wrapping 32-bit).
    pub timestamp: u32,
    /// Message type id ([`message_type`]).
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// The body.
    pub payload: Bytes,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("csid", &self.csid)
            .field("timestamp", &self.timestamp)
            .field("type_id", &self.type_id)
            .field("stream_id", &self.stream_id)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// Bounds on what a peer may make the decoder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest chunk size a peer may set (the protocol allows up to 2^31 - 1).
    pub max_chunk_size: u32,
    /// Largest message a peer may announce.
    pub max_message_len: u32,
    /// Most chunk streams tracked at once.
    pub max_chunk_streams: usize,
    /// Most bytes held in partly received messages, summed over chunk streams (a message's
    /// announced length counts from its first chunk, since its buffer is allocated then).
    pub max_buffered_bytes: usize,
}

impl Default for ChunkLimits {
    /// Chunk size up to 16 MiB - 1 (what some encoders set), messages up to 8 MiB (a 4K
    /// keyframe at very high bitrate stays below), 64 chunk streams, 16 MiB in flight.
    fn default() -> Self {
        ChunkLimits {
            max_chunk_size: 0x00FF_FFFF,
            max_message_len: 8 << 20,
            max_chunk_streams: 64,
            max_buffered_bytes: 16 << 20,
        }
    }
}

#[derive(Default)]
struct InState {
    /// Timestamp of the last message started on this chunk stream.
    timestamp: u32,
    /// The timestamp field of the last type 0/1/2 header (absolute for type 0, else a delta).
    delta: u32,
    len: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last type 0/1/2 header used the extended timestamp.
    extended: bool,
    has_header: bool,
    partial: Option<BytesMut>,
}

/// Reassembles messages from a chunk stream. See the module docs.
pub struct ChunkDecoder {
    limits: ChunkLimits,
    chunk_size: u32,
    streams: HashMap<u32, InState>,
    /// Bytes consumed so far, for error positions.
    pos: u64,
    buffered: usize,
    /// The chunk whose payload is being read: chunk stream id and bytes left in the chunk.
    current: Option<(u32, usize)>,
    zero_copy_max: usize,
}

impl ChunkDecoder {
    /// A decoder at the default chunk size.
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkDecoder {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            pos: 0,
            buffered: 0,
            current: None,
            zero_copy_max: 0,
        }
    }

    /// Single-chunk messages up to `n` bytes are waited for whole and cut out of the input
    /// without a copy; larger ones are copied into their message buffer as bytes arrive, so
    /// the input buffer never needs to hold more than about `n` bytes. Default 0 (always copy).
    ///
    /// A message cut out of the input shares the input's allocation, which then stays alive as
    /// long as the message (or a frame sliced from it) does: only for callers that drop
    /// messages quickly.
    pub fn set_zero_copy_max(&mut self, n: usize) {
        self.zero_copy_max = n;
    }

    /// The chunk size the peer currently uses.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bytes of input consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes held in partly received messages.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Reads chunks from the front of `input` until a message is complete (`Ok(Some)`) or the
    /// input holds no complete chunk (`Ok(None)`; the partial chunk stays in `input`).
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Message>, Error> {
        loop {
            match self.decode_chunk(input)? {
                Step::NeedMore => return Ok(None),
                Step::Continue => continue,
                Step::Message(m) => {
                    self.apply_control(&m)?;
                    return Ok(Some(m));
                }
            }
        }
    }

    fn apply_control(&mut self, m: &Message) -> Result<(), Error> {
        match m.type_id {
            message_type::SET_CHUNK_SIZE => {
                let size = read_u32(&m.payload, "Set Chunk Size")? & 0x7FFF_FFFF;
                if size == 0 {
                    return Err(Error::InvalidControl {
                        what: "Set Chunk Size",
                        reason: "chunk size 0",
                    });
                }
                if size > self.limits.max_chunk_size {
                    return Err(Error::ChunkSizeTooLarge {
                        size,
                        limit: self.limits.max_chunk_size,
                        pos: self.pos,
                    });
                }
                self.chunk_size = size;
            }
            message_type::ABORT => {
                let csid = read_u32(&m.payload, "Abort")?;
                if let Some(st) = self.streams.get_mut(&csid)
                    && st.partial.take().is_some()
                {
                    if self.current.is_some_and(|(c, _)| c == csid) {
                        self.current = None;
                    }
                    self.buffered = self.buffered.saturating_sub(st.len as usize);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Copies what is available of the chunk payload in progress into its message.
    fn continue_payload(&mut self, input: &mut BytesMut) -> Result<Step, Error> {
        let Some((csid, left)) = self.current else {
            return Ok(Step::Continue);
        };
        let n = left.min(input.len());
        if n == 0 {
            return Ok(Step::NeedMore);
        }
        let Some(st) = self.streams.get_mut(&csid) else {
            self.current = None;
            return Ok(Step::Continue);
        };
        let Some(buf) = st.partial.as_mut() else {
            self.current = None;
            return Ok(Step::Continue);
        };
        buf.extend_from_slice(&input[..n]);
        input.advance(n);
        self.pos += n as u64;
        self.current = (left > n).then_some((csid, left - n));
        if buf.len() < st.len as usize {
            return Ok(if self.current.is_some() {
                Step::NeedMore
            } else {
                Step::Continue
            });
        }
        self.current = None;
        let payload = st.partial.take().map(BytesMut::freeze).unwrap_or_default();
        self.buffered = self.buffered.saturating_sub(st.len as usize);
        Ok(Step::Message(Message {
            csid,
            timestamp: st.timestamp,
            type_id: st.type_id,
            stream_id: st.stream_id,
            payload,
        }))
    }

    fn decode_chunk(&mut self, input: &mut BytesMut) -> Result<Step, Error> {
        if self.current.is_some() {
            return self.continue_payload(input);
        }
        let pos = self.pos;
        let Some(&b0) = input.first() else {
            return Ok(Step::NeedMore);
        };
        let fmt = b0 >> 6;
        let (csid, mut at) = match b0 & 0x3F {
            0 => match input.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(Step::NeedMore),
            },
            1 => match (input.get(1), input.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + 256 * u32::from(b2), 3),
                _ => return Ok(Step::NeedMore),
            },
            c => (u32::from(c), 1),
        };
        let header_len = match fmt {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        if input.len() < at + header_len {
            return Ok(Step::NeedMore);
        }
        if !self.streams.contains_key(&csid) && self.streams.len() >= self.limits.max_chunk_streams
        {
            return Err(Error::MemoryLimit {
                what: "chunk streams",
                size: self.streams.len() as u64 + 1,
                limit: self.limits.max_chunk_streams as u64,
                pos,
            });
        }
        let bad = |reason| Error::InvalidChunk { reason, csid, pos };
        let st = self.streams.entry(csid).or_default();
        let h = &input[at..at + header_len];
        let ts_field = if fmt < 3 {
            u32::from_be_bytes([0, h[0], h[1], h[2]])
        } else {
            st.delta
        };
        let (len, type_id, stream_id) = match fmt {
            0 => (
                u32::from_be_bytes([0, h[3], h[4], h[5]]),
                h[6],
                u32::from_le_bytes([h[7], h[8], h[9], h[10]]),
            ),
            1 => (
                u32::from_be_bytes([0, h[3], h[4], h[5]]),
                h[6],
                st.stream_id,
            ),
            _ => (st.len, st.type_id, st.stream_id),
        };
        if fmt != 0 && !st.has_header {
            return Err(bad(
                "header type 1, 2 or 3 with no earlier header on this chunk stream",
            ));
        }
        at += header_len;
        // Extended timestamp (§5.3.1.3): present when the header's field is 0xFFFFFF, and on
        // type-3 chunks after such a header.
        let extended = if fmt < 3 {
            ts_field == EXTENDED
        } else {
            st.extended
        };
        let continuing = st.partial.is_some();
        let mut ext_value = None;
        if extended {
            let Some(e) = input.get(at..at + 4) else {
                return Ok(Step::NeedMore);
            };
            let e = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            if fmt == 3 && continuing {
                // Continuation chunk: the spec repeats the extended timestamp here, but some
                // encoders omit it; accept it only when it matches the one of this message.
                if e == st.delta {
                    at += 4;
                }
            } else {
                ext_value = Some(e);
                at += 4;
            }
        }
        if fmt < 3 && continuing {
            return Err(bad(
                "new message header before the previous message was complete",
            ));
        }

        if continuing {
            let Some(buf) = st.partial.as_ref() else {
                return Err(bad("continuation without a message in progress"));
            };
            let this_len = (st.len as usize - buf.len()).min(self.chunk_size as usize);
            input.advance(at);
            self.pos += at as u64;
            self.current = Some((csid, this_len));
            return self.continue_payload(input);
        }

        // First chunk of a message: work out its header.
        let field = ext_value.unwrap_or(ts_field);
        if len > self.limits.max_message_len {
            return Err(Error::MessageTooLarge {
                len,
                limit: self.limits.max_message_len,
                csid,
                pos,
            });
        }
        let this_len = len.min(self.chunk_size) as usize;
        let whole = this_len == len as usize;
        let complete_now = whole && input.len() >= at + this_len;
        if whole && !complete_now && this_len <= self.zero_copy_max {
            // Wait for the whole single-chunk message so it can be cut out without a copy.
            return Ok(Step::NeedMore);
        }
        if !complete_now {
            let would = self.buffered + len as usize;
            if would > self.limits.max_buffered_bytes {
                return Err(Error::MemoryLimit {
                    what: "bytes in partly received messages",
                    size: would as u64,
                    limit: self.limits.max_buffered_bytes as u64,
                    pos,
                });
            }
        }
        // Commit the header.
        let timestamp = if fmt == 0 {
            field
        } else {
            st.timestamp.wrapping_add(field)
        };
        if fmt < 3 {
            st.extended = extended;
        }
        st.delta = field;
        st.timestamp = timestamp;
        st.len = len;
        st.type_id = type_id;
        st.stream_id = stream_id;
        st.has_header = true;
        input.advance(at);
        self.pos += at as u64;
        if complete_now {
            self.pos += this_len as u64;
            let payload = if this_len <= self.zero_copy_max {
                input.split_to(this_len).freeze()
            } else {
                // One copy into a buffer of the message's own size: a `split_to` slice would
                // keep the whole read buffer (64 KiB or more) alive for as long as any frame
                // cut from it is retained, so a 300-byte audio frame held in a playlist window
                // for a minute would hold a read buffer too.
                let payload = Bytes::copy_from_slice(&input[..this_len]);
                input.advance(this_len);
                payload
            };
            return Ok(Step::Message(Message {
                csid,
                timestamp,
                type_id,
                stream_id,
                payload,
            }));
        }
        self.buffered += len as usize;
        st.partial = Some(BytesMut::with_capacity(len as usize));
        self.current = Some((csid, this_len));
        self.continue_payload(input)
    }
}

enum Step {
    NeedMore,
    Continue,
    Message(Message),
}

fn read_u32(p: &[u8], what: &'static str) -> Result<u32, Error> {
    let mut p = p;
    p.try_get_u32().map_err(|_| Error::InvalidControl {
        what,
        reason: "shorter than 4 bytes",
    })
}

#[derive(Default, Clone)]
struct OutState {
    timestamp: u32,
    delta: u32,
    len: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    has_header: bool,
}

/// Writes messages as chunks (RTMP 1.0 §5.3). Payloads are copied once, into `out`.
pub struct ChunkEncoder {
    chunk_size: u32,
    streams: HashMap<u32, OutState>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Where an interleaved message is in its chunks.
struct Cursor<'a> {
    msg: &'a Message,
    sent: usize,
    ext: Option<u32>,
}

impl ChunkEncoder {
    /// An encoder at the default chunk size.
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
        }
    }

    /// The chunk size in use for output.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Switches to `size` for later chunks. Send [`ControlMessage::SetChunkSize`] first, so the
    /// peer switches at the same point.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, 0x7FFF_FFFF);
    }

    /// Appends `msg` as chunks to `out`.
    pub fn encode(&mut self, msg: &Message, out: &mut BytesMut) {
        let mut cur = self.begin(msg, out);
        while self.next_chunk(&mut cur, out) {}
    }

    /// Appends several messages with their chunks interleaved in the given `order`: each entry
    /// is an index into `messages` whose next chunk is written. Messages must use distinct
    /// chunk stream ids. Indexes of finished messages are skipped, and whatever `order` leaves
    /// unsent is written at the end in message order.
    pub fn encode_interleaved(
        &mut self,
        messages: &[Message],
        order: &[usize],
        out: &mut BytesMut,
    ) {
        let mut cursors: Vec<Option<Cursor<'_>>> = messages.iter().map(|_| None).collect();
        let mut done = vec![false; messages.len()];
        let mut step = |this: &mut Self, i: usize| -> bool {
            if i >= messages.len() || done[i] {
                return false;
            }
            let more = match &mut cursors[i] {
                None => {
                    let c = this.begin(&messages[i], out);
                    let more = c.sent < messages[i].payload.len();
                    cursors[i] = Some(c);
                    more
                }
                Some(c) => this.next_chunk(c, out) && c.sent < c.msg.payload.len(),
            };
            done[i] = !more;
            more
        };
        for &i in order {
            step(self, i);
        }
        for i in 0..messages.len() {
            while step(self, i) {}
        }
    }

    fn basic_header(fmt: u8, csid: u32, out: &mut BytesMut) {
        let fmt = fmt << 6;
        match csid {
            2..=63 => out.put_u8(fmt | csid as u8),
            64..=319 => {
                out.put_u8(fmt);
                out.put_u8((csid - 64) as u8);
            }
            _ => {
                let c = csid.clamp(320, 65_599) - 64;
                out.put_u8(fmt | 1);
                out.put_u8((c & 0xFF) as u8);
                out.put_u8((c >> 8) as u8);
            }
        }
    }

    /// Writes the first chunk of `msg` and returns its cursor.
    fn begin<'a>(&mut self, msg: &'a Message, out: &mut BytesMut) -> Cursor<'a> {
        let len = msg.payload.len() as u32;
        let st = self.streams.entry(msg.csid).or_default();
        let delta = msg.timestamp.wrapping_sub(st.timestamp);
        let fmt = if !st.has_header || st.stream_id != msg.stream_id || delta > 0x7FFF_FFFF {
            0
        } else if st.len != len || st.type_id != msg.type_id {
            1
        } else if delta != st.delta {
            2
        } else {
            3
        };
        let field = if fmt == 0 { msg.timestamp } else { delta };
        Self::basic_header(fmt, msg.csid, out);
        let extended = if fmt == 3 {
            st.extended
        } else {
            field >= EXTENDED
        };
        if fmt < 3 {
            out.put_uint(u64::from(field.min(EXTENDED)), 3);
        }
        if fmt < 2 {
            out.put_uint(u64::from(len), 3);
            out.put_u8(msg.type_id);
        }
        if fmt == 0 {
            out.put_u32_le(msg.stream_id);
        }
        if extended {
            out.put_u32(field);
        }
        *st = OutState {
            timestamp: msg.timestamp,
            delta: field,
            len,
            type_id: msg.type_id,
            stream_id: msg.stream_id,
            extended,
            has_header: true,
        };
        let n = msg.payload.len().min(self.chunk_size as usize);
        out.put_slice(&msg.payload[..n]);
        Cursor {
            msg,
            sent: n,
            ext: extended.then_some(field),
        }
    }

    /// Writes the next continuation chunk; false when the message was already complete.
    fn next_chunk(&mut self, cur: &mut Cursor<'_>, out: &mut BytesMut) -> bool {
        let total = cur.msg.payload.len();
        if cur.sent >= total {
            return false;
        }
        Self::basic_header(3, cur.msg.csid, out);
        if let Some(e) = cur.ext {
            out.put_u32(e);
        }
        let n = (total - cur.sent).min(self.chunk_size as usize);
        out.put_slice(&cur.msg.payload[cur.sent..cur.sent + n]);
        cur.sent += n;
        true
    }
}

/// User Control events (RTMP 1.0 §7.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserControl {
    /// Stream Begin: the stream became functional.
    StreamBegin(u32),
    /// Stream EOF: playback ended.
    StreamEof(u32),
    /// Stream Dry: no more data for now.
    StreamDry(u32),
    /// Set Buffer Length: the client's buffer in milliseconds.
    SetBufferLength {
        /// Stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        millis: u32,
    },
    /// Stream Is Recorded.
    StreamIsRecorded(u32),
    /// Ping Request carrying the sender's timestamp.
    PingRequest(u32),
    /// Ping Response echoing the timestamp of the request.
    PingResponse(u32),
    /// Any other event type (ignored).
    Other(u16),
}

/// Protocol control messages (RTMP 1.0 §5.4) and User Control (§6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlMessage {
    /// Set Chunk Size (§5.4.1).
    SetChunkSize(u32),
    /// Abort the message in progress on a chunk stream (§5.4.2).
    Abort(u32),
    /// Acknowledgement: bytes received so far (§5.4.3).
    Acknowledgement(u32),
    /// Window Acknowledgement Size (§5.4.4).
    WindowAckSize(u32),
    /// Set Peer Bandwidth (§5.4.5): window size and limit type (0 hard, 1 soft, 2 dynamic).
    SetPeerBandwidth(u32, u8),
    /// User Control (§6.2).
    UserControl(UserControl),
}

impl ControlMessage {
    /// Parses a protocol control message; `None` for other message types.
    pub fn parse(type_id: u8, payload: &[u8]) -> Option<Result<Self, Error>> {
        use message_type::*;
        let mut p = payload;
        let short = |what| Error::InvalidControl {
            what,
            reason: "too short",
        };
        Some(match type_id {
            SET_CHUNK_SIZE => {
                read_u32(p, "Set Chunk Size").map(|v| Self::SetChunkSize(v & 0x7FFF_FFFF))
            }
            ABORT => read_u32(p, "Abort").map(Self::Abort),
            ACKNOWLEDGEMENT => read_u32(p, "Acknowledgement").map(Self::Acknowledgement),
            WINDOW_ACK_SIZE => read_u32(p, "Window Acknowledgement Size").map(Self::WindowAckSize),
            SET_PEER_BANDWIDTH => (|| {
                let size = p.try_get_u32().map_err(|_| short("Set Peer Bandwidth"))?;
                let limit = p.try_get_u8().unwrap_or(2);
                Ok(Self::SetPeerBandwidth(size, limit))
            })(),
            USER_CONTROL => (|| {
                let what = "User Control";
                let ev = p.try_get_u16().map_err(|_| short(what))?;
                let mut u32_arg = || p.try_get_u32().map_err(|_| short(what));
                let uc = match ev {
                    0 => UserControl::StreamBegin(u32_arg()?),
                    1 => UserControl::StreamEof(u32_arg()?),
                    2 => UserControl::StreamDry(u32_arg()?),
                    3 => {
                        let stream_id = u32_arg()?;
                        let millis = u32_arg()?;
                        UserControl::SetBufferLength { stream_id, millis }
                    }
                    4 => UserControl::StreamIsRecorded(u32_arg()?),
                    6 => UserControl::PingRequest(u32_arg()?),
                    7 => UserControl::PingResponse(u32_arg()?),
                    other => UserControl::Other(other),
                };
                Ok(Self::UserControl(uc))
            })(),
            _ => return None,
        })
    }

    /// The message: chunk stream 2, message stream 0 (§5.4), timestamp `timestamp`.
    pub fn to_message(&self, timestamp: u32) -> Message {
        use message_type::*;
        let mut b = BytesMut::with_capacity(10);
        let type_id = match *self {
            Self::SetChunkSize(v) => {
                b.put_u32(v & 0x7FFF_FFFF);
                SET_CHUNK_SIZE
            }
            Self::Abort(v) => {
                b.put_u32(v);
                ABORT
            }
            Self::Acknowledgement(v) => {
                b.put_u32(v);
                ACKNOWLEDGEMENT
            }
            Self::WindowAckSize(v) => {
                b.put_u32(v);
                WINDOW_ACK_SIZE
            }
            Self::SetPeerBandwidth(v, limit) => {
                b.put_u32(v);
                b.put_u8(limit);
                SET_PEER_BANDWIDTH
            }
            Self::UserControl(uc) => {
                let (ev, a, c) = match uc {
                    UserControl::StreamBegin(s) => (0, s, None),
                    UserControl::StreamEof(s) => (1, s, None),
                    UserControl::StreamDry(s) => (2, s, None),
                    UserControl::SetBufferLength { stream_id, millis } => {
                        (3, stream_id, Some(millis))
                    }
                    UserControl::StreamIsRecorded(s) => (4, s, None),
                    UserControl::PingRequest(t) => (6, t, None),
                    UserControl::PingResponse(t) => (7, t, None),
                    UserControl::Other(e) => (e, 0, None),
                };
                b.put_u16(ev);
                b.put_u32(a);
                if let Some(c) = c {
                    b.put_u32(c);
                }
                USER_CONTROL
            }
        };
        Message {
            csid: 2,
            timestamp,
            type_id,
            stream_id: 0,
            payload: b.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(csid: u32, timestamp: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> Message {
        Message {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn decode_all(dec: &mut ChunkDecoder, input: &mut BytesMut) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = dec.decode(input).unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn spec_example_type_3_after_type_2() {
        // RTMP 1.0 §5.3.2.1: audio messages 1000, +20, +20, +20 with 32-byte bodies.
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        let ts = [1000u32, 1020, 1040, 1060];
        for t in ts {
            enc.encode(&msg(3, t, 8, 12345, &[7; 32]), &mut out);
        }
        // Header sizes: 12, 4, 1, 1 (+32 payload each).
        assert_eq!(out.len(), 12 + 4 + 1 + 1 + 4 * 32);
        assert_eq!(out[12 + 32] >> 6, 2);
        assert_eq!(out[12 + 32 + 4 + 32] >> 6, 3);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let got = decode_all(&mut dec, &mut out);
        assert_eq!(got.iter().map(|m| m.timestamp).collect::<Vec<_>>(), ts);
        assert!(got.iter().all(|m| m.stream_id == 12345 && m.type_id == 8));
    }

    #[test]
    fn spec_example_message_split_into_chunks() {
        // RTMP 1.0 §5.3.2.2: a 307-byte video message at chunk size 128 = 3 chunks.
        let body: Vec<u8> = (0..307u32).map(|i| i as u8).collect();
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.encode(&msg(4, 1000, 9, 12346, &body), &mut out);
        assert_eq!(out.len(), 12 + 128 + 1 + 128 + 1 + 51);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        // Feed a byte at a time: "need more" is never an error.
        let mut input = BytesMut::new();
        let mut got = Vec::new();
        for b in out.iter() {
            input.put_u8(*b);
            if let Some(m) = dec.decode(&mut input).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].payload[..], &body[..]);
        assert_eq!(dec.position(), out.len() as u64);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn single_chunk_messages_are_cut_out_only_when_zero_copy_is_asked() {
        let mut enc = ChunkEncoder::new();
        let mut wire = BytesMut::new();
        enc.encode(&msg(6, 5, 9, 1, &[9; 100]), &mut wire);
        for (zero_copy_max, in_input) in [(0, false), (100, true)] {
            let mut out = wire.clone();
            let base = out.as_ptr() as usize;
            let mut dec = ChunkDecoder::new(ChunkLimits::default());
            dec.set_zero_copy_max(zero_copy_max);
            let m = dec.decode(&mut out).unwrap().unwrap();
            assert_eq!(&m.payload[..], &[9; 100][..]);
            assert_eq!(
                m.payload.as_ptr() as usize == base + 12,
                in_input,
                "zero_copy_max {zero_copy_max}: payload points into the input buffer"
            );
        }
    }

    /// Regression (server RSS grew for minutes with one stream): a publisher at chunk size
    /// 4096 sends audio-sized messages, one chunk each, and the driver reads the socket into
    /// one input buffer, reserving 64 KiB before every read as `server.rs` does. A small
    /// message cut out of that buffer would keep the whole allocation alive while its frame
    /// sits in a playlist window (a minute), one 64 KiB buffer per read.
    #[test]
    fn small_messages_do_not_pin_the_read_buffer() {
        const READ: usize = 64 << 10;
        let mut enc = ChunkEncoder::new();
        let mut wire = BytesMut::new();
        enc.encode(&ControlMessage::SetChunkSize(4096).to_message(0), &mut wire);
        enc.set_chunk_size(4096);
        let body = |i: u32| vec![i as u8; 100 + (i as usize * 37) % 300];
        let n = 3000u32;
        for i in 0..n {
            enc.encode(&msg(4, i * 21, 8, 1, &body(i)), &mut wire);
        }
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let mut input = BytesMut::with_capacity(READ);
        let mut kept = Vec::new();
        let mut pinned = 0;
        for read in wire.chunks(1400) {
            input.reserve(READ);
            // The allocation this read lands in, alive (held by `input`) while we check.
            let start = input.as_ptr() as usize;
            let end = start + input.capacity();
            input.extend_from_slice(read);
            while let Some(m) = dec.decode(&mut input).unwrap() {
                let p = m.payload.as_ptr() as usize;
                if m.type_id == 8 && (start..end).contains(&p) {
                    pinned += 1;
                }
                // Retained, as a playlist window retains frames.
                kept.push(m);
            }
        }
        let audio: Vec<&Message> = kept.iter().filter(|m| m.type_id == 8).collect();
        assert_eq!(audio.len(), n as usize);
        for (i, m) in (0..n).zip(&audio) {
            assert_eq!(m.payload[..], body(i)[..]);
        }
        assert_eq!(
            pinned, 0,
            "{pinned} of {n} small messages are slices of a 64 KiB read buffer"
        );
    }

    #[test]
    fn extended_timestamps_on_type_3_chunks() {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        let body = vec![1u8; 300];
        enc.encode(&msg(5, 0x0100_0000, 9, 1, &body), &mut out);
        // 12-byte header + 4 ext, then two type-3 chunks each with 4 ext bytes.
        assert_eq!(out.len(), 16 + 128 + 5 + 128 + 5 + 44);
        assert_eq!(&out[1 + 128 + 16..][..4], &0x0100_0000u32.to_be_bytes());
        enc.encode(&msg(5, 0x0100_0000 + 40, 9, 1, &body), &mut out);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let got = decode_all(&mut dec, &mut out);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].timestamp, 0x0100_0000);
        assert_eq!(got[1].timestamp, 0x0100_0000 + 40);
        assert!(got.iter().all(|m| m.payload.len() == 300));
    }

    #[test]
    fn continuation_without_repeated_extended_timestamp_is_accepted() {
        // Some encoders omit the extended timestamp on continuation chunks.
        let mut out = BytesMut::new();
        out.put_u8(0x04);
        out.put_slice(&[0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0]);
        out.put_u32(0x0200_0000);
        out.put_slice(&[0xAB; 128]);
        out.put_u8(0xC4);
        out.put_slice(&[0xCD; 72]);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let m = dec.decode(&mut out).unwrap().unwrap();
        assert_eq!(m.timestamp, 0x0200_0000);
        assert_eq!(&m.payload[128..], &[0xCD; 72][..]);
    }

    #[test]
    fn set_chunk_size_and_abort() {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.encode(&ControlMessage::SetChunkSize(4096).to_message(0), &mut out);
        enc.set_chunk_size(4096);
        enc.encode(&msg(6, 0, 9, 1, &[3; 3000]), &mut out);
        // Start a 300-byte message on csid 7 (first chunk only), abort it, then a new one.
        let mut part = BytesMut::new();
        let mut small = ChunkEncoder::new();
        small.set_chunk_size(4096);
        small.encode(&msg(7, 0, 8, 1, &[1; 5000]), &mut part);
        out.extend_from_slice(&part[..12 + 4096]);
        enc.encode(&ControlMessage::Abort(7).to_message(0), &mut out);
        enc.encode(&msg(7, 10, 8, 1, &[2; 10]), &mut out);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let got = decode_all(&mut dec, &mut out);
        assert_eq!(dec.chunk_size(), 4096);
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].payload.len(), 3000);
        assert_eq!(got[3].payload.len(), 10);
        assert_eq!(got[3].timestamp, 10);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn limits_are_typed_errors() {
        let limits = ChunkLimits::default();
        // Chunk size 2^31 - 1.
        let mut out = BytesMut::new();
        ChunkEncoder::new().encode(
            &ControlMessage::SetChunkSize(0x7FFF_FFFF).to_message(0),
            &mut out,
        );
        let e = ChunkDecoder::new(limits).decode(&mut out).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ChunkSizeTooLarge {
                    size: 0x7FFF_FFFF,
                    ..
                }
            ),
            "{e}"
        );
        // A 16 MiB - 1 message (the largest the 24-bit field can say).
        let mut out = BytesMut::from(&[0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0][..]);
        let e = ChunkDecoder::new(limits).decode(&mut out).unwrap_err();
        assert!(
            matches!(
                e,
                Error::MessageTooLarge {
                    len: 0xFF_FFFF,
                    csid: 6,
                    pos: 0,
                    ..
                }
            ),
            "{e}"
        );
        // Too many chunk streams.
        let mut out = BytesMut::new();
        let mut enc = ChunkEncoder::new();
        for csid in 3..200 {
            enc.encode(&msg(csid, 0, 9, 1, &[0; 4]), &mut out);
        }
        let mut dec = ChunkDecoder::new(limits);
        let e = loop {
            match dec.decode(&mut out) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("no error"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(
                e,
                Error::MemoryLimit {
                    what: "chunk streams",
                    ..
                }
            ),
            "{e}"
        );
        // Too many bytes in partial messages: 8 MiB messages started on three chunk streams.
        let mut out = BytesMut::new();
        for csid in 3..6u8 {
            out.put_slice(&[csid, 0, 0, 0, 0x80, 0, 0, 9, 1, 0, 0, 0]);
            out.put_slice(&[0; 128]);
        }
        let mut dec = ChunkDecoder::new(limits);
        assert!(matches!(
            dec.decode(&mut out),
            Err(Error::MemoryLimit { .. })
        ));
        // No earlier header.
        let mut out = BytesMut::from(&[0xC5u8, 1, 2][..]);
        assert!(matches!(
            ChunkDecoder::new(limits).decode(&mut out),
            Err(Error::InvalidChunk { csid: 5, .. })
        ));
    }

    #[test]
    fn control_messages_round_trip() {
        let all = [
            ControlMessage::SetChunkSize(60_000),
            ControlMessage::Abort(9),
            ControlMessage::Acknowledgement(123_456),
            ControlMessage::WindowAckSize(2_500_000),
            ControlMessage::SetPeerBandwidth(2_500_000, 2),
            ControlMessage::UserControl(UserControl::StreamBegin(1)),
            ControlMessage::UserControl(UserControl::StreamEof(1)),
            ControlMessage::UserControl(UserControl::StreamDry(1)),
            ControlMessage::UserControl(UserControl::SetBufferLength {
                stream_id: 1,
                millis: 3000,
            }),
            ControlMessage::UserControl(UserControl::StreamIsRecorded(1)),
            ControlMessage::UserControl(UserControl::PingRequest(77)),
            ControlMessage::UserControl(UserControl::PingResponse(77)),
        ];
        for c in all {
            let m = c.to_message(0);
            assert_eq!(
                ControlMessage::parse(m.type_id, &m.payload)
                    .unwrap()
                    .unwrap(),
                c
            );
        }
        assert!(ControlMessage::parse(4, &[0, 6]).unwrap().is_err());
        assert!(ControlMessage::parse(9, &[]).is_none());
    }

    fn arb_messages() -> impl Strategy<Value = Vec<Message>> {
        prop::collection::vec(
            (
                prop_oneof![2u32..10, 60u32..70, 300u32..330, 65_000u32..65_599],
                prop_oneof![0u32..2000, 0xFF_FFF0u32..0x100_0010, any::<u32>()],
                prop_oneof![Just(8u8), Just(9u8), Just(18u8), Just(20u8)],
                0u32..3,
                prop::collection::vec(any::<u8>(), 0..700),
            ),
            1..24,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(csid, timestamp, type_id, stream_id, payload)| Message {
                    csid,
                    timestamp,
                    type_id,
                    stream_id,
                    payload: Bytes::from(payload),
                })
                .collect()
        })
    }

    proptest! {
        /// Messages encoded at a random chunk size, with chunks of messages on distinct chunk
        /// streams interleaved in a random order and the input fed in random slices, decode to
        /// the same messages (per chunk stream, in order).
        #[test]
        fn chunk_round_trip(
            messages in arb_messages(),
            chunk_size in prop_oneof![1u32..16, 16u32..300, Just(128u32), 300u32..70_000],
            order in prop::collection::vec(0usize..24, 0..200),
            cuts in prop::collection::vec(1usize..500, 1..50),
            zero_copy_max in prop_oneof![Just(0usize), Just(100usize), Just(64usize << 10)],
        ) {
            let mut enc = ChunkEncoder::new();
            let mut out = BytesMut::new();
            enc.encode(&ControlMessage::SetChunkSize(chunk_size).to_message(0), &mut out);
            enc.set_chunk_size(chunk_size);
            // Batches of messages with distinct csids are interleaved together.
            let mut expected: Vec<Message> = Vec::new();
            let mut batch: Vec<Message> = Vec::new();
            let flush = |enc: &mut ChunkEncoder, batch: &mut Vec<Message>, out: &mut BytesMut, expected: &mut Vec<Message>| {
                enc.encode_interleaved(batch, &order, out);
                expected.append(batch);
            };
            for m in messages {
                if batch.iter().any(|b| b.csid == m.csid) {
                    flush(&mut enc, &mut batch, &mut out, &mut expected);
                }
                batch.push(m);
            }
            flush(&mut enc, &mut batch, &mut out, &mut expected);

            let mut dec = ChunkDecoder::new(ChunkLimits { max_chunk_size: 0x7FFF_FFFF, ..ChunkLimits::default() });
            dec.set_zero_copy_max(zero_copy_max);
            let mut input = BytesMut::new();
            let mut got = Vec::new();
            let mut rest = &out[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                i += 1;
                input.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                while let Some(m) = dec.decode(&mut input).unwrap() {
                    got.push(m);
                }
                if zero_copy_max == 0 {
                    // Copy-at-most-once: no payload byte is left behind in the input buffer.
                    prop_assert!(input.len() < 18, "{} bytes left in the input", input.len());
                }
            }
            prop_assert!(input.is_empty());
            prop_assert_eq!(dec.buffered(), 0);
            prop_assert_eq!(got.remove(0).type_id, message_type::SET_CHUNK_SIZE);
            // Per chunk stream, order is preserved; across streams it follows the interleaving.
            let mut by_csid: HashMap<u32, Vec<Message>> = HashMap::new();
            for m in &expected {
                by_csid.entry(m.csid).or_default().push(m.clone());
            }
            let mut got_by: HashMap<u32, Vec<Message>> = HashMap::new();
            for m in got {
                got_by.entry(m.csid).or_default().push(m);
            }
            prop_assert_eq!(got_by, by_csid);
        }

        /// Random bytes never panic the decoder, and it never holds more than its bound.
        #[test]
        fn garbage_is_an_error_or_nothing(data in prop::collection::vec(any::<u8>(), 0..2000)) {
            let mut dec = ChunkDecoder::new(ChunkLimits::default());
            let mut input = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = dec.decode(&mut input) {}
            prop_assert!(dec.buffered() <= ChunkLimits::default().max_buffered_bytes);
        }
    }
}
