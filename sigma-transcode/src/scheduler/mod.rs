//! Scheduling: the threads and bounded queues that run a ladder.
//!
//! ```text
//!  caller ── push(Frame) ──► [input queue] ──► decode thread ──► [queue] ──► rendition thread ──► bus::Producer
//!    │                        (bounded)        H.264 decode       (bounded)  scale (+fps) → x264   (one per rung)
//!    │                                         shared processing  one per     │
//!    │                                         keyframe policy    rendition   ▼
//!    ├── audio ──► [audio queue] ──► audio thread: AAC decode → filters → fdk-aac ──► every rung's producer
//!    └── passthrough video / copied audio ─────────────────────────────────────────► rung producers
//! ```
//!
//! - **Decode once.** The decode thread decodes each source picture once, applies the ladder's
//!   shared processing, and sends the same `Arc<Picture>` to every rendition: no copies.
//! - **One thread per encoder**, each behind a bounded queue (`Options::rendition_queue`
//!   pictures). A slow encoder fills its queue, which stalls the decode thread, which fills the
//!   input queue.
//! - **Overload drops at the source.** With [`Overload::Drop`] (live), a full input queue makes
//!   [`Transcoder::push`] drop source video until the next keyframe (decoding needs the
//!   references) and report [`TranscodeEvent::SourceDropped`]: latency stays bounded by the
//!   queues and every rendition drops the same pictures, so GOPs stay aligned. With
//!   [`Overload::Block`] (files, tests) `push` waits instead.
//! - **Aligned keyframes.** The decode thread marks GOP starts (the source's keyframe times, or
//!   a fixed cadence); every encoder forces an IDR exactly there, and nowhere else (x264 runs
//!   with an infinite keyint and no scene-cut detection).
//! - A rendition stream ends (`Event::End`) when the transcoder finishes; an encoder failure
//!   ends that rendition with `Event::Error` and an event, leaving the others running.
//!
//! # Layout
//!
//! One file per kind of thread. This file holds the public types and the wiring:
//! [`Transcoder::new`] opens every decoder and encoder and spawns the threads,
//! [`Transcoder::finish`] joins them.
//!
//! - `input`: the caller's side of [`Transcoder`] (`push`, `gap`, `set_info`) and the overload
//!   policy; runs on the caller's thread and never blocks it with [`Overload::Drop`].
//! - `decode`: the decode thread (H.264 decode, shared processing, keyframe marks, fan-out).
//! - `rung`: one thread per rendition (scale, frame rate, x264).
//! - `audio`: the audio thread (AAC decode, filters, fdk-aac, to every rendition).
//! - `sink`: each rendition's bus producer, shared by its video thread and the audio path; no
//!   thread of its own.
//! - `pump`: [`attach`], a thread with a current-thread tokio runtime that feeds a
//!   [`Transcoder`] from a source bus.

// Without an encoder feature, the worker code that would drive it is compiled but unused.
#![cfg_attr(
    not(all(feature = "x264", feature = "fdk-aac")),
    allow(dead_code, unused_imports, unused_variables)
)]

mod audio;
mod decode;
mod input;
mod pump;
mod rung;
mod sink;

pub use pump::{Attached, attach};

use self::audio::AudioWorker;
use self::decode::DecodeWorker;
use self::input::VideoInputMsg;
use self::rung::{RungWorker, open_video_encoder};
use self::sink::{SharedProducer, fail, shared_sink};
use crate::Error;
use crate::decode::{DecoderOptions, Picture, VideoDecoder};
use crate::filter::{Size, VideoProcessing};
use crate::ladder::{AudioPlan, Ladder, SkipReason, Skipped};
use sigma_core::bus::{self, Window};
use sigma_core::{CodecConfig, Frame, MediaKind, StreamInfo, TrackInfo};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// What to do when the transcoder cannot keep up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overload {
    /// Drop source frames (up to the next keyframe) and report it: for live streams.
    #[default]
    Drop,
    /// Make [`Transcoder::push`] wait: for files and tests, where every frame must be encoded.
    Block,
}

