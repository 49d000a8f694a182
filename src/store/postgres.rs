//! The PostgreSQL backend, for a tier of gateways sharing one database.
//!
//! Token changes are announced with `pg_notify('tokengate_tokens', id)` in the transaction that
//! makes them, and credential changes with `credential:{user}` on the same channel, so every
//! replica's [`TokenStore::watch`] hears of them once they commit ([`listen`]).

mod credentials;
mod listen;
mod notices;

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection as _, PgConnection, Postgres, QueryBuilder, Row};
use tokio::sync::{mpsc, watch};

use super::rows::{self, ReadRow, audit_from_row, corrupt, token_from_row};
use super::sql::{self, Dialect};
use super::{
    AuditStore, Backend, Change, CredentialInfo, CredentialStore, LastUse, NoticeKey, NoticeStep,
    Reachable, Schema, StoreError, StoredCredential, TokenQuery, TokenRotation, TokenStore,
    TokenWrite, rotation_end,
};
use crate::audit::{AuditEvent, AuditQuery, StoredAuditEvent};
use crate::token::{NewToken, TokenId, TokenPatch, TokenRecord};

/// The schema's migrations. A database migrated by a newer version (a migration this one does
/// not know) is accepted: migrations only add, so an older gateway keeps working on a newer
/// schema, which is what a rolling upgrade and a rollback need.
static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator
});

/// The notification channel that carries changed token ids.
const CHANNEL: &str = "tokengate_tokens";
/// How long a query waits for a connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A [`Store`](super::Store) on PostgreSQL.
pub struct PgStore {
    pool: PgPool,
    /// Kept to open each watcher's dedicated `LISTEN` connection.
    options: PgConnectOptions,
    /// Dropped with the store, which ends every watcher task.
    alive: watch::Sender<()>,
}

impl PgStore {
    /// Parses the URL and sets up a pool that connects on first use. A query that cannot get a
    /// connection within a few seconds fails with [`StoreError::Unavailable`].
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("tokengate");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.clone());
        Ok(Self {
            pool,
            options,
            alive: watch::channel(()).0,
        })
    }
}

impl PgStore {
    /// `e`, unless it is the pool's timeout, which hides why no connection could be made
    /// (the pool retries a refused connection until it gives up): then the error that a
    /// connection of its own meets, such as "connection refused" or a failed authentication.
    async fn explain(&self, e: sqlx::Error) -> StoreError {
        if !matches!(e, sqlx::Error::PoolTimedOut) {
            return e.into();
        }
        match tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&self.options)).await
        {
            Ok(Err(cause)) => StoreError::Unavailable(cause),
            Ok(Ok(_)) => e.into(),
            Err(_) => StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to PostgreSQL timed out after {ACQUIRE_TIMEOUT:?}"),
            ))),
        }
    }
}

impl Dialect for Postgres {
    type Time = DateTime<Utc>;
    fn time(t: DateTime<Utc>) -> DateTime<Utc> {
        t
    }
    const JSON_SELECT: &'static str = "attributes::text";
}

impl ReadRow for PgRow {
    fn opt_text(&self, col: &'static str) -> Result<Option<String>, StoreError> {
        self.try_get(col).map_err(|e| corrupt(col, e.to_string()))
    }
    fn opt_int(&self, col: &'static str) -> Result<Option<i64>, StoreError> {
        self.try_get(col).map_err(|e| corrupt(col, e.to_string()))
    }
    fn opt_time(&self, col: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.try_get(col).map_err(|e| corrupt(col, e.to_string()))
    }
}

/// The payload prefix of a credential change (then the user); a token change's payload is the
/// token id, which never holds a `:`.
const CREDENTIAL_PREFIX: &str = "credential:";

/// Announces a change, as its `payload`; delivered when the surrounding transaction commits.
async fn announce(conn: &mut PgConnection, payload: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

impl PgStore {
    /// Runs `update` (an `UPDATE tokens … RETURNING` the record; `None` writes nothing) on the
    /// token `id` if it is known and not revoked, announcing the change. The row stays locked
    /// from the read to the commit, so a concurrent write waits and then sees this one.
    async fn write_unrevoked(
        &self,
        id: &TokenId,
        update: Option<QueryBuilder<Postgres>>,
    ) -> Result<TokenWrite, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::token_columns!(),
            " FROM tokens WHERE id = $1 FOR UPDATE"
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
        announce(&mut tx, id.as_str()).await?;
        tx.commit().await?;
        Ok(TokenWrite::Written { before, after })
    }
}

