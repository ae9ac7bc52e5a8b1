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

// Without an encoder feature, the worker code that would drive it is compiled but unused.
#![cfg_attr(
    not(all(feature = "x264", feature = "fdk-aac")),
    allow(dead_code, unused_imports, unused_variables)
)]

use crate::Error;
use crate::audio::AudioFilter;
use crate::decode::{AudioDecoder, DecoderOptions, Picture, VideoDecoder};
use crate::filter::{Size, VideoFilter, VideoInput, VideoProcessing};
use crate::ladder::{AudioPlan, KeyframePolicy, Ladder, Planned, SkipReason, Skipped};
use sigma_core::bus::{self, Producer, Window};
use sigma_core::{CodecConfig, Frame, MediaKind, StreamInfo, TrackId, TrackInfo};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
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

/// Most audio frames a rendition holds back while its video catches up (about 10 s of AAC at
/// 48 kHz); past this the oldest go out regardless.
const MAX_HELD_AUDIO: usize = 500;

/// The producing end of one rendition's bus, shared by its video thread and the audio path.
///
/// Video leaves the encoder later than the audio that goes with it (encoder lookahead, queues),
/// so audio frames are held until the rendition's video has reached their time: the bus stays
/// interleaved in time, and a consumer starting at the first GOP gets the audio from there on.
struct RungSink {
    producer: Option<Producer>,
    held_audio: std::collections::VecDeque<Frame>,
    /// Decode time of the newest video frame pushed, in seconds.
    video_time: Option<f64>,
    video_timescale: u32,
    audio_timescale: u32,
    video_track: TrackId,
}

impl RungSink {
    fn push(&mut self, frame: Frame) {
        if frame.track() == self.video_track {
            self.video_time = Some(frame.dts() as f64 / f64::from(self.video_timescale));
            self.send(frame);
            self.release(false);
        } else {
            self.held_audio.push_back(frame);
            self.release(false);
        }
    }

    fn release(&mut self, all: bool) {
        while let Some(a) = self.held_audio.front() {
            let t = a.pts() as f64 / f64::from(self.audio_timescale.max(1));
            let due = all
                || self.held_audio.len() > MAX_HELD_AUDIO
                || self.video_time.is_some_and(|v| t <= v);
            if !due {
                break;
            }
            if let Some(a) = self.held_audio.pop_front() {
                self.send(a);
            }
        }
    }

    fn send(&mut self, frame: Frame) {
        if let Some(p) = self.producer.as_mut() {
            // A frame larger than the window is refused by the bus; the rendition goes on.
            let _ = p.push(frame);
        }
    }
}

impl Drop for RungSink {
    fn drop(&mut self) {
        // The end of the stream: what audio is left goes out, then the bus ends.
        self.release(true);
    }
}

type SharedProducer = Arc<Mutex<RungSink>>;

fn shared_sink(producer: Producer, info: &StreamInfo) -> SharedProducer {
    let video = info.primary_video();
    let audio = info.tracks().iter().find(|t| t.kind() == MediaKind::Audio);
    Arc::new(Mutex::new(RungSink {
        producer: Some(producer),
        held_audio: std::collections::VecDeque::new(),
        video_time: None,
        video_timescale: video.map_or(90_000, |t| t.timescale()),
        audio_timescale: audio.map_or(48_000, |t| t.timescale()),
        video_track: video.map_or(TrackId(1), |t| t.id()),
    }))
}

fn push_to(p: &SharedProducer, frame: Frame) {
    p.lock().unwrap_or_else(|e| e.into_inner()).push(frame);
}

