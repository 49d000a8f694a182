//! The shared limiter: each check is one GCRA step in Redis, a Lua script run atomically on
//! the server's clock in one round trip, so every replica counts against the same budget.
//!
//! Each thread that checks (each proxy worker runs a runtime of its own) keeps its own
//! multiplexed connection, driven on that thread's runtime, so a check wakes no other thread.
//! A call that takes longer than the configured timeout is given up; what to do then is the
//! caller's choice (see [`super::RateLimits`]).

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError, Script};
use secrecy::{ExposeSecret, SecretString};
use thread_local::ThreadLocal;

use super::{RateDecision, RateQuota};

/// The GCRA step, with its arguments described at its top.
const GCRA: &str = include_str!("shared/gcra.lua");

/// The key a probe counts against, under the prefix.
const PROBE_KEY: &str = "probe";

/// How long a new connection may take to open (TCP, TLS, `AUTH`, `SELECT`). Checks waiting
/// for it still give up after the call timeout; the connection goes on opening for the next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a key is counted for; each kind has its own key space under the prefix.
#[derive(Debug, Clone, Copy)]
pub enum SharedKey<'a> {
    /// A token's quota, by token id.
    Token(&'a [u8]),
    /// Failed verifications of a client address (an IPv6 client's /64).
    Failures(std::net::IpAddr),
}

/// Why a shared check gave no answer.
#[derive(Debug)]
pub enum SharedError {
    /// This thread's connection is still opening (TCP, TLS, `AUTH`) after the call timeout: not
    /// a sign that Redis is away, only that this check cannot wait for it.
    Opening,
    /// No answer within the call timeout.
    Timeout(Duration),
    /// Redis refused, or the connection failed.
    Redis(RedisError),
    /// An answer of the wrong shape (another program's value under one of our keys).
    Reply(String),
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Opening => write!(f, "the connection is still opening"),
            Self::Timeout(after) => write!(f, "no answer within {after:?}"),
            Self::Redis(e) => write!(f, "{e}"),
            Self::Reply(what) => write!(f, "unexpected answer: {what}"),
        }
    }
}

impl std::error::Error for SharedError {}

/// Counts quotas in Redis.
pub struct RedisLimiter {
    client: Client,
    script: Script,
    prefix: String,
    timeout: Duration,
    /// Each thread's connection and the generation it was opened in.
    connections: ThreadLocal<RefCell<Option<Connection>>>,
    /// Raised by [`RedisLimiter::renew_connections`]: a connection of an older generation is
    /// replaced at its thread's next check.
    generation: AtomicU64,
}

impl RedisLimiter {
    /// A limiter on `url` (`redis://` or `rediss://`), its keys under `prefix`, each call given
    /// up after `timeout`. Opens nothing yet.
    ///
    /// # Errors
    ///
    /// A URL the client cannot use; the message never holds the URL.
    pub fn new(url: &SecretString, prefix: &str, timeout: Duration) -> Result<Self, RedisError> {
        if url.expose_secret().starts_with("rediss://") {
            install_tls_provider();
        }
        Ok(Self {
            client: Client::open(url.expose_secret())?,
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
            timeout,
            connections: ThreadLocal::new(),
            generation: AtomicU64::new(0),
        })
    }

    /// One GCRA step for `key` under `quota`: counted when `count`, else only looked at (is
    /// one more request allowed now?).
    ///
    /// # Errors
    ///
    /// No answer within the timeout, a connection or server error, or a malformed answer.
    pub async fn step(
        &self,
        key: SharedKey<'_>,
        quota: RateQuota,
        count: bool,
    ) -> Result<RateDecision, SharedError> {
        let Connection {
            mut manager, open, ..
        } = self.connection().map_err(SharedError::Redis)?;
        let mut invocation = self.script.key(self.key(key, quota));
        invocation
            .arg(interval_micros(quota))
            .arg(quota.requests.get())
            .arg(u8::from(count));
        let call = invocation.invoke_async::<Vec<i64>>(&mut manager);
        let reply = match tokio::time::timeout(self.timeout, call).await {
            Ok(reply) => reply.map_err(SharedError::Redis)?,
            Err(_) if !open.load(Ordering::Acquire) => return Err(SharedError::Opening),
            Err(_) => return Err(SharedError::Timeout(self.timeout)),
        };
        decode(&reply, quota)
    }

