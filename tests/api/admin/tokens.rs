//! The token endpoints of the admin API, one test each: create, show and list, patch, revoke.
//! Each starts a gateway and creates the same token through the API; what every endpoint
//! answers, what it records in the audit trail and what it counts in the metrics.

use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokengate::audit::AuditKind;

use super::{all_tokens, audit_event, audit_events, audit_trail, in_days, rfc3339, sqlite};
use crate::support::app::{NODE_ID, TestApp, spawn_app};

/// Creates the token every test here starts from, through the API: returns the answer's body
/// and the expiry it was given, as sent.
async fn ci_token(app: &TestApp) -> (Value, String) {
    let expires = in_days(30);
    let created = app
        .admin_create(json!({
            "user": "automation-user",
            "description": "CI token",
            "scope": "read-write",
            "expires_at": expires,
            "allowed_ips": ["10.0.0.0/8", "127.0.0.1", "::1"],
            "rate_limit": {"requests": 5, "period_seconds": 300},
        }))
        .await;
    (created, expires)
}

#[tokio::test]
async fn create_answers_the_record_and_its_secret_once() {
    let app = spawn_app(sqlite()).await;
    let (created, expires) = ci_token(&app).await;
    let secret = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("tgt_{id}_")), "{secret}");
    assert_eq!(created["user"], "automation-user");
    assert_eq!(created["scope"], "read-write");
    assert_eq!(created["state"], "active");
    assert_eq!(
        created["allowed_ips"],
        json!(["10.0.0.0/8", "127.0.0.1/32", "::1/128"])
    );
    assert_eq!(
        created["rate_limit"],
        json!({"requests": 5, "period_seconds": 300})
    );
    assert_eq!(created["last_used_at"], Value::Null);
    let expires_at: DateTime<Utc> = created["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(rfc3339(expires_at), expires);
    let mut keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "allowed_ips",
            "created_at",
            "description",
            "expires_at",
            "id",
            "last_used_at",
            "last_used_ip",
            "rate_limit",
            "revoked_at",
            "scope",
            "state",
            "token",
            "user"
        ]
    );

    // Audited, never with the secret.
    let event = audit_event(&app, AuditKind::TokenCreated).await;
    assert_eq!(
        (event.event.actor.as_deref(), event.event.user.as_deref()),
        (Some("admin-api"), Some("automation-user"))
    );
    assert_eq!(event.event.token_id.as_deref(), Some(id.as_str()));
    let all = audit_trail(&app).await;
    assert!(!serde_json::to_string(&all).unwrap().contains(&secret[17..]));

    // Metrics.
    assert_eq!(app.metric("tokengate_tokens_created_total").await, 1.0);
    assert_eq!(
        app.metric("tokengate_admin_requests_total{status=\"201\"}")
            .await,
        1.0
    );
    app.finish().await;
}

