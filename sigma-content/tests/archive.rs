//! The archive tee and writer on both backends (local disk and moto's S3 server): every
//! finished init and segment of a published stream stored byte for byte, journals and the
//! final manifest, recovery after the writer is killed, and a storage slower than live that
//! never holds the live path up.

use bytes::Bytes;
use sigma_content::archive::{
    ArchiveConfig, ArchiveWriter, Behind, init_key, load, recover, segment_key,
};
use sigma_content::vod;
use sigma_content::{Key, MediaStore};
use sigma_core::bus::{self, Producer, Window};
use sigma_core::{AacConfig, CodecConfig, Frame, H264Config, StreamInfo, TrackId, TrackInfo};
use sigma_llhls::conformance::parse_media_playlist;
use sigma_llhls::{LatencyMode, Origin, PublishOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod moto;
use moto::Moto;

const VIDEO: TrackId = TrackId(1);
const AUDIO: TrackId = TrackId(2);

fn testdata(name: &str) -> Bytes {
    let path = format!(
        "{}/../sigma-core/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap())
}

fn info() -> Arc<StreamInfo> {
    let v = H264Config::from_avcc(testdata("x264_high_720p30.avcc")).unwrap();
    let a = AacConfig::from_audio_specific_config(testdata("aac_lc_48k_stereo.asc")).unwrap();
    StreamInfo::new(
        1,
        vec![
            TrackInfo::new(VIDEO, 90_000, CodecConfig::H264(v)).unwrap(),
            TrackInfo::new(AUDIO, 48_000, CodecConfig::Aac(a)).unwrap(),
        ],
    )
    .unwrap()
}

/// `seconds` of 30 fps video with a keyframe every second and 48 kHz AAC, by decode time.
fn frames(seconds: u32) -> Vec<Frame> {
    let mut out = Vec::new();
    let (vn, an) = (seconds * 30, seconds * 48_000 / 1024);
    let (mut v, mut a) = (0u32, 0u32);
    while v < vn || a < an {
        let vt = i64::from(v) * 3000;
        let at = i64::from(a) * 1024 * 90_000 / 48_000;
        if v < vn && (a >= an || vt <= at) {
            let data = Bytes::from(format!("video {v} {}", "x".repeat(2000 + (v % 7) as usize)));
            out.push(Frame::new(VIDEO, vt, vt, v % 30 == 0, data));
            v += 1;
        } else {
            let t = i64::from(a) * 1024;
            out.push(Frame::new(
                AUDIO,
                t,
                t,
                true,
                Bytes::from(format!("audio {a}")),
            ));
            a += 1;
        }
    }
    out
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn channel() -> (Producer, bus::Subscriber) {
    let (mut p, s) = bus::channel(Window {
        max_groups: 64,
        max_frames: 1 << 16,
        max_bytes: 1 << 30,
    });
    p.set_info(info());
    (p, s)
}

/// Publishes `seconds` of media through the tee of `writer` and waits for the publication.
async fn publish(origin: &Origin, writer: &ArchiveWriter, seconds: u32) {
    let (mut producer, subscriber) = channel();
    let mut opts = PublishOptions::new(LatencyMode::Low);
    opts.archive = Some(writer.tee());
    let publication = origin.publish("s", &subscriber, opts).unwrap();
    for f in frames(seconds) {
        producer.push(f).unwrap();
    }
    producer.finish();
    publication.finished().await;
}

async fn served(origin: &Origin, rendition: &str, msn: u64) -> Vec<u8> {
    let stream = origin.streams();
    assert_eq!(stream, ["s"]);
    let epoch = {
        // The epoch is in the playlist's URIs: `{rendition}/{epoch}/…`.
        let text = String::from_utf8(
            origin
                .media_playlist("s", rendition, Default::default(), false)
                .await
                .unwrap()
                .body
                .to_vec(),
        )
        .unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{rendition}/")) && l.ends_with(".m4s"))
            .unwrap()
            .to_owned();
        line.split('/').nth(1).unwrap().to_owned()
    };
    let s = origin.segment("s", rendition, &epoch, msn).await.unwrap();
    s.chunks.concat()
}

async fn stored(store: &MediaStore, k: &Key) -> Vec<u8> {
    store.get(k).await.unwrap().unwrap().to_vec()
}

/// Every segment and init lands in the store as the origin serves it; the manifest lists
/// them; the VOD playlists read strictly and add up to the broadcast.
async fn archives_every_segment(store: MediaStore) {
    let prefix = key("assets/as_roundtrip");
    let origin = Origin::new();
    let writer = ArchiveWriter::start(
        store.clone(),
        prefix.clone(),
        ArchiveConfig {
            journal_every: Duration::from_millis(100),
            ..ArchiveConfig::default()
        },
        |_| panic!("never behind"),
    );
    publish(&origin, &writer, 16).await;
    let m = writer.finish().await.unwrap();
    assert!(m.complete);
    let names: Vec<&str> = m.renditions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["video", "audio"]);
    for r in ["video", "audio"] {
        let segs: Vec<_> = m.segments_of(r).collect();
        let total: f64 = segs.iter().map(|s| s.duration).sum();
        assert!((total - 16.0).abs() < 0.1, "{r}: {total} s of 16");
        for s in segs {
            let k = segment_key(&prefix, r, s.msn).unwrap();
            let bytes = stored(&store, &k).await;
            assert_eq!(bytes.len() as u64, s.size);
            assert_eq!(bytes, served(&origin, r, s.msn).await, "{r}/{}", s.msn);
        }
        assert!(
            !stored(&store, &init_key(&prefix, r, 1).unwrap())
                .await
                .is_empty()
        );
    }
    assert_eq!(load(&store, &prefix).await.unwrap().unwrap(), m);
    let mv = vod::multivariant(&m).unwrap();
    assert!(
        mv.contains("video.m3u8") && mv.contains("audio.m3u8"),
        "{mv}"
    );
    for r in ["video", "audio"] {
        let text = vod::media_playlist(&m, r).unwrap();
        let p = parse_media_playlist(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(p.ended);
        let total: f64 = p.segments.iter().map(|s| s.1).sum();
        assert!((total - 16.0).abs() < 0.1);
        // Every URI the playlist lists is an object of the archive.
        for uri in p.segments.iter().map(|s| &s.0).chain(&p.maps) {
            assert!(
                store
                    .get(&prefix.join(uri).unwrap())
                    .await
                    .unwrap()
                    .is_some(),
                "{uri}"
            );
        }
    }
}

/// A writer killed mid-broadcast leaves journals; recovery completes the manifest with every
/// segment journaled, and every segment it lists is whole.
async fn recovers_after_a_kill(store: MediaStore) {
    let prefix = key("assets/as_killed");
    let origin = Origin::new();
    let writer = ArchiveWriter::start(
        store.clone(),
        prefix.clone(),
        ArchiveConfig {
            journal_every: Duration::from_millis(100),
            ..ArchiveConfig::default()
        },
        |_| {},
    );
    let (mut producer, subscriber) = channel();
    let mut opts = PublishOptions::new(LatencyMode::Low);
    opts.archive = Some(writer.tee());
    let _publication = origin.publish("s", &subscriber, opts).unwrap();
    // 10 s pushed, the stream still live (no end): the last segment stays open.
    for f in frames(10) {
        producer.push(f).unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while writer.stats().stored_segments < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            writer.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing more comes: once the count holds still, a journal after it.
    let mut stored_now = writer.stats().stored_segments;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = writer.stats().stored_segments;
        if n == stored_now {
            break;
        }
        stored_now = n;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer.abort();
    let in_progress = load(&store, &prefix).await.unwrap().unwrap();
    assert!(!in_progress.complete);
    let m = recover(&store, &prefix).await.unwrap().unwrap();
    assert!(m.complete);
    assert_eq!(m.segments.len() as u64, stored_now);
    assert!(m.duration() >= 8.0, "{}", m.duration());
    for s in &m.segments {
        let k = segment_key(&prefix, &s.rendition, s.msn).unwrap();
        assert_eq!(stored(&store, &k).await.len() as u64, s.size);
    }
    // Recovering again changes nothing.
    assert_eq!(recover(&store, &prefix).await.unwrap().unwrap(), m);
    drop(producer);
}

async fn local() -> (MediaStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "sigma-archive-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    (MediaStore::open(None, &dir).unwrap(), dir)
}

fn rand_suffix() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_disk_archive() {
    let (store, dir) = local().await;
    archives_every_segment(store.clone()).await;
    recovers_after_a_kill(store).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_archive() {
    let moto = Moto::start();
    moto.make_bucket("sigma");
    let options = moto.options();
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let store =
        MediaStore::open_with(Some("s3://sigma/node"), &std::env::temp_dir(), &options).unwrap();
    archives_every_segment(store.clone()).await;
    recovers_after_a_kill(store).await;
}

/// Storage slower than live: with room for no segment, every segment is dropped from the
/// archive and counted, the warning fires once, and the live origin still has everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_from_the_archive_never_from_live() {
    let (store, dir) = local().await;
    let prefix = key("assets/as_behind");
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let w = warnings.clone();
    let writer = ArchiveWriter::start(
        store.clone(),
        prefix.clone(),
        ArchiveConfig {
            queue_bytes: 1,
            journal_every: Duration::from_millis(100),
        },
        move |b| w.lock().unwrap().push(b),
    );
    let origin = Origin::new();
    publish(&origin, &writer, 10).await;
    let stats = writer.stats();
    let m = writer.finish().await.unwrap();
    assert_eq!(*warnings.lock().unwrap(), [Behind::QueueFull]);
    assert!(m.segments.is_empty());
    assert!(stats.dropped_segments >= 10, "{stats:?}");
    assert_eq!(m.renditions.len(), 2, "inits are kept");
    // The live path has every segment.
    for msn in 0..5 {
        assert!(!served(&origin, "video", msn).await.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
