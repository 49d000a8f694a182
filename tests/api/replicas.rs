//! Several gateways on one PostgreSQL and one Redis (`rate_limit.backend = "redis"`): a
//! token's quota and the failed-attempt throttle hold across them, not once per gateway; a
//! revocation on one is refused by the other within a second; the answers and log lines read
//! as with the local limiter. [`outage`]: what happens while Redis is away.

mod outage;

use std::time::Instant;

use futures_util::StreamExt as _;
use secrecy::ExposeSecret as _;
use tokengate::ratelimit::RateQuota;
use tokengate::token::Scope;

use crate::auth::{RATE_LOGGER, assert_line, bearer, says};
use crate::support::app::{Backend, Options, REST, Reply, TestApp, TokenOpts, spawn_app};
use crate::support::redis::{keys, redis_url, unique_prefix};
use crate::support::refused_within_a_second;

const ADMIN_TOKEN: &str = "admin-token-for-the-replica-tests";

/// A gateway on Redis at `redis_url` with keys under `prefix`, and `extra` settings.
pub(crate) fn on_redis(redis_url: &str, prefix: &str, extra: &[(&str, toml::Value)]) -> Options {
    let mut options = Options::new(Backend::Postgres)
        .set("rate_limit.backend", "redis")
        .set("rate_limit.redis_url", redis_url)
        .set("rate_limit.redis_key_prefix", prefix)
        .set("admin.token", ADMIN_TOKEN);
    for (key, value) in extra {
        options = options.set(key, value.clone());
    }
    options
}

/// Two gateways on one database and one Redis (each with its own upstream).
pub(crate) async fn two_gateways(
    redis_url: &str,
    extra: &[(&str, toml::Value)],
) -> (TestApp, TestApp) {
    let prefix = unique_prefix();
    let first = spawn_app(on_redis(redis_url, &prefix, extra)).await;
    let second =
        spawn_app(on_redis(redis_url, &prefix, extra).set("database.url", first.database_url()))
            .await;
    (first, second)
}

/// A token of `alice` with `quota`, made through the first gateway's database.
pub(crate) async fn token_with(app: &TestApp, quota: &str) -> String {
    let opts = TokenOpts {
        rate_limit: Some(quota.parse::<RateQuota>().expect("a quota")),
        ..TokenOpts::default()
    };
    app.create_token("alice", Scope::ReadOnly, opts).await.1
}

/// `count` GETs with `authorization`, alternating between the gateways, `concurrency` at a
/// time; each reply with the index of the gateway that gave it.
pub(crate) async fn spread(
    apps: [&TestApp; 2],
    authorization: &str,
    count: usize,
    concurrency: usize,
) -> Vec<(usize, Reply)> {
    futures_util::stream::iter(0..count)
        .map(|i| async move { (i % 2, apps[i % 2].get_rest(authorization).await) })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[tokio::test]
async fn a_quota_of_ten_allows_exactly_ten_across_two_gateways_under_concurrent_clients() {
    let (a, b) = two_gateways(&redis_url(), &[]).await;
    let auth = bearer(&token_with(&a, "10/1h").await);
    let replies = spread([&a, &b], &auth, 60, 24).await;

    let mut remaining: Vec<u32> = replies
        .iter()
        .filter(|(_, r)| r.status == 200)
        .map(|(_, r)| {
            r.assert_forwarded_as("alice");
            assert_eq!(r.header("ratelimit-limit"), Some("10"));
            r.header("ratelimit-remaining").unwrap().parse().unwrap()
        })
        .collect();
    remaining.sort_unstable();
    // Exactly the quota, each request counted once, one after the other.
    assert_eq!(remaining, (0..10).collect::<Vec<u32>>());
    for (_, reply) in replies.iter().filter(|(_, r)| r.status != 200) {
        reply.assert_refused(429);
        assert_eq!(reply.header("ratelimit-limit"), Some("10"));
        assert_eq!(reply.header("ratelimit-remaining"), Some("0"));
        let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=360).contains(&retry), "Retry-After {retry}");
    }
    // Both gateways refused, and each says so in the rate limiter's words.
    for (index, app) in [&a, &b].into_iter().enumerate() {
        let (_, refused) = replies
            .iter()
            .find(|(i, r)| *i == index && r.status == 429)
            .expect("each gateway refused some");
        let message = says::rate_limited("alice", "10 requests within 1 hour");
        assert_line(app, refused, RATE_LOGGER, &message).await;
    }
    a.finish().await;
    b.finish().await;
}

