//! Replays the captured publish byte streams in `testdata/` (see testdata/README.md) through
//! the sans-IO server session, with no network, and checks every frame against the packet
//! list ffprobe gave for the same source.

mod common;

use common::testdata;
use sigma_core::Frame;
use sigma_core::time::rescale;
use sigma_rtmp::handshake::{self, DigestScheme, Flavour, PACKET_SIZE};
use sigma_rtmp::session::{ServerEvent, ServerSession, SessionConfig};
use std::time::Instant;

struct Replay {
    frames: Vec<Frame>,
    audio_rate: u32,
    flavour: Option<Flavour>,
    app: String,
    name: String,
    unpublished: bool,
    metadata: usize,
    reply: Vec<u8>,
}

fn replay(name: &str, piece: usize) -> Replay {
    let bytes = testdata(name);
    let now = Instant::now();
    let mut s = ServerSession::new(SessionConfig::default(), now, 42);
    let mut r = Replay {
        frames: Vec::new(),
        audio_rate: 0,
        flavour: None,
        app: String::new(),
        name: String::new(),
        unpublished: false,
        metadata: 0,
        reply: Vec::new(),
    };
    for p in bytes.chunks(piece) {
        s.handle_input(now, p);
        while let Some(ev) = s.poll_event().unwrap() {
            match ev {
                ServerEvent::PublishRequested(req) => {
                    r.app = req.app;
                    r.name = req.name;
                    s.accept_publish().unwrap();
                }
                ServerEvent::StreamInfo(i) => {
                    r.audio_rate = i.track(sigma_core::TrackId(2)).unwrap().timescale();
                }
                ServerEvent::Frame(f) => r.frames.push(f),
                ServerEvent::Metadata(_) => r.metadata += 1,
                ServerEvent::Unpublished => r.unpublished = true,
                ServerEvent::Connected { .. } => {}
            }
        }
        while let Some(b) = s.poll_transmit() {
            r.reply.extend_from_slice(&b);
        }
    }
    r.flavour = s.handshake_flavour();
    r
}

fn check_against_packets(r: &Replay, csv: &str) {
    let want: Vec<String> = String::from_utf8(testdata(csv))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let got: Vec<String> = r
        .frames
        .iter()
        .map(|f| {
            let video = f.track().0 == 1;
            let rate = if video { 90_000 } else { r.audio_rate };
            format!(
                "{},{},{},{},{}",
                if video { "video" } else { "audio" },
                rescale(f.dts(), rate, 1000),
                rescale(f.pts(), rate, 1000),
                f.len(),
                if f.is_keyframe() { "K" } else { "_" }
            )
        })
        .collect();
    // ffprobe lists packets in file order; per track the order is the same as ours.
    for kind in ["video", "audio"] {
        let g: Vec<_> = got.iter().filter(|l| l.starts_with(kind)).collect();
        let w: Vec<_> = want.iter().filter(|l| l.starts_with(kind)).collect();
        assert_eq!(g, w, "{kind} packets of {csv}");
    }
    assert!(want.len() > 100);
}

#[test]
fn ffmpeg_capture_replays_exactly() {
    for piece in [1, 7, 1000, 1 << 20] {
        let r = replay("ffmpeg_publish.rtmp", piece);
        assert_eq!((r.app.as_str(), r.name.as_str()), ("live", "ff"));
        assert!(r.unpublished, "FCUnpublish/deleteStream seen");
        assert_eq!(r.metadata, 1);
        check_against_packets(&r, "ffmpeg_publish.packets.csv");
        // ffmpeg sends a digest C1 (scheme 0); our reply must validate against it.
        assert_eq!(r.flavour, Some(Flavour::Digest(DigestScheme::Scheme0)));
    }
    let bytes = testdata("ffmpeg_publish.rtmp");
    let c1 = &bytes[1..1 + PACKET_SIZE];
    let digest = handshake::client_digest(c1).expect("ffmpeg's C1 digest validates");
    let r = replay("ffmpeg_publish.rtmp", 1 << 20);
    let s1 = &r.reply[1..1 + PACKET_SIZE];
    let s2 = &r.reply[1 + PACKET_SIZE..1 + 2 * PACKET_SIZE];
    assert!(
        handshake::server_digest(s1).is_some(),
        "S1 carries a server digest"
    );
    assert!(
        handshake::verify_server_s2(s2, &digest),
        "S2 answers the client digest"
    );
}

#[test]
fn gstreamer_capture_replays_exactly() {
    for piece in [3, 4096] {
        let r = replay("gstreamer_publish.rtmp", piece);
        assert_eq!((r.app.as_str(), r.name.as_str()), ("live", "gst"));
        assert_eq!(r.flavour, Some(Flavour::Plain));
        check_against_packets(&r, "gstreamer_publish.packets.csv");
    }
}
