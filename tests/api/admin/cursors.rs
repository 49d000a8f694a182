//! Forged `GET /admin/v1/tokens` cursors whose time no store can hold (before 1970, after the
//! year 9999): 400 `invalid_cursor` on both backends, never PostgreSQL's out-of-range 503.

use http::{Method, StatusCode};
use serde_json::json;

use super::{ADMIN_TOKEN, call, create};
use crate::support::app::{Backend, Options, spawn_app};

fn base64url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

async fn forged_list_cursors(backend: Backend) {
    let app = spawn_app(Options::new(backend).set("admin.token", ADMIN_TOKEN)).await;
    create(&app, json!({"user": "alice", "description": "d"})).await;
    for forged in [
        "-8000000000000000|abcdefghijkl",
        "8000000000000000|abcdefghijkl",
        "253402300800000|abcdefghijkl",
        "-1|abcdefghijkl",
    ] {
        let path = format!("/admin/v1/tokens?cursor={}", base64url(forged));
        call(&app, Method::GET, &path, None)
            .await
            .refused(400, "invalid_cursor", "cursor");
    }
    // The first and last times a cursor may name are read.
    for edge in ["0|abcdefghijkl", "253402300799999|abcdefghijkl"] {
        let path = format!("/admin/v1/tokens?cursor={}", base64url(edge));
        let answer = call(&app, Method::GET, &path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{edge}: {answer:?}");
    }
    call(&app, Method::GET, "/admin/v1/tokens?user=%00", None)
        .await
        .refused(400, "invalid_query", "user");
    app.finish().await;
}

#[tokio::test]
async fn sqlite_forged_list_cursors_are_400() {
    forged_list_cursors(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_forged_list_cursors_are_400() {
    forged_list_cursors(Backend::Postgres).await;
}
