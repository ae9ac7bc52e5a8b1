//! Decoding: H.264 and AAC through libavcodec.
//!
//! A decoder is a push/pull pair: [`VideoDecoder::push`] one source [`Frame`], then
//! [`VideoDecoder::pull`] until `None`. libavcodec may hold frames back (B-frame reordering, frame
//! threading), so a push does not always yield a picture; [`VideoDecoder::finish`] drains them.
//!
//! Codec configuration comes out of band, from sigma-core's [`H264Config`] (the avcC record) and
//! [`AacConfig`] (the AudioSpecificConfig); both go to libavcodec as `extradata`, so frame
//! payloads (AVCC length-prefixed NAL units, raw AAC frames) are decoded as they are.
//!
//! Setting `extradata` has no safe ffmpeg-next API; that single step is the only `unsafe` here.
#![allow(unsafe_code)]

use crate::Error;
use ffmpeg_next as ff;
use sigma_core::{AacConfig, Frame, H264Config};
use std::collections::VecDeque;

/// Initialises FFmpeg once per process (quiet logging: errors only).
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Registration is a no-op on FFmpeg ≥ 4; init only fails on FFmpeg < 4.
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Error);
    });
}

/// Copies `data` into a codec context's `extradata` (padded and zeroed as libavcodec requires).
fn set_extradata(ctx: &mut ff::codec::Context, data: &[u8]) -> Result<(), Error> {
    let padding = ff::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
    let size = i32::try_from(data.len())
        .map_err(|_| Error::Unsupported("codec configuration larger than 2 GiB".into()))?;
    // SAFETY: `as_mut_ptr` is the live AVCodecContext owned by `ctx`, not yet opened. The buffer
    // comes from av_mallocz (libavcodec frees it with av_free when the context is freed), has
    // `len + padding` bytes, and we write only `len` of them; any previous extradata is freed
    // first so nothing leaks.
    unsafe {
        let raw = ctx.as_mut_ptr();
        let buf = ff::ffi::av_mallocz(data.len() + padding) as *mut u8;
        if buf.is_null() {
            return Err(Error::Ffmpeg {
                what: "allocating extradata",
                source: ff::Error::Other {
                    errno: ff::util::error::ENOMEM,
                },
            });
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        if !(*raw).extradata.is_null() {
            ff::ffi::av_free((*raw).extradata as *mut _);
        }
        (*raw).extradata = buf;
        (*raw).extradata_size = size;
    }
    Ok(())
}

fn is_again(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Other { errno } if *errno == ff::util::error::EAGAIN)
}

/// Takes the next decoded frame out of `decoder` into `frame`: `Ok(false)` when none is ready
/// (or the decoder is drained), a decode error for `track` otherwise.
fn receive(
    decoder: &mut ff::decoder::Opened,
    frame: &mut ff::Frame,
    track: u32,
) -> Result<bool, Error> {
    match decoder.receive_frame(frame) {
        Ok(()) => Ok(true),
        Err(ff::Error::Eof) => Ok(false),
        Err(e) if is_again(&e) => Ok(false),
        Err(source) => Err(Error::Decode {
            track,
            pts: -1,
            source,
        }),
    }
}

/// How a decoder uses threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderOptions {
    /// Frame threads for H.264 (0: one per core). Each extra thread adds one frame of decoder
    /// delay, so the ultra-low-latency mode uses 1.
    pub threads: usize,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions { threads: 2 }
    }
}

/// A decoded picture: planar YUV from libavcodec or a filter graph, with its presentation time in
/// ticks of the source video timescale and whether the ladder should start a GOP on it.
///
/// Pictures are shared between encoder threads as `Arc<Picture>`; nothing mutates one after it
/// is made.
pub struct Picture {
    pub(crate) frame: ff::frame::Video,
    pts: i64,
    keyframe: bool,
}

