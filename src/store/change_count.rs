//! [`ChangeCount`]: how a cache fed by [`super::Change`] notifications avoids keeping a value
//! that a change overtook.

use std::sync::atomic::{AtomicU64, Ordering};

/// The changes a cache has heard. A lookup that reads the store just before another process
/// commits a change, and finishes after the change's notification was handled, would put the
/// old value back for the cache's whole lifetime. Taking a [`ChangeCount::mark`] before the
/// lookup and asking [`ChangeCount::changed_since`] after it tells the cache to drop that
/// value: it still answers the request that asked, but the next one reads the store again.
#[derive(Debug, Default)]
pub struct ChangeCount(AtomicU64);

impl ChangeCount {
    /// Counts one change heard.
    pub fn count(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// The count now, to compare after a lookup.
    pub fn mark(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// True when a change was heard since `mark` was taken.
    pub fn changed_since(&self, mark: u64) -> bool {
        self.0.load(Ordering::SeqCst) != mark
    }
}
