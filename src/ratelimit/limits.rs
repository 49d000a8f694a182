//! The limits a gateway enforces, on the configured backend: each token's quota and each
//! client address's failed-verification budget, counted in this process
//! (`rate_limit.backend = "local"`) or in Redis, shared by every replica.
//!
//! With Redis, this process's own counters are the fallback: the first check that gets no
//! answer in time switches to them at once (one WARN, `tokengate_rate_limit_backend_up 0`), and
//! the probe that runs every second switches back once Redis answers again.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use redis::aio::MultiplexedConnection;

use super::shared::{RedisLimiter, SharedError, SharedKey};
use super::{GovernorLimiter, RateDecision, RateQuota};

/// Where logs about the shared backend go (not the rate-limit lines' target, so a level set
/// for those does not silence these).
const TARGET: &str = "tokengate::redis";

/// How often the shared backend is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Every limit of the gateway, on its backend.
pub struct RateLimits {
    /// Token quotas counted here: the backend, or the fallback.
    tokens: GovernorLimiter<[u8; 12]>,
    /// Failed verifications per client address counted here: the backend, or the fallback.
    failures: GovernorLimiter<IpAddr>,
    shared: Option<Shared>,
}

/// Redis, and whether it answers.
struct Shared {
    redis: RedisLimiter,
    /// True while checks go to Redis.
    up: AtomicBool,
    /// `tokengate_rate_limit_backend_up`.
    gauge: Gauge,
    /// `rate_limit.redis_url` as it may be logged.
    shown_url: String,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::local()
    }
}

impl RateLimits {
    /// Limits counted in this process only.
    pub fn local() -> Self {
        Self {
            tokens: GovernorLimiter::new(),
            failures: GovernorLimiter::new(),
            shared: None,
        }
    }

    /// Limits counted in Redis, with this process's counters as the fallback. Starts as
    /// answering; [`RateLimits::probe`] finds out.
    pub fn shared(redis: RedisLimiter, shown_url: String, gauge: Gauge) -> Self {
        gauge.set(1);
        Self {
            shared: Some(Shared {
                redis,
                up: AtomicBool::new(true),
                gauge,
                shown_url,
            }),
            ..Self::local()
        }
    }

    /// `"redis"` or `"local"`, for the start-up line.
    pub fn backend(&self) -> &'static str {
        if self.shared.is_some() {
            "redis"
        } else {
            "local"
        }
    }

    /// True while the configured backend answers (always, for the local one).
    pub fn backend_up(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|shared| shared.up.load(Ordering::Acquire))
    }

    /// Counts one request of the token with id `id` under `quota`.
    pub async fn check_token(&self, id: &[u8; 12], quota: RateQuota) -> RateDecision {
        // Boxed, and only with Redis: its step is a large future that every request's future
        // would otherwise hold (and move) in full, the local backend's included.
        if self.shared.is_some()
            && let Some(decision) =
                Box::pin(self.shared_step(SharedKey::Token(id), quota, true)).await
        {
            return decision;
        }
        self.tokens.check(id, quota)
    }

    /// Counts one request of the token with id `id` under `quota` here, when the limits are
    /// this process's own; `None` with a shared backend, which [`RateLimits::check_token`]
    /// asks.
    pub fn check_token_here(&self, id: &[u8; 12], quota: RateQuota) -> Option<RateDecision> {
        self.shared.is_none().then(|| self.tokens.check(id, quota))
    }

    /// Counts one failed verification from `client` (an address, or an IPv6 client's /64).
    pub async fn count_failure(&self, client: IpAddr, quota: RateQuota) -> RateDecision {
        if let Some(decision) = self
            .shared_step(SharedKey::Failures(client), quota, true)
            .await
        {
            return decision;
        }
        self.failures.check(&client, quota)
    }

    /// How long `client` must wait before its next failure fits, as counted by every replica;
    /// `None` when it may fail now, and always with the local backend (this process knows its
    /// own count without asking). Counts nothing.
    pub async fn failures_wait(&self, client: IpAddr, quota: RateQuota) -> Option<Duration> {
        self.shared.as_ref()?;
        match self
            .shared_step(SharedKey::Failures(client), quota, false)
            .await?
        {
            RateDecision::Allowed(_) => None,
            RateDecision::Limited { retry_after, .. } => Some(retry_after),
        }
    }

    /// Forgets local counts that have fully refilled.
    pub fn retain_recent(&self) {
        self.tokens.retain_recent();
        self.failures.retain_recent();
    }

    /// Checks whether Redis answers and switches to it or away from it accordingly; `reuse`
    /// keeps the probe's connection between calls. Does nothing with the local backend.
    pub async fn probe(&self, reuse: &mut Option<MultiplexedConnection>) {
        let Some(shared) = &self.shared else {
            return;
        };
        match shared.redis.probe(reuse).await {
            Ok(()) => self.came_back(shared),
            Err(e) => self.went_away(shared, &e),
        }
    }

    /// One step in Redis while it answers; `None` means "count here".
    async fn shared_step(
        &self,
        key: SharedKey<'_>,
        quota: RateQuota,
        count: bool,
    ) -> Option<RateDecision> {
        let shared = self.shared.as_ref()?;
        if !shared.up.load(Ordering::Acquire) {
            return None;
        }
        match shared.redis.step(key, quota, count).await {
            Ok(decision) => Some(decision),
            // This thread's connection is new (at start, after a return) and slow to open: this
            // one check is counted here, and Redis is not given up on for it.
            Err(SharedError::Opening) => None,
            Err(e) => {
                self.went_away(shared, &e);
                None
            }
        }
    }

    fn went_away(&self, shared: &Shared, e: &SharedError) {
        if shared.up.swap(false, Ordering::AcqRel) {
            // A fallback starts from a fresh budget, not from what a past one left.
            self.tokens.clear();
            self.failures.clear();
            shared.gauge.set(0);
            tracing::warn!(
                target: TARGET,
                error = %e,
                "Redis at {} does not answer; rate limits and failed attempts are counted by this gateway alone until it does",
                shared.shown_url
            );
        }
    }

    fn came_back(&self, shared: &Shared) {
        if !shared.up.load(Ordering::Acquire) {
            // Connections that broke meanwhile are not reused.
            shared.redis.renew_connections();
            if !shared.up.swap(true, Ordering::AcqRel) {
                shared.gauge.set(1);
                tracing::info!(
                    target: TARGET,
                    "Redis at {} answers again; rate limits are shared with the other gateways again",
                    shared.shown_url
                );
            }
        }
    }
}