#[tokio::test]
async fn answers_and_lines_read_as_with_the_local_limiter() {
    // The same sequence on one gateway of each backend: the same statuses and headers.
    let prefix = unique_prefix();
    let redis_app = spawn_app(on_redis(&redis_url(), &prefix, &[])).await;
    let local_app = spawn_app(Options::new(Backend::Postgres)).await;
    let mut seen = Vec::new();
    for app in [&redis_app, &local_app] {
        let auth = bearer(&token_with(app, "5/5m").await);
        let mut answers = Vec::new();
        for _ in 0..6 {
            let reply = app.get_rest(&auth).await;
            let header = |name| reply.header(name).unwrap_or("-").to_owned();
            answers.push((
                reply.status,
                header("ratelimit-limit"),
                header("ratelimit-remaining"),
                header("ratelimit-reset"),
            ));
            if reply.status == 429 {
                let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
                assert!((59..=60).contains(&retry), "Retry-After {retry}");
                let message = says::rate_limited("alice", "5 requests within 5 minutes");
                assert_line(app, &reply, RATE_LOGGER, &message).await;
            }
        }
        seen.push(answers);
    }
    let expected: Vec<(u16, String, String, String)> = (1..=5)
        .map(|used| {
            (
                200,
                "5".into(),
                (5 - used).to_string(),
                (60 * used).to_string(),
            )
        })
        .collect();
    assert_eq!(seen[1][..5], expected[..], "the local limiter");
    assert_eq!(seen[0][..5], expected[..], "Redis");
    for answers in &seen {
        let (status, limit, remaining, reset) = &answers[5];
        assert_eq!(
            (*status, limit.as_str(), remaining.as_str()),
            (429, "5", "0")
        );
        let reset: u64 = reset.parse().unwrap();
        assert!((299..=300).contains(&reset), "RateLimit-Reset {reset}");
    }
    // The counts live under the prefix, and expire by themselves.
    let stored = keys(&redis_url(), &prefix).await;
    assert!(
        stored
            .iter()
            .any(|k| k.contains(":token:") && k.ends_with(":5/5m")),
        "{stored:?}"
    );
    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    for key in stored {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 300_000, "{key}: PTTL {ttl}");
    }
    redis_app.finish().await;
    local_app.finish().await;
}

#[tokio::test]
async fn the_failure_throttle_counts_across_both_gateways() {
    let extra = [
        ("auth.failed_attempts_per_ip", toml::Value::from("4/1h")),
        (
            "proxy.trusted_proxies",
            toml::Value::from(vec!["127.0.0.1/32"]),
        ),
    ];
    let (a, b) = two_gateways(&redis_url(), &extra).await;
    let guess = |app: &TestApp| {
        let guess = tokengate::token::generate().1.expose_secret().to_owned();
        app.track_secret(&guess);
        bearer(&guess)
    };
    let from = |ip| [("x-forwarded-for", ip)];
    for app in [&a, &a, &b, &b] {
        app.request("GET", REST, Some(&guess(app)), &from("198.51.100.7"))
            .await
            .assert_refused(401);
    }
    // Two failures on each: the budget of four is spent on both.
    for app in [&a, &b] {
        let reply = app
            .request("GET", REST, Some(&guess(app)), &from("198.51.100.7"))
            .await;
        reply.assert_refused(429);
        assert_eq!(reply.header("ratelimit-limit"), Some("4"));
        assert_eq!(reply.header("ratelimit-remaining"), Some("0"));
        let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "Retry-After {retry}");
    }
    // Another client is not affected.
    b.request("GET", REST, Some(&guess(&b)), &from("198.51.100.8"))
        .await
        .assert_refused(401);
    a.finish().await;
    b.finish().await;
}

#[tokio::test]
async fn a_revocation_on_one_gateway_is_refused_by_the_other_within_a_second() {
    let (a, b) = two_gateways(&redis_url(), &[]).await;
    let (id, token) = a
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let auth = bearer(&token);
    // Verified and cached on both.
    for app in [&a, &b] {
        app.get_rest(&auth).await.assert_forwarded_as("alice");
    }
    let revoked = a
        .client
        .delete(format!("{}/admin/v1/tokens/{id}", a.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(revoked.status(), 204);
    let since = Instant::now();
    a.get_rest(&auth).await.assert_refused(401);
    refused_within_a_second("the token on the other gateway", since, async || {
        let reply = b.get_rest(&auth).await;
        if reply.status == 401 {
            reply.assert_refused(401);
            return Some(());
        }
        reply.assert_forwarded_as("alice");
        None
    })
    .await;
    a.finish().await;
    b.finish().await;
}
