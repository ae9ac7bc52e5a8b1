//! FLV audio/video tag bodies (FLV spec v10.1 §E.4.2.1 AUDIODATA, §E.4.3.1 VIDEODATA, and
//! Enhanced RTMP v1/v2 ExVideoTagHeader) to and from [`sigma_core::Frame`]s, sans-IO.
//!
//! [`FlvDemuxer`] takes the bodies of RTMP audio (type 8) and video (type 9) messages:
//! - an AVC sequence header (`AVCPacketType` 0) becomes the video [`TrackInfo`] (track 1,
//!   90 kHz); an AAC sequence header (`AACPacketType` 0) the audio one (track 2, timescale = the
//!   AAC output sample rate). A changed configuration bumps the [`StreamInfo`] generation; the
//!   new info is emitted once, just before the first frame that uses it, so two headers sent
//!   back to back give one generation.
//! - AVC NALUs become frames whose payload is the AVCC bytes as a `Bytes` slice of the message
//!   (no copy), dts = RTMP time × 90 and pts = (RTMP time + CompositionTime) × 90; raw AAC frames
//!   become frames with `rescale(ms, 1000, sample_rate)` timestamps. RTMP's 32-bit millisecond
//!   time is unwrapped per track with [`TimestampUnwrapper`].
//! - Enhanced RTMP `avc1` packets are read like legacy AVC; `hvc1`, `av01`, `vp09` and every
//!   other codec are refused with [`Error::UnsupportedCodec`] naming it.
//!
//! [`FlvMuxer`] does the reverse for the publish client.

use crate::Error;
use crate::amf0::Value;
use bytes::{BufMut, Bytes, BytesMut};
use sigma_core::time::{TimestampUnwrapper, rescale};
use sigma_core::{
    AacConfig, CodecConfig, Frame, H264Config, MediaKind, StreamInfo, TrackId, TrackInfo,
};
use std::collections::VecDeque;
use std::sync::Arc;

/// Track id of the video track produced by ingest.
pub const VIDEO_TRACK: TrackId = TrackId(1);
/// Track id of the audio track produced by ingest.
pub const AUDIO_TRACK: TrackId = TrackId(2);
/// Video timescale: 90 kHz.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// What the demuxer produces.
#[derive(Clone, Debug)]
pub enum DemuxEvent {
    /// The tracks changed; applies to the frames that follow.
    Info(Arc<StreamInfo>),
    /// One access unit.
    Frame(Frame),
}

struct Track<C> {
    config: C,
    unwrap: TimestampUnwrapper,
}

/// Demuxes FLV tag bodies into frames. See the module docs.
pub struct FlvDemuxer {
    video: Option<Track<H264Config>>,
    audio: Option<Track<AacConfig>>,
    generation: u64,
    dirty: bool,
    info: Option<Arc<StreamInfo>>,
    events: VecDeque<DemuxEvent>,
    max_jump_ms: i64,
}

fn four_cc_name(cc: [u8; 4]) -> String {
    let name = match &cc {
        b"hvc1" => "HEVC",
        b"av01" => "AV1",
        b"vp09" => "VP9",
        b"vp08" => "VP8",
        b"Opus" => "Opus",
        b"fLaC" => "FLAC",
        b"ac-3" => "AC-3",
        b"ec-3" => "E-AC-3",
        b".mp3" => "MP3",
        b"mp4a" => "AAC",
        _ => "unknown codec",
    };
    format!(
        "{name} (Enhanced RTMP FourCC {:?}); Sigma ingests H.264 video and AAC audio",
        String::from_utf8_lossy(&cc)
    )
}

fn legacy_video_codec(id: u8) -> String {
    let name = match id {
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "On2 VP6",
        5 => "On2 VP6 with alpha",
        6 => "Screen video v2",
        12 => "HEVC (non-standard FLV codec id 12)",
        13 => "AV1 (non-standard FLV codec id 13)",
        _ => "unknown",
    };
    format!("FLV video codec id {id} ({name}); Sigma ingests H.264 video")
}

