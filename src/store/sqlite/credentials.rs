//! Users' sealed Bitbucket credentials on SQLite. Every change adds a row to `token_changes`
//! naming the user (and no token) in its transaction, so watchers in any process hear of it.

use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::millis;
use crate::store::rows::from_millis;
use crate::store::{CredentialInfo, StoreError, StoredCredential};

/// Announces a change to `user`'s credential, in the caller's transaction.
async fn announce(conn: &mut SqliteConnection, user: &str, at: i64) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO token_changes (token_id, user_name, at) VALUES ('', ?, ?)")
        .bind(user)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn put(
    pool: &SqlitePool,
    user: &str,
    sealed: &[u8],
    provisioned: bool,
) -> Result<(), StoreError> {
    let now = millis(Utc::now());
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO credentials (user_name, sealed, updated_at, provisioned, refused_at) \
         VALUES (?, ?, ?, ?, NULL) ON CONFLICT (user_name) DO UPDATE \
         SET sealed = excluded.sealed, updated_at = excluded.updated_at, \
         provisioned = excluded.provisioned, refused_at = NULL",
    )
    .bind(user)
    .bind(sealed)
    .bind(now)
    .bind(provisioned)
    .execute(&mut *tx)
    .await?;
    announce(&mut tx, user, now).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get(
    pool: &SqlitePool,
    user: &str,
) -> Result<Option<StoredCredential>, StoreError> {
    let row = sqlx::query(
        "SELECT sealed, provisioned, updated_at, refused_at FROM credentials \
         WHERE user_name = ?",
    )
    .bind(user)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(StoredCredential {
            sealed: row.try_get("sealed")?,
            provisioned: row.try_get("provisioned")?,
            updated_at: from_millis("updated_at", row.try_get("updated_at")?)?,
            refused_at: opt_time(&row, "refused_at")?,
        })
    })
    .transpose()
}

fn opt_time(
    row: &sqlx::sqlite::SqliteRow,
    col: &'static str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.try_get::<Option<i64>, _>(col)?
        .map(|ms| from_millis(col, ms))
        .transpose()
}

pub(super) async fn refuse(
    pool: &SqlitePool,
    user: &str,
    sealed: &[u8],
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let now = millis(at);
    let mut tx = pool.begin().await?;
    let marked = sqlx::query(
        "UPDATE credentials SET refused_at = COALESCE(refused_at, ?) \
         WHERE user_name = ? AND sealed = ?",
    )
    .bind(now)
    .bind(user)
    .bind(sealed)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if marked {
        announce(&mut tx, user, now).await?;
    }
    tx.commit().await?;
    Ok(marked)
}

pub(super) async fn list(pool: &SqlitePool) -> Result<Vec<CredentialInfo>, StoreError> {
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
                updated_at: from_millis("updated_at", row.try_get("updated_at")?)?,
                refused_at: opt_time(row, "refused_at")?,
            })
        })
        .collect()
}

pub(super) async fn delete(pool: &SqlitePool, user: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM credentials WHERE user_name = ?")
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0;
    if deleted {
        announce(&mut tx, user, millis(Utc::now())).await?;
    }
    tx.commit().await?;
    Ok(deleted)
}
