//! The control plane's shell: the store, the in-memory lifecycles of the streams this node
//! serves, short-lived caches for the lookups on the media path, and the commands the API
//! sends to the media side (disconnect a publisher, end a broadcast).
//!
//! Nothing on the media path waits for a database write: status changes are applied in
//! memory at once and written by one owned writer task through a bounded queue, in order.

use crate::auth::FailureLimiter;
use crate::events::{NewEvent, live_stream_data, transition_event};
use crate::id::{self, Kind};
use crate::lifecycle::{Effect, Input, Lifecycle, Refused, Status};
use crate::model::{
    Ingest, IngestStats, LatencyMode, LiveStream, LiveStreamRecord, Playback, Policy, Scope,
    rfc3339,
};
use crate::playback::{self, Audience, MediaToken, TokenError};
use crate::simulcast::TargetStatus;
use crate::store::{ApiTokenRecord, Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

/// How long a playback-id or signing-key lookup is trusted before the store is asked again:
/// a change made on another node takes effect within this (this node's own at once).
pub const CACHE_TTL: Duration = Duration::from_millis(500);

/// Settings the control plane needs from the server.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// The RTMP URL broadcasters publish under, without the key (`rtmp://host:1935/live`).
    pub rtmp_base: String,
    /// The viewers' base URL (`http://host:8080`).
    pub http_base: String,
    /// The server's default latency mode.
    pub default_latency: LatencyMode,
    /// The configured ladders' names.
    pub ladders: Vec<String>,
    /// An admin token from the environment (`SIGMA_API_TOKEN`), accepted besides stored ones.
    pub admin_token: Option<String>,
    /// Webhook delivery settings.
    pub webhooks: crate::delivery::WebhookSettings,
    /// Whether simulcast targets on loopback, private or link-local addresses are allowed.
    pub simulcast_allow_private: bool,
}

/// What the API asks of the media side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Disconnect the publisher of this live stream; the broadcast waits for its return.
    DisconnectPublisher {
        /// The live stream.
        live_stream_id: String,
    },
    /// Disconnect the publisher and end the broadcast now (playlists end).
    EndBroadcast {
        /// The live stream.
        live_stream_id: String,
    },
    /// The live stream's simulcast targets changed, or it became active: the node serving
    /// it starts or stops pushing to its targets.
    SimulcastChanged {
        /// The live stream.
        live_stream_id: String,
    },
}

/// A publish the control plane admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The live stream (log this, never the key).
    pub live_stream_id: String,
    /// Latency mode.
    pub latency_mode: LatencyMode,
    /// Ladder, if any.
    pub ladder: Option<String>,
    /// How long a lost publisher may take to come back.
    pub reconnect_window: Duration,
    /// True when the publisher continues a broadcast in `reconnecting`.
    pub resumed: bool,
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// No live stream has this key (unknown, reset or deleted).
    #[error("unknown stream key")]
    UnknownKey,
    /// The live stream is disabled.
    #[error("live stream {0} is disabled")]
    Disabled(String),
    /// A publisher is connected already.
    #[error("live stream {0} already has a publisher")]
    AlreadyPublishing(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a playback id leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaybackTarget {
    /// The live stream.
    pub live_stream_id: String,
    /// The id's policy.
    pub policy: Policy,
}

/// Why an API request was not authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No token, or an unknown one.
    Unauthorized,
    /// Too many failures from this address; retry after this long.
    Limited(Duration),
    /// The store could not be asked.
    Unavailable,
}

/// Lookups on the media path, trusted for [`CACHE_TTL`]; at most `max` entries (all are
/// dropped when it fills, and the store is asked again).
struct TtlCache<V> {
    entries: HashMap<String, (Instant, V)>,
    max: usize,
}

impl<V: Clone> TtlCache<V> {
    fn new(max: usize) -> Self {
        TtlCache {
            entries: HashMap::new(),
            max,
        }
    }

    fn fresh(&self, key: &str) -> Option<V> {
        self.entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, v)| v.clone())
    }

    fn insert(&mut self, key: &str, value: V) {
        if self.entries.len() >= self.max {
            self.entries.clear();
        }
        self.entries
            .insert(key.to_string(), (Instant::now(), value));
    }

    fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

