//! The crate's error type.

/// Errors from sigma-transcode. Bad input (a corrupt frame, an impossible option) is always one
/// of these, never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// libavcodec refused a packet or failed to decode it. `track` and `pts` locate the frame in
    /// the source stream.
    #[error("decoding track {track} at pts {pts}: {source}")]
    Decode {
        /// Source track of the offending frame.
        track: u32,
        /// Presentation timestamp of the offending frame, in the track's timescale.
        pts: i64,
        /// What libavcodec said.
        source: ffmpeg_next::Error,
    },
    /// A libavcodec, libavfilter or libswscale call failed outside decoding (opening a codec,
    /// building or running a filter graph). `what` says which step.
    #[error("{what}: {source}")]
    Ffmpeg {
        /// The step that failed.
        what: &'static str,
        /// What FFmpeg said.
        source: ffmpeg_next::Error,
    },
    /// An encoder (x264 or fdk-aac) refused its settings or failed to encode.
    #[error("{encoder} encoder: {reason}")]
    Encode {
        /// `"x264"` or `"fdk-aac"`.
        encoder: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// An option is outside what the transcoder accepts (a size above 3840x2160, a crop larger
    /// than the picture, an equaliser band above Nyquist, …).
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option's name, as in the ladder configuration.
        option: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The source uses something this crate cannot transcode (no video track, a codec other than
    /// H.264/AAC, a channel layout fdk-aac cannot take, …).
    #[error("unsupported source: {0}")]
    Unsupported(String),
    /// The ladder asks for an encoder whose cargo feature is off in this build.
    #[error("encoder {0} is not compiled in (cargo feature of sigma-transcode)")]
    FeatureDisabled(&'static str),
    /// A configuration produced by an encoder could not be turned into sigma-core track info.
    #[error(transparent)]
    Core(#[from] sigma_core::Error),
    /// A worker thread could not be started, or stopped unexpectedly.
    #[error("worker thread {name}: {reason}")]
    Worker {
        /// The thread's name.
        name: String,
        /// What happened.
        reason: String,
    },
}

impl Error {
    pub(crate) fn ffmpeg(what: &'static str) -> impl FnOnce(ffmpeg_next::Error) -> Error {
        move |source| Error::Ffmpeg { what, source }
    }

    pub(crate) fn option(option: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidOption {
            option,
            reason: reason.into(),
        }
    }
}
