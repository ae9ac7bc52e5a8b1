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

    /// The keyframe interval this mode is designed for: what broadcasters should set in their
    /// encoder, and what Sigma's own ladder uses (2 s in `normal`, Apple's recommendation;
    /// 1 s in `low` and `ultra-low`, so segments are 1–2 s and LL-HLS players find an
    /// independent part at least every second). A longer interval still plays: segments then
    /// follow the keyframes (see docs/llhls.md, "GOP policy").
    pub fn keyframe_interval(self) -> Duration {
        match self {
            LatencyMode::Normal => Duration::from_secs(2),
            LatencyMode::Low | LatencyMode::UltraLow => Duration::from_secs(1),
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
    /// so a playlist longer than that benefits from delta updates. A playlist keeps more when
    /// these would last less than 3 target durations (RFC 8216bis §6.2.2).
    pub playlist_segments: usize,
}

impl Timing {
    /// The timing with its values brought into range: a segment target of at least 100 ms, a
    /// part target between 100 ms and the segment target, 3 to 1000 playlist segments.
    ///
    /// Both targets are rounded to the nearest whole millisecond. `EXT-X-PART-INF:PART-TARGET`
    /// is written with 3 decimals, so the part target the segmenter cuts by is exactly the
    /// one the playlist declares (§4.4.4.9: every part MUST be at most PART-TARGET; a target
    /// of 0.3334 s printed as 0.333 would let 0.3333 s parts exceed it). PART-HOLD-BACK
    /// (3 × the part target, 3 decimals) is then exact too.
    pub fn sanitized(self) -> Timing {
        let segment_target = whole_ms(self.segment_target.max(Duration::from_millis(100)));
        Timing {
            segment_target,
            part_target: self
                .part_target
                .map(|p| whole_ms(p.clamp(Duration::from_millis(100), segment_target))),
            playlist_segments: self.playlist_segments.clamp(3, 1000),
        }
    }
}

/// `d` rounded to the nearest millisecond (half up). Monotonic, so a value clamped between two
/// whole-millisecond bounds stays between them.
fn whole_ms(d: Duration) -> Duration {
    let ms = (d.as_nanos() + 500_000) / 1_000_000;
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_targets_are_whole_milliseconds() {
        let t = |part: f64| Timing {
            segment_target: Duration::from_secs(2),
            part_target: Some(Duration::from_secs_f64(part)),
            playlist_segments: 15,
        };
        for (part, want) in [
            (0.3334, 333),
            (0.3336, 334),
            (0.334, 334),
            (0.05, 100),
            (9.0, 2000),
        ] {
            let p = t(part).sanitized().part_target.unwrap();
            assert_eq!(p, Duration::from_millis(want), "{part}");
            // What the playlist prints is what the segmenter cuts by.
            let printed: f64 = format!("{:.3}", p.as_secs_f64()).parse().unwrap();
            assert_eq!(Duration::from_secs_f64(printed), p, "{part}");
        }
        let odd = Timing {
            segment_target: Duration::from_secs_f64(1.0004),
            part_target: Some(Duration::from_secs(5)),
            playlist_segments: 1,
        }
        .sanitized();
        assert_eq!(odd.segment_target, Duration::from_millis(1000));
        assert_eq!(odd.part_target, Some(Duration::from_millis(1000)));
        assert_eq!(odd.playlist_segments, 3);
        for mode in [LatencyMode::Normal, LatencyMode::Low, LatencyMode::UltraLow] {
            assert_eq!(mode.timing().sanitized(), mode.timing(), "{mode:?}");
        }
        let huge = Timing {
            segment_target: Duration::MAX,
            part_target: Some(Duration::MAX),
            playlist_segments: usize::MAX,
        }
        .sanitized();
        assert_eq!(huge.part_target, Some(huge.segment_target));
    }
}
