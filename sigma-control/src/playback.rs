//! Playback authorization: viewers' JWTs for signed playback ids, and the media tokens that
//! carry that authorization inside playlists so players never resend the JWT.
//!
//! **JWT** ([`verify_jwt`]): `alg` EdDSA (Ed25519), header `kid` naming a signing key, claims
//! `sub` = the playback id, `aud` = `"v"` (view) or `"p"` (preview, operators), `exp`
//! required, `nbf` honoured. Time comes in as an argument; nothing here reads a clock.
//!
//! **Media token** ([`MediaToken`]): after a good JWT on the multivariant playlist, the origin
//! prefixes every URI it lists with `t/{media token}/`, so the media playlists, parts,
//! segments and inits fetched from there carry it in their path. The token is
//! `{aud}{window}-{mac}`, where `window` counts [`WINDOW`]s since the epoch and `mac` is an
//! HMAC-SHA256 (truncated to 128 bits) of the playback id, audience and window under a server
//! secret. Every viewer of one playback id in one window gets the same bytes, so a CDN caches
//! one copy of each URI per window. The trade-off: a token stays good for [`VALIDITY`] after
//! its window whatever the JWT's `exp`, so an expired or revoked JWT stops new viewers at once
//! but lets current ones finish up to that long; deleting the playback id stops everyone
//! within one target duration, since every request checks that the id still exists.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore;
use serde::Deserialize;
use sha2::Sha256;
use std::time::Duration;

/// Longest JWT accepted, in bytes; longer input is refused before parsing.
pub const MAX_JWT_LEN: usize = 4096;

/// Who a token lets in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Audience {
    /// `"v"`: viewers; plays an active stream.
    View,
    /// `"p"`: operators; also plays a stream in preview.
    Preview,
}

impl Audience {
    /// The claim / token letter.
    pub fn letter(self) -> char {
        match self {
            Audience::View => 'v',
            Audience::Preview => 'p',
        }
    }
}

