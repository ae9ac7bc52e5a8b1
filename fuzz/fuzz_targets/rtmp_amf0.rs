//! Fuzzes AMF0 (and AMF3-in-AMF0) decoding: any bytes give values or an error, never a panic
//! or unbounded allocation; and encoding is a fixed point after one pass:
//! encode(decode(encode(decode(x)))) == encode(decode(x)).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sigma_rtmp::amf0::{AmfLimits, decode_all, encode_all};

fuzz_target!(|data: &[u8]| {
    let limits = AmfLimits {
        max_depth: 16,
        max_values: 4096,
    };
    let Ok(values) = decode_all(data, limits) else {
        return;
    };
    let mut once = BytesMut::new();
    encode_all(&values, &mut once);
    let again = decode_all(
        &once,
        AmfLimits {
            max_depth: 64,
            max_values: usize::MAX,
        },
    )
    .expect("our own encoding decodes");
    let mut twice = BytesMut::new();
    encode_all(&again, &mut twice);
    assert_eq!(once, twice);
});
