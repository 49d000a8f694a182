//! A tokengate token never leaves the gateway, wherever a request carries it: in
//! `Authorization` in any scheme spelling and any Basic form, its prefix in any letter case, in
//! the query string or in a cookie. Such a request is refused and never forwarded, and no line
//! shows the token.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tokengate::audit::AuditKind;
use tokengate::token::Scope;

use super::{AUTH_LOGGER, assert_audited, assert_line, bearer};
use crate::support::app::{Backend, Options, REST, Reply, TestApp, TokenOpts, spawn_app};
use crate::support::both_backends;

both_backends!(
    a_token_in_any_authorization_form_never_reaches_bitbucket,
    a_token_in_the_query_or_a_cookie_is_refused_and_redacted,
);

/// An unprotected path.
const UI: &str = "/projects/P/repos/r/browse";

/// `Basic` with these credentials, base64 of them as written (no colon added).
fn basic_raw(credentials: &str) -> String {
    format!("Basic {}", STANDARD.encode(credentials))
}

/// `token` with its `tgt_` prefix written `prefix`.
fn with_prefix(token: &str, prefix: &str) -> String {
    format!("{prefix}{}", &token[4..])
}

/// Refused with 401, the answer naming where tokens are accepted.
fn assert_misplaced(reply: &Reply) {
    reply.assert_refused(401);
    assert!(
        reply.body.contains("Authorization header") && reply.body.contains("/rest/, /scm/"),
        "the answer says where tokens work: {}",
        reply.body
    );
}

async fn a_token_in_any_authorization_form_never_reaches_bitbucket(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    // Accepted on a protected path: a token where a token belongs, the scheme in any case.
    let accepted = [
        format!("BEARER {token}"),
        format!("basic {}", STANDARD.encode(format!("alice:{token}"))),
    ];
    // Refused everywhere: a token where no token belongs, or with its prefix case changed.
    let refused = [
        basic_raw(&token),
        basic_raw(&format!("{token}:")),
        basic_raw(&format!("{token}:hunter2")),
        basic_raw(&format!("{token}:{token}")),
        basic_raw(&format!("alice:{}", with_prefix(&token, "TGT_"))),
        basic_raw(&with_prefix(&token, "Tgt_")),
        format!("Bearer {}", with_prefix(&token, "TGT_")),
        format!("bearer {}", with_prefix(&token, "tGt_")),
        format!("Token {}", with_prefix(&token, "TGT_")),
    ];
    for value in &accepted {
        let reply = app.request("GET", REST, Some(value), &[]).await;
        reply.assert_forwarded_as("alice");
        assert_misplaced(&app.request("GET", UI, Some(value), &[]).await);
    }
    for value in &refused {
        let reply = app.request("GET", REST, Some(value), &[]).await;
        reply.assert_refused(401);
        assert_misplaced(&app.request("GET", UI, Some(value), &[]).await);
    }
    // Without a fallback to Bitbucket the same holds.
    app.finish().await;
    let app = spawn_app(Options::new(backend).set("auth.basic_auth_fallback", false)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    for value in [basic_raw(&token), bearer(&with_prefix(&token, "TGT_"))] {
        app.request("GET", REST, Some(&value), &[])
            .await
            .assert_refused(401);
        assert_misplaced(&app.request("GET", UI, Some(&value), &[]).await);
    }
    assert!(app.upstream.requests().is_empty());
    app.finish().await;
}

/// The decision line of a token in the query string, whose request line shows the token
/// redacted as `shown`.
async fn assert_query_line(app: &TestApp, reply: &Reply, path: &str, request_line: &str) {
    let message = format!(
        "An API token was sent in the query string, where tokens are not accepted; the request was refused and not forwarded. REST endpoint: {path}"
    );
    let line = assert_line(app, reply, AUTH_LOGGER, &message).await;
    assert_eq!(line.request_line.as_deref(), Some(request_line));
}

async fn a_token_in_the_query_or_a_cookie_is_refused_and_redacted(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let (id, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let redacted = format!("tgt_{id}_[redacted]");

    // In the query, with and without a valid token in Authorization, on any path.
    let target = format!("{REST}?private_token={token}&limit=25");
    let reply = app.request("GET", &target, None, &[]).await;
    assert_misplaced(&reply);
    let shown = format!("GET {REST}?private_token={redacted}&limit=25 HTTP/1.1");
    assert_query_line(&app, &reply, REST, &shown).await;
    let reason = json!({ "reason": "token_in_query" });
    assert_audited(&app, &reply, AuditKind::AuthFailed, reason).await;

    let reply = app
        .request("POST", &target, Some(&bearer(&token)), &[])
        .await;
    assert_misplaced(&reply);

    let upper = with_prefix(&token, "TGT_");
    let target = format!("{UI}?at=main&t={upper}");
    let reply = app.request("GET", &target, None, &[]).await;
    assert_misplaced(&reply);
    let shown = format!("GET {UI}?at=main&t=TGT_{id}_[redacted] HTTP/1.1");
    assert_query_line(&app, &reply, UI, &shown).await;

    // Percent-encoded, as a client library may write it: the whole query is hidden.
    let encoded = token.replace('_', "%5F");
    let target = format!("{REST}?token={encoded}");
    let reply = app.request("GET", &target, None, &[]).await;
    assert_misplaced(&reply);
    assert_query_line(
        &app,
        &reply,
        REST,
        &format!("GET {REST}?[redacted] HTTP/1.1"),
    )
    .await;

    // In a cookie.
    let cookie = format!("BITBUCKETSESSIONID=abc123; api={token}");
    for path in [REST, UI] {
        let reply = app.request("GET", path, None, &[("cookie", &cookie)]).await;
        assert_misplaced(&reply);
        let message = format!(
            "An API token was sent in a cookie, where tokens are not accepted; the request was refused and not forwarded. REST endpoint: {path}"
        );
        assert_line(&app, &reply, AUTH_LOGGER, &message).await;
    }
    assert!(app.upstream.requests().is_empty());

    // Text that merely starts like a token is no token.
    let target = format!("{REST}?filter=tgt_abc&q={}", &token[..30]);
    let reply = app
        .request("GET", &target, None, &[("cookie", "x=tgt_; _ga=1")])
        .await;
    reply.assert_forwarded_untouched(None);
    assert_eq!(reply.seen.as_ref().expect("forwarded").target, target);
    app.finish().await;
}