#[async_trait]
impl Reachable for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[async_trait]
impl TokenStore for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // Acquire first, so that an unreachable database is `Unavailable`, not a migration error.
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => return Err(self.explain(e).await),
        };
        MIGRATOR.run_direct(None, &mut *conn, false).await?;
        Ok(())
    }

    async fn schema(&self) -> Result<Schema, StoreError> {
        let applied = async {
            let mut conn = self.pool.acquire().await?;
            let table: bool =
                sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(&mut *conn)
                    .await?;
            if !table {
                return Ok(Vec::new());
            }
            sqlx::query_as::<_, (i64, bool)>(
                "SELECT version, success FROM _sqlx_migrations ORDER BY version",
            )
            .fetch_all(&mut *conn)
            .await
        };
        match applied.await {
            Ok(applied) => Ok(Schema::compare(&MIGRATOR, &applied)),
            Err(e) => Err(self.explain(e).await),
        }
    }

    async fn insert_token(&self, token: &NewToken) -> Result<TokenRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sql::insert_token::<Postgres>(token)
            .build()
            .fetch_one(&mut *tx)
            .await?;
        let record = token_from_row(&row)?;
        announce(&mut tx, record.id.as_str()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn get_token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::token_columns!(),
            " FROM tokens WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self, query: &TokenQuery) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sql::list_tokens::<Postgres>(query)
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
        // Row locks in id order, so two gateways writing overlapping batches cannot deadlock.
        let mut sorted: Vec<&LastUse> = uses.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        let mut tx = self.pool.begin().await?;
        for u in sorted {
            sqlx::query(
                "UPDATE tokens SET last_used_at = $2, last_used_ip = $3 \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            )
            .bind(u.id.as_str())
            .bind(rows::floor_ms(u.at))
            .bind(u.ip.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn count_active_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let n: i64 = sql::count_active::<Postgres>(now)
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
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::token_columns!(),
            " FROM tokens WHERE id = $1 FOR UPDATE"
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
            sqlx::query_scalar("SELECT replaced_by FROM tokens WHERE id = $1")
                .bind(old.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if let Some(by) = replaced_by.as_deref().and_then(TokenId::parse) {
            return Ok(TokenRotation::Replaced { record: before, by });
        }
        let new = token_from_row(
            &sql::insert_token::<Postgres>(new)
                .build()
                .fetch_one(&mut *tx)
                .await?,
        )?;
        let (revoked_at, expires_at) = rotation_end(&before, at, grace_until);
        let after = token_from_row(
            &sql::end_rotated::<Postgres>(old, &new.id, revoked_at, expires_at)
                .build()
                .fetch_one(&mut *tx)
                .await?,
        )?;
        announce(&mut tx, old.as_str()).await?;
        announce(&mut tx, new.id.as_str()).await?;
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
        // Subscribed before returning: a change committed after `watch()` is never missed.
        let listener = listen::subscribe(&self.options).await?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(listen::forward(
            self.options.clone(),
            listener,
            tx,
            self.alive.subscribe(),
        ));
        Ok(rx)
    }
}

#[async_trait]
impl CredentialStore for PgStore {
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
impl AuditStore for PgStore {
    async fn insert_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        // One statement for the whole batch, whatever its size: the rows travel as a single
        // bound JSON array that PostgreSQL unpacks in order. Its text is prepared once, and
        // the limit on bind parameters never applies.
        static STATEMENT: LazyLock<String> = LazyLock::new(|| {
            format!(
                "{}SELECT timestamptz 'epoch' + (e ->> 0)::bigint * interval '1 millisecond', \
                 e ->> 1, e ->> 2, e ->> 3, e ->> 4, e ->> 5, e ->> 6, e ->> 7, e ->> 8, e ->> 9, \
                 e ->> 10, e -> 11 FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY \
                 AS rows (e, n) ORDER BY n",
                sql::AUDIT_INSERT
            )
        });
        sqlx::query(STATEMENT.as_str())
            .bind(sql::audit_rows(events))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let rows = sql::query_audit::<Postgres>(query)
            .build()
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn purge_audit(
        &self,
        older_than: DateTime<Utc>,
        max_rows: Option<u64>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let nth_newest = match max_rows {
            Some(n) => sql::nth_newest_audit::<Postgres>(n)
                .build()
                .fetch_optional(&self.pool)
                .await?
                .map(|row| Ok::<_, StoreError>((row.time("time")?, row.int("id")?)))
                .transpose()?,
            None => None,
        };
        let done = sql::purge_audit::<Postgres>(older_than, nth_newest, batch)
            .build()
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
