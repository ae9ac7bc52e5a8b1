//! Simulcast targets: where a live stream is restreamed, with the status its pusher reports.

use super::{Store, StoreError, append, corrupt};
use crate::events::NewEvent;
use crate::simulcast::{TargetRecord, TargetStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

const COLUMNS: &str =
    "id, live_stream_id, url, stream_key, status, error, status_changed_at, created_at";

fn target_row(r: &AnyRow) -> Result<TargetRecord, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(TargetRecord {
        id: r.try_get("id")?,
        live_stream_id: r.try_get("live_stream_id")?,
        url: r.try_get("url")?,
        stream_key: r.try_get("stream_key")?,
        status: TargetStatus::from_name(&status)
            .ok_or_else(|| corrupt("simulcast_targets", status))?,
        error: r.try_get("error")?,
        status_changed_at: r.try_get("status_changed_at")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Adds a target, unless its live stream has `max` already (then `Ok(false)`). The caller
    /// checks that the live stream exists.
    pub async fn insert_simulcast_target(
        &self,
        t: &TargetRecord,
        max: usize,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM simulcast_targets WHERE live_stream_id = $1")
                .bind(&t.live_stream_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
        if usize::try_from(n).unwrap_or(usize::MAX) >= max {
            return Ok(false);
        }
        sqlx::query(&format!(
            "INSERT INTO simulcast_targets ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&t.id)
        .bind(&t.live_stream_id)
        .bind(&t.url)
        .bind(&t.stream_key)
        .bind(t.status.name())
        .bind(&t.error)
        .bind(t.status_changed_at)
        .bind(t.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One target.
    pub async fn simulcast_target(&self, id: &str) -> Result<Option<TargetRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM simulcast_targets WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(target_row)
        .transpose()
    }

    /// A live stream's targets, oldest first.
    pub async fn simulcast_targets(
        &self,
        live_stream_id: &str,
    ) -> Result<Vec<TargetRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM simulcast_targets WHERE live_stream_id = $1 \
             ORDER BY created_at, id"
        ))
        .bind(live_stream_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(target_row).collect()
    }

    /// Records a target's status (and error), appending `event` in the same transaction when
    /// given. `Ok(false)` when the target is gone.
    pub async fn set_simulcast_status(
        &self,
        id: &str,
        status: TargetStatus,
        error: Option<&str>,
        at: i64,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE simulcast_targets SET status = $2, error = $3, status_changed_at = $4 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(status.name())
        .bind(error)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(e) = event {
            append(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a target of `live_stream_id`, appending `event` (its `idle`, when it was
    /// pushing) in the same transaction.
    pub async fn delete_simulcast_target(
        &self,
        live_stream_id: &str,
        id: &str,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM simulcast_targets WHERE id = $1 AND live_stream_id = $2")
            .bind(id)
            .bind(live_stream_id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(e) = event {
            append(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
