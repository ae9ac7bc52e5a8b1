//! Fuzzes `H264Config::from_avcc`: any bytes give a config or an error, never a panic; a config
//! that parses is internally consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigma_core::H264Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = H264Config::from_avcc(bytes::Bytes::copy_from_slice(data)) {
        assert!(!c.sps().is_empty() && !c.pps().is_empty());
        assert!(matches!(c.nal_length_size(), 1 | 2 | 4));
        assert_eq!(c.codec_string().len(), "avc1.000000".len());
    }
});
