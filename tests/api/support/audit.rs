//! Reading the audit trail back in tests: the writer batches, so a test waits for what it
//! expects to be recorded.

use tokengate::audit::{AuditKind, AuditQuery, StoredAuditEvent};

use super::app::TestApp;
use super::eventually;

/// Waits until the audit trail holds `n` events of `kind` (the writer batches); newest first.
pub(crate) async fn audit_events(
    app: &TestApp,
    kind: AuditKind,
    n: usize,
) -> Vec<StoredAuditEvent> {
    let query = AuditQuery {
        kind: Some(kind),
        limit: 100,
        ..AuditQuery::default()
    };
    eventually(&format!("{n} {kind:?} events to be recorded"), async || {
        let events = app
            .store()
            .query_audit(&query)
            .await
            .expect("querying the audit trail");
        (events.len() >= n).then_some(events)
    })
    .await
}

/// The newest 100 events of the audit trail, of every kind, as they are stored now.
pub(crate) async fn audit_trail(app: &TestApp) -> Vec<StoredAuditEvent> {
    let query = AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    };
    app.store()
        .query_audit(&query)
        .await
        .expect("querying the audit trail")
}

/// Waits for the newest event of `kind`.
pub(crate) async fn audit_event(app: &TestApp, kind: AuditKind) -> StoredAuditEvent {
    audit_events(app, kind, 1).await.remove(0)
}
