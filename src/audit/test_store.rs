//! For the audit unit tests: an SQLite store in a temp dir that can be switched to fail like
//! an unreachable database, to hang like a locked table, or to refuse one user's events like
//! a database that cannot hold a value; and a sample event.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use tempfile::TempDir;

use super::{AuditEvent, AuditKind, AuditOutcome, AuditQuery, StoredAuditEvent};
use crate::store::{AuditStore, Reachable, SqliteStore, StoreError, TokenStore};

/// The audit part of a migrated SQLite store, whose calls and `ping` fail while `down` is set.
pub(super) struct Flaky {
    inner: SqliteStore,
    pub(super) down: AtomicBool,
    /// Audit calls never answer; `ping` does.
    hung: AtomicBool,
    /// Audit calls that write or look up this user fail; everything else works.
    refused_user: Mutex<Option<String>>,
    /// Audit calls hung so far, and refused so far.
    hangs: AtomicUsize,
    refusals: AtomicUsize,
    _dir: TempDir,
}

impl Flaky {
    pub(super) async fn new() -> Arc<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let inner = SqliteStore::connect(&url, 2).await.expect("opening sqlite");
        inner.migrate().await.expect("migrating");
        Arc::new(Self {
            inner,
            down: AtomicBool::new(false),
            hung: AtomicBool::new(false),
            refused_user: Mutex::new(None),
            hangs: AtomicUsize::new(0),
            refusals: AtomicUsize::new(0),
            _dir: dir,
        })
    }

    pub(super) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// While set, audit calls never answer (as behind a table lock); `ping` still does.
    pub(super) fn set_hung(&self, hung: bool) {
        self.hung.store(hung, Ordering::SeqCst);
    }

    /// Audit calls that write or look up `user` fail, as a database refuses a value it cannot
    /// hold; `ping` and every other call work.
    pub(super) fn refuse_user(&self, user: Option<&str>) {
        *self.refused_user.lock().expect("not poisoned") = user.map(str::to_owned);
    }

    /// Audit calls that have hung so far.
    pub(super) fn hangs(&self) -> usize {
        self.hangs.load(Ordering::SeqCst)
    }

    /// Audit calls refused so far.
    pub(super) fn refusals(&self) -> usize {
        self.refusals.load(Ordering::SeqCst)
    }

    /// What an audit call about `users` meets: an outage, a hang, or a refusal.
    async fn audit_call<'a>(
        &self,
        mut users: impl Iterator<Item = Option<&'a str>>,
    ) -> Result<(), StoreError> {
        self.check()?;
        if self.hung.load(Ordering::SeqCst) {
            self.hangs.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        let refused = self.refused_user.lock().expect("not poisoned").clone();
        if refused.is_some() && users.any(|u| u == refused.as_deref()) {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable(sqlx::Error::Protocol(
                "a value the database cannot hold".into(),
            )));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut))
        } else {
            Ok(())
        }
    }

    /// Every stored event, oldest first.
    pub(super) async fn all(&self) -> Vec<AuditEvent> {
        let mut page = self
            .inner
            .query_audit(&AuditQuery {
                limit: 100_000,
                ..AuditQuery::default()
            })
            .await
            .expect("reading audit events");
        page.reverse();
        page.into_iter().map(|e| e.event).collect()
    }
}

/// The `i`-th sample event; its path names `i`.
pub(super) fn event(i: usize) -> AuditEvent {
    let base = DateTime::parse_from_rfc3339("2024-06-01T08:00:00Z")
        .expect("time")
        .to_utc();
    AuditEvent {
        time: base + TimeDelta::milliseconds(i64::try_from(i).expect("small")),
        kind: AuditKind::ALL[i % AuditKind::ALL.len()],
        outcome: AuditOutcome::Denied,
        user: Some("automation-user".into()),
        token_id: Some("abcdefghijkl".into()),
        client_ip: Some("79.209.73.23".parse::<IpAddr>().expect("ip")),
        method: Some("GET".into()),
        path: Some(format!("/rest/api/1.0/{i}").into()),
        request_id: Some(format!("@A6X2OXx532x{i}x0").into()),
        node_id: "A6X2OX".into(),
        actor: None,
        attributes: json!({ "reason": "unknown_id" }).into(),
    }
}

#[async_trait]
impl Reachable for Flaky {
    async fn ping(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ping().await
    }
}

#[async_trait]
impl AuditStore for Flaky {
    async fn insert_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.audit_call(events.iter().map(|e| e.user.as_deref()))
            .await?;
        self.inner.insert_audit(events).await
    }
    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAuditEvent>, StoreError> {
        self.audit_call(std::iter::once(query.user.as_deref()))
            .await?;
        self.inner.query_audit(query).await
    }
    async fn purge_audit(
        &self,
        older_than: DateTime<Utc>,
        max_rows: Option<u64>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.purge_audit(older_than, max_rows, batch).await
    }
}
