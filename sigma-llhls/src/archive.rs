//! The archive tee: every finished init and segment of every rendition, handed to an
//! [`ArchiveSink`] as it completes, for DVR, catch-up VOD and recordings.
//!
//! The publish task calls [`ArchiveSink::offer`] synchronously and never waits on it: a sink
//! must queue (bounded) or drop, never block. The payload is the live window's own `Bytes`
//! (the parts' headers and the frames' payloads, shared, not copied).

use bytes::Bytes;
use sigma_core::{CodecConfig, MediaKind};
use std::sync::Arc;
use std::time::SystemTime;

/// A finished piece of one rendition.
#[derive(Clone, Debug)]
pub enum Archived {
    /// A new init segment (before the segments that use it).
    Init(ArchivedInit),
    /// A complete segment.
    Segment(ArchivedSegment),
    /// The rendition ended: nothing more comes for it.
    End {
        /// The rendition's name.
        rendition: Arc<str>,
    },
}

/// An init segment of a rendition.
#[derive(Clone)]
pub struct ArchivedInit {
    /// The rendition's name (its playlist is `{rendition}.m3u8`).
    pub rendition: Arc<str>,
    /// Video or audio.
    pub kind: MediaKind,
    /// Its generation (segments name the one they need).
    pub generation: u64,
    /// The codec configuration (for `CODECS`, `RESOLUTION`, …).
    pub codec: CodecConfig,
    /// Media timescale.
    pub timescale: u32,
    /// `ftyp` + `moov`.
    pub data: Bytes,
}

impl std::fmt::Debug for ArchivedInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchivedInit")
            .field("rendition", &self.rendition)
            .field("generation", &self.generation)
            .field("codec", &self.codec.codec_string())
            .field("len", &self.data.len())
            .finish()
    }
}

/// A complete segment of a rendition.
#[derive(Clone)]
pub struct ArchivedSegment {
    /// The rendition's name.
    pub rendition: Arc<str>,
    /// Video or audio.
    pub kind: MediaKind,
    /// Its media sequence number in the live playlist.
    pub msn: u64,
    /// Duration in seconds.
    pub duration: f64,
    /// Wall-clock time of its first sample.
    pub program_date_time: SystemTime,
    /// It follows a discontinuity.
    pub discontinuity: bool,
    /// The generation of the init segment it needs.
    pub init_generation: u64,
    /// Each part's size in bytes and whether it starts with a sync sample, in order (byte
    /// ranges for I-frame playlists).
    pub parts: Vec<(u64, bool)>,
    /// Its bytes: each part's header and payloads, in order (shared with the live window).
    pub chunks: Vec<Bytes>,
}

impl ArchivedSegment {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }

    /// Whether it holds no bytes (never true for a segment the segmenter made).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it starts with a sync sample (decodes alone after its init).
    pub fn independent(&self) -> bool {
        self.parts.first().is_some_and(|p| p.1)
    }
}

impl std::fmt::Debug for ArchivedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchivedSegment")
            .field("rendition", &self.rendition)
            .field("msn", &self.msn)
            .field("duration", &self.duration)
            .field("discontinuity", &self.discontinuity)
            .field("parts", &self.parts.len())
            .field("len", &self.len())
            .finish()
    }
}

/// Where the archive tee sends finished media. `offer` is called on the publish task and must
/// return at once: queue within a bound, or drop and count.
pub trait ArchiveSink: Send + Sync + 'static {
    /// Takes one finished piece.
    fn offer(&self, item: Archived);
}

/// A shared [`ArchiveSink`], as [`crate::PublishOptions::archive`] holds it.
#[derive(Clone)]
pub struct ArchiveTee(pub Arc<dyn ArchiveSink>);

impl std::fmt::Debug for ArchiveTee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArchiveTee")
    }
}

impl ArchiveTee {
    /// Wraps a sink.
    pub fn new(sink: impl ArchiveSink) -> Self {
        ArchiveTee(Arc::new(sink))
    }

    pub(crate) fn offer(&self, item: Archived) {
        self.0.offer(item);
    }
}
