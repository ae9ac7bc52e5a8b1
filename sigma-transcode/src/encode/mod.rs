//! Encoding: H.264 with x264 (cargo feature `x264`) and AAC with fdk-aac (cargo feature
//! `fdk-aac`).
//!
//! Encoders are push/pull pairs like the decoders: push a [`Picture`](crate::decode::Picture)
//! or an [`AudioBlock`](crate::decode::AudioBlock), pull sigma-core [`Frame`](sigma_core::Frame)s
//! until `None`. Each encoder also hands out the sigma-core codec configuration built from what
//! the encoder itself wrote (x264's SPS/PPS as an avcC record, fdk-aac's AudioSpecificConfig),
//! so a rendition's [`TrackInfo`](sigma_core::TrackInfo) is exact.
//!
//! The settings types are always compiled (a ladder can be parsed and checked in a build
//! without encoders); the encoders themselves only with their feature.

use crate::filter::Ratio;
use serde::{Deserialize, Serialize};

#[cfg(feature = "fdk-aac")]
mod aac;
#[cfg(feature = "x264")]
mod h264;

#[cfg(feature = "fdk-aac")]
pub use aac::AacEncoder;
#[cfg(feature = "x264")]
pub use h264::H264Encoder;

/// x264 speed/quality preset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Fastest, largest.
    Ultrafast,
    /// x264 `superfast`.
    Superfast,
    /// x264 `veryfast`: the usual choice for live ladders.
    #[default]
    Veryfast,
    /// x264 `faster`.
    Faster,
    /// x264 `fast`.
    Fast,
    /// x264 `medium` (x264's own default).
    Medium,
    /// x264 `slow`.
    Slow,
}

impl Preset {
    /// x264's name for the preset.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Ultrafast => "ultrafast",
            Preset::Superfast => "superfast",
            Preset::Veryfast => "veryfast",
            Preset::Faster => "faster",
            Preset::Fast => "fast",
            Preset::Medium => "medium",
            Preset::Slow => "slow",
        }
    }
}

/// H.264 profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Constrained baseline: no B-frames, no CABAC.
    Baseline,
    /// Main: B-frames and CABAC.
    Main,
    /// High: adds the 8x8 transform.
    #[default]
    High,
}

impl Profile {
    /// x264's name for the profile.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Baseline => "baseline",
            Profile::Main => "main",
            Profile::High => "high",
        }
    }
}

/// Rate control for live output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateControl {
    /// Average bitrate capped by the VBV (`--bitrate B --vbv-maxrate B --vbv-bufsize B`):
    /// the usual live setting.
    #[default]
    CappedAbr,
    /// Constant bitrate with HRD signalling and filler data (`--nal-hrd cbr --filler`): every
    /// second costs exactly the bitrate.
    Cbr,
}

/// Settings of one H.264 encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct H264Settings {
    /// Speed/quality preset.
    pub preset: Preset,
    /// x264's `zerolatency` tune: no B-frames, no lookahead, sliced threads. For the
    /// ultra-low-latency mode.
    pub zerolatency: bool,
    /// Profile.
    pub profile: Profile,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// VBV buffer in kbit (default: one second of the bitrate).
    pub buffer_kbits: Option<u32>,
    /// Rate-control mode.
    pub rate_control: RateControl,
    /// Most consecutive B-frames (default: the preset's; always 0 for baseline and
    /// zerolatency).
    pub bframes: Option<u32>,
    /// Encoder threads (0: x264 decides from the core count).
    pub threads: u32,
    /// Nominal frame rate given to rate control (default 30/1). Timestamps still come from
    /// the pictures.
    pub frame_rate: Ratio,
}

impl Default for H264Settings {
    fn default() -> Self {
        H264Settings {
            preset: Preset::default(),
            zerolatency: false,
            profile: Profile::default(),
            bitrate_kbps: 2500,
            buffer_kbits: None,
            rate_control: RateControl::default(),
            bframes: None,
            threads: 0,
            frame_rate: Ratio::new(30, 1),
        }
    }
}

/// AAC flavour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AacProfile {
    /// AAC-LC (object type 2): plays everywhere.
    #[default]
    Lc,
    /// HE-AAC (object type 5, SBR): better at 32–64 kbit/s.
    HeAac,
}

/// Settings of the AAC encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AacSettings {
    /// LC or HE-AAC.
    pub profile: AacProfile,
    /// Bitrate in bit/s.
    pub bitrate: u32,
}