fn fail(p: &SharedProducer, error: &Error) {
    let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
    g.held_audio.clear();
    if let Some(prod) = g.producer.take() {
        prod.fail(Arc::new(std::io::Error::other(error.to_string())));
    }
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

enum VideoInputMsg {
    Frame(Frame),
    Info(Arc<StreamInfo>),
    Reset,
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

    /// Feeds one source frame (video track: H.264 AVCC; audio track: raw AAC). Frames of
    /// tracks the source info does not list are ignored.
    pub fn push(&mut self, frame: Frame) {
        let Some(track) = self.info.track(frame.track()) else {
            return;
        };
        match track.kind() {
            MediaKind::Video if Some(track.id()) == self.info.primary_video().map(|t| t.id()) => {
                self.push_video(frame)
            }
            MediaKind::Video => {}
            MediaKind::Audio => {
                for p in &self.audio_copy {
                    push_to(p, frame.clone());
                }
                if let Some(tx) = &self.audio {
                    let sent = match self.overload {
                        Overload::Block => tx.send(frame).is_ok(),
                        Overload::Drop => !matches!(tx.try_send(frame), Err(TrySendError::Full(_))),
                    };
                    if !sent {
                        self.events.send(TranscodeEvent::SourceDropped {
                            frames: 1,
                            cause: DropCause::Overload,
                        });
                    }
                }
            }
        }
    }

    fn push_video(&mut self, frame: Frame) {
        if let Some(p) = &self.passthrough {
            push_to(p, frame.clone());
        }
        let Some(tx) = &self.video else { return };
        if let Some(info) = self.pending_info.take()
            && let Err(TrySendError::Full(VideoInputMsg::Info(info))) =
                tx.try_send(VideoInputMsg::Info(info))
        {
            // Still no room: this frame cannot go before the info does.
            self.pending_info = Some(info);
            self.dropping.get_or_insert(DropCause::Overload);
            self.dropped += 1;
            return;
        }
        if self.dropping.is_some() && !frame.is_keyframe() {
            self.dropped += 1;
            return;
        }
        match self.overload {
            Overload::Block => {
                let _ = tx.send(VideoInputMsg::Frame(frame));
            }
            Overload::Drop => match tx.try_send(VideoInputMsg::Frame(frame)) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    self.dropping.get_or_insert(DropCause::Overload);
                    self.dropped += 1;
                    return;
                }
            },
        }
        if let Some(cause) = self.dropping.take() {
            self.report_dropped(cause);
        }
    }

    /// The source lost frames (a bus [`Gap`](bus::Event::Gap)): decoding restarts at the next
    /// keyframe.
    pub fn gap(&mut self, frames: u64) {
        self.events.send(TranscodeEvent::SourceDropped {
            frames,
            cause: DropCause::Gap,
        });
        if let Some(cause) = self.dropping.take() {
            self.report_dropped(cause);
        }
        self.dropping = Some(DropCause::Gap);
        if let Some(tx) = &self.video {
            let _ = tx.try_send(VideoInputMsg::Reset);
        }
    }

    /// New source stream info (a new generation): the video decoder is reopened if the avcC
    /// changed. Renditions keep their sizes and encoders. Never waits with
    /// [`Overload::Drop`]: when the queue is full the info goes ahead of the next frame.
    pub fn set_info(&mut self, info: Arc<StreamInfo>) {
        if let Some(tx) = &self.video {
            match self.overload {
                Overload::Block => {
                    let _ = tx.send(VideoInputMsg::Info(info.clone()));
                }
                Overload::Drop => {
                    if let Err(TrySendError::Full(_)) =
                        tx.try_send(VideoInputMsg::Info(info.clone()))
                    {
                        self.pending_info = Some(info.clone());
                    }
                }
            }
        }
        self.info = info;
    }

    fn report_dropped(&mut self, cause: DropCause) {
        let frames = std::mem::take(&mut self.dropped);
        if frames > 0 {
            self.events
                .send(TranscodeEvent::SourceDropped { frames, cause });
        }
    }

    /// The source failed: every rendition ends with the same error (after what was already
    /// encoded), and the threads are waited for.
    pub fn fail(mut self, error: bus::StreamError) -> Result<(), Error> {
        let error = Error::Unsupported(format!("source failed: {error}"));
        for p in self.all_sinks.drain(..) {
            fail(&p, &error);
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

#[cfg(feature = "x264")]
type VideoEncoder = crate::encode::H264Encoder;
#[cfg(not(feature = "x264"))]
type VideoEncoder = std::convert::Infallible;

#[cfg(feature = "x264")]
fn open_video_encoder(
    planned: &Planned,
    timescale: u32,
    source_fps: Option<f64>,
) -> Result<(VideoEncoder, TrackInfo), Error> {
    let mut settings = planned.rendition.video.clone();
    if let Some(fr) = planned.rendition.frame_rate {
        settings.frame_rate = fr;
    } else if let Some(fps) = source_fps.filter(|f| (1.0..=240.0).contains(f)) {
        // The source's rate, to a thousandth (29.97 → 29970/1000).
        settings.frame_rate = crate::filter::Ratio::new((fps * 1000.0).round() as u32, 1000);
    }
    let enc = crate::encode::H264Encoder::new(
        &settings,
        planned.size.width,
        planned.size.height,
        timescale,
        TrackId(1),
    )?;
    let track = TrackInfo::new(
        TrackId(1),
        timescale,
        CodecConfig::H264(enc.config().clone()),
    )?;
    Ok((enc, track))
}

#[cfg(not(feature = "x264"))]
fn open_video_encoder(
    _: &Planned,
    _: u32,
    _: Option<f64>,
) -> Result<(VideoEncoder, TrackInfo), Error> {
    Err(Error::FeatureDisabled("x264"))
}

struct DecodeWorker {
    decoder: VideoDecoder,
    decoder_options: DecoderOptions,
    avcc: bytes::Bytes,
    timescale: u32,
    track: TrackId,
    processing: VideoProcessing,
    graph: Option<VideoFilter>,
    keyframes: KeyframePolicy,
    next_keyframe: Option<i64>,
    outputs: Vec<SyncSender<Arc<Picture>>>,
    events: Events,
}

impl DecodeWorker {
    fn run(mut self, rx: Receiver<VideoInputMsg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                VideoInputMsg::Frame(f) => {
                    if let Err(e) = self.decoder.push(&f) {
                        self.decode_error(&e);
                    }
                    self.drain();
                }
                VideoInputMsg::Reset => self.decoder.reset(),
                VideoInputMsg::Info(info) => self.new_info(&info),
            }
        }
        let _ = self.decoder.finish();
        self.drain();
        if let Some(g) = &mut self.graph {
            if g.finish().is_ok() {
                self.drain_graph();
            }
        }
        // Dropping the senders ends the rendition threads.
    }

    fn decode_error(&self, e: &Error) {
        self.events.send(TranscodeEvent::DecodeError {
            track: self.track.0,
            message: e.to_string(),
        });
    }

    fn new_info(&mut self, info: &StreamInfo) {
        let Some(t) = info.track(self.track) else {
            return;
        };
        let CodecConfig::H264(c) = t.codec() else {
            return;
        };
        if c.avcc() == &self.avcc {
            return;
        }
        let _ = self.decoder.finish();
        self.drain();
        match VideoDecoder::new(c, self.timescale, self.track.0, self.decoder_options) {
            Ok(d) => {
                self.decoder = d;
                self.avcc = c.avcc().clone();
            }
            Err(e) => self.decode_error(&e),
        }
    }

    fn drain(&mut self) {
        loop {
            match self.decoder.pull() {
                Ok(Some(p)) => self.picture(p),
                Ok(None) => break,
                Err(e) => {
                    self.decode_error(&e);
                    break;
                }
            }
        }
    }

    fn picture(&mut self, mut p: Picture) {
        if let KeyframePolicy::Every { seconds } = self.keyframes {
            let step = ((seconds * f64::from(self.timescale)).round() as i64).max(1);
            let key = match self.next_keyframe {
                None => true,
                Some(next) => p.pts() >= next,
            };
            if key {
                let base = self.next_keyframe.unwrap_or(p.pts());
                let mut next = base;
                while next <= p.pts() {
                    next += step;
                }
                self.next_keyframe = Some(next);
            }
            p.set_keyframe(key);
        }
        if self.processing.is_identity() {
            self.send(p);
            return;
        }
        let rebuild = self.graph.as_ref().is_none_or(|g| !g.accepts(&p));
        if rebuild {
            let input = VideoInput {
                width: p.width(),
                height: p.height(),
                format: p.format(),
                timescale: self.timescale,
            };
            match VideoFilter::new(&self.processing, input) {
                Ok(g) => self.graph = Some(g),
                Err(e) => {
                    self.decode_error(&e);
                    return;
                }
            }
        }
        if let Some(g) = &mut self.graph {
            if let Err(e) = g.push(&p) {
                self.decode_error(&e);
            }
        }
        self.drain_graph();
    }

    fn drain_graph(&mut self) {
        loop {
            let next = match &mut self.graph {
                Some(g) => g.pull(),
                None => return,
            };
            match next {
                Ok(Some(p)) => self.send(p),
                Ok(None) => return,
                Err(e) => {
                    self.decode_error(&e);
                    return;
                }
            }
        }
    }

    fn send(&self, p: Picture) {
        let p = Arc::new(p);
        for tx in &self.outputs {
            // A rendition that failed has hung up; the others go on.
            let _ = tx.send(p.clone());
        }
    }
}

