//! Expiry notices and the tokens they warn of, on SQLite: the shared SQL of
//! [`crate::store::sql`] run on the pool.

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool};

use crate::store::rows::token_from_row;
use crate::store::sql;
use crate::store::{NoticeKey, NoticeStep, StoreError};
use crate::token::TokenRecord;

pub(super) async fn expiring(
    pool: &SqlitePool,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<TokenRecord>, StoreError> {
    let rows = sql::expiring_tokens::<Sqlite>(now, until, limit)
        .build()
        .fetch_all(pool)
        .await?;
    rows.iter().map(token_from_row).collect()
}

pub(super) async fn claim(
    pool: &SqlitePool,
    key: &NoticeKey,
    claim: &str,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let held = sql::claim_notice::<Sqlite>(key, claim, now, stale_before)
        .build()
        .fetch_optional(pool)
        .await?;
    Ok(held.is_some())
}

pub(super) async fn settle(
    pool: &SqlitePool,
    key: &NoticeKey,
    claim: &str,
    step: NoticeStep,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sql::settle_notice::<Sqlite>(key, claim, step, now)
        .build()
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn purge(pool: &SqlitePool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sql::purge_notices::<Sqlite>(before)
        .build()
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
