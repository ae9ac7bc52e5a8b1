//! Fan-out bus: cost of handing one frame of a 30 fps video + 47 fps audio stream to 1, 100 and
//! 10,000 consumers. Each iteration pushes one frame and lets every consumer pull it; the
//! reported time is per frame (divide by the consumer count for the cost per delivery).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sigma_benches::{SyntheticStream, stream_info};
use sigma_core::bus::{self, Event, Window};
use std::hint::black_box;

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
