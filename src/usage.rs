//! Last-used tracking: each token's last use (time and client IP) is kept in memory and
//! written to the store in batches, at most about once a minute per token.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use crate::store::{LastUse, TokenStore};
use crate::token::TokenId;

/// How often a token's last use is written at most.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(60);

struct Pending {
    id: TokenId,
    at: DateTime<Utc>,
    ip: IpAddr,
    /// When this token's last use was last written; `None` before the first write.
    written: Option<Instant>,
    dirty: bool,
}

/// Coalesces token uses between writes.
#[derive(Default)]
pub struct UsageTracker {
    /// Keyed by token id with a randomly seeded foldhash: SipHash, the default, cost more than
    /// the rest of a use's recording.
    pending: DashMap<[u8; 12], Pending, foldhash::fast::RandomState>,
}

impl UsageTracker {
    /// Notes a use; no store access.
    pub fn record(&self, id: &TokenId, at: DateTime<Utc>, ip: IpAddr) {
        self.pending
            .entry(id.key())
            .and_modify(|p| {
                if at > p.at {
                    p.at = at;
                    p.ip = ip;
                }
                p.dirty = true;
            })
            .or_insert_with(|| Pending {
                id: id.clone(),
                at,
                ip,
                written: None,
                dirty: true,
            });
    }

    /// Uses due for writing: never written, or last written over `interval` ago.
    fn due(&self, now: Instant, interval: Duration) -> Vec<LastUse> {
        let mut due = Vec::new();
        for mut entry in self.pending.iter_mut() {
            let p = entry.value_mut();
            if p.dirty && p.written.is_none_or(|w| now.duration_since(w) >= interval) {
                due.push(LastUse {
                    id: p.id.clone(),
                    at: p.at,
                    ip: p.ip,
                });
                p.dirty = false;
                p.written = Some(now);
            }
        }
        // Forget tokens idle for a while; their last use is stored.
        self.pending.retain(|_, p| {
            p.dirty
                || p.written
                    .is_none_or(|w| now.duration_since(w) < interval * 10)
        });
        due
    }

    /// Writes what is due; on a store error, or when the write is cut off (its task aborted at
    /// shutdown), the uses are kept for the next round.
    pub async fn flush(&self, store: &Arc<dyn TokenStore>, interval: Duration) {
        let due = Unwritten {
            tracker: self,
            uses: self.due(Instant::now(), interval),
        };
        if due.uses.is_empty() {
            return;
        }
        match store.record_last_used(&due.uses).await {
            Ok(()) => due.written(),
            Err(e) => {
                tracing::warn!(target: "tokengate::usage", error = %e, "recording last use failed");
            }
        }
    }

    /// Marks uses as not yet written, so the next flush takes them again.
    fn unwritten(&self, uses: &[LastUse]) {
        for use_ in uses {
            if let Some(mut p) = self.pending.get_mut(&use_.id.key()) {
                p.dirty = true;
                p.written = None;
            }
        }
    }
}

/// Uses taken for a write: put back as not written when dropped before [`Unwritten::written`].
struct Unwritten<'a> {
    tracker: &'a UsageTracker,
    uses: Vec<LastUse>,
}

impl Unwritten<'_> {
    fn written(mut self) {
        self.uses.clear();
    }
}

impl Drop for Unwritten<'_> {
    fn drop(&mut self) {
        self.tracker.unwritten(&self.uses);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_uses_and_writes_at_most_once_per_interval() {
        let tracker = UsageTracker::default();
        let id = TokenId::parse("abcdefghijkl").unwrap();
        let t0 = Utc::now();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        tracker.record(&id, t0, ip);
        tracker.record(
            &id,
            t0 + chrono::Duration::seconds(1),
            "10.0.0.2".parse().unwrap(),
        );
        let now = Instant::now();
        let due = tracker.due(now, WRITE_INTERVAL);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].ip, "10.0.0.2".parse::<IpAddr>().unwrap());
        tracker.record(&id, t0 + chrono::Duration::seconds(2), ip);
        assert!(
            tracker
                .due(now + Duration::from_secs(30), WRITE_INTERVAL)
                .is_empty()
        );
        let due = tracker.due(now + Duration::from_secs(61), WRITE_INTERVAL);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].at, t0 + chrono::Duration::seconds(2));
    }

    /// A flush cut off mid-write (its task aborted at shutdown) leaves its uses to the final
    /// flush, which writes whatever is dirty at once.
    #[test]
    fn uses_of_a_cut_off_write_are_written_by_the_next_flush() {
        let tracker = UsageTracker::default();
        let id = TokenId::parse("abcdefghijkl").unwrap();
        let at = Utc::now();
        tracker.record(&id, at, "10.0.0.1".parse().unwrap());
        let now = Instant::now();
        let taken = Unwritten {
            tracker: &tracker,
            uses: tracker.due(now, WRITE_INTERVAL),
        };
        assert_eq!(taken.uses.len(), 1);
        drop(taken);
        let due = tracker.due(now, Duration::ZERO);
        assert_eq!(due.len(), 1, "the use is due again");
        assert_eq!(due[0].at, at);

        tracker.record(&id, at, "10.0.0.1".parse().unwrap());
        let taken = Unwritten {
            tracker: &tracker,
            uses: tracker.due(now, Duration::ZERO),
        };
        taken.written();
        assert!(tracker.due(now, Duration::ZERO).is_empty(), "written once");
    }
}
