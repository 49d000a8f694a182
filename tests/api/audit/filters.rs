//! `GET /admin/v1/audit` with input no page of ours holds, on both backends: U+0000 in the
//! `user` and `token_id` filters (read as the writer stores it, U+FFFD), forged cursors whose
//! time no store can hold (400, never the store's error), and an export whose first page the
//! store cannot read (an error answer, not a 200 with an empty CSV).

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tokengate::audit::{AuditEvent, AuditKind, AuditOutcome};

use super::{ADMIN_TOKEN, get_json};
use crate::support::app::{Backend, Options, TestApp, spawn_app};
use crate::support::execute_raw;

fn event(user: &str, token_id: &str, i: i64) -> AuditEvent {
    AuditEvent {
        time: Utc::now() - TimeDelta::minutes(10 - i),
        kind: AuditKind::AuthFailed,
        outcome: AuditOutcome::Denied,
        user: Some(user.into()),
        token_id: Some(token_id.into()),
        client_ip: None,
        method: Some("GET".into()),
        path: Some(format!("/rest/api/1.0/projects/{i}").into()),
        request_id: Some(format!("@TGTESTx1x{i}x0").into()),
        node_id: "TGTEST".into(),
        actor: None,
        attributes: json!({}).into(),
    }
}

/// The `user` of every event of a JSON page.
fn users(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["user"].as_str().expect("a user").to_owned())
        .collect()
}

/// Asserts a 400 with this code, for `GET path`.
async fn refused(app: &TestApp, path: &str, code: &str) {
    let (status, text, _) = app.admin_text(Method::GET, path, None).await;
    assert_eq!(status, 400, "{path}: {text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON error");
    assert_eq!(body["error"]["code"], code, "{path}: {text}");
}

async fn filters_and_cursors(backend: Backend) {
    let app = spawn_app(Options::new(backend).set("admin.token", ADMIN_TOKEN)).await;
    // Stored as the audit writer stores them: U+0000 becomes U+FFFD.
    app.store()
        .insert_audit(&[event("a\0b", "tok\0", 1), event("alice", "tok000000001", 2)])
        .await
        .expect("storing events");

    let stored = "a\u{FFFD}b";
    for (query, expected) in [
        ("user=a%00b", vec![stored]),
        ("user=a%EF%BF%BDb", vec![stored]),
        ("token_id=tok%00", vec![stored]),
        ("user=a%00b&token_id=tok%00", vec![stored]),
        ("user=%00", vec![]),
        ("token_id=%00", vec![]),
        ("user=alice", vec!["alice"]),
    ] {
        let page = get_json(&app, &format!("/admin/v1/audit?{query}")).await;
        assert_eq!(users(&page), expected, "{query}");
    }
    for format in ["ndjson", "csv"] {
        let path = format!("/admin/v1/audit?user=a%00b&format={format}");
        let (status, text, _) = app.admin_text(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {text}");
        assert!(text.contains(stored), "{path}: {text}");
        assert!(!text.contains("alice"), "{path}: {text}");
    }

    // Cursors not of the documented shape, `{ms}-{id}`: refused before the store. One of that
    // shape whose time is after the year 9999 is the end of the listing.
    for forged in [
        "-8000000000000000-5",
        "8000000000000000-5",
        "-1-5",
        "1-0",
        "1|5",
        "MXw1",
    ] {
        for format in ["json", "ndjson", "csv"] {
            refused(
                &app,
                &format!("/admin/v1/audit?cursor={forged}&format={format}"),
                "invalid_cursor",
            )
            .await;
        }
    }
    let page = get_json(
        &app,
        "/admin/v1/audit?cursor=999999999999999-999999999999999999",
    )
    .await;
    assert_eq!(users(&page).len(), 2);
    // The widest times RFC 3339 can write are answered.
    let page = get_json(
        &app,
        "/admin/v1/audit?since=0000-01-01T00:00:00Z&until=9999-12-31T23:59:59.999Z",
    )
    .await;
    assert_eq!(users(&page).len(), 2);
    app.finish().await;
}

#[tokio::test]
async fn sqlite_filters_and_cursors() {
    filters_and_cursors(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_filters_and_cursors() {
    filters_and_cursors(Backend::Postgres).await;
}

/// The table the backend keeps audit events in.
fn audit_table(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "audit_segments",
        Backend::Postgres => "audit_events",
    }
}

async fn export_of_a_failing_store(backend: Backend) {
    let app = spawn_app(Options::new(backend).set("admin.token", ADMIN_TOKEN)).await;
    app.store()
        .insert_audit(&[event("alice", "tok000000001", 1)])
        .await
        .expect("storing an event");
    // The store fails every audit read while its table is away.
    let table = audit_table(backend);
    execute_raw(
        app.database_url(),
        &format!("ALTER TABLE {table} RENAME TO {table}_away"),
    )
    .await;
    for format in ["ndjson", "csv"] {
        let path = format!("/admin/v1/audit?user=alice&format={format}");
        let (status, text, content_type) = app.admin_text(Method::GET, &path, None).await;
        assert_eq!(
            (status, content_type.as_str()),
            (503, "application/json"),
            "{path}: {text}"
        );
        let body: Value = serde_json::from_str(&text).expect("a JSON error");
        assert_eq!(body["error"]["code"], "store_unavailable", "{path}: {text}");
    }
    execute_raw(
        app.database_url(),
        &format!("ALTER TABLE {table}_away RENAME TO {table}"),
    )
    .await;
    let (status, text, _) = app
        .admin_text(Method::GET, "/admin/v1/audit?user=alice&format=csv", None)
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text.lines().count(), 2, "a header and the event: {text}");
    app.finish().await;
}

#[tokio::test]
async fn sqlite_export_answers_a_store_failure_with_an_error() {
    export_of_a_failing_store(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_export_answers_a_store_failure_with_an_error() {
    export_of_a_failing_store(Backend::Postgres).await;
}
