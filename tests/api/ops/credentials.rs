//! Stored Bitbucket credentials through the admin API: listed by user with when they were set
//! or provisioned and never the secret, deleted (then 404), and a deletion reaching the
//! gateway's cache: the user's tokens are refused from then on.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{Method, StatusCode};
use serde_json::json;
use tokengate::token::Scope;

use crate::support::app::{ADMIN_TOKEN, Backend, Options, TokenOpts, spawn_app};
use crate::support::both_backends;
use crate::support::eventually;

both_backends!(credentials_are_listed_without_secrets_and_deleted);

async fn credentials_are_listed_without_secrets_and_deleted(backend: Backend) {
    let app = spawn_app(
        Options::new(backend)
            .set("admin.token", ADMIN_TOKEN)
            .set("upstream.identity", "credential")
            .set(
                "upstream.credential_key",
                STANDARD.encode([9u8; 32]).as_str(),
            ),
    )
    .await;
    let empty = app.admin(Method::GET, "/admin/v1/credentials", None).await;
    assert_eq!(empty.status, StatusCode::OK, "{empty:?}");
    assert_eq!(empty.body, json!({"credentials": []}));

    let secret = "BBDC-c2VjcmV0LWNyZWRlbnRpYWwtb2YtYWxpY2U";
    for user in ["alice", "bob"] {
        let put = app
            .admin(
                Method::PUT,
                &format!("/admin/v1/users/{user}/credential"),
                Some(&json!({"credential": secret})),
            )
            .await;
        assert_eq!(put.status, StatusCode::NO_CONTENT, "{put:?}");
    }
    let bobs = app.store().get_credential("bob").await.unwrap().unwrap();
    app.store()
        .refuse_credential("bob", &bobs.sealed, chrono::Utc::now())
        .await
        .unwrap();
    let listed = app.admin(Method::GET, "/admin/v1/credentials", None).await;
    assert!(
        !listed.text.contains(secret),
        "never the credential: {}",
        listed.text
    );
    let credentials = listed.body["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 2);
    assert_eq!(credentials[0]["user"], "alice");
    assert_eq!(credentials[0]["provisioned"], false);
    assert_eq!(credentials[0]["refused_at"], serde_json::Value::Null);
    assert!(credentials[0]["updated_at"].is_string());
    assert_eq!(credentials[1]["user"], "bob");
    assert!(credentials[1]["refused_at"].is_string());

    // Alice's token reaches Bitbucket with her credential, until it is deleted.
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    assert_eq!(app.use_token(&token).await, StatusCode::OK);
    let deleted = app
        .admin(Method::DELETE, "/admin/v1/users/alice/credential", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    assert_eq!(
        app.use_token(&token).await,
        StatusCode::UNAUTHORIZED,
        "the gateway forgot the deleted credential at once"
    );
    app.admin(Method::DELETE, "/admin/v1/users/alice/credential", None)
        .await
        .refused(404, "not_found", "alice");
    app.admin(Method::DELETE, "/admin/v1/users/al%0Aice/credential", None)
        .await
        .refused(422, "invalid_value", "user");
    let left = app.admin(Method::GET, "/admin/v1/credentials", None).await;
    let users: Vec<_> = left.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user"].clone())
        .collect();
    assert_eq!(users, [json!("bob")]);
    let events = eventually("the deletion's audit event", async || {
        let path = "/admin/v1/audit?type=credential_deleted";
        let audit = app.admin(Method::GET, path, None).await;
        let events = audit.body["events"].as_array().unwrap().clone();
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["user"], "alice");
    assert_eq!(events[0]["actor"], "admin-api");
    app.finish().await;
}
