//! Redis going away and coming back, on a server of the test's own: every gateway keeps
//! serving on its own counters at once (one WARN each, `tokengate_rate_limit_backend_up 0`),
//! and shares the counts again once Redis answers.

use std::time::{Duration, Instant};

use super::{on_redis, spread, token_with, two_gateways};
use crate::auth::bearer;
use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::forwarder::Forwarder;
use crate::support::redis::{RedisServer, redis_url, unique_prefix};

const UP: &str = "tokengate_rate_limit_backend_up";
const PASSWORD: &str = "redis-test-password-7f3a";
/// The words of the one WARN a gateway writes when Redis goes away.
const WENT_AWAY: &str = "does not answer; rate limits and failed attempts are counted";

/// Waits until the gateway's `/metrics` reads `value` for the backend.
async fn backend_up(app: &TestApp, value: f64) {
    crate::support::eventually(&format!("{UP} {value}"), async || {
        (app.metric(UP).await == value).then_some(())
    })
    .await;
}

/// The lines that say Redis went away, once every line of a request made now was written.
async fn warnings(app: &TestApp) -> Vec<String> {
    let barrier = app.get_rest("Bearer not-a-tokengate-token").await;
    app.line_for(&barrier.id).await;
    app.log_lines()
        .into_iter()
        .filter(|l| l.contains(WENT_AWAY))
        .collect()
}

#[tokio::test]
async fn with_redis_stopped_both_gateways_keep_serving_and_come_back_when_it_does() {
    let mut redis = RedisServer::start_with_password(PASSWORD).await;
    let (a, b) = two_gateways(&redis.url(), &[]).await;
    for app in [&a, &b] {
        assert_eq!(app.metric(UP).await, 1.0);
    }
    let shared = bearer(&token_with(&a, "1000/1h").await);
    for app in [&a, &b] {
        app.get_rest(&shared).await.assert_forwarded_as("alice");
    }

    redis.stop().await;
    // No request is refused, nor held up by the missing Redis.
    for (_, reply) in spread([&a, &b], &shared, 40, 8).await {
        reply.assert_forwarded_as("alice");
    }
    let started = Instant::now();
    for _ in 0..10 {
        for app in [&a, &b] {
            app.get_rest(&shared).await.assert_forwarded_as("alice");
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "20 requests took {:?} while Redis was down",
        started.elapsed()
    );
    for app in [&a, &b] {
        backend_up(app, 0.0).await;
        let warned = warnings(app).await;
        assert_eq!(warned.len(), 1, "one WARN per gateway: {warned:#?}");
        assert!(warned[0].contains(" WARN "), "{}", warned[0]);
        assert!(
            warned[0].contains("redis://:[redacted]@127.0.0.1:"),
            "{}",
            warned[0]
        );
    }
    // Meanwhile each gateway counts for itself, from a fresh budget.
    let apart = bearer(&token_with(&a, "2/1h").await);
    for app in [&a, &b] {
        for _ in 0..2 {
            app.get_rest(&apart).await.assert_forwarded_as("alice");
        }
        app.get_rest(&apart).await.assert_refused(429);
    }

    redis.resume().await;
    for app in [&a, &b] {
        backend_up(app, 1.0).await;
        app.wait_for_line("Redis answers again", |l| {
            l.message.contains("answers again")
        })
        .await;
    }
    // Shared again: a quota of three is three across both.
    let together = bearer(&token_with(&a, "3/1h").await);
    let mut statuses = Vec::new();
    for app in [&a, &b, &a, &b, &a, &b] {
        statuses.push(app.get_rest(&together).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);

    for app in [&a, &b] {
        let log = app.log_lines().join("\n");
        assert!(!log.contains(PASSWORD), "the Redis password was logged");
    }
    a.finish().await;
    b.finish().await;
}

#[tokio::test]
async fn a_gateway_starts_while_redis_is_down_and_joins_it_when_it_answers() {
    let mut redis = RedisServer::start().await;
    redis.stop().await;
    let app = spawn_app(
        Options::new(crate::support::app::Backend::Sqlite)
            .set("rate_limit.backend", "redis")
            .set("rate_limit.redis_url", redis.url())
            .set("rate_limit.redis_key_prefix", unique_prefix()),
    )
    .await;
    assert_eq!(app.metric(UP).await, 0.0);
    let auth = bearer(&token_with(&app, "1/1h").await);
    app.get_rest(&auth).await.assert_forwarded_as("alice");
    app.get_rest(&auth).await.assert_refused(429);
    assert_eq!(warnings(&app).await.len(), 1);

    redis.resume().await;
    backend_up(&app, 1.0).await;
    // Counted in Redis now, from its own (fresh) count.
    app.get_rest(&auth).await.assert_forwarded_as("alice");
    app.get_rest(&auth).await.assert_refused(429);
    app.finish().await;
}

#[tokio::test]
async fn a_redis_that_stops_answering_costs_one_timeout_then_nothing() {
    // Redis behind a network that stops forwarding without closing anything.
    let network = Forwarder::start(&redis_url()).await;
    let app = spawn_app(on_redis(&network.url(&redis_url()), &unique_prefix(), &[])).await;
    let auth = bearer(&token_with(&app, "1000/1h").await);
    app.get_rest(&auth).await.assert_forwarded_as("alice");
    assert_eq!(app.metric(UP).await, 1.0);

    network.admit(0);
    network.stall();
    let started = Instant::now();
    for _ in 0..20 {
        app.get_rest(&auth).await.assert_forwarded_as("alice");
    }
    // At most one check per worker waited out the 50 ms timeout; the others asked Redis nothing.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "20 requests took {:?} with Redis silent",
        started.elapsed()
    );
    backend_up(&app, 0.0).await;
    assert_eq!(warnings(&app).await.len(), 1);

    network.admit_all();
    backend_up(&app, 1.0).await;
    app.get_rest(&auth).await.assert_forwarded_as("alice");
    app.finish().await;
}
