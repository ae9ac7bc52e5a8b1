//! The ladder configuration: which renditions to make, and which of them a given source gets.
//!
//! A [`Ladder`] deserialises from the server configuration (serde; TOML or JSON). Planning it
//! against the source's picture size ([`Ladder::plan`]) yields the renditions to encode and, for
//! every rendition left out, a [`SkipReason`] that logs and playlists can show.

use crate::Error;
use crate::audio::AudioProcessing;
use crate::encode::{AacSettings, H264Settings, Preset, Profile};
use crate::filter::{Ratio, Size, VideoProcessing, check_size};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Most renditions in one ladder.
pub const MAX_RENDITIONS: usize = 16;

/// Conditions on the source for a rendition to be made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conditions {
    /// Make the rendition only when the source is at least this tall.
    pub min_source_height: Option<u32>,
    /// Make the rendition only when the source is at most this tall.
    pub max_source_height: Option<u32>,
    /// Make the rendition only when the source is at least this wide.
    pub min_source_width: Option<u32>,
    /// Make the rendition only when the source is at most this wide.
    pub max_source_width: Option<u32>,
    /// Allow a rendition larger than the source (off: never upscale).
    pub allow_upscale: bool,
}

/// One rung of the ladder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendition {
    /// Name, unique in the ladder (used in logs, thread names and playlists), e.g. `"720p"`.
    pub name: String,
    /// Height in pixels (even).
    pub height: u32,
    /// Width in pixels (even); default: from the height and the source's aspect ratio.
    #[serde(default)]
    pub width: Option<u32>,
    /// Frame rate; default: the source's.
    #[serde(default)]
    pub frame_rate: Option<Ratio>,
    /// Encoder settings (bitrate, profile, preset, …).
    pub video: H264Settings,
    /// When to make this rendition.
    #[serde(default)]
    pub conditions: Conditions,
}

/// Where every rendition starts a GOP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum KeyframePolicy {
    /// At the presentation times of the source's keyframes.
    #[default]
    Source,
    /// Every `seconds`, counted from the first picture.
    Every {
        /// GOP length in seconds.
        seconds: f64,
    },
}

/// The audio every rendition carries (one audio group for the whole ladder).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum AudioPlan {
    /// The source's AAC frames, unchanged.
    #[default]
    Copy,
    /// Decode, process and re-encode once; every rendition carries the result.
    Encode {
        /// Encoder settings.
        #[serde(default)]
        settings: AacSettings,
        /// Processing before the encoder.
        #[serde(default)]
        processing: AudioProcessing,
    },
}

/// A named ABR ladder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ladder {
    /// Name the configuration refers to (`"default"` for the built-in ladder).
    pub name: String,
    /// Processing applied once, before the renditions are scaled.
    #[serde(default)]
    pub processing: VideoProcessing,
    /// The renditions, top first.
    pub renditions: Vec<Rendition>,
    /// Also offer the source itself, unchanged, as the top rendition (named `"source"`).
    #[serde(default)]
    pub passthrough: bool,
    /// Where GOPs start.
    #[serde(default)]
    pub keyframes: KeyframePolicy,
    /// Audio.
    #[serde(default)]
    pub audio: AudioPlan,
}

impl Ladder {
    /// The built-in ladder (`sigma-server --transcode default`): 1280x720 at 2.5 Mbit/s,
    /// 854x480 at 1.2 Mbit/s and 640x360 at 0.6 Mbit/s, x264 `veryfast`, High/Main/Main
    /// profiles, keyframes where the source has them, audio copied.
    pub fn default_ladder() -> Ladder {
        let rung = |name: &str, h: u32, kbps: u32, profile: Profile| Rendition {
            name: name.into(),
            height: h,
            width: None,
            frame_rate: None,
            video: H264Settings {
                preset: Preset::Veryfast,
                profile,
                bitrate_kbps: kbps,
                ..H264Settings::default()
            },
            conditions: Conditions::default(),
        };
        Ladder {
            name: "default".into(),
            processing: VideoProcessing::default(),
            renditions: vec![
                rung("720p", 720, 2500, Profile::High),
                rung("480p", 480, 1200, Profile::Main),
                rung("360p", 360, 600, Profile::Main),
            ],
            passthrough: false,
            keyframes: KeyframePolicy::Source,
            audio: AudioPlan::Copy,
        }
    }