impl Picture {
    pub(crate) fn new(frame: ff::frame::Video, pts: i64, keyframe: bool) -> Self {
        Picture {
            frame,
            pts,
            keyframe,
        }
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.frame.width()
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.frame.height()
    }
    /// Presentation time, in ticks of the source video track's timescale.
    pub fn pts(&self) -> i64 {
        self.pts
    }
    /// True when every rendition starts a GOP (an IDR picture) here.
    pub fn is_keyframe(&self) -> bool {
        self.keyframe
    }
    pub(crate) fn set_keyframe(&mut self, keyframe: bool) {
        self.keyframe = keyframe;
    }
    /// Number of planes (3 for YUV 4:2:0).
    pub fn planes(&self) -> usize {
        self.frame.planes()
    }
    /// Bytes of plane `index` (rows of [`stride`](Self::stride) bytes), empty past the last
    /// plane.
    pub fn plane(&self, index: usize) -> &[u8] {
        if index < self.frame.planes() {
            self.frame.data(index)
        } else {
            &[]
        }
    }
    /// Bytes per row of plane `index` (0 past the last plane).
    pub fn stride(&self, index: usize) -> usize {
        if index < self.frame.planes() {
            self.frame.stride(index)
        } else {
            0
        }
    }
    /// The luma sample at (`x`, `y`), if inside the picture.
    pub fn luma(&self, x: u32, y: u32) -> Option<u8> {
        if x >= self.width() || y >= self.height() {
            return None;
        }
        self.plane(0)
            .get(y as usize * self.stride(0) + x as usize)
            .copied()
    }
    /// The libavutil pixel format.
    pub fn format(&self) -> ff::format::Pixel {
        self.frame.format()
    }
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picture")
            .field("width", &self.width())
            .field("height", &self.height())
            .field("pts", &self.pts)
            .field("keyframe", &self.keyframe)
            .finish()
    }
}

/// Most source keyframe times remembered while their pictures are inside the decoder.
const MAX_PENDING_KEYFRAMES: usize = 64;

/// An H.264 decoder fed with sigma-core frames (AVCC payloads, timestamps in `timescale` ticks).
pub struct VideoDecoder {
    decoder: ff::decoder::Video,
    track: u32,
    /// Presentation times of source keyframes pushed but not yet pulled, oldest first.
    keyframes: VecDeque<i64>,
}

impl VideoDecoder {
    /// Opens a decoder for `config`; frame timestamps are in ticks of `timescale`.
    pub fn new(
        config: &H264Config,
        timescale: u32,
        track: u32,
        options: DecoderOptions,
    ) -> Result<Self, Error> {
        init();
        let codec = ff::decoder::find(ff::codec::Id::H264)
            .ok_or_else(|| Error::Unsupported("libavcodec has no H.264 decoder".into()))?;
        let mut ctx = ff::codec::Context::new_with_codec(codec);
        set_extradata(&mut ctx, config.avcc())?;
        ctx.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Frame,
            count: options.threads,
            ..Default::default()
        });
        let mut decoder = ctx.decoder();
        decoder.set_packet_time_base(ff::Rational::new(1, timescale as i32));
        let decoder = decoder
            .video()
            .map_err(Error::ffmpeg("opening the H.264 decoder"))?;
        Ok(VideoDecoder {
            decoder,
            track,
            keyframes: VecDeque::new(),
        })
    }

    /// Sends one coded picture. A corrupt picture is an [`Error::Decode`]; the decoder stays
    /// usable and recovers at the next keyframe.
    pub fn push(&mut self, frame: &Frame) -> Result<(), Error> {
        if frame.is_empty() {
            // An empty packet would tell libavcodec to drain; it is a broken frame instead.
            return Err(Error::Decode {
                track: self.track,
                pts: frame.pts(),
                source: ff::Error::InvalidData,
            });
        }
        let mut packet = ff::Packet::copy(frame.data());
        packet.set_pts(Some(frame.pts()));
        packet.set_dts(Some(frame.dts()));
        if frame.is_keyframe() {
            packet.set_flags(ff::codec::packet::Flags::KEY);
            if self.keyframes.len() == MAX_PENDING_KEYFRAMES {
                self.keyframes.pop_front();
            }
            self.keyframes.push_back(frame.pts());
        }
        self.decoder
            .send_packet(&packet)
            .map_err(|source| Error::Decode {
                track: self.track,
                pts: frame.pts(),
                source,
            })
    }

    /// Signals the end of the stream; [`pull`](Self::pull) then drains held-back pictures.
    pub fn finish(&mut self) -> Result<(), Error> {
        match self.decoder.send_eof() {
            Ok(()) | Err(ff::Error::Eof) => Ok(()),
            Err(e) => Err(Error::ffmpeg("draining the H.264 decoder")(e)),
        }
    }

    /// Forgets everything in flight (after a gap in the source); decoding restarts at the next
    /// keyframe.
    pub fn reset(&mut self) {
        self.decoder.flush();
        self.keyframes.clear();
    }

    /// The next decoded picture, if one is ready. A picture is a keyframe when its presentation
    /// time is that of a source keyframe.
    pub fn pull(&mut self) -> Result<Option<Picture>, Error> {
        let mut frame = ff::frame::Video::empty();
        if !receive(&mut self.decoder, &mut frame, self.track)? {
            return Ok(None);
        }
        let pts = frame.pts().or(frame.timestamp()).unwrap_or(0);
        while self.keyframes.front().is_some_and(|&k| k < pts) {
            // A keyframe whose picture never came out (corrupt): forget it.
            self.keyframes.pop_front();
        }
        let keyframe = self.keyframes.front() == Some(&pts);
        if keyframe {
            self.keyframes.pop_front();
        }
        Ok(Some(Picture::new(frame, pts, keyframe)))
    }
}