/// Scheduling options.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Decoder threading.
    pub decoder: DecoderOptions,
    /// Source frames between the caller and the decode thread (default 30: one second at
    /// 30 fps, the most latency overload can add before frames are dropped).
    pub input_queue: usize,
    /// Decoded pictures queued for each rendition's encoder (default 4).
    pub rendition_queue: usize,
    /// Overload policy.
    pub overload: Overload,
    /// Window of every rendition's bus.
    pub window: Window,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            decoder: DecoderOptions::default(),
            input_queue: 30,
            rendition_queue: 4,
            overload: Overload::Drop,
            window: Window::default(),
        }
    }
}

/// Why source frames were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// The transcoder could not keep up.
    Overload,
    /// The source bus reported a gap (this consumer fell behind).
    Gap,
}

/// Something the playlist layer, logs or metrics may want to know.
#[derive(Clone, Debug, PartialEq)]
pub enum TranscodeEvent {
    /// A rendition of the ladder is not made for this source.
    RenditionSkipped {
        /// Rendition name.
        name: String,
        /// Why.
        reason: SkipReason,
    },
    /// Source frames were dropped before decoding; all renditions skip the same pictures.
    SourceDropped {
        /// Frames dropped (video and audio).
        frames: u64,
        /// Why.
        cause: DropCause,
    },
    /// A source frame could not be decoded (the decoder goes on).
    DecodeError {
        /// Source track.
        track: u32,
        /// What went wrong.
        message: String,
    },
    /// A rendition failed and its stream ended with an error.
    RenditionFailed {
        /// Rendition name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A rendition finished normally.
    RenditionFinished {
        /// Rendition name.
        name: String,
        /// Video frames it produced.
        frames: u64,
    },
}

/// One output stream of the ladder.
#[derive(Clone)]
pub struct RenditionOutput {
    /// Rendition name (`"source"` for the passthrough).
    pub name: String,
    /// Picture size.
    pub size: Size,
    /// Target video bitrate in bit/s (`None` for the passthrough).
    pub video_bitrate: Option<u32>,
    /// Stream info of the rendition (codec strings for the playlist come from here).
    pub info: Arc<StreamInfo>,
    /// Subscribe here to read the rendition, like any other stream.
    pub subscriber: bus::Subscriber,
}

impl std::fmt::Debug for RenditionOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenditionOutput")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("video_bitrate", &self.video_bitrate)
            .finish()
    }
}

/// What a running ladder offers.
pub struct Outputs {
    /// The renditions made, top first (the passthrough first when asked).
    pub renditions: Vec<RenditionOutput>,
    /// The renditions left out, with the reason.
    pub skipped: Vec<Skipped>,
    /// Events, bounded: when nobody reads them, the newest are dropped.
    pub events: Receiver<TranscodeEvent>,
}

#[derive(Clone)]
struct Events(SyncSender<TranscodeEvent>);

impl Events {
    fn send(&self, e: TranscodeEvent) {
        match &e {
            TranscodeEvent::RenditionSkipped { name, reason } => {
                tracing::info!(rendition = %name, %reason, "rendition skipped")
            }
            TranscodeEvent::SourceDropped { frames, cause } => {
                tracing::warn!(frames, ?cause, "source frames dropped")
            }
            TranscodeEvent::DecodeError { track, message } => {
                tracing::warn!(track, %message, "decode error")
            }
            TranscodeEvent::RenditionFailed { name, message } => {
                tracing::error!(rendition = %name, %message, "rendition failed")
            }
            TranscodeEvent::RenditionFinished { name, frames } => {
                tracing::debug!(rendition = %name, frames, "rendition finished")
            }
        }
        let _ = self.0.try_send(e);
    }
}

/// A running ladder: push source frames in, read renditions from their buses.
pub struct Transcoder {
    video: Option<SyncSender<VideoInputMsg>>,
    audio: Option<SyncSender<Frame>>,
    /// Producers that receive the source audio unchanged (audio copy mode).
    audio_copy: Vec<SharedProducer>,
    passthrough: Option<SharedProducer>,
    threads: Vec<(String, JoinHandle<()>)>,
    events: Events,
    overload: Overload,
    /// Dropping source video until the next keyframe, and why.
    dropping: Option<DropCause>,
    /// Every rendition's sink, to fail them all when the source fails.
    all_sinks: Vec<SharedProducer>,
    /// New stream info the decode thread has not been sent yet (its queue was full).
    pending_info: Option<Arc<StreamInfo>>,
    dropped: u64,
    info: Arc<StreamInfo>,
}

