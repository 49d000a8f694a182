//! What a denial's audit event tells an investigator: the id of a token that was presented
//! with its right secret but is revoked or expired, and for an IP denial the client IP and the
//! allow-list (the token's, or `auth.allowed_ips`) that refused it.

use chrono::{TimeDelta, Utc};
use ipnet::IpNet;
use serde_json::json;
use tokengate::audit::{AuditKind, AuditQuery, StoredAuditEvent};
use tokengate::token::Scope;

use super::eventually;
use crate::support::app::{Backend, Options, TestApp, TokenOpts, spawn_app};

/// The newest event of `kind`, once the writer has stored it.
async fn newest(app: &TestApp, kind: AuditKind) -> StoredAuditEvent {
    let query = AuditQuery {
        kind: Some(kind),
        limit: 1,
        ..AuditQuery::default()
    };
    eventually(&format!("a {kind:?} event"), async || {
        app.store()
            .query_audit(&query)
            .await
            .ok()?
            .into_iter()
            .next()
    })
    .await
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

#[tokio::test]
async fn a_revoked_or_expired_token_is_named_by_its_denial() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let (revoked, secret) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    app.store()
        .revoke_token(&revoked, Utc::now())
        .await
        .expect("revoking");
    assert_eq!(app.use_token(&secret).await, 401);
    let event = newest(&app, AuditKind::AuthFailed).await.event;
    assert_eq!(
        event.token_id.as_deref(),
        Some(revoked.as_str()),
        "{event:?}"
    );
    assert_eq!(event.user.as_deref(), Some("alice"));
    assert_eq!(event.attributes, json!({ "reason": "revoked" }));

    let past = TokenOpts {
        expires_at: Some(Utc::now() - TimeDelta::hours(1)),
        ..TokenOpts::default()
    };
    let (expired, secret) = app.create_token("bob", Scope::ReadOnly, past).await;
    assert_eq!(app.use_token(&secret).await, 401);
    let event = newest(&app, AuditKind::ExpiredTokenUsed).await.event;
    assert_eq!(
        event.token_id.as_deref(),
        Some(expired.as_str()),
        "{event:?}"
    );
    assert_eq!(event.attributes, json!({ "reason": "expired" }));
    app.finish().await;
}

#[tokio::test]
async fn an_ip_denial_names_the_client_ip_and_the_list_that_refused_it() {
    let app = spawn_app(Options::new(Backend::Sqlite).set(
        "auth.allowed_ips",
        toml::Value::Array(vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()]),
    ))
    .await;
    // The token's own list refuses 127.0.0.1.
    let fenced = TokenOpts {
        allowed_ips: nets(&["192.0.2.0/24", "2001:db8::/32"]),
        ..TokenOpts::default()
    };
    let (id, secret) = app.create_token("alice", Scope::ReadOnly, fenced).await;
    assert_eq!(app.use_token(&secret).await, 401);
    let event = newest(&app, AuditKind::IpDenied).await.event;
    assert_eq!(event.token_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        event.attributes,
        json!({
            "client_ip": "127.0.0.1",
            "allow_list": "token",
            "allowed_ips": ["192.0.2.0/24", "2001:db8::/32"],
        })
    );
    app.finish().await;

    // The global list refuses 127.0.0.1; the token's allows it.
    let app = spawn_app(Options::new(Backend::Sqlite).set(
        "auth.allowed_ips",
        toml::Value::Array(vec!["10.0.0.0/8".into()]),
    ))
    .await;
    let open = TokenOpts {
        allowed_ips: nets(&["127.0.0.1/32"]),
        ..TokenOpts::default()
    };
    let (id, secret) = app.create_token("bob", Scope::ReadOnly, open).await;
    assert_eq!(app.use_token(&secret).await, 401);
    let event = newest(&app, AuditKind::IpDenied).await.event;
    assert_eq!(event.token_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        event.attributes,
        json!({
            "client_ip": "127.0.0.1",
            "allow_list": "auth.allowed_ips",
            "allowed_ips": ["10.0.0.0/8"],
        })
    );
    app.finish().await;
}
