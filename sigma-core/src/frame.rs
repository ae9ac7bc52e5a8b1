//! One access unit of one track.

use bytes::Bytes;
use std::fmt;

/// Identifies a track within a stream. Track ids are small integers chosen by the producer
/// (ingest uses 1 for video and 2 for audio).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u32);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One access unit (a coded picture, or one AAC frame) of one track.
///
/// Timestamps are `i64` ticks of the track's timescale ([`TrackInfo::timescale`]); they are
/// monotonic (no wrap). H.264 payloads are AVCC: NAL units each preceded by a big-endian length
/// of [`H264Config::nal_length_size`] bytes, so an `mdat` is an append. AAC payloads are raw
/// frames (no ADTS header).
///
/// Cloning a frame clones a [`Bytes`] handle, never the payload. `Debug` prints the payload
/// length, not the bytes.
///
/// [`TrackInfo::timescale`]: crate::TrackInfo::timescale
/// [`H264Config::nal_length_size`]: crate::H264Config::nal_length_size
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    track: TrackId,
    dts: i64,
    pts: i64,
    keyframe: bool,
    data: Bytes,
}

impl Frame {
    /// Makes a frame. `pts` may be below `dts` only for broken sources; it is kept as given.
    pub fn new(track: TrackId, dts: i64, pts: i64, keyframe: bool, data: Bytes) -> Self {
        Frame {
            track,
            dts,
            pts,
            keyframe,
            data,
        }
    }

    /// The track this frame belongs to.
    pub fn track(&self) -> TrackId {
        self.track
    }

    /// Decode timestamp, in ticks of the track's timescale.
    pub fn dts(&self) -> i64 {
        self.dts
    }

    /// Presentation timestamp, in ticks of the track's timescale.
    pub fn pts(&self) -> i64 {
        self.pts
    }

    /// Composition offset, `pts - dts` (non-zero with B-frames).
    pub fn composition_offset(&self) -> i64 {
        self.pts - self.dts
    }

    /// True when a decoder can start at this frame (an IDR picture; every audio frame).
    pub fn is_keyframe(&self) -> bool {
        self.keyframe
    }

    /// The payload.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Takes the payload out of the frame.
    pub fn into_data(self) -> Bytes {
        self.data
    }

    /// The same frame with both timestamps shifted by `delta` ticks.
    pub fn shifted(mut self, delta: i64) -> Self {
        self.dts += delta;
        self.pts += delta;
        self
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("track", &self.track.0)
            .field("dts", &self.dts)
            .field("pts", &self.pts)
            .field("keyframe", &self.keyframe)
            .field("len", &self.data.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_shares_payload() {
        let data = Bytes::from(vec![7u8; 4096]);
        let f = Frame::new(TrackId(1), 0, 3000, true, data.clone());
        let g = f.clone();
        assert_eq!(f.data().as_ptr(), g.data().as_ptr());
        assert_eq!(f.data().as_ptr(), data.as_ptr());
    }

    #[test]
    fn debug_prints_length_not_bytes() {
        let f = Frame::new(TrackId(2), 10, 12, false, Bytes::from_static(&[0xAB; 300]));
        let s = format!("{f:?}");
        assert!(s.contains("len: 300"), "{s}");
        assert!(!s.contains("171"), "payload bytes leaked into Debug: {s}");
        assert_eq!(f.composition_offset(), 2);
    }
}
