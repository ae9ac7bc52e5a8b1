//! Webhook endpoints, the delivery outbox and the attempt log.
//!
//! Every appended event gets one `webhook_deliveries` row per endpoint whose types match, in
//! the event's own transaction ([`fan_out`]). A node claims a due delivery with a lease (an
//! `UPDATE … WHERE lease_until <= now`, which one node wins), so each attempt is made once
//! even with several nodes on one database. A delivery is due only when no earlier delivery
//! of the same endpoint and object is still pending, which keeps `sequence` order.

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

/// A delivery that is due: which endpoint, which event, how many attempts so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    /// The endpoint.
    pub webhook_id: String,
    /// The event's position.
    pub position: i64,
    /// Attempts made.
    pub attempts: i64,
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
                 next_at, lease_until, state) VALUES ($1, $2, $3, 0, $4, 0, 'pending')",
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

    /// Up to `limit` deliveries due at `now` (pending, past `next_at`, not leased, of an
    /// endpoint not disabled, and first in line for their endpoint and object), oldest first.
    pub async fn due_deliveries(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.webhook_id, d.position, d.attempts FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.state = 'pending' AND d.next_at <= $1 AND d.lease_until <= $1 \
             AND w.status <> 'disabled' \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id \
                 AND e.object_id = d.object_id AND e.state = 'pending' AND e.position < d.position) \
             ORDER BY d.next_at, d.position LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DueDelivery {
                    webhook_id: r.try_get("webhook_id")?,
                    position: r.try_get("position")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// Claims a due delivery until `until` (Unix ms); `false` when another node (or an
    /// earlier claim) has it.
    pub async fn lease_delivery(
        &self,
        d: &DueDelivery,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE webhook_deliveries SET lease_until = $3 WHERE webhook_id = $1 AND position = $2 \
             AND state = 'pending' AND lease_until <= $4 AND attempts = $5",
        )
        .bind(&d.webhook_id)
        .bind(d.position)
        .bind(until)
        .bind(now)
        .bind(d.attempts)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records an attempt and what follows from it, in one transaction.
    pub async fn finish_attempt(
        &self,
        a: &AttemptRecord,
        end: &AttemptEnd,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let (state, next_at) = match end {
            AttemptEnd::Done => ("done", a.at),
            AttemptEnd::RetryAt(t) => ("pending", *t),
            AttemptEnd::Failed => ("failed", a.at),
            // Kept pending: enabling the endpoint again resumes it.
            AttemptEnd::Disable => ("pending", a.at),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $3, attempts = $4, next_at = $5, lease_until = 0 \
             WHERE webhook_id = $1 AND position = $2",
        )
        .bind(&a.webhook_id)
        .bind(a.position)
        .bind(state)
        .bind(a.attempt)
        .bind(next_at)
        .execute(&mut *tx)
        .await?;
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
        let status = match end {
            AttemptEnd::Done => Some(("enabled", "failing")),
            AttemptEnd::Failed => Some(("failing", "enabled")),
            AttemptEnd::Disable => Some(("disabled", "")),
            AttemptEnd::RetryAt(_) => None,
        };
        if let Some((to, from)) = status {
            // Done clears `failing`; Failed marks an enabled endpoint; 410 disables any.
            let q = if from.is_empty() {
                "UPDATE webhooks SET status = $2, updated_at = $3 WHERE id = $1"
            } else {
                "UPDATE webhooks SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4"
            };
            let mut q = sqlx::query(q).bind(&a.webhook_id).bind(to).bind(a.at);
            if !from.is_empty() {
                q = q.bind(from);
            }
            q.execute(&mut *tx).await?;
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
                 lease_until, state) VALUES ($1, $2, $3, 0, $4, 0, 'pending') \
                 ON CONFLICT (webhook_id, position) DO UPDATE SET state = 'pending', attempts = 0, \
                 next_at = $4, lease_until = 0",
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
