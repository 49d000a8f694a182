//! The gateway's background tasks: change notifications relayed to the caches (subscribed
//! again, with backoff, whenever there is no subscription) and the periodic upkeep.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::auth::Verifier;
use crate::metrics::Metrics;
use crate::ratelimit::{PROBE_INTERVAL, RateLimits};
use crate::shutdown::Shutdown;
use crate::store::{Change, StoreError, TokenStore};
use crate::usage::{UsageTracker, WRITE_INTERVAL};
use crate::vault::CredentialVault;

/// Change notifications (to the token and credential caches), periodic limiter and cache
/// upkeep, last-used writes, the active token gauge, and the probe of a shared rate-limit
/// backend (with the connection of the first one). Every task ends at shutdown.
pub(super) async fn spawn(
    store: Arc<dyn TokenStore>,
    verifier: Arc<Verifier>,
    credentials: Option<Arc<CredentialVault>>,
    (limits, probe): (Arc<RateLimits>, Option<redis::aio::MultiplexedConnection>),
    usage: Arc<UsageTracker>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> Vec<tokio::task::JoinHandle<()>> {
    // The first attempt before the workers start, so that nothing is cached unwatched.
    let watching = store.watch().await;
    let mut tasks = vec![tokio::spawn(relay_changes(
        Arc::clone(&store),
        watching,
        Arc::clone(&verifier),
        credentials,
        shutdown.clone(),
    ))];
    if limits.backend() != "local" {
        tasks.push(tokio::spawn(probe_backend(
            Arc::clone(&limits),
            probe,
            shutdown.clone(),
        )));
    }
    tasks.push(shutdown.every(Duration::from_secs(10), move || {
        let (store, usage, limits, metrics) = (
            Arc::clone(&store),
            Arc::clone(&usage),
            Arc::clone(&limits),
            Arc::clone(&metrics),
        );
        async move {
            usage.flush(&store, WRITE_INTERVAL).await;
            limits.retain_recent();
            if let Ok(n) = store.count_active_tokens(chrono::Utc::now()).await {
                metrics
                    .tokens_active
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }));
    tasks
}

/// Bounds of the wait between attempts to watch token changes.
const WATCH_RETRY_MIN: Duration = Duration::from_secs(1);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(30);

/// Relays token and credential changes to the caches until shut down. Without a
/// subscription (`watch()` failed, or its stream ended) it tries again with backoff, and once
/// subscribed forgets everything cached, since changes made in between went unheard.
async fn relay_changes(
    store: Arc<dyn TokenStore>,
    mut watching: Result<mpsc::Receiver<Change>, StoreError>,
    verifier: Arc<Verifier>,
    credentials: Option<Arc<CredentialVault>>,
    mut shutdown: Shutdown,
) {
    let apply = async |change: &Change| {
        verifier.forget(change);
        if let Some(vault) = &credentials {
            vault.apply(change).await;
        }
    };
    let mut retry = WATCH_RETRY_MIN;
    loop {
        let failure = match watching {
            Ok(mut changes) => loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Some(change) => apply(&change).await,
                        None => break "the change stream ended".to_owned(),
                    },
                    () = shutdown.stopped() => return,
                }
            },
            Err(e) => e.to_string(),
        };
        tracing::warn!(target: "tokengate::app", error = %failure, retry_in = ?retry, "cannot watch token changes; until this succeeds, a token changed or revoked elsewhere stays cached here for up to auth.cache_ttl");
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = shutdown.stopped() => return,
        }
        retry = (retry * 2).min(WATCH_RETRY_MAX);
        watching = tokio::select! {
            watching = store.watch() => watching,
            () = shutdown.stopped() => return,
        };
        if watching.is_ok() {
            apply(&Change::All).await;
            tracing::info!(target: "tokengate::app", "watching token changes again; cached tokens were forgotten");
            retry = WATCH_RETRY_MIN;
        }
    }
}

/// Probes the shared rate-limit backend every [`PROBE_INTERVAL`] until shut down, so the
/// gateway notices that Redis went away without a request waiting for it, and comes back to it
/// once it answers.
async fn probe_backend(
    limits: Arc<RateLimits>,
    mut connection: Option<redis::aio::MultiplexedConnection>,
    mut shutdown: Shutdown,
) {
    let mut ticker = tokio::time::interval(PROBE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now, and start-up probed already.
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => limits.probe(&mut connection).await,
            () = shutdown.stopped() => break,
        }
    }
}
