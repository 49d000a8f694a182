//! `X-AREQUESTID` on every answer under `/admin/`: the authenticated calls, the OpenAPI
//! document served without the token, refusals, unknown paths (404) and wrong methods (405);
//! each a new id of the node's sequence, the one the audit event of a change records.

use std::collections::HashSet;

use http::Method;
use serde_json::json;
use tokengate::audit::AuditKind;

use super::{audit_event, sqlite};
use crate::support::app::{ADMIN_TOKEN, NODE_ID, spawn_app};

#[tokio::test]
async fn every_admin_answer_carries_a_request_id() {
    let app = spawn_app(sqlite()).await;
    let created = json!({"user": "alice", "description": "d"}).to_string();
    let admin = Some(ADMIN_TOKEN);
    let mut seen = HashSet::new();
    for (token, method, path, body, status) in [
        (None, Method::GET, "/admin/v1/openapi.json", None, 200),
        (admin, Method::GET, "/admin/v1/nothing-here", None, 404),
        (None, Method::GET, "/admin/nothing-here", None, 404),
        (admin, Method::PUT, "/admin/v1/tokens", None, 405),
        (admin, Method::POST, "/admin/v1/audit", None, 405),
        (None, Method::DELETE, "/admin/v1/openapi.json", None, 405),
        (None, Method::GET, "/admin/v1/tokens", None, 401),
        (admin, Method::GET, "/admin/v1/tokens?limit=0", None, 400),
        (admin, Method::GET, "/admin/v1/audit", None, 200),
        (
            admin,
            Method::POST,
            "/admin/v1/tokens",
            Some(created.as_str()),
            201,
        ),
    ] {
        let answer = app.admin_as(token, method.clone(), path, body).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{method} {path}: {answer:?}"
        );
        let id = answer
            .request_id
            .unwrap_or_else(|| panic!("{method} {path} has no X-AREQUESTID"));
        assert!(
            id.starts_with(&format!("@{NODE_ID}x")),
            "{method} {path}: {id}"
        );
        assert!(
            seen.insert(id.clone()),
            "{method} {path}: {id} answered twice"
        );
        if status == 201 {
            app.track_secret(answer.body["token"].as_str().expect("the secret"));
            let event = audit_event(&app, AuditKind::TokenCreated).await;
            assert_eq!(event.event.request_id.as_deref(), Some(id.as_str()));
        }
    }
    app.finish().await;
}