    /// Opens a connection of its own and counts one request against a probe key with a quota
    /// that never runs out: proves that Redis answers, and takes scripts and writes (a
    /// read-only replica does not), within the timeout.
    ///
    /// # Errors
    ///
    /// As [`RedisLimiter::step`].
    pub async fn probe(
        &self,
        reuse: &mut Option<MultiplexedConnection>,
    ) -> Result<(), SharedError> {
        let mut connection = match reuse.take() {
            Some(connection) => connection,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(self.timeout));
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(SharedError::Redis)?
            }
        };
        let quota = RateQuota::new(u32::MAX, 1).expect("a valid quota");
        let mut invocation = self.script.key(format!("{}{PROBE_KEY}", self.prefix));
        invocation
            .arg(interval_micros(quota))
            .arg(quota.requests.get())
            .arg(1u8);
        let call = invocation.invoke_async::<Vec<i64>>(&mut connection);
        let reply = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| SharedError::Timeout(self.timeout))?
            .map_err(SharedError::Redis)?;
        decode(&reply, quota)?;
        *reuse = Some(connection);
        Ok(())
    }

    /// Makes every thread open a new connection at its next check, so none uses one that broke
    /// while Redis was away.
    pub fn renew_connections(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// This thread's connection, opened lazily on this thread's runtime.
    fn connection(&self) -> Result<Connection, RedisError> {
        let generation = self.generation.load(Ordering::Acquire);
        let mut slot = self.connections.get_or_default().borrow_mut();
        if let Some(connection) = &*slot
            && connection.generation == generation
        {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1));
        let connection = Connection {
            generation,
            manager: ConnectionManager::new_lazy_with_config(self.client.clone(), config)?,
            open: Arc::new(AtomicBool::new(false)),
        };
        // Opening is driven by whoever waits for it; this task does, so an opening slower than
        // the call timeout still completes, for the checks that come after.
        let (mut opening, open) = (connection.manager.clone(), Arc::clone(&connection.open));
        tokio::spawn(async move {
            let pong: Result<(), RedisError> = redis::cmd("PING").query_async(&mut opening).await;
            if pong.is_ok() {
                open.store(true, Ordering::Release);
            }
        });
        *slot = Some(connection.clone());
        Ok(connection)
    }

    fn key(&self, key: SharedKey<'_>, quota: RateQuota) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + 48);
        out.extend_from_slice(self.prefix.as_bytes());
        match key {
            SharedKey::Token(id) => {
                out.extend_from_slice(b"token:");
                out.extend_from_slice(id);
            }
            SharedKey::Failures(ip) => {
                out.extend_from_slice(format!("failures:{ip}").as_bytes());
            }
        }
        // Each quota counts apart, as the local limiter counts it: a changed quota starts
        // from a full budget.
        out.extend_from_slice(format!(":{quota}").as_bytes());
        out
    }
}

/// One thread's connection.
#[derive(Clone)]
struct Connection {
    /// The [`RedisLimiter::renew_connections`] generation it belongs to.
    generation: u64,
    manager: ConnectionManager,
    /// True once it answered a first PING.
    open: Arc<AtomicBool>,
}

/// Gives rustls a crypto provider for `rediss://` unless another part of the process chose one
/// already: ring, which builds with a C compiler alone. Its lack of post-quantum key exchange
/// (the reason rustls deprecates it as the default) matters little for counters on a private
/// network.
#[allow(deprecated)]
fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: one provider is in place either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// `period / requests` in microseconds, fractions kept, as the script reads it.
#[allow(clippy::cast_precision_loss)] // periods stay far below 2^53 microseconds
fn interval_micros(quota: RateQuota) -> String {
    let micros = quota.period_seconds as f64 * 1e6 / f64::from(quota.requests.get());
    format!("{micros}")
}

/// The script's answer, `{allowed, remaining, wait_us}`, as a decision.
fn decode(reply: &[i64], quota: RateQuota) -> Result<RateDecision, SharedError> {
    match *reply {
        [1, remaining, _] => Ok(RateDecision::allowed(
            quota,
            u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
        )),
        [0, _, wait] => Ok(RateDecision::limited(
            quota,
            Duration::from_micros(u64::try_from(wait.max(1)).unwrap_or(u64::MAX)),
        )),
        _ => Err(SharedError::Reply(format!("{reply:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(s: &str) -> RateQuota {
        s.parse().unwrap()
    }

    #[test]
    fn the_interval_keeps_fractions_of_a_microsecond() {
        assert_eq!(interval_micros(quota("5/5m")), "60000000");
        assert_eq!(interval_micros(quota("3/1s")), "333333.3333333333");
        assert_eq!(interval_micros(quota("4000000000/1s")), "0.00025");
        assert_eq!(interval_micros(quota("1/366d")), "31622400000000");
    }

    #[test]
    fn answers_read_as_the_local_limiter_words_them() {
        let q = quota("5/5m");
        assert_eq!(decode(&[1, 4, 0], q).unwrap(), RateDecision::allowed(q, 4));
        let RateDecision::Limited {
            status,
            retry_after,
        } = decode(&[0, 0, 59_000_001], q).unwrap()
        else {
            panic!("refused");
        };
        assert_eq!(retry_after, Duration::from_micros(59_000_001));
        assert_eq!(status.remaining, 0);
        assert_eq!(status.reset, retry_after + Duration::from_secs(240));
        assert!(decode(&[2, 0, 0], q).is_err());
        assert!(decode(&[1, 0], q).is_err());
    }
}