fn source_tracks(info: &StreamInfo) -> Result<(&TrackInfo, Option<&TrackInfo>), Error> {
    let video = info
        .primary_video()
        .ok_or_else(|| Error::Unsupported("the source has no video track".into()))?;
    if !matches!(video.codec(), CodecConfig::H264(_)) {
        return Err(Error::Unsupported("the source video is not H.264".into()));
    }
    let audio = info.tracks().iter().find(|t| t.kind() == MediaKind::Audio);
    Ok((video, audio))
}

impl Transcoder {
    /// Plans `ladder` for the source described by `source`, opens every decoder and encoder,
    /// and starts the threads. Renditions the source does not qualify for are left out (see
    /// [`Outputs::skipped`]; each is also logged and sent as an event).
    pub fn new(
        ladder: &Ladder,
        source: &Arc<StreamInfo>,
        options: Options,
    ) -> Result<(Transcoder, Outputs), Error> {
        let (video_track, audio_track) = source_tracks(source)?;
        let CodecConfig::H264(h264) = video_track.codec() else {
            return Err(Error::Unsupported("the source video is not H.264".into()));
        };
        let processed = ladder.processing.output_size(h264.width(), h264.height())?;
        let plan = ladder.plan(processed)?;
        let (events_tx, events_rx) = sync_channel(1024);
        let events = Events(events_tx);
        for s in &plan.skipped {
            events.send(TranscodeEvent::RenditionSkipped {
                name: s.name.clone(),
                reason: s.reason,
            });
        }
        let video_timescale = video_track.timescale();

        // Audio: copied, or encoded once for every rendition.
        let mut audio_out_track: Option<TrackInfo> = None;
        let mut audio_worker: Option<AudioWorker> = None;
        match (&ladder.audio, audio_track) {
            (_, None) => {}
            (AudioPlan::Copy, Some(t)) => audio_out_track = Some(t.clone()),
            (
                AudioPlan::Encode {
                    settings,
                    processing,
                },
                Some(t),
            ) => {
                let CodecConfig::Aac(aac) = t.codec() else {
                    return Err(Error::Unsupported("the source audio is not AAC".into()));
                };
                let out = processing.output(aac.output_sample_rate(), u16::from(aac.channels()))?;
                let w = AudioWorker::new(settings, processing.clone(), t, out)?;
                audio_out_track = Some(w.track.clone());
                audio_worker = Some(w);
            }
        }

        let mut renditions = Vec::new();
        let mut producers: Vec<SharedProducer> = Vec::new();
        let mut threads = Vec::new();
        let mut passthrough = None;
        let make_info = |video: TrackInfo| -> Result<Arc<StreamInfo>, Error> {
            let mut tracks = vec![video];
            tracks.extend(audio_out_track.clone());
            Ok(StreamInfo::new(1, tracks)?)
        };
        if ladder.passthrough {
            let info = make_info(video_track.clone())?;
            let (mut prod, sub) = bus::channel(options.window);
            prod.set_info(info.clone());
            let shared = shared_sink(prod, &info);
            producers.push(shared.clone());
            passthrough = Some(shared);
            renditions.push(RenditionOutput {
                name: "source".into(),
                size: Size {
                    width: h264.width(),
                    height: h264.height(),
                },
                video_bitrate: None,
                info,
                subscriber: sub,
            });
        }

        let mut rung_senders = Vec::new();
        for planned in &plan.renditions {
            let (encoder, track) = open_video_encoder(planned, video_timescale, h264.frame_rate())?;
            let info = make_info(track)?;
            let (mut prod, sub) = bus::channel(options.window);
            prod.set_info(info.clone());
            let shared = shared_sink(prod, &info);
            producers.push(shared.clone());
            renditions.push(RenditionOutput {
                name: planned.rendition.name.clone(),
                size: planned.size,
                video_bitrate: Some(planned.rendition.video.bitrate_kbps.saturating_mul(1000)),
                info,
                subscriber: sub,
            });
            let (tx, rx) = sync_channel::<Arc<Picture>>(options.rendition_queue.max(1));
            rung_senders.push(tx);
            let worker = RungWorker {
                name: planned.rendition.name.clone(),
                scale: VideoProcessing {
                    resize: Some(planned.size),
                    frame_rate: planned.rendition.frame_rate,
                    ..VideoProcessing::default()
                },
                timescale: video_timescale,
                encoder,
                producer: shared,
                events: events.clone(),
                last_pts: None,
                carry_keyframe: false,
            };
            let name = format!("sigma-rung-{}", planned.rendition.name);
            threads.push((name.clone(), spawn(&name, move || worker.run(rx))?));
        }

        let decoder =
            VideoDecoder::new(h264, video_timescale, video_track.id().0, options.decoder)?;
        let (video_tx, video_rx) = sync_channel(options.input_queue.max(1));
        let dw = DecodeWorker {
            decoder,
            decoder_options: options.decoder,
            avcc: h264.avcc().clone(),
            timescale: video_timescale,
            track: video_track.id(),
            processing: ladder.processing.clone(),
            graph: None,
            keyframes: ladder.keyframes,
            next_keyframe: None,
            outputs: rung_senders,
            events: events.clone(),
        };
        threads.push((
            "sigma-decode".into(),
            spawn("sigma-decode", move || dw.run(video_rx))?,
        ));

        let mut audio_tx = None;
        let mut audio_copy = Vec::new();
        if let Some(mut w) = audio_worker {
            let (tx, rx) = sync_channel(options.input_queue.max(1) * 2);
            audio_tx = Some(tx);
            w.producers = producers.clone();
            w.events = Some(events.clone());
            threads.push((
                "sigma-audio".into(),
                spawn("sigma-audio", move || w.run(rx))?,
            ));
        } else if audio_out_track.is_some() {
            audio_copy = producers.clone();
        }

        Ok((
            Transcoder {
                video: Some(video_tx),
                audio: audio_tx,
                audio_copy,
                passthrough,
                threads,
                events,
                overload: options.overload,
                dropping: None,
                all_sinks: producers,
                pending_info: None,
                dropped: 0,
                info: source.clone(),
            },
            Outputs {
                renditions,
                skipped: plan.skipped,
                events: events_rx,
            },
        ))
    }