fn legacy_audio_codec(id: u8) -> String {
    let name = match id {
        0 => "linear PCM, platform endian",
        1 => "ADPCM",
        2 => "MP3",
        3 => "linear PCM, little endian",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        11 => "Speex",
        14 => "MP3 8 kHz",
        15 => "device-specific",
        _ => "reserved",
    };
    format!("FLV audio format {id} ({name}); Sigma ingests AAC audio")
}

impl Default for FlvDemuxer {
    fn default() -> Self {
        Self::new(600_000)
    }
}

impl FlvDemuxer {
    /// A demuxer that refuses a forward timestamp jump above `max_jump_ms` on a track.
    pub fn new(max_jump_ms: i64) -> Self {
        FlvDemuxer {
            video: None,
            audio: None,
            generation: 0,
            dirty: false,
            info: None,
            events: VecDeque::with_capacity(4),
            max_jump_ms,
        }
    }

    /// The stream info last emitted.
    pub fn info(&self) -> Option<&Arc<StreamInfo>> {
        self.info.as_ref()
    }

    /// The next event, if any.
    pub fn pull(&mut self) -> Option<DemuxEvent> {
        self.events.pop_front()
    }

    fn unwrap_ts(
        unwrap: &mut TimestampUnwrapper,
        raw: u32,
        track: TrackId,
        max_jump_ms: i64,
    ) -> Result<i64, Error> {
        let last = unwrap.last();
        let ms = unwrap.unwrap(raw);
        if let Some(last) = last
            && ms - last > max_jump_ms
        {
            return Err(Error::TimestampJump {
                track: track.0,
                jump_ms: ms - last,
                limit_ms: max_jump_ms,
            });
        }
        Ok(ms)
    }

