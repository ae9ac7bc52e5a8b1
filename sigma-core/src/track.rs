//! Track and codec descriptions, carried out of band from the frames.

use crate::{Error, TrackId};
use bytes::Bytes;
use h264_reader::avcc::AvcDecoderConfigurationRecord;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};
use std::fmt;
use std::sync::Arc;

/// Whether a track carries pictures or sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Pictures.
    Video,
    /// Sound.
    Audio,
}

/// A codec's configuration: everything a decoder needs besides the frames.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum CodecConfig {
    /// H.264 / AVC.
    H264(H264Config),
    /// AAC (any MPEG-4 audio object type carried in an AudioSpecificConfig).
    Aac(AacConfig),
}

impl CodecConfig {
    /// Video or audio.
    pub fn kind(&self) -> MediaKind {
        match self {
            CodecConfig::H264(_) => MediaKind::Video,
            CodecConfig::Aac(_) => MediaKind::Audio,
        }
    }

    /// The RFC 6381 `CODECS` string, e.g. `avc1.64001f` or `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        match self {
            CodecConfig::H264(c) => c.codec_string(),
            CodecConfig::Aac(c) => c.codec_string(),
        }
    }
}

/// H.264 configuration from an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1).
///
/// Parsing validates the record and its first SPS once (with `h264-reader`); afterwards the
/// accessors are plain field reads.
#[derive(Clone, PartialEq)]
pub struct H264Config {
    avcc: Bytes,
    profile_idc: u8,
    constraint_flags: u8,
    level_idc: u8,
    nal_length_size: u8,
    width: u32,
    height: u32,
    frame_rate: Option<f64>,
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
}

impl H264Config {
    /// Parses an `avcC` record body (no box header). The record must hold at least one SPS and
    /// one PPS, and the first SPS must parse.
    pub fn from_avcc(avcc: Bytes) -> Result<Self, Error> {
        let bad = |what: String| Error::InvalidAvcConfig(what);
        let record = AvcDecoderConfigurationRecord::try_from(&avcc[..])
            .map_err(|e| bad(format!("{e:?}")))?;
        // h264-reader 0.9 panics on a zero-length parameter set when iterating; refuse those
        // first (its `try_from` has already checked that every length fits the buffer).
        reject_empty_parameter_sets(&avcc).map_err(bad)?;
        let slice_of = |s: &[u8]| avcc.slice_ref(s);
        let mut sps = Vec::new();
        for s in record.sequence_parameter_sets() {
            sps.push(slice_of(s.map_err(|e| bad(format!("SPS: {e:?}")))?));
        }
        let mut pps = Vec::new();
        for p in record.picture_parameter_sets() {
            pps.push(slice_of(p.map_err(|e| bad(format!("PPS: {e:?}")))?));
        }
        let first = sps
            .first()
            .ok_or_else(|| bad("no sequence parameter set".into()))?;
        if pps.is_empty() {
            return Err(bad("no picture parameter set".into()));
        }
        let parsed = SeqParameterSet::from_bits(RefNal::new(first, &[], true).rbsp_bits())
            .map_err(|e| bad(format!("SPS: {e:?}")))?;
        let (width, height) = parsed
            .pixel_dimensions()
            .map_err(|e| bad(format!("SPS dimensions: {e:?}")))?;
        let frame_rate = parsed.fps().filter(|f| f.is_finite() && *f > 0.0);
        let profile_idc = avcc[1];
        let constraint_flags = avcc[2];
        let level_idc = avcc[3];
        let nal_length_size = record.length_size_minus_one() + 1;
        if nal_length_size == 3 {
            // ISO/IEC 14496-15 allows only 1, 2 and 4.
            return Err(bad("NAL length size of 3 bytes".into()));
        }
        Ok(H264Config {
            profile_idc,
            constraint_flags,
            level_idc,
            nal_length_size,
            width,
            height,
            frame_rate,
            sps,
            pps,
            avcc,
        })
    }