    /// Checks the ladder on its own (names, sizes, bitrates), before any source is known.
    pub fn validate(&self) -> Result<(), Error> {
        if self.renditions.len() > MAX_RENDITIONS {
            return Err(Error::option(
                "renditions",
                format!(
                    "{} renditions (each is an encoder thread); at most {MAX_RENDITIONS}",
                    self.renditions.len()
                ),
            ));
        }
        for (i, r) in self.renditions.iter().enumerate() {
            if r.name.is_empty()
                || r.name == "source"
                || self.renditions[..i].iter().any(|o| o.name == r.name)
            {
                return Err(Error::option(
                    "renditions.name",
                    format!("{:?} is empty, reserved or used twice", r.name),
                ));
            }
            check_size(
                "renditions.height",
                Size {
                    width: r.width.unwrap_or(16).max(16),
                    height: r.height,
                },
            )?;
            if let KeyframePolicy::Every { seconds } = self.keyframes
                && !(0.1..=60.0).contains(&seconds)
            {
                return Err(Error::option(
                    "keyframes.seconds",
                    format!("{seconds} is outside 0.1..=60"),
                ));
            }
        }
        Ok(())
    }

    /// Decides which renditions a source of `source` size (after the ladder's processing) gets,
    /// and at which size.
    pub fn plan(&self, source: Size) -> Result<Plan, Error> {
        self.validate()?;
        let mut plan = Plan {
            renditions: Vec::new(),
            skipped: Vec::new(),
        };
        for r in &self.renditions {
            let width = r.width.unwrap_or_else(|| {
                // Keep the source's aspect ratio; round to the nearest even width.
                let w = u64::from(source.width) * u64::from(r.height) * 2
                    / u64::from(source.height.max(1));
                (w.div_ceil(2) as u32).div_ceil(2) * 2
            });
            let size = Size {
                width,
                height: r.height,
            };
            check_size("renditions.width", size)?;
            let c = &r.conditions;
            let reason = if c.min_source_height.is_some_and(|m| source.height < m)
                || c.min_source_width.is_some_and(|m| source.width < m)
            {
                Some(SkipReason::SourceTooSmall { source })
            } else if c.max_source_height.is_some_and(|m| source.height > m)
                || c.max_source_width.is_some_and(|m| source.width > m)
            {
                Some(SkipReason::SourceTooLarge { source })
            } else if !c.allow_upscale && (size.height > source.height || size.width > source.width)
            {
                Some(SkipReason::WouldUpscale {
                    source,
                    rendition: size,
                })
            } else {
                None
            };
            match reason {
                Some(reason) => plan.skipped.push(Skipped {
                    name: r.name.clone(),
                    reason,
                }),
                None => plan.renditions.push(Planned {
                    rendition: r.clone(),
                    size,
                }),
            }
        }
        Ok(plan)
    }
}

/// The outcome of planning a ladder against a source.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Renditions to encode, in ladder order.
    pub renditions: Vec<Planned>,
    /// Renditions left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// A rendition to encode, with its resolved size.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// The configuration.
    pub rendition: Rendition,
    /// Output picture size.
    pub size: Size,
}

/// A rendition left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The rendition's name.
    pub name: String,
    /// Why.
    pub reason: SkipReason,
}

