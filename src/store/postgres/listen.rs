//! Hearing of changes: a `LISTEN` connection per watcher, relayed as [`Change`]s, and a
//! heartbeat that checks the connection still delivers. A connection that went silent (a NAT
//! or firewall dropping it without a reset) is noticed within seconds, not when TCP gives up,
//! and reported as [`Change::All`].

use std::time::Duration;

use futures_util::FutureExt as _;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{ACQUIRE_TIMEOUT, CHANNEL, CREDENTIAL_PREFIX};
use crate::store::Change;
use crate::token::TokenId;

/// Bounds of the wait between attempts to re-establish a lost `LISTEN` connection.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long connecting and subscribing a `LISTEN` connection may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The channel of heartbeats, listened to on the same connection as [`CHANNEL`]. A channel of
/// its own, so that a gateway of an earlier release, which listens on [`CHANNEL`] only, never
/// sees one.
const HEARTBEAT_CHANNEL: &str = "tokengate_heartbeat";
/// How often a watcher sends a heartbeat through the pool.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);
/// How soon a heartbeat must arrive on the `LISTEN` connection; later, the connection counts as
/// lost. A silent connection is noticed within `HEARTBEAT_EVERY + HEARTBEAT_DEADLINE`.
const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(2);

/// The change a notification's payload announces, if it is well formed.
fn change_of(payload: &str) -> Option<Change> {
    match payload.strip_prefix(CREDENTIAL_PREFIX) {
        Some(user) => Some(Change::Credential(user.to_owned())),
        None => TokenId::parse(payload).map(Change::Token),
    }
}

/// A `LISTEN` connection on [`CHANNEL`] and [`HEARTBEAT_CHANNEL`], in a pool of its own: a
/// listener given up on keeps its connection until that connection fails, and must not hold
/// up the next one.
pub(super) async fn subscribe(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options.clone());
    let subscribing = async {
        let mut listener = PgListener::connect_with(&pool).await?;
        // A lost connection makes `try_recv` return at once; `forward` reconnects itself.
        listener.eager_reconnect(false);
        listener.listen_all([CHANNEL, HEARTBEAT_CHANNEL]).await?;
        Ok(listener)
    };
    tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribing)
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "subscribing to token changes timed out",
            )))
        })
}

/// One watcher's heartbeat: a payload sent on [`HEARTBEAT_CHANNEL`] through the store's pool
/// every [`HEARTBEAT_EVERY`], which must come back on the `LISTEN` connection within
/// [`HEARTBEAT_DEADLINE`].
struct Heartbeat {
    /// Tells this watcher's heartbeats from those of other watchers on the same database.
    watcher: u64,
    /// Heartbeats sent so far.
    sent: u64,
    /// When to send the next one.
    next: Instant,
    /// The heartbeat on its way, if any.
    waiting: Option<Beat>,
}

/// A heartbeat on its way.
struct Beat {
    payload: String,
    /// When it must have come back.
    due: Instant,
    /// The task sending it, which tells why it could not be sent.
    sending: JoinHandle<Result<(), String>>,
}

impl Heartbeat {
    /// A heartbeat whose first beat goes out at once.
    fn new(watcher: u64) -> Self {
        Self {
            watcher,
            sent: 0,
            next: Instant::now(),
            waiting: None,
        }
    }

    /// When [`Heartbeat::tick`] has something to do.
    fn wake_at(&self) -> Instant {
        self.waiting.as_ref().map_or(self.next, |beat| beat.due)
    }

    /// Starts over on a new connection: the next beat goes out at once. The count goes on, so a
    /// late beat sent for the old connection is not taken for one of the new.
    fn restart(&mut self) {
        self.next = Instant::now();
        self.waiting = None;
    }

    /// Sends the next heartbeat when it is time. `Err` when the one on its way is overdue, with
    /// the reason it could not be sent, when that is known.
    fn tick(&mut self, pool: &PgPool) -> Result<(), Option<String>> {
        let now = Instant::now();
        if let Some(beat) = &mut self.waiting {
            if now < beat.due {
                return Ok(());
            }
            let failed = (&mut beat.sending)
                .now_or_never()
                .and_then(|sent| match sent {
                    Ok(sent) => sent.err(),
                    Err(e) => Some(e.to_string()),
                });
            self.waiting = None;
            return Err(failed);
        }
        if now < self.next {
            return Ok(());
        }
        self.sent += 1;
        let payload = format!("{:016x}:{}", self.watcher, self.sent);
        let sending = tokio::spawn(notify(pool.clone(), payload.clone()));
        self.waiting = Some(Beat {
            payload,
            due: now + HEARTBEAT_DEADLINE,
            sending,
        });
        self.next = now + HEARTBEAT_EVERY;
        Ok(())
    }