/// Decoded audio: planar or interleaved samples from libavcodec, with the presentation time of
/// the first sample in ticks of the source audio timescale.
pub struct AudioBlock {
    pub(crate) frame: ff::frame::Audio,
    pts: i64,
}

impl AudioBlock {
    pub(crate) fn new(frame: ff::frame::Audio, pts: i64) -> Self {
        AudioBlock { frame, pts }
    }
    /// Presentation time of the first sample.
    pub fn pts(&self) -> i64 {
        self.pts
    }
    /// Samples per channel.
    pub fn samples(&self) -> usize {
        self.frame.samples()
    }
    /// Channels.
    pub fn channels(&self) -> u16 {
        self.frame.channels()
    }
    /// Samples per second.
    pub fn rate(&self) -> u32 {
        self.frame.rate()
    }
    /// The samples of channel `channel` as `f32`, whatever the sample format (interleaved or
    /// planar, 16-bit, 32-bit or float). Empty for an unknown format or channel.
    pub fn channel_f32(&self, channel: usize) -> Vec<f32> {
        use ff::format::Sample;
        use ff::format::sample::Type;
        let n = self.samples();
        let ch = usize::from(self.channels());
        if channel >= ch {
            return Vec::new();
        }
        let fmt = self.frame.format();
        let (plane, index, step) = match fmt {
            Sample::I16(Type::Planar) | Sample::F32(Type::Planar) | Sample::I32(Type::Planar) => {
                (channel, 0, 1)
            }
            _ => (0, channel, ch),
        };
        let bytes = self.frame.data(plane);
        let width = match fmt {
            Sample::I16(_) => 2,
            Sample::I32(_) | Sample::F32(_) => 4,
            _ => return Vec::new(),
        };
        (0..n)
            .filter_map(|i| {
                let at = (index + i * step) * width;
                let b = bytes.get(at..at + width)?;
                Some(match fmt {
                    Sample::I16(_) => f32::from(i16::from_ne_bytes([b[0], b[1]])) / 32768.0,
                    Sample::I32(_) => {
                        i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
                    }
                    _ => f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                })
            })
            .collect()
    }
}

impl std::fmt::Debug for AudioBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioBlock")
            .field("pts", &self.pts)
            .field("samples", &self.samples())
            .field("channels", &self.channels())
            .field("rate", &self.rate())
            .finish()
    }
}

/// An AAC decoder fed with sigma-core frames (raw AAC frames, timestamps in sample-rate ticks).
pub struct AudioDecoder {
    decoder: ff::decoder::Audio,
    track: u32,
}

impl AudioDecoder {
    /// Opens a decoder for `config`; frame timestamps are in ticks of `timescale`.
    pub fn new(config: &AacConfig, timescale: u32, track: u32) -> Result<Self, Error> {
        init();
        let codec = ff::decoder::find(ff::codec::Id::AAC)
            .ok_or_else(|| Error::Unsupported("libavcodec has no AAC decoder".into()))?;
        let mut ctx = ff::codec::Context::new_with_codec(codec);
        set_extradata(&mut ctx, config.audio_specific_config())?;
        let mut decoder = ctx.decoder();
        decoder.set_packet_time_base(ff::Rational::new(1, timescale as i32));
        let decoder = decoder
            .audio()
            .map_err(Error::ffmpeg("opening the AAC decoder"))?;
        Ok(AudioDecoder { decoder, track })
    }

    /// Sends one AAC frame. A corrupt frame is an [`Error::Decode`]; the decoder stays usable.
    pub fn push(&mut self, frame: &Frame) -> Result<(), Error> {
        if frame.is_empty() {
            return Err(Error::Decode {
                track: self.track,
                pts: frame.pts(),
                source: ff::Error::InvalidData,
            });
        }
        let mut packet = ff::Packet::copy(frame.data());
        packet.set_pts(Some(frame.pts()));
        packet.set_dts(Some(frame.dts()));
        self.decoder
            .send_packet(&packet)
            .map_err(|source| Error::Decode {
                track: self.track,
                pts: frame.pts(),
                source,
            })
    }

