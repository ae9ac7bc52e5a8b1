//! The origin: a registry of live streams, one tokio task per published bus, and the waits of
//! blocking playlist reload and preload hints (RFC 8216bis §6.2.5.2, §6.2.6).
//!
//! This is the IO layer around the sans-IO [`Segmenter`] and [`Rendition`]: the publish task
//! reads a [`bus::Consumer`], stamps frames with the wall clock, and routes the segmenter's
//! output into the renditions' windows. Each rendition has a `tokio::sync::watch` channel whose
//! value grows on every change of that rendition; a waiting request is a future parked on it, so
//! thousands of waiting requests cost no thread each, a new part wakes only the requests of its
//! own rendition, in O(waiters). Rendered playlists are cached per rendition version (and the
//! other renditions' versions, for their reports), so a wake of N waiters renders once.

use crate::archive::{ArchiveTee, Archived, ArchivedInit};
use crate::directive::{Directives, Skip};
use crate::playlist::{
    AudioMedia, Readiness, Rendition, RenditionConfig, RenditionReport, Variant,
};
use crate::segmenter::{Output, Segmenter, SegmenterConfig, segment_limit_for};
use crate::{Error, LatencyMode, Timing};
use bytes::Bytes;
use sigma_core::bus::{self, Event};
use sigma_core::{CodecConfig, MediaKind, StreamKey, TrackId};
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the window coherent (every mutation completes
    // before anything that can panic), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a stream's renditions are published.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// Durations and window sizes. Fixed by the first publication of a stream.
    pub timing: Timing,
    /// Name of the video rendition (its playlist is `{variant}.m3u8`).
    pub variant: String,
    /// Also publish the bus's audio track as the stream's audio rendition `audio`.
    pub audio: bool,
    /// Where every finished init and segment of these renditions also goes (DVR, catch-up);
    /// none by default.
    pub archive: Option<ArchiveTee>,
}

impl PublishOptions {
    /// Publishes video as `video` and audio as `audio` with a latency preset.
    pub fn new(mode: LatencyMode) -> Self {
        PublishOptions {
            timing: mode.timing(),
            variant: "video".into(),
            audio: true,
            archive: None,
        }
    }
}

/// The media of one rendition and its render cache.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) kind: MediaKind,
    pub(crate) state: Mutex<Rendition>,
    cache: Mutex<Option<Cached>>,
    /// Grows on every change of this rendition; its waiters park here, so a new audio part
    /// does not wake requests waiting for video.
    changed: watch::Sender<u64>,
}

impl Slot {
    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }
}

struct Cached {
    /// This rendition's version and the sum of the others' (their reports).
    version: (u64, u64),
    skip: Skip,
    plain: Bytes,
    gzip: Option<Bytes>,
}

/// One live stream: its renditions and the change signal waiters park on.
pub(crate) struct Stream {
    pub(crate) timing: Timing,
    /// Names the stream's publication in media URIs, so caches never mix two publications.
    pub(crate) epoch: String,
    slots: RwLock<Vec<Arc<Slot>>>,
    /// Grows on every change of any rendition (multivariant waits).
    changed: watch::Sender<u64>,
    /// Requests parked on `changed` now.
    waiting: AtomicUsize,
    /// Comment lines for the multivariant playlist (see [`Origin::set_notes`]).
    notes: Mutex<Vec<String>>,
    /// The target duration, fixed once the first segment is complete (see
    /// [`Stream::fix_target`]).
    target: std::sync::OnceLock<u64>,
}

