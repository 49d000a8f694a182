//! Guessing and brute force: a flood of well-formed unknown tokens costs no argon2 hash, and a
//! client IP that keeps failing is throttled with 429.

use futures_util::StreamExt as _;
use secrecy::ExposeSecret as _;
use serde_json::json;
use tokengate::audit::AuditKind;
use tokengate::token::Scope;

use super::tokens::{HASHES, wrong_secret};
use super::{AUTH_LOGGER, assert_audited, assert_line, bearer};
use crate::support::app::{Backend, Options, REST, TokenOpts, spawn_app};
use crate::support::both_backends;

both_backends!(
    a_flood_of_unknown_ids_runs_no_hash,
    repeated_failures_from_one_ip_get_429,
);

/// Requests in the flood.
const FLOOD: usize = 10_000;

async fn a_flood_of_unknown_ids_runs_no_hash(backend: Backend) {
    // Far more failures allowed than the flood has, so none is throttled.
    let app =
        spawn_app(Options::new(backend).set("auth.failed_attempts_per_ip", "1000000/1m")).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    app.get_rest(&bearer(&token))
        .await
        .assert_forwarded_as("alice");
    let hashes = app.metric(HASHES).await;
    assert_eq!(hashes, 1.0, "the valid token was hashed once");

    let statuses: Vec<u16> = futures_util::stream::iter(0..FLOOD)
        .map(|i| {
            let guess = tokengate::token::generate().1.expose_secret().to_owned();
            if i % 1000 == 0 {
                app.track_secret(&guess);
            }
            let app = &app;
            async move {
                app.request("GET", REST, Some(&bearer(&guess)), &[])
                    .await
                    .status
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 401),
        "not all refused: {:?}",
        statuses.iter().find(|s| **s != 401)
    );
    assert_eq!(app.metric(HASHES).await, hashes, "an unknown id was hashed");
    let refused = app
        .metric(r#"tokengate_requests_total{outcome="no_valid_token"}"#)
        .await;
    assert_eq!(refused, FLOOD as f64);
    assert!(
        app.upstream.requests().len() == 1,
        "only the valid request was forwarded"
    );
    app.finish().await;
}

async fn repeated_failures_from_one_ip_get_429(backend: Backend) {
    let options = Options::new(backend)
        .set("auth.failed_attempts_per_ip", "5/1m")
        .set("proxy.trusted_proxies", vec!["127.0.0.1/32"]);
    let app = spawn_app(options).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let guess = || {
        let guess = tokengate::token::generate().1.expose_secret().to_owned();
        app.track_secret(&guess);
        bearer(&guess)
    };
    let from = |ip| [("x-forwarded-for", ip)];
    for _ in 0..5 {
        app.request("GET", REST, Some(&guess()), &from("198.51.100.7"))
            .await
            .assert_refused(401);
    }
    // The sixth is refused before any lookup: a known id with a wrong secret costs no hash.
    let hashes = app.metric(HASHES).await;
    let wrong = wrong_secret(&token);
    app.track_secret(&wrong);
    let reply = app
        .request("GET", REST, Some(&bearer(&wrong)), &from("198.51.100.7"))
        .await;
    reply.assert_refused(429);
    assert_eq!(app.metric(HASHES).await, hashes);
    let retry: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(reply.header("ratelimit-limit"), Some("5"));
    assert_eq!(reply.header("ratelimit-remaining"), Some("0"));
    assert_eq!(
        reply.header("ratelimit-reset"),
        Some(retry.to_string().as_str())
    );
    // A malformed token from the throttled address is throttled too, not a fresh 401.
    app.request("GET", REST, Some("Bearer tgt_short"), &from("198.51.100.7"))
        .await
        .assert_refused(429);
    let message = format!(
        "Token verification from IP address 198.51.100.7 refused: too many failed token verifications from this address. REST endpoint: {REST}"
    );
    assert_line(&app, &reply, AUTH_LOGGER, &message).await;
    let reason = json!({ "reason": "too_many_failures" });
    assert_audited(&app, &reply, AuditKind::AuthFailed, reason).await;

    // Another client is not affected; an IPv6 client's /64 counts as one client.
    app.request("GET", REST, Some(&guess()), &from("198.51.100.8"))
        .await
        .assert_refused(401);
    for host in 1..=5 {
        let ip = format!("2001:db8::{host}");
        app.request(
            "GET",
            REST,
            Some(&guess()),
            &[("x-forwarded-for", ip.as_str())],
        )
        .await
        .assert_refused(401);
    }
    app.request("GET", REST, Some(&guess()), &from("2001:db8::ffff:6"))
        .await
        .assert_refused(429);
    app.request("GET", REST, Some(&guess()), &from("2001:db8:0:1::6"))
        .await
        .assert_refused(401);
    app.request("GET", REST, Some(&bearer(&token)), &from("198.51.100.8"))
        .await
        .assert_forwarded_as("alice");
    app.finish().await;
}
