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
    /// Longest application, stream or rendition name [`valid_name`](Self::valid_name) accepts,
    /// in bytes.
    pub const MAX_NAME_LEN: usize = 64;

    /// A key for `app`/`name`.
    pub fn new(app: impl Into<String>, name: impl Into<String>) -> Self {
        StreamKey {
            app: app.into(),
            name: name.into(),
        }
    }

    /// Whether `name` is a valid application, stream or rendition name: 1 to
    /// [`MAX_NAME_LEN`](Self::MAX_NAME_LEN) bytes of `A-Z a-z 0-9 _ -`. Such a name is safe as
    /// a URL path segment, a file name and in an HTML page, so every stage checks names with
    /// this one rule.
    ///
    /// ```
    /// use sigma_core::StreamKey;
    /// assert!(StreamKey::valid_name("cam-1_hd"));
    /// assert!(!StreamKey::valid_name(""));
    /// assert!(!StreamKey::valid_name("../etc"));
    /// assert!(!StreamKey::valid_name(&"x".repeat(StreamKey::MAX_NAME_LEN + 1)));
    /// ```
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= Self::MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    /// Whether both the application and the stream name are [valid](Self::valid_name).
    pub fn is_valid(&self) -> bool {
        Self::valid_name(&self.app) && Self::valid_name(&self.name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "live",
            "cam1",
            "A-Z_09",
            &"n".repeat(StreamKey::MAX_NAME_LEN),
        ] {
            assert!(StreamKey::valid_name(ok), "{ok}");
        }
        let long = "n".repeat(StreamKey::MAX_NAME_LEN + 1);
        for bad in [
            "",
            "a b",
            "a/b",
            "..",
            "a.m3u8",
            "caf\u{e9}",
            "a?key=1",
            "%2e",
            &long,
        ] {
            assert!(!StreamKey::valid_name(bad), "{bad:?}");
        }
        assert!(StreamKey::new("live", "cam").is_valid());
        assert!(!StreamKey::new("live", "").is_valid());
        assert!(!StreamKey::new("li/ve", "cam").is_valid());
    }
}