impl Stream {
    pub(crate) fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|s| s.name == name)
            .cloned()
    }

    fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    fn bump_all(&self) {
        for slot in self.slots() {
            slot.bump();
        }
        self.bump();
    }

    fn ended(&self) -> bool {
        self.slots().iter().all(|s| lock(&s.state).is_ended())
    }

    /// Fixes the stream's target duration once any rendition has a complete segment: the
    /// longest measured so far (the configured target, or the publisher's longer keyframe
    /// interval). §6.2.1: EXT-X-TARGETDURATION MUST NOT change; §6.2.4: it is the same in every
    /// rendition. From then on the segmenters cut every segment short enough that its rounded
    /// duration stays within it (see [`run`]). Renditions added later get it from their
    /// publish task before their first segment.
    fn fix_target(&self) -> Option<u64> {
        if let Some(&t) = self.target.get() {
            return Some(t);
        }
        let slots = self.slots();
        if !slots.iter().any(|s| lock(&s.state).has_segment()) {
            return None;
        }
        Some(*self.target.get_or_init(|| {
            let td = slots
                .iter()
                .map(|s| lock(&s.state).measured_target_duration())
                .max()
                .unwrap_or(1);
            for s in &slots {
                lock(&s.state).fix_target_duration(td);
            }
            td
        }))
    }

    /// The stream's target duration: the fixed one, or before that the longest of its
    /// renditions'.
    pub(crate) fn target_duration(&self) -> u64 {
        if let Some(&t) = self.target.get() {
            return t;
        }
        self.slots()
            .iter()
            .map(|s| lock(&s.state).target_duration())
            .max()
            .unwrap_or_else(|| self.timing.segment_target.as_secs().max(1))
    }

    /// Target duration for timeouts: 3 target durations of the longest rendition (§6.2.5.2).
    pub(crate) fn block_timeout(&self) -> Duration {
        Duration::from_secs(3 * self.target_duration())
    }

    /// How long the media of this stream stay fetchable once it is removed or replaced: the
    /// playlist's duration plus the 3 target durations evicted parts are kept (§6.2.1, §6.2.2).
    fn retention(&self) -> Duration {
        let segments = self.timing.playlist_segments as u64 + 3;
        Duration::from_secs(segments.saturating_mul(self.target_duration()))
    }
}

/// Why a request could not be answered with media.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such stream, rendition or file (404).
    NotFound,
    /// A malformed or impossible request (400).
    BadRequest(Error),
    /// The media did not arrive within 3 target durations (503).
    Unavailable,
}

/// A served file: its chunks (not copied), and what it is.
pub struct Served {
    /// The bytes, as a list of chunks.
    pub chunks: Vec<Bytes>,
    /// Video or audio (for the content type).
    pub kind: MediaKind,
}

/// A rendered playlist.
pub struct PlaylistText {
    /// The text, gzip-compressed when asked and `gzipped` is set.
    pub body: Bytes,
    /// Whether `body` is gzip.
    pub gzipped: bool,
    /// The request blocked (it carried `_HLS_msn`).
    pub blocking: bool,
    /// The stream's segment target duration in seconds (for cache lifetimes).
    pub target_duration: u64,
    /// The stream has parts (LL-HLS).
    pub low_latency: bool,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("kind", &self.kind)
            .field("chunks", &self.chunks.len())
            .field("len", &self.chunks.iter().map(Bytes::len).sum::<usize>())
            .finish()
    }
}

impl std::fmt::Debug for PlaylistText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaylistText")
            .field("len", &self.body.len())
            .field("gzipped", &self.gzipped)
            .field("blocking", &self.blocking)
            .finish()
    }
}

/// The registry of live streams. Cloning shares it.
#[derive(Clone, Default)]
pub struct Origin {
    streams: Arc<RwLock<HashMap<String, Arc<Stream>>>>,
    /// Streams removed or replaced by a new publication, whose media stay fetchable (by their
    /// epoch's URIs) for as long as a playlist a viewer already holds may list them (§6.2.1:
    /// the media of a removed playlist remain available for at least its duration).
    retired: Arc<Mutex<Vec<Retired>>>,
}

struct Retired {
    name: String,
    stream: Arc<Stream>,
    until: std::time::Instant,
}

/// A running publication: the task that segments one bus. Dropping it leaves the task running
/// until the bus ends; [`Publication::stop`] ends it now.
#[derive(Debug)]
pub struct Publication {
    task: JoinHandle<()>,
}

impl Publication {
    /// Stops segmenting; the renditions end (`EXT-X-ENDLIST`) with what they hold.
    pub fn stop(self) {
        self.task.abort();
    }

    /// Waits for the bus to end and its renditions to be finished.
    pub async fn finished(self) {
        let _ = self.task.await;
    }
}

