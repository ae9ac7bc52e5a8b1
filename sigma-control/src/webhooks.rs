//! Webhooks, per Standard Webhooks v1: the pure parts — secrets, signatures, the retry
//! schedule, how an answer is judged, and which target addresses are allowed.
//!
//! - A secret is `whsec_` and base64 of 24 random bytes; the HMAC key is the decoded bytes.
//! - `webhook-signature` is `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, one
//!   per secret in use, space-separated (the previous secret keeps signing for
//!   [`ROTATION_OVERLAP`] after a rotation).
//! - An attempt's outcome ([`judge`]): a 2xx answer is done; 410 disables the endpoint; 429
//!   and 503 wait for `Retry-After` when given; anything else (other statuses, timeouts,
//!   connection errors) retries on the schedule, with jitter, until it is exhausted.
//! - Targets that resolve to loopback, private, link-local or otherwise non-public addresses
//!   are refused unless private targets are allowed ([`is_public`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::net::IpAddr;
use std::time::Duration;

/// The prefix of a webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait a `Retry-After` can ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Jitter: each wait is scaled by a factor in `1 ± JITTER`.
pub const JITTER: f64 = 0.1;

/// A new secret: `whsec_` and base64 of 24 random bytes.
pub fn new_secret(rng: &mut dyn RngCore) -> String {
    let mut b = [0u8; 24];
    rng.fill_bytes(&mut b);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(b))
}

/// Why a secret cannot sign.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a webhook secret (whsec_ and base64)")]
pub struct BadSecret;

/// The Standard Webhooks signature `v1,<base64>` of `body` under `secret`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).ok_or(BadSecret)?)
        .map_err(|_| BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[&str],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let sigs = secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sigs.join(" "))
}

/// The waits between attempts: the first retry comes `schedule[0]` after the first attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
    fn default() -> Self {
        let m = 60;
        let h = 3600;
        RetrySchedule(
            [
                5,
                5 * m,
                30 * m,
                2 * h,
                5 * h,
                10 * h,
                14 * h,
                20 * h,
                24 * h,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
        )
    }
}

impl RetrySchedule {
    /// Parses `1s,2s,4s` (humantime durations, comma-separated, at least one, each 1 s to 7 d).
    pub fn parse(s: &str) -> Result<RetrySchedule, String> {
        let waits = s
            .split(',')
            .map(str::trim)
            .map(|p| {
                let d = humantime::parse_duration(p).map_err(|e| format!("{p:?}: {e}"))?;
                if d < Duration::from_millis(100) || d > Duration::from_secs(7 * 86400) {
                    return Err(format!("{p:?}: a wait is 100ms to 7d"));
                }
                Ok(d)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if waits.is_empty() {
            return Err("the schedule needs at least one wait".into());
        }
        Ok(RetrySchedule(waits))
    }

    /// The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed, with
    /// `jitter` in `[-1, 1]` scaling it by `1 + jitter * JITTER`; `None` when the schedule is
    /// exhausted.
    pub fn after(&self, attempt: u32, jitter: f64) -> Option<Duration> {
        let base = *self.0.get(attempt.checked_sub(1)? as usize)?;
        Some(base.mul_f64(1.0 + jitter.clamp(-1.0, 1.0) * JITTER))
    }

    /// Attempts in all: the first and one per wait.
    pub fn attempts(&self) -> u32 {
        self.0.len() as u32 + 1
    }
}

/// What an attempt's answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Done.
    Delivered,
    /// The receiver is gone for good (410): disable the endpoint.
    Disable,
    /// Try again: after this long when the receiver said so, else on the schedule.
    Retry(Option<Duration>),
}

/// Judges an answer: `status` (none for a timeout or a connection error) and its
/// `Retry-After`, already parsed.
pub fn judge(status: Option<u16>, retry_after: Option<Duration>) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Disable,
        Some(429 | 503) => Verdict::Retry(retry_after.map(|d| d.min(MAX_RETRY_AFTER))),
        _ => Verdict::Retry(None),
    }
}

/// Parses a `Retry-After` value: seconds, or an HTTP date (relative to `now`, Unix seconds).
pub fn parse_retry_after(v: &str, now: i64) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs(at.saturating_sub(now).max(0) as u64))
}

/// Whether `ip` is a public unicast address (what a webhook may reach unless private
/// targets are allowed): not loopback, private, link-local, shared (100.64/10), unspecified,
/// documentation, benchmarking, multicast, broadcast or reserved; IPv6 unique-local and
/// link-local excluded, and IPv4-mapped addresses judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b)) // NAT64
        }
    }
}

/// Why a webhook URL is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not an absolute `http` or `https` URL with a host.
    #[error("not an http(s) URL with a host")]
    Malformed,
    /// Credentials in the URL would be sent in the clear to logs and the console.
    #[error("the URL may not carry a user or password")]
    Credentials,
    /// Longer than 2,048 bytes.
    #[error("the URL is longer than 2048 bytes")]
    TooLong,
}