    /// The record as received, for writing an `avcC` box unchanged.
    pub fn avcc(&self) -> &Bytes {
        &self.avcc
    }
    /// `AVCProfileIndication` (66 baseline, 77 main, 100 high, …).
    pub fn profile_idc(&self) -> u8 {
        self.profile_idc
    }
    /// `profile_compatibility`: the constraint_set flags byte.
    pub fn constraint_flags(&self) -> u8 {
        self.constraint_flags
    }
    /// `AVCLevelIndication` (31 for level 3.1).
    pub fn level_idc(&self) -> u8 {
        self.level_idc
    }
    /// Bytes in each NAL unit's length prefix in frame payloads: 1, 2 or 4.
    pub fn nal_length_size(&self) -> u8 {
        self.nal_length_size
    }
    /// Displayed width in pixels (after SPS cropping).
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Displayed height in pixels (after SPS cropping).
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Frame rate from the SPS VUI timing info, when the encoder wrote one.
    pub fn frame_rate(&self) -> Option<f64> {
        self.frame_rate
    }
    /// Sequence parameter sets (NAL units with header, no length prefix).
    pub fn sps(&self) -> &[Bytes] {
        &self.sps
    }
    /// Picture parameter sets (NAL units with header, no length prefix).
    pub fn pps(&self) -> &[Bytes] {
        &self.pps
    }
    /// RFC 6381 codec string: `avc1.PPCCLL` in hex, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// Walks the SPS and PPS lists of an `avcC` whose lengths are known to fit, and refuses a
/// parameter set of length zero (ISO/IEC 14496-15 §5.3.3.1.2: each holds at least a NAL header).
fn reject_empty_parameter_sets(avcc: &[u8]) -> Result<(), String> {
    let u16_at = |pos: usize| -> Option<usize> {
        Some(usize::from(*avcc.get(pos)?) << 8 | usize::from(*avcc.get(pos + 1)?))
    };
    let truncated = || "truncated parameter set list".to_string();
    let mut pos = 6;
    let sps_count = avcc.get(5).ok_or_else(truncated)? & 0x1f;
    for (what, count) in [("sequence", Some(sps_count)), ("picture", None)] {
        let count = match count {
            Some(c) => c,
            None => {
                let c = *avcc.get(pos).ok_or_else(truncated)?;
                pos += 1;
                c
            }
        };
        for i in 0..count {
            let len = u16_at(pos).ok_or_else(truncated)?;
            if len == 0 {
                return Err(format!("{what} parameter set {i} is empty"));
            }
            pos += 2 + len;
        }
    }
    Ok(())
}

impl fmt::Debug for H264Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H264Config")
            .field("codec", &self.codec_string())
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frame_rate", &self.frame_rate)
            .field("nal_length_size", &self.nal_length_size)
            .field("avcc_len", &self.avcc.len())
            .finish()
    }
}

/// AAC configuration from an `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1).
#[derive(Clone, PartialEq, Eq)]
pub struct AacConfig {
    asc: Bytes,
    object_type: u8,
    sample_rate: u32,
    output_sample_rate: u32,
    channels: u8,
    frame_samples: u32,
}

/// Sampling frequencies by `samplingFrequencyIndex` (ISO/IEC 14496-3 Table 1.18).
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Reads big-endian bit fields from a byte slice, remembering the bit position for errors.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize, what: &'static str) -> Result<u32, Error> {
        debug_assert!(n <= 32);
        if self.pos + n > self.data.len() * 8 {
            return Err(Error::InvalidAudioConfig {
                bit: self.pos,
                reason: what,
            });
        }
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.data[self.pos / 8];
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Ok(v)
    }

    fn object_type(&mut self) -> Result<u8, Error> {
        let t = self.read(5, "truncated audioObjectType")?;
        if t == 31 {
            Ok((32 + self.read(6, "truncated audioObjectTypeExt")?) as u8)
        } else {
            Ok(t as u8)
        }
    }

    fn sample_rate(&mut self) -> Result<u32, Error> {
        let at = self.pos;
        let index = self.read(4, "truncated samplingFrequencyIndex")?;
        if index == 0xf {
            let rate = self.read(24, "truncated samplingFrequency")?;
            if rate == 0 {
                return Err(Error::InvalidAudioConfig {
                    bit: at,
                    reason: "explicit sampling frequency of 0",
                });
            }
            return Ok(rate);
        }
        SAMPLE_RATES
            .get(index as usize)
            .copied()
            .ok_or(Error::InvalidAudioConfig {
                bit: at,
                reason: "reserved samplingFrequencyIndex",
            })
    }
}

