//! Timestamps: rescaling between timescales without drift, and unwrapping RTMP's 32-bit
//! millisecond clock into a monotonic `i64`.
//!
//! Rescaling is always applied to absolute timestamps, never to accumulated durations, and rounds
//! to the nearest tick; so the error of any converted timestamp is at most half a tick of the
//! target timescale, at any stream age. (Summing rescaled per-frame durations instead would drift:
//! 1/30 s in milliseconds is 33.33…, and rounding each frame loses 8 s a day.)

use crate::Error;

/// Converts `value` ticks of `from` ticks per second into ticks of `to` ticks per second,
/// rounding to the nearest tick (halves away from negative infinity). Exact whenever the result
/// is an integer. Saturates at the `i64` range instead of overflowing.
///
/// # Panics
/// Never; a zero `from` is treated as an error by [`Timescale::new`] before it gets here, and
/// this function returns `value` unchanged for `from == 0`.
pub fn rescale(value: i64, from: u32, to: u32) -> i64 {
    if from == to || from == 0 {
        return value;
    }
    let num = i128::from(value) * i128::from(to);
    let den = i128::from(from);
    // floor((num + den/2) / den) with an exact half rounded up.
    let rounded = (2 * num + den).div_euclid(2 * den);
    rounded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// A non-zero number of ticks per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timescale(u32);

impl Timescale {
    /// Milliseconds: RTMP and FLV timestamps.
    pub const MILLIS: Timescale = Timescale(1000);
    /// The 90 kHz clock used for video in MPEG-TS and, by convention, in fMP4.
    pub const MPEG: Timescale = Timescale(90_000);

    /// A timescale of `ticks_per_second`; zero is an error.
    pub fn new(ticks_per_second: u32) -> Result<Self, Error> {
        if ticks_per_second == 0 {
            Err(Error::ZeroTimescale)
        } else {
            Ok(Timescale(ticks_per_second))
        }
    }

    /// Ticks per second.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Converts `value` ticks of this timescale into ticks of `to` (see [`rescale`]).
    pub fn rescale(self, value: i64, to: Timescale) -> i64 {
        rescale(value, self.0, to.0)
    }

    /// `value` ticks as seconds, for logs and playlists.
    pub fn seconds(self, value: i64) -> f64 {
        value as f64 / f64::from(self.0)
    }
}

/// Turns RTMP's wrapping 32-bit millisecond timestamps into monotonic `i64` milliseconds.
///
/// Each new timestamp is read as a signed 32-bit step from the previous one (RTMP 1.0 §5.3.1.1
/// serial-number arithmetic): a step back of less than 2^31 ms is a small backwards jump (kept as
/// such, it is not a wrap), and anything else moves forward, across the 2^32 ms wrap if need be.
/// The first timestamp is returned as given.
#[derive(Clone, Debug, Default)]
pub struct TimestampUnwrapper {
    last: Option<(u32, i64)>,
}

impl TimestampUnwrapper {
    /// An unwrapper that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unwraps one timestamp.
    pub fn unwrap(&mut self, raw: u32) -> i64 {
        let value = match self.last {
            None => i64::from(raw),
            Some((last_raw, last)) => last + i64::from(raw.wrapping_sub(last_raw) as i32),
        };
        self.last = Some((raw, value));
        value
    }

    /// The last unwrapped value, if any.
    pub fn last(&self) -> Option<i64> {
        self.last.map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rescale_rounds_to_nearest() {
        assert_eq!(rescale(1, 30, 1000), 33);
        assert_eq!(rescale(2, 30, 1000), 67);
        assert_eq!(rescale(1, 3, 2), 1); // 0.666 -> 1
        assert_eq!(rescale(1, 4, 2), 1); // 0.5 -> 1 (half up)
        assert_eq!(rescale(-1, 4, 2), 0); // -0.5 -> 0 (half up)
        assert_eq!(rescale(-1, 3, 2), -1); // -0.666 -> -1
        assert_eq!(rescale(3000, 90_000, 1000), 33);
        assert_eq!(rescale(i64::MAX, 1, 90_000), i64::MAX);
        assert_eq!(rescale(i64::MIN, 1, 90_000), i64::MIN);
        assert_eq!(rescale(5, 0, 10), 5);
    }

    #[test]
    fn unwrap_crosses_the_wrap() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap(u32::MAX - 10), i64::from(u32::MAX) - 10);
        assert_eq!(u.unwrap(5), i64::from(u32::MAX) + 6);
        assert_eq!(u.unwrap(3), i64::from(u32::MAX) + 4, "small backwards jump");
        assert_eq!(u.last(), Some(i64::from(u32::MAX) + 4));
        // A small backwards jump across the wrap boundary.
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap(2), 2);
        assert_eq!(u.unwrap(u32::MAX), -1);
    }

    proptest! {
        /// Any sequence of steps forward (up to 2^31 - 1 ms) or small steps back (up to 10 s)
        /// unwraps to exactly the true timeline, across any number of wraps.
        #[test]
        fn unwrap_matches_true_timeline(
            start in 0i64..(1i64 << 34),
            steps in prop::collection::vec(
                prop_oneof![
                    8 => 0i64..100,
                    1 => -10_000i64..0,
                    1 => 0i64..(1i64 << 31),
                ],
                1..500,
            )
        ) {
            let mut u = TimestampUnwrapper::new();
            let mut t = start;
            let first = u.unwrap((t & 0xffff_ffff) as u32);
            let offset = t - first;
            prop_assert!(offset % (1i64 << 32) == 0);
            for s in steps {
                t += s;
                let got = u.unwrap((t & 0xffff_ffff) as u32);
                prop_assert_eq!(got + offset, t);
            }
        }

        /// Rescaling there and back is exact when the first step refines, and otherwise off by
        /// at most one tick of the coarser timescale.
        #[test]
        fn rescale_round_trip_within_one_tick(
            value in -(1i64 << 45)..(1i64 << 45),
            a in 1u32..200_000,
            b in 1u32..200_000,
        ) {
            let there = rescale(value, a, b);
            let back = rescale(there, b, a);
            if a <= b {
                prop_assert_eq!(back, value, "refining then coarsening must be exact");
            } else {
                // |back - value| in ticks of `a`, at most one tick of `b` = a/b ticks of `a`.
                prop_assert!((back - value).unsigned_abs() * u64::from(b) <= u64::from(a),
                    "{} @{} -> {} @{} -> {}", value, a, there, b, back);
            }
        }

        /// 24 hours of frames at 30 and 30000/1001 fps, timestamped in milliseconds as RTMP does
        /// and then rescaled to 90 kHz: every frame stays within half a millisecond of its true
        /// time however late in the day (nothing accumulates), and maps back to its own index.
        #[test]
        fn no_drift_over_a_day(
            frame in prop_oneof![0i64..1000, (24i64 * 3600 * 30 - 1000)..(24 * 3600 * 30), 0i64..(24 * 3600 * 30)],
            ntsc in any::<bool>(),
        ) {
            let (num, den) = if ntsc { (30_000i64, 1001i64) } else { (30, 1) };
            // The frame's true time in 90 kHz ticks is frame * den * 90000 / num (rational).
            let exact_times_num = frame * den * 90_000;
            let ms = rescale(frame * den, num as u32, 1000);
            let at_90k = rescale(ms, 1000, 90_000);
            let error_times_num = at_90k * num - exact_times_num;
            prop_assert!(error_times_num.abs() <= 45 * num,
                "frame {}: {} ticks off", frame, error_times_num as f64 / num as f64);
            let index_times_den = rescale(at_90k, 90_000, num as u32);
            prop_assert_eq!(rescale(index_times_den, den as u32, 1), frame);
        }
    }

    #[test]
    fn timescale_rejects_zero() {
        assert!(Timescale::new(0).is_err());
        assert_eq!(Timescale::new(48_000).unwrap().get(), 48_000);
        assert_eq!(Timescale::MILLIS.rescale(1000, Timescale::MPEG), 90_000);
        assert_eq!(Timescale::MPEG.seconds(45_000), 0.5);
    }
}
