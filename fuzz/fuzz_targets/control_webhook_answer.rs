//! What a webhook receiver sends back (untrusted): its `Retry-After` header, parsed and
//! judged with any status. Never a panic, and a wait is never longer than the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigma_control::webhooks::{MAX_RETRY_AFTER, Verdict, judge, parse_retry_after};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_le_bytes([data[0], data[1]]);
    let Ok(header) = std::str::from_utf8(&data[2..]) else {
        return;
    };
    let wait = parse_retry_after(header, 1_800_000_000);
    if let Verdict::Retry(Some(w)) = judge(Some(status), wait) {
        assert!(w <= MAX_RETRY_AFTER);
    }
});