static EPOCHS: AtomicU64 = AtomicU64::new(0);

fn new_epoch() -> String {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!(
        "{:x}",
        t.wrapping_mul(1000) + EPOCHS.fetch_add(1, Ordering::Relaxed) % 1000
    )
}

impl Origin {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names of the streams published now.
    pub fn streams(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    pub(crate) fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The target duration of `stream` in seconds (for cache lifetimes), if it is published.
    pub fn target_duration(&self, stream: &str) -> Option<u64> {
        self.stream(stream).map(|s| s.target_duration())
    }

    /// Requests (blocking playlist reloads and hinted-part requests) waiting on
    /// `stream` now.
    pub fn waiting(&self, stream: &str) -> usize {
        self.stream(stream)
            .map_or(0, |s| s.waiting.load(Ordering::Relaxed))
    }

    /// Removes a stream: its playlists answer 404 from now on. Its publication tasks stop when
    /// their buses end.
    ///
    /// Its media (segments, parts, init segments) stay fetchable for the playlist's duration
    /// plus 3 target durations, so viewers holding its last playlist can finish it (§6.2.1).
    pub fn remove(&self, stream: &str) {
        let removed = self
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(stream);
        if let Some(s) = removed {
            s.bump_all();
            self.retire(stream, s);
        }
    }

    /// Keeps a removed or replaced stream's media fetchable for [`Stream::retention`], and
    /// forgets the retired streams whose time is up.
    fn retire(&self, name: &str, stream: Arc<Stream>) {
        let now = std::time::Instant::now();
        let until = now + stream.retention();
        let mut retired = lock(&self.retired);
        retired.retain(|r| r.until > now);
        retired.push(Retired {
            name: name.to_owned(),
            stream,
            until,
        });
    }

    /// A retired stream by name and epoch, while its media are still kept.
    fn retired(&self, name: &str, epoch: &str) -> Option<Arc<Stream>> {
        let now = std::time::Instant::now();
        let mut retired = lock(&self.retired);
        retired.retain(|r| r.until > now);
        retired
            .iter()
            .find(|r| r.name == name && r.stream.epoch == epoch)
            .map(|r| r.stream.clone())
    }

    /// Publishes a bus as renditions of `stream`: its primary video track as
    /// `{opts.variant}.m3u8` and, with `opts.audio`, its first audio track as `audio.m3u8`.
    /// Starts a tokio task (so must be called within a runtime) that reads a new consumer of
    /// `subscriber` until the bus ends.
    ///
    /// Publishing another variant on a live stream adds a rendition (for ABR ladders); a stream
    /// whose renditions have all ended is replaced by a new publication.
    ///
    /// Errors: [`Error::InvalidName`] for a name [`StreamKey::valid_name`] refuses (or a variant
    /// named `index`, which names the multivariant playlist); [`Error::AlreadyPublished`] when the rendition exists.
    pub fn publish(
        &self,
        stream: &str,
        subscriber: &bus::Subscriber,
        opts: PublishOptions,
    ) -> Result<Publication, Error> {
        for name in [stream, opts.variant.as_str()] {
            if !StreamKey::valid_name(name) {
                return Err(Error::InvalidName(name.to_owned()));
            }
        }
        if opts.variant == "index" || (opts.audio && opts.variant == "audio") {
            return Err(Error::InvalidName(opts.variant));
        }
        let timing = opts.timing.sanitized();
        let (stream_arc, video, audio) = {
            let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
            let existing = streams.get(stream).filter(|s| !s.ended()).cloned();
            let s = match existing {
                Some(s) => s,
                None => {
                    let s = Arc::new(Stream {
                        timing,
                        epoch: new_epoch(),
                        slots: RwLock::new(Vec::new()),
                        changed: watch::channel(0).0,
                        waiting: AtomicUsize::new(0),
                        notes: Mutex::new(Vec::new()),
                        target: std::sync::OnceLock::new(),
                    });
                    if let Some(old) = streams.insert(stream.to_owned(), s.clone()) {
                        old.bump_all();
                        self.retire(stream, old);
                    }
                    s
                }
            };
            let mut slots = s.slots.write().unwrap_or_else(|p| p.into_inner());
            if slots.iter().any(|x| x.name == opts.variant) {
                return Err(Error::AlreadyPublished(format!(
                    "{stream}/{}",
                    opts.variant
                )));
            }
            if opts.audio && slots.iter().any(|x| x.name == "audio") {
                return Err(Error::AlreadyPublished(format!("{stream}/audio")));
            }
            if slots.len() >= 32 {
                return Err(Error::LimitExceeded {
                    what: "renditions per stream",
                    limit: 32,
                });
            }
            let mk = |name: &str, kind| {
                Arc::new(Slot {
                    name: name.to_owned(),
                    kind,
                    state: Mutex::new(Rendition::new(RenditionConfig {
                        name: name.to_owned(),
                        uri_prefix: format!("{name}/{}/", s.epoch),
                        timing: s.timing,
                    })),
                    cache: Mutex::new(None),
                    changed: watch::channel(0).0,
                })
            };
            let video = mk(&opts.variant, MediaKind::Video);
            slots.push(video.clone());
            let audio = opts.audio.then(|| mk("audio", MediaKind::Audio));
            if let Some(a) = &audio {
                slots.push(a.clone());
            }
            drop(slots);
            (s, video, audio)
        };
        let consumer = subscriber.subscribe();
        let cfg = SegmenterConfig::from_timing(stream_arc.timing);
        // The segmenter's and this task's warnings name the stream and rendition.
        let span = tracing::info_span!("package", stream, rendition = %opts.variant);
        let task = tokio::spawn(tracing::Instrument::instrument(
            run(stream_arc, consumer, video, audio, cfg, opts.archive),
            span,
        ));
        Ok(Publication { task })
    }

    /// Sets comment lines shown in `stream`'s multivariant playlist (for example why a ladder
    /// rendition was left out). Does nothing for an unknown stream.
    pub fn set_notes(&self, stream: &str, notes: Vec<String>) {
        if let Some(s) = self.stream(stream) {
            *lock(&s.notes) = notes;
            s.bump_all();
        }
    }

    /// The multivariant playlist of `stream` (§4.4.6), waiting (up to 3 target durations) until
    /// every video rendition has a complete segment, so bandwidths are measured.
    pub async fn multivariant(&self, stream: &str) -> Result<Bytes, Refusal> {
        let s = self.stream(stream).ok_or(Refusal::NotFound)?;
        let timeout = s.block_timeout();
        wait(&s, s.changed.subscribe(), timeout, || {
            let slots = s.slots();
            // Every video rendition that carries video has a segment (bandwidth measured); an
            // audio-only stream's video rendition never gets an init segment, so it needs the
            // audio's segment instead.
            let done = |x: &Slot| {
                let st = lock(&x.state);
                st.has_segment() || st.is_ended()
            };
            let ready = slots.iter().any(|x| done(x))
                && slots
                    .iter()
                    .filter(|x| x.kind == MediaKind::Video)
                    .all(|x| {
                        let st = lock(&x.state);
                        st.has_segment() || st.is_ended() || st.latest_init().is_none()
                    });
            if ready {
                s.fix_target();
            }
            Ok(ready.then(|| render_multivariant(&slots, &lock(&s.notes))))
        })
        .await
    }

    /// A media playlist, blocking per the directives (§6.2.5.2). `gzip`: the client accepts
    /// gzip.
    pub async fn media_playlist(
        &self,
        stream: &str,
        rendition: &str,
        d: Directives,
        gzip: bool,
    ) -> Result<PlaylistText, Refusal> {
        let s = self.stream(stream).ok_or(Refusal::NotFound)?;
        let slot = s.slot(rendition).ok_or(Refusal::NotFound)?;
        let timeout = s.block_timeout();
        let skip = d.skip;
        let (body, gzipped) = wait(&s, slot.changed.subscribe(), timeout, || {
            let ready = {
                let st = lock(&slot.state);
                match d.msn {
                    Some(msn) => st.readiness(msn, d.part)? == Readiness::Ready,
                    None => st.has_segment() || st.is_ended(),
                }
            };
            if ready {
                s.fix_target();
            }
            Ok(ready.then(|| render_cached(&s, &slot, skip, gzip)))
        })
        .await?;
        let st = lock(&slot.state);
        Ok(PlaylistText {
            body,
            gzipped,
            blocking: d.is_blocking(),
            target_duration: st.target_duration(),
            low_latency: st.config().timing.part_target.is_some(),
        })
    }

    /// An init segment.
    pub fn init(
        &self,
        stream: &str,
        rendition: &str,
        epoch: &str,
        generation: u64,
    ) -> Result<Served, Refusal> {
        let (_, slot) = self.file_slot(stream, rendition, epoch)?;
        let data = lock(&slot.state)
            .init(generation)
            .ok_or(Refusal::NotFound)?;
        Ok(Served {
            chunks: vec![data],
            kind: slot.kind,
        })
    }

    /// A complete segment. Segments are never hinted, so one not complete is 404 at once
    /// (§6.2.6: Not Found for what is neither available nor hinted).
    pub async fn segment(
        &self,
        stream: &str,
        rendition: &str,
        epoch: &str,
        msn: u64,
    ) -> Result<Served, Refusal> {
        let (s, slot) = self.file_slot(stream, rendition, epoch)?;
        self.file(&s, &slot, |r| r.segment(msn), |_| false).await
    }

    /// A part; a request for the part the playlist hints (`EXT-X-PRELOAD-HINT`) waits until it
    /// is complete and is then answered at once (§6.2.6). Any other part that does not exist is
    /// 404 at once, as is a hinted part that the segmenter did not make (the segment ended
    /// before it).
    pub async fn part(
        &self,
        stream: &str,
        rendition: &str,
        epoch: &str,
        msn: u64,
        index: u64,
    ) -> Result<Served, Refusal> {
        let (s, slot) = self.file_slot(stream, rendition, epoch)?;
        self.file(
            &s,
            &slot,
            |r| r.part(msn, index),
            |r| r.preload_hint() == Some((msn, index)),
        )
        .await
    }

    fn file_slot(
        &self,
        stream: &str,
        rendition: &str,
        epoch: &str,
    ) -> Result<(Arc<Stream>, Arc<Slot>), Refusal> {
        let s = match self.stream(stream) {
            Some(s) if s.epoch == epoch => s,
            _ => self.retired(stream, epoch).ok_or(Refusal::NotFound)?,
        };
        let slot = s.slot(rendition).ok_or(Refusal::NotFound)?;
        Ok((s, slot))
    }

    /// Serves what `get` finds, waiting while `hinted` says the file is the one the playlist
    /// hints and not complete yet.
    async fn file(
        &self,
        s: &Arc<Stream>,
        slot: &Arc<Slot>,
        get: impl Fn(&Rendition) -> Option<Vec<Bytes>>,
        hinted: impl Fn(&Rendition) -> bool,
    ) -> Result<Served, Refusal> {
        let timeout = s.block_timeout();
        let chunks = wait(s, slot.changed.subscribe(), timeout, || {
            let st = lock(&slot.state);
            if let Some(c) = get(&st) {
                return Ok(Some(c));
            }
            if hinted(&st) {
                Ok(None)
            } else {
                Err(Refusal::NotFound)
            }
        })
        .await?;
        Ok(Served {
            chunks,
            kind: slot.kind,
        })
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::BadRequest(e)
    }
}

/// Waits until `check` answers, the stream changes (and `check` is asked again), or `timeout`
/// passes (503). A removed stream answers 404.
async fn wait<T>(
    s: &Arc<Stream>,
    mut rx: watch::Receiver<u64>,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>, Refusal>,
) -> Result<T, Refusal> {
    struct Parked<'a>(&'a AtomicUsize, bool);
    impl Drop for Parked<'_> {
        fn drop(&mut self) {
            if self.1 {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
    let mut parked = Parked(&s.waiting, false);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        rx.borrow_and_update();
        if let Some(v) = check()? {
            return Ok(v);
        }
        if !parked.1 {
            parked.1 = true;
            s.waiting.fetch_add(1, Ordering::Relaxed);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Refusal::NotFound),
            Err(_) => return Err(Refusal::Unavailable),
        }
    }
}

