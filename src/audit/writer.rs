//! The background writer: drains the queue and inserts events in batches.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{AuditEvent, AuditSink};
use crate::config::AuditConfig;
use crate::metrics::Metrics;
use crate::store::TokenStore;

/// Most events in one insert.
const BATCH: usize = 500;

/// The running writer; [`AuditWriter::shutdown`] flushes what is queued.
pub struct AuditWriter {
    task: Option<JoinHandle<()>>,
}

/// Starts the writer and returns the sink that feeds it.
pub fn start(
    store: Arc<dyn TokenStore>,
    config: &AuditConfig,
    metrics: Arc<Metrics>,
) -> (AuditSink, AuditWriter) {
    if config.coverage == super::Coverage::Off {
        return (
            AuditSink::new(config.coverage, None, metrics),
            AuditWriter { task: None },
        );
    }
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let task = tokio::spawn(run(store, rx, Arc::clone(&metrics)));
    (
        AuditSink::new(config.coverage, Some(tx), metrics),
        AuditWriter { task: Some(task) },
    )
}

async fn run(
    store: Arc<dyn TokenStore>,
    mut rx: mpsc::Receiver<AuditEvent>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        loop {
            match store.insert_audit(&batch).await {
                Ok(()) => {
                    metrics.audit_written.inc_by(batch.len() as u64);
                    break;
                }
                Err(e) => {
                    tracing::warn!(target: "tokengate::audit", error = %e, events = batch.len(), "audit insert failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        batch.clear();
    }
}

impl AuditWriter {
    /// Waits until every queued event is written (all sinks must be dropped first).
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