struct RungWorker {
    name: String,
    scale: VideoProcessing,
    timescale: u32,
    encoder: VideoEncoder,
    producer: SharedProducer,
    events: Events,
    last_pts: Option<i64>,
    carry_keyframe: bool,
}

impl RungWorker {
    #[cfg(not(feature = "x264"))]
    fn run(self, _rx: Receiver<Arc<Picture>>) {
        match self.encoder {}
    }

    #[cfg(feature = "x264")]
    fn run(mut self, rx: Receiver<Arc<Picture>>) {
        let mut graph: Option<VideoFilter> = None;
        let mut frames = 0u64;
        let result = (|| -> Result<(), Error> {
            while let Ok(p) = rx.recv() {
                if graph.as_ref().is_none_or(|g| !g.accepts(&p)) {
                    if let Some(old) = &mut graph {
                        old.finish()?;
                        self.drain(old, &mut frames)?;
                    }
                    graph = Some(VideoFilter::new(
                        &self.scale,
                        VideoInput {
                            width: p.width(),
                            height: p.height(),
                            format: p.format(),
                            timescale: self.timescale,
                        },
                    )?);
                }
                if let Some(g) = &mut graph {
                    g.push(&p)?;
                    self.drain(g, &mut frames)?;
                }
            }
            if let Some(g) = &mut graph {
                g.finish()?;
                self.drain(g, &mut frames)?;
            }
            self.encoder.finish()?;
            while let Some(f) = self.encoder.pull() {
                frames += 1;
                push_to(&self.producer, f);
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.events.send(TranscodeEvent::RenditionFinished {
                name: self.name.clone(),
                frames,
            }),
            Err(e) => {
                fail(&self.producer, &e);
                self.events.send(TranscodeEvent::RenditionFailed {
                    name: self.name.clone(),
                    message: e.to_string(),
                });
            }
        }
    }

    #[cfg(feature = "x264")]
    fn drain(&mut self, g: &mut VideoFilter, frames: &mut u64) -> Result<(), Error> {
        while let Some(p) = g.pull()? {
            // x264 needs strictly increasing timestamps; a broken source's repeats are dropped
            // (a keyframe mark moves to the next picture so GOPs still start).
            if self.last_pts.is_some_and(|last| p.pts() <= last) {
                self.carry_keyframe |= p.is_keyframe();
                continue;
            }
            self.last_pts = Some(p.pts());
            let key = p.is_keyframe() || std::mem::take(&mut self.carry_keyframe);
            self.encoder.push(&p, key)?;
            while let Some(f) = self.encoder.pull() {
                *frames += 1;
                push_to(&self.producer, f);
            }
        }
        Ok(())
    }
}

#[cfg(feature = "fdk-aac")]
type AudioEncoder = crate::encode::AacEncoder;
#[cfg(not(feature = "fdk-aac"))]
type AudioEncoder = std::convert::Infallible;

struct AudioWorker {
    track: TrackInfo,
    source: TrackInfo,
    processing: crate::audio::AudioProcessing,
    encoder: AudioEncoder,
    producers: Vec<SharedProducer>,
    events: Option<Events>,
}

impl AudioWorker {
    #[cfg(feature = "fdk-aac")]
    fn new(
        settings: &crate::encode::AacSettings,
        processing: crate::audio::AudioProcessing,
        source: &TrackInfo,
        out: crate::audio::AudioOutput,
    ) -> Result<Self, Error> {
        let encoder = crate::encode::AacEncoder::new(settings, out.rate, out.channels, TrackId(2))?;
        let track = TrackInfo::new(
            TrackId(2),
            out.rate,
            CodecConfig::Aac(encoder.config().clone()),
        )?;
        Ok(AudioWorker {
            track,
            source: source.clone(),
            processing,
            encoder,
            producers: Vec::new(),
            events: None,
        })
    }

    #[cfg(not(feature = "fdk-aac"))]
    fn new(
        _: &crate::encode::AacSettings,
        _: crate::audio::AudioProcessing,
        _: &TrackInfo,
        _: crate::audio::AudioOutput,
    ) -> Result<Self, Error> {
        Err(Error::FeatureDisabled("fdk-aac"))
    }

    #[cfg(not(feature = "fdk-aac"))]
    fn run(self, _rx: Receiver<Frame>) {
        match self.encoder {}
    }

    #[cfg(feature = "fdk-aac")]
    fn run(mut self, rx: Receiver<Frame>) {
        let result = (|| -> Result<(), Error> {
            let CodecConfig::Aac(c) = self.source.codec() else {
                return Err(Error::Unsupported("the source audio is not AAC".into()));
            };
            let mut decoder = AudioDecoder::new(c, self.source.timescale(), self.source.id().0)?;
            let mut graph: Option<AudioFilter> = None;
            while let Ok(f) = rx.recv() {
                if let Err(e) = decoder.push(&f) {
                    self.report(&e);
                }
                self.drain(&mut decoder, &mut graph)?;
            }
            decoder.finish()?;
            self.drain(&mut decoder, &mut graph)?;
            if let Some(g) = &mut graph {
                g.finish()?;
                self.drain_graph(g)?;
            }
            self.encoder.finish()?;
            self.emit();
            Ok(())
        })();
        if let Err(e) = result {
            self.report(&e);
            for p in &self.producers {
                fail(p, &e);
            }
        }
    }

    fn report(&self, e: &Error) {
        if let Some(ev) = &self.events {
            ev.send(TranscodeEvent::DecodeError {
                track: self.source.id().0,
                message: e.to_string(),
            });
        }
    }

    #[cfg(feature = "fdk-aac")]
    fn drain(
        &mut self,
        decoder: &mut AudioDecoder,
        graph: &mut Option<AudioFilter>,
    ) -> Result<(), Error> {
        loop {
            let block = match decoder.pull() {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.report(&e);
                    return Ok(());
                }
            };
            if graph.as_ref().is_none_or(|g| !g.accepts(&block)) {
                if let Some(old) = graph {
                    old.finish()?;
                    self.drain_graph(old)?;
                }
                *graph = Some(AudioFilter::new(
                    &self.processing,
                    crate::audio::AudioInput {
                        rate: block.rate(),
                        channels: block.channels(),
                        format: block.frame.format(),
                        timescale: self.source.timescale(),
                    },
                    block.pts(),
                )?);
            }
            if let Some(g) = graph {
                g.push(&block)?;
                self.drain_graph(g)?;
            }
        }
    }

    #[cfg(feature = "fdk-aac")]
    fn drain_graph(&mut self, g: &mut AudioFilter) -> Result<(), Error> {
        while let Some(b) = g.pull()? {
            self.encoder.push(&b)?;
            self.emit();
        }
        Ok(())
    }

    #[cfg(feature = "fdk-aac")]
    fn emit(&mut self) {
        while let Some(f) = self.encoder.pull() {
            for p in &self.producers {
                push_to(p, f.clone());
            }
        }
    }
}

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
    use super::*;
    use crate::fixture::{self, Source};

