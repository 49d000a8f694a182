//! Persistence behind one contract, [`Store`], with a PostgreSQL and an SQLite implementation
//! chosen by the database URL's scheme.
//!
//! The contract is split by who uses it: [`TokenStore`] (tokens, expiry notices, the schema and
//! the change stream), [`CredentialStore`] (users' sealed upstream credentials) and
//! [`AuditStore`] (the audit trail); the first and the last also answer a ping ([`Reachable`]).
//! Both backends keep all of it, and both tell running gateways when a token changed
//! ([`TokenStore::watch`]).

mod change_count;
mod error;
mod postgres;
mod rows;
mod runtime;
mod schema;
mod sql;
mod sqlite;

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

pub use change_count::ChangeCount;
pub use error::StoreError;
pub use postgres::PgStore;
pub use runtime::StoreRuntime;
pub use schema::Schema;
pub use sqlite::{BackupError, BackupSummary, SqliteStore, backup as backup_sqlite};
pub(crate) use sqlite::{SEGMENT_FORMAT, decode_segment};

use crate::audit::{AuditEvent, AuditQuery, StoredAuditEvent};
use crate::token::{NewToken, TokenId, TokenPatch, TokenRecord, TokenState};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A filter and page of [`TokenStore::list_tokens`], newest first.
#[derive(Debug, Clone)]
pub struct TokenQuery {
    pub user: Option<String>,
    pub state: Option<TokenState>,
    /// The time against which `state` is judged.
    pub now: DateTime<Utc>,
    /// At most this many records.
    pub limit: u32,
    /// Continue after this record (from the last page's last record).
    pub after: Option<(DateTime<Utc>, TokenId)>,
}

/// One coalesced "token was used" fact, written in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUse {
    pub id: TokenId,
    pub at: DateTime<Utc>,
    pub ip: IpAddr,
}

/// What [`TokenStore::watch`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This token was created, changed or revoked.
    Token(TokenId),
    /// This user's stored Bitbucket credential was set, replaced, refused or deleted.
    Credential(String),
    /// Changes may have been missed (a lost connection): forget everything cached.
    All,
}

/// A user's stored upstream credential, still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// The credential, sealed with the configured key.
    pub sealed: Vec<u8>,
    /// Made through Bitbucket's access-token API at the user's sign-in, not set by hand.
    pub provisioned: bool,
    /// When it was stored.
    pub updated_at: DateTime<Utc>,
    /// When Bitbucket refused it; it is not sent again until it is replaced.
    pub refused_at: Option<DateTime<Utc>>,
}

/// A user with a stored upstream credential, as listed: never the credential itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    /// The Bitbucket user name.
    pub user: String,
    /// Made through Bitbucket's access-token API at the user's sign-in, not set by hand.
    pub provisioned: bool,
    /// When it was set or provisioned.
    pub updated_at: DateTime<Utc>,
    /// When Bitbucket refused it; it is not sent again until it is replaced.
    pub refused_at: Option<DateTime<Utc>>,
}

/// What a rotation found. The new token is stored and the old one ended in one transaction,
/// with the old token's row locked, so a token is never rotated twice or half rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per rotation, returned and taken apart at once, never stored"
)]
pub enum TokenRotation {
    /// Rotated (and both changes announced): the old token as it was and as it is now (ending
    /// at the grace's end, or revoked), and the new token.
    Rotated {
        before: TokenRecord,
        after: TokenRecord,
        new: TokenRecord,
    },
    /// The old token is revoked; nothing was written.
    Revoked(TokenRecord),
    /// The old token was rotated already (it is in its grace): its successor is `by`. Nothing
    /// was written, so a retried rotation never makes a second successor.
    Replaced { record: TokenRecord, by: TokenId },
    /// No token has the old id.
    Unknown,
}

/// One expiry notice: a token, the expiry it warns of, and the warning window it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeKey {
    pub token_id: TokenId,
    /// The token's expiry when the notice was claimed: a token given a later expiry is warned
    /// again before that one.
    pub expires_at: DateTime<Utc>,
    /// The warning window (`notify.expiry_warnings`), in seconds.
    pub window_seconds: u64,
}

/// What happened to a notice held under a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeStep {
    /// A delivery is about to be tried: the claim is renewed and the attempt counted.
    Attempt,
    /// Delivered: never sent again.
    Sent,
    /// Given up without delivering (the gateway is stopping): another may claim it at once.
    Release,
}

/// What a write to one token found. The check and the write are one transaction, with the
/// token's row locked, so two concurrent writers see each other's result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per admin write, returned and taken apart at once, never stored"
)]
pub enum TokenWrite {
    /// Written (and announced): the record as it was and as it is now.
    Written {
        before: TokenRecord,
        after: TokenRecord,
    },
    /// The token is revoked; nothing was written.
    Revoked(TokenRecord),
    /// No token has this id.
    Unknown,
}

/// Whether the database answers: asked by the readiness check and by the audit writer's probe.
#[async_trait]
pub trait Reachable: Send + Sync + 'static {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Tokens and their expiry notices, the database's schema, and the stream of changes: what
/// the verifier, last-used writes, expiry notices and the gateway's background tasks use.
#[async_trait]
pub trait TokenStore: Reachable {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Applies the backend's migrations (idempotent).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// How the database's applied migrations compare with this release's, read without
    /// changing anything.
    async fn schema(&self) -> Result<Schema, StoreError>;

    /// Stores a new token. A duplicate id is [`StoreError::Conflict`].
    async fn insert_token(&self, token: &NewToken) -> Result<TokenRecord, StoreError>;

    /// One token by id, whatever its state.
    async fn get_token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError>;