impl AacConfig {
    /// Parses an AudioSpecificConfig. Explicit hierarchical SBR/PS signalling (object types 5
    /// and 29) is understood; trailing extension data (such as the backward-compatible SBR sync
    /// extension FFmpeg appends) is accepted and kept.
    pub fn from_audio_specific_config(asc: Bytes) -> Result<Self, Error> {
        let mut bits = Bits { data: &asc, pos: 0 };
        let signalled = bits.object_type()?;
        if signalled == 0 {
            return Err(Error::InvalidAudioConfig {
                bit: 0,
                reason: "audioObjectType 0 is not a valid object type",
            });
        }
        let sample_rate = bits.sample_rate()?;
        let channel_bit = bits.pos;
        let channel_config = bits.read(4, "truncated channelConfiguration")?;
        let mut output_sample_rate = sample_rate;
        let mut core_type = signalled;
        if signalled == 5 || signalled == 29 {
            output_sample_rate = bits.sample_rate()?;
            core_type = bits.object_type()?;
        }
        if !matches!(core_type, 1..=4 | 6 | 7 | 17 | 19..=23) {
            return Err(Error::Unsupported(format!(
                "AAC audioObjectType {core_type} (only GA/AAC object types are supported)"
            )));
        }
        let frame_length_flag = bits.read(1, "truncated GASpecificConfig")?;
        let channels = match channel_config {
            0 => {
                return Err(Error::Unsupported(
                    "AAC channelConfiguration 0 (program config element)".into(),
                ));
            }
            1..=6 => channel_config as u8,
            7 => 8,
            _ => {
                return Err(Error::InvalidAudioConfig {
                    bit: channel_bit,
                    reason: "reserved channelConfiguration",
                });
            }
        };
        let core_samples = if frame_length_flag == 1 { 960 } else { 1024 };
        let frame_samples = if output_sample_rate != sample_rate {
            core_samples * 2
        } else {
            core_samples
        };
        Ok(AacConfig {
            asc,
            object_type: signalled,
            sample_rate,
            output_sample_rate,
            channels,
            frame_samples,
        })
    }

    /// The record as received, for writing a `DecoderSpecificInfo` unchanged.
    pub fn audio_specific_config(&self) -> &Bytes {
        &self.asc
    }
    /// The signalled `audioObjectType`: 2 for AAC-LC, 5 for HE-AAC (SBR), 29 for HE-AACv2.
    pub fn object_type(&self) -> u8 {
        self.object_type
    }
    /// Sampling rate of the AAC core, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
    /// Sampling rate after SBR (equal to [`sample_rate`](Self::sample_rate) without SBR).
    pub fn output_sample_rate(&self) -> u32 {
        self.output_sample_rate
    }
    /// Number of output channels.
    pub fn channels(&self) -> u8 {
        self.channels
    }
    /// Samples per frame at the output rate (1024 for AAC-LC, 2048 with SBR).
    pub fn frame_samples(&self) -> u32 {
        self.frame_samples
    }
    /// RFC 6381 codec string, `mp4a.40.<object type>`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

impl fmt::Debug for AacConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AacConfig")
            .field("codec", &self.codec_string())
            .field("sample_rate", &self.sample_rate)
            .field("output_sample_rate", &self.output_sample_rate)
            .field("channels", &self.channels)
            .finish()
    }
}

/// One track of a stream: its id, the timescale its frames' timestamps use, and its codec.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackInfo {
    id: TrackId,
    timescale: u32,
    codec: CodecConfig,
}

impl TrackInfo {
    /// Describes a track. The timescale must be non-zero.
    pub fn new(id: TrackId, timescale: u32, codec: CodecConfig) -> Result<Self, Error> {
        if timescale == 0 {
            return Err(Error::ZeroTimescale);
        }
        Ok(TrackInfo {
            id,
            timescale,
            codec,
        })
    }
    /// The track id frames refer to.
    pub fn id(&self) -> TrackId {
        self.id
    }
    /// Ticks per second of this track's frame timestamps.
    pub fn timescale(&self) -> u32 {
        self.timescale
    }
    /// The codec configuration.
    pub fn codec(&self) -> &CodecConfig {
        &self.codec
    }
    /// Video or audio.
    pub fn kind(&self) -> MediaKind {
        self.codec.kind()
    }
}

