//! The archive writer: the shell that takes the archive tee's finished inits and segments
//! ([`sigma_llhls::ArchiveSink`]) and stores them under one prefix of the [`MediaStore`],
//! with the journals and the final manifest ([`crate::manifest`]).
//!
//! The live path never waits for storage. [`ArchiveSink::offer`] only queues, within
//! [`ArchiveConfig::queue_bytes`] of segment payloads (shared `Bytes`, not copied); when storage
//! is slower than live and the queue is full, the segment is dropped from the archive, counted
//! ([`ArchiveStats::dropped_segments`]), the rendition's next stored segment is marked as a
//! discontinuity, and `on_behind` is called once per episode (the server turns it into a
//! `live_stream.warning` event). A failed write is retried three times, then handled the same.
//!
//! Object layout under the prefix: `{rendition}/init-{generation}.mp4`,
//! `{rendition}/{msn}.m4s`, `journal/{n:08}.json`, `manifest.json`.

use crate::manifest::{Kind, Manifest, RenditionInfo, SegmentRecord};
use crate::store::{Key, MediaStore, StoreError};
use sigma_core::{CodecConfig, MediaKind};
use sigma_llhls::{ArchiveSink, ArchiveTee, Archived, ArchivedInit, ArchivedSegment};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How an archive writer queues and journals.
#[derive(Clone, Copy, Debug)]
pub struct ArchiveConfig {
    /// Segment bytes queued at most; beyond this the archive drops segments.
    pub queue_bytes: u64,
    /// How often the records stored since the last journal are journaled.
    pub journal_every: Duration,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            queue_bytes: 64 << 20,
            journal_every: Duration::from_secs(1),
        }
    }
}

/// What an archive writer did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Segments stored.
    pub stored_segments: u64,
    /// Segment bytes stored.
    pub stored_bytes: u64,
    /// Segments dropped because the queue was full or their write failed.
    pub dropped_segments: u64,
    /// Segment bytes queued now.
    pub queued_bytes: u64,
}

/// Why the archive fell behind (what `on_behind` is told).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behind {
    /// Storage is slower than live: the queue filled and segments were dropped.
    QueueFull,
    /// A write failed after its retries.
    WriteFailed,
}

impl Behind {
    /// A sentence for the event and the log.
    pub fn message(self) -> &'static str {
        match self {
            Behind::QueueFull => {
                "storage is slower than live: the archive's queue is full and segments are dropped from the recording"
            }
            Behind::WriteFailed => {
                "a segment could not be written to storage: the recording has a gap"
            }
        }
    }
}

type OnBehind = Box<dyn Fn(Behind) + Send + Sync>;

struct Queue {
    items: VecDeque<Archived>,
    bytes: u64,
    closed: bool,
    /// An episode of falling behind is going on (`on_behind` was called).
    behind: bool,
    /// Renditions that lost a segment: their next stored one is a discontinuity.
    gaps: HashSet<Arc<str>>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    cfg: ArchiveConfig,
    stored_segments: AtomicU64,
    stored_bytes: AtomicU64,
    dropped: AtomicU64,
    on_behind: OnBehind,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn lost(&self, rendition: &Arc<str>, why: Behind) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut q = lock(&self.queue);
            q.gaps.insert(rendition.clone());
            !std::mem::replace(&mut q.behind, true)
        };
        if first {
            tracing::warn!(rendition = %rendition, "{}", why.message());
            (self.on_behind)(why);
        }
    }
}

struct Sink(Arc<Shared>);

impl ArchiveSink for Sink {
    fn offer(&self, item: Archived) {
        let s = &self.0;
        let mut q = lock(&s.queue);
        if q.closed {
            return;
        }
        if let Archived::Segment(seg) = &item {
            let len = seg.len();
            if q.bytes + len > s.cfg.queue_bytes {
                let r = seg.rendition.clone();
                drop(q);
                s.lost(&r, Behind::QueueFull);
                return;
            }
            q.bytes += len;
        }
        q.items.push_back(item);
        drop(q);
        s.wake.notify_one();
    }
}