fn gzip_bytes(data: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(data).ok()?;
    enc.finish().ok().map(Bytes::from)
}

/// Renders (or takes from the cache) a media playlist with reports on the other renditions.
fn render_cached(s: &Stream, slot: &Slot, skip: Skip, gzip: bool) -> (Bytes, bool) {
    // The rendition's own version is part of the key: a waiter that saw a new part must never
    // get a playlist rendered before it, even if the stream-wide bump has not happened yet.
    let others = |s: &Stream| {
        s.slots()
            .iter()
            .filter(|o| o.name != slot.name)
            .fold(0u64, |acc, o| acc.wrapping_add(lock(&o.state).version()))
    };
    // Never hold one rendition's lock while taking another's: a video and an audio request
    // of the same stream would take them in opposite orders and deadlock.
    let own = lock(&slot.state).version();
    let version = (own, others(s));
    let mut cache = lock(&slot.cache);
    let hit = cache
        .as_ref()
        .is_some_and(|c| c.version == version && c.skip == skip);
    if !hit {
        let reports: Vec<RenditionReport> = s
            .slots()
            .iter()
            .filter(|o| o.name != slot.name)
            .filter_map(|o| lock(&o.state).report())
            .collect();
        let (text, own) = {
            let st = lock(&slot.state);
            (st.render_skip(skip, &reports), st.version())
        };
        *cache = Some(Cached {
            version: (own, version.1),
            skip,
            plain: Bytes::from(text),
            gzip: None,
        });
    }
    let Some(c) = cache.as_mut() else {
        return (Bytes::new(), false);
    };
    if gzip {
        if c.gzip.is_none() {
            c.gzip = gzip_bytes(&c.plain);
        }
        if let Some(g) = &c.gzip {
            return (g.clone(), true);
        }
    }
    (c.plain.clone(), false)
}

