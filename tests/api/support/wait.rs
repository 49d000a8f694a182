//! Waiting for something done in the background (a gateway's audit batches, a replayed spill
//! file, a log line, a browser's page) by polling, with one patience for the whole suite: no
//! fixed sleeps. And the promise that a change reaches every gateway within a second.

use std::time::{Duration, Instant};

/// How long a test waits for anything that should happen promptly.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// Time between two looks.
const INTERVAL: Duration = Duration::from_millis(10);

/// Polls `check` until it returns something, failing after [`PATIENCE`].
pub(crate) async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_explained(what, check, String::new).await
}

/// As [`eventually`], and a failure adds what `explain` says (a gateway's output, say).
pub(crate) async fn eventually_explained<T>(
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
    explain: impl FnOnce() -> String,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}\n{}", explain());
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Tries `attempt` every 20 ms until it is refused (returns `Some`), and returns the refusal.
/// Fails when an attempt begun a second or more after `changed` was still allowed: a change
/// reaches every gateway within a second (the request's own latency does not count).
pub(crate) async fn refused_within_a_second<T>(
    what: &str,
    changed: Instant,
    mut attempt: impl AsyncFnMut() -> Option<T>,
) -> T {
    loop {
        let sent = changed.elapsed();
        if let Some(refused) = attempt().await {
            return refused;
        }
        assert!(
            sent < Duration::from_secs(1),
            "{what}: a request sent {sent:?} after the change was still allowed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
