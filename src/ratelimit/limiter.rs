//! The in-process limiter: governor's GCRA, keyed by whatever a quota is counted against (a
//! token id, a client address). It is the whole limiter with `rate_limit.backend = "local"`,
//! and the fallback of the shared one while Redis does not answer.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::RateQuota;

/// Where a key stands against its quota after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    /// The quota's request count (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Time until the whole quota is available again (`RateLimit-Reset`).
    pub reset: Duration,
}

/// The outcome of one rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed(RateStatus),
    /// Over the limit; try again after `retry_after`.
    Limited {
        status: RateStatus,
        retry_after: Duration,
    },
}

impl RateDecision {
    /// The header values, whatever the outcome.
    pub fn status(&self) -> RateStatus {
        match *self {
            Self::Allowed(status) | Self::Limited { status, .. } => status,
        }
    }

    /// An allowed request with `remaining` requests left: the whole quota is back once the
    /// used ones have refilled.
    pub fn allowed(quota: RateQuota, remaining: u32) -> Self {
        let limit = quota.requests.get();
        let remaining = remaining.min(limit);
        Self::Allowed(RateStatus {
            limit,
            remaining,
            reset: quota.replenish_interval() * (limit - remaining),
        })
    }

    /// A refused request that fits again after `retry_after`; the whole quota is back the
    /// rest of the quota's refill later.
    pub fn limited(quota: RateQuota, retry_after: Duration) -> Self {
        let limit = quota.requests.get();
        Self::Limited {
            status: RateStatus {
                limit,
                remaining: 0,
                reset: retry_after + quota.replenish_interval() * (limit - 1),
            },
            retry_after,
        }
    }
}

/// The maps' hasher: seeded at random per map, and far cheaper than SipHash (governor's
/// default), which cost more than the rest of a check.
type Hasher = foldhash::fast::RandomState;

type Keyed<K, C> = RateLimiter<K, DashMapStateStore<K, Hasher>, C, StateInformationMiddleware>;

/// One keyed limiter per distinct quota.
type ByQuota<K, C> = HashMap<RateQuota, Arc<Keyed<K, C>>, Hasher>;

/// The in-process limiter: governor's GCRA, one keyed state store per distinct quota, so each
/// key's quota is its burst, refilled evenly over the period.
///
/// Its clock is the standard library's monotonic one, not governor's default (quanta): quanta
/// calibrates its counter against that clock when first used, a loop whose length depends on
/// the machine's speed, which made start-up cost (and the instruction count of a run) wobble.
pub struct GovernorLimiter<K: Hash + Eq + Clone, C: Clock = MonotonicClock> {
    clock: C,
    by_quota: RwLock<ByQuota<K, C>>,
}

impl<K: Hash + Eq + Clone> GovernorLimiter<K, MonotonicClock> {
    /// A limiter on the monotonic system clock.
    pub fn new() -> Self {
        Self::with_clock(MonotonicClock)
    }
}

impl<K: Hash + Eq + Clone> Default for GovernorLimiter<K, MonotonicClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> GovernorLimiter<K, C> {
    /// A limiter on the given clock (tests use governor's `FakeRelativeClock`).
    pub fn with_clock(clock: C) -> Self {
        Self {
            clock,
            by_quota: RwLock::new(HashMap::default()),
        }
    }

    fn keyed(&self, quota: RateQuota) -> Arc<Keyed<K, C>> {
        if let Some(keyed) = self.by_quota.read().expect("limiter lock").get(&quota) {
            return Arc::clone(keyed);
        }
        let mut map = self.by_quota.write().expect("limiter lock");
        Arc::clone(map.entry(quota).or_insert_with(|| {
            Arc::new(
                RateLimiter::dashmap_with_clock_and_hasher(
                    quota.to_governor(),
                    self.clock.clone(),
                    Hasher::default(),
                )
                .with_middleware::<StateInformationMiddleware>(),
            )
        }))
    }

    /// Counts one request for `key` under `quota` (the quota may change between calls; a
    /// changed quota starts from a full budget, as a new key does).
    pub fn check(&self, key: &K, quota: RateQuota) -> RateDecision {
        match self.keyed(quota).check_key(key) {
            Ok(snapshot) => RateDecision::allowed(quota, snapshot.remaining_burst_capacity()),
            Err(not_until) => {
                RateDecision::limited(quota, not_until.wait_time_from(self.clock.now()))
            }
        }
    }

    /// Forgets keys whose quota has fully refilled, so idle keys cost no memory.
    pub fn retain_recent(&self) {
        let mut map = self.by_quota.write().expect("limiter lock");
        map.retain(|_, keyed| {
            keyed.retain_recent();
            keyed.shrink_to_fit();
            !keyed.is_empty()
        });
    }

    /// Forgets every key: each starts again from a full budget.
    pub fn clear(&self) {
        self.by_quota.write().expect("limiter lock").clear();
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        let map = self.by_quota.read().expect("limiter lock");
        map.values().map(|keyed| keyed.len()).sum()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RateQuota {
    /// The same quota for governor: `requests` as the burst, one refilled every
    /// `period / requests`.
    pub fn to_governor(self) -> Quota {
        Quota::with_period(self.replenish_interval().max(Duration::from_nanos(1)))
            .expect("a non-zero period")
            .allow_burst(self.requests)
    }
}

/// Whole seconds, rounded up, as `Retry-After` and `RateLimit-Reset` want them.
pub fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests;