/// One archive being written: a tee for the publications and the task storing what it gets.
pub struct ArchiveWriter {
    shared: Arc<Shared>,
    task: JoinHandle<Result<Manifest, StoreError>>,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Seconds since the Unix epoch of a wall-clock time, in ms.
fn unix_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn rendition_info(init: &ArchivedInit) -> RenditionInfo {
    let (resolution, frame_rate, channels) = match &init.codec {
        CodecConfig::H264(h) => (Some((h.width(), h.height())), h.frame_rate(), None),
        CodecConfig::Aac(a) => (None, None, Some(a.channels())),
        _ => (None, None, None),
    };
    RenditionInfo {
        name: init.rendition.to_string(),
        kind: match init.kind {
            MediaKind::Video => Kind::Video,
            MediaKind::Audio => Kind::Audio,
        },
        codec: init.codec.codec_string(),
        resolution,
        frame_rate,
        channels,
        inits: vec![init.generation],
    }
}

/// The key of an init object under `prefix`.
pub fn init_key(prefix: &Key, rendition: &str, generation: u64) -> Result<Key, StoreError> {
    prefix.join(&format!("{rendition}/init-{generation}.mp4"))
}

/// The key of a segment object under `prefix`.
pub fn segment_key(prefix: &Key, rendition: &str, msn: u64) -> Result<Key, StoreError> {
    prefix.join(&format!("{rendition}/{msn}.m4s"))
}

fn manifest_key(prefix: &Key) -> Result<Key, StoreError> {
    prefix.join("manifest.json")
}

fn journal_prefix(prefix: &Key) -> Result<Key, StoreError> {
    prefix.join("journal")
}

impl ArchiveWriter {
    /// Starts writing an archive under `prefix` of `store` (within a tokio runtime).
    /// `on_behind` is called (on the publish task: it must not block) when the archive starts
    /// losing segments, once per episode.
    pub fn start(
        store: MediaStore,
        prefix: Key,
        cfg: ArchiveConfig,
        on_behind: impl Fn(Behind) + Send + Sync + 'static,
    ) -> ArchiveWriter {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
                behind: false,
                gaps: HashSet::new(),
            }),
            wake: Notify::new(),
            cfg,
            stored_segments: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            on_behind: Box::new(on_behind),
        });
        let task = tokio::spawn(write(store, prefix, shared.clone()));
        ArchiveWriter { shared, task }
    }

    /// The tee to hand the publications ([`sigma_llhls::PublishOptions::archive`]).
    pub fn tee(&self) -> ArchiveTee {
        ArchiveTee::new(Sink(self.shared.clone()))
    }

    /// What it did so far.
    pub fn stats(&self) -> ArchiveStats {
        let s = &self.shared;
        ArchiveStats {
            stored_segments: s.stored_segments.load(Ordering::Relaxed),
            stored_bytes: s.stored_bytes.load(Ordering::Relaxed),
            dropped_segments: s.dropped.load(Ordering::Relaxed),
            queued_bytes: lock(&s.queue).bytes,
        }
    }

    /// Ends the archive: takes nothing more, stores what is queued, and writes the complete
    /// manifest. Its result is the manifest.
    pub async fn finish(self) -> Result<Manifest, StoreError> {
        lock(&self.shared.queue).closed = true;
        self.shared.wake.notify_one();
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Task(e.to_string())),
        }
    }

    /// Stops at once, leaving the journals as they are (a server shutting down).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Writes with up to three retries (0.2, 0.5, 1 s apart).
async fn put_retried(
    store: &MediaStore,
    key: &Key,
    chunks: &[bytes::Bytes],
) -> Result<(), StoreError> {
    let mut last = None;
    for wait in [0u64, 200, 500, 1000] {
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        match store.put_chunks(key, chunks.to_vec()).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::debug!(key = key.as_str(), error = %e, "archive write failed; retrying");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or(StoreError::Task("no attempt".into())))
}

struct Journal {
    next: u64,
    pending: Manifest,
    whole: Manifest,
}

impl Journal {
    async fn flush(&mut self, store: &MediaStore, prefix: &Key) -> Result<(), StoreError> {
        if self.pending.renditions.is_empty() && self.pending.segments.is_empty() {
            return Ok(());
        }
        let key = journal_prefix(prefix)?.join(&format!("{:08}.json", self.next))?;
        let body = bytes::Bytes::from(self.pending.to_json());
        put_retried(store, &key, &[body]).await?;
        self.next += 1;
        self.pending = Manifest::new();
        Ok(())
    }
}

/// Journals what was stored since the last journal; a failure is logged and the records stay
/// pending for the next one.
async fn journal(j: &mut Journal, store: &MediaStore, prefix: &Key) {
    if let Err(e) = j.flush(store, prefix).await {
        tracing::warn!(archive = prefix.as_str(), error = %e, "archive journal not stored; retrying later");
    }
}

