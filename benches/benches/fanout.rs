//! Fan-out bus: cost of handing one frame of a 30 fps video + 47 fps audio stream to 1, 100 and
//! 10,000 consumers. Each iteration pushes one frame and lets every consumer pull it; the
//! reported time is per frame (divide by the consumer count for the cost per delivery).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sigma_benches::{AUDIO, SyntheticStream, VIDEO};
use sigma_core::bus::{self, Event, Window};
use sigma_core::{AacConfig, CodecConfig, H264Config, StreamInfo, TrackInfo};
use std::hint::black_box;

fn stream_info() -> std::sync::Arc<StreamInfo> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sigma-core/testdata/");
    let avcc = std::fs::read(format!("{dir}x264_high_720p30.avcc")).expect("testdata avcC");
    let asc = std::fs::read(format!("{dir}aac_lc_48k_stereo.asc")).expect("testdata ASC");
    let v = H264Config::from_avcc(avcc.into()).expect("avcC parses");
    let a = AacConfig::from_audio_specific_config(asc.into()).expect("ASC parses");
    StreamInfo::new(
        1,
        vec![
            TrackInfo::new(VIDEO, 90_000, CodecConfig::H264(v)).expect("video track"),
            TrackInfo::new(AUDIO, 48_000, CodecConfig::Aac(a)).expect("audio track"),
        ],
    )
    .expect("stream info")
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(1));
    for consumers in [1usize, 100, 10_000] {
        group.bench_function(BenchmarkId::new("push+pull per frame", consumers), |b| {
            let (mut producer, subscriber) = bus::channel(Window::default());
            producer.set_info(stream_info());
            let mut stream = SyntheticStream::new(60);
            let mut cs: Vec<_> = (0..consumers).map(|_| subscriber.subscribe()).collect();
            b.iter(|| {
                producer.push(stream.next_frame()).expect("push");
                for c in &mut cs {
                    while let Some(ev) = c.pull() {
                        if let Event::Frame(f) = ev {
                            black_box(f.len());
                        }
                    }
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
