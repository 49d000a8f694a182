//! Hearing of changes on SQLite: every watcher polls the `token_changes` table, where each
//! token or credential change is written in the transaction that makes it, so a change made by
//! another process on the same file (the CLI) is heard within a second. Old rows are deleted.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::millis;
use crate::store::Change;
use crate::token::TokenId;

/// How often watchers look for new rows in `token_changes`.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Change rows older than this are deleted (every watcher is far more recent).
const CHANGE_RETENTION: TimeDelta = TimeDelta::minutes(1);
/// Polls between two deletions of old change rows (about 30 s).
const CLEANUP_EVERY: u32 = 150;

/// Relays new `token_changes` rows until the receiver or the store is dropped. After a
/// failed poll it reports [`Change::All`] once polling works again, since rows may have been
/// cleaned up in between.
pub(super) async fn poll(
    pool: SqlitePool,
    mut last: i64,
    tx: mpsc::Sender<Change>,
    mut alive: watch::Receiver<()>,
) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    let mut polls = 0u32;
    loop {
        tokio::select! {
            () = tx.closed() => return,
            _ = alive.changed() => return,
            _ = tick.tick() => {}
        }
        let changes: Result<Vec<(i64, String, Option<String>)>, _> = sqlx::query_as(
            "SELECT seq, token_id, user_name FROM token_changes WHERE seq > ? ORDER BY seq",
        )
        .bind(last)
        .fetch_all(&pool)
        .await;
        let mut out = Vec::new();
        match changes {
            Ok(changes) => {
                if std::mem::take(&mut failing) {
                    out.push(Change::All);
                }
                for (seq, id, user) in changes {
                    last = seq;
                    let change = match user {
                        Some(user) => Some(Change::Credential(user)),
                        None => TokenId::parse(&id).map(Change::Token),
                    };
                    match change {
                        Some(change) => out.push(change),
                        None => tracing::warn!(token_id = id, "ignoring a malformed token change"),
                    }
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "polling token changes failed");
                }
                failing = true;
            }
        }
        for change in out {
            if tx.send(change).await.is_err() {
                return;
            }
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(CLEANUP_EVERY) {
            let cutoff = millis(Utc::now() - CHANGE_RETENTION);
            if let Err(e) = sqlx::query("DELETE FROM token_changes WHERE at < ?")
                .bind(cutoff)
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "cleaning up old token changes failed");
            }
        }
    }
}
