//! The SQLite backend, an embedded file for a single node and for a first run.
//!
//! Times are integer unix milliseconds. Token changes are written to `token_changes` in the
//! transaction that makes them; [`TokenStore::watch`] polls that table, so a change made by
//! another process on the same file (the CLI) reaches the gateway within a second.

mod audit;
mod backup;
mod credentials;
mod notices;
mod poll;
mod segment;

pub(crate) use segment::{FORMAT as SEGMENT_FORMAT, decode as decode_segment};

use std::path::Path;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, watch};

use super::rows::{self, ReadRow, corrupt, from_millis, token_from_row};
use super::sql::{self, Dialect};
use super::{
    AuditStore, Backend, Change, CredentialInfo, CredentialStore, LastUse, NoticeKey, NoticeStep,
    Reachable, Schema, StoreError, StoredCredential, TokenQuery, TokenRotation, TokenStore,
    TokenWrite, rotation_end,
};
use crate::audit::{AuditEvent, AuditQuery, StoredAuditEvent};
use crate::token::{NewToken, TokenId, TokenPatch, TokenRecord};

pub use backup::{BackupError, BackupSummary, backup};

/// The schema's migrations. A database migrated by a newer version (a migration this one does
/// not know) is accepted: migrations only add, so an older gateway keeps working on a newer
/// schema, which is what a rolling upgrade and a rollback need.
static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("migrations/sqlite");
    migrator.set_ignore_missing(true);
    migrator
});

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a query waits for a free connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`](super::Store) on an SQLite file.
pub struct SqliteStore {
    pool: SqlitePool,
    /// Dropped with the store, which ends every watcher task.
    alive: watch::Sender<()>,
}

impl SqliteStore {
    /// Opens `sqlite://relative/path.db`, `sqlite:///abs/path.db` or `sqlite::memory:`, creating
    /// the file (mode 0600) and its directory (0700) when missing, in WAL mode with
    /// `synchronous=FULL`: a write that returned survives an OS crash or a power loss.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::open(url, max_connections, true).await
    }

    /// As [`SqliteStore::connect`], but a file that does not exist is
    /// [`StoreError::NoDatabase`], and nothing is created.
    pub async fn open_existing(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::open(url, max_connections, false).await
    }

    async fn open(url: &str, max_connections: u32, create: bool) -> Result<Self, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)?
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let mut pool = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        if in_memory {
            // One connection, kept for the life of the pool: the database lives in it.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            let file = options.get_filename().to_path_buf();
            if create {
                create_private(&file)
                    .await
                    .map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
            } else if !tokio::fs::try_exists(&file).await.unwrap_or(false) {
                return Err(StoreError::NoDatabase { path: file });
            }
            options = options
                .create_if_missing(create)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full);
            pool = pool.max_connections(max_connections.max(1));
        }
        Ok(Self {
            pool: pool.connect_with(options).await?,
            alive: watch::channel(()).0,
        })
    }
}

/// Creates the database file's directory (0700) and the file itself, empty (0600), when they
/// are missing, before SQLite opens it: the file holds token hashes and sealed credentials, and
/// SQLite gives its WAL and shared-memory files the database file's mode. An existing
/// directory or file keeps its mode.
async fn create_private(file: &Path) -> std::io::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut dirs = tokio::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        dirs.mode(0o700);
        dirs.create(dir).await?;
    }
    let mut create = tokio::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    create.mode(0o600);
    match create.open(file).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl Dialect for Sqlite {
    type Time = i64;
    fn time(t: DateTime<Utc>) -> i64 {
        t.timestamp_millis()
    }
    const JSON_SELECT: &'static str = "attributes";
}

impl ReadRow for SqliteRow {
    fn opt_text(&self, col: &'static str) -> Result<Option<String>, StoreError> {
        self.try_get(col).map_err(|e| corrupt(col, e.to_string()))
    }
    fn opt_int(&self, col: &'static str) -> Result<Option<i64>, StoreError> {
        self.try_get(col).map_err(|e| corrupt(col, e.to_string()))
    }
    fn opt_time(&self, col: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt_int(col)?
            .map(|ms| from_millis(col, ms))
            .transpose()
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Records a token change for the watchers, in the caller's transaction.
async fn announce(conn: &mut SqliteConnection, id: &TokenId) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO token_changes (token_id, at) VALUES (?, ?)")
        .bind(id.as_str())
        .bind(millis(Utc::now()))
        .execute(conn)
        .await?;
    Ok(())
}

impl SqliteStore {
    /// Runs `update` (an `UPDATE tokens … RETURNING` the record; `None` writes nothing) on the
    /// token `id` if it is known and not revoked, announcing the change. IMMEDIATE takes the
    /// write lock before the read, so the record read is the one the update changes.
    async fn write_unrevoked(
        &self,
        id: &TokenId,
        update: Option<QueryBuilder<Sqlite>>,
    ) -> Result<TokenWrite, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::token_columns!(),
            " FROM tokens WHERE id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let before = match row.as_ref().map(token_from_row).transpose()? {
            Some(record) if record.revoked_at.is_none() => record,
            Some(revoked) => return Ok(TokenWrite::Revoked(revoked)),
            None => return Ok(TokenWrite::Unknown),
        };
        let Some(mut update) = update else {
            return Ok(TokenWrite::Written {
                after: before.clone(),
                before,
            });
        };
        let after = token_from_row(&update.build().fetch_one(&mut *tx).await?)?;
        announce(&mut tx, id).await?;
        tx.commit().await?;
        Ok(TokenWrite::Written { before, after })
    }
}

