//! [`attach`]: a transcoder fed from a source bus. Waits (async) for the source's stream info,
//! then spawns the pump thread, which runs its own current-thread tokio runtime to read a new
//! consumer of the source and push into the [`Transcoder`] on that thread.

use super::{Options, Outputs, Transcoder};
use crate::{Error, Ladder};
use sigma_core::bus;
use std::thread::JoinHandle;

/// A ladder attached to a source bus: what [`attach`] returns.
pub struct Attached {
    /// The renditions, skipped renditions and events.
    pub outputs: Outputs,
    /// The thread pumping the source into the transcoder; it ends (after draining every
    /// rendition) when the source ends.
    pub pump: JoinHandle<Result<(), Error>>,
}

/// Attaches `ladder` to a live source: waits for the source's stream info, starts the
/// transcoder and a thread that feeds it from a new consumer of `source` (gaps restart decoding
/// at the next keyframe, a new generation reopens the decoder). Returns the rendition buses to
/// package like any other stream.
pub async fn attach(
    ladder: &Ladder,
    source: &bus::Subscriber,
    options: Options,
) -> Result<Attached, Error> {
    let mut consumer = source.subscribe();
    let info = loop {
        match consumer.recv().await {
            Some(bus::Event::Info(i)) => break i,
            // The bus sends Info before any frame; nothing else can come first.
            Some(bus::Event::Frame(_) | bus::Event::Gap { .. }) => {}
            Some(bus::Event::Error(e)) => {
                return Err(Error::Unsupported(format!("source failed: {e}")));
            }
            Some(bus::Event::End) | None => {
                return Err(Error::Unsupported(
                    "source ended before its stream info".into(),
                ));
            }
        }
    };
    let (mut transcoder, outputs) = Transcoder::new(ladder, &info, options)?;
    let pump = std::thread::Builder::new()
        .name("sigma-transcode-input".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| Error::Worker {
                    name: "sigma-transcode-input".into(),
                    reason: e.to_string(),
                })?;
            let source_error = rt.block_on(async {
                while let Some(ev) = consumer.recv().await {
                    match ev {
                        bus::Event::Info(i) => transcoder.set_info(i),
                        bus::Event::Frame(f) => transcoder.push(f),
                        bus::Event::Gap { frames } => transcoder.gap(frames),
                        bus::Event::End => break,
                        bus::Event::Error(e) => return Some(e),
                    }
                }
                None
            });
            match source_error {
                None => transcoder.finish(),
                Some(e) => transcoder.fail(e),
            }
        })
        .map_err(|e| Error::Worker {
            name: "sigma-transcode-input".into(),
            reason: e.to_string(),
        })?;
    Ok(Attached { outputs, pump })
}

#[cfg(all(test, feature = "x264", feature = "fdk-aac"))]
mod tests {
    use super::super::Overload;
    use super::super::tests::{short_source, video_pts};
    use super::*;
    use crate::encode::{AacProfile, AacSettings};
    use crate::ladder::{AudioPlan, KeyframePolicy};
    use sigma_core::bus::Window;
    use sigma_core::{CodecConfig, MediaKind, TrackId};
    use std::sync::Arc;

