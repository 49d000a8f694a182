//! Changes made elsewhere reach a running gateway even when it could not watch for them at
//! first: the watch is retried, and once it works nothing cached in the meantime is trusted.
//! While PostgreSQL cannot be reached at all, tokens verified less than `auth.cache_ttl` ago keep
//! working (nobody can revoke them through it meanwhile), and every other token gets 503.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokengate::store::{self, Store, TokenWrite};
use tokengate::token::{Scope, TokenId};

use crate::support::app::{Backend, Options, TokenOpts, insert_token, spawn_app};
use crate::support::forwarder::Forwarder;
use crate::support::{fresh_postgres_url, refused_within_a_second};

/// The gateway's database is reachable for its first connection only (migrations, then its
/// one pooled connection): the `LISTEN` connection it opens next is turned away, so `watch()`
/// fails at start-up. A token cached then and revoked while nothing is watched is refused as
/// soon as the retried watch works, long before `auth.cache_ttl`; later changes are heard
/// within a second.
#[tokio::test]
async fn a_watch_that_failed_at_start_up_is_retried_and_then_trusts_nothing_cached() {
    let url = fresh_postgres_url().await;
    let store = store::connect(&url, 2).await.expect("the test's own store");
    let network = Forwarder::start(&url).await;
    network.admit(1);
    let app = spawn_app(
        Options::new(Backend::Postgres)
            .set("database.url", network.url(&url))
            .set("database.max_connections", 1_i64),
    )
    .await;
    let failed = app
        .wait_for_line("the failed watch", |l| {
            l.message.contains("cannot watch token changes")
        })
        .await;
    assert_eq!(failed.level, "WARN", "{failed:?}");
    assert!(
        failed.message.contains("auth.cache_ttl"),
        "the warning tells what it means: {failed:?}"
    );

    // Cached, then revoked unheard: still accepted while nothing is watched.
    let (id, token) = app
        .create_token_in(&*store, "alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    assert_eq!(app.use_token(&token).await, 200);
    revoke(&*store, &id).await;
    assert_eq!(app.use_token(&token).await, 200);

    network.admit_all();
    let again = app
        .wait_for_line("the watch established", |l| {
            l.message.contains("watching token changes again")
        })
        .await;
    assert_eq!(again.level, "INFO", "{again:?}");
    assert_eq!(app.use_token(&token).await, 401);

    // And from now on, a revocation reaches the gateway within a second.
    let (id, token) = app
        .create_token_in(&*store, "bob", Scope::ReadOnly, TokenOpts::default())
        .await;
    assert_eq!(app.use_token(&token).await, 200);
    revoke(&*store, &id).await;
    refused_within_a_second("the revoked token", Instant::now(), async || {
        let status = app.use_token(&token).await;
        if status == 401 {
            return Some(());
        }
        assert_eq!(status, 200);
        None
    })
    .await;
    app.finish().await;
}

/// The gateway's PostgreSQL goes down (its connections close, new ones are refused): a token it
/// verified moments before keeps being allowed, one it has not verified gets 503. Once its
/// database is back and change watching works again, everything cached is forgotten, so a
/// revocation made during the outage counts at once, long before `auth.cache_ttl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_tokens_keep_working_while_postgres_is_down() {
    let url = fresh_postgres_url().await;
    let store = store::connect(&url, 2).await.expect("the test's own store");
    let network = Forwarder::start(&url).await;
    // Stored before the gateway watches changes: the notice of a creation arriving after the
    // first use would drop the token from the cache.
    let (cached_id, cached) =
        insert_token(&*store, "alice", Scope::ReadOnly, TokenOpts::default()).await;
    let (_, uncached) = insert_token(&*store, "bob", Scope::ReadOnly, TokenOpts::default()).await;
    let app = spawn_app(
        Options::new(Backend::Postgres)
            .set("database.url", network.url(&url))
            .set("auth.cache_ttl", "1h"),
    )
    .await;
    app.track_secret(&cached);
    app.track_secret(&uncached);
    assert_eq!(app.use_token(&cached).await, 200);

    network.admit(0);
    network.cut();
    app.wait_for_line("the lost subscription", |l| {
        l.message.contains("lost the token change subscription")
    })
    .await;
    assert_eq!(
        app.use_token(&cached).await,
        200,
        "a cached token is refused"
    );
    assert_eq!(app.use_token(&uncached).await, 503);
    // Revoked during the outage, by a route to the database the gateway does not have:
    // unheard, so still allowed.
    revoke(&*store, &cached_id).await;
    assert_eq!(app.use_token(&cached).await, 200);
    assert_eq!(app.use_token(&uncached).await, 503);

    network.admit_all();
    app.wait_for_line("the subscription made again", |l| {
        l.message
            .contains("token change subscription re-established")
    })
    .await;
    // The cache is dropped when watching works again: the revocation counts at once.
    refused_within_a_second(
        "a token revoked while watching was down",
        Instant::now(),
        async || match app.use_token(&cached).await.as_u16() {
            401 => Some(()),
            200 => None,
            other => panic!("status {other}"),
        },
    )
    .await;
    assert_eq!(app.use_token(&uncached).await, 200);
    app.finish().await;
}

/// During an outage a cached token is trusted for `auth.cache_ttl` after it was verified, no
/// longer: then it gets 503 like any token the gateway cannot look up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_an_outage_a_cached_token_is_trusted_for_cache_ttl_at_most() {
    let url = fresh_postgres_url().await;
    let store = store::connect(&url, 2).await.expect("the test's own store");
    let network = Forwarder::start(&url).await;
    // Stored before the gateway watches changes, as above.
    let (_, token) = insert_token(&*store, "alice", Scope::ReadOnly, TokenOpts::default()).await;
    let app = spawn_app(
        Options::new(Backend::Postgres)
            .set("database.url", network.url(&url))
            .set("auth.cache_ttl", "3s"),
    )
    .await;
    app.track_secret(&token);
    assert_eq!(app.use_token(&token).await, 200);
    let verified = Instant::now();
    network.admit(0);
    network.cut();
    let mut trusted = false;
    loop {
        let status = app.use_token(&token).await;
        if status == 503 {
            break;
        }
        assert_eq!(status, 200);
        trusted = true;
        assert!(
            verified.elapsed() < Duration::from_secs(13),
            "a cached token was trusted {:?} after it was verified, with auth.cache_ttl = 3s",
            verified.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        trusted,
        "the cached token was refused as soon as the store went away"
    );
    network.admit_all();
    app.finish().await;
}

async fn revoke(store: &dyn Store, id: &TokenId) {
    let revoking = store.revoke_token(id, Utc::now()).await;
    assert!(
        matches!(revoking, Ok(TokenWrite::Written { .. })),
        "{revoking:?}"
    );
}
