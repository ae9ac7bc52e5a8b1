//! Typed stream lifecycle events, for logs, webhooks and analytics.

use crate::StreamInfo;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// Names a stream: the RTMP application and the stream name within it (`live` / `cam1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// Application, the first path segment of the publish URL.
    pub app: String,
    /// Stream name, without any query string.
    pub name: String,
}

impl StreamKey {
    /// A key for `app`/`name`.
    pub fn new(app: impl Into<String>, name: impl Into<String>) -> Self {
        StreamKey {
            app: app.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

/// Why a stream stopped being published.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnpublishReason {
    /// The publisher said so (FCUnpublish / deleteStream) or closed the connection cleanly.
    Finished,
    /// The connection failed or timed out; the text says how.
    ConnectionLost(String),
    /// The publisher sent something the server could not accept; the text says what.
    ProtocolError(String),
    /// Another publisher took the stream over.
    TakenOver,
    /// The server is shutting down.
    Shutdown,
}

/// Something that happened to a stream. `at` is the wall-clock time the caller observed it
/// (this crate reads no clock).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StreamEvent {
    /// A publisher was accepted and the stream is live.
    Published {
        /// The stream.
        stream: StreamKey,
        /// The publisher's address, when known.
        remote: Option<SocketAddr>,
        /// When.
        at: SystemTime,
    },
    /// The stream's tracks changed (first configuration, or a new one mid-stream).
    CodecChanged {
        /// The stream.
        stream: StreamKey,
        /// The new tracks.
        info: Arc<StreamInfo>,
        /// When.
        at: SystemTime,
    },
    /// A consumer of the stream fell behind and skipped frames.
    FramesDropped {
        /// The stream.
        stream: StreamKey,
        /// Which consumer (for example "segmenter" or "transcode 720p").
        consumer: String,
        /// How many frames it lost.
        frames: u64,
        /// When.
        at: SystemTime,
    },
    /// The stream stopped being published.
    Unpublished {
        /// The stream.
        stream: StreamKey,
        /// Why.
        reason: UnpublishReason,
        /// When.
        at: SystemTime,
    },
}

impl StreamEvent {
    /// The stream the event is about.
    pub fn stream(&self) -> &StreamKey {
        match self {
            StreamEvent::Published { stream, .. }
            | StreamEvent::CodecChanged { stream, .. }
            | StreamEvent::FramesDropped { stream, .. }
            | StreamEvent::Unpublished { stream, .. } => stream,
        }
    }
}
