//! Tokens that do not verify (row 4): unknown, tampered, wrong secret, not the owner, expired,
//! revoked; tokens outside the protected paths; user text in lines; the store going away.

use std::time::Instant;

use chrono::Utc;
use secrecy::ExposeSecret as _;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use tokengate::audit::AuditKind;
use tokengate::store::TokenWrite;
use tokengate::token::Scope;

use super::{
    AUTH_LOGGER, BASIC_REALM, BEARER_INVALID, assert_audited, assert_line, basic, bearer, says,
};
use crate::support::app::{Backend, Options, REST, TokenOpts, spawn_app};
use crate::support::log::LogLine;
use crate::support::{both_backends, refused_within_a_second};

both_backends!(
    row_4_tokens_that_do_not_verify_are_refused,
    row_4_a_revoked_token_is_refused_within_a_second,
    a_token_outside_the_protected_paths_is_refused_and_not_forwarded,
    user_text_is_escaped_into_one_line,
);

/// The argon2 verification counter on `/metrics`.
pub(crate) const HASHES: &str = "tokengate_hash_verifications_total";

/// The token format's checksum (`tgt_{id}_{secret}` + 6 base-62 characters of its CRC-32),
/// to forge well-formed tokens the store does not know.
fn with_checksum(body: &str) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = crc32fast::hash(body.as_bytes());
    let mut checksum = [b'0'; 6];
    for slot in checksum.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    format!("{body}{}", std::str::from_utf8(&checksum).expect("ASCII"))
}

/// `token` with one character of its secret changed (the checksum no longer matches).
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[20] = if bytes[20] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).expect("ASCII")
}

/// `token`'s id with another secret and a valid checksum.
pub(super) fn wrong_secret(token: &str) -> String {
    let (_, other) = tokengate::token::generate();
    let other = other.expose_secret();
    let forged = with_checksum(&format!("{}{}", &token[..17], &other[17..other.len() - 6]));
    assert_ne!(forged, token);
    forged
}

async fn row_4_tokens_that_do_not_verify_are_refused(backend: Backend) {
    for fallback in [true, false] {
        let app = spawn_app(Options::new(backend).set("auth.basic_auth_fallback", fallback)).await;
        let (_, token) = app
            .create_token("alice", Scope::ReadOnly, TokenOpts::default())
            .await;
        assert_eq!(
            with_checksum(&token[..token.len() - 6]),
            token,
            "the test's checksum is the format's"
        );
        let hashes = app.metric(HASHES).await;

        let unknown = tokengate::token::generate().1.expose_secret().to_owned();
        app.track_secret(&unknown);
        let reply = app.get_rest(&bearer(&unknown)).await;
        reply.assert_refused(401);
        assert_eq!(reply.header("www-authenticate"), Some(BEARER_INVALID));
        assert_line(
            &app,
            &reply,
            AUTH_LOGGER,
            &says::no_valid_token("anonymous", fallback, REST),
        )
        .await;

        // A bad checksum is refused before any store access: the id is alice's, but she is not
        // named, and nothing was hashed.
        let tampered = tampered(&token);
        app.track_secret(&tampered);
        let reply = app.get_rest(&bearer(&tampered)).await;
        reply.assert_refused(401);
        assert_line(
            &app,
            &reply,
            AUTH_LOGGER,
            &says::no_valid_token("anonymous", fallback, REST),
        )
        .await;
        assert_eq!(app.metric(HASHES).await, hashes);

        // A known id with a well-formed wrong secret: one hash, and the owner is named.
        let wrong = wrong_secret(&token);
        app.track_secret(&wrong);
        let reply = app.get_rest(&bearer(&wrong)).await;
        reply.assert_refused(401);
        assert_eq!(reply.header("www-authenticate"), Some(BEARER_INVALID));
        assert_line(
            &app,
            &reply,
            AUTH_LOGGER,
            &says::no_valid_token("alice", fallback, REST),
        )
        .await;
        assert_eq!(app.metric(HASHES).await, hashes + 1.0);

        // Basic with the right token but another user name.
        let reply = app.get_rest(&basic("bob", &token)).await;
        reply.assert_refused(401);
        assert_eq!(reply.header("www-authenticate"), Some(BASIC_REALM));
        assert_line(
            &app,
            &reply,
            AUTH_LOGGER,
            &says::no_valid_token("bob", fallback, REST),
        )
        .await;

        let now = Utc::now();
        let old = TokenOpts {
            created_at: now - chrono::Duration::days(2),
            expires_at: Some(now - chrono::Duration::minutes(1)),
            ..TokenOpts::default()
        };
        let (_, expired) = app.create_token("carol", Scope::ReadWrite, old).await;
        let reply = app.get_rest(&bearer(&expired)).await;
        reply.assert_refused(401);
        assert_line(
            &app,
            &reply,
            AUTH_LOGGER,
            &says::no_valid_token("carol", fallback, REST),
        )
        .await;

        // The owner with the real token still gets in.
        app.get_rest(&bearer(&token))
            .await
            .assert_forwarded_as("alice");
        app.get_rest(&basic("alice", &token))
            .await
            .assert_forwarded_as("alice");
        app.finish().await;
    }
}