    fn emit_info_if_changed(&mut self) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        let mut tracks = Vec::with_capacity(2);
        if let Some(v) = &self.video {
            tracks.push(
                TrackInfo::new(
                    VIDEO_TRACK,
                    VIDEO_TIMESCALE,
                    CodecConfig::H264(v.config.clone()),
                )
                .map_err(Error::CodecConfig)?,
            );
        }
        if let Some(a) = &self.audio {
            tracks.push(
                TrackInfo::new(
                    AUDIO_TRACK,
                    a.config.output_sample_rate(),
                    CodecConfig::Aac(a.config.clone()),
                )
                .map_err(Error::CodecConfig)?,
            );
        }
        self.generation += 1;
        let info = StreamInfo::new(self.generation, tracks).map_err(Error::CodecConfig)?;
        self.info = Some(info.clone());
        self.events.push_back(DemuxEvent::Info(info));
        Ok(())
    }

    /// Takes the body of an RTMP video message (type 9) with its timestamp.
    pub fn push_video(&mut self, timestamp: u32, payload: Bytes) -> Result<(), Error> {
        let bad = |reason| Error::InvalidTag {
            kind: "video",
            timestamp,
            reason,
        };
        let Some(&b0) = payload.first() else {
            // An empty video message carries nothing; some encoders send them.
            return Ok(());
        };
        // (frame type, packet type: 0 header / 1 frames / 2 end, composition time, data offset)
        let (frame_type, packet_type, cts, data_at) = if b0 & 0x80 != 0 {
            // Enhanced RTMP ExVideoTagHeader.
            let frame_type = (b0 >> 4) & 0x07;
            let packet_type = b0 & 0x0F;
            if frame_type == 5 && packet_type != 4 {
                return Ok(()); // command frame
            }
            let cc = payload.get(1..5).ok_or_else(|| bad("truncated FourCC"))?;
            let cc = [cc[0], cc[1], cc[2], cc[3]];
            if packet_type == 6 || packet_type == 7 {
                return Err(Error::UnsupportedCodec(
                    "Enhanced RTMP multitrack/ModEx video packets".into(),
                ));
            }
            if &cc != b"avc1" {
                return Err(Error::UnsupportedCodec(four_cc_name(cc)));
            }
            match packet_type {
                0 => (frame_type, 0, 0, 5),
                1 => {
                    let c = payload
                        .get(5..8)
                        .ok_or_else(|| bad("truncated CompositionTime"))?;
                    (frame_type, 1, si24(c), 8)
                }
                3 => (frame_type, 1, 0, 5),
                2 => (frame_type, 2, 0, 5),
                // Metadata (4) and MPEG-2 TS sequence start (5) carry nothing we use.
                _ => return Ok(()),
            }
        } else {
            let frame_type = b0 >> 4;
            let codec = b0 & 0x0F;
            if frame_type == 5 {
                return Ok(()); // video info/command frame (§E.4.3.1)
            }
            if codec != 7 {
                return Err(Error::UnsupportedCodec(legacy_video_codec(codec)));
            }
            let h = payload
                .get(1..5)
                .ok_or_else(|| bad("truncated AVC packet header"))?;
            (frame_type, h[0], si24(&h[1..4]), 5)
        };
        let data = payload.slice(data_at..);
        match packet_type {
            0 => {
                let config = H264Config::from_avcc(data).map_err(Error::CodecConfig)?;
                match &mut self.video {
                    Some(t) if t.config == config => {}
                    Some(t) => {
                        t.config = config;
                        self.dirty = true;
                    }
                    None => {
                        self.video = Some(Track {
                            config,
                            unwrap: TimestampUnwrapper::new(),
                        });
                        self.dirty = true;
                    }
                }
                Ok(())
            }
            1 => {
                if self.video.is_none() {
                    return Err(Error::FrameBeforeSequenceHeader {
                        kind: "video",
                        timestamp,
                    });
                }
                if data.is_empty() {
                    return Ok(());
                }
                self.emit_info_if_changed()?;
                let max_jump = self.max_jump_ms;
                let Some(v) = self.video.as_mut() else {
                    return Ok(());
                };
                let ms = Self::unwrap_ts(&mut v.unwrap, timestamp, VIDEO_TRACK, max_jump)?;
                let dts = ms * 90;
                let pts = (ms + i64::from(cts)) * 90;
                let key = frame_type == 1 || frame_type == 4;
                self.events.push_back(DemuxEvent::Frame(Frame::new(
                    VIDEO_TRACK,
                    dts,
                    pts,
                    key,
                    data,
                )));
                Ok(())
            }
            2 => Ok(()), // end of sequence
            _ => Err(bad("reserved AVCPacketType")),
        }
    }

    /// Takes the body of an RTMP audio message (type 8) with its timestamp.
    pub fn push_audio(&mut self, timestamp: u32, payload: Bytes) -> Result<(), Error> {
        let Some(&b0) = payload.first() else {
            return Ok(());
        };
        let format = b0 >> 4;
        if format == 9 {
            // Enhanced RTMP ExAudioTagHeader: the FourCC follows the first byte.
            let cc = payload.get(1..5).ok_or(Error::InvalidTag {
                kind: "audio",
                timestamp,
                reason: "truncated FourCC",
            })?;
            return Err(Error::UnsupportedCodec(four_cc_name([
                cc[0], cc[1], cc[2], cc[3],
            ])));
        }
        if format != 10 {
            return Err(Error::UnsupportedCodec(legacy_audio_codec(format)));
        }
        let Some(&packet_type) = payload.get(1) else {
            return Err(Error::InvalidTag {
                kind: "audio",
                timestamp,
                reason: "truncated AACPacketType",
            });
        };
        let data = payload.slice(2..);
        match packet_type {
            0 => {
                let config =
                    AacConfig::from_audio_specific_config(data).map_err(Error::CodecConfig)?;
                match &mut self.audio {
                    Some(t) if t.config == config => {}
                    Some(t) => {
                        t.config = config;
                        self.dirty = true;
                    }
                    None => {
                        self.audio = Some(Track {
                            config,
                            unwrap: TimestampUnwrapper::new(),
                        });
                        self.dirty = true;
                    }
                }
                Ok(())
            }
            1 => {
                if self.audio.is_none() {
                    return Err(Error::FrameBeforeSequenceHeader {
                        kind: "audio",
                        timestamp,
                    });
                }
                if data.is_empty() {
                    return Ok(());
                }
                self.emit_info_if_changed()?;
                let max_jump = self.max_jump_ms;
                let Some(a) = self.audio.as_mut() else {
                    return Ok(());
                };
                let ms = Self::unwrap_ts(&mut a.unwrap, timestamp, AUDIO_TRACK, max_jump)?;
                let t = rescale(ms, 1000, a.config.output_sample_rate());
                self.events
                    .push_back(DemuxEvent::Frame(Frame::new(AUDIO_TRACK, t, t, true, data)));
                Ok(())
            }
            _ => Err(Error::InvalidTag {
                kind: "audio",
                timestamp,
                reason: "reserved AACPacketType",
            }),
        }
    }
}

