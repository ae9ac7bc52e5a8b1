//! Viewers' JWTs and media tokens: arbitrary text never panics the verifiers and never
//! verifies (the key is fixed and the input is not signed with it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigma_control::playback::{MediaToken, verify_jwt};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = [7u8; 32];
    assert!(verify_jwt(text, "pb_1", |_| Some(key), 1_800_000_000).is_err());
    let m = MediaToken::new(b"fuzz".to_vec());
    assert!(
        m.verify("pb_1", text, 1_800_000_000).is_none()
            || text
                == m.issue(
                    "pb_1",
                    sigma_control::playback::Audience::View,
                    1_800_000_000
                )
    );
});
