//! The per-token limiter, behind a small trait so a shared backend for several replicas can
//! replace the in-process one without touching the decision code.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
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
}

/// Counts requests per key against a quota given with each check.
pub trait Limiter: Send + Sync + 'static {
    /// Counts one request for `key` under `quota` (the quota may change between calls; a
    /// changed quota takes effect on the next call).
    fn check(&self, key: &[u8; 12], quota: RateQuota) -> RateDecision;

    /// Forgets keys whose quota has fully refilled, so idle tokens cost no memory.
    fn retain_recent(&self);

    /// How many keys are tracked now.
    fn len(&self) -> usize;

    /// True when no key is tracked.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type Keyed<C> =
    RateLimiter<[u8; 12], DefaultKeyedStateStore<[u8; 12]>, C, StateInformationMiddleware>;

/// The in-process limiter: governor's GCRA, one keyed state store per distinct quota, so each
/// token's quota is its burst, refilled evenly over the period.
pub struct GovernorLimiter<C: Clock = DefaultClock> {
    clock: C,
    by_quota: RwLock<HashMap<RateQuota, Arc<Keyed<C>>>>,
}

impl GovernorLimiter<DefaultClock> {
    /// A limiter on the monotonic system clock.
    pub fn new() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl Default for GovernorLimiter<DefaultClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock + Clone + Send + Sync + 'static> GovernorLimiter<C> {
    /// A limiter on the given clock (tests use governor's `FakeRelativeClock`).
    pub fn with_clock(clock: C) -> Self {
        Self {
            clock,
            by_quota: RwLock::new(HashMap::new()),
        }
    }

    fn keyed(&self, quota: RateQuota) -> Arc<Keyed<C>> {
        if let Some(keyed) = self.by_quota.read().expect("limiter lock").get(&quota) {
            return Arc::clone(keyed);
        }
        let mut map = self.by_quota.write().expect("limiter lock");
        Arc::clone(map.entry(quota).or_insert_with(|| {
            Arc::new(
                RateLimiter::dashmap_with_clock(quota.to_governor(), self.clock.clone())
                    .with_middleware::<StateInformationMiddleware>(),
            )
        }))
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

impl<C: Clock + Clone + Send + Sync + 'static> Limiter for GovernorLimiter<C> {
    fn check(&self, key: &[u8; 12], quota: RateQuota) -> RateDecision {
        let limit = quota.requests.get();
        let interval = quota.replenish_interval();
        match self.keyed(quota).check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateDecision::Allowed(RateStatus {
                    limit,
                    remaining,
                    reset: interval * (limit - remaining),
                })
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.clock.now());
                RateDecision::Limited {
                    status: RateStatus {
                        limit,
                        remaining: 0,
                        reset: retry_after + interval * (limit - 1),
                    },
                    retry_after,
                }
            }
        }
    }

    fn retain_recent(&self) {
        let mut map = self.by_quota.write().expect("limiter lock");
        map.retain(|_, keyed| {
            keyed.retain_recent();
            keyed.shrink_to_fit();
            !keyed.is_empty()
        });
    }

    fn len(&self) -> usize {
        let map = self.by_quota.read().expect("limiter lock");
        map.values().map(|keyed| keyed.len()).sum()
    }
}

/// Whole seconds, rounded up, as `Retry-After` and `RateLimit-Reset` want them.
pub fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests;
