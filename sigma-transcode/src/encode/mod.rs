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
