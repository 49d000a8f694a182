//! Verifying tokengate tokens: checksum first, then a cache keyed by a SHA-256 digest of the
//! whole token, then one indexed store lookup and one argon2 verification on the blocking pool.
//!
//! A verified token is trusted for the cache lifetime; then (or after a change to it) its record
//! is read again, but its secret is not hashed again while the stored hash is the one it
//! matched. So an argon2 hash runs about once per token (concurrent first uses share one), never
//! for an id the store does not know, and never for a bad checksum. Unknown ids and wrong
//! secrets are remembered briefly; clients that keep failing are throttled per IP, counted where
//! the token quotas are (with a shared backend, across every replica).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::{Unverified, Verification};
use crate::ratelimit::{RateDecision, RateLimits, RateQuota};
use crate::store::{Change, ChangeCount, StoreError, StoreRuntime, TokenStore};
use crate::token::{PresentedToken, TokenId, TokenRecord, verify_secret};

type Digest32 = [u8; 32];

/// Verifies presented tokens against the store, with caches in front of it.
pub struct Verifier {
    store: Arc<dyn TokenStore>,
    /// Where store lookups run; `None` runs them on the caller's runtime.
    store_runtime: Option<StoreRuntime>,
    /// Digest of a whole token that verified → its record.
    verified: Cache<Digest32, Arc<TokenRecord>>,
    /// Ids the store does not know.
    unknown_ids: moka::sync::Cache<[u8; 12], ()>,
    /// Digest of a whole token whose secret did not match → the owner.
    wrong_secrets: moka::sync::Cache<Digest32, Arc<str>>,
    /// Digest of a whole token whose secret matched → the stored hash it matched. A record read
    /// again with this same hash needs no new argon2 verification: the verdict is the same.
    matched_hashes: moka::sync::Cache<Digest32, Arc<str>>,
    /// Bounds concurrent argon2 verifications.
    hash_slots: Semaphore,
    /// Where failed verifications per client IP are counted (with the token quotas).
    limits: Arc<RateLimits>,
    /// The time one failure's worth of budget takes to refill.
    failure_interval: Duration,
    /// Client IPs over their failure budget → until when, as this process learnt it.
    throttled: moka::sync::Cache<IpAddr, Instant>,
    /// `auth.failed_attempts_per_ip`.
    failure_quota: RateQuota,
    /// argon2 verifications run so far (the `tokengate_hash_verifications_total` metric).
    hashes: Counter,
    /// Token changes heard, so a lookup that one overtook is not kept.
    changes: ChangeCount,
}

/// Verifier settings.
#[derive(Debug, Clone, Copy)]
pub struct VerifierSettings {
    /// How long a verified token is trusted without the store.
    pub cache_ttl: Duration,
    /// Concurrent argon2 verifications.
    pub hash_concurrency: usize,
    /// Failed verifications allowed per client IP.
    pub failed_attempts_per_ip: RateQuota,
}

/// How long an unknown id or a wrong secret is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// How long a matched secret is remembered (its record is still read every cache lifetime).
const MATCHED_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Entries in each cache at most.
const CACHE_CAPACITY: u64 = 100_000;

#[derive(Debug, Clone)]
enum Miss {
    Unknown,
    WrongSecret(Arc<str>),
    Unavailable,
}

/// Whose failures count together: an IPv4 address, or an IPv6 address's /64. One IPv6 host
/// usually holds a whole /64, so counting its addresses one by one would give it billions of
/// failure budgets (each a chance to force an argon2 hash) and fill the failure maps.
fn failure_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
    }
}

impl Verifier {
    pub fn new(store: Arc<dyn TokenStore>, settings: VerifierSettings, hashes: Counter) -> Self {
        let quota = settings.failed_attempts_per_ip;
        Self {
            store,
            store_runtime: None,
            verified: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(settings.cache_ttl)
                .support_invalidation_closures()
                .build(),
            unknown_ids: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(NEGATIVE_TTL.min(settings.cache_ttl))
                .build(),
            wrong_secrets: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(NEGATIVE_TTL.min(settings.cache_ttl))
                .build(),
            matched_hashes: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(MATCHED_TTL)
                .build(),
            hash_slots: Semaphore::new(settings.hash_concurrency.max(1)),
            limits: Arc::new(RateLimits::local()),
            failure_interval: quota.replenish_interval(),
            failure_quota: quota,
            throttled: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(quota.period())
                .build(),
            hashes,
            changes: ChangeCount::default(),
        }
    }

    /// Runs store lookups on `runtime` (the one that owns the store's connections) rather than
    /// on the caller's.
    #[must_use]
    pub fn with_store_runtime(mut self, runtime: StoreRuntime) -> Self {
        self.store_runtime = Some(runtime);
        self
    }

    /// Counts failed verifications in `limits` (shared with the token quotas, and with other
    /// replicas when its backend is).
    #[must_use]
    pub fn with_limits(mut self, limits: Arc<RateLimits>) -> Self {
        self.limits = limits;
        self
    }

    /// The failed verifications a client IP may make (`auth.failed_attempts_per_ip`), for the
    /// `RateLimit-Limit` of a throttled answer.
    pub fn failure_quota(&self) -> RateQuota {
        self.failure_quota
    }

    /// argon2 verifications run since start.
    pub fn hash_count(&self) -> u64 {
        self.hashes.get()
    }

