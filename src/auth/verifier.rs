//! Verifying tokengate tokens: checksum first, then a cache keyed by a tag of the whole token,
//! then one indexed store lookup and one argon2 verification on the blocking pool.
//!
//! The tag ([`super::tag`]) is Poly1305 under a key drawn at random when the verifier is
//! made: a keyed hash that costs a few hundred instructions where a SHA-256 digest costs a few
//! thousand, every request.
//!
//! A verified token is trusted for the cache lifetime; then (or after a change to it) its record
//! is read again, but its secret is not hashed again while the stored hash is the one it
//! matched. So an argon2 hash runs about once per token (concurrent first uses share one), never
//! for an id the store does not know, and never for a bad checksum. Unknown ids and wrong
//! secrets are remembered briefly; clients that keep failing are throttled per IP, counted where
//! the token quotas are (with a shared backend, across every replica).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use moka::future::Cache;
use prometheus_client::metrics::counter::Counter;
use rand::RngCore;
use tokio::sync::Semaphore;

use super::tag::{Tag, TagKey};
use super::{Unverified, Verification};
use crate::ratelimit::{RateDecision, RateLimits, RateQuota};
use crate::store::{Change, ChangeCount, StoreError, StoreRuntime, TokenStore};
use crate::token::{ParseError, PresentedToken, TOKEN_LEN, TokenId, TokenRecord, verify_secret};

/// The caches' hasher: seeded at random per cache, and far cheaper than SipHash.
type Hasher = foldhash::fast::RandomState;

/// Verifies presented tokens against the store, with caches in front of it.
pub struct Verifier {
    store: Arc<dyn TokenStore>,
    /// Where store lookups run; `None` runs them on the caller's runtime.
    store_runtime: Option<StoreRuntime>,
    /// This verifier's random key for the tags of presented tokens.
    tag_key: TagKey,
    /// Tag of a whole token that verified → its record.
    verified: Cache<Tag, Trusted, Hasher>,
    /// The same answers, in front of `verified`: a hit there costs an order of magnitude more
    /// (its bookkeeping of reads and expiry) than this map's lookup. Emptied on every change
    /// and when full; never holds a record longer than `verified` would trust it.
    front: RwLock<HashMap<Tag, Trusted, Hasher>>,
    /// How long a verified token is trusted without the store.
    cache_ttl: Duration,
    /// Ids the store does not know.
    unknown_ids: moka::sync::Cache<[u8; 12], (), Hasher>,
    /// Tag of a whole token whose secret did not match → the owner.
    wrong_secrets: moka::sync::Cache<Tag, Arc<str>, Hasher>,
    /// Tag of a whole token whose secret matched → the stored hash it matched. A record read
    /// again with this same hash needs no new argon2 verification: the verdict is the same.
    matched_hashes: moka::sync::Cache<Tag, Arc<str>, Hasher>,
    /// Bounds concurrent argon2 verifications.
    hash_slots: Semaphore,
    /// Where failed verifications per client IP are counted (with the token quotas).
    limits: Arc<RateLimits>,
    /// The time one failure's worth of budget takes to refill.
    failure_interval: Duration,
    /// Client IPs over their failure budget → until when, as this process learnt it.
    throttled: moka::sync::Cache<IpAddr, Instant, Hasher>,
    /// `auth.failed_attempts_per_ip`.
    failure_quota: RateQuota,
    /// argon2 verifications run so far (the `tokengate_hash_verifications_total` metric).
    hashes: Counter,
    /// Token changes heard, so a lookup that one overtook is not kept.
    changes: ChangeCount,
}

