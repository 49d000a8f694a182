//! Waiting for something a running gateway does in the background (the audit writer's batches,
//! a replayed spill file), by polling: no fixed sleeps.

use std::time::Duration;

/// How long a test waits for anything that should happen promptly.
const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns something, failing after [`PATIENCE`].
pub(crate) async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