    /// Verifies `token` presented from `client_ip`.
    pub async fn verify(&self, token: &str, client_ip: IpAddr) -> Verification {
        let parsed = PresentedToken::parse(token);
        let digest: Option<Digest32> = parsed
            .as_ref()
            .ok()
            .map(|presented| Sha256::digest(presented.expose().as_bytes()).into());
        // A verified token works from a throttled address (a shared NAT); nothing else does,
        // malformed tokens included.
        if let Some(digest) = &digest
            && let Some(record) = self.verified.get(digest).await
        {
            return Verification::Verified(record);
        }
        if let Some(wait) = self.throttled_for(client_ip).await {
            return Verification::Throttled(wait);
        }
        let (Ok(presented), Some(digest)) = (parsed, digest) else {
            return self.failed(client_ip, Unverified::Malformed, None).await;
        };
        if let Some(owner) = self.wrong_secrets.get(&digest) {
            return self
                .failed(client_ip, Unverified::WrongSecret, Some(owner.to_string()))
                .await;
        }
        let id_key = presented.id().key();
        if self.unknown_ids.contains_key(&id_key) {
            return self.failed(client_ip, Unverified::UnknownId, None).await;
        }
        let mark = self.changes.mark();
        let result = self
            .verified
            .try_get_with(digest, self.look_up_and_hash(&presented, digest))
            .await;
        if self.changes.changed_since(mark) {
            self.verified.invalidate(&digest).await;
        }
        match result {
            Ok(record) => Verification::Verified(record),
            Err(miss) => match &*miss {
                Miss::Unknown => self.failed(client_ip, Unverified::UnknownId, None).await,
                Miss::WrongSecret(owner) => {
                    self.failed(client_ip, Unverified::WrongSecret, Some(owner.to_string()))
                        .await
                }
                Miss::Unavailable => Verification::StoreUnavailable,
            },
        }
    }

    async fn look_up_and_hash(
        &self,
        presented: &PresentedToken<'_>,
        digest: Digest32,
    ) -> Result<Arc<TokenRecord>, Miss> {
        let id = presented.id();
        let looked_up = match &self.store_runtime {
            Some(runtime) => {
                let (store, id) = (Arc::clone(&self.store), id.clone());
                runtime.run(async move { store.get_token(&id).await }).await
            }
            None => self.store.get_token(id).await,
        };
        let record = match looked_up {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.unknown_ids.insert(id.key(), ());
                return Err(Miss::Unknown);
            }
            Err(e) => {
                log_store_error(&e);
                return Err(Miss::Unavailable);
            }
        };
        if record.id != *id {
            return Err(Miss::Unknown);
        }
        if self
            .matched_hashes
            .get(&digest)
            .is_some_and(|hash| *hash == *record.secret_hash)
        {
            return Ok(Arc::new(record));
        }
        let _slot = self
            .hash_slots
            .acquire()
            .await
            .map_err(|_| Miss::Unavailable)?;
        self.hashes.inc();
        let secret = presented.expose().to_owned();
        let phc = record.secret_hash.clone();
        let matches = tokio::task::spawn_blocking(move || verify_secret(&secret, &phc))
            .await
            .unwrap_or(false);
        if matches {
            self.matched_hashes
                .insert(digest, record.secret_hash.as_str().into());
            Ok(Arc::new(record))
        } else {
            let owner: Arc<str> = record.user.into();
            self.wrong_secrets.insert(digest, Arc::clone(&owner));
            Err(Miss::WrongSecret(owner))
        }
    }

    /// How long `client_ip` is still throttled: as this process last learnt it, or else as
    /// every replica counted it (a shared backend's failures of this address elsewhere).
    async fn throttled_for(&self, client_ip: IpAddr) -> Option<Duration> {
        let key = failure_key(client_ip);
        if let Some(until) = self.throttled.get(&key) {
            let now = Instant::now();
            if until > now {
                return Some(until - now);
            }
        }
        let wait = self.limits.failures_wait(key, self.failure_quota).await?;
        self.throttled.insert(key, Instant::now() + wait);
        Some(wait)
    }

    /// Counts a failure against the client IP, throttling it as soon as its budget is spent:
    /// with `5/1m`, the sixth unverified token from that address is refused before any lookup.
    async fn failed(&self, ip: IpAddr, reason: Unverified, owner: Option<String>) -> Verification {
        let ip = failure_key(ip);
        match self.limits.count_failure(ip, self.failure_quota).await {
            RateDecision::Allowed(left) if left.remaining == 0 => {
                // The next failure fits again once one failure's worth has refilled.
                self.throttled
                    .insert(ip, Instant::now() + self.failure_interval);
            }
            RateDecision::Allowed(_) => {}
            RateDecision::Limited { retry_after, .. } => {
                self.throttled.insert(ip, Instant::now() + retry_after);
            }
        }
        Verification::Invalid { reason, owner }
    }

    /// Drops cached verifications for a changed token, or all of them. Matched hashes stay: a
    /// record read again is compared with them, so a change to it costs no new hash.
    pub fn forget(&self, change: &Change) {
        match change {
            Change::Token(id) => {
                self.changes.count();
                self.unknown_ids.invalidate(&id.key());
                let id: TokenId = id.clone();
                // Registering a predicate cannot fail: closures are enabled at build time.
                let _ = self
                    .verified
                    .invalidate_entries_if(move |_, record| record.id == id);
            }
            Change::Credential(_) => {}
            Change::All => {
                self.changes.count();
                self.verified.invalidate_all();
                self.unknown_ids.invalidate_all();
                self.wrong_secrets.invalidate_all();
            }
        }
    }
}

fn log_store_error(e: &StoreError) {
    tracing::warn!(target: "tokengate::auth::verifier", error = %e, "token lookup failed");
}
