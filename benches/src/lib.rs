//! Shared helpers for Sigma's benches: synthetic media shaped like a real live stream.

use bytes::Bytes;
use sigma_core::{AacConfig, CodecConfig, Frame, H264Config, StreamInfo, TrackId, TrackInfo};
use std::sync::Arc;

/// A synthetic 30 fps video + 46.875 fps (48 kHz AAC) audio stream, interleaved in decode order,
/// with a keyframe every `gop` video frames. Payload sizes follow a 2.5 Mbit/s encode: 60 KB
/// keyframes, 9 KB other pictures, 380-byte audio frames. Payloads are shared slices of one
/// buffer, so generating frames allocates nothing per frame.
pub struct SyntheticStream {
    gop: u64,
    video_n: u64,
    audio_n: u64,
    pool: Bytes,
}

/// Track id used for the synthetic video.
pub const VIDEO: TrackId = TrackId(1);
/// Track id used for the synthetic audio.
pub const AUDIO: TrackId = TrackId(2);

impl SyntheticStream {
    /// A stream with a keyframe every `gop` video frames.
    pub fn new(gop: u64) -> Self {
        SyntheticStream {
            gop: gop.max(1),
            video_n: 0,
            audio_n: 0,
            pool: Bytes::from(vec![0x5a; 64 * 1024]),
        }
    }

    /// The next frame in decode order. Video timestamps use 90 kHz, audio 48 kHz.
    pub fn next_frame(&mut self) -> Frame {
        // Compare the next decode times in a common unit (1/1440000 s).
        let video_t = self.video_n * 48_000;
        let audio_t = self.audio_n * 30_720;
        if video_t <= audio_t {
            let key = self.video_n % self.gop == 0;
            let len = if key { 60_000 } else { 9_000 };
            let dts = (self.video_n * 3000) as i64;
            self.video_n += 1;
            Frame::new(VIDEO, dts, dts, key, self.pool.slice(..len))
        } else {
            let dts = (self.audio_n * 1024) as i64;
            self.audio_n += 1;
            Frame::new(AUDIO, dts, dts, true, self.pool.slice(..380))
        }
    }
}

/// Stream info matching [`SyntheticStream`]: the x264 High 720p30 `avcC` and the 48 kHz stereo
/// AAC-LC AudioSpecificConfig captured in `sigma-core/testdata`.
///
/// # Panics
/// If the test data is missing or does not parse (a broken checkout).
pub fn stream_info() -> Arc<StreamInfo> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sigma-core/testdata/");
    let avcc = std::fs::read(format!("{dir}x264_high_720p30.avcc")).expect("testdata avcC");
    let asc = std::fs::read(format!("{dir}aac_lc_48k_stereo.asc")).expect("testdata ASC");
    let v = H264Config::from_avcc(avcc.into()).expect("avcC parses");
    let a = AacConfig::from_audio_specific_config(asc.into()).expect("ASC parses");
    StreamInfo::new(
        1,
        vec![
            TrackInfo::new(VIDEO, 90_000, CodecConfig::H264(v)).expect("video track"),
            TrackInfo::new(AUDIO, 48_000, CodecConfig::Aac(a)).expect("audio track"),
        ],
    )
    .expect("stream info")
}