    /// The source failed: every rendition ends with the same error (after what was already
    /// encoded), and the threads are waited for.
    pub fn fail(mut self, error: bus::StreamError) -> Result<(), Error> {
        for p in self.all_sinks.drain(..) {
            fail(&p, error.clone());
        }
        self.finish()
    }

    /// Ends the source: drains the decoder, filters and encoders, ends every rendition stream
    /// and waits for the threads.
    pub fn finish(mut self) -> Result<(), Error> {
        if let Some(cause) = self.dropping.take() {
            self.report_dropped(cause);
        }
        self.video = None;
        self.audio = None;
        self.audio_copy.clear();
        self.all_sinks.clear();
        self.passthrough = None;
        let mut result = Ok(());
        for (name, t) in self.threads.drain(..) {
            if t.join().is_err() && result.is_ok() {
                result = Err(Error::Worker {
                    name,
                    reason: "panicked".into(),
                });
            }
        }
        result
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::Worker {
            name: name.into(),
            reason: e.to_string(),
        })
}

#[cfg(all(test, feature = "x264", feature = "fdk-aac"))]
pub(super) mod tests {
    //! Helpers shared by the scheduler's tests, and the planning test.
    use super::*;
    pub(super) use crate::fixture::{self, Source};
    use sigma_core::TrackId;
    use std::sync::Mutex;

    /// Blocking on overload, and a window that holds the whole stream.
    pub(super) fn test_options() -> Options {
        Options {
            overload: Overload::Block,
            window: Window {
                max_groups: 10_000,
                max_frames: 1_000_000,
                max_bytes: 1 << 30,
            },
            ..Options::default()
        }
    }

