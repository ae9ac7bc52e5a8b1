//! Fuzzes `AacConfig::from_audio_specific_config`: any bytes give a config or an error, never a
//! panic; a config that parses has a real sample rate and channel count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigma_core::AacConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = AacConfig::from_audio_specific_config(bytes::Bytes::copy_from_slice(data)) {
        assert!(c.sample_rate() > 0 && c.output_sample_rate() > 0);
        assert!(c.channels() > 0);
        assert!(c.frame_samples() >= 960);
    }
});
