//! `GET /admin/v1/tokens` cursors: one not of the documented shape (`{ms}-{id}`) is 400
//! `invalid_cursor` on both backends; one of that shape whose time no store can hold (after the
//! year 9999) is the end of the listing, never PostgreSQL's out-of-range 503.

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::app::{ADMIN_TOKEN, Backend, Options, spawn_app};

async fn forged_list_cursors(backend: Backend) {
    let app = spawn_app(Options::new(backend).set("admin.token", ADMIN_TOKEN)).await;
    app.admin_create(json!({"user": "alice", "description": "d"}))
        .await;
    for forged in [
        "-8000000000000000-abcdefghijkl",
        "8000000000000000-abcdefghijkl",
        "-1-abcdefghijkl",
        "1-ABCDEFGHIJKL",
        "1|abcdefghijkl",
        // The form cursors had before: base64 of `{ms}|{id}`.
        "MHxhYmNkZWZnaGlqa2w",
    ] {
        let path = format!("/admin/v1/tokens?cursor={forged}");
        app.admin(Method::GET, &path, None)
            .await
            .refused(400, "invalid_cursor", "cursor");
    }
    // The first and last times a cursor may name are read, and a later one is the last.
    for (edge, listed) in [
        ("0-abcdefghijkl", 0),
        ("253402300799999-abcdefghijkl", 1),
        ("999999999999999-abcdefghijkl", 1),
    ] {
        let path = format!("/admin/v1/tokens?cursor={edge}");
        let answer = app.admin(Method::GET, &path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{edge}: {answer:?}");
        assert_eq!(
            answer.body["tokens"].as_array().map(Vec::len),
            Some(listed),
            "{edge}: {answer:?}"
        );
    }
    app.admin(Method::GET, "/admin/v1/tokens?user=%00", None)
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