/// Checks the form of a webhook URL (where it points is checked when it is resolved).
pub fn check_url(s: &str) -> Result<url::Url, UrlError> {
    if s.len() > 2048 {
        return Err(UrlError::TooLong);
    }
    let u = url::Url::parse(s).map_err(|_| UrlError::Malformed)?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(UrlError::Malformed);
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(UrlError::Credentials);
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn signs_like_the_specification() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, ts, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(sign("nope", id, ts, body), Err(BadSecret));
        let two = signature_header(&[secret, secret], id, ts, body).unwrap();
        assert_eq!(two.split(' ').count(), 2);
    }

    #[test]
    fn secrets_have_the_prefix_and_24_bytes() {
        let s = new_secret(&mut rand::rngs::StdRng::seed_from_u64(1));
        assert!(s.starts_with(SECRET_PREFIX));
        assert_eq!(
            STANDARD.decode(&s[SECRET_PREFIX.len()..]).unwrap().len(),
            24
        );
    }

    #[test]
    fn schedule() {
        let d = RetrySchedule::default();
        assert_eq!(d.attempts(), 10);
        assert_eq!(d.after(1, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(d.after(9, 0.0), Some(Duration::from_secs(24 * 3600)));
        assert_eq!(d.after(10, 0.0), None);
        assert_eq!(d.after(0, 0.0), None);
        let s = RetrySchedule::parse("1s, 2s,4s").unwrap();
        assert_eq!(s.0, [1, 2, 4].map(Duration::from_secs));
        assert_eq!(s.after(2, 1.0), Some(Duration::from_millis(2200)));
        assert_eq!(s.after(2, -1.0), Some(Duration::from_millis(1800)));
        for bad in ["", "1s,,2s", "soon", "0s", "30d"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(Some(200), None), Verdict::Delivered);
        assert_eq!(judge(Some(204), None), Verdict::Delivered);
        assert_eq!(judge(Some(410), None), Verdict::Disable);
        assert_eq!(judge(Some(500), None), Verdict::Retry(None));
        assert_eq!(judge(None, None), Verdict::Retry(None));
        let ra = Some(Duration::from_secs(7));
        assert_eq!(judge(Some(429), ra), Verdict::Retry(ra));
        assert_eq!(judge(Some(503), ra), Verdict::Retry(ra));
        assert_eq!(
            judge(Some(500), ra),
            Verdict::Retry(None),
            "only 429 and 503"
        );
        assert_eq!(
            judge(Some(429), Some(Duration::from_secs(10 * 86400))),
            Verdict::Retry(Some(MAX_RETRY_AFTER))
        );
        assert_eq!(judge(Some(301), None), Verdict::Retry(None), "no redirects");
    }

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after("3", 0), Some(Duration::from_secs(3)));
        // 2015-10-21T07:28:00Z
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls() {
        assert!(check_url("https://example.com/hooks").is_ok());
        assert!(
            check_url("http://127.0.0.1:9000/").is_ok(),
            "checked at resolution"
        );
        assert_eq!(check_url("ftp://example.com/"), Err(UrlError::Malformed));
        assert_eq!(check_url("example.com/hooks"), Err(UrlError::Malformed));
        assert_eq!(
            check_url("https://u:p@example.com/"),
            Err(UrlError::Credentials)
        );
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(check_url(&long), Err(UrlError::TooLong));
    }

    proptest! {
        /// Any secret this module makes signs any message; a changed body changes the
        /// signature.
        #[test]
        fn signatures_depend_on_every_part(seed in any::<u64>(), body in proptest::collection::vec(any::<u8>(), 0..256), ts in 0i64..4_000_000_000) {
            let s = new_secret(&mut rand::rngs::StdRng::seed_from_u64(seed));
            let a = sign(&s, "evt_x", ts, &body).unwrap();
            let mut other = body.clone();
            other.push(0);
            prop_assert_ne!(&a, &sign(&s, "evt_x", ts, &other).unwrap());
            prop_assert_ne!(&a, &sign(&s, "evt_y", ts, &body).unwrap());
            prop_assert_ne!(&a, &sign(&s, "evt_x", ts + 1, &body).unwrap());
        }

        /// Any `Retry-After` a receiver sends parses or is refused without a panic; whole
        /// seconds read back as themselves.
        #[test]
        fn retry_after_never_panics(v in ".{0,64}", secs in 0u64..10_000_000, now in 0i64..4_000_000_000) {
            let _ = parse_retry_after(&v, now);
            prop_assert_eq!(parse_retry_after(&secs.to_string(), now), Some(Duration::from_secs(secs)));
        }

        /// Jittered waits stay within ±10 % of the schedule.
        #[test]
        fn jitter_is_bounded(attempt in 1u32..10, j in -5.0f64..5.0) {
            let d = RetrySchedule::default();
            let base = d.0[attempt as usize - 1].as_secs_f64();
            let w = d.after(attempt, j).unwrap().as_secs_f64();
            prop_assert!(w >= base * 0.9 - 1e-6 && w <= base * 1.1 + 1e-6);
        }
    }
}