async fn write(
    store: MediaStore,
    prefix: Key,
    shared: Arc<Shared>,
) -> Result<Manifest, StoreError> {
    let mut j = Journal {
        next: 0,
        pending: Manifest::new(),
        whole: Manifest::new(),
    };
    let mut last_journal = tokio::time::Instant::now();
    loop {
        let (item, closed) = {
            let mut q = lock(&shared.queue);
            let item = q.items.pop_front();
            (item, q.closed)
        };
        match item {
            Some(Archived::Init(init)) => {
                let key = init_key(&prefix, &init.rendition, init.generation)?;
                match put_retried(&store, &key, std::slice::from_ref(&init.data)).await {
                    Ok(()) => {
                        let info = rendition_info(&init);
                        j.pending.note_rendition(info.clone());
                        j.whole.note_rendition(info);
                    }
                    Err(e) => {
                        tracing::warn!(key = key.as_str(), error = %e, "archive init not stored");
                        shared.lost(&init.rendition, Behind::WriteFailed);
                    }
                }
            }
            Some(Archived::Segment(seg)) => {
                store_segment(&store, &prefix, &shared, &mut j, seg).await?
            }
            Some(Archived::End { .. }) => {}
            None if closed => break,
            None => {
                let due = last_journal + shared.cfg.journal_every;
                if tokio::time::timeout_at(due, shared.wake.notified())
                    .await
                    .is_err()
                {
                    journal(&mut j, &store, &prefix).await;
                    last_journal = tokio::time::Instant::now();
                }
                continue;
            }
        }
        if tokio::time::Instant::now() >= last_journal + shared.cfg.journal_every {
            journal(&mut j, &store, &prefix).await;
            last_journal = tokio::time::Instant::now();
        }
    }
    j.flush(&store, &prefix).await?;
    let mut whole = j.whole;
    whole.complete = true;
    put_retried(
        &store,
        &manifest_key(&prefix)?,
        &[bytes::Bytes::from(whole.to_json())],
    )
    .await?;
    Ok(whole)
}

async fn store_segment(
    store: &MediaStore,
    prefix: &Key,
    shared: &Shared,
    j: &mut Journal,
    seg: ArchivedSegment,
) -> Result<(), StoreError> {
    let len = seg.len();
    let key = segment_key(prefix, &seg.rendition, seg.msn)?;
    let written = put_retried(store, &key, &seg.chunks).await;
    {
        let mut q = lock(&shared.queue);
        q.bytes = q.bytes.saturating_sub(len);
        // The episode ends once the queue has drained to half its bound.
        if q.behind && q.bytes <= shared.cfg.queue_bytes / 2 {
            q.behind = false;
        }
    }
    match written {
        Ok(()) => {
            let gap = lock(&shared.queue).gaps.remove(&seg.rendition);
            let record = SegmentRecord {
                rendition: seg.rendition.to_string(),
                msn: seg.msn,
                duration: seg.duration,
                program_date_time: unix_ms(seg.program_date_time),
                discontinuity: seg.discontinuity || gap,
                init: seg.init_generation,
                size: len,
                parts: seg.parts,
            };
            j.pending.segments.push(record.clone());
            j.whole.segments.push(record);
            shared.stored_segments.fetch_add(1, Ordering::Relaxed);
            shared.stored_bytes.fetch_add(len, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(key = key.as_str(), error = %e, "archive segment not stored");
            shared.lost(&seg.rendition, Behind::WriteFailed);
        }
    }
    Ok(())
}

/// The archive under `prefix`: its complete manifest, else what its journals record (a
/// broadcast in progress, or one a crash interrupted), else `None`. Unreadable journals are
/// skipped (they are written whole or not at all, so this means a foreign object).
pub async fn load(store: &MediaStore, prefix: &Key) -> Result<Option<Manifest>, StoreError> {
    if let Some(data) = store.get(&manifest_key(prefix)?).await?
        && let Some(m) = Manifest::from_json(&data)
    {
        return Ok(Some(m));
    }
    let journals = store.list(Some(&journal_prefix(prefix)?)).await?;
    if journals.is_empty() {
        return Ok(None);
    }
    let mut m = Manifest::new();
    for l in journals {
        if let Some(data) = store.get(&l.key).await?
            && let Some(part) = Manifest::from_json(&data)
        {
            m.merge(part);
        }
    }
    Ok(Some(m))
}

/// Completes an archive a crash left with journals only: writes its manifest with
/// `complete: true`. Returns it (`None` when nothing was archived).
pub async fn recover(store: &MediaStore, prefix: &Key) -> Result<Option<Manifest>, StoreError> {
    let Some(mut m) = load(store, prefix).await? else {
        return Ok(None);
    };
    if !m.complete {
        m.complete = true;
        store
            .put_manifest(&manifest_key(prefix)?, bytes::Bytes::from(m.to_json()))
            .await?;
    }
    Ok(Some(m))
}
