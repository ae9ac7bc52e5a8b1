//! RTMP ingest: replays the captured ffmpeg publish (sigma-rtmp/testdata/ffmpeg_publish.rtmp:
//! digest handshake, connect/createStream/publish, 2 s of 320x240 H.264 + AAC) through
//! handshake → chunk stream → FLV demux into frames, as the server does for a socket, in 64 KiB
//! reads. Reported per capture byte (MB/s) and per frame (ns per frame = time / frames).
//!
//! Each read is copied once into the session's input buffer (standing in for the socket read);
//! from there single-chunk messages are cut out without a copy and multi-chunk messages are
//! assembled once.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sigma_rtmp::session::{ServerEvent, ServerSession, SessionConfig};
use std::hint::black_box;
use std::time::Instant;

fn capture() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sigma-rtmp/testdata/ffmpeg_publish.rtmp"
    );
    std::fs::read(path).expect("captured publish stream")
}

/// Runs the whole capture through a fresh session; returns (frames, payload bytes).
fn ingest(bytes: &[u8]) -> (usize, usize) {
    let now = Instant::now();
    let mut s = ServerSession::new(SessionConfig::default(), now, 1);
    let (mut frames, mut payload) = (0, 0);
    for read in bytes.chunks(64 << 10) {
        s.input_mut().extend_from_slice(read);
        s.received(now, read.len());
        while let Some(ev) = s.poll_event().expect("capture replays") {
            match ev {
                ServerEvent::PublishRequested(_) => s.accept_publish().expect("accept"),
                ServerEvent::Frame(f) => {
                    frames += 1;
                    payload += f.len();
                    black_box(f);
                }
                _ => {}
            }
        }
        while let Some(out) = s.poll_transmit() {
            black_box(out);
        }
    }
    (frames, payload)
}

fn rtmp_ingest(c: &mut Criterion) {
    let bytes = capture();
    let (frames, payload) = ingest(&bytes);
    assert!(frames > 100, "capture holds {frames} frames");
    eprintln!(
        "rtmp_ingest: capture {} bytes, {frames} frames, {payload} payload bytes",
        bytes.len()
    );
    let mut group = c.benchmark_group("rtmp_ingest");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("ffmpeg capture (bytes)", |b| {
        b.iter(|| ingest(black_box(&bytes)))
    });
    group.throughput(Throughput::Elements(frames as u64));
    group.bench_function("ffmpeg capture (frames)", |b| {
        b.iter(|| ingest(black_box(&bytes)))
    });
    group.finish();
}

criterion_group!(benches, rtmp_ingest);
criterion_main!(benches);
