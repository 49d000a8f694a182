//! The request path's side of the audit trail: a non-blocking hand-off to the writer. An
//! event that does not fit in the queue is counted in `audit_dropped` and reported at WARN.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc::{self, error::TrySendError};

use super::{AuditEvent, AuditKind, Coverage};
use crate::metrics::Metrics;

/// Hands events to the background writer without waiting. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    coverage: Coverage,
    tx: Option<mpsc::Sender<AuditEvent>>,
    metrics: Arc<Metrics>,
    /// Drops since the last WARN line, so a full queue does not flood the log.
    unreported_drops: Arc<AtomicU64>,
}

impl AuditSink {
    pub(super) fn new(
        coverage: Coverage,
        tx: Option<mpsc::Sender<AuditEvent>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            coverage,
            tx,
            metrics,
            unreported_drops: Arc::new(AtomicU64::new(0)),
        }
    }

    /// True when events of `kind` are recorded at the configured coverage (check before
    /// building an event, so coverage `off` costs nothing).
    pub fn wants(&self, kind: AuditKind) -> bool {
        self.tx.is_some() && self.coverage.records(kind)
    }

    /// Queues an event if coverage records its kind. Never blocks: when the queue is full the
    /// event is counted as dropped and reported at WARN.
    pub fn record(&self, event: AuditEvent) {
        if !self.wants(event.kind) {
            return;
        }
        let Some(tx) = &self.tx else { return };
        if let Err(e) = tx.try_send(event) {
            self.metrics.audit_dropped.inc();
            let before = self.unreported_drops.fetch_add(1, Ordering::Relaxed);
            if before == 0 || before.is_power_of_two() {
                let why = match e {
                    TrySendError::Full(_) => {
                        "audit queue full (the store and the spill file are not keeping up): events dropped"
                    }
                    TrySendError::Closed(_) => "audit writer stopped: events dropped",
                };
                tracing::warn!(target: "tokengate::audit", dropped = before + 1, "{why}");
            }
        }
    }
}
