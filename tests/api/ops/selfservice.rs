//! Rotation in self-service: a script rotates the token it signs in with (a read-only one too,
//! but no other token), within the caller's bounds; another user's token is not found; the
//! change is audited as the acting user's.

use chrono::{Duration, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use tokengate::audit::AuditKind;
use tokengate::token::Scope;

use crate::support::app::{Backend, Options, TestApp, TokenOpts, spawn_app};
use crate::support::audit::audit_events;
use crate::support::both_backends;

both_backends!(a_token_rotates_itself_through_self_service_within_its_bounds);

/// `POST /rest/tokengate/1.0/tokens/{id}/rotate` signed in with `token`.
async fn rotate(app: &TestApp, token: &str, id: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app
        .client
        .post(format!(
            "{}/rest/tokengate/1.0/tokens/{id}/rotate",
            app.proxy_url()
        ))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("a self-service call");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    if let Some(secret) = body["token"].as_str() {
        app.track_secret(secret);
    }
    (status, body)
}

async fn a_token_rotates_itself_through_self_service_within_its_bounds(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let expiring = TokenOpts {
        expires_at: Some(Utc::now() + Duration::days(10)),
        ..TokenOpts::default()
    };
    let (id, secret) = app
        .create_token("alice", Scope::ReadWrite, expiring.clone())
        .await;

    let (answer, body) = rotate(
        &app,
        &secret,
        id.as_str(),
        Some(json!({"grace_seconds": 60})),
    )
    .await;
    assert_eq!(answer, StatusCode::CREATED, "{body}");
    let successor = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["replaces"]["id"], id.as_str());
    assert_eq!(body["scope"], "read-write");
    assert_eq!(app.use_token(&successor).await, StatusCode::OK);
    assert_eq!(
        app.use_token(&secret).await,
        StatusCode::OK,
        "within its grace"
    );

    // A read-only token may rotate itself, and no other token.
    let (ro_id, ro) = app
        .create_token("alice", Scope::ReadOnly, expiring.clone())
        .await;
    let (other_id, _) = app
        .create_token("alice", Scope::ReadOnly, expiring.clone())
        .await;
    let (answer, body) = rotate(&app, &ro, other_id.as_str(), None).await;
    assert_eq!(answer, StatusCode::FORBIDDEN, "{body}");
    let (answer, body) = rotate(&app, &ro, ro_id.as_str(), None).await;
    assert_eq!(answer, StatusCode::CREATED, "{body}");
    assert_eq!(body["replaces"]["state"], "revoked");
    assert_eq!(app.use_token(&ro).await, StatusCode::UNAUTHORIZED);

    // A successor must be within the signing token's bounds: no expiry is later than its own.
    let (forever_id, _) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let (answer, body) = rotate(&app, &successor, forever_id.as_str(), None).await;
    assert_eq!(answer, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expires_at"),
        "{body}"
    );
    // Another user's token is not found; nothing was made by the refusals.
    let (bobs, _) = app.create_token("bob", Scope::ReadOnly, expiring).await;
    let (answer, _) = rotate(&app, &successor, bobs.as_str(), None).await;
    assert_eq!(answer, StatusCode::NOT_FOUND);

    let events = audit_events(&app, AuditKind::TokenCreated, 2).await;
    assert_eq!(
        events.len(),
        2,
        "only the two rotations made tokens: {events:?}"
    );
    for event in &events {
        assert_eq!(event.event.actor.as_deref(), Some("alice"));
        assert_eq!(event.event.attributes.to_value()["via"], "token");
    }
    app.finish().await;
}
