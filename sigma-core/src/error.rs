//! The crate's error type.

/// Errors from sigma-core. Each variant says what was wrong and, for parsers, where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1) or one of the parameter
    /// sets inside it could not be parsed.
    #[error("invalid avcC record: {0}")]
    InvalidAvcConfig(String),
    /// An `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1) could not be parsed; `bit` is the
    /// offset in bits where parsing stopped.
    #[error("invalid AudioSpecificConfig at bit {bit}: {reason}")]
    InvalidAudioConfig {
        /// Bit offset into the record where the problem was found.
        bit: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The configuration is well formed but describes something Sigma does not handle.
    #[error("unsupported codec configuration: {0}")]
    Unsupported(String),
    /// A timescale of zero ticks per second was given.
    #[error("timescale must be at least 1 tick per second")]
    ZeroTimescale,
    /// A denial-of-service limit was hit: `what` of `size` exceeds `limit`.
    #[error("{what} of {size} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was measured (for example "frame size").
        what: &'static str,
        /// The size that was seen.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A frame named a track that the current [`StreamInfo`](crate::StreamInfo) does not have
    /// (or no stream info was set before the first frame).
    #[error("frame for unknown track {0}")]
    UnknownTrack(u32),
    /// The bus was revoked by its consumer side ([`Subscriber::revoke`](crate::bus::Subscriber::revoke)):
    /// the publisher must stop.
    #[error("the stream no longer accepts this publisher")]
    Revoked,
}