#[async_trait]
impl Reachable for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        MIGRATOR.run_direct(None, &mut *conn, false).await?;
        drop(conn);
        let moved = audit::convert_rows(&self.pool).await?;
        if moved > 0 {
            tracing::info!(target: "tokengate::store", events = moved, "audit events moved into segments");
        }
        Ok(())
    }

    async fn schema(&self) -> Result<Schema, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let table: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&mut *conn)
        .await?;
        let applied: Vec<(i64, bool)> = if table == 0 {
            Vec::new()
        } else {
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut *conn)
                .await?
        };
        Ok(Schema::compare(&MIGRATOR, &applied))
    }

    async fn insert_token(&self, token: &NewToken) -> Result<TokenRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sql::insert_token::<Sqlite>(token)
            .build()
            .fetch_one(&mut *tx)
            .await?;
        let record = token_from_row(&row)?;
        announce(&mut tx, &record.id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn get_token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::token_columns!(),
            " FROM tokens WHERE id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self, query: &TokenQuery) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sql::list_tokens::<Sqlite>(query)
            .build()
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn update_token(
        &self,
        id: &TokenId,
        patch: &TokenPatch,
    ) -> Result<TokenWrite, StoreError> {
        self.write_unrevoked(id, sql::update_token(id, patch)).await
    }

    async fn revoke_token(
        &self,
        id: &TokenId,
        at: DateTime<Utc>,
    ) -> Result<TokenWrite, StoreError> {
        self.write_unrevoked(id, Some(sql::revoke_token(id, at)))
            .await
    }

    async fn record_last_used(&self, uses: &[LastUse]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for u in uses {
            sqlx::query(
                "UPDATE tokens SET last_used_at = ?1, last_used_ip = ?2 \
                 WHERE id = ?3 AND (last_used_at IS NULL OR last_used_at < ?1)",
            )
            .bind(millis(u.at))
            .bind(u.ip.to_string())
            .bind(u.id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn count_active_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let n: i64 = sql::count_active::<Sqlite>(now)
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn rotate_token(
        &self,
        old: &TokenId,
        new: &NewToken,
        at: DateTime<Utc>,
        grace_until: Option<DateTime<Utc>>,
    ) -> Result<TokenRotation, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::token_columns!(),
            " FROM tokens WHERE id = ?"
        ))
        .bind(old.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let before = match row.as_ref().map(token_from_row).transpose()? {
            Some(record) if record.revoked_at.is_none() => record,
            Some(revoked) => return Ok(TokenRotation::Revoked(revoked)),
            None => return Ok(TokenRotation::Unknown),
        };
        let replaced_by: Option<String> =
            sqlx::query_scalar("SELECT replaced_by FROM tokens WHERE id = ?")
                .bind(old.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if let Some(by) = replaced_by.as_deref().and_then(TokenId::parse) {
            return Ok(TokenRotation::Replaced { record: before, by });
        }
        let new = token_from_row(
            &sql::insert_token::<Sqlite>(new)
                .build()
                .fetch_one(&mut *tx)
                .await?,
        )?;
        let (revoked_at, expires_at) = rotation_end(&before, at, grace_until);
        let after = token_from_row(
            &sql::end_rotated::<Sqlite>(old, &new.id, revoked_at, expires_at)
                .build()
                .fetch_one(&mut *tx)
                .await?,
        )?;
        announce(&mut tx, old).await?;
        announce(&mut tx, &new.id).await?;
        tx.commit().await?;
        Ok(TokenRotation::Rotated { before, after, new })
    }

    async fn expiring_tokens(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        notices::expiring(&self.pool, now, until, limit).await
    }

    async fn claim_notice(
        &self,
        key: &NoticeKey,
        claim: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        notices::claim(&self.pool, key, claim, now, stale_before).await
    }

    async fn settle_notice(
        &self,
        key: &NoticeKey,
        claim: &str,
        step: NoticeStep,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        notices::settle(&self.pool, key, claim, step, now).await
    }

    async fn purge_notices(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        notices::purge(&self.pool, before).await
    }

    async fn watch(&self) -> Result<mpsc::Receiver<Change>, StoreError> {
        // Start from what exists now: a change committed after `watch()` is never missed.
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM token_changes")
            .fetch_one(&self.pool)
            .await?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(poll::poll(
            self.pool.clone(),
            last,
            tx,
            self.alive.subscribe(),
        ));
        Ok(rx)
    }
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn put_credential(
        &self,
        user: &str,
        sealed: &[u8],
        provisioned: bool,
    ) -> Result<(), StoreError> {
        credentials::put(&self.pool, user, sealed, provisioned).await
    }

    async fn get_credential(&self, user: &str) -> Result<Option<StoredCredential>, StoreError> {
        credentials::get(&self.pool, user).await
    }

    async fn refuse_credential(
        &self,
        user: &str,
        sealed: &[u8],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        credentials::refuse(&self.pool, user, sealed, at).await
    }

    async fn list_credentials(&self) -> Result<Vec<CredentialInfo>, StoreError> {
        credentials::list(&self.pool).await
    }

    async fn delete_credential(&self, user: &str) -> Result<bool, StoreError> {
        credentials::delete(&self.pool, user).await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        audit::insert(&self.pool, events).await
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAuditEvent>, StoreError> {
        audit::query(&self.pool, query).await
    }

    async fn purge_audit(
        &self,
        older_than: DateTime<Utc>,
        max_rows: Option<u64>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        audit::purge(&self.pool, older_than, max_rows, batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that returned (a revocation answered 204) survives an OS crash or a power loss:
    /// WAL mode with every commit synced.
    #[tokio::test]
    async fn a_database_file_syncs_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::connect(&url, 2).await.unwrap();
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        assert_eq!(synchronous, 2, "synchronous=FULL");
    }
}