/// Why a rendition was left out; `Display` gives a sentence for logs and playlist comments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The rendition is larger than the source and upscaling is off.
    WouldUpscale {
        /// Source size.
        source: Size,
        /// Rendition size.
        rendition: Size,
    },
    /// The source is below the rendition's minimum size condition.
    SourceTooSmall {
        /// Source size.
        source: Size,
    },
    /// The source is above the rendition's maximum size condition.
    SourceTooLarge {
        /// Source size.
        source: Size,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::WouldUpscale { source, rendition } => write!(
                f,
                "source is {}x{}; {}x{} would upscale",
                source.width, source.height, rendition.width, rendition.height
            ),
            SkipReason::SourceTooSmall { source } => write!(
                f,
                "source {}x{} is below the rendition's minimum size",
                source.width, source.height
            ),
            SkipReason::SourceTooLarge { source } => write!(
                f,
                "source {}x{} is above the rendition's maximum size",
                source.width, source.height
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(width: u32, height: u32) -> Size {
        Size { width, height }
    }

    #[test]
    fn default_ladder_sizes_for_720p() {
        let plan = Ladder::default_ladder().plan(size(1280, 720)).unwrap();
        let sizes: Vec<_> = plan.renditions.iter().map(|p| p.size).collect();
        assert_eq!(sizes, [size(1280, 720), size(854, 480), size(640, 360)]);
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn never_upscales_1080p_for_720p_source() {
        let mut ladder = Ladder::default_ladder();
        let mut r = ladder.renditions[0].clone();
        r.name = "1080p".into();
        r.height = 1080;
        ladder.renditions.insert(0, r);
        let plan = ladder.plan(size(1280, 720)).unwrap();
        let names: Vec<_> = plan
            .renditions
            .iter()
            .map(|p| p.rendition.name.as_str())
            .collect();
        assert_eq!(names, ["720p", "480p", "360p"]);
        assert_eq!(plan.skipped.len(), 1);
        assert_eq!(plan.skipped[0].name, "1080p");
        assert_eq!(
            plan.skipped[0].reason.to_string(),
            "source is 1280x720; 1920x1080 would upscale"
        );
        // With upscaling allowed it is kept.
        ladder.renditions[0].conditions.allow_upscale = true;
        assert_eq!(ladder.plan(size(1280, 720)).unwrap().renditions.len(), 4);
    }

    #[test]
    fn min_and_max_source_conditions() {
        let mut ladder = Ladder::default_ladder();
        ladder.renditions[1].conditions.min_source_height = Some(1080);
        ladder.renditions[2].conditions.max_source_width = Some(1000);
        let plan = ladder.plan(size(1280, 720)).unwrap();
        assert_eq!(plan.renditions.len(), 1);
        assert!(matches!(
            plan.skipped[0].reason,
            SkipReason::SourceTooSmall { .. }
        ));
        assert!(matches!(
            plan.skipped[1].reason,
            SkipReason::SourceTooLarge { .. }
        ));
    }

    #[test]
    fn ladder_round_trips_through_serde_and_rejects_unknown_fields() {
        let ladder = Ladder::default_ladder();
        let json = serde_json::to_string(&ladder).unwrap();
        let back: Ladder = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ladder);
        let minimal = r#"{"name":"x","renditions":[{"name":"a","height":360,
            "video":{"bitrate_kbps":600,"profile":"baseline","zerolatency":true}}],
            "processing":{"rotate":"90"},"keyframes":{"mode":"every","seconds":2.0}}"#;
        let l: Ladder = serde_json::from_str(minimal).unwrap();
        assert_eq!(l.renditions[0].video.profile, Profile::Baseline);
        assert_eq!(l.keyframes, KeyframePolicy::Every { seconds: 2.0 });
        let bad = r#"{"name":"x","renditions":[],"filters":"movie=/etc/passwd"}"#;
        assert!(serde_json::from_str::<Ladder>(bad).is_err());
    }

    proptest::proptest! {
        /// Any source size and rendition size: a plan or an error, never a panic; planned
        /// renditions never upscale and are even-sized.
        #[test]
        fn planning_never_panics(
            sw in 0u32..20_000, sh in 0u32..20_000,
            rh in 0u32..5_000, rw in proptest::option::of(0u32..5_000),
        ) {
            let mut ladder = Ladder::default_ladder();
            ladder.renditions[0].height = rh;
            ladder.renditions[0].width = rw;
            if let Ok(plan) = ladder.plan(size(sw, sh)) {
                for p in &plan.renditions {
                    proptest::prop_assert!(p.size.width <= sw && p.size.height <= sh);
                    proptest::prop_assert!(p.size.width % 2 == 0 && p.size.height % 2 == 0);
                }
                proptest::prop_assert_eq!(plan.renditions.len() + plan.skipped.len(), 3);
            }
        }
    }

    #[test]
    fn the_toml_example_in_docs_parses() {
        let doc = include_str!("../../docs/transcode.md");
        let start = doc.find("```toml\n").unwrap() + 8;
        let end = start + doc[start..].find("```").unwrap();
        let ladder: Ladder = toml::from_str(&doc[start..end]).unwrap();
        assert_eq!(ladder.renditions.len(), 3);
        assert_eq!(
            ladder.processing.rotate,
            Some(crate::filter::Rotation::Clockwise90)
        );
        assert_eq!(
            ladder.renditions[0].conditions.max_source_height,
            Some(2160)
        );
        assert!(matches!(ladder.audio, AudioPlan::Copy));
        ladder.plan(size(720, 1280)).unwrap();
    }

    #[test]
    fn duplicate_or_bad_names_and_sizes_are_refused() {
        let mut ladder = Ladder::default_ladder();
        ladder.renditions[1].name = "720p".into();
        assert!(ladder.validate().is_err());
        let mut ladder = Ladder::default_ladder();
        ladder.renditions[0].height = 4320;
        assert!(ladder.plan(size(7680, 4320)).is_err());
        let mut ladder = Ladder::default_ladder();
        for i in 0..MAX_RENDITIONS {
            let mut r = ladder.renditions[2].clone();
            r.name = format!("extra{i}");
            ladder.renditions.push(r);
        }
        assert!(matches!(
            ladder.validate(),
            Err(Error::InvalidOption {
                option: "renditions",
                ..
            })
        ));
    }
}
