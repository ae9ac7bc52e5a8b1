//! Webhook endpoints, the delivery outbox and the attempt log.
//!
//! Every appended event gets one `webhook_deliveries` row per endpoint whose types match, in
//! the event's own transaction ([`fan_out`]). A node claims due deliveries with a lease (one
//! `UPDATE … WHERE lease_until <= now … RETURNING`, which one node wins per row), so each
//! attempt is made once even with several nodes on one database. A delivery is due only when
//! no earlier delivery of the same endpoint and object is still pending, which keeps
//! `sequence` order. Delivered rows leave the outbox; the attempts table keeps the record.

use super::{Listed, Store, StoreError, corrupt};
use crate::events::{EventRecord, type_matches};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A webhook endpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRecord {
    /// `wh_…`.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// For humans.
    pub description: String,
    /// Type patterns (`*`, `live_stream.*`, `live_stream.active`).
    pub event_types: Vec<String>,
    /// `whsec_…`.
    pub secret: String,
    /// The secret before the last rotation, and until when (Unix ms) it still signs.
    pub previous: Option<(String, i64)>,
    /// `enabled`, `disabled` or `failing`.
    pub status: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

impl Listed for WebhookRecord {
    fn cursor(&self) -> super::Cursor {
        super::Cursor {
            created_at: self.created_at,
            id: self.id.clone(),
        }
    }
}

/// A delivery that is due, with what its attempt needs: the endpoint and the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    /// The endpoint.
    pub webhook_id: String,
    /// The event's position.
    pub position: i64,
    /// Attempts made.
    pub attempts: i64,
    /// The endpoint's URL.
    pub url: String,
    /// Its secret.
    pub secret: String,
    /// Its previous secret and until when it signs.
    pub previous: Option<(String, i64)>,
    /// The event.
    pub event: EventRecord,
}

/// How an attempt ended, for the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Delivered.
    Done,
    /// Try again at this time (Unix ms).
    RetryAt(i64),
    /// The schedule is exhausted: the endpoint is marked failing.
    Failed,
    /// The receiver answered 410: the endpoint is disabled.
    Disable,
}

/// One attempt, as the deliveries route shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The endpoint.
    pub webhook_id: String,
    /// The event's position.
    pub position: i64,
    /// `evt_…`.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// 1-based.
    pub attempt: i64,
    /// Unix ms.
    pub at: i64,
    /// The answer's status, if any.
    pub status_code: Option<i64>,
    /// How long it took.
    pub duration_ms: i64,
    /// Why it failed (no answer, or not 2xx).
    pub error: Option<String>,
    /// `delivered`, `retrying`, `failed` or `disabled`.
    pub outcome: String,
}

const HOOK_COLUMNS: &str = "id, url, description, event_types, secret, previous_secret, \
     previous_until, status, created_at, updated_at";

