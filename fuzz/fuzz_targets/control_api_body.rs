//! API request bodies: arbitrary bytes get a parse error or a value that validation judges,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigma_control::api::parse_json;
use sigma_control::model::{CreateLiveStream, Rules, UpdateLiveStream};

fuzz_target!(|data: &[u8]| {
    let ladders = vec!["default".to_string()];
    let rules = Rules { ladders: &ladders };
    if let Ok(c) = parse_json::<CreateLiveStream>(data) {
        let _ = rules.create(&c);
    }
    if let Ok(u) = parse_json::<UpdateLiveStream>(data) {
        let _ = rules.update(&u);
    }
});