    /// Signals the end of the stream.
    pub fn finish(&mut self) -> Result<(), Error> {
        match self.decoder.send_eof() {
            Ok(()) | Err(ff::Error::Eof) => Ok(()),
            Err(e) => Err(Error::ffmpeg("draining the AAC decoder")(e)),
        }
    }

    /// The next decoded block, if one is ready.
    pub fn pull(&mut self) -> Result<Option<AudioBlock>, Error> {
        let mut frame = ff::frame::Audio::empty();
        if !receive(&mut self.decoder, &mut frame, self.track)? {
            return Ok(None);
        }
        let pts = frame.pts().or(frame.timestamp()).unwrap_or(0);
        Ok(Some(AudioBlock::new(frame, pts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;
    use sigma_core::{CodecConfig, TrackId};

    fn decode_all(src: &fixture::Source) -> Vec<Picture> {
        let t = src.video_info();
        let CodecConfig::H264(c) = t.codec() else {
            panic!()
        };
        let mut d = VideoDecoder::new(c, t.timescale(), 1, DecoderOptions::default()).unwrap();
        let mut out = Vec::new();
        for f in src.video() {
            d.push(f).unwrap();
            while let Some(p) = d.pull().unwrap() {
                out.push(p);
            }
        }
        d.finish().unwrap();
        while let Some(p) = d.pull().unwrap() {
            out.push(p);
        }
        out
    }

    #[test]
    fn decodes_ffmpeg_x264_high_bframes() {
        let src = fixture::read_mp4(&fixture::ffmpeg_source());
        let CodecConfig::H264(c) = src.video_info().codec() else {
            panic!()
        };
        assert_eq!(c.profile_idc(), 100);
        let pics = decode_all(&src);
        assert_eq!(pics.len(), 180);
        assert!(
            pics.windows(2).all(|w| w[0].pts() < w[1].pts()),
            "presentation order"
        );
        assert_eq!((pics[0].width(), pics[0].height()), (1280, 720));
        let keys: Vec<f64> = pics
            .iter()
            .filter(|p| p.is_keyframe())
            .map(|p| (p.pts() - pics[0].pts()) as f64 / 90_000.0)
            .collect();
        assert_eq!(keys.len(), fixture::FFMPEG_KEYFRAMES.len(), "{keys:?}");
        for (k, want) in keys.iter().zip(fixture::FFMPEG_KEYFRAMES) {
            assert!((k - want).abs() < 0.02, "{keys:?}");
        }
    }

    #[test]
    fn decodes_gstreamer_x264enc() {
        let src = fixture::read_mp4(&fixture::gst_source());
        let pics = decode_all(&src);
        assert_eq!(pics.len(), 180);
        let source_keys = src.video().filter(|f| f.is_keyframe()).count();
        assert!(source_keys >= 4, "{source_keys}");
        assert_eq!(pics.iter().filter(|p| p.is_keyframe()).count(), source_keys);
    }

    #[test]
    fn decodes_aac_and_reports_corrupt_frames_as_errors() {
        let src = fixture::read_mp4(&fixture::ffmpeg_source());
        let t = src.info.track(TrackId(2)).unwrap();
        let CodecConfig::Aac(c) = t.codec() else {
            panic!()
        };
        let mut d = AudioDecoder::new(c, t.timescale(), 2).unwrap();
        let mut samples = 0;
        for f in src.frames.iter().filter(|f| f.track() == TrackId(2)) {
            d.push(f).unwrap();
            while let Some(b) = d.pull().unwrap() {
                assert_eq!((b.channels(), b.rate()), (2, 48_000));
                samples += b.samples();
            }
        }
        assert!(samples >= 48_000 * 6 - 2048, "{samples}");
        // Garbage instead of a picture: an error, not a panic, and the decoder goes on.
        let vt = src.video_info();
        let CodecConfig::H264(vc) = vt.codec() else {
            panic!()
        };
        let mut v = VideoDecoder::new(vc, 90_000, 1, DecoderOptions::default()).unwrap();
        let junk = Frame::new(
            TrackId(1),
            0,
            0,
            true,
            bytes::Bytes::from_static(&[0, 0, 0, 9, 0x65, 1, 2, 3, 4, 5, 6, 7, 8]),
        );
        let r = v.push(&junk).and_then(|_| v.pull().map(|_| ()));
        let _ = r; // libavcodec may accept and conceal, or refuse: either way no panic.
        let mut n = 0;
        for f in src.video() {
            if v.push(f).is_ok() {
                while let Ok(Some(_)) = v.pull() {
                    n += 1;
                }
            }
        }
        assert!(n > 100, "decoder recovered after junk: {n}");
    }
}