#[tokio::test]
async fn show_and_list_answer_the_record_without_its_secret() {
    let app = spawn_app(sqlite()).await;
    let (created, _) = ci_token(&app).await;
    let secret = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    // Show and list: the same record, without the secret.
    let shown = app
        .admin(Method::GET, &format!("/admin/v1/tokens/{id}"), None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    let mut without_secret = created.clone();
    without_secret.as_object_mut().unwrap().remove("token");
    assert_eq!(shown.body, without_secret);
    let listed = app.admin(Method::GET, "/admin/v1/tokens", None).await;
    assert_eq!(
        listed.body,
        json!({"tokens": [without_secret], "next_cursor": null})
    );
    for text in [&shown.text, &listed.text] {
        assert!(!text.contains(&secret[17..]), "the secret was shown again");
    }

    // The token works through the proxy (from 127.0.0.1, in its allow-list).
    assert_eq!(app.use_token(&secret).await, StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn patch_changes_every_field_and_clears_the_optional_ones() {
    let app = spawn_app(sqlite()).await;
    let (created, _) = ci_token(&app).await;
    let id = created["id"].as_str().unwrap().to_owned();
    // Patch every field, then clear the optional ones.
    let later = in_days(60);
    let patched = app.admin(Method::PATCH,
        &format!("/admin/v1/tokens/{id}"),
        Some(&json!({"description": "renamed", "expires_at": later, "allowed_ips": [], "rate_limit": {"requests": 10, "period_seconds": 60}})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(patched.body["description"], "renamed");
    assert_eq!(patched.body["allowed_ips"], json!([]));
    assert_eq!(
        patched.body["rate_limit"],
        json!({"requests": 10, "period_seconds": 60})
    );
    assert_eq!(patched.body["created_at"], created["created_at"]);
    let cleared = app
        .admin(
            Method::PATCH,
            &format!("/admin/v1/tokens/{id}"),
            Some(&json!({"expires_at": null, "rate_limit": null})),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{cleared:?}");
    assert_eq!(
        (
            cleared.body["expires_at"].clone(),
            cleared.body["rate_limit"].clone()
        ),
        (Value::Null, Value::Null)
    );
    assert_eq!(cleared.body["description"], "renamed");

    // Audited with the old and new values.
    let changed = audit_events(&app, AuditKind::TokenChanged, 2)
        .await
        .remove(0);
    let attributes = changed.event.attributes.into_value();
    assert_eq!(
        attributes["expires_at"]["new"],
        Value::Null,
        "{attributes:?}"
    );
    assert!(attributes["expires_at"]["old"].is_string());
    app.finish().await;
}

#[tokio::test]
async fn revoke_keeps_the_record_and_the_proxy_refuses_the_token() {
    let app = spawn_app(sqlite()).await;
    let (created, _) = ci_token(&app).await;
    let secret = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    // The token works through the proxy (from 127.0.0.1, in its allow-list).
    assert_eq!(app.use_token(&secret).await, StatusCode::OK);

    // Revoke: 204, the record stays, the proxy refuses the token on the next request.
    let revoked = app
        .admin(Method::DELETE, &format!("/admin/v1/tokens/{id}"), None)
        .await;
    assert_eq!(
        (revoked.status, revoked.text.as_str()),
        (StatusCode::NO_CONTENT, "")
    );
    assert_eq!(app.use_token(&secret).await, StatusCode::UNAUTHORIZED);
    let shown = app
        .admin(Method::GET, &format!("/admin/v1/tokens/{id}"), None)
        .await;
    assert_eq!(shown.body["state"], "revoked");
    assert!(shown.body["revoked_at"].is_string());
    let again = app
        .admin(Method::DELETE, &format!("/admin/v1/tokens/{id}"), None)
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.admin(Method::GET, &format!("/admin/v1/tokens/{id}"), None)
            .await
            .body["revoked_at"],
        shown.body["revoked_at"]
    );
    let before = all_tokens(&app).await;
    app.admin(
        Method::PATCH,
        &format!("/admin/v1/tokens/{id}"),
        Some(&json!({"description": "x"})),
    )
    .await
    .refused(409, "token_revoked", &id);
    assert_eq!(all_tokens(&app).await, before);

    // A change records the admin call it came in: caller, method, path and request id.
    let revocation = audit_event(&app, AuditKind::TokenRevoked).await.event;
    let path = format!("/admin/v1/tokens/{id}");
    assert_eq!(
        (
            revocation.client_ip,
            revocation.method.as_deref(),
            revocation.path.as_deref(),
        ),
        (
            Some("127.0.0.1".parse().unwrap()),
            Some("DELETE"),
            Some(path.as_str())
        )
    );
    let request_id = revoked.request_id.expect("an X-AREQUESTID");
    assert!(
        request_id.starts_with(&format!("@{NODE_ID}x")),
        "{request_id}"
    );
    assert_eq!(revocation.request_id.as_deref(), Some(request_id.as_str()));
    let all = audit_trail(&app).await;
    assert!(!serde_json::to_string(&all).unwrap().contains(&secret[17..]));
    let revocations = all
        .iter()
        .filter(|e| e.event.kind == AuditKind::TokenRevoked)
        .count();
    assert_eq!(revocations, 1, "revoking twice records one revocation");

    // Metrics.
    assert_eq!(app.metric("tokengate_tokens_revoked_total").await, 1.0);
    assert_eq!(
        app.metric("tokengate_admin_requests_total{status=\"409\"}")
            .await,
        1.0
    );
    app.finish().await;
}
