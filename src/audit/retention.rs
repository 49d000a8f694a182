//! Retention: events older than `audit.retention_days`, and beyond the newest `audit.max_rows`,
//! are deleted once at start and every few minutes, a small batch per statement so that no
//! purge holds long locks.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::task::JoinHandle;

use super::AuditSettings;
use crate::shutdown::Shutdown;
use crate::store::{AuditStore, StoreError};

/// Time between purges.
const PURGE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Most events one statement deletes.
const PURGE_BATCH: u32 = 1_000;

/// Deletes what `config` no longer keeps at `now`, batch by batch until none is left; returns
/// how many events went.
pub async fn purge(
    store: &dyn AuditStore,
    config: &AuditSettings,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let older_than = now - TimeDelta::days(i64::from(config.retention_days));
    let mut total = 0;
    loop {
        let n = store
            .purge_audit(older_than, config.max_rows, PURGE_BATCH)
            .await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
        // Let other work (and other writers to the table) in between batches.
        tokio::task::yield_now().await;
    }
}

/// Purges now and every [`PURGE_EVERY`] until `stop` turns true.
pub(super) fn spawn(
    store: Arc<dyn AuditStore>,
    config: AuditSettings,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    let config = Arc::new(config);
    let cut_off = shutdown.clone();
    // A purge in progress is cut off by the stop: what it has not deleted waits for next time.
    shutdown.every(PURGE_EVERY, move || {
        let (store, config, mut cut_off) =(Arc::clone(&store), Arc::clone(&config), cut_off.clone());
        async move {
            tokio::select! {
                result = purge(&*store, &config, Utc::now()) => match result {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(target: "tokengate::audit", purged = n, "audit events past retention deleted"),
                    Err(e) => tracing::warn!(target: "tokengate::audit", error = %e, "purging old audit events failed; retrying later"),
                },
                () = cut_off.stopped() => {}
            }
        }
    })
}