    /// Takes note of a notification on [`HEARTBEAT_CHANNEL`]: this watcher's heartbeat, or
    /// another watcher's (ignored).
    fn arrived(&mut self, payload: &str) {
        if self
            .waiting
            .as_ref()
            .is_some_and(|beat| beat.payload == payload)
        {
            self.waiting = None;
        }
    }
}

/// Sends one heartbeat, giving up when it would arrive too late anyway.
async fn notify(pool: PgPool, payload: String) -> Result<(), String> {
    let sending = sqlx::query("SELECT pg_notify($1, $2)")
        .bind(HEARTBEAT_CHANNEL)
        .bind(payload)
        .execute(&pool);
    match tokio::time::timeout(HEARTBEAT_DEADLINE, sending).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("sending the heartbeat timed out".to_owned()),
    }
}

/// Relays notifications until the receiver or the store is dropped. A lost connection, or one
/// that a heartbeat no longer comes back on, is reported as [`Change::All`], then
/// re-established with backoff (and reported again, for what happened while it was down).
pub(super) async fn forward(
    pool: PgPool,
    options: PgConnectOptions,
    listener: PgListener,
    tx: mpsc::Sender<Change>,
    mut alive: watch::Receiver<()>,
) {
    let mut listener = Some(listener);
    let mut heartbeat = Heartbeat::new(rand::random());
    let mut backoff = MIN_BACKOFF;
    loop {
        let change = match listener.as_mut() {
            // `try_recv` is cancel-safe with `eager_reconnect(false)`: it awaits nothing but the
            // next message, which it takes from the connection's buffer whole or not at all.
            Some(l) => tokio::select! {
                () = tx.closed() => return,
                _ = alive.changed() => return,
                received = l.try_recv() => match received {
                    Ok(Some(n)) if n.channel() == HEARTBEAT_CHANNEL => {
                        heartbeat.arrived(n.payload());
                        continue;
                    }
                    Ok(Some(n)) => match change_of(n.payload()) {
                        Some(change) => change,
                        None => {
                            tracing::warn!(payload = n.payload(), "ignoring a malformed token change notification");
                            continue;
                        }
                    },
                    Ok(None) => {
                        tracing::warn!("lost the token change subscription: the connection closed; forgetting cached tokens and reconnecting");
                        listener = None;
                        Change::All
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the token change subscription; forgetting cached tokens and reconnecting");
                        listener = None;
                        Change::All
                    }
                },
                () = tokio::time::sleep_until(heartbeat.wake_at()) => match heartbeat.tick(&pool) {
                    Ok(()) => continue,
                    Err(failed) => {
                        match failed {
                            Some(error) => tracing::warn!(%error, "the token change subscription cannot be checked: a heartbeat could not be sent; forgetting cached tokens and reconnecting"),
                            None => tracing::warn!(deadline = ?HEARTBEAT_DEADLINE, "the token change subscription went silent: a heartbeat did not come back in time; forgetting cached tokens and reconnecting"),
                        }
                        // Dropped: its connection is left to fail on its own.
                        listener = None;
                        Change::All
                    }
                },
            },
            None => tokio::select! {
                () = tx.closed() => return,
                _ = alive.changed() => return,
                subscribed = subscribe(&options) => match subscribed {
                    Ok(l) => {
                        tracing::info!("token change subscription re-established");
                        listener = Some(l);
                        heartbeat.restart();
                        backoff = MIN_BACKOFF;
                        Change::All
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "re-subscribing to token changes failed");
                        tokio::select! {
                            () = tx.closed() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            },
        };
        if tx.send(change).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Other watchers' heartbeats on the shared channel, and an old one of this watcher's, do
    /// not count as the one it is waiting for.
    #[tokio::test]
    async fn only_the_watchers_latest_heartbeat_counts() {
        let pool = PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/nothing")
            .unwrap();
        let mut heartbeat = Heartbeat::new(0xabc);
        assert_eq!(heartbeat.tick(&pool), Ok(()));
        let due = heartbeat.wake_at();
        heartbeat.arrived("0000000000000def:1");
        heartbeat.arrived("0000000000000abc:0");
        assert_eq!(heartbeat.wake_at(), due, "still waiting for its own");
        heartbeat.arrived("0000000000000abc:1");
        assert!(
            heartbeat.wake_at() > due,
            "back: the next one goes out a full period after this one"
        );
        assert_eq!(heartbeat.tick(&pool), Ok(()), "not yet time for the next");
    }
}
