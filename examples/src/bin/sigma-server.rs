//! `sigma-server`: RTMP in, LL-HLS out.
//!
//! The full server arrives with issue 5 (it needs the RTMP and LL-HLS stages). Until then this
//! binary says what it will do, so the README's start command already works end to end.

fn main() {
    println!(
        "sigma-server {} (sigma-core {})",
        env!("CARGO_PKG_VERSION"),
        sigma_core::VERSION
    );
    println!("This build has no ingest or packaging stages yet (see docs/architecture.md).");
    println!(
        "When they land, with no arguments it will listen for RTMP on :1935 and HTTP on :8080,"
    );
    println!("  publish: rtmp://127.0.0.1:1935/live/STREAM");
    println!("  play:    http://127.0.0.1:8080/live/STREAM/index.m3u8");
}
