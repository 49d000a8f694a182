//! Bodies that are JSON but not an object: serde's derived structs read an array of the
//! fields in order, so `["bob","d",null,null,null,null]` would create a token. Every body, and
//! the `rate_limit` object inside one, must be an object: 400 `invalid_field`, nothing stored.

use http::Method;
use serde_json::json;

use super::{refuses_all, sqlite};
use crate::support::app::spawn_app;

/// What every body that is not a JSON object is answered.
const NOT_AN_OBJECT: &str = "the body must be a JSON object";

#[tokio::test]
async fn a_body_that_is_not_an_object_is_refused_and_changes_nothing() {
    let app = spawn_app(sqlite()).await;
    let id = app
        .admin_create(json!({"user": "alice", "description": "d"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tokens = "/admin/v1/tokens";
    let token = format!("/admin/v1/tokens/{id}");
    let credential = "/admin/v1/users/alice/credential";
    for (method, path, bodies) in [
        (
            Method::POST,
            tokens,
            &[
                r#"["bob","array body",null,null,null,null]"#,
                r#"["bob","array body"]"#,
                r#" "bob""#,
                "5",
                "null",
            ][..],
        ),
        (
            Method::PATCH,
            &token,
            &[r#"["new desc"]"#, "[]", "true"][..],
        ),
        (Method::PUT, credential, &[r#"["BBDC-secret"]"#][..]),
    ] {
        let cases: Vec<_> = bodies
            .iter()
            .map(|body| (*body, 400, "invalid_field", NOT_AN_OBJECT))
            .collect();
        refuses_all(&app, method, path, &cases).await;
    }
    // A quota is an object too.
    for (method, path, body) in [
        (
            Method::POST,
            tokens,
            r#"{"user": "bob", "description": "d", "rate_limit": [5, 60]}"#,
        ),
        (Method::PATCH, &token, r#"{"rate_limit": [5, 60]}"#),
    ] {
        refuses_all(
            &app,
            method,
            path,
            &[(body, 400, "invalid_field", "rate_limit")],
        )
        .await;
    }
    // Malformed text is still malformed, whatever it starts with.
    refuses_all(
        &app,
        Method::POST,
        tokens,
        &[("[1, ", 400, "malformed_json", "JSON")],
    )
    .await;
    app.finish().await;
}
