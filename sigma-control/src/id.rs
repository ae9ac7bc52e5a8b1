//! Ids and secrets, drawn from an injected random source so tests can be deterministic.
//!
//! - Ids are a type prefix and 128 random bits in base64url (`ls_…`, `pb_…`, `sk_…`, `tok_…`),
//!   never sequential. The alphabet (`A-Z a-z 0-9 _ -`) is also a valid stream and path name.
//! - Secrets carry 192 or 256 random bits: stream keys (192, URL-safe, in the RTMP path) and
//!   API tokens (256, `sgt_…`). Signing keys are Ed25519 seeds (256 bits).
//! - Secrets that only need checking are stored as SHA-256 digests ([`digest`]);
//!   [`same_digest`] compares two digests in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The kinds of id, each with its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `ls_`: a live stream.
    LiveStream,
    /// `pb_`: a playback id.
    PlaybackId,
    /// `key_`: a signing key.
    SigningKey,
    /// `tok_`: an API token.
    ApiToken,
    /// `evt_`: an event.
    Event,
    /// `wh_`: a webhook endpoint.
    Webhook,
    /// `adm_`: an admission hook request.
    Admission,
    /// `st_`: a simulcast target.
    SimulcastTarget,
}

impl Kind {
    /// The prefix, with its underscore.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::LiveStream => "ls_",
            Kind::PlaybackId => "pb_",
            Kind::SigningKey => "key_",
            Kind::ApiToken => "tok_",
            Kind::Event => "evt_",
            Kind::Webhook => "wh_",
            Kind::Admission => "adm_",
            Kind::SimulcastTarget => "st_",
        }
    }

    /// Whether `id` looks like an id of this kind (prefix and 22 base64url characters), so
    /// garbage is refused before any lookup.
    pub fn matches(self, id: &str) -> bool {
        id.strip_prefix(self.prefix()).is_some_and(|rest| {
            rest.len() == 22
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
    }
}

fn random_b64(rng: &mut dyn RngCore, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(&buf)
}

/// A new id of `kind`: its prefix and 128 random bits.
pub fn new_id(kind: Kind, rng: &mut dyn RngCore) -> String {
    format!("{}{}", kind.prefix(), random_b64(rng, 16))
}

/// A new stream key: 192 random bits, 32 URL-safe characters.
pub fn new_stream_key(rng: &mut dyn RngCore) -> String {
    random_b64(rng, 24)
}

/// Length of a stream key.
pub const STREAM_KEY_LEN: usize = 32;

/// Whether `s` has the shape of a stream key ([`STREAM_KEY_LEN`] URL-safe characters). The
/// RTMP ingest treats such names as API keys only, so a reset or deleted key is refused
/// rather than taken for an open stream name.
pub fn is_stream_key_shape(s: &str) -> bool {
    s.len() == STREAM_KEY_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The prefix of every API token.
pub const TOKEN_PREFIX: &str = "sgt_";

/// A new API token: `sgt_` and 256 random bits.
pub fn new_api_token(rng: &mut dyn RngCore) -> String {
    format!("{TOKEN_PREFIX}{}", random_b64(rng, 32))
}

/// A new secret of `bytes` random bytes (server secrets such as the media-token key).
pub fn new_secret(rng: &mut dyn RngCore, bytes: usize) -> Vec<u8> {
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    buf
}

/// The SHA-256 digest of a secret, hex-encoded: what the store keeps for API tokens and the
/// lookup column for stream keys. The secrets are high-entropy, so a plain digest is enough
/// (no password hashing is needed to resist guessing).
pub fn digest(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// Constant-time equality of two digests (or any two strings of secret material).
pub fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ids_have_their_prefix_and_128_bits() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = new_id(Kind::LiveStream, &mut rng);
        let b = new_id(Kind::LiveStream, &mut rng);
        assert!(Kind::LiveStream.matches(&a), "{a}");
        assert!(!Kind::PlaybackId.matches(&a));
        assert_ne!(a, b);
        assert!(sigma_core::StreamKey::new("v", a.clone()).name.len() < 64);
        assert!(!Kind::LiveStream.matches("ls_../../etc/passwd000000"));
        assert!(!Kind::LiveStream.matches("ls_short"));
    }

    #[test]
    fn secrets_are_long_and_url_safe() {
        let mut rng = StdRng::seed_from_u64(2);
        let key = new_stream_key(&mut rng);
        assert_eq!(key.len(), 32);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
        let token = new_api_token(&mut rng);
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == 4 + 43);
    }

    #[test]
    fn digests_compare_equal_only_for_the_same_secret() {
        assert_eq!(digest("abc").len(), 64);
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same_digest(&digest("abc"), &digest("abc")));
        assert!(!same_digest(&digest("abc"), &digest("abd")));
        assert!(!same_digest("ab", "abc"));
    }
}