    #[test]
    fn attached_to_a_bus_with_passthrough_he_aac_and_fixed_cadence() {
        let src = short_source(3.0);
        let mut ladder = Ladder::default_ladder();
        ladder.renditions.truncate(2);
        ladder.passthrough = true;
        ladder.keyframes = KeyframePolicy::Every { seconds: 1.0 };
        ladder.audio = AudioPlan::Encode {
            settings: AacSettings {
                profile: AacProfile::HeAac,
                bitrate: 48_000,
            },
            processing: crate::audio::AudioProcessing::default(),
        };
        let window = Window {
            max_groups: 1000,
            max_frames: 100_000,
            max_bytes: 1 << 30,
        };
        let (mut producer, subscriber) = bus::channel(window);
        producer.set_info(src.info.clone());
        // The first GOP goes in before attaching (a late joiner starts at the newest GOP).
        let second_key = src
            .frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.track() == TrackId(1) && f.is_keyframe())
            .nth(1)
            .map(|(i, _)| i)
            .unwrap();
        for f in &src.frames[..second_key] {
            producer.push(f.clone()).unwrap();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let options = Options {
            overload: Overload::Block,
            window,
            ..Options::default()
        };
        let attached = rt.block_on(attach(&ladder, &subscriber, options)).unwrap();
        let mut consumers: Vec<_> = attached
            .outputs
            .renditions
            .iter()
            .map(|r| r.subscriber.subscribe())
            .collect();
        for f in &src.frames[second_key..] {
            producer.push(f.clone()).unwrap();
        }
        producer.finish();
        attached.pump.join().unwrap().unwrap();
        let names: Vec<_> = attached
            .outputs
            .renditions
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["source", "720p", "480p"]);
        let first = src.video().map(|f| f.pts()).min().unwrap();
        for (r, c) in attached.outputs.renditions.iter().zip(&mut consumers) {
            let audio = r
                .info
                .tracks()
                .iter()
                .find(|t| t.kind() == MediaKind::Audio)
                .unwrap();
            let CodecConfig::Aac(a) = audio.codec() else {
                panic!()
            };
            assert_eq!(a.output_sample_rate(), 48_000, "{a:?}");
            assert!(a.object_type() == 5 || a.sample_rate() == 24_000, "{a:?}");
            let mut frames = Vec::new();
            loop {
                match c.pull() {
                    Some(bus::Event::Frame(f)) => frames.push(f),
                    Some(bus::Event::Info(_)) => {}
                    Some(bus::Event::End) => break,
                    other => panic!("{}: {other:?}", r.name),
                }
            }
            let (all, keys) = video_pts(&frames);
            assert_eq!(all.len(), src.video().count(), "{}", r.name);
            let audio_frames = frames.iter().filter(|f| f.track() == TrackId(2)).count();
            assert!(
                audio_frames > 40,
                "{}: {audio_frames} HE-AAC frames",
                r.name
            );
            if r.name == "source" {
                // Passthrough: the very same payloads, not copies.
                for (out, inp) in frames
                    .iter()
                    .filter(|f| f.track() == TrackId(1))
                    .zip(src.video())
                {
                    assert_eq!(out.data().as_ptr(), inp.data().as_ptr());
                }
            } else {
                let last = *all.last().unwrap();
                let want: Vec<i64> = (0..)
                    .map(|s| first + s * 90_000)
                    .take_while(|&k| k <= last)
                    .collect();
                assert!(want.len() >= 3);
                assert_eq!(keys, want, "{}: a GOP every second", r.name);
            }
        }
    }

    #[test]
    fn a_failed_source_fails_every_rendition() {
        let src = short_source(0.5);
        let window = Window::default();
        let (mut producer, subscriber) = bus::channel(window);
        producer.set_info(src.info.clone());
        producer.push(src.frames[0].clone()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut ladder = Ladder::default_ladder();
        ladder.renditions.truncate(1);
        let attached = rt
            .block_on(attach(&ladder, &subscriber, Options::default()))
            .unwrap();
        let mut c = attached.outputs.renditions[0].subscriber.subscribe();
        for f in &src.frames[1..] {
            producer.push(f.clone()).unwrap();
        }
        producer.fail(Arc::new(std::io::Error::other("publisher vanished")));
        attached.pump.join().unwrap().unwrap();
        let last = std::iter::from_fn(|| c.pull()).last();
        match last {
            // The source's own error, still typed.
            Some(bus::Event::Error(e)) => {
                let io = e.downcast_ref::<std::io::Error>().unwrap();
                assert_eq!(io.to_string(), "publisher vanished");
            }
            other => panic!("{other:?}"),
        }
    }
}
