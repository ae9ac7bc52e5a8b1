//! The store: one API over SQLite (the embedded default, a file in the data dir) or
//! PostgreSQL (`postgres://…`, shared by several nodes), through sqlx's `Any` driver, with one
//! set of versioned migrations (`migrations/`) applied at start. The SQL is the portable
//! subset both understand: `$n` parameters, TEXT and BIGINT columns, times in Unix ms.

mod outbox;
mod simulcast;
pub use outbox::{AttemptEnd, AttemptRecord, DueDelivery, WebhookRecord};

use crate::events::{EventRecord, NewEvent};
use crate::lifecycle::Status;
use crate::model::{LatencyMode, LiveStreamRecord, PlaybackId, Policy, Scope};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::collections::BTreeMap;
use std::time::Duration;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a query, or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The migrations could not be applied.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row holds a value this version does not understand.
    #[error("corrupt row in {table}: {what}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        what: String,
    },
    /// A uniqueness rule was broken (two streams drew the same key: retry).
    #[error("conflict: {0}")]
    Conflict(String),
}

/// Which backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// A signing key row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// `key_…`.
    pub id: String,
    /// Ed25519 public key.
    pub public_key: [u8; 32],
    /// Unix ms.
    pub created_at: i64,
}

/// An API token row (its digest, never the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// `tok_…`.
    pub id: String,
    /// Label.
    pub name: String,
    /// Permissions.
    pub scopes: Vec<Scope>,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Unix ms.
    pub created_at: i64,
}

/// A page position: after the row with this `(created_at, id)`, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Unix ms.
    pub created_at: i64,
    /// Id.
    pub id: String,
}

/// A row a list pages through: its position.
pub trait Listed {
    /// The cursor just after this row.
    fn cursor(&self) -> Cursor;
}

macro_rules! listed {
    ($($t:ty),*) => {$(
        impl Listed for $t {
            fn cursor(&self) -> Cursor {
                Cursor { created_at: self.created_at, id: self.id.clone() }
            }
        }
    )*};
}

listed!(LiveStreamRecord, SigningKeyRecord, ApiTokenRecord);

impl Cursor {
    /// Opaque text for `next_cursor`.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.created_at, self.id))
    }

    /// Parses `next_cursor` text; `None` if it is not one.
    pub fn decode(s: &str) -> Option<Cursor> {
        if s.len() > 200 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (t, id) = raw.split_once(':')?;
        Some(Cursor {
            created_at: t.parse().ok()?,
            id: id.to_string(),
        })
    }
}

fn corrupt(table: &'static str, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table,
        what: what.into(),
    }
}

const STREAM_COLUMNS: &str = "id, name, stream_key, status, status_changed_at, latency_mode, \
     playback_policy, reconnect_window, auto_start, ladder, metadata, created_at, updated_at";

const KEY_COLUMNS: &str = "id, public_key, created_at";
const TOKEN_COLUMNS: &str = "id, name, scopes, token_hash, created_at";

fn stream_row(r: &AnyRow) -> Result<LiveStreamRecord, StoreError> {
    let t = "live_streams";
    let status: String = r.try_get("status")?;
    let mode: String = r.try_get("latency_mode")?;
    let policy: String = r.try_get("playback_policy")?;
    let metadata: String = r.try_get("metadata")?;
    let window: i64 = r.try_get("reconnect_window")?;
    Ok(LiveStreamRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        stream_key: r.try_get("stream_key")?,
        status: Status::from_name(&status).ok_or_else(|| corrupt(t, status))?,
        status_changed_at: r.try_get("status_changed_at")?,
        latency_mode: LatencyMode::from_name(&mode).ok_or_else(|| corrupt(t, mode))?,
        playback_policy: Policy::from_name(&policy).ok_or_else(|| corrupt(t, policy))?,
        reconnect_window: u64::try_from(window).map_err(|_| corrupt(t, "reconnect_window"))?,
        auto_start: r.try_get::<i64, _>("auto_start")? != 0,
        ladder: r.try_get("ladder")?,
        metadata: serde_json::from_str::<BTreeMap<String, String>>(&metadata)
            .map_err(|e| corrupt(t, e.to_string()))?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        playback_ids: Vec::new(),
    })
}

