//! Fuzzes FLV tag demux: the input is cut into audio/video tag bodies with timestamps; any
//! bodies give frames or a typed error, never a panic. Invariants: stream info comes before the
//! first frame and names the frame's track; a video payload is a slice of its tag body (no
//! copy); audio frames are keyframes with pts == dts.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sigma_rtmp::flv::{DemuxEvent, FlvDemuxer};

fuzz_target!(|data: &[u8]| {
    let mut d = FlvDemuxer::new(600_000);
    let mut rest = data;
    let mut info = None;
    // Each tag: kind (1 byte), timestamp (4), length (2), body.
    while rest.len() >= 7 {
        let video = rest[0] & 1 == 1;
        let ts = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = usize::from(u16::from_be_bytes([rest[5], rest[6]])).min(rest.len() - 7);
        let body = Bytes::copy_from_slice(&rest[7..7 + len]);
        rest = &rest[7 + len..];
        let r = if video {
            d.push_video(ts, body.clone())
        } else {
            d.push_audio(ts, body.clone())
        };
        if r.is_err() {
            return;
        }
        while let Some(ev) = d.pull() {
            match ev {
                DemuxEvent::Info(i) => info = Some(i),
                DemuxEvent::Frame(f) => {
                    let i = info.as_ref().expect("info before frames");
                    assert!(i.track(f.track()).is_some());
                    let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len() + 1;
                    assert!(
                        range.contains(&(f.data().as_ptr() as usize)),
                        "payload is a slice"
                    );
                    assert!(!f.is_empty());
                    if f.track().0 == 2 {
                        assert!(f.is_keyframe() && f.pts() == f.dts());
                    }
                }
            }
        }
    }
});