    /// A page of tokens, newest first (`created_at` then `id`, both descending).
    async fn list_tokens(&self, query: &TokenQuery) -> Result<Vec<TokenRecord>, StoreError>;

    /// Applies a patch to a token that is not revoked, and announces the change. An empty
    /// patch writes nothing and reports the record as both before and after.
    async fn update_token(
        &self,
        id: &TokenId,
        patch: &TokenPatch,
    ) -> Result<TokenWrite, StoreError>;

    /// Marks a token revoked at `at` and announces the change; a token revoked already is
    /// reported as [`TokenWrite::Revoked`] and keeps its first revocation time.
    async fn revoke_token(&self, id: &TokenId, at: DateTime<Utc>)
    -> Result<TokenWrite, StoreError>;

    /// Records last-used times and addresses; an older time never overwrites a newer one.
    async fn record_last_used(&self, uses: &[LastUse]) -> Result<(), StoreError>;

    /// Tokens neither revoked nor expired at `now`.
    async fn count_active_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Stores `new` and ends the token `old` in one transaction, if `old` is known, not
    /// revoked and not rotated already: revoked at `at` when `grace_until` is `None`, otherwise expiring at
    /// `grace_until` (or at its own expiry, if earlier). `old` is marked replaced by `new`, and
    /// both changes are announced. A taken new id is [`StoreError::Conflict`], and then nothing
    /// is written.
    async fn rotate_token(
        &self,
        old: &TokenId,
        new: &NewToken,
        at: DateTime<Utc>,
        grace_until: Option<DateTime<Utc>>,
    ) -> Result<TokenRotation, StoreError>;

    /// Tokens neither revoked nor replaced whose expiry lies after `now` and at or before
    /// `until`, soonest expiry first, at most `limit`.
    async fn expiring_tokens(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<TokenRecord>, StoreError>;

    /// Claims the notice `key` for the sender holding `claim`, atomically: true when it was
    /// never claimed, or is unsent and either released or claimed before `stale_before` (its
    /// sender stopped without a word). False when it was sent or another sender holds it.
    async fn claim_notice(
        &self,
        key: &NoticeKey,
        claim: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records `step` of the unsent notice `key` held under `claim`; false when the claim is
    /// no longer held (taken over, or the notice sent).
    async fn settle_notice(
        &self,
        key: &NoticeKey,
        claim: &str,
        step: NoticeStep,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes the notices of expiries before `before`; returns how many.
    async fn purge_notices(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// A stream of token changes made by any process on this database, delivered within a
    /// second. Ends when the store is dropped.
    async fn watch(&self) -> Result<mpsc::Receiver<Change>, StoreError>;
}

/// Users' sealed upstream credentials: what the vault and the credential calls use.
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// Stores (or replaces) a user's sealed upstream credential, clearing any refusal, and
    /// announces the change.
    async fn put_credential(
        &self,
        user: &str,
        sealed: &[u8],
        provisioned: bool,
    ) -> Result<(), StoreError>;

    /// A user's sealed upstream credential.
    async fn get_credential(&self, user: &str) -> Result<Option<StoredCredential>, StoreError>;

    /// Marks a user's credential refused by Bitbucket at `at` (unless it is already marked)
    /// and announces the change, only while the stored credential is still `sealed`, the one
    /// Bitbucket refused: a credential stored since (the user signed in again) is left alone.
    /// False when that credential is no longer stored.
    async fn refuse_credential(
        &self,
        user: &str,
        sealed: &[u8],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The users with a stored credential, by user name, without the credentials.
    async fn list_credentials(&self) -> Result<Vec<CredentialInfo>, StoreError>;

    /// Deletes a user's stored credential and announces the change; false when none is stored.
    async fn delete_credential(&self, user: &str) -> Result<bool, StoreError>;
}

/// The audit trail: what the audit writer, its spill replay, retention and the audit reads use.
#[async_trait]
pub trait AuditStore: Reachable {
    /// Inserts audit events in one batch.
    async fn insert_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError>;

    /// A page of audit events, newest first.
    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAuditEvent>, StoreError>;

    /// Deletes at most `batch` of the oldest events that are older than `older_than` or beyond
    /// the newest `max_rows`; returns how many it deleted. Called repeatedly until it returns 0.
    async fn purge_audit(
        &self,
        older_than: DateTime<Utc>,
        max_rows: Option<u64>,
        batch: u32,
    ) -> Result<u64, StoreError>;
}

/// All of the store, for what uses more than one part of it (the gateway's startup, the admin
/// API, the lifecycle). Every type with all the parts is one.
pub trait Store: TokenStore + CredentialStore + AuditStore {}

impl<T: TokenStore + CredentialStore + AuditStore> Store for T {}

/// How a rotated token ends, as `(revoked_at, expires_at)` to write: revoked at `at` without a
/// grace, else expiring when the grace ends (or at its own expiry, if that comes first).
fn rotation_end(
    before: &TokenRecord,
    at: DateTime<Utc>,
    grace_until: Option<DateTime<Utc>>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match grace_until {
        None => (Some(at), None),
        Some(until) => (
            None,
            Some(before.expires_at.map_or(until, |e| e.min(until))),
        ),
    }
}

/// Opens the store a URL names: `postgres://…`/`postgresql://…` or `sqlite://path`, creating
/// an SQLite file that does not exist yet.
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, max_connections).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// As [`connect`], but an SQLite file that does not exist is [`StoreError::NoDatabase`]
/// instead of being created: for the commands that only use a store.
pub async fn connect_existing(
    url: &str,
    max_connections: u32,
) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::open_existing(url, max_connections).await?,
        ))
    } else {
        connect(url, max_connections).await
    }
}
