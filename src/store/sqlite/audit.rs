//! The SQLite audit trail, kept as segments ([`super::segment`]): a batch of events is one row,
//! so writing an event costs a share of one insert instead of a row and its index entries, and
//! the table takes about a fifth of the space. Queries pick segments by time span, type and
//! key, then read the events inside; purges delete whole segments and rewrite the one at the
//! boundary.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::segment::{self, Encoded, ID_STRIDE, MAX_EVENTS};
use crate::audit::{AuditEvent, AuditQuery, StoredAuditEvent, stored_text};
use crate::store::StoreError;
use crate::store::rows::{AUDIT_COLUMNS, audit_from_row, ceil_ms, floor_ms};

/// Segments read per query round trip.
const SEGMENTS_PER_READ: i64 = 16;

/// Writes `events` in one transaction: all of them or, on an error, none.
pub(super) async fn insert(pool: &SqlitePool, events: &[AuditEvent]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for chunk in events.chunks(MAX_EVENTS) {
        insert_segment(&mut tx, &segment::encode(&numbered(chunk))).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// `events` (at most [`MAX_EVENTS`]) numbered from 0 in their order: their indices in a new
/// segment.
fn numbered(events: &[AuditEvent]) -> Vec<(u16, &AuditEvent)> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| (u16::try_from(i).expect("MAX_EVENTS fits in u16"), e))
        .collect()
}