fn render_multivariant(slots: &[Arc<Slot>], notes: &[String]) -> Bytes {
    let audio = slots
        .iter()
        .find(|s| s.kind == MediaKind::Audio && lock(&s.state).latest_init().is_some());
    let (audio_codec, audio_bw, audio_media) = match audio {
        Some(a) => {
            let st = lock(&a.state);
            let (codec, channels) = match st.latest_init().map(|i| &i.codec) {
                Some(CodecConfig::Aac(c)) => (c.codec_string(), c.channels()),
                Some(other) => (other.codec_string(), 2),
                None => (String::new(), 2),
            };
            (
                Some(codec),
                st.bandwidth(),
                vec![AudioMedia {
                    uri: format!("{}.m3u8", a.name),
                    group: "audio".into(),
                    name: a.name.clone(),
                    channels,
                    default: true,
                }],
            )
        }
        None => (None, None, Vec::new()),
    };
    let variants: Vec<Variant> = slots
        .iter()
        .filter(|s| s.kind == MediaKind::Video)
        .filter_map(|s| {
            let st = lock(&s.state);
            let init = st.latest_init()?;
            let (peak, avg) = st.bandwidth()?;
            let (ap, aa) = audio_bw.unwrap_or((0, 0));
            let mut codecs = vec![init.codec.codec_string()];
            codecs.extend(audio_codec.clone());
            let (resolution, frame_rate) = match &init.codec {
                CodecConfig::H264(h) => (Some((h.width(), h.height())), h.frame_rate()),
                _ => (None, None),
            };
            Some(Variant {
                uri: format!("{}.m3u8", s.name),
                bandwidth: peak + ap,
                average_bandwidth: Some(avg + aa),
                codecs,
                resolution,
                frame_rate,
                audio_group: audio_codec.as_ref().map(|_| "audio".to_owned()),
            })
        })
        .collect();
    // An audio-only stream: its audio playlist is the one variant, without an audio group.
    if variants.is_empty()
        && let (Some(a), Some(codec), Some((peak, avg))) = (audio, audio_codec, audio_bw)
    {
        let only = Variant {
            uri: format!("{}.m3u8", a.name),
            bandwidth: peak,
            average_bandwidth: Some(avg),
            codecs: vec![codec],
            resolution: None,
            frame_rate: None,
            audio_group: None,
        };
        return Bytes::from(crate::playlist::render_multivariant(&[only], &[], notes));
    }
    Bytes::from(crate::playlist::render_multivariant(
        &variants,
        &audio_media,
        notes,
    ))
}