    /// Runs `ladder` over the whole source; returns each rendition with every frame it got.
    pub(super) fn transcode(
        ladder: &Ladder,
        src: &Source,
    ) -> (Vec<(RenditionOutput, Vec<Frame>)>, Vec<TranscodeEvent>) {
        let (mut t, outputs) = Transcoder::new(ladder, &src.info, test_options()).unwrap();
        let mut consumers: Vec<_> = outputs
            .renditions
            .iter()
            .map(|r| r.subscriber.subscribe())
            .collect();
        for f in &src.frames {
            t.push(f.clone());
        }
        t.finish().unwrap();
        let mut out = Vec::new();
        for (r, c) in outputs.renditions.iter().zip(consumers.iter_mut()) {
            let mut frames = Vec::new();
            while let Some(ev) = c.pull() {
                match ev {
                    bus::Event::Frame(f) => frames.push(f),
                    bus::Event::Info(i) => assert_eq!(i.generation(), 1),
                    bus::Event::End => break,
                    other => panic!("{}: {other:?}", r.name),
                }
            }
            out.push((r.clone(), frames));
        }
        (out, outputs.events.try_iter().collect())
    }

    /// The first `seconds` of the ffmpeg-made source.
    pub(super) fn short_source(seconds: f64) -> Source {
        let src = fixture::read_mp4(&fixture::ffmpeg_source());
        let frames = src
            .frames
            .iter()
            .filter(|f| {
                let ts = src.info.track(f.track()).unwrap().timescale();
                (f.dts() as f64) < seconds * f64::from(ts)
            })
            .cloned()
            .collect();
        Source {
            info: src.info,
            frames,
        }
    }

    pub(super) fn video_pts(frames: &[Frame]) -> (Vec<i64>, Vec<i64>) {
        let mut all: Vec<i64> = frames
            .iter()
            .filter(|f| f.track() == TrackId(1))
            .map(|f| f.pts())
            .collect();
        let mut keys: Vec<i64> = frames
            .iter()
            .filter(|f| f.track() == TrackId(1) && f.is_keyframe())
            .map(|f| f.pts())
            .collect();
        all.sort();
        keys.sort();
        (all, keys)
    }

    pub(super) fn drain(c: &mut bus::Consumer) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            match c.pull() {
                Some(bus::Event::Frame(f)) => frames.push(f),
                Some(bus::Event::Info(_)) => {}
                Some(bus::Event::End) => return frames,
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_1080p_rung_is_skipped_for_a_720p_source() {
        let src = short_source(1.0);
        let mut ladder = Ladder::default_ladder();
        let mut top = ladder.renditions[0].clone();
        top.name = "1080p".into();
        top.height = 1080;
        top.video.bitrate_kbps = 5000;
        ladder.renditions.insert(0, top);
        // Capture the log while planning.
        #[derive(Clone, Default)]
        struct Log(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Log {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let (mut t, outputs) = tracing::subscriber::with_default(subscriber, || {
            Transcoder::new(&ladder, &src.info, Options::default()).unwrap()
        });
        let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains("rendition skipped")
                && logged.contains("1080p")
                && logged.contains("source is 1280x720; 1920x1080 would upscale"),
            "{logged}"
        );
        let names: Vec<_> = outputs.renditions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["720p", "480p", "360p"]);
        assert_eq!(outputs.skipped.len(), 1);
        assert_eq!(outputs.skipped[0].name, "1080p");
        let reason = outputs.skipped[0].reason.to_string();
        assert_eq!(reason, "source is 1280x720; 1920x1080 would upscale");
        assert_eq!(
            outputs.events.try_recv().unwrap(),
            TranscodeEvent::RenditionSkipped {
                name: "1080p".into(),
                reason: outputs.skipped[0].reason,
            }
        );
        // The rendition infos carry the encoders' real configuration.
        let CodecConfig::H264(c) = outputs.renditions[1].info.primary_video().unwrap().codec()
        else {
            panic!()
        };
        assert_eq!((c.width(), c.height(), c.profile_idc()), (854, 480, 77));
        for f in &src.frames {
            t.push(f.clone());
        }
        t.finish().unwrap();
    }
}