fn hook_row(r: &AnyRow) -> Result<WebhookRecord, StoreError> {
    let types: String = r.try_get("event_types")?;
    let previous: Option<String> = r.try_get("previous_secret")?;
    let until: Option<i64> = r.try_get("previous_until")?;
    Ok(WebhookRecord {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        event_types: serde_json::from_str(&types)
            .map_err(|e| corrupt("webhooks", e.to_string()))?,
        secret: r.try_get("secret")?,
        previous: previous.zip(until),
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Queues `e` for every endpoint (not disabled) whose types match, in transaction `tx`.
pub(super) async fn fan_out(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    e: &EventRecord,
) -> Result<(), StoreError> {
    let hooks = sqlx::query("SELECT id, event_types FROM webhooks WHERE status <> 'disabled'")
        .fetch_all(&mut **tx)
        .await?;
    for h in &hooks {
        let id: String = h.try_get("id")?;
        let types: String = h.try_get("event_types")?;
        let types: Vec<String> =
            serde_json::from_str(&types).map_err(|err| corrupt("webhooks", err.to_string()))?;
        if types.iter().any(|t| type_matches(t, &e.kind)) {
            sqlx::query(
                "INSERT INTO webhook_deliveries (webhook_id, position, object_id, attempts, \
                 next_at, lease_owner, lease_until, state) VALUES ($1, $2, $3, 0, $4, '', 0, 'pending')",
            )
            .bind(&id)
            .bind(e.position)
            .bind(&e.object_id)
            .bind(e.at)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

impl Store {
    /// Stores a new endpoint.
    pub async fn insert_webhook(&self, w: &WebhookRecord) -> Result<(), StoreError> {
        let types = serde_json::to_string(&w.event_types)
            .map_err(|e| corrupt("webhooks", e.to_string()))?;
        sqlx::query(
            "INSERT INTO webhooks (id, url, description, event_types, secret, previous_secret, \
             previous_until, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $8)",
        )
        .bind(&w.id)
        .bind(&w.url)
        .bind(&w.description)
        .bind(types)
        .bind(&w.secret)
        .bind(&w.status)
        .bind(w.created_at)
        .bind(w.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One endpoint.
    pub async fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>, StoreError> {
        let q = format!("SELECT {HOOK_COLUMNS} FROM webhooks WHERE id = $1");
        match sqlx::query(&q).bind(id).fetch_optional(&self.pool).await? {
            Some(r) => Ok(Some(hook_row(&r)?)),
            None => Ok(None),
        }
    }

    /// A page of endpoints, newest first.
    pub async fn webhooks(
        &self,
        after: Option<&super::Cursor>,
        limit: u32,
    ) -> Result<Vec<WebhookRecord>, StoreError> {
        self.page(HOOK_COLUMNS, "webhooks", after, limit)
            .await?
            .iter()
            .map(hook_row)
            .collect()
    }

    /// Writes every field of `w` but its id and creation time.
    pub async fn update_webhook(&self, w: &WebhookRecord) -> Result<bool, StoreError> {
        let types = serde_json::to_string(&w.event_types)
            .map_err(|e| corrupt("webhooks", e.to_string()))?;
        let (prev, until) = match &w.previous {
            Some((s, u)) => (Some(s.clone()), Some(*u)),
            None => (None, None),
        };
        let r = sqlx::query(
            "UPDATE webhooks SET url = $2, description = $3, event_types = $4, secret = $5, \
             previous_secret = $6, previous_until = $7, status = $8, updated_at = $9 WHERE id = $1",
        )
        .bind(&w.id)
        .bind(&w.url)
        .bind(&w.description)
        .bind(types)
        .bind(&w.secret)
        .bind(prev)
        .bind(until)
        .bind(&w.status)
        .bind(w.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes an endpoint with its outbox and attempts.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in ["webhook_deliveries", "webhook_attempts"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE webhook_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Claims, for `owner` until `until` (Unix ms), up to `limit` deliveries due at `now`:
    /// pending, past `next_at`, not leased, of an endpoint not disabled, first in line for
    /// their endpoint and object, and within `per_endpoint` leases per endpoint counting those
    /// already out (on any node), so a backlog or a dead receiver at one endpoint never
    /// holds up the others. One statement: each delivery is claimed by one node. Returns the
    /// claimed deliveries with their endpoint and event, oldest first.
    pub async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        per_endpoint: u32,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // Read the candidates without holding the write lock: the endpoints with due
        // deliveries and free lease slots (few rows), then each one's first due deliveries,
        // so a dead endpoint's backlog is never scanned.
        let endpoints = sqlx::query(
            "SELECT w.id, (SELECT COUNT(*) FROM webhook_deliveries l WHERE l.webhook_id = w.id \
                 AND l.state = 'pending' AND l.lease_until > $1) AS leased \
             FROM webhooks w WHERE w.status <> 'disabled' AND EXISTS (SELECT 1 FROM \
                 webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending' \
                 AND d.next_at <= $1 AND d.lease_until <= $1)",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut candidates: Vec<(String, i64, i64)> = Vec::new();
        for e in &endpoints {
            let id: String = e.try_get("id")?;
            let leased: i64 = e.try_get("leased")?;
            let free = i64::from(per_endpoint) - leased;
            if free <= 0 {
                continue;
            }
            let rows = sqlx::query(
                "SELECT d.position, d.next_at FROM webhook_deliveries d \
                 WHERE d.webhook_id = $1 AND d.state = 'pending' AND d.next_at <= $2 \
                 AND d.lease_until <= $2 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                     WHERE e.webhook_id = d.webhook_id AND e.object_id = d.object_id \
                     AND e.state = 'pending' AND e.position < d.position) \
                 ORDER BY d.next_at, d.position LIMIT $3",
            )
            .bind(&id)
            .bind(now)
            .bind(free.min(i64::from(limit)))
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                candidates.push((id.clone(), r.try_get("position")?, r.try_get("next_at")?));
            }
        }
        candidates.sort_by_key(|c| (c.2, c.1));
        candidates.truncate(limit as usize);
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // Claim them in one short write: a row another node took meanwhile is left out.
        let mut q = String::from(
            "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
             WHERE state = 'pending' AND lease_until <= $3 AND (",
        );
        for k in 0..candidates.len() {
            if k > 0 {
                q.push_str(" OR ");
            }
            q.push_str(&format!(
                "(webhook_id = ${} AND position = ${})",
                4 + 2 * k,
                5 + 2 * k
            ));
        }
        q.push_str(") RETURNING webhook_id");
        let mut update = sqlx::query(&q).bind(owner).bind(until).bind(now);
        for (webhook_id, position, _) in &candidates {
            update = update.bind(webhook_id).bind(*position);
        }
        let claimed = update.fetch_all(&self.pool).await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT d.webhook_id, d.position, d.attempts, w.url, w.secret, w.previous_secret, \
                 w.previous_until, ev.id AS event_id, ev.type, ev.object_type, ev.object_id, \
                 ev.sequence, ev.at, ev.data \
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             JOIN events ev ON ev.position = d.position \
             WHERE d.lease_owner = $1 AND d.lease_until = $2 AND d.state = 'pending' \
             ORDER BY d.next_at, d.position",
        )
        .bind(owner)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let previous: Option<String> = r.try_get("previous_secret")?;
                let until: Option<i64> = r.try_get("previous_until")?;
                Ok(DueDelivery {
                    webhook_id: r.try_get("webhook_id")?,
                    position: r.try_get("position")?,
                    attempts: r.try_get("attempts")?,
                    url: r.try_get("url")?,
                    secret: r.try_get("secret")?,
                    previous: previous.zip(until),
                    event: EventRecord {
                        position: r.try_get("position")?,
                        id: r.try_get("event_id")?,
                        kind: r.try_get("type")?,
                        object_type: r.try_get("object_type")?,
                        object_id: r.try_get("object_id")?,
                        sequence: r.try_get("sequence")?,
                        at: r.try_get("at")?,
                        data: r.try_get("data")?,
                    },
                })
            })
            .collect()
    }

    /// Records finished attempts and what follows from each, in one transaction: a
    /// delivered or exhausted delivery leaves the outbox, a retry gets its time, 410
    /// disables the endpoint (its deliveries wait, pending, for it to be enabled again).
    pub async fn finish_attempts(
        &self,
        done: &[(AttemptRecord, AttemptEnd)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (a, end) in done {
            let r = match end {
                AttemptEnd::Done | AttemptEnd::Failed => {
                    sqlx::query(
                        "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND position = $2",
                    )
                    .bind(&a.webhook_id)
                    .bind(a.position)
                    .execute(&mut *tx)
                    .await?
                }
                AttemptEnd::RetryAt(_) | AttemptEnd::Disable => {
                    let next_at = match end {
                        AttemptEnd::RetryAt(t) => *t,
                        _ => a.at,
                    };
                    sqlx::query(
                        "UPDATE webhook_deliveries SET attempts = $3, next_at = $4, lease_owner = '', \
                         lease_until = 0 WHERE webhook_id = $1 AND position = $2",
                    )
                    .bind(&a.webhook_id)
                    .bind(a.position)
                    .bind(a.attempt)
                    .bind(next_at)
                    .execute(&mut *tx)
                    .await?
                }
            };
            if r.rows_affected() == 0 {
                // The endpoint was deleted meanwhile, with its outbox: nothing to record.
                continue;
            }
            sqlx::query(
                "INSERT INTO webhook_attempts (webhook_id, position, event_id, event_type, attempt, at, \
                 status_code, duration_ms, error, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&a.webhook_id)
            .bind(a.position)
            .bind(&a.event_id)
            .bind(&a.event_type)
            .bind(a.attempt)
            .bind(a.at)
            .bind(a.status_code)
            .bind(a.duration_ms)
            .bind(a.error.clone())
            .bind(&a.outcome)
            .execute(&mut *tx)
            .await?;
            // Done clears `failing`; Failed marks an enabled endpoint; 410 disables any.
            let status = match end {
                AttemptEnd::Done => Some(("enabled", Some("failing"))),
                AttemptEnd::Failed => Some(("failing", Some("enabled"))),
                AttemptEnd::Disable => Some(("disabled", None)),
                AttemptEnd::RetryAt(_) => None,
            };
            match status {
                Some((to, Some(from))) => {
                    sqlx::query(
                        "UPDATE webhooks SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4",
                    )
                    .bind(&a.webhook_id)
                    .bind(to)
                    .bind(a.at)
                    .bind(from)
                    .execute(&mut *tx)
                    .await?;
                }
                Some((to, None)) => {
                    sqlx::query("UPDATE webhooks SET status = $2, updated_at = $3 WHERE id = $1")
                        .bind(&a.webhook_id)
                        .bind(to)
                        .bind(a.at)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {}
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The event at `position`.
    pub async fn event_at(&self, position: i64) -> Result<Option<EventRecord>, StoreError> {
        let q = format!(
            "SELECT {} FROM events WHERE position = $1",
            super::EVENT_COLUMNS
        );
        match sqlx::query(&q)
            .bind(position)
            .fetch_optional(&self.pool)
            .await?
        {
            Some(r) => Ok(Some(super::event_row(&r)?)),
            None => Ok(None),
        }
    }

    /// A page of an endpoint's attempts, newest first; `before` is the previous page's last
    /// `(at, position, attempt)`.
    pub async fn attempts(
        &self,
        webhook_id: &str,
        before: Option<(i64, i64, i64)>,
        limit: u32,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let cols = "webhook_id, position, event_id, event_type, attempt, at, status_code, \
                    duration_ms, error, outcome";
        let order = "ORDER BY at DESC, position DESC, attempt DESC";
        let rows = match before {
            Some((at, pos, attempt)) => {
                sqlx::query(&format!(
                    "SELECT {cols} FROM webhook_attempts WHERE webhook_id = $1 AND \
                     (at < $2 OR (at = $2 AND (position < $3 OR (position = $3 AND attempt < $4)))) \
                     {order} LIMIT $5"
                ))
                .bind(webhook_id)
                .bind(at)
                .bind(pos)
                .bind(attempt)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {cols} FROM webhook_attempts WHERE webhook_id = $1 {order} LIMIT $2"
                ))
                .bind(webhook_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(AttemptRecord {
                    webhook_id: r.try_get("webhook_id")?,
                    position: r.try_get("position")?,
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("event_type")?,
                    attempt: r.try_get("attempt")?,
                    at: r.try_get("at")?,
                    status_code: r.try_get("status_code")?,
                    duration_ms: r.try_get("duration_ms")?,
                    error: r.try_get("error")?,
                    outcome: r.try_get("outcome")?,
                })
            })
            .collect()
    }

    /// Queues again, for endpoint `w`, every event at or after `since` (Unix ms) whose type
    /// it takes; returns how many.
    pub async fn replay(&self, w: &WebhookRecord, since: i64, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT position, type, object_id FROM events WHERE at >= $1 ORDER BY position",
        )
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        let mut n = 0;
        for r in &rows {
            let kind: String = r.try_get("type")?;
            if !w.event_types.iter().any(|t| type_matches(t, &kind)) {
                continue;
            }
            let position: i64 = r.try_get("position")?;
            let object: String = r.try_get("object_id")?;
            sqlx::query(
                "INSERT INTO webhook_deliveries (webhook_id, position, object_id, attempts, next_at, \
                 lease_owner, lease_until, state) VALUES ($1, $2, $3, 0, $4, '', 0, 'pending') \
                 ON CONFLICT (webhook_id, position) DO UPDATE SET state = 'pending', attempts = 0, \
                 next_at = $4, lease_owner = '', lease_until = 0",
            )
            .bind(&w.id)
            .bind(position)
            .bind(object)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }
}