fn si24(b: &[u8]) -> i32 {
    (i32::from_be_bytes([b[0], b[1], b[2], 0])) >> 8
}

/// One FLV tag inside an RTMP aggregate message (RTMP 1.0 §7.1.6): type, timestamp, body.
#[derive(Debug, Clone)]
pub struct AggregateTag {
    /// Message type (8 audio, 9 video, 18 data).
    pub type_id: u8,
    /// Timestamp of the tag, rebased on the aggregate message's timestamp.
    pub timestamp: u32,
    /// Tag body (a slice of the aggregate message).
    pub body: Bytes,
}

/// Splits an aggregate message into its tags; `timestamp` is the message's timestamp.
pub fn split_aggregate(timestamp: u32, payload: &Bytes) -> Result<Vec<AggregateTag>, Error> {
    let bad = |reason| Error::InvalidTag {
        kind: "aggregate",
        timestamp,
        reason,
    };
    let mut tags = Vec::new();
    let mut at = 0usize;
    let mut first_ts: Option<u32> = None;
    while at < payload.len() {
        let h = payload
            .get(at..at + 11)
            .ok_or_else(|| bad("truncated tag header"))?;
        let type_id = h[0] & 0x1F;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body_at = at + 11;
        let body = payload
            .get(body_at..body_at + size)
            .ok_or_else(|| bad("tag body beyond the message"))?;
        let base = *first_ts.get_or_insert(ts);
        tags.push(AggregateTag {
            type_id,
            timestamp: timestamp.wrapping_add(ts.wrapping_sub(base)),
            body: payload.slice_ref(body),
        });
        at = body_at + size + 4; // PreviousTagSize
    }
    Ok(tags)
}

/// Turns frames and stream info back into FLV tag bodies, for the publish client.
#[derive(Default)]
pub struct FlvMuxer {
    info: Option<Arc<StreamInfo>>,
}

/// One muxed tag: the RTMP message type, its millisecond timestamp and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MuxedTag {
    /// 8 (audio), 9 (video) or 18 (data).
    pub type_id: u8,
    /// Milliseconds, wrapping at 2^32.
    pub timestamp: u32,
    /// The tag body.
    pub body: Bytes,
}

impl FlvMuxer {
    /// A muxer with no tracks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets new stream info; returns the `@setDataFrame` metadata tag and the sequence header
    /// tags to send before the frames that use it (all at `timestamp_ms`).
    pub fn set_info(&mut self, info: Arc<StreamInfo>, timestamp_ms: u32) -> Vec<MuxedTag> {
        let mut out = Vec::with_capacity(3);
        let mut meta: Vec<(String, Value)> = Vec::new();
        let mut put = |k: &str, v: Value| meta.push((k.to_owned(), v));
        for t in info.tracks() {
            match t.codec() {
                CodecConfig::H264(c) => {
                    put("width", Value::Number(f64::from(c.width())));
                    put("height", Value::Number(f64::from(c.height())));
                    if let Some(f) = c.frame_rate() {
                        put("framerate", Value::Number(f));
                    }
                    put("videocodecid", Value::Number(7.0));
                }
                CodecConfig::Aac(c) => {
                    put("audiosamplerate", Value::Number(f64::from(c.sample_rate())));
                    put("audiochannels", Value::Number(f64::from(c.channels())));
                    put("stereo", Value::Boolean(c.channels() >= 2));
                    put("audiocodecid", Value::Number(10.0));
                }
                _ => {}
            }
        }
        put(
            "encoder",
            Value::string(format!("sigma-rtmp {}", env!("CARGO_PKG_VERSION"))),
        );
        let mut body = BytesMut::new();
        crate::amf0::encode_all(
            &[
                Value::string("@setDataFrame"),
                Value::string("onMetaData"),
                Value::EcmaArray(meta),
            ],
            &mut body,
        );
        out.push(MuxedTag {
            type_id: 18,
            timestamp: timestamp_ms,
            body: body.freeze(),
        });
        for t in info.tracks() {
            match t.codec() {
                CodecConfig::H264(c) => {
                    let mut b = BytesMut::with_capacity(5 + c.avcc().len());
                    b.put_slice(&[0x17, 0, 0, 0, 0]);
                    b.put_slice(c.avcc());
                    out.push(MuxedTag {
                        type_id: 9,
                        timestamp: timestamp_ms,
                        body: b.freeze(),
                    });
                }
                CodecConfig::Aac(c) => {
                    let asc = c.audio_specific_config();
                    let mut b = BytesMut::with_capacity(2 + asc.len());
                    b.put_slice(&[0xAF, 0]);
                    b.put_slice(asc);
                    out.push(MuxedTag {
                        type_id: 8,
                        timestamp: timestamp_ms,
                        body: b.freeze(),
                    });
                }
                _ => {}
            }
        }
        self.info = Some(info);
        out
    }