    fn test_options() -> Options {
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
    pub(crate) fn transcode(
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

    fn keyframe_times(p: &[fixture::Probed]) -> Vec<f64> {
        p.iter().filter(|f| f.key).map(|f| f.pts_time).collect()
    }

    /// The "Done when" check of issue 6 for one source.
    fn ladder_matches_source(label: &str, path: &std::path::Path, min_psnr: f64) {
        let src = fixture::read_mp4(path);
        let dir = fixture::tmp_dir();
        let src_flv = dir.join(format!("{label}-source.flv"));
        fixture::write_flv(&src_flv, &src.info, &src.frames);
        let src_probe = fixture::probe_video(&src_flv);
        let src_keys = keyframe_times(&src_probe);
        // The source's keyframes as the transcoder saw them (pts of sync samples).
        let mut want_keys: Vec<f64> = src
            .video()
            .filter(|f| f.is_keyframe())
            .map(|f| (sigma_core::time::rescale(f.pts(), 90_000, 1000) + 10_000) as f64 / 1000.0)
            .collect();
        want_keys.sort_by(f64::total_cmp);
        assert_eq!(
            src_keys, want_keys,
            "{label}: ffprobe sees the source's keyframes"
        );

        let ladder = Ladder::default_ladder();
        let (outs, events) = transcode(&ladder, &src);
        assert_eq!(outs.len(), 3, "{events:?}");
        let want = [(1280, 720, 2500), (854, 480, 1200), (640, 360, 600)];
        let seconds = src_probe.len() as f64 / 30.0;
        for ((r, frames), (w, h, kbps)) in outs.iter().zip(want) {
            let file = dir.join(format!("{label}-{}.flv", r.name));
            fixture::write_flv(&file, &r.info, frames);
            let probe = fixture::probe_video(&file);
            assert_eq!(
                probe.len(),
                src_probe.len(),
                "{label} {}: frame count",
                r.name
            );
            assert!(
                probe.iter().all(|f| (f.width, f.height) == (w, h)),
                "{label} {}: size",
                r.name
            );
            assert_eq!(
                keyframe_times(&probe),
                src_keys,
                "{label} {}: keyframe times",
                r.name
            );
            let bits: u64 = probe.iter().map(|f| f.size * 8).sum();
            let rate = bits as f64 / seconds / 1000.0;
            let err = (rate - f64::from(kbps)).abs() / f64::from(kbps);
            eprintln!(
                "{label} {}: {rate:.0} kbit/s (target {kbps}, {:.1} %)",
                r.name,
                err * 100.0
            );
            assert!(err < 0.15, "{label} {}: {rate:.0} kbit/s vs {kbps}", r.name);
            let audio = frames.iter().filter(|f| f.track() == TrackId(2)).count();
            let src_audio = src
                .frames
                .iter()
                .filter(|f| f.track() == TrackId(2))
                .count();
            assert_eq!(audio, src_audio, "{label} {}: audio copied", r.name);
        }
        let top = dir.join(format!("{label}-720p.flv"));
        let psnr = fixture::psnr(&top, &src_flv);
        eprintln!("{label} 720p PSNR vs source decode: {psnr:.2} dB");
        assert!(psnr > min_psnr, "{label}: PSNR {psnr:.2} dB");
    }

    /// Thresholds: minimum PSNR (ffmpeg's Y/U/V average) of the 2.5 Mbit/s 720p rung against
    /// the source decode. Measured 43.7 dB on testsrc2 and 32.9 dB on GStreamer's moving SMPTE
    /// bars (sharp edges in motion cost more bits); a misaligned frame or a wrong scale would
    /// fall far below either.
    #[test]
    fn ladder_from_ffmpeg_x264_high_bframes() {
        ladder_matches_source("ffmpeg", &fixture::ffmpeg_source(), 40.0);
    }

    #[test]
    fn ladder_from_gstreamer_x264enc() {
        ladder_matches_source("gst", &fixture::gst_source(), 30.0);
    }
}

#[cfg(all(test, feature = "x264", feature = "fdk-aac"))]
mod ladder_tests {
    use super::tests::transcode;
    use super::*;
    use crate::encode::{AacProfile, AacSettings, Preset};
    use crate::filter::Rotation;
    use crate::fixture::{self, Source};
    use crate::ladder::{Conditions, Rendition};

    /// The first `seconds` of the ffmpeg-made source.
    fn short_source(seconds: f64) -> Source {
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

    fn video_pts(frames: &[Frame]) -> (Vec<i64>, Vec<i64>) {
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

    #[test]
    fn overload_drops_at_the_source_and_keeps_renditions_aligned() {
        let src = short_source(3.0);
        let mut ladder = Ladder::default_ladder();
        for r in &mut ladder.renditions {
            r.video.preset = Preset::Slow;
        }
        let options = Options {
            input_queue: 2,
            rendition_queue: 1,
            overload: Overload::Drop,
            window: Window {
                max_groups: 1000,
                max_frames: 100_000,
                max_bytes: 1 << 30,
            },
            ..Options::default()
        };
        let (mut t, outputs) = Transcoder::new(&ladder, &src.info, options).unwrap();
        let mut consumers: Vec<_> = outputs
            .renditions
            .iter()
            .map(|r| r.subscriber.subscribe())
            .collect();
        // Three times faster than real time (a stand-in for a CPU that cannot keep up).
        for f in &src.frames {
            if f.track() == TrackId(1) {
                std::thread::sleep(std::time::Duration::from_millis(11));
            }
            t.push(f.clone());
        }
        t.finish().unwrap();
        let events: Vec<_> = outputs.events.try_iter().collect();
        let dropped: u64 = events
            .iter()
            .filter_map(|e| match e {
                TranscodeEvent::SourceDropped {
                    frames,
                    cause: DropCause::Overload,
                } => Some(*frames),
                _ => None,
            })
            .sum();
        assert!(dropped > 0, "{events:?}");
        let mut seen = Vec::new();
        for c in &mut consumers {
            let mut frames = Vec::new();
            loop {
                match c.pull() {
                    Some(bus::Event::Frame(f)) => frames.push(f),
                    Some(bus::Event::Info(_)) => {}
                    Some(bus::Event::End) => break,
                    other => panic!("{other:?}"),
                }
            }
            seen.push(video_pts(&frames));
        }
        let total = src.video().count();
        let (all, keys) = &seen[0];
        assert!(
            all.len() < total,
            "{} of {total} pictures encoded",
            all.len()
        );
        assert!(
            !keys.is_empty() && keys[0] == all[0],
            "starts with a keyframe"
        );
        for s in &seen[1..] {
            assert_eq!(s, &seen[0], "every rendition dropped the same pictures");
        }
    }

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

    fn drain(c: &mut bus::Consumer) -> Vec<Frame> {
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

    fn big_window_options() -> Options {
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

    #[test]
    fn corrupt_frames_are_events_not_crashes() {
        let mut src = short_source(2.0);
        let mut n = 0;
        for f in &mut src.frames {
            if f.track() != TrackId(1) {
                continue;
            }
            n += 1;
            let bad: Option<&'static [u8]> = match n {
                // A NAL length far past the payload.
                10 => Some(&[0, 0, 0xff, 0xff, 0x41, 0x9a, 0x00]),
                // Noise as a slice.
                11 => Some(&[0, 0, 0, 8, 0x41, 0xff, 0x13, 0x77, 0x00, 0xde, 0xad, 0xbe]),
                // Empty.
                12 => Some(&[]),
                _ => None,
            };
            if let Some(bad) = bad {
                *f = Frame::new(
                    f.track(),
                    f.dts(),
                    f.pts(),
                    f.is_keyframe(),
                    bytes::Bytes::from_static(bad),
                );
            }
        }
        let mut ladder = Ladder::default_ladder();
        ladder.renditions.truncate(2);
        let (mut t, outputs) = Transcoder::new(&ladder, &src.info, big_window_options()).unwrap();
        let mut consumers: Vec<_> = outputs
            .renditions
            .iter()
            .map(|r| r.subscriber.subscribe())
            .collect();
        for f in &src.frames {
            t.push(f.clone());
        }
        t.finish().unwrap();
        let events: Vec<_> = outputs.events.try_iter().collect();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, TranscodeEvent::DecodeError { track: 1, .. })),
            "{events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, TranscodeEvent::RenditionFailed { .. }))
        );
        let a = video_pts(&drain(&mut consumers[0]));
        let b = video_pts(&drain(&mut consumers[1]));
        assert!(
            a.0.len() > src.video().count() / 2,
            "{} pictures",
            a.0.len()
        );
        assert_eq!(a, b, "both renditions got the same pictures");
    }

    #[test]
    fn source_resolution_change_mid_stream() {
        let a = short_source(1.0);
        let b = fixture::read_mp4(&fixture::ffmpeg_source_480p());
        // B starts one frame after A's last picture, in both decode and presentation order.
        let offset = a.video().map(|f| f.pts()).max().unwrap() + 3000
            - b.video().map(|f| f.dts()).min().unwrap();
        let mut ladder = Ladder::default_ladder();
        ladder.renditions.remove(0);
        let (mut t, outputs) = Transcoder::new(&ladder, &a.info, big_window_options()).unwrap();
        let mut consumers: Vec<_> = outputs
            .renditions
            .iter()
            .map(|r| r.subscriber.subscribe())
            .collect();
        for f in &a.frames {
            t.push(f.clone());
        }
        let b_info = StreamInfo::new(2, b.info.tracks().to_vec()).unwrap();
        t.set_info(b_info.clone());
        for f in b.video() {
            t.push(f.clone().shifted(offset));
        }
        t.finish().unwrap();
        let events: Vec<_> = outputs.events.try_iter().collect();
        assert!(
            !events.iter().any(|e| matches!(
                e,
                TranscodeEvent::DecodeError { .. } | TranscodeEvent::RenditionFailed { .. }
            )),
            "{events:?}"
        );
        let total = a.video().count() + b.video().count();
        for (r, c) in outputs.renditions.iter().zip(&mut consumers) {
            let frames = drain(c);
            assert_eq!(video_pts(&frames).0.len(), total, "{}", r.name);
            let file = fixture::tmp_dir().join(format!("switch-{}.flv", r.name));
            fixture::write_flv(&file, &r.info, &frames);
            let probe = fixture::probe_video(&file);
            assert_eq!(probe.len(), total);
            assert!(
                probe
                    .iter()
                    .all(|p| (p.width, p.height) == (r.size.width, r.size.height)),
                "{}: size kept across the switch",
                r.name
            );
        }
    }

    /// Each rendition through sigma-llhls's segmenter (ultra-low mode: 2 s segments, 334 ms
    /// parts): the init segment carries the encoder's avcC, and every rendition's segments and
    /// parts start and end at the same times, so a player can switch at any part.
    #[test]
    fn renditions_package_into_aligned_llhls_segments() {
        use sigma_llhls::segmenter::Output as Seg;
        let src = fixture::read_mp4(&fixture::ffmpeg_source());
        let mut ladder = Ladder::default_ladder();
        ladder.keyframes = KeyframePolicy::Every { seconds: 2.0 };
        let (outs, _) = transcode(&ladder, &src);
        let mut layouts = Vec::new();
        for (r, frames) in &outs {
            let cfg = sigma_llhls::SegmenterConfig::from_timing(
                sigma_llhls::LatencyMode::UltraLow.timing(),
            );
            let mut seg = sigma_llhls::Segmenter::new(cfg);
            seg.set_info(r.info.clone()).unwrap();
            let now = std::time::SystemTime::UNIX_EPOCH;
            let mut out = Vec::new();
            for f in frames {
                seg.push(f.clone(), now).unwrap();
                out.extend(std::iter::from_fn(|| seg.pull()));
            }
            seg.finish().unwrap();
            out.extend(std::iter::from_fn(|| seg.pull()));
            let init = out
                .iter()
                .find_map(|o| match o {
                    Seg::Init(i) if i.track == TrackId(1) => Some(i),
                    _ => None,
                })
                .expect("a video init segment");
            assert_eq!(
                &init.codec,
                r.info.primary_video().unwrap().codec(),
                "{}",
                r.name
            );
            let parts: Vec<(u64, u32, u64, u64, bool)> = out
                .iter()
                .filter_map(|o| match o {
                    Seg::Part(p) if p.track == TrackId(1) => Some((
                        p.msn,
                        p.index,
                        p.start,
                        p.duration,
                        p.segment_start.is_some(),
                    )),
                    _ => None,
                })
                .collect();
            let segments = parts.iter().filter(|p| p.4).count();
            assert!(segments >= 3, "{}: {segments} segments", r.name);
            layouts.push((r.name.clone(), parts));
        }
        for (name, parts) in &layouts[1..] {
            assert_eq!(parts, &layouts[0].1, "{name} vs {}", layouts[0].0);
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
            Some(bus::Event::Error(e)) => assert!(e.to_string().contains("publisher vanished")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shared_processing_rotates_before_the_renditions() {
        let src = short_source(0.5);
        let mut ladder = Ladder::default_ladder();
        ladder.processing.rotate = Some(Rotation::Clockwise90);
        ladder.renditions = vec![Rendition {
            name: "portrait".into(),
            height: 640,
            width: None,
            frame_rate: None,
            video: crate::encode::H264Settings {
                bitrate_kbps: 800,
                ..Default::default()
            },
            conditions: Conditions::default(),
        }];
        let (outs, _) = transcode(&ladder, &src);
        assert_eq!(
            outs[0].0.size,
            Size {
                width: 360,
                height: 640
            }
        );
        let dir = fixture::tmp_dir();
        let file = dir.join("portrait.flv");
        fixture::write_flv(&file, &outs[0].0.info, &outs[0].1);
        let probe = fixture::probe_video(&file);
        assert_eq!(probe.len(), src.video().count());
        assert!(probe.iter().all(|p| (p.width, p.height) == (360, 640)));
    }
}