impl Default for AacSettings {
    fn default() -> Self {
        AacSettings {
            profile: AacProfile::Lc,
            bitrate: 128_000,
        }
    }
}

#[cfg(all(test, feature = "x264", feature = "fdk-aac"))]
mod tests {
    use super::*;
    use crate::Error;
    use crate::audio::{AudioFilter, AudioInput, AudioProcessing, Channels};
    use crate::decode::{AudioBlock, AudioDecoder, DecoderOptions, VideoDecoder};
    use crate::fixture::moving_picture;
    use sigma_core::{Frame, TrackId};

    fn encode(settings: &H264Settings, n: i64, keys: &[i64]) -> (H264Encoder, Vec<Frame>) {
        let mut e = H264Encoder::new(settings, 320, 180, 90_000, TrackId(1)).unwrap();
        let mut out = Vec::new();
        for i in 0..n {
            let key = i == 0 || keys.contains(&i);
            e.push(&moving_picture(320, 180, i, key), key).unwrap();
            while let Some(f) = e.pull() {
                out.push(f);
            }
        }
        e.finish().unwrap();
        while let Some(f) = e.pull() {
            out.push(f);
        }
        (e, out)
    }

    fn decoded_count(e: &H264Encoder, frames: &[Frame]) -> usize {
        let mut d =
            VideoDecoder::new(e.config(), 90_000, 1, DecoderOptions { threads: 1 }).unwrap();
        let mut n = 0;
        for f in frames {
            d.push(f).unwrap();
            while d.pull().unwrap().is_some() {
                n += 1;
            }
        }
        d.finish().unwrap();
        while d.pull().unwrap().is_some() {
            n += 1;
        }
        n
    }

    #[test]
    fn profiles_and_bframes() {
        for (profile, idc) in [
            (Profile::Baseline, 66),
            (Profile::Main, 77),
            (Profile::High, 100),
        ] {
            let s = H264Settings {
                profile,
                bitrate_kbps: 400,
                ..H264Settings::default()
            };
            let (e, frames) = encode(&s, 30, &[]);
            assert_eq!(e.config().profile_idc(), idc, "{profile:?}");
            assert_eq!(e.config().nal_length_size(), 4);
            assert_eq!((e.config().width(), e.config().height()), (320, 180));
            assert_eq!(frames.len(), 30);
            assert_eq!(decoded_count(&e, &frames), 30, "{profile:?} decodes");
            let reordered = frames.iter().any(|f| f.pts() != f.dts());
            assert_eq!(
                reordered,
                profile != Profile::Baseline,
                "{profile:?} B-frames"
            );
            assert!(frames.windows(2).all(|w| w[0].dts() < w[1].dts()));
        }
    }

    #[test]
    fn keyframes_exactly_where_forced() {
        let (_, frames) = encode(&H264Settings::default(), 90, &[17, 45, 46, 80]);
        let mut keys: Vec<i64> = frames
            .iter()
            .filter(|f| f.is_keyframe())
            .map(|f| f.pts() / 3000)
            .collect();
        keys.sort();
        assert_eq!(keys, [0, 17, 45, 46, 80]);
    }

    #[test]
    fn zerolatency_emits_each_frame_at_once() {
        let s = H264Settings {
            zerolatency: true,
            preset: Preset::Ultrafast,
            ..H264Settings::default()
        };
        let mut e = H264Encoder::new(&s, 320, 180, 90_000, TrackId(1)).unwrap();
        for i in 0..10 {
            e.push(&moving_picture(320, 180, i, i == 0), i == 0)
                .unwrap();
            let f = e
                .pull()
                .unwrap_or_else(|| panic!("no frame for picture {i}, {} delayed", e.delayed()));
            assert_eq!((f.pts(), f.dts()), (i * 3000, i * 3000));
            assert!(e.pull().is_none());
        }
    }

    #[test]
    fn cbr_spends_the_bitrate() {
        let s = H264Settings {
            rate_control: RateControl::Cbr,
            bitrate_kbps: 300,
            ..H264Settings::default()
        };
        let (_, frames) = encode(&s, 120, &[60]);
        let kbps = frames.iter().map(|f| f.len()).sum::<usize>() as f64 * 8.0 / 4.0 / 1000.0;
        assert!((kbps - 300.0).abs() < 30.0, "{kbps:.0} kbit/s");
    }