async fn row_4_a_revoked_token_is_refused_within_a_second(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let (id, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    // Verified once, so the gateway has it cached.
    app.get_rest(&bearer(&token))
        .await
        .assert_forwarded_as("alice");

    let revoking = app.store().revoke_token(&id, Utc::now()).await;
    assert!(
        matches!(revoking, Ok(TokenWrite::Written { .. })),
        "{revoking:?}"
    );
    // Every request sent a second or more after the revocation must be refused (its own
    // latency is not the gateway's propagation delay).
    let reply = refused_within_a_second("the revoked token", Instant::now(), async || {
        let reply = app.get_rest(&bearer(&token)).await;
        (reply.status != 200).then_some(reply)
    })
    .await;
    reply.assert_refused(401);
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::no_valid_token("alice", true, REST),
    )
    .await;
    app.finish().await;
}

async fn a_token_outside_the_protected_paths_is_refused_and_not_forwarded(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    for (path, authorization) in [
        ("/projects/P/repos/r", bearer(&token)),
        ("/plugins/servlet/x", basic("alice", &token)),
    ] {
        let reply = app.request("GET", path, Some(&authorization), &[]).await;
        reply.assert_refused(401);
        assert!(
            reply.body.contains("/rest/, /scm/"),
            "the answer names where tokens work: {}",
            reply.body
        );
        let message = format!(
            "An API token was sent to a path where tokens are not accepted; the request was refused and not forwarded. REST endpoint: {path}"
        );
        assert_line(&app, &reply, AUTH_LOGGER, &message).await;
        let reason = json!({ "reason": "outside_protected_paths" });
        assert_audited(&app, &reply, AuditKind::AuthFailed, reason).await;
    }
    assert!(app.upstream.requests().is_empty());
    app.finish().await;
}

async fn user_text_is_escaped_into_one_line(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let forged = "2021-01-07 08:52:38,540 INFO [forged] fake line";
    let opts = TokenOpts {
        description: format!("deploy \"prod\"\r\n{forged}"),
        ..TokenOpts::default()
    };
    let created = opts.created_at;
    let (_, token) = app.create_token("o\"brien", Scope::ReadOnly, opts).await;

    let reply = app.get_rest(&bearer(&token)).await;
    reply.assert_forwarded_as("o\"brien");
    let description = format!("deploy \\\"prod\\\"\\r\\n{forged}");
    let message = says::success(&description, "Read Only", "o\\\"brien", created, REST);
    assert_line(&app, &reply, AUTH_LOGGER, &message).await;

    let reply = app.get_rest(&basic("ev\r\nil", &token)).await;
    reply.assert_refused(401);
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::no_valid_token("ev\\r\\nil", true, REST),
    )
    .await;

    let password = basic("mal\nlory", "hunter2");
    let reply = app.get_rest(&password).await;
    reply.assert_forwarded_untouched(Some(&password));
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::fallback("mal\\nlory", REST),
    )
    .await;

    let lines = app.log_lines();
    for line in &lines {
        assert!(LogLine::parse(line).is_some(), "a broken line: {line:?}");
        assert!(!line.starts_with("2021-01-07"), "a forged line: {line:?}");
    }
    assert_eq!(lines.iter().filter(|l| l.contains("fake line")).count(), 1);
    app.finish().await;
}

/// The store-down case, PostgreSQL only: the gateway's database is dropped under it
/// (`DROP DATABASE … WITH (FORCE)` on its own fresh database, so no other test is touched),
/// and a token it has not cached gets 503.
#[tokio::test]
async fn an_uncached_token_while_postgres_is_down_gets_503() {
    let app = spawn_app(Options::new(Backend::Postgres)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;

    let url = app.database_url();
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let server = std::env::var("TG_TEST_PG_URL").expect("TG_TEST_PG_URL is set");
    let mut admin = PgConnection::connect(&server)
        .await
        .expect("connecting to the test server");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP DATABASE "{name}" WITH (FORCE)"#
    )))
    .execute(&mut admin)
    .await
    .expect("dropping the gateway's database");
    admin.close().await.ok();

    let reply = app.get_rest(&bearer(&token)).await;
    reply.assert_refused(503);
    app.wait_for_line("the store warning", |l| {
        l.message.contains("token store unavailable")
    })
    .await;
    let ready = app
        .client
        .get(format!("{}/readyz", app.admin_url()))
        .send()
        .await
        .expect("GET /readyz");
    assert_eq!(ready.status(), 503);
    app.finish().await;
}
