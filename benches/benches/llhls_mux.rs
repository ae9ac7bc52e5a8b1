//! CMAF muxing throughput: frames of a 2.5 Mbit/s 30 fps + AAC stream through the LL-HLS
//! segmenter (ultra-low: 0.334 s parts, 2 s segments). Throughput is payload bytes per second.
//! "zero-copy" only builds part headers (payloads are shared `Bytes`, as served); "contiguous"
//! also writes every part into one buffer, as a file writer would.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sigma_benches::{SyntheticStream, stream_info};
use sigma_llhls::LatencyMode;
use sigma_llhls::segmenter::{Output, Segmenter, SegmenterConfig};
use std::hint::black_box;
use std::time::SystemTime;

fn mux(c: &mut Criterion) {
    // Ten seconds of media per iteration.
    let mut stream = SyntheticStream::new(60);
    let frames: Vec<_> = (0..(300 + 469)).map(|_| stream.next_frame()).collect();
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let cfg = SegmenterConfig::from_timing(LatencyMode::UltraLow.timing());
    let info = stream_info();
    let now = SystemTime::now();

    let mut group = c.benchmark_group("llhls_mux");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("10 s of 2.5 Mbit/s A/V, zero-copy parts", |b| {
        b.iter(|| {
            let mut s = Segmenter::new(cfg);
            s.set_info(info.clone()).expect("info");
            let mut parts = 0usize;
            for f in &frames {
                s.push(f.clone(), now).expect("push");
                while let Some(o) = s.pull() {
                    if let Output::Part(p) = o {
                        parts += black_box(p.header.len());
                    }
                }
            }
            s.finish().expect("finish");
            while s.pull().is_some() {}
            parts
        })
    });
    group.bench_function("10 s of 2.5 Mbit/s A/V, contiguous output", |b| {
        let mut out = Vec::with_capacity(bytes as usize * 2);
        b.iter(|| {
            out.clear();
            let mut s = Segmenter::new(cfg);
            s.set_info(info.clone()).expect("info");
            for f in &frames {
                s.push(f.clone(), now).expect("push");
                while let Some(o) = s.pull() {
                    if let Output::Part(p) = o {
                        out.extend_from_slice(&p.header);
                        for b in &p.payload {
                            out.extend_from_slice(b);
                        }
                    }
                }
            }
            s.finish().expect("finish");
            while s.pull().is_some() {}
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, mux);
criterion_main!(benches);
