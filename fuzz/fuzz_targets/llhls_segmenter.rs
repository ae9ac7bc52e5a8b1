//! Fuzzes the segmenter with arbitrary frame sequences (any timestamps, keyframe flags, track
//! ids, codec changes, gaps, segment limits set or cleared at any point) and checks its invariants after every step: no panic; parts
//! numbered 0, 1, … within segments whose sequence numbers grow by one; a part is within the
//! part target unless it holds a single over-long sample; and after `finish` every sample
//! pushed came out exactly once, in order.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sigma_core::{AacConfig, CodecConfig, Frame, H264Config, StreamInfo, TrackId, TrackInfo};
use sigma_llhls::LatencyMode;
use sigma_llhls::segmenter::{Output, Segmenter, SegmenterConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

static AVCC_720: &[u8] = include_bytes!("../../sigma-core/testdata/x264_high_720p30.avcc");
static AVCC_360: &[u8] = include_bytes!("../../sigma-core/testdata/x264_baseline_360p25.avcc");
static ASC: &[u8] = include_bytes!("../../sigma-core/testdata/aac_lc_48k_stereo.asc");

fn info(generation: u64, small: bool, audio_rate: u32) -> Arc<StreamInfo> {
    let avcc = if small { AVCC_360 } else { AVCC_720 };
    let v = H264Config::from_avcc(Bytes::from_static(avcc)).expect("testdata avcC");
    let a = AacConfig::from_audio_specific_config(Bytes::from_static(ASC)).expect("testdata ASC");
    StreamInfo::new(
        generation,
        vec![
            TrackInfo::new(TrackId(1), 90_000, CodecConfig::H264(v)).expect("video"),
            TrackInfo::new(TrackId(2), audio_rate, CodecConfig::Aac(a)).expect("audio"),
        ],
    )
    .expect("info")
}

struct Check {
    part_ticks: HashMap<TrackId, i64>,
    next: HashMap<TrackId, (u64, u32)>,
    payloads: HashMap<TrackId, Vec<Bytes>>,
}

impl Check {
    fn drain(&mut self, s: &mut Segmenter, target: Duration) {
        while let Some(o) = s.pull() {
            match o {
                Output::Init(i) => {
                    let t = target.as_nanos() * u128::from(i.timescale) / 1_000_000_000;
                    self.part_ticks.insert(i.track, t as i64);
                }
                Output::Part(p) => {
                    let next = self.next.entry(p.track).or_insert((p.msn, 0));
                    if p.msn != next.0 {
                        assert_eq!(p.msn, next.0 + 1, "msn grows by one");
                        *next = (p.msn, 0);
                    }
                    assert_eq!(p.index, next.1, "part index");
                    next.1 += 1;
                    let limit = self.part_ticks[&p.track];
                    assert!(
                        p.duration as i64 <= limit || p.samples == 1,
                        "part of {} ticks, {} samples, target {limit}",
                        p.duration,
                        p.samples
                    );
                    self.payloads.entry(p.track).or_default().extend(p.payload);
                }
                Output::SegmentEnd(e) => {
                    let next = self.next.entry(e.track).or_insert((e.msn, 0));
                    assert_eq!((e.msn, e.parts), *next, "segment end matches its parts");
                    *next = (e.msn + 1, 0);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mode = LatencyMode::UltraLow;
    let cfg = SegmenterConfig::from_timing(mode.timing());
    let target = cfg.part_target.expect("ultra-low has parts");
    let mut s = Segmenter::new(cfg);
    let mut check = Check {
        part_ticks: HashMap::new(),
        next: HashMap::new(),
        payloads: HashMap::new(),
    };
    let mut pushed: HashMap<TrackId, Vec<Bytes>> = HashMap::new();
    let mut generation = 0;
    let mut dts = [0i64; 3];
    let mut n = 0u32;
    for op in data.chunks(6) {
        let [kind, a, b, c, d, e] = match op {
            [k, a, b, c, d, e] => [*k, *a, *b, *c, *d, *e],
            _ => break,
        };
        match kind % 16 {
            0 => {
                generation += 1;
                let _ = s.set_info(info(
                    generation,
                    a & 1 == 1,
                    if b & 1 == 1 { 44_100 } else { 48_000 },
                ));
            }
            1 => {
                let _ = s.discontinuity();
            }
            2 => {
                // The origin sets a segment limit once the target duration is fixed.
                let ms = u64::from(u16::from_le_bytes([b, c]));
                s.set_segment_limit((a & 1 == 1).then(|| Duration::from_millis(ms + 1)));
            }
            _ => {
                let track = [TrackId(1), TrackId(2), TrackId(3)][usize::from(a % 3)];
                let step = i64::from(i16::from_le_bytes([b, c]));
                let slot = &mut dts[usize::from(a % 3)];
                *slot = if d == 0xff {
                    i64::from(i32::from_le_bytes([b, c, e, d])) << 8
                } else {
                    *slot + step
                };
                let cto = i64::from(e as i8) * 100;
                n += 1;
                let payload = Bytes::from(n.to_le_bytes().to_vec());
                let frame = Frame::new(track, *slot, *slot + cto, d & 1 == 1, payload.clone());
                if s.push(frame, UNIX_EPOCH + Duration::from_millis(u64::from(n)))
                    .is_ok()
                {
                    pushed.entry(track).or_default().push(payload);
                }
            }
        }
        check.drain(&mut s, target);
    }
    let _ = s.finish();
    check.drain(&mut s, target);
    // Frames of a track that was replaced by a codec change are segmented before the change;
    // every accepted frame of the packaged tracks comes out exactly once, in order.
    for track in [TrackId(1), TrackId(2)] {
        let want = pushed.remove(&track).unwrap_or_default();
        let got = check.payloads.remove(&track).unwrap_or_default();
        assert_eq!(got, want, "track {track}");
    }
});