/// Locks a slot's rendition (tests).
#[cfg(test)]
pub(crate) fn tests_lock(slot: &Slot) -> MutexGuard<'_, Rendition> {
    lock(&slot.state)
}

/// The publish task: bus events in, renditions updated, waiters woken.
async fn run(
    stream: Arc<Stream>,
    mut consumer: bus::Consumer,
    video: Arc<Slot>,
    audio: Option<Arc<Slot>>,
    cfg: SegmenterConfig,
    archive: Option<ArchiveTee>,
) {
    let mut seg = Segmenter::new(cfg);
    let mut routes: HashMap<TrackId, Arc<Slot>> = HashMap::new();
    // Ends the renditions (and tells the archive) even when the task is aborted.
    struct Ender(Arc<Stream>, Vec<Arc<Slot>>, Option<ArchiveTee>);
    impl Drop for Ender {
        fn drop(&mut self) {
            for s in &self.1 {
                lock(&s.state).end();
                s.bump();
                if let Some(a) = &self.2 {
                    a.offer(Archived::End {
                        rendition: s.name.as_str().into(),
                    });
                }
            }
            self.0.bump();
        }
    }
    let _ender = Ender(
        stream.clone(),
        std::iter::once(video.clone())
            .chain(audio.clone())
            .collect(),
        archive.clone(),
    );
    let names: HashMap<String, Arc<str>> = std::iter::once(&video)
        .chain(audio.as_ref())
        .map(|s| (s.name.clone(), Arc::from(s.name.as_str())))
        .collect();
    // Whether this task has applied the stream's fixed target duration to its renditions and
    // segmenter.
    let mut applied = false;
    while let Some(event) = consumer.recv().await {
        let done = matches!(event, Event::End | Event::Error(_));
        let result = match event {
            Event::Info(info) => seg.set_info(info),
            Event::Frame(frame) => seg.push(frame, SystemTime::now()),
            Event::Gap { frames } => {
                tracing::debug!(frames, "bus gap: discontinuity");
                seg.discontinuity()
            }
            Event::End => seg.finish(),
            Event::Error(e) => {
                tracing::warn!(error = %e, "stream ended with an error");
                seg.finish()
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "segmenter refused input");
        }
        let (mut video_changed, mut audio_changed) = (false, false);
        while let Some(out) = seg.pull() {
            let slot = match &out {
                Output::Init(init) => {
                    let slot = match init.kind {
                        MediaKind::Video => Some(video.clone()),
                        MediaKind::Audio => audio.clone(),
                    };
                    match &slot {
                        Some(s) => routes.insert(init.track, s.clone()),
                        None => routes.remove(&init.track),
                    };
                    slot
                }
                Output::Part(p) => routes.get(&p.track).cloned(),
                Output::SegmentEnd(e) => routes.get(&e.track).cloned(),
            };
            if let Some(slot) = slot {
                let tee = archive.as_ref().and_then(|a| {
                    let name = names.get(&slot.name)?;
                    Some((a, name))
                });
                let ended = match (&out, tee) {
                    (Output::Init(init), Some((a, name))) => {
                        a.offer(Archived::Init(ArchivedInit {
                            rendition: name.clone(),
                            kind: init.kind,
                            generation: init.generation,
                            codec: init.codec.clone(),
                            timescale: init.timescale,
                            data: init.data.clone(),
                        }));
                        None
                    }
                    (Output::SegmentEnd(e), Some(_)) => Some(e.msn),
                    _ => None,
                };
                let mut st = lock(&slot.state);
                st.push(out);
                if let (Some(msn), Some((a, name))) = (ended, tee)
                    && let Some(s) = st.archived_segment(msn, name, slot.kind)
                {
                    drop(st);
                    a.offer(Archived::Segment(s));
                } else {
                    drop(st);
                }
                match slot.kind {
                    MediaKind::Video => video_changed = true,
                    MediaKind::Audio => audio_changed = true,
                }
            }
        }
        if !applied && let Some(td) = stream.fix_target() {
            for slot in std::iter::once(&video).chain(audio.as_ref()) {
                lock(&slot.state).fix_target_duration(td);
            }
            seg.set_segment_limit(Some(segment_limit_for(td)));
            applied = true;
            let target = cfg.segment_target.as_secs_f64();
            if td as f64 > target.ceil() {
                // The GOP policy (docs/llhls.md): segments follow the publisher's keyframes, so
                // a keyframe interval above the mode's target lengthens every segment and the
                // latency of players that work in whole segments.
                tracing::warn!(
                    target_duration = td,
                    mode_segment_target_s = target,
                    "the publisher's keyframe interval is longer than the latency mode's \
                     segment target: segments follow the keyframes, EXT-X-TARGETDURATION is \
                     {td} s and HOLD-BACK {} s; set the encoder's keyframe interval to {target} s \
                     (or transcode the stream) for the mode's latency",
                    3 * td
                );
            }
        }
        if video_changed {
            video.bump();
        }
        if audio_changed && let Some(a) = &audio {
            a.bump();
        }
        if video_changed || audio_changed {
            stream.bump();
        }
        if done {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ArchiveSink;
    use crate::fixture;
    use sigma_core::bus::Window;

    #[derive(Default)]
    struct Collect(Mutex<Vec<Archived>>);

    impl ArchiveSink for Arc<Collect> {
        fn offer(&self, item: Archived) {
            lock(&self.0).push(item);
        }
    }

    /// The tee gets every init and every complete segment of both renditions, in order, with
    /// the same bytes the origin serves, and an end per rendition.
    #[tokio::test]
    async fn the_archive_tee_gets_every_init_and_segment() {
        let origin = Origin::new();
        let (mut producer, subscriber) = bus::channel(Window {
            max_groups: 64,
            max_frames: 1 << 16,
            max_bytes: 1 << 30,
        });
        producer.set_info(fixture::synthetic_info(1));
        let sink = Arc::new(Collect::default());
        let mut opts = PublishOptions::new(LatencyMode::Low);
        opts.archive = Some(ArchiveTee::new(sink.clone()));
        let publication = origin.publish("s", &subscriber, opts).unwrap();
        for f in fixture::synthetic_frames(12, 30) {
            producer.push(f).unwrap();
        }
        producer.finish();
        publication.finished().await;
        let items = lock(&sink.0).clone();
        let epoch = origin.stream("s").unwrap().epoch.clone();
        let mut next_msn: HashMap<String, u64> = HashMap::new();
        let mut inits = 0;
        let mut ends = Vec::new();
        let mut seconds: HashMap<String, f64> = HashMap::new();
        for item in &items {
            match item {
                Archived::Init(i) => {
                    assert!(ends.is_empty());
                    let served = origin
                        .init("s", &i.rendition, &epoch, i.generation)
                        .unwrap();
                    assert_eq!(served.chunks, vec![i.data.clone()]);
                    inits += 1;
                }
                Archived::Segment(s) => {
                    let msn = next_msn.entry(s.rendition.to_string()).or_insert(s.msn);
                    assert_eq!(s.msn, *msn, "segments in order, none missing");
                    *msn += 1;
                    let served = origin
                        .segment("s", &s.rendition, &epoch, s.msn)
                        .await
                        .unwrap();
                    assert_eq!(served.chunks, s.chunks);
                    assert_eq!(s.parts.iter().map(|p| p.0).sum::<u64>(), s.len());
                    if s.kind == MediaKind::Video {
                        assert!(
                            s.independent(),
                            "1 s GOPs: every segment starts with a keyframe"
                        );
                    }
                    *seconds.entry(s.rendition.to_string()).or_default() += s.duration;
                }
                Archived::End { rendition } => ends.push(rendition.to_string()),
            }
        }
        assert_eq!(inits, 2);
        ends.sort();
        assert_eq!(ends, ["audio", "video"]);
        for r in ["video", "audio"] {
            let d = seconds[r];
            assert!((d - 12.0).abs() < 0.1, "{r}: {d} s archived of 12");
        }
    }
}