pub(crate) struct Inner {
    store: Store,
    config: ControlConfig,
    rng: Mutex<Box<dyn RngCore + Send>>,
    media: MediaToken,
    lifecycles: Mutex<HashMap<String, Lifecycle>>,
    commands: broadcast::Sender<Command>,
    playback_cache: Mutex<TtlCache<Option<PlaybackTarget>>>,
    key_cache: Mutex<TtlCache<Option<[u8; 32]>>>,
    limiter: Mutex<FailureLimiter>,
    admin_hash: Option<String>,
    writes: mpsc::Sender<WriterItem>,
    writer: Mutex<Option<JoinHandle<()>>>,
    appended: Arc<watch::Sender<u64>>,
    closing: watch::Sender<bool>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    /// The status (and error) this node last reported of each target it pushes to.
    targets: Mutex<HashMap<String, (TargetStatus, Option<String>)>>,
    /// What this node measures of its connected publishers, by live stream id.
    ingest: Mutex<HashMap<String, IngestStats>>,
}

/// What the writer task takes, in order.
enum WriterItem {
    /// A status change.
    Status(StatusWrite),
    /// A simulcast target's status change.
    Target(TargetWrite),
    /// Answer once everything queued before is stored.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// A status change for the writer: stored with its transition and its event, in order.
struct StatusWrite {
    id: String,
    status: Status,
    at: i64,
    /// The event's id and type, when the change has one.
    event: Option<(String, &'static str)>,
}

/// A simulcast target's status for the writer, with its event when the status changed.
struct TargetWrite {
    id: String,
    status: TargetStatus,
    error: Option<String>,
    at: i64,
    event: Option<String>,
}

/// A live stream as the API shows it, with `status` as of `changed_at`.
pub fn live_stream_view(
    c: &ControlConfig,
    s: LiveStreamRecord,
    status: Status,
    changed_at: i64,
) -> LiveStream {
    let playback = s.playback_ids.first().map(|p| Playback {
        hls: format!("{}/v/{}/index.m3u8", c.http_base, p.id),
        player: format!("{}/v/{}/player", c.http_base, p.id),
    });
    LiveStream {
        ingest: Ingest {
            rtmp: format!("{}/{}", c.rtmp_base, s.stream_key),
        },
        id: s.id,
        name: s.name,
        status,
        status_changed_at: rfc3339(changed_at),
        stream_key: s.stream_key,
        latency_mode: s.latency_mode,
        playback_policy: s.playback_policy,
        reconnect_window: s.reconnect_window,
        auto_start: s.auto_start,
        ladder: s.ladder,
        metadata: s.metadata,
        created_at: rfc3339(s.created_at),
        updated_at: rfc3339(s.updated_at),
        playback_ids: s.playback_ids,
        playback,
        ingest_stats: None,
    }
}

/// Stores a target's status change, with its event (its data: the target as stored, with the
/// new status).
async fn write_target(store: &Store, w: TargetWrite, appended: &watch::Sender<u64>) {
    let event = match &w.event {
        Some(event_id) => match store.simulcast_target(&w.id).await {
            Ok(Some(mut t)) => {
                t.status = w.status;
                t.error = w.error.clone();
                t.status_changed_at = w.at;
                Some(NewEvent {
                    id: event_id.clone(),
                    kind: w.status.event(),
                    object_type: "simulcast_target",
                    object_id: w.id.clone(),
                    at: w.at,
                    data: crate::simulcast::target_data(&t),
                })
            }
            Ok(None) => return, // deleted meanwhile
            Err(e) => {
                tracing::warn!(simulcast_target = %w.id, error = %e, "event data not read");
                None
            }
        },
        None => None,
    };
    match store
        .set_simulcast_status(&w.id, w.status, w.error.as_deref(), w.at, event.as_ref())
        .await
    {
        Ok(true) if event.is_some() => appended.send_modify(|n| *n += 1),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(simulcast_target = %w.id, status = %w.status, error = %e, "target status not stored");
        }
    }
}

/// The control plane; cheap to clone.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Status writes queued at most; beyond this a change is logged and dropped from the store
/// (the in-memory status, which the API shows for this node's streams, stays right).
const WRITE_QUEUE: usize = 4096;

impl Control {
    /// Starts the control plane on `store`, with secrets drawn from `rng`.
    /// Must be called within a tokio runtime (it starts the status writer).
    pub async fn start(
        store: Store,
        config: ControlConfig,
        mut rng: Box<dyn RngCore + Send>,
    ) -> Result<Control, StoreError> {
        let fresh = URL_SAFE_NO_PAD.encode(id::new_secret(&mut *rng, 32));
        let secret = store
            .setting_or_insert("media_token_secret", &fresh)
            .await?;
        let secret = URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|e| StoreError::Corrupt {
                table: "settings",
                what: e.to_string(),
            })?;
        let (writes, mut rx) = mpsc::channel::<WriterItem>(WRITE_QUEUE);
        let appended = Arc::new(watch::channel(0u64).0);
        let writer_store = store.clone();
        let writer_config = config.clone();
        let writer_appended = appended.clone();
        let writer = tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                let w = match item {
                    WriterItem::Status(w) => w,
                    WriterItem::Target(w) => {
                        write_target(&writer_store, w, &writer_appended).await;
                        continue;
                    }
                    WriterItem::Flush(done) => {
                        let _ = done.send(());
                        continue;
                    }
                };
                // The event's data is the stream as stored, with the new status.
                let event = match &w.event {
                    Some((event_id, kind)) => match writer_store.live_stream(&w.id).await {
                        Ok(Some(rec)) => Some(NewEvent {
                            id: event_id.clone(),
                            kind,
                            object_type: "live_stream",
                            object_id: w.id.clone(),
                            at: w.at,
                            data: live_stream_data(&live_stream_view(
                                &writer_config,
                                rec,
                                w.status,
                                w.at,
                            )),
                        }),
                        Ok(None) => None, // deleted meanwhile: its `deleted` event is the last
                        Err(e) => {
                            tracing::warn!(live_stream = %w.id, error = %e, "event data not read");
                            None
                        }
                    },
                    None => None,
                };
                match writer_store
                    .set_status(&w.id, w.status, w.at, event.as_ref())
                    .await
                {
                    Ok(_) => {
                        if event.is_some() {
                            writer_appended.send_modify(|n| *n += 1);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(live_stream = %w.id, status = %w.status, error = %e, "status not stored");
                    }
                }
            }
        });
        let admin_hash = config.admin_token.as_deref().map(id::digest);
        let control = Control {
            inner: Arc::new(Inner {
                store,
                config,
                rng: Mutex::new(rng),
                media: MediaToken::new(secret),
                lifecycles: Mutex::new(HashMap::new()),
                commands: broadcast::channel(256).0,
                playback_cache: Mutex::new(TtlCache::new(100_000)),
                key_cache: Mutex::new(TtlCache::new(10_000)),
                limiter: Mutex::new(FailureLimiter::default()),
                admin_hash,
                writes,
                writer: Mutex::new(Some(writer)),
                appended,
                closing: watch::channel(false).0,
                dispatcher: Mutex::new(None),
                targets: Mutex::new(HashMap::new()),
                ingest: Mutex::new(HashMap::new()),
            }),
        };
        let task = tokio::spawn(crate::delivery::run(Arc::downgrade(&control.inner)));
        *lock(&control.inner.dispatcher) = Some(task);
        Ok(control)
    }

    pub(crate) fn upgrade(inner: &std::sync::Weak<Inner>) -> Option<Control> {
        inner.upgrade().map(|inner| Control { inner })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &ControlConfig {
        &self.inner.config
    }

    /// Commands for the media side.
    pub fn commands(&self) -> broadcast::Receiver<Command> {
        self.inner.commands.subscribe()
    }

    /// Runs `f` with the random source.
    pub fn with_rng<R>(&self, f: impl FnOnce(&mut dyn RngCore) -> R) -> R {
        f(&mut **lock(&self.inner.rng))
    }

    /// Makes sure an admin token exists: if none is stored, generates one, stores its digest
    /// and returns it (to be written to `DATA_DIR/api-token` and printed once).
    pub async fn bootstrap_token(&self) -> Result<Option<String>, StoreError> {
        if !self.inner.store.api_tokens(None, 1).await?.is_empty() {
            return Ok(None);
        }
        let token = self.with_rng(|r| id::new_api_token(r));
        let rec = ApiTokenRecord {
            id: self.with_rng(|r| id::new_id(Kind::ApiToken, r)),
            name: "bootstrap admin".into(),
            scopes: vec![Scope::Read, Scope::Write],
            token_hash: id::digest(&token),
            created_at: now_ms(),
        };
        self.inner.store.insert_api_token(&rec).await?;
        Ok(Some(token))
    }

    /// Checks a bearer token from `ip`: its scopes, or why not. Failures count against the
    /// address.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        ip: IpAddr,
    ) -> Result<Vec<Scope>, AuthError> {
        if let Err(wait) = lock(&self.inner.limiter).check(ip, Instant::now()) {
            return Err(AuthError::Limited(wait));
        }
        let fail = || {
            lock(&self.inner.limiter).fail(ip, Instant::now());
            Err(AuthError::Unauthorized)
        };
        let Some(token) = token else { return fail() };
        let hash = id::digest(token);
        if let Some(admin) = &self.inner.admin_hash {
            if id::same_digest(admin, &hash) {
                return Ok(vec![Scope::Read, Scope::Write]);
            }
        }
        match self.inner.store.api_token_by_hash(&hash).await {
            Ok(Some(t)) if id::same_digest(&t.token_hash, &hash) => Ok(t.scopes),
            Ok(_) => fail(),
            Err(e) => {
                tracing::warn!(error = %e, "token lookup failed");
                Err(AuthError::Unavailable)
            }
        }
    }

    /// This node's lifecycle of `s`: its own while it serves a broadcast of it (a live
    /// status), else one made from the stored status, which another node or an API call may
    /// have changed. With `stale_live`, a stored live status this node does not serve counts
    /// as idle (left by a server that stopped without ending it).
    fn synced<'a>(
        map: &'a mut HashMap<String, Lifecycle>,
        s: &LiveStreamRecord,
        stale_live: bool,
    ) -> &'a mut Lifecycle {
        let stored = if stale_live && s.status.is_live() {
            Status::Idle
        } else {
            s.status
        };
        let l = map
            .entry(s.id.clone())
            .or_insert_with(|| Lifecycle::new(stored, s.auto_start));
        if !l.status().is_live() && l.status() != stored {
            *l = Lifecycle::new(stored, s.auto_start);
        }
        l.set_auto_start(s.auto_start);
        l
    }

    /// This node's in-memory status of live stream `id`, if it tracks it.
    pub fn live_status(&self, id: &str) -> Option<Status> {
        lock(&self.inner.lifecycles).get(id).map(|l| l.status())
    }

    /// The status to show for a stored live stream: this node's in-memory one while it
    /// serves a broadcast of it, else the stored one.
    pub fn status_of(&self, s: &LiveStreamRecord) -> (Status, i64) {
        match lock(&self.inner.lifecycles).get(&s.id) {
            Some(l) if l.status().is_live() && l.status() != s.status => {
                (l.status(), now_ms().max(s.status_changed_at))
            }
            _ => (s.status, s.status_changed_at),
        }
    }

    /// Applies `input` to live stream `s` (as stored; see [`Control::flush`]) and queues
    /// the status write; returns the transition. Effects are sent as [`Command`]s.
    pub fn apply(
        &self,
        s: &LiveStreamRecord,
        input: Input,
    ) -> Result<crate::lifecycle::Transition, Refused> {
        let t = {
            let mut map = lock(&self.inner.lifecycles);
            Self::synced(&mut map, s, false).apply(input)?
        };
        self.after(&s.id, t);
        Ok(t)
    }

    /// Applies `input` to a live stream this node already tracks (the media side's reports:
    /// first segment, publisher lost, broadcast ended). Unknown ids are ignored.
    pub fn report(&self, live_stream_id: &str, input: Input) {
        let t = {
            let mut map = lock(&self.inner.lifecycles);
            let Some(l) = map.get_mut(live_stream_id) else {
                return;
            };
            match l.apply(input) {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(live_stream = %live_stream_id, error = %e, "report ignored");
                    return;
                }
            }
        };
        self.after(live_stream_id, t);
    }

    fn after(&self, id: &str, t: crate::lifecycle::Transition) {
        if t.changed() {
            tracing::info!(live_stream = %id, from = %t.from, to = %t.to, "status");
            let event = transition_event(&t)
                .map(|kind| (self.with_rng(|r| id::new_id(Kind::Event, r)), kind));
            let write = StatusWrite {
                id: id.to_string(),
                status: t.to,
                at: now_ms(),
                event,
            };
            if self
                .inner
                .writes
                .try_send(WriterItem::Status(write))
                .is_err()
            {
                tracing::warn!(live_stream = %id, status = %t.to, "status write queue full");
            }
        }
        // A broadcast that goes active (not one resuming after a lost publisher) starts its
        // restreams.
        if t.changed() && t.to == Status::Active && t.from != Status::Reconnecting {
            let _ = self.inner.commands.send(Command::SimulcastChanged {
                live_stream_id: id.to_string(),
            });
        }
        if let Some(Effect::EndBroadcast) = t.effect {
            let _ = self.inner.commands.send(Command::EndBroadcast {
                live_stream_id: id.to_string(),
            });
        }
        if let Some(Effect::DisconnectPublisher) = t.effect {
            let _ = self.inner.commands.send(Command::DisconnectPublisher {
                live_stream_id: id.to_string(),
            });
        }
    }

    /// Waits until every status change queued so far is stored (with its event), so an event
    /// appended next comes after them in the log. Gives up after 5 s.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            self.inner.writes.send(WriterItem::Flush(tx)),
        )
        .await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
    }

    /// A live stream as the API shows it (this node's in-memory status when it serves it).
    pub fn view(&self, s: LiveStreamRecord) -> LiveStream {
        let (status, changed) = self.status_of(&s);
        let mut v = live_stream_view(&self.inner.config, s, status, changed);
        if status.is_live() {
            v.ingest_stats = lock(&self.inner.ingest).get(&v.id).cloned();
        }
        v
    }

    /// Records what the ingest measures of live stream `id`'s publisher (`None` once it is
    /// gone); [`view`](Self::view) shows it as `ingest_stats`.
    pub fn set_ingest_stats(&self, id: &str, stats: Option<IngestStats>) {
        let mut m = lock(&self.inner.ingest);
        match stats {
            Some(s) => {
                m.insert(id.to_string(), s);
            }
            None => {
                m.remove(id);
            }
        }
    }

    /// The pusher's report of target `target_id`: stored (through the writer, in order) when
    /// it differs from the last report, with a `live_stream.simulcast_target.*` event when the
    /// status itself changed. An `idle` for a target this node never pushed to is ignored.
    pub fn report_target(&self, target_id: &str, status: TargetStatus, error: Option<String>) {
        let old = {
            let mut m = lock(&self.inner.targets);
            let old = m.get(target_id).cloned();
            if old.is_none() && status == TargetStatus::Idle {
                return;
            }
            if old.as_ref() == Some(&(status, error.clone())) {
                return;
            }
            if status == TargetStatus::Idle {
                m.remove(target_id);
            } else {
                m.insert(target_id.to_string(), (status, error.clone()));
            }
            old
        };
        let changed = crate::simulcast::is_change(old.map(|(s, _)| s), status);
        if changed {
            tracing::info!(simulcast_target = %target_id, %status, "simulcast target");
        }
        let write = TargetWrite {
            id: target_id.to_string(),
            status,
            error,
            at: now_ms(),
            event: changed.then(|| self.with_rng(|r| id::new_id(Kind::Event, r))),
        };
        if self
            .inner
            .writes
            .try_send(WriterItem::Target(write))
            .is_err()
        {
            tracing::warn!(simulcast_target = %target_id, %status, "status write queue full");
        }
    }

    /// Forgets this node's report of a deleted target.
    pub fn forget_target(&self, target_id: &str) -> Option<TargetStatus> {
        lock(&self.inner.targets).remove(target_id).map(|(s, _)| s)
    }

    /// The event of a resource change (`live_stream.created`, …) with `view` as its data.
    pub fn resource_event(&self, kind: &'static str, view: &LiveStream) -> NewEvent {
        NewEvent {
            id: self.with_rng(|r| id::new_id(Kind::Event, r)),
            kind,
            object_type: "live_stream",
            object_id: view.id.clone(),
            at: now_ms(),
            data: live_stream_data(view),
        }
    }

    /// Ticks whenever this node appended events (the SSE stream wakes on it; other nodes'
    /// events are found by polling).
    pub fn appended(&self) -> watch::Receiver<u64> {
        self.inner.appended.subscribe()
    }

    /// Turns true when the control plane shuts down (long-lived responses end on it).
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Tells the readers of [`appended`](Self::appended) that events were stored.
    pub fn note_appended(&self) {
        self.inner.appended.send_modify(|n| *n += 1);
    }

    /// Sends a command to the media side.
    pub fn send(&self, c: Command) {
        let _ = self.inner.commands.send(c);
    }

    /// Forgets a deleted live stream's in-memory state.
    pub fn forget(&self, live_stream_id: &str) {
        lock(&self.inner.lifecycles).remove(live_stream_id);
        lock(&self.inner.playback_cache)
            .entries
            .retain(|_, (_, v)| {
                v.as_ref()
                    .is_none_or(|t| t.live_stream_id != live_stream_id)
            });
    }

    /// Decides on a publish with stream key `key`.
    pub async fn admit(&self, key: &str) -> Result<Admission, AdmitError> {
        let s = self
            .inner
            .store
            .live_stream_by_key(key)
            .await?
            .ok_or(AdmitError::UnknownKey)?;
        let t = {
            let mut map = lock(&self.inner.lifecycles);
            Self::synced(&mut map, &s, true).apply(Input::PublisherConnected)
        };
        let before = match t {
            Ok(t) => {
                self.after(&s.id, t);
                t.from
            }
            Err(r) if r.status == Status::Disabled => return Err(AdmitError::Disabled(s.id)),
            Err(_) => return Err(AdmitError::AlreadyPublishing(s.id)),
        };
        Ok(Admission {
            resumed: before == Status::Reconnecting,
            live_stream_id: s.id,
            latency_mode: s.latency_mode,
            ladder: s.ladder,
            reconnect_window: Duration::from_secs(s.reconnect_window),
        })
    }

    /// Whether `live_stream_id` is in preview (watchable only by operators).
    pub fn in_preview(&self, live_stream_id: &str) -> bool {
        lock(&self.inner.lifecycles)
            .get(live_stream_id)
            .is_some_and(Lifecycle::is_preview)
    }

    /// The live stream a playback id plays, if the id exists (cached for [`CACHE_TTL`]).
    pub async fn playback(&self, playback_id: &str) -> Result<Option<PlaybackTarget>, StoreError> {
        if !Kind::PlaybackId.matches(playback_id) {
            return Ok(None);
        }
        if let Some(v) = lock(&self.inner.playback_cache).fresh(playback_id) {
            return Ok(v);
        }
        let value =
            self.inner
                .store
                .playback_id(playback_id)
                .await?
                .map(|(live_stream_id, policy)| PlaybackTarget {
                    live_stream_id,
                    policy,
                });
        lock(&self.inner.playback_cache).insert(playback_id, value.clone());
        Ok(value)
    }

    /// Drops a playback id from the cache (after it was deleted here).
    pub fn invalidate_playback(&self, playback_id: &str) {
        lock(&self.inner.playback_cache).remove(playback_id);
    }

    /// Drops a signing key from the cache (after it was deleted here).
    pub fn invalidate_key(&self, key_id: &str) {
        lock(&self.inner.key_cache).remove(key_id);
    }

    async fn public_key(&self, kid: &str) -> Result<Option<[u8; 32]>, StoreError> {
        if !Kind::SigningKey.matches(kid) {
            return Ok(None);
        }
        if let Some(v) = lock(&self.inner.key_cache).fresh(kid) {
            return Ok(v);
        }
        let value = self
            .inner
            .store
            .signing_key(kid)
            .await?
            .map(|k| k.public_key);
        lock(&self.inner.key_cache).insert(kid, value);
        Ok(value)
    }

    /// Verifies a viewer's JWT for `playback_id` now.
    pub async fn verify_jwt(&self, playback_id: &str, token: &str) -> Result<Audience, TokenError> {
        let kid = jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|h| h.kid)
            .unwrap_or_default();
        let key = if token.len() <= playback::MAX_JWT_LEN {
            self.public_key(&kid).await.ok().flatten()
        } else {
            None
        };
        playback::verify_jwt(token, playback_id, |_| key, now_ms() / 1000)
    }

    /// The media token for `playback_id` and `aud` now.
    pub fn media_token(&self, playback_id: &str, aud: Audience) -> String {
        self.inner.media.issue(playback_id, aud, now_ms() / 1000)
    }

    /// Checks a media token for `playback_id` now.
    pub fn verify_media_token(&self, playback_id: &str, token: &str) -> Option<Audience> {
        self.inner.media.verify(playback_id, token, now_ms() / 1000)
    }

    /// Stops the status writer after it wrote what is queued.
    pub async fn shutdown(&self) {
        self.inner.closing.send_replace(true);
        let dispatcher = lock(&self.inner.dispatcher).take();
        if let Some(task) = dispatcher {
            // It stops at `closing`; attempts in flight finish on their own (their leases
            // make them safe to cut short).
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        let task = lock(&self.inner.writer).take();
        // The sender lives in `inner`; closing the receiver side happens when every clone
        // is dropped, so wait for the queue to drain instead.
        if let Some(task) = task {
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.inner.writes.capacity() < WRITE_QUEUE && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            task.abort();
            let _ = task.await;
        }
    }
}
