//! Test inputs: the captured ffmpeg file in `testdata/` read into frames (by sigma-core's
//! `media` reader), synthetic streams, and a reader for our own fMP4 output built on the `mp4`
//! crate's box parsers.

use bytes::Bytes;
use mp4::{BoxHeader, BoxType, MoofBox, ReadBox};
use proptest::prelude::*;
use sigma_core::time::rescale;
use sigma_core::{AacConfig, CodecConfig, Frame, H264Config, StreamInfo, TrackId, TrackInfo};
use std::io::{Cursor, Seek, SeekFrom};
use std::sync::Arc;

pub const VIDEO: TrackId = TrackId(1);
pub const AUDIO: TrackId = TrackId(2);

pub fn testdata(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn core_testdata(name: &str) -> Bytes {
    let path = format!(
        "{}/../sigma-core/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// Stream info with the 720p30 x264 record and 48 kHz stereo AAC, at generation `generation`.
pub fn synthetic_info(generation: u64) -> Arc<StreamInfo> {
    let v = H264Config::from_avcc(core_testdata("x264_high_720p30.avcc")).unwrap();
    let a = AacConfig::from_audio_specific_config(core_testdata("aac_lc_48k_stereo.asc")).unwrap();
    StreamInfo::new(
        generation,
        vec![
            TrackInfo::new(VIDEO, 90_000, CodecConfig::H264(v)).unwrap(),
            TrackInfo::new(AUDIO, 48_000, CodecConfig::Aac(a)).unwrap(),
        ],
    )
    .unwrap()
}

/// `seconds` of 30 fps video (GOP of `gop` frames) and 48 kHz AAC, interleaved by time; the
/// payload of every frame is distinct.
pub fn synthetic_frames(seconds: u32, gop: u32) -> Vec<Frame> {
    let mut frames = Vec::new();
    let vframes = seconds * 30;
    let aframes = seconds * 48_000 / 1024;
    let (mut v, mut a) = (0u32, 0u32);
    while v < vframes || a < aframes {
        let vt = i64::from(v) * 3000;
        let at = rescale(i64::from(a) * 1024, 48_000, 90_000);
        if v < vframes && (a >= aframes || vt <= at) {
            let data = Bytes::from(format!("video {v} {}", "x".repeat(500 + (v % 7) as usize)));
            frames.push(Frame::new(VIDEO, vt, vt, v % gop == 0, data));
            v += 1;
        } else {
            let data = Bytes::from(format!("audio {a} {}", "y".repeat(100)));
            let t = i64::from(a) * 1024;
            frames.push(Frame::new(AUDIO, t, t, true, data));
            a += 1;
        }
    }
    frames
}

/// The captured file's tracks and frames, read by sigma-core's test-media reader: H.264 High
/// with 3 B-frames at 90 kHz on track 1, AAC-LC 48 kHz on track 2, interleaved by decode time.
pub fn capture() -> (Arc<StreamInfo>, Vec<Frame>) {
    let data = testdata("testsrc2_bf3_aac.mp4");
    let len = data.len() as u64;
    let media = sigma_core::media::Media::read(Cursor::new(data), len).expect("capture reads");
    assert_eq!(
        (VIDEO, AUDIO),
        (sigma_core::media::VIDEO, sigma_core::media::AUDIO)
    );
    media.into_parts()
}

/// A sample read back from our fMP4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadSample {
    pub dts: u64,
    pub duration: u32,
    pub cto: i32,
    pub sync: bool,
    pub data: Bytes,
}

/// Reads an init segment with the `mp4` crate: (track id, timescale, avcC or ASC-bearing box
/// bytes as the crate re-serialises them).
pub fn read_init(init: &[u8]) -> (u32, u32, mp4::Mp4Reader<Cursor<Vec<u8>>>) {
    let r = mp4::Mp4Reader::read_header(Cursor::new(init.to_vec()), init.len() as u64)
        .expect("init segment parses");
    assert_eq!(r.tracks().len(), 1, "one track per init segment");
    let (&id, t) = r.tracks().iter().next().unwrap();
    let ts = t.timescale();
    (id, ts, r)
}

/// Reads the samples of concatenated `[styp] moof mdat` chunks with the `mp4` crate's `moof`
/// parser, resolving data offsets against each `moof` (default-base-is-moof).
pub fn read_fragments(media: &[u8]) -> Vec<ReadSample> {
    let mut c = Cursor::new(media);
    let mut out = Vec::new();
    let len = media.len() as u64;
    while c.position() < len {
        let start = c.position();
        let h = BoxHeader::read(&mut c).expect("box header");
        assert!(
            h.size >= 8 && start + h.size <= len,
            "box {:?} size {}",
            h.name,
            h.size
        );
        match h.name {
            BoxType::MoofBox => {
                let moof = MoofBox::read_box(&mut c, h.size).expect("moof parses");
                for traf in &moof.trafs {
                    let mut dts = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
                    let trun = traf.trun.as_ref().expect("trun");
                    let mut at =
                        (start as i64 + i64::from(trun.data_offset.expect("offset"))) as usize;
                    for i in 0..trun.sample_count as usize {
                        let size = trun.sample_sizes[i] as usize;
                        let flags = trun.sample_flags[i];
                        out.push(ReadSample {
                            dts,
                            duration: trun.sample_durations[i],
                            cto: trun.sample_cts[i] as i32,
                            sync: flags & 0x0001_0000 == 0,
                            data: Bytes::copy_from_slice(&media[at..at + size]),
                        });
                        at += size;
                        dts += u64::from(trun.sample_durations[i]);
                    }
                }
                c.seek(SeekFrom::Start(start + h.size)).unwrap();
            }
            _ => {
                c.seek(SeekFrom::Start(start + h.size)).unwrap();
            }
        }
    }
    out
}

pub use crate::conformance::{ParsedPlaylist, attributes, parse_media_playlist};

/// A random stream: GOPs of random length, optional B-frames, timestamp jitter, audio
/// interleaved early or late.
pub fn arb_stream() -> impl Strategy<Value = Vec<Frame>> {
    (
        prop::collection::vec(10u32..80, 1..8),
        prop::sample::select(vec![2000i64, 3000, 3600, 3754]),
        0i64..200,
        any::<bool>(),
        -20_000i64..20_000,
        any::<u64>(),
    )
        .prop_map(|(gops, step, jitter, bframes, audio_lead, seed)| {
            let mut rng = seed | 1;
            let mut next = move |m: i64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % (m.max(1) as u64)) as i64
            };
            let mut video = Vec::new();
            let mut t = 0i64;
            let mut n = 0u32;
            for g in gops {
                for i in 0..g {
                    let pts = if bframes && i > 0 {
                        // Reorder pairs: pts runs one frame ahead/behind of dts.
                        if i % 2 == 1 { t + 2 * step } else { t }
                    } else {
                        t + if bframes { step } else { 0 }
                    };
                    video.push(Frame::new(
                        VIDEO,
                        t,
                        pts,
                        i == 0,
                        Bytes::from(format!("v{n}")),
                    ));
                    n += 1;
                    t += step + next(2 * jitter + 1) - jitter;
                }
            }
            let end = t;
            let mut frames = Vec::new();
            let mut a = 0i64;
            let mut vi = video.into_iter().peekable();
            loop {
                let at = a * 1024;
                let at90 = sigma_core::time::rescale(at, 48_000, 90_000) - audio_lead;
                match vi.peek() {
                    Some(v) if v.dts() <= at90 || at90 >= end => {
                        frames.push(vi.next().unwrap());
                    }
                    _ if at90 < end => {
                        frames.push(Frame::new(
                            AUDIO,
                            at,
                            at,
                            true,
                            Bytes::from(format!("a{a}")),
                        ));
                        a += 1;
                    }
                    _ => break,
                }
            }
            frames
        })
}