fn scopes_text(s: &[Scope]) -> String {
    s.iter()
        .map(|s| match s {
            Scope::Read => "read",
            Scope::Write => "write",
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_scopes(s: &str) -> Result<Vec<Scope>, StoreError> {
    s.split(',')
        .map(|x| match x {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            _ => Err(corrupt("api_tokens", x.to_string())),
        })
        .collect()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Appends `e` in transaction `tx`: the next position (taking the counter row's lock, held to
/// commit) and the object's next sequence number; queues it for the matching webhooks.
async fn append(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    e: &NewEvent,
) -> Result<EventRecord, StoreError> {
    let position: i64 =
        sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'events' RETURNING value")
            .fetch_one(&mut **tx)
            .await?
            .try_get("value")?;
    let sequence: i64 = sqlx::query(
        "SELECT COALESCE(MAX(sequence), 0) + 1 AS next FROM events WHERE object_id = $1",
    )
    .bind(&e.object_id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("next")?;
    let data = e.data.to_string();
    sqlx::query(
        "INSERT INTO events (position, id, type, object_type, object_id, sequence, at, data) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(position)
    .bind(&e.id)
    .bind(e.kind)
    .bind(e.object_type)
    .bind(&e.object_id)
    .bind(sequence)
    .bind(e.at)
    .bind(&data)
    .execute(&mut **tx)
    .await?;
    let record = EventRecord {
        position,
        id: e.id.clone(),
        kind: e.kind.to_string(),
        object_type: e.object_type.to_string(),
        object_id: e.object_id.clone(),
        sequence,
        at: e.at,
        data,
    };
    outbox::fan_out(tx, &record).await?;
    Ok(record)
}

fn event_row(r: &AnyRow) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        position: r.try_get("position")?,
        id: r.try_get("id")?,
        kind: r.try_get("type")?,
        object_type: r.try_get("object_type")?,
        object_id: r.try_get("object_id")?,
        sequence: r.try_get("sequence")?,
        at: r.try_get("at")?,
        data: r.try_get("data")?,
    })
}

/// Which events to read: all of them, or one object's, or of some types (`type` patterns as
/// in [`crate::events::type_matches`], applied after the read).
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Only this object's.
    pub object_id: Option<String>,
    /// Only types matching one of these (empty: every type).
    pub types: Vec<String>,
}

impl EventFilter {
    /// Whether `e` passes.
    pub fn passes(&self, e: &EventRecord) -> bool {
        self.object_id.as_ref().is_none_or(|o| *o == e.object_id)
            && (self.types.is_empty()
                || self
                    .types
                    .iter()
                    .any(|t| crate::events::type_matches(t, &e.kind)))
    }
}

/// A page of the event log.
#[derive(Clone, Debug, PartialEq)]
pub struct EventPage {
    /// The events, oldest first.
    pub events: Vec<EventRecord>,
    /// The position read up to (continue after it).
    pub last: i64,
    /// Whether more rows may follow `last`.
    pub more: bool,
}

const EVENT_COLUMNS: &str = "position, id, type, object_type, object_id, sequence, at, data";

impl Store {
    /// Appends one event on its own (for changes with no row of their own to write).
    pub async fn append_event(&self, e: &NewEvent) -> Result<EventRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = append(&mut tx, e).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// Up to `limit` events after position `after` that pass `filter`, oldest first, and where
    /// to continue. With a type filter, at most
    /// `limit * 4` rows are read per call, so a page may hold fewer than `limit` events and
    /// still have a next one.
    pub async fn events(
        &self,
        filter: &EventFilter,
        after: i64,
        limit: u32,
    ) -> Result<EventPage, StoreError> {
        let scan = i64::from(limit) * if filter.types.is_empty() { 1 } else { 4 };
        let rows = match &filter.object_id {
            Some(o) => {
                let q = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE object_id = $1 AND position > $2 \
                     ORDER BY position LIMIT $3"
                );
                sqlx::query(&q)
                    .bind(o)
                    .bind(after)
                    .bind(scan)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let q = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
                );
                sqlx::query(&q)
                    .bind(after)
                    .bind(scan)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut last = after;
        let mut out = Vec::new();
        for r in &rows {
            let e = event_row(r)?;
            last = e.position;
            if filter.passes(&e) {
                out.push(e);
                if out.len() == limit as usize {
                    break;
                }
            }
        }
        let more = out.len() == limit as usize || rows.len() as i64 == scan;
        Ok(EventPage {
            events: out,
            last,
            more,
        })
    }

    /// The position of the newest event (0 when the log is empty).
    pub async fn last_event_position(&self) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT COALESCE(MAX(position), 0) AS last FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("last")?)
    }

    /// The position of event `id`, if it exists.
    pub async fn event_position(&self, id: &str) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query("SELECT position FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => Some(r.try_get("position")?),
            None => None,
        })
    }
}