    /// Muxes one frame; the frame's track must be in the info last set. Timestamps are
    /// rescaled to milliseconds (rounded to nearest) from the track's timescale.
    pub fn mux(&self, frame: &Frame) -> Result<MuxedTag, Error> {
        let info = self
            .info
            .as_ref()
            .ok_or(Error::NotReady("frame muxed before stream info"))?;
        let track = info
            .track(frame.track())
            .ok_or(Error::Bus(sigma_core::Error::UnknownTrack(frame.track().0)))?;
        let ms = rescale(frame.dts(), track.timescale(), 1000);
        let timestamp = ms as u32; // RTMP time wraps at 2^32 ms
        match track.kind() {
            MediaKind::Video => {
                let cts = rescale(frame.pts(), track.timescale(), 1000) - ms;
                let cts = cts.clamp(-(1 << 23), (1 << 23) - 1) as i32;
                let mut b = BytesMut::with_capacity(5 + frame.len());
                b.put_u8(if frame.is_keyframe() { 0x17 } else { 0x27 });
                b.put_u8(1);
                b.put_slice(&cts.to_be_bytes()[1..]);
                b.put_slice(frame.data());
                Ok(MuxedTag {
                    type_id: 9,
                    timestamp,
                    body: b.freeze(),
                })
            }
            MediaKind::Audio => {
                let mut b = BytesMut::with_capacity(2 + frame.len());
                b.put_slice(&[0xAF, 1]);
                b.put_slice(frame.data());
                Ok(MuxedTag {
                    type_id: 8,
                    timestamp,
                    body: b.freeze(),
                })
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn avcc() -> Bytes {
        // x264 High 320x240, from the ffmpeg source described in testdata/README.md.
        Bytes::from_static(include_bytes!("../testdata/x264_320x240.avcc"))
    }

    pub(crate) fn asc() -> Bytes {
        Bytes::from_static(&[0x12, 0x10]) // AAC-LC 44.1 kHz stereo
    }

    fn video(frame_type: u8, packet: u8, cts: i32, data: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8((frame_type << 4) | 7);
        b.put_u8(packet);
        b.put_slice(&cts.to_be_bytes()[1..]);
        b.put_slice(data);
        b.freeze()
    }

    #[test]
    fn avc_and_aac_to_frames() {
        let mut d = FlvDemuxer::default();
        d.push_video(0, video(1, 0, 0, &avcc())).unwrap();
        let mut a = BytesMut::from(&[0xAF, 0][..]);
        a.extend_from_slice(&asc());
        d.push_audio(0, a.freeze()).unwrap();
        assert!(d.pull().is_none(), "info waits for the first frame");
        let body = video(1, 1, 80, &[0, 0, 0, 2, 0x65, 0x88]);
        d.push_video(40, body.clone()).unwrap();
        let DemuxEvent::Info(info) = d.pull().unwrap() else {
            panic!()
        };
        assert_eq!(info.generation(), 1);
        assert_eq!(info.tracks().len(), 2);
        assert_eq!(info.track(AUDIO_TRACK).unwrap().timescale(), 44_100);
        let DemuxEvent::Frame(f) = d.pull().unwrap() else {
            panic!()
        };
        assert_eq!((f.dts(), f.pts(), f.is_keyframe()), (3600, 10_800, true));
        assert_eq!(
            f.data().as_ptr(),
            body[5..].as_ptr(),
            "payload is a slice, not a copy"
        );
        d.push_audio(23, Bytes::from_static(&[0xAF, 1, 0x21, 0x10]))
            .unwrap();
        let DemuxEvent::Frame(f) = d.pull().unwrap() else {
            panic!()
        };
        assert_eq!((f.track(), f.dts(), f.len()), (AUDIO_TRACK, 1014, 2));
        // The same header again changes nothing; a different one bumps the generation.
        d.push_video(80, video(1, 0, 0, &avcc())).unwrap();
        d.push_video(80, video(2, 1, 0, &[0, 0, 0, 1, 0x41]))
            .unwrap();
        assert!(matches!(d.pull(), Some(DemuxEvent::Frame(_))));
        let mut other = avcc().to_vec();
        other[3] = 0x1E; // level 3.0
        d.push_video(120, video(1, 0, 0, &other)).unwrap();
        d.push_video(120, video(1, 1, 0, &[0, 0, 0, 1, 0x65]))
            .unwrap();
        let DemuxEvent::Info(info) = d.pull().unwrap() else {
            panic!()
        };
        assert_eq!(info.generation(), 2);
    }

    #[test]
    fn refusals_are_clear() {
        let mut d = FlvDemuxer::default();
        let e = d
            .push_video(0, video(1, 1, 0, &[0, 0, 0, 1, 0x65]))
            .unwrap_err();
        assert!(matches!(
            e,
            Error::FrameBeforeSequenceHeader { kind: "video", .. }
        ));
        let e = d
            .push_video(0, Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 1]))
            .unwrap_err();
        assert!(e.to_string().contains("HEVC"), "{e}");
        let e = d
            .push_video(0, Bytes::from_static(&[0x90, b'a', b'v', b'0', b'1']))
            .unwrap_err();
        assert!(e.to_string().contains("AV1"), "{e}");
        let e = d.push_video(0, Bytes::from_static(&[0x12, 0])).unwrap_err();
        assert!(e.to_string().contains("H.263"), "{e}");
        let e = d.push_audio(0, Bytes::from_static(&[0x2F, 0])).unwrap_err();
        assert!(e.to_string().contains("MP3"), "{e}");
        let e = d
            .push_audio(0, Bytes::from_static(&[0x90, b'O', b'p', b'u', b's']))
            .unwrap_err();
        assert!(e.to_string().contains("Opus"), "{e}");
        let e = d
            .push_audio(0, Bytes::from_static(&[0xAF, 1, 1]))
            .unwrap_err();
        assert!(matches!(
            e,
            Error::FrameBeforeSequenceHeader { kind: "audio", .. }
        ));
        assert!(matches!(
            d.push_video(0, Bytes::from_static(&[0x17, 1])),
            Err(Error::InvalidTag { .. })
        ));
        assert!(matches!(
            d.push_video(0, video(1, 0, 0, &[1, 2, 3])),
            Err(Error::CodecConfig(_))
        ));
    }

    #[test]
    fn enhanced_avc1_is_read_like_legacy_avc() {
        let mut d = FlvDemuxer::default();
        let mut h = BytesMut::from(&[0x90, b'a', b'v', b'c', b'1'][..]);
        h.extend_from_slice(&avcc());
        d.push_video(0, h.freeze()).unwrap();
        d.push_video(
            0,
            Bytes::from_static(&[0x93, b'a', b'v', b'c', b'1', 0, 0, 0, 1, 0x65]),
        )
        .unwrap();
        assert!(matches!(d.pull(), Some(DemuxEvent::Info(_))));
        let Some(DemuxEvent::Frame(f)) = d.pull() else {
            panic!()
        };
        assert!(f.is_keyframe());
        assert_eq!(f.len(), 5);
    }

    #[test]
    fn timestamps_unwrap_and_jumps_are_limited() {
        let mut d = FlvDemuxer::new(10_000);
        d.push_video(0, video(1, 0, 0, &avcc())).unwrap();
        d.push_video(u32::MAX - 9, video(1, 1, 0, &[0, 0, 0, 1, 0x65]))
            .unwrap();
        d.push_video(30, video(2, 1, 0, &[0, 0, 0, 1, 0x41]))
            .unwrap();
        let _ = d.pull();
        let Some(DemuxEvent::Frame(a)) = d.pull() else {
            panic!()
        };
        let Some(DemuxEvent::Frame(b)) = d.pull() else {
            panic!()
        };
        assert_eq!(b.dts() - a.dts(), 40 * 90, "crosses the 32-bit wrap");
        let e = d
            .push_video(0x4000_0000, video(2, 1, 0, &[0, 0, 0, 1, 0x41]))
            .unwrap_err();
        assert!(matches!(e, Error::TimestampJump { track: 1, .. }), "{e}");
    }

    #[test]
    fn muxer_round_trips_through_demuxer() {
        let mut d = FlvDemuxer::default();
        d.push_video(0, video(1, 0, 0, &avcc())).unwrap();
        let mut a = BytesMut::from(&[0xAF, 0][..]);
        a.extend_from_slice(&asc());
        d.push_audio(0, a.freeze()).unwrap();
        d.push_video(1000, video(1, 1, 40, &[0, 0, 0, 1, 0x65]))
            .unwrap();
        d.push_audio(1003, Bytes::from_static(&[0xAF, 1, 9, 9, 9]))
            .unwrap();
        let DemuxEvent::Info(info) = d.pull().unwrap() else {
            panic!()
        };
        let frames: Vec<Frame> = std::iter::from_fn(|| d.pull())
            .map(|e| match e {
                DemuxEvent::Frame(f) => f,
                DemuxEvent::Info(_) => panic!(),
            })
            .collect();
        let mut m = FlvMuxer::new();
        let head = m.set_info(info.clone(), 0);
        assert_eq!(head.len(), 3);
        let meta = crate::amf0::decode_all(&head[0].body, Default::default()).unwrap();
        assert_eq!(meta[2].get("height"), Some(&Value::Number(240.0)));
        let mut d2 = FlvDemuxer::default();
        for t in &head[1..] {
            match t.type_id {
                9 => d2.push_video(t.timestamp, t.body.clone()).unwrap(),
                _ => d2.push_audio(t.timestamp, t.body.clone()).unwrap(),
            }
        }
        for f in &frames {
            let t = m.mux(f).unwrap();
            match t.type_id {
                9 => d2.push_video(t.timestamp, t.body).unwrap(),
                _ => d2.push_audio(t.timestamp, t.body).unwrap(),
            }
        }
        let DemuxEvent::Info(info2) = d2.pull().unwrap() else {
            panic!()
        };
        assert_eq!(info2.tracks(), info.tracks());
        for f in &frames {
            let Some(DemuxEvent::Frame(g)) = d2.pull() else {
                panic!()
            };
            assert_eq!(&g, f);
        }
    }

    #[test]
    fn aggregate_messages_split() {
        let mut p = BytesMut::new();
        for (ts, body) in [(500u32, &b"abc"[..]), (540, &b"de"[..])] {
            p.put_u8(9);
            p.put_uint(body.len() as u64, 3);
            p.put_uint(u64::from(ts & 0xFF_FFFF), 3);
            p.put_u8((ts >> 24) as u8);
            p.put_uint(0, 3);
            p.put_slice(body);
            p.put_u32(11 + body.len() as u32);
        }
        let tags = split_aggregate(10_000, &p.freeze()).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(
            (tags[0].timestamp, &tags[0].body[..]),
            (10_000, &b"abc"[..])
        );
        assert_eq!((tags[1].timestamp, &tags[1].body[..]), (10_040, &b"de"[..]));
        assert!(split_aggregate(0, &Bytes::from_static(&[9, 0, 0, 9, 0])).is_err());
    }
}
