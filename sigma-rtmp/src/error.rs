//! The crate's one error type.
//!
//! Every error is fatal for the connection it happened on, and only for that connection.
//! "Need more bytes" is never an error: the sans-IO layers simply produce nothing until more
//! input arrives. Parse errors carry the byte position in the connection's input (counted from
//! the first byte after the handshake for the chunk layer) so the offending bytes can be found in
//! a capture.

use std::time::Duration;

/// Errors from the RTMP layers. Variants are grouped by layer; limits have their own variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- handshake (RTMP 1.0 §5.2) ----
    /// C0/S0 named a protocol version other than 3 (RTMP 1.0 §5.2.2); 6 is encrypted RTMPE,
    /// which is not supported.
    #[error("handshake: unsupported RTMP version {0} (only plain RTMP version 3 is supported)")]
    UnsupportedVersion(u8),
    /// The peer's S1 carried a digest that does not validate (client side only, and only when
    /// the peer claims to use the digest handshake).
    #[error("handshake: the peer's digest does not validate")]
    InvalidDigest,
    /// The handshake did not complete in time (a stalled or very slow peer).
    #[error("handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),

    // ---- connection ----
    /// Nothing was received for longer than the idle timeout.
    #[error("no data received for {0:?}")]
    IdleTimeout(Duration),
    /// The peer closed the connection in the middle of the handshake or of a message.
    #[error("connection closed by the peer {0}")]
    UnexpectedEof(&'static str),
    /// A socket error (tokio driver only).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    // ---- chunk stream (RTMP 1.0 §5.3, §5.4) ----
    /// Set Chunk Size named a size above the configured maximum.
    #[error("chunk size {size} at byte {pos} exceeds the limit of {limit}")]
    ChunkSizeTooLarge {
        /// Requested chunk size.
        size: u32,
        /// Configured maximum.
        limit: u32,
        /// Byte position of the chunk that carried the request.
        pos: u64,
    },
    /// A message header announced a length above the configured maximum.
    #[error(
        "message of {len} bytes on chunk stream {csid} at byte {pos} exceeds the limit of {limit}"
    )]
    MessageTooLarge {
        /// Announced message length.
        len: u32,
        /// Configured maximum.
        limit: u32,
        /// Chunk stream id.
        csid: u32,
        /// Byte position of the chunk header.
        pos: u64,
    },
    /// More chunk streams were in use, or more bytes were held in partly received messages,
    /// than the per-connection memory bound allows.
    #[error("per-connection memory bound hit at byte {pos}: {what} of {size} exceeds {limit}")]
    MemoryLimit {
        /// What was counted.
        what: &'static str,
        /// How much was seen.
        size: u64,
        /// The limit.
        limit: u64,
        /// Byte position.
        pos: u64,
    },
    /// The chunk stream is malformed: `reason` says how.
    #[error("invalid chunk at byte {pos} (chunk stream {csid}): {reason}")]
    InvalidChunk {
        /// What was wrong.
        reason: &'static str,
        /// Chunk stream id.
        csid: u32,
        /// Byte position of the chunk header.
        pos: u64,
    },
    /// A protocol control or user control message (RTMP 1.0 §5.4, §6.2) was malformed.
    #[error("invalid {what} message: {reason}")]
    InvalidControl {
        /// Which message.
        what: &'static str,
        /// What was wrong.
        reason: &'static str,
    },

    // ---- AMF ----
    /// AMF0/AMF3 data could not be decoded; `pos` is the offset within the message body.
    #[error("invalid AMF at offset {pos}: {reason}")]
    Amf {
        /// What was wrong.
        reason: &'static str,
        /// Offset within the encoded value sequence.
        pos: usize,
    },
    /// AMF nesting deeper than the limit.
    #[error("AMF nesting at offset {pos} deeper than the limit of {limit}")]
    AmfTooDeep {
        /// Configured maximum depth.
        limit: usize,
        /// Offset within the encoded value sequence.
        pos: usize,
    },
    /// AMF data decoding to more values than the limit (including values copied by reference).
    #[error("AMF data at offset {pos} holds more than {limit} values")]
    AmfTooManyValues {
        /// Configured maximum number of values.
        limit: usize,
        /// Offset within the encoded value sequence.
        pos: usize,
    },

    // ---- commands (RTMP 1.0 §7.2) ----
    /// A command was malformed or came at the wrong time.
    #[error("command {command:?}: {reason}")]
    Command {
        /// Command name.
        command: String,
        /// What was wrong.
        reason: String,
    },
    /// The server refused to publish (client side): `code` is the `onStatus` code.
    #[error("publish refused: {code} ({description})")]
    PublishRefused {
        /// Status code such as `NetStream.Publish.BadName`.
        code: String,
        /// The server's description.
        description: String,
    },

    // ---- FLV tags (FLV spec v10.1 §E.4.2/E.4.3, Enhanced RTMP v1) ----
    /// An audio or video tag body was malformed.
    #[error("invalid FLV {kind} tag at timestamp {timestamp} ms: {reason}")]
    InvalidTag {
        /// "audio" or "video".
        kind: &'static str,
        /// RTMP timestamp of the message.
        timestamp: u32,
        /// What was wrong.
        reason: &'static str,
    },
    /// A codec Sigma does not ingest (yet): the text names it.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),
    /// A coded frame arrived before the sequence header that configures its track.
    #[error("{kind} frame at timestamp {timestamp} ms before its sequence header")]
    FrameBeforeSequenceHeader {
        /// "video" or "audio".
        kind: &'static str,
        /// RTMP timestamp of the frame.
        timestamp: u32,
    },
    /// A sequence header (avcC or AudioSpecificConfig) was rejected by sigma-core.
    #[error("invalid codec configuration: {0}")]
    CodecConfig(#[source] sigma_core::Error),
    /// A track's timestamp jumped forward by more than the configured limit.
    #[error("track {track} timestamp jumped by {jump_ms} ms (limit {limit_ms} ms)")]
    TimestampJump {
        /// The track.
        track: u32,
        /// The jump in milliseconds.
        jump_ms: i64,
        /// Configured maximum.
        limit_ms: i64,
    },

    // ---- application ----
    /// The frame bus refused a frame (for example one larger than its byte window).
    #[error("frame bus: {0}")]
    Bus(#[source] sigma_core::Error),
    /// The application did not decide on a publish request within
    /// [`ServerConfig::admission_timeout`](crate::server::ServerConfig::admission_timeout); the
    /// publisher gets [`Rejection::Failed`](crate::session::Rejection::Failed).
    #[error("no admission decision within {0:?}")]
    AdmissionTimeout(Duration),
    /// The bus a [`Publisher`](crate::publisher::Publisher) was forwarding ended with an error.
    #[error("source stream failed: {0}")]
    SourceFailed(#[source] sigma_core::bus::StreamError),
    /// The session was used in a way its state does not allow (a programming error of the
    /// caller, such as sending frames before publishing started).
    #[error("session not ready: {0}")]
    NotReady(&'static str),
}

impl Error {
    pub(crate) fn command(command: &str, reason: impl Into<String>) -> Self {
        Error::Command {
            command: command.to_owned(),
            reason: reason.into(),
        }
    }
}