async fn insert_segment(conn: &mut SqliteConnection, s: &Encoded) -> Result<(), StoreError> {
    let id = sqlx::query(
        "INSERT INTO audit_segments (format, first_time, last_time, events, kinds, body) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(segment::FORMAT)
    .bind(s.first_time)
    .bind(s.last_time)
    .bind(s.events)
    .bind(s.kinds)
    .bind(&s.body)
    .execute(&mut *conn)
    .await?
    .last_insert_rowid();
    insert_keys(conn, id, s).await
}

async fn insert_keys(conn: &mut SqliteConnection, id: i64, s: &Encoded) -> Result<(), StoreError> {
    each_key(
        conn,
        "INSERT OR IGNORE INTO audit_segment_keys (key, segment_id) VALUES (?, ?)",
        id,
        &s.keys,
    )
    .await
}

/// Deletes `keys` of segment `id`, each by its primary key (the table has no index on the
/// segment alone).
async fn delete_keys(
    conn: &mut SqliteConnection,
    id: i64,
    keys: impl IntoIterator<Item = &String>,
) -> Result<(), StoreError> {
    each_key(
        conn,
        "DELETE FROM audit_segment_keys WHERE key = ? AND segment_id = ?",
        id,
        keys,
    )
    .await
}

/// Runs `statement`, which binds a key and then a segment id, for each of `keys` of segment `id`.
async fn each_key(
    conn: &mut SqliteConnection,
    statement: &'static str,
    id: i64,
    keys: impl IntoIterator<Item = &String>,
) -> Result<(), StoreError> {
    for key in keys {
        sqlx::query(statement)
            .bind(key)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// An event's place in the order of the trail: its time in milliseconds, then its id.
fn order_key(e: &StoredAuditEvent) -> (i64, i64) {
    (e.event.time.timestamp_millis(), e.id)
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// One page of events, newest first, after the cursor: segments are read newest first (by
/// their latest event) until no unread one can hold an event newer than the page's last.
pub(super) async fn query(
    pool: &SqlitePool,
    q: &AuditQuery,
) -> Result<Vec<StoredAuditEvent>, StoreError> {
    let limit = q.limit as usize;
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Bounds in stored milliseconds, as the row backend applies them.
    let since = q.since.map(|t| millis(ceil_ms(t)));
    let until = q.until.map(|t| millis(ceil_ms(t)));
    let after = q.after.map(|(t, id)| (millis(floor_ms(t)), id));
    // Compared as stored (U+0000 as U+FFFD), as the row backend compares them.
    let user = q.user.as_deref().map(stored_text);
    let token_id = q.token_id.as_deref().map(stored_text);
    let keep = |e: &StoredAuditEvent| {
        let at = order_key(e);
        since.is_none_or(|s| at.0 >= s)
            && until.is_none_or(|u| at.0 < u)
            && after.is_none_or(|a| at < a)
            && q.kind.is_none_or(|k| e.event.kind == k)
            && user
                .as_deref()
                .is_none_or(|u| e.event.user.as_deref() == Some(u))
            && token_id
                .as_deref()
                .is_none_or(|t| e.event.token_id.as_deref() == Some(t))
    };
    let mut page: Vec<StoredAuditEvent> = Vec::new();
    let mut cursor: Option<(i64, i64)> = None;
    'reading: loop {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT id, format, last_time, body FROM audit_segments s WHERE 1 = 1",
        );
        if let Some(since) = since {
            qb.push(" AND last_time >= ").push_bind(since);
        }
        if let Some(until) = until {
            qb.push(" AND first_time < ").push_bind(until);
        }
        if let Some((at, _)) = after {
            qb.push(" AND first_time <= ").push_bind(at);
        }
        if let Some(kind) = q.kind {
            qb.push(" AND kinds & ")
                .push_bind(segment::kind_bit(kind))
                .push(" != 0");
        }
        for key in [
            user.as_deref().map(segment::user_key),
            token_id.as_deref().map(segment::token_key),
        ]
        .into_iter()
        .flatten()
        {
            qb.push(
                " AND EXISTS (SELECT 1 FROM audit_segment_keys k WHERE k.segment_id = s.id AND k.key = ",
            )
            .push_bind(key)
            .push(")");
        }
        if let Some((last_time, id)) = cursor {
            qb.push(" AND (last_time, id) < (")
                .push_bind(last_time)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        qb.push(" ORDER BY last_time DESC, id DESC LIMIT ")
            .push_bind(SEGMENTS_PER_READ);
        let segments = qb.build().fetch_all(pool).await?;
        let Some(last) = segments.last() else {
            break;
        };
        cursor = Some((last.try_get("last_time")?, last.try_get("id")?));
        for row in &segments {
            let last_time: i64 = row.try_get("last_time")?;
            if page.len() == limit && last_time < order_key(&page[limit - 1]).0 {
                break 'reading;
            }
            page.extend(decode_row(row)?.into_iter().filter(|e| keep(e)));
            page.sort_unstable_by_key(|e| std::cmp::Reverse(order_key(e)));
            page.truncate(limit);
        }
        if segments.len() < SEGMENTS_PER_READ as usize {
            break;
        }
    }
    Ok(page)
}

fn decode_row(row: &SqliteRow) -> Result<Vec<StoredAuditEvent>, StoreError> {
    segment::decode(
        row.try_get("id")?,
        row.try_get("format")?,
        row.try_get::<&[u8], _>("body")?,
    )
}

/// Deletes at most `batch` of the oldest events (by time, then id) that are older than
/// `older_than` or beyond the newest `max_rows`; returns how many it deleted.
pub(super) async fn purge(
    pool: &SqlitePool,
    older_than: DateTime<Utc>,
    max_rows: Option<u64>,
    batch: u32,
) -> Result<u64, StoreError> {
    if batch == 0 {
        return Ok(0);
    }
    let batch = batch as usize;
    // Read and rewrite under the write lock, so a concurrent purge cannot rewrite the same
    // segment from an older read.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // The oldest `excess` events are beyond `max_rows`.
    let excess = match max_rows {
        Some(max) => {
            let total: i64 =
                sqlx::query_scalar("SELECT COALESCE(SUM(events), 0) FROM audit_segments")
                    .fetch_one(&mut *tx)
                    .await?;
            u64::try_from(total).unwrap_or(0).saturating_sub(max)
        }
        None => 0,
    };
    let by_age = millis(ceil_ms(older_than));

    // The oldest `batch` events, with the segments they came from.
    let mut oldest: Vec<StoredAuditEvent> = Vec::new();
    let mut segments: BTreeMap<i64, Vec<StoredAuditEvent>> = BTreeMap::new();
    let mut cursor = (i64::MIN, i64::MIN);
    'reading: loop {
        let rows = sqlx::query(
            "SELECT id, format, first_time, body FROM audit_segments \
             WHERE (first_time, id) > (?, ?) ORDER BY first_time, id LIMIT ?",
        )
        .bind(cursor.0)
        .bind(cursor.1)
        .bind(SEGMENTS_PER_READ)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let first_time: i64 = row.try_get("first_time")?;
            let id: i64 = row.try_get("id")?;
            cursor = (first_time, id);
            if oldest.len() == batch && first_time > order_key(&oldest[batch - 1]).0 {
                break 'reading;
            }
            let events = decode_row(row)?;
            oldest.extend(events.iter().cloned());
            oldest.sort_unstable_by_key(order_key);
            oldest.truncate(batch);
            segments.insert(id, events);
        }
        if rows.len() < SEGMENTS_PER_READ as usize {
            break;
        }
    }
    // Both conditions select a prefix of the trail's order: take it while one holds.
    let mut doomed: Vec<i64> = oldest
        .iter()
        .enumerate()
        .take_while(|(i, e)| (*i as u64) < excess || order_key(e).0 < by_age)
        .map(|(_, e)| e.id)
        .collect();
    doomed.sort_unstable();
    if doomed.is_empty() {
        return Ok(0);
    }
    for (segment_id, events) in segments {
        let (gone, kept): (Vec<_>, Vec<_>) = events
            .iter()
            .partition(|e| doomed.binary_search(&e.id).is_ok());
        if gone.is_empty() {
            continue;
        }
        let before = segment::keys_of(events.iter().map(|e| &e.event));
        if kept.is_empty() {
            delete_keys(&mut tx, segment_id, &before).await?;
            sqlx::query("DELETE FROM audit_segments WHERE id = ?")
                .bind(segment_id)
                .execute(&mut *tx)
                .await?;
            continue;
        }
        let kept: Vec<(u16, &AuditEvent)> = kept
            .iter()
            .map(|e| {
                let index = u16::try_from(e.id - segment_id * ID_STRIDE).expect("an index");
                (index, &e.event)
            })
            .collect();
        let s = segment::encode(&kept);
        sqlx::query(
            "UPDATE audit_segments SET first_time = ?, last_time = ?, events = ?, kinds = ?, body = ? \
             WHERE id = ?",
        )
        .bind(s.first_time)
        .bind(s.last_time)
        .bind(s.events)
        .bind(s.kinds)
        .bind(&s.body)
        .bind(segment_id)
        .execute(&mut *tx)
        .await?;
        // What the kept events hold is a subset of what the segment held.
        delete_keys(&mut tx, segment_id, before.difference(&s.keys)).await?;
    }
    tx.commit().await?;
    Ok(doomed.len() as u64)
}

/// Moves events stored as rows by a release before segments (`audit_events`) into segments,
/// in batches, then drops that table. Runs with the migrations; resumes if interrupted, and
/// may run in two processes at once (a CLI command and the gateway both migrate).
pub(super) async fn convert_rows(pool: &SqlitePool) -> Result<u64, StoreError> {
    let mut moved = 0;
    loop {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        // Looked at under the write lock: another process may have finished meanwhile.
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Ok(moved);
        }
        // Segment ids start above every row's id: no id an event had before is ever given to
        // another event (the moved ones get new ids).
        sqlx::query(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'audit_segments', 0 \
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'audit_segments')",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE sqlite_sequence SET seq = \
             MAX(seq, (SELECT COALESCE(MAX(id), 0) FROM audit_events) / ? + 1) \
             WHERE name = 'audit_segments'",
        )
        .bind(ID_STRIDE)
        .execute(&mut *tx)
        .await?;
        let rows = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {AUDIT_COLUMNS}, attributes FROM audit_events ORDER BY id LIMIT "
        ))
        .push_bind(MAX_EVENTS as i64)
        .build()
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else {
            sqlx::query("DROP TABLE audit_events")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(moved);
        };
        let last_id: i64 = last.try_get("id")?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            match audit_from_row(row) {
                Ok(stored) => events.push(stored.event),
                // Unreadable before as well; it must not keep every later start from working.
                Err(e) => tracing::warn!(
                    target: "tokengate::store",
                    id = row.try_get::<i64, _>("id").unwrap_or_default(),
                    error = %e,
                    "an audit row that cannot be read was left out of the move into segments"
                ),
            }
        }
        if !events.is_empty() {
            insert_segment(&mut tx, &segment::encode(&numbered(&events))).await?;
        }
        sqlx::query("DELETE FROM audit_events WHERE id <= ?")
            .bind(last_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        moved += events.len() as u64;
    }
}