/// The tracks of a stream at one point in time, shared as `Arc<StreamInfo>`.
///
/// `generation` grows by one each time the producer changes any track (a new sequence header
/// mid-stream, a track appearing): a stage that remembers the generation it last saw knows when
/// to write a new init segment.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamInfo {
    generation: u64,
    tracks: Vec<TrackInfo>,
}

impl StreamInfo {
    /// Makes stream info with the given generation. Track ids must be distinct.
    pub fn new(generation: u64, tracks: Vec<TrackInfo>) -> Result<Arc<Self>, Error> {
        for (i, t) in tracks.iter().enumerate() {
            if tracks[..i].iter().any(|u| u.id == t.id) {
                return Err(Error::Unsupported(format!("duplicate track id {}", t.id)));
            }
        }
        Ok(Arc::new(StreamInfo { generation, tracks }))
    }
    /// The change counter.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// All tracks, in the producer's order.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }
    /// The track with this id.
    pub fn track(&self, id: TrackId) -> Option<&TrackInfo> {
        self.tracks.iter().find(|t| t.id == id)
    }
    /// The first video track: its keyframes start the stream's groups of pictures.
    pub fn primary_video(&self) -> Option<&TrackInfo> {
        self.tracks.iter().find(|t| t.kind() == MediaKind::Video)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> Bytes {
        let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    #[test]
    fn x264_high_720p() {
        let c = H264Config::from_avcc(testdata("x264_high_720p30.avcc")).unwrap();
        assert_eq!(c.codec_string(), "avc1.64001f");
        assert_eq!((c.width(), c.height()), (1280, 720));
        assert_eq!(c.profile_idc(), 100);
        assert_eq!(c.level_idc(), 31);
        assert_eq!(c.nal_length_size(), 4);
        assert_eq!(c.sps().len(), 1);
        assert_eq!(c.pps().len(), 1);
        assert_eq!(c.sps()[0][0] & 0x1f, 7, "SPS NAL type");
        assert_eq!(c.pps()[0][0] & 0x1f, 8, "PPS NAL type");
        assert_eq!(c.frame_rate(), Some(30.0));
    }

    #[test]
    fn x264_baseline_360p() {
        let c = H264Config::from_avcc(testdata("x264_baseline_360p25.avcc")).unwrap();
        assert_eq!(c.codec_string(), "avc1.42c01e");
        assert_eq!((c.width(), c.height()), (640, 360));
        assert_eq!(c.frame_rate(), Some(25.0));
    }

    #[test]
    fn x264_main_1080p_is_cropped_to_1080_lines() {
        let c = H264Config::from_avcc(testdata("x264_main_1080p60.avcc")).unwrap();
        assert_eq!(c.codec_string(), "avc1.4d402a");
        assert_eq!((c.width(), c.height()), (1920, 1080));
        assert_eq!(c.frame_rate(), Some(60.0));
    }

    #[test]
    fn parameter_sets_share_the_record_buffer() {
        let avcc = testdata("x264_high_720p30.avcc");
        let range = avcc.as_ptr_range();
        let c = H264Config::from_avcc(avcc.clone()).unwrap();
        assert!(range.contains(&c.sps()[0].as_ptr()));
        assert!(range.contains(&c.pps()[0].as_ptr()));
    }

    #[test]
    fn malformed_avcc_is_an_error() {
        // The baseline record has no High-profile extension fields, so every truncation cuts
        // into something required.
        let good = testdata("x264_baseline_360p25.avcc");
        for len in 0..good.len() - 1 {
            let r = H264Config::from_avcc(good.slice(..len));
            assert!(r.is_err(), "truncated to {len} bytes parsed: {r:?}");
        }
        let mut wrong_version = good.to_vec();
        wrong_version[0] = 2;
        assert!(H264Config::from_avcc(wrong_version.into()).is_err());
        let mut no_pps = good[..6 + 2 + 0x19].to_vec();
        no_pps.push(0);
        assert!(matches!(
            H264Config::from_avcc(no_pps.into()),
            Err(Error::InvalidAvcConfig(m)) if m.contains("picture parameter set")
        ));
        let mut garbage_sps = good.to_vec();
        for b in &mut garbage_sps[9..20] {
            *b = 0xff;
        }
        assert!(H264Config::from_avcc(garbage_sps.into()).is_err());
    }

    #[test]
    fn empty_parameter_set_is_an_error_not_a_panic() {
        // Found by the core_avcc fuzz target: no SPS, one PPS of length 0.
        let r = H264Config::from_avcc(Bytes::from_static(&[1, 0, 0, 0, 0, 0, 1, 0, 0]));
        assert!(matches!(r, Err(Error::InvalidAvcConfig(m)) if m.contains("empty")));
        let mut empty_sps = testdata("x264_baseline_360p25.avcc").to_vec();
        empty_sps.splice(6..8 + 0x19, [0, 0]);
        assert!(H264Config::from_avcc(empty_sps.into()).is_err());
    }

    #[test]
    fn aac_lc_records_from_ffmpeg() {
        let c = AacConfig::from_audio_specific_config(testdata("aac_lc_48k_stereo.asc")).unwrap();
        assert_eq!(c.codec_string(), "mp4a.40.2");
        assert_eq!((c.sample_rate(), c.channels()), (48000, 2));
        assert_eq!(c.frame_samples(), 1024);

        let c = AacConfig::from_audio_specific_config(testdata("aac_lc_44k1_mono.asc")).unwrap();
        assert_eq!(c.codec_string(), "mp4a.40.2");
        assert_eq!((c.sample_rate(), c.channels()), (44100, 1));

        let c = AacConfig::from_audio_specific_config(testdata("aac_lc_22k05_5ch1.asc")).unwrap();
        assert_eq!((c.sample_rate(), c.channels()), (22050, 6));
    }

    #[test]
    fn he_aac_explicit_signalling() {
        // audioObjectType 5 (SBR), 24 kHz core (index 6), stereo, extension 48 kHz (index 3),
        // core object type 2, GASpecificConfig zeros.
        // 00101 0110 0010 0011 00010 000 -> bits packed below.
        let asc = Bytes::from_static(&[0b0010_1011, 0b0001_0001, 0b1000_1000, 0b0000_0000]);
        let c = AacConfig::from_audio_specific_config(asc).unwrap();
        assert_eq!(c.codec_string(), "mp4a.40.5");
        assert_eq!(c.sample_rate(), 24000);
        assert_eq!(c.output_sample_rate(), 48000);
        assert_eq!(c.channels(), 2);
        assert_eq!(c.frame_samples(), 2048);
    }

    #[test]
    fn malformed_asc_is_an_error() {
        assert!(matches!(
            AacConfig::from_audio_specific_config(Bytes::new()),
            Err(Error::InvalidAudioConfig { bit: 0, .. })
        ));
        // Object type 2, reserved frequency index 13.
        assert!(matches!(
            AacConfig::from_audio_specific_config(Bytes::from_static(&[0x16, 0x88])),
            Err(Error::InvalidAudioConfig { bit: 5, .. })
        ));
        // Object type 2, 48 kHz, channel configuration 0 (PCE) is refused clearly.
        assert!(matches!(
            AacConfig::from_audio_specific_config(Bytes::from_static(&[0x11, 0x80])),
            Err(Error::Unsupported(_))
        ));
        // Truncated after the object type.
        assert!(AacConfig::from_audio_specific_config(Bytes::from_static(&[0x12])).is_err());
    }

    #[test]
    fn stream_info_rejects_duplicate_ids_and_finds_primary_video() {
        let v = CodecConfig::H264(
            H264Config::from_avcc(testdata("x264_baseline_360p25.avcc")).unwrap(),
        );
        let a = CodecConfig::Aac(
            AacConfig::from_audio_specific_config(testdata("aac_lc_48k_stereo.asc")).unwrap(),
        );
        let audio = TrackInfo::new(TrackId(2), 48000, a).unwrap();
        let video = TrackInfo::new(TrackId(1), 90000, v).unwrap();
        let info = StreamInfo::new(3, vec![audio.clone(), video.clone()]).unwrap();
        assert_eq!(info.primary_video().map(|t| t.id()), Some(TrackId(1)));
        assert_eq!(info.generation(), 3);
        assert!(StreamInfo::new(0, vec![video.clone(), video]).is_err());
        assert!(TrackInfo::new(TrackId(9), 0, audio.codec().clone()).is_err());
    }
}
