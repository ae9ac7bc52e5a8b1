//! Playlist rendering: microseconds per render of a live ultra-low-latency video playlist
//! (15 segments of 2 s, parts listed for the last three, preload hint, one rendition report),
//! full and as a delta update, and of a normal-mode playlist.

use criterion::{Criterion, criterion_group, criterion_main};
use sigma_benches::{SyntheticStream, VIDEO, stream_info};
use sigma_llhls::LatencyMode;
use sigma_llhls::playlist::{RenderOptions, Rendition, RenditionConfig};
use sigma_llhls::segmenter::{Output, Segmenter, SegmenterConfig};
use std::hint::black_box;
use std::time::SystemTime;

/// Video and audio renditions after `seconds` of a live stream.
fn renditions(mode: LatencyMode, seconds: u64) -> (Rendition, Rendition) {
    let timing = mode.timing();
    let mk = |name: &str| {
        Rendition::new(RenditionConfig {
            name: name.into(),
            uri_prefix: format!("{name}/18c0ffee/"),
            timing,
        })
    };
    let (mut v, mut a) = (mk("video"), mk("audio"));
    let mut s = Segmenter::new(SegmenterConfig::from_timing(timing));
    s.set_info(stream_info()).expect("info");
    let mut stream = SyntheticStream::new(60);
    let now = SystemTime::now();
    let frames = seconds * (30 + 47) + 10;
    for _ in 0..frames {
        s.push(stream.next_frame(), now).expect("push");
        while let Some(o) = s.pull() {
            let track = match &o {
                Output::Init(i) => i.track,
                Output::Part(p) => p.track,
                Output::SegmentEnd(e) => e.track,
            };
            if track == VIDEO { v.push(o) } else { a.push(o) }
        }
    }
    (v, a)
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("llhls_playlist");
    let (v, a) = renditions(LatencyMode::UltraLow, 61);
    let reports = [a.report().expect("audio report")];
    let len = v.render(RenderOptions::default(), &reports).len();
    group.bench_function(format!("ultra-low video, full ({len} B)"), |b| {
        b.iter(|| black_box(v.render(RenderOptions::default(), &reports)))
    });
    let len = v.render(RenderOptions { skip: true }, &reports).len();
    group.bench_function(format!("ultra-low video, delta ({len} B)"), |b| {
        b.iter(|| black_box(v.render(RenderOptions { skip: true }, &reports)))
    });
    let (v, a) = renditions(LatencyMode::Normal, 90);
    let reports = [a.report().expect("audio report")];
    let len = v.render(RenderOptions::default(), &reports).len();
    group.bench_function(format!("normal video, full ({len} B)"), |b| {
        b.iter(|| black_box(v.render(RenderOptions::default(), &reports)))
    });
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
