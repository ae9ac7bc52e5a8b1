//! Fuzzes the LL-HLS delivery-directive parser with arbitrary query strings: it answers or
//! refuses, never panics; what it accepts round-trips through its canonical spelling.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigma_llhls::directive::{self, Skip};

fuzz_target!(|data: &[u8]| {
    let q = String::from_utf8_lossy(data);
    if let Ok(d) = directive::parse(Some(&q)) {
        assert!(
            d.part.is_none() || d.msn.is_some(),
            "_HLS_part without _HLS_msn accepted"
        );
        let mut canon = Vec::new();
        if let Some(m) = d.msn {
            canon.push(format!("_HLS_msn={m}"));
        }
        if let Some(p) = d.part {
            canon.push(format!("_HLS_part={p}"));
        }
        match d.skip {
            Skip::No => {}
            Skip::Yes => canon.push("_HLS_skip=YES".into()),
            Skip::V2 => canon.push("_HLS_skip=v2".into()),
        }
        let again = directive::parse(Some(&canon.join("&"))).expect("canonical form parses");
        assert_eq!(again, d);
    }
});