/// A verified token's record and until when it is trusted without the store.
#[derive(Debug, Clone)]
struct Trusted {
    record: Arc<TokenRecord>,
    until: Instant,
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
/// Entries in the front map at most; it is emptied when full.
const FRONT_CAPACITY: usize = 10_000;

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
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let tag_key = TagKey::new(&key);
        Self {
            store,
            store_runtime: None,
            tag_key,
            verified: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(settings.cache_ttl)
                .support_invalidation_closures()
                .build_with_hasher(Hasher::default()),
            unknown_ids: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(NEGATIVE_TTL.min(settings.cache_ttl))
                .build_with_hasher(Hasher::default()),
            wrong_secrets: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(NEGATIVE_TTL.min(settings.cache_ttl))
                .build_with_hasher(Hasher::default()),
            matched_hashes: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(MATCHED_TTL)
                .build_with_hasher(Hasher::default()),
            hash_slots: Semaphore::new(settings.hash_concurrency.max(1)),
            limits: Arc::new(RateLimits::local()),
            failure_interval: quota.replenish_interval(),
            failure_quota: quota,
            throttled: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(quota.period())
                .build_with_hasher(Hasher::default()),
            hashes,
            changes: ChangeCount::default(),
            front: RwLock::new(HashMap::default()),
            cache_ttl: settings.cache_ttl,
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

    /// The tag of a whole token under this verifier's key.
    fn tag(&self, token: &str) -> Tag {
        self.tag_key.tag(token.as_bytes())
    }

    /// The record of `token` when it verified before and is trusted still, as
    /// [`Verifier::verify`] would answer it, without waiting. `None` says nothing about the
    /// token: `verify` decides.
    pub fn verified_before(&self, token: &str) -> Option<Arc<TokenRecord>> {
        if token.len() != TOKEN_LEN {
            return None;
        }
        self.front_get(&self.tag(token))
    }

    /// Verifies `token` presented from `client_ip`.
    pub async fn verify(&self, token: &str, client_ip: IpAddr) -> Verification {
        // Only a token's length is tagged: a longer value is refused by its shape below, and
        // must not cost a tag as long as itself.
        let tag = (token.len() == TOKEN_LEN).then(|| self.tag(token));
        // A verified token works from a throttled address (a shared NAT); nothing else does,
        // malformed tokens included. A token in the front map verified before, so its shape
        // and checksum passed then, and its tag stands for it: they are not checked again.
        if let Some(tag) = &tag
            && let Some(record) = self.front_get(tag)
        {
            return Verification::Verified(record);
        }
        let parsed = PresentedToken::parse(token);
        // The whole token is what was tagged (`expose` is the token as presented).
        let digest = tag.filter(|_| parsed.is_ok());
        // Boxed: the rest (cache bookkeeping, lookup, hashing) is a large future that every
        // request's future would otherwise hold, and move, in full.
        Box::pin(self.verify_further(parsed, digest, client_ip)).await
    }

    /// [`Verifier::verify`] past the front map.
    async fn verify_further(
        &self,
        parsed: Result<PresentedToken<'_>, ParseError>,
        digest: Option<Tag>,
        client_ip: IpAddr,
    ) -> Verification {
        if let Some(digest) = &digest {
            let mark = self.changes.mark();
            if let Some(trusted) = self.verified.get(digest).await {
                let record = Arc::clone(&trusted.record);
                self.front_put(*digest, trusted, mark);
                return Verification::Verified(record);
            }
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
            Ok(trusted) => {
                let record = Arc::clone(&trusted.record);
                self.front_put(digest, trusted, mark);
                Verification::Verified(record)
            }
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

    /// A trusted record from the front map, unless its time is up.
    fn front_get(&self, digest: &Tag) -> Option<Arc<TokenRecord>> {
        let front = self.front.read().unwrap_or_else(PoisonError::into_inner);
        let trusted = front.get(digest)?;
        (Instant::now() < trusted.until).then(|| Arc::clone(&trusted.record))
    }

    /// Puts a record `verified` answered into the front map, unless a change was heard since
    /// `mark` (taken before `verified` was asked): [`Verifier::forget`] counts a change before
    /// emptying the map, and the count is read under the map's lock, so a record read before a
    /// change never outlives it there.
    fn front_put(&self, digest: Tag, trusted: Trusted, mark: u64) {
        let mut front = self.front.write().unwrap_or_else(PoisonError::into_inner);
        if self.changes.changed_since(mark) {
            return;
        }
        if front.len() >= FRONT_CAPACITY {
            front.clear();
        }
        front.insert(digest, trusted);
    }

    fn forget_front(&self) {
        self.front
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    async fn look_up_and_hash(
        &self,
        presented: &PresentedToken<'_>,
        digest: Tag,
    ) -> Result<Trusted, Miss> {
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
            return Ok(self.trust(record));
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
            Ok(self.trust(record))
        } else {
            let owner: Arc<str> = record.user.into();
            self.wrong_secrets.insert(digest, Arc::clone(&owner));
            Err(Miss::WrongSecret(owner))
        }
    }

    /// `record`, trusted for the cache lifetime from now.
    fn trust(&self, record: TokenRecord) -> Trusted {
        Trusted {
            record: Arc::new(record),
            until: Instant::now() + self.cache_ttl,
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
                    .invalidate_entries_if(move |_, trusted| trusted.record.id == id);
                self.forget_front();
            }
            Change::Credential(_) => {}
            Change::All => {
                self.changes.count();
                self.verified.invalidate_all();
                self.forget_front();
                self.unknown_ids.invalidate_all();
                self.wrong_secrets.invalidate_all();
            }
        }
    }
}

fn log_store_error(e: &StoreError) {
    tracing::warn!(target: "tokengate::auth::verifier", error = %e, "token lookup failed");
}
