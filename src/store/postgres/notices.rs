//! Expiry notices and the tokens they warn of, on PostgreSQL: the shared SQL of
//! [`crate::store::sql`] run on the pool.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres};

use crate::store::rows::token_from_row;
use crate::store::sql;
use crate::store::{NoticeKey, NoticeStep, StoreError};
use crate::token::TokenRecord;

pub(super) async fn expiring(
    pool: &PgPool,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<TokenRecord>, StoreError> {
    let rows = sql::expiring_tokens::<Postgres>(now, until, limit)
        .build()
        .fetch_all(pool)
        .await?;
    rows.iter().map(token_from_row).collect()
}

pub(super) async fn claim(
    pool: &PgPool,
    key: &NoticeKey,
    claim: &str,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let held = sql::claim_notice::<Postgres>(key, claim, now, stale_before)
        .build()
        .fetch_optional(pool)
        .await?;
    Ok(held.is_some())
}

pub(super) async fn settle(
    pool: &PgPool,
    key: &NoticeKey,
    claim: &str,
    step: NoticeStep,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sql::settle_notice::<Postgres>(key, claim, step, now)
        .build()
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn purge(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sql::purge_notices::<Postgres>(before)
        .build()
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
