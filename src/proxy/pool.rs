//! A worker's keep-alive connections to Bitbucket.
//!
//! Each proxy worker has a pool of its own (its gateway's), so a connection's task and the
//! requests sent over it run on one thread, and the pool's lock is never contended. A
//! connection serves one request at a time: it is taken for the request and goes back once
//! Bitbucket's answer has been read to its end ([`UpstreamBody`]) and the connection is ready
//! for another request (the request's body may still be going out). One whose answer was not
//! read to the end (the client went away) is closed. The newest is taken first, so the older
//! ones stay idle under light load, and the sweep closes those idle for
//! `upstream.pool_idle_timeout`.

mod body;
mod connector;

use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, Weak};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

pub use body::UpstreamBody;
pub(super) use connector::{ConnectError, Connecting, Connector};

/// At most this many idle connections are kept; one more is closed instead.
const MAX_IDLE: usize = 256;

/// The least time between two sweeps, however short the idle timeout.
const MIN_SWEEP: Duration = Duration::from_millis(100);

/// One worker's idle connections to Bitbucket, and how to make new ones.
pub(super) struct Pool {
    /// Idle connections, the most recently used last.
    idle: Mutex<Vec<Idle>>,
    /// How long a connection may stay unused.
    idle_timeout: Duration,
    /// Opens connections.
    connector: Connector,
    /// Starts the sweep with the first connection, on the worker's runtime.
    sweep_started: Once,
}

/// A connection that serves no request.
struct Idle {
    sender: SendRequest<Incoming>,
    /// When it went back to the pool.
    since: Instant,
}

impl Idle {
    /// Whether it may serve a request at `now`: it went back ready for one, and is not ready
    /// only once closed, and it was not idle for `timeout` or longer.
    fn usable(&self, now: Instant, timeout: Duration) -> bool {
        self.sender.is_ready() && now.saturating_duration_since(self.since) < timeout
    }
}

impl Pool {
    pub(super) fn new(connector: Connector, idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            idle_timeout,
            connector,
            sweep_started: Once::new(),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // The list stays whole whatever panicked while it was held.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used connection that is ready for a request and not idle for too
    /// long at `now`; those that are not are closed on the way.
    pub(super) fn take(&self, now: Instant) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle();
        while let Some(entry) = idle.pop() {
            if entry.usable(now, self.idle_timeout) {
                return Some(entry.sender);
            }
        }
        None
    }

    /// Keeps `sender` for the next request once its connection is ready for one: at once
    /// when it is (the usual case), else when it becomes ready. A connection that closes
    /// instead, or finds the pool full, is closed.
    pub(super) fn put(self: Arc<Self>, mut sender: SendRequest<Incoming>) {
        if sender.is_ready() {
            self.keep(sender);
        } else if !sender.is_closed() {
            // The request's body is still going out (Bitbucket answered before reading all
            // of it), or the connection has yet to see that the answer ended.
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    self.keep(sender);
                }
            });
        }
    }

    fn keep(&self, sender: SendRequest<Incoming>) {
        let since = Instant::now();
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(Idle { sender, since });
        }
    }

    /// Closes the connections that are closing anyway or idle for too long at `now`.
    fn sweep(&self, now: Instant) {
        let timeout = self.idle_timeout;
        let closed: Vec<Idle> = {
            let mut idle = self.idle();
            let (keep, close) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|entry| entry.usable(now, timeout));
            *idle = keep;
            close
        };
        // Dropping a sender ends its connection: outside the lock.
        drop(closed);
    }

    /// A new connection to Bitbucket, its task spawned on the current runtime; the first one
    /// also starts the sweep there.
    pub(super) fn connect(self: &Arc<Self>) -> Connecting {
        self.sweep_started.call_once(|| {
            tokio::spawn(sweep_while_alive(
                Arc::downgrade(self),
                (self.idle_timeout / 2).max(MIN_SWEEP),
            ));
        });
        self.connector.connect()
    }
}

/// Sweeps `pool` every `period` until it is gone.
async fn sweep_while_alive(pool: Weak<Pool>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once.
    tick.tick().await;
    loop {
        let now = tick.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.sweep(now),
            None => return,
        }
    }
}