    #[test]
    fn bad_settings_and_pictures_are_errors() {
        let s = H264Settings {
            bitrate_kbps: 0,
            ..H264Settings::default()
        };
        assert!(matches!(
            H264Encoder::new(&s, 320, 180, 90_000, TrackId(1)),
            Err(Error::InvalidOption { .. })
        ));
        assert!(H264Encoder::new(&H264Settings::default(), 321, 180, 90_000, TrackId(1)).is_err());
        let mut e =
            H264Encoder::new(&H264Settings::default(), 320, 180, 90_000, TrackId(1)).unwrap();
        assert!(matches!(
            e.push(&moving_picture(160, 90, 0, true), true),
            Err(Error::Encode { .. })
        ));
    }

    /// Encodes 1 s of a 440 Hz stereo tone at 48 kHz and decodes it back.
    fn aac_round_trip(profile: AacProfile, bitrate: u32) -> (AacEncoder, Vec<Frame>, Vec<f32>) {
        use ffmpeg_next as ff;
        let mut enc = AacEncoder::new(
            &AacSettings { profile, bitrate },
            48_000,
            Channels::Stereo,
            TrackId(2),
        )
        .unwrap();
        let mut filter = None;
        let mut frames = Vec::new();
        for b in 0..47 {
            let mut f = ff::frame::Audio::new(
                ff::format::Sample::F32(ff::format::sample::Type::Planar),
                1024,
                ff::ChannelLayout::STEREO,
            );
            f.set_rate(48_000);
            for ch in 0..2 {
                for (i, v) in f.plane_mut::<f32>(ch).iter_mut().enumerate().take(1024) {
                    let t = (b * 1024 + i) as f32 / 48_000.0;
                    *v = 0.25 * (2.0 * std::f32::consts::PI * 440.0 * t).sin();
                }
            }
            let block = AudioBlock::new(f, b as i64 * 1024);
            let g = filter.get_or_insert_with(|| {
                AudioFilter::new(
                    &AudioProcessing::default(),
                    AudioInput {
                        rate: 48_000,
                        channels: 2,
                        format: block.frame.format(),
                        timescale: 48_000,
                    },
                    0,
                )
                .unwrap()
            });
            g.push(&block).unwrap();
            while let Some(s16) = g.pull().unwrap() {
                enc.push(&s16).unwrap();
            }
        }
        enc.finish().unwrap();
        while let Some(f) = enc.pull() {
            frames.push(f);
        }
        let mut dec = AudioDecoder::new(enc.config(), 48_000, 2).unwrap();
        let mut left = Vec::new();
        for f in &frames {
            dec.push(f).unwrap();
            while let Some(b) = dec.pull().unwrap() {
                left.extend(b.channel_f32(0));
            }
        }
        (enc, frames, left)
    }

    #[test]
    fn aac_lc_round_trip() {
        let (enc, frames, left) = aac_round_trip(AacProfile::Lc, 128_000);
        let n = frames.len();
        assert!(frames.windows(2).all(|w| w[1].pts() - w[0].pts() == 1024));
        assert_eq!(enc.config().object_type(), 2);
        assert_eq!(
            (enc.config().sample_rate(), enc.config().channels()),
            (48_000, 2)
        );
        // 47 blocks of 1024 samples plus the encoder's priming, all flushed.
        assert_eq!(
            n as u32,
            (47 * 1024 + enc.delay()).div_ceil(1024),
            "delay {}",
            enc.delay()
        );
        let mid = &left[10_000..40_000];
        let rms = (mid.iter().map(|v| v * v).sum::<f32>() / mid.len() as f32).sqrt();
        assert!((rms - 0.25 / 2f32.sqrt()).abs() < 0.02, "rms {rms}");
    }

    #[test]
    fn he_aac_round_trip() {
        let (enc, frames, left) = aac_round_trip(AacProfile::HeAac, 48_000);
        let n = frames.len();
        let c = enc.config();
        // One frame covers 2048 samples at the output rate, and the timestamps say so.
        assert_eq!(enc.frame_length(), 2048);
        assert_eq!(c.frame_samples(), 2048, "{c:?}");
        assert!(frames.windows(2).all(|w| w[1].pts() - w[0].pts() == 2048));
        assert!(
            c.object_type() == 5 || c.output_sample_rate() == 2 * c.sample_rate(),
            "{c:?}"
        );
        assert_eq!(c.output_sample_rate(), 48_000);
        assert!(n >= 20, "{n} frames");
        let mid = &left[left.len() / 4..left.len() * 3 / 4];
        let rms = (mid.iter().map(|v| v * v).sum::<f32>() / mid.len() as f32).sqrt();
        assert!((rms - 0.25 / 2f32.sqrt()).abs() < 0.04, "rms {rms}");
    }
}
