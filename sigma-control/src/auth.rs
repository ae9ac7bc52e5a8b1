//! API authentication helpers that need no IO: bearer parsing and the per-address limit on
//! failed attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The token in an `Authorization: Bearer TOKEN` value.
pub fn bearer(value: Option<&str>) -> Option<&str> {
    let v = value?.trim();
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() && token.len() <= 512)
        .then(|| token.trim())
}

/// Failed attempts allowed per address per window.
pub const MAX_FAILURES: u32 = 20;
/// The window.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; the oldest windows are forgotten first.
const MAX_ADDRESSES: usize = 10_000;

/// Counts failed authentications per client address in fixed windows; an address over
/// [`MAX_FAILURES`] is refused (429) until its window ends. Time comes in as an argument.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    seen: HashMap<IpAddr, (Instant, u32)>,
}

impl FailureLimiter {
    /// Whether `ip` may try now; if not, how long until it may.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.seen.get(&ip) {
            Some((start, n)) if *n >= MAX_FAILURES => {
                let end = *start + FAILURE_WINDOW;
                if now < end { Err(end - now) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// Records a failed attempt by `ip`.
    pub fn fail(&mut self, ip: IpAddr, now: Instant) {
        if self.seen.len() >= MAX_ADDRESSES && !self.seen.contains_key(&ip) {
            self.seen
                .retain(|_, (start, _)| now.duration_since(*start) < FAILURE_WINDOW);
            if self.seen.len() >= MAX_ADDRESSES {
                // Still full of fresh windows: forget the oldest one.
                if let Some(oldest) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, (s, _))| *s)
                    .map(|(k, _)| *k)
                {
                    self.seen.remove(&oldest);
                }
            }
        }
        let e = self.seen.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= FAILURE_WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn an_address_is_limited_for_the_rest_of_its_window() {
        let mut l = FailureLimiter::default();
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(l.check(a, t0).is_ok());
            l.fail(a, t0);
        }
        assert!(l.check(a, t0 + Duration::from_secs(1)).is_err());
        assert!(l.check(b, t0).is_ok(), "another client is not harmed");
        assert!(l.check(a, t0 + FAILURE_WINDOW).is_ok());
        l.fail(a, t0 + FAILURE_WINDOW);
        assert!(l.check(a, t0 + FAILURE_WINDOW).is_ok(), "a new window");
    }

    #[test]
    fn memory_is_bounded() {
        let mut l = FailureLimiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 50) {
            l.fail(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(l.seen.len() <= MAX_ADDRESSES);
    }
}
