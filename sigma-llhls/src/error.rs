//! The crate's one error type.

use sigma_core::TrackId;

/// Everything that can go wrong in `sigma-llhls`.
///
/// Directive and path errors come from untrusted requests and map to HTTP 400/404; the others
/// come from the stream being packaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame refers to a track the current [`sigma_core::StreamInfo`] does not describe, or a
    /// frame arrived before any stream info.
    #[error("frame for unknown track {0}")]
    UnknownTrack(TrackId),
    /// The track's codec cannot be carried in CMAF by this crate.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),
    /// A value does not fit the field the ISO/IEC 14496-12 box reserves for it (for example a
    /// sample larger than 4 GiB, or a sample duration beyond 32 bits).
    #[error("{what} of {value} does not fit in its box field")]
    FieldOverflow {
        /// Which field.
        what: &'static str,
        /// The value that did not fit.
        value: i128,
    },
    /// A playlist request's query string is malformed or contradicts RFC 8216bis §6.2.5
    /// (for example `_HLS_part` without `_HLS_msn`). Answered with 400.
    #[error("bad delivery directive: {0}")]
    BadDirective(&'static str),
    /// A blocking request asked for a segment or part too far ahead of the live edge
    /// (RFC 8216bis §6.2.5.2). Answered with 400.
    #[error("requested media sequence {msn} part {part:?} is too far ahead of the live edge")]
    TooFarAhead {
        /// Requested media sequence number.
        msn: u64,
        /// Requested part index, if any.
        part: Option<u64>,
    },
    /// A stream with this name is already published.
    #[error("stream {0:?} is already published")]
    AlreadyPublished(String),
    /// A stream or rendition name contains characters other than `A-Z a-z 0-9 _ -`, or is
    /// empty or longer than 64 bytes.
    #[error("invalid name {0:?}")]
    InvalidName(String),
    /// A bound was hit (too many samples in one part, too many renditions).
    #[error("limit exceeded: {what} (limit {limit})")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: u64,
    },
}
