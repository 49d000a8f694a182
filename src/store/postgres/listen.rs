//! Hearing of changes: a `LISTEN` connection per watcher, relayed as [`Change`]s, and a
//! heartbeat on that same connection that checks it still answers. A connection that went
//! silent (a NAT or firewall dropping it without a reset) is noticed within seconds, not when
//! TCP gives up. A lost connection is made again, and [`Change::All`] reported once it is: the
//! changes made in between went unheard. Until then nothing is reported, so while PostgreSQL
//! cannot be reached the tokens verified within `auth.cache_ttl` keep working (nobody can
//! revoke them meanwhile), rather than every token failing with it. The heartbeat never goes
//! through the store's pool: a pool busy with lookups says nothing about the `LISTEN`
//! connection.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{ACQUIRE_TIMEOUT, CHANNEL, CREDENTIAL_PREFIX};
use crate::store::Change;
use crate::token::TokenId;

/// Bounds of the wait between attempts to re-establish a lost `LISTEN` connection.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long connecting and subscribing a `LISTEN` connection may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The channel heartbeats are sent on (a `NOTIFY` nobody needs to hear, so an operator can
/// watch them with `LISTEN tokengate_heartbeat`). A channel of its own: no gateway listens on
/// it, so a heartbeat is never taken for a change.
const HEARTBEAT_CHANNEL: &str = "tokengate_heartbeat";
/// How often a watcher sends a heartbeat on its `LISTEN` connection.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);
/// How soon the heartbeat's answer must arrive; later, the connection counts as lost. A silent
/// connection is noticed within `HEARTBEAT_EVERY + HEARTBEAT_DEADLINE`.
const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(2);

/// The change a notification's payload announces, if it is well formed.
fn change_of(payload: &str) -> Option<Change> {
    match payload.strip_prefix(CREDENTIAL_PREFIX) {
        Some(user) => Some(Change::Credential(user.to_owned())),
        None => TokenId::parse(payload).map(Change::Token),
    }
}

/// A `LISTEN` connection on [`CHANNEL`], in a pool of its own: a
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
        listener.listen(CHANNEL).await?;
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

/// Relays notifications until the receiver or the store is dropped. A lost connection, or one
/// whose heartbeat is not answered in time, is re-established with backoff and then reported
/// as [`Change::All`], for what happened while it was down.
pub(super) async fn forward(
    options: PgConnectOptions,
    listener: PgListener,
    tx: mpsc::Sender<Change>,
    mut alive: watch::Receiver<()>,
) {
    let mut listener = Some(listener);
    let mut next_beat = Instant::now() + HEARTBEAT_EVERY;
    let mut backoff = MIN_BACKOFF;
    loop {
        let change = match listener.as_mut() {
            Some(l) => {
                // `try_recv` is cancel-safe with `eager_reconnect(false)`: it awaits nothing but
                // the next message, which it takes from the connection's buffer whole or not
                // at all.
                let received = tokio::select! {
                    () = tx.closed() => return,
                    _ = alive.changed() => return,
                    received = l.try_recv() => Some(received),
                    () = tokio::time::sleep_until(next_beat) => None,
                };
                match received {
                    Some(Ok(Some(n))) => match change_of(n.payload()) {
                        Some(change) => change,
                        None => {
                            tracing::warn!(
                                payload = n.payload(),
                                "ignoring a malformed token change notification"
                            );
                            continue;
                        }
                    },
                    Some(Ok(None)) => {
                        tracing::warn!(
                            "lost the token change subscription: the connection closed; reconnecting (cached tokens are trusted for up to auth.cache_ttl meanwhile, and forgotten once it is back)"
                        );
                        listener = None;
                        continue;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "lost the token change subscription; reconnecting (cached tokens are trusted for up to auth.cache_ttl meanwhile, and forgotten once it is back)");
                        listener = None;
                        continue;
                    }
                    None => {
                        next_beat = Instant::now() + HEARTBEAT_EVERY;
                        // A round trip on the LISTEN connection itself. Notifications that
                        // arrive meanwhile are kept for `try_recv`.
                        let beat = sqlx::query("SELECT pg_notify($1, '')")
                            .bind(HEARTBEAT_CHANNEL)
                            .execute(&mut *l);
                        match tokio::time::timeout(HEARTBEAT_DEADLINE, beat).await {
                            Ok(Ok(_)) => continue,
                            Ok(Err(error)) => {
                                tracing::warn!(%error, "the token change subscription failed its heartbeat; reconnecting (cached tokens are forgotten once it is back)");
                            }
                            Err(_) => {
                                tracing::warn!(deadline = ?HEARTBEAT_DEADLINE, "the token change subscription went silent: its heartbeat was not answered in time; reconnecting (cached tokens are forgotten once it is back)");
                            }
                        }
                        // Dropped: its connection is left to fail on its own.
                        listener = None;
                        continue;
                    }
                }
            }
            None => tokio::select! {
                () = tx.closed() => return,
                _ = alive.changed() => return,
                subscribed = subscribe(&options) => match subscribed {
                    Ok(l) => {
                        tracing::info!("token change subscription re-established; forgetting cached tokens, as changes made meanwhile went unheard");
                        listener = Some(l);
                        next_beat = Instant::now() + HEARTBEAT_EVERY;
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
