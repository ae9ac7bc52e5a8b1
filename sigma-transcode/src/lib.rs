//! Live transcoding: decode once, filter, and encode an ABR ladder with aligned keyframes.
//!
//! This crate will wrap libavcodec/libavfilter/libswscale (through `ffmpeg-next`) for decoding and
//! processing, `x264` for H.264 and `fdk-aac` for AAC encoding, behind cargo features so that a
//! transmux-only build carries neither GPL nor fdk-licensed code.
//!
//! Nothing here is implemented yet; see issue 6.