impl Store {
    /// Up to `limit` rows of `table` after `after`, newest first (by `created_at`, then
    /// `id`): the one page query behind every list.
    async fn page(
        &self,
        columns: &str,
        table: &str,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let order = "ORDER BY created_at DESC, id DESC";
        let rows = match after {
            Some(c) => {
                let q = format!(
                    "SELECT {columns} FROM {table} \
                     WHERE created_at < $1 OR (created_at = $1 AND id < $2) {order} LIMIT $3"
                );
                sqlx::query(&q)
                    .bind(c.created_at)
                    .bind(&c.id)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let q = format!("SELECT {columns} FROM {table} {order} LIMIT $1");
                sqlx::query(&q)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows)
    }

    /// Connects to `url` (`sqlite://PATH` or `postgres://…`) and applies the migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            // One writer at a time in SQLite; WAL lets readers go on meanwhile, and the busy
            // timeout waits for the writer instead of failing.
            opts = opts.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    // In WAL mode NORMAL loses no committed transaction when the process
                    // dies (SIGKILL included), only on a power or OS failure, and saves an
                    // fsync per commit.
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        } else {
            opts = opts.max_connections(16);
        }
        let pool = opts.connect(url).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool, backend })
    }

    /// The URL for a SQLite file at `path`, created if absent.
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A setting, if set.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let r = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => Some(r.try_get("value")?),
            None => None,
        })
    }

    /// Sets `name` to `value` unless it is set already; returns the value that holds (so
    /// nodes racing to initialize agree on one).
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        self.setting(name)
            .await?
            .ok_or_else(|| corrupt("settings", format!("{name} vanished")))
    }

    /// Inserts a live stream and its playback ids, and appends `event`.
    pub async fn insert_live_stream(
        &self,
        s: &LiveStreamRecord,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let metadata = serde_json::to_string(&s.metadata)
            .map_err(|e| corrupt("live_streams", e.to_string()))?;
        let r = sqlx::query(
            "INSERT INTO live_streams (id, name, stream_key, stream_key_hash, status, \
             status_changed_at, latency_mode, playback_policy, reconnect_window, auto_start, \
             ladder, metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&s.id)
        .bind(&s.name)
        .bind(&s.stream_key)
        .bind(crate::id::digest(&s.stream_key))
        .bind(s.status.name())
        .bind(s.status_changed_at)
        .bind(s.latency_mode.name())
        .bind(s.playback_policy.name())
        .bind(i64::try_from(s.reconnect_window).unwrap_or(i64::MAX))
        .bind(i64::from(s.auto_start))
        .bind(s.ladder.clone())
        .bind(metadata)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&mut *tx)
        .await;
        if let Err(e) = r {
            return Err(if is_unique_violation(&e) {
                StoreError::Conflict("live stream id or key".into())
            } else {
                e.into()
            });
        }
        for p in &s.playback_ids {
            sqlx::query("INSERT INTO playback_ids (id, live_stream_id, policy, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&p.id)
                .bind(&s.id)
                .bind(p.policy.name())
                .bind(s.created_at)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO status_transitions (live_stream_id, status, at) VALUES ($1, $2, $3)",
        )
        .bind(&s.id)
        .bind(s.status.name())
        .bind(s.status_changed_at)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn with_playback_ids(
        &self,
        mut s: LiveStreamRecord,
    ) -> Result<LiveStreamRecord, StoreError> {
        let rows = sqlx::query(
            "SELECT id, policy FROM playback_ids WHERE live_stream_id = $1 ORDER BY created_at, id",
        )
        .bind(&s.id)
        .fetch_all(&self.pool)
        .await?;
        s.playback_ids = rows
            .iter()
            .map(|r| {
                let policy: String = r.try_get("policy")?;
                Ok(PlaybackId {
                    id: r.try_get("id")?,
                    policy: Policy::from_name(&policy)
                        .ok_or_else(|| corrupt("playback_ids", policy))?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(s)
    }

    /// One live stream.
    pub async fn live_stream(&self, id: &str) -> Result<Option<LiveStreamRecord>, StoreError> {
        let q = format!("SELECT {STREAM_COLUMNS} FROM live_streams WHERE id = $1");
        match sqlx::query(&q).bind(id).fetch_optional(&self.pool).await? {
            Some(r) => Ok(Some(self.with_playback_ids(stream_row(&r)?).await?)),
            None => Ok(None),
        }
    }

    /// The live stream whose key is `key` (looked up by the key's digest).
    pub async fn live_stream_by_key(
        &self,
        key: &str,
    ) -> Result<Option<LiveStreamRecord>, StoreError> {
        let q = format!("SELECT {STREAM_COLUMNS} FROM live_streams WHERE stream_key_hash = $1");
        let r = sqlx::query(&q)
            .bind(crate::id::digest(key))
            .fetch_optional(&self.pool)
            .await?;
        match r {
            Some(r) => {
                let s = stream_row(&r)?;
                // The digest matched; compare the keys themselves in constant time too.
                if !crate::id::same_digest(&s.stream_key, key) {
                    return Ok(None);
                }
                Ok(Some(s))
            }
            None => Ok(None),
        }
    }

    /// A page of live streams, newest first.
    pub async fn live_streams(
        &self,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<LiveStreamRecord>, StoreError> {
        let rows = self
            .page(STREAM_COLUMNS, "live_streams", after, limit)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.with_playback_ids(stream_row(r)?).await?);
        }
        Ok(out)
    }

    /// Writes the fields an update may change (name, mode, window, auto_start, ladder,
    /// metadata, updated_at) and appends `event`.
    pub async fn update_live_stream(
        &self,
        s: &LiveStreamRecord,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let metadata = serde_json::to_string(&s.metadata)
            .map_err(|e| corrupt("live_streams", e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE live_streams SET name = $2, latency_mode = $3, reconnect_window = $4, \
             auto_start = $5, ladder = $6, metadata = $7, updated_at = $8 WHERE id = $1",
        )
        .bind(&s.id)
        .bind(&s.name)
        .bind(s.latency_mode.name())
        .bind(i64::try_from(s.reconnect_window).unwrap_or(i64::MAX))
        .bind(i64::from(s.auto_start))
        .bind(s.ladder.clone())
        .bind(metadata)
        .bind(s.updated_at)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Replaces the stream key and appends `event`.
    pub async fn set_stream_key(
        &self,
        id: &str,
        key: &str,
        now: i64,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE live_streams SET stream_key = $2, stream_key_hash = $3, updated_at = $4 WHERE id = $1")
            .bind(id)
            .bind(key)
            .bind(crate::id::digest(key))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a status change, with its time, and appends `event` when given (in the same
    /// transaction).
    pub async fn set_status(
        &self,
        id: &str,
        status: Status,
        at: i64,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE live_streams SET status = $2, status_changed_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(status.name())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            sqlx::query(
                "INSERT INTO status_transitions (live_stream_id, status, at) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(status.name())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            if let Some(e) = event {
                append(&mut tx, e).await?;
            }
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// The stored transitions of a live stream, oldest first.
    pub async fn transitions(&self, id: &str) -> Result<Vec<(Status, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT status, at FROM status_transitions WHERE live_stream_id = $1 ORDER BY at",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get("status")?;
                Ok((
                    Status::from_name(&s).ok_or_else(|| corrupt("status_transitions", s))?,
                    r.try_get("at")?,
                ))
            })
            .collect()
    }

    /// Deletes a live stream, its playback ids and its simulcast targets, and appends `event`.
    pub async fn delete_live_stream(&self, id: &str, event: &NewEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM playback_ids WHERE live_stream_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM simulcast_targets WHERE live_stream_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM live_streams WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Adds a playback id to a live stream, and appends `event`.
    pub async fn insert_playback_id(
        &self,
        live_stream_id: &str,
        p: &PlaybackId,
        now: i64,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO playback_ids (id, live_stream_id, policy, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&p.id)
            .bind(live_stream_id)
            .bind(p.policy.name())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a playback id of a live stream, and appends `event`.
    pub async fn delete_playback_id(
        &self,
        live_stream_id: &str,
        id: &str,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM playback_ids WHERE id = $1 AND live_stream_id = $2")
            .bind(id)
            .bind(live_stream_id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The live stream id and policy of a playback id.
    pub async fn playback_id(&self, id: &str) -> Result<Option<(String, Policy)>, StoreError> {
        let r = sqlx::query("SELECT live_stream_id, policy FROM playback_ids WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match r {
            Some(r) => {
                let policy: String = r.try_get("policy")?;
                Ok(Some((
                    r.try_get("live_stream_id")?,
                    Policy::from_name(&policy).ok_or_else(|| corrupt("playback_ids", policy))?,
                )))
            }
            None => Ok(None),
        }
    }

    /// Stores a signing key's public part.
    pub async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO signing_keys (id, public_key, created_at) VALUES ($1, $2, $3)")
            .bind(&k.id)
            .bind(URL_SAFE_NO_PAD.encode(k.public_key))
            .bind(k.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn key_row(r: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
        let pk: String = r.try_get("public_key")?;
        let raw = URL_SAFE_NO_PAD
            .decode(&pk)
            .map_err(|e| corrupt("signing_keys", e.to_string()))?;
        Ok(SigningKeyRecord {
            id: r.try_get("id")?,
            public_key: raw
                .try_into()
                .map_err(|_| corrupt("signing_keys", "key length"))?,
            created_at: r.try_get("created_at")?,
        })
    }

    /// One signing key.
    pub async fn signing_key(&self, id: &str) -> Result<Option<SigningKeyRecord>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(Self::key_row).transpose()
    }

    /// A page of signing keys, newest first.
    pub async fn signing_keys(
        &self,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = self.page(KEY_COLUMNS, "signing_keys", after, limit).await?;
        rows.iter().map(Self::key_row).collect()
    }

    /// Deletes a signing key.
    pub async fn delete_signing_key(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM signing_keys WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Stores an API token's digest.
    pub async fn insert_api_token(&self, t: &ApiTokenRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_tokens (id, name, scopes, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(scopes_text(&t.scopes))
            .bind(&t.token_hash)
            .bind(t.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn token_row(r: &AnyRow) -> Result<ApiTokenRecord, StoreError> {
        let scopes: String = r.try_get("scopes")?;
        Ok(ApiTokenRecord {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            scopes: parse_scopes(&scopes)?,
            token_hash: r.try_get("token_hash")?,
            created_at: r.try_get("created_at")?,
        })
    }

    /// The token whose digest is `hash`.
    pub async fn api_token_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<ApiTokenRecord>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(Self::token_row).transpose()
    }

    /// One token.
    pub async fn api_token(&self, id: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(Self::token_row).transpose()
    }

    /// A page of tokens, newest first.
    pub async fn api_tokens(
        &self,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let rows = self.page(TOKEN_COLUMNS, "api_tokens", after, limit).await?;
        rows.iter().map(Self::token_row).collect()
    }

    /// Deletes a token.
    pub async fn delete_api_token(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}
