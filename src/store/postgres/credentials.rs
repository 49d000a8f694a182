//! Users' sealed Bitbucket credentials on PostgreSQL. Every change is announced as
//! `credential:{user}` in its transaction, so every replica drops its cached copy.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use super::{CREDENTIAL_PREFIX, announce};
use crate::store::rows::floor_ms;
use crate::store::{CredentialInfo, StoreError, StoredCredential};

fn payload(user: &str) -> String {
    // User names are at most 255 characters, well within a notification's 8,000 bytes.
    format!("{CREDENTIAL_PREFIX}{user}")
}

pub(super) async fn put(
    pool: &PgPool,
    user: &str,
    sealed: &[u8],
    provisioned: bool,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO credentials (user_name, sealed, updated_at, provisioned, refused_at) \
         VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (user_name) DO UPDATE \
         SET sealed = EXCLUDED.sealed, updated_at = EXCLUDED.updated_at, \
         provisioned = EXCLUDED.provisioned, refused_at = NULL",
    )
    .bind(user)
    .bind(sealed)
    .bind(floor_ms(Utc::now()))
    .bind(provisioned)
    .execute(&mut *tx)
    .await?;
    announce(&mut tx, &payload(user)).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get(pool: &PgPool, user: &str) -> Result<Option<StoredCredential>, StoreError> {
    let row = sqlx::query(
        "SELECT sealed, provisioned, updated_at, refused_at FROM credentials \
         WHERE user_name = $1",
    )
    .bind(user)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(StoredCredential {
            sealed: row.try_get("sealed")?,
            provisioned: row.try_get("provisioned")?,
            updated_at: row.try_get("updated_at")?,
            refused_at: row.try_get("refused_at")?,
        })
    })
    .transpose()
}

pub(super) async fn refuse(
    pool: &PgPool,
    user: &str,
    sealed: &[u8],
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let marked = sqlx::query(
        "UPDATE credentials SET refused_at = COALESCE(refused_at, $2) \
         WHERE user_name = $1 AND sealed = $3",
    )
    .bind(user)
    .bind(floor_ms(at))
    .bind(sealed)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if marked {
        announce(&mut tx, &payload(user)).await?;
    }
    tx.commit().await?;
    Ok(marked)
}

pub(super) async fn list(pool: &PgPool) -> Result<Vec<CredentialInfo>, StoreError> {
    let rows = sqlx::query(
        "SELECT user_name, provisioned, updated_at, refused_at FROM credentials \
         ORDER BY user_name",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CredentialInfo {
                user: row.try_get("user_name")?,
                provisioned: row.try_get("provisioned")?,
                updated_at: row.try_get("updated_at")?,
                refused_at: row.try_get("refused_at")?,
            })
        })
        .collect()
}

pub(super) async fn delete(pool: &PgPool, user: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM credentials WHERE user_name = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0;
    if deleted {
        announce(&mut tx, &payload(user)).await?;
    }
    tx.commit().await?;
    Ok(deleted)
}
