//! Latency modes: named presets for segment and part durations, hold-backs and window sizes.
//!
//! | mode | segments | parts | HOLD-BACK / PART-HOLD-BACK | expected latency |
//! | --- | --- | --- | --- | --- |
//! | [`LatencyMode::Normal`] | 6 s | none | 18 s | ~20 s; any player, any CDN, most robust to jitter |
//! | [`LatencyMode::Low`] | 1 s target (the publisher's keyframe interval wins if longer) | none | 3 × target | ~4–6 s; any HLS player, plain CDN |
//! | [`LatencyMode::UltraLow`] | 2 s target | 0.334 s | 1.002 s part hold-back | ≤ 1.5 s with hls.js low-latency mode; needs blocking reload end to end |
//!
//! Segments are cut only at keyframes, so the effective segment duration is the publisher's
//! keyframe interval rounded up to a multiple of it that reaches the target; the declared
//! `EXT-X-TARGETDURATION` and `HOLD-BACK` follow the longest segment actually produced.

use std::time::Duration;

/// A named latency preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LatencyMode {
    /// Six-second segments, no parts: the safest and most cache-friendly, ~20 s latency.
    Normal,
    /// One-to-two-second segments without parts: ~4–6 s with any player and plain CDNs, at
    /// the cost of more requests and less jitter tolerance.
    Low,
    /// LL-HLS: 0.334 s parts in 2 s segments, blocking reload and preload hints. Lowest
    /// latency, most requests, and every stage (CDN included) must support blocking requests.
    #[default]
    UltraLow,
}

impl LatencyMode {
    /// The durations this mode uses.
    pub fn timing(self) -> Timing {
        match self {
            LatencyMode::Normal => Timing {
                segment_target: Duration::from_secs(6),
                part_target: None,
                playlist_segments: 10,
            },
            LatencyMode::Low => Timing {
                segment_target: Duration::from_secs(1),
                part_target: None,
                playlist_segments: 20,
            },
            LatencyMode::UltraLow => Timing {
                segment_target: Duration::from_secs(2),
                part_target: Some(Duration::from_millis(334)),
                playlist_segments: 15,
            },
        }
    }

    /// The mode's name as used in configuration: `normal`, `low`, `ultra-low`.
    pub fn name(self) -> &'static str {
        match self {
            LatencyMode::Normal => "normal",
            LatencyMode::Low => "low",
            LatencyMode::UltraLow => "ultra-low",
        }
    }

    /// Parses a mode name as [`name`](Self::name) writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        [LatencyMode::Normal, LatencyMode::Low, LatencyMode::UltraLow]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// Durations and window sizes of one stream's renditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Segment target: a segment is cut at the first keyframe at or after ~90 % of this.
    pub segment_target: Duration,
    /// Part target (`EXT-X-PART-INF:PART-TARGET`), `None` for no LL-HLS parts.
    pub part_target: Option<Duration>,
    /// Complete segments listed in a media playlist. CAN-SKIP-UNTIL is six target durations,
    /// so a playlist longer than that benefits from delta updates.
    pub playlist_segments: usize,
}

impl Timing {
    /// The timing with its values brought into range: a segment target of at least 100 ms, a
    /// part target between 100 ms and the segment target, at least 3 playlist segments.
    pub fn sanitized(self) -> Timing {
        let segment_target = self.segment_target.max(Duration::from_millis(100));
        Timing {
            segment_target,
            part_target: self
                .part_target
                .map(|p| p.clamp(Duration::from_millis(100), segment_target)),
            playlist_segments: self.playlist_segments.clamp(3, 1000),
        }
    }
}