/// Why a playback token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, too long, bad base64 or JSON, or missing claims.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `alg` is not EdDSA.
    #[error("algorithm must be EdDSA")]
    Algorithm,
    /// No `kid`, or it names no signing key (or a deleted one).
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` is past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `sub` is not this playback id.
    #[error("token is for another playback id")]
    Subject,
    /// `aud` is neither `"v"` nor `"p"`.
    #[error("wrong audience")]
    Audience,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
}

/// Verifies a viewer's JWT for playback id `playback_id` at `now` (Unix seconds).
/// `public_key` looks a signing key's Ed25519 public key (32 bytes) up by `kid`.
pub fn verify_jwt(
    token: &str,
    playback_id: &str,
    public_key: impl FnOnce(&str) -> Option<[u8; 32]>,
    now: i64,
) -> Result<Audience, TokenError> {
    if token.len() > MAX_JWT_LEN {
        return Err(TokenError::Malformed("longer than 4096 bytes".into()));
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::Algorithm);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = public_key(&kid).ok_or(TokenError::UnknownKey)?;
    let key = DecodingKey::from_ed_der(&key);
    // Claims are checked below against `now`, not the library's clock.
    let mut v = Validation::new(Algorithm::EdDSA);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => TokenError::Signature,
            K::InvalidAlgorithm => TokenError::Algorithm,
            _ => TokenError::Malformed(e.to_string()),
        }
    })?;
    let c = data.claims;
    if now >= c.exp {
        return Err(TokenError::Expired);
    }
    if c.nbf.is_some_and(|nbf| now < nbf) {
        return Err(TokenError::NotYetValid);
    }
    if c.sub != playback_id {
        return Err(TokenError::Subject);
    }
    match c.aud.as_str() {
        "v" => Ok(Audience::View),
        "p" => Ok(Audience::Preview),
        _ => Err(TokenError::Audience),
    }
}

/// A new Ed25519 signing key from `rng`: the PKCS#8 PEM private key (returned to the caller
/// once) and the 32-byte public key (kept by the server).
pub fn new_signing_key(rng: &mut dyn RngCore) -> Result<(String, [u8; 32]), String> {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    // PKCS#8 v1 (RFC 8410: the seed only), as `openssl genpkey -algorithm ed25519` writes
    // it: OpenSSL 3.0 and the JWT libraries built on it refuse the v2 form with the public
    // key attached.
    let bytes = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: seed,
        public_key: None,
    };
    let pem = bytes
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| e.to_string())?;
    Ok((pem.to_string(), key.verifying_key().to_bytes()))
}

/// Length of a media token window.
pub const WINDOW: Duration = Duration::from_secs(600);
/// How long a media token stays good after its window ends.
pub const VALIDITY: Duration = Duration::from_secs(6 * 3600);

/// Media tokens under one server secret.
#[derive(Clone)]
pub struct MediaToken {
    secret: Vec<u8>,
}

impl std::fmt::Debug for MediaToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaToken(..)")
    }
}

impl MediaToken {
    /// Tokens keyed by `secret` (shared by every node of one deployment).
    pub fn new(secret: Vec<u8>) -> Self {
        MediaToken { secret }
    }

    fn mac(&self, playback_id: &str, aud: Audience, window: u64) -> String {
        // An HMAC key of any length is accepted.
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        m.update(playback_id.as_bytes());
        m.update(&[0, aud.letter() as u8, 0]);
        m.update(&window.to_be_bytes());
        let full = m.finalize().into_bytes();
        URL_SAFE_NO_PAD.encode(&full[..16])
    }

    /// The token for `playback_id` and `aud` at `now` (Unix seconds): the same for everyone
    /// in one [`WINDOW`].
    pub fn issue(&self, playback_id: &str, aud: Audience, now: i64) -> String {
        let window = window_of(now);
        format!(
            "{}{window}-{}",
            aud.letter(),
            self.mac(playback_id, aud, window)
        )
    }

    /// Checks a media token for `playback_id` at `now`.
    pub fn verify(&self, playback_id: &str, token: &str, now: i64) -> Option<Audience> {
        if token.len() > 64 {
            return None;
        }
        let mut chars = token.chars();
        let aud = match chars.next()? {
            'v' => Audience::View,
            'p' => Audience::Preview,
            _ => return None,
        };
        let (window, mac) = chars.as_str().split_once('-')?;
        if window.is_empty() || window.len() > 12 || !window.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let window: u64 = window.parse().ok()?;
        let current = window_of(now);
        let back = VALIDITY.as_secs() / WINDOW.as_secs();
        if window > current || current - window > back {
            return None;
        }
        let expected = self.mac(playback_id, aud, window);
        crate::id::same_digest(&expected, mac).then_some(aud)
    }
}

fn window_of(now: i64) -> u64 {
    u64::try_from(now.max(0)).unwrap_or(0) / WINDOW.as_secs()
}

#[cold]
fn unreachable_hmac() -> ! {
    // Hmac<Sha256>::new_from_slice accepts every key length.
    panic!("HMAC-SHA256 refused a key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::json;

    struct Key {
        pem: String,
        public: [u8; 32],
    }

    fn key(seed: u64) -> Key {
        let (pem, public) = new_signing_key(&mut StdRng::seed_from_u64(seed)).unwrap();
        Key { pem, public }
    }

    fn sign(k: &Key, kid: &str, claims: serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(
            &h,
            &claims,
            &EncodingKey::from_ed_pem(k.pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    const NOW: i64 = 1_800_000_000;

    fn check(k: &Key, token: &str) -> Result<Audience, TokenError> {
        let public = k.public;
        verify_jwt(token, "pb_1", |kid| (kid == "key_1").then_some(public), NOW)
    }

    #[test]
    fn good_tokens_pass_with_their_audience() {
        let k = key(1);
        let t = sign(
            &k,
            "key_1",
            json!({"sub": "pb_1", "aud": "v", "exp": NOW + 60}),
        );
        assert_eq!(check(&k, &t), Ok(Audience::View));
        let t = sign(
            &k,
            "key_1",
            json!({"sub": "pb_1", "aud": "p", "exp": NOW + 60, "nbf": NOW - 1}),
        );
        assert_eq!(check(&k, &t), Ok(Audience::Preview));
    }

    #[test]
    fn bad_tokens_are_refused_for_what_is_wrong() {
        let k = key(1);
        let claims = |sub: &str, aud: &str, exp: i64| json!({"sub": sub, "aud": aud, "exp": exp});
        let t = sign(&k, "key_1", claims("pb_1", "v", NOW));
        assert_eq!(check(&k, &t), Err(TokenError::Expired));
        let t = sign(&k, "key_1", claims("pb_2", "v", NOW + 60));
        assert_eq!(check(&k, &t), Err(TokenError::Subject));
        let t = sign(&k, "key_1", claims("pb_1", "x", NOW + 60));
        assert_eq!(check(&k, &t), Err(TokenError::Audience));
        let t = sign(&k, "key_9", claims("pb_1", "v", NOW + 60));
        assert_eq!(check(&k, &t), Err(TokenError::UnknownKey));
        let t = sign(
            &k,
            "key_1",
            json!({"sub": "pb_1", "aud": "v", "exp": NOW + 60, "nbf": NOW + 30}),
        );
        assert_eq!(check(&k, &t), Err(TokenError::NotYetValid));
        let t = sign(&k, "key_1", json!({"sub": "pb_1", "aud": "v"}));
        assert!(
            matches!(check(&k, &t), Err(TokenError::Malformed(_))),
            "exp required"
        );
        // Signed by another key under the same kid.
        let other = key(2);
        let t = sign(&other, "key_1", claims("pb_1", "v", NOW + 60));
        assert_eq!(check(&k, &t), Err(TokenError::Signature));
        // Tampered payload.
        let t = sign(&k, "key_1", claims("pb_1", "v", NOW + 60));
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged =
            URL_SAFE_NO_PAD.encode(json!({"sub": "pb_1", "aud": "p", "exp": NOW + 60}).to_string());
        parts[1] = &forged;
        assert_eq!(check(&k, &parts.join(".")), Err(TokenError::Signature));
        // HS256 with the public key as the secret (algorithm confusion).
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("key_1".into());
        let t = jsonwebtoken::encode(
            &h,
            &claims("pb_1", "v", NOW + 60),
            &EncodingKey::from_secret(&k.public),
        )
        .unwrap();
        assert_eq!(check(&k, &t), Err(TokenError::Algorithm));
        assert!(matches!(check(&k, "a.b.c"), Err(TokenError::Malformed(_))));
        assert!(matches!(
            check(&k, &"x".repeat(5000)),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn media_tokens_are_shared_within_a_window_and_expire() {
        let m = MediaToken::new(b"secret".to_vec());
        let a = m.issue("pb_1", Audience::View, NOW);
        assert_eq!(
            a,
            m.issue("pb_1", Audience::View, NOW + 1),
            "same bytes for every viewer"
        );
        assert_ne!(a, m.issue("pb_2", Audience::View, NOW));
        assert_eq!(m.verify("pb_1", &a, NOW), Some(Audience::View));
        assert_eq!(m.verify("pb_2", &a, NOW), None);
        let late = NOW + (VALIDITY + WINDOW + WINDOW).as_secs() as i64;
        assert_eq!(m.verify("pb_1", &a, late), None, "expired");
        assert_eq!(
            m.verify("pb_1", &a, NOW - 3 * WINDOW.as_secs() as i64),
            None,
            "future"
        );
        let p = m.issue("pb_1", Audience::Preview, NOW);
        assert_eq!(m.verify("pb_1", &p, NOW), Some(Audience::Preview));
        // Changing the letter does not upgrade a view token to preview.
        assert_eq!(m.verify("pb_1", &a.replacen('v', "p", 1), NOW), None);
        assert_eq!(
            MediaToken::new(b"other".to_vec()).verify("pb_1", &a, NOW),
            None
        );
        // The token is a valid path segment.
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    proptest! {
        /// Arbitrary input never panics the verifier and never passes.
        #[test]
        fn garbage_never_verifies(s in ".{0,600}") {
            let k = key(1);
            prop_assert!(check(&k, &s).is_err());
            prop_assert!(MediaToken::new(b"k".to_vec()).verify("pb_1", &s, NOW).is_none());
        }

        /// Changing any one byte of a good token makes it fail (or, for base64 slack bits
        /// in the signature's last character, decode to the same bytes).
        #[test]
        fn any_one_byte_change_is_caught(pos in 0usize..400, byte in 0u8..128) {
            let k = key(1);
            let t = sign(&k, "key_1", json!({"sub": "pb_1", "aud": "v", "exp": NOW + 60}));
            let pos = pos % t.len();
            let mut b = t.clone().into_bytes();
            prop_assume!(b[pos] != byte);
            b[pos] = byte;
            let Ok(s) = String::from_utf8(b) else { return Ok(()) };
            if let Ok(aud) = check(&k, &s) {
                // Only a re-encoding of the same bytes may pass: the last character's
                // unused bits.
                prop_assert_eq!(aud, Audience::View);
                prop_assert_eq!(pos, t.len() - 1);
            }
        }
    }
}
