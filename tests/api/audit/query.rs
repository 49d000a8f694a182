//! `GET /admin/v1/audit` on both backends: every filter, cursor pages newest first, refusals
//! that name the parameter, and NDJSON and CSV exports of every match.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tokengate::audit::{AuditEvent, AuditKind, AuditOutcome};

use super::{ADMIN_TOKEN, get_json};
use crate::support::app::{Backend, Options, TestApp, spawn_app};

/// More than two export pages.
const N: usize = 2_345;

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp_millis((Utc::now() - TimeDelta::days(1)).timestamp_millis()).unwrap()
}

/// The `i`-th event: three share each time (so ids break ties); paths name `i`.
fn event(base: DateTime<Utc>, i: usize) -> AuditEvent {
    let users = ["alice", "bob", "=cmd|' /C calc'!A0"];
    AuditEvent {
        time: base + TimeDelta::milliseconds(i64::try_from(i / 3).unwrap() * 250),
        kind: AuditKind::ALL[i % AuditKind::ALL.len()],
        outcome: [
            AuditOutcome::Allowed,
            AuditOutcome::Denied,
            AuditOutcome::PassedOn,
        ][i % 3],
        user: (!i.is_multiple_of(7)).then(|| users[i % 3].into()),
        token_id: Some(format!("tok{:09}", i % 5).into()),
        client_ip: Some(
            if i.is_multiple_of(2) {
                "79.209.73.23"
            } else {
                "2001:db8::1"
            }
            .parse()
            .unwrap(),
        ),
        method: Some("GET".into()),
        path: Some(format!("/rest/api/1.0/projects/{i},\"q\"").into()),
        request_id: Some(format!("@A6X2OXx532x{i}x0").into()),
        node_id: "A6X2OX".into(),
        actor: None,
        attributes: json!({ "i": i }).into(),
    }
}

fn index_of(path: &str) -> usize {
    path.strip_prefix("/rest/api/1.0/projects/")
        .and_then(|p| p.split(',').next())
        .unwrap()
        .parse()
        .unwrap()
}

/// Indices of `events`, newest first, as the API must order them (time, then insertion).
fn newest_first(events: &[AuditEvent], keep: impl Fn(&AuditEvent) -> bool) -> Vec<usize> {
    let mut matching: Vec<usize> = (0..events.len()).filter(|&i| keep(&events[i])).collect();
    matching.sort_by(|&a, &b| (events[b].time, b).cmp(&(events[a].time, a)));
    matching
}

/// Follows `next_cursor` from `query` to the end; the indices in order.
async fn all_pages(app: &TestApp, query: &str, limit: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get_json(
            app,
            &format!("/admin/v1/audit?{query}&limit={limit}{cursor}"),
        )
        .await;
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= limit);
        out.extend(events.iter().map(|e| index_of(e["path"].as_str().unwrap())));
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(events.len(), limit, "a cursor after a short page");
                cursor = format!("&cursor={next}");
            }
            None => return out,
        }
    }
}

/// A query string and what it keeps.
type Filter = (String, Box<dyn Fn(&AuditEvent) -> bool>);

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn query_api(backend: Backend) {
    let app = spawn_app(Options::new(backend).set("admin.token", ADMIN_TOKEN)).await;
    let base = base();
    let events: Vec<AuditEvent> = (0..N).map(|i| event(base, i)).collect();
    app.store().insert_audit(&events).await.unwrap();

    // One event, every field.
    let page = get_json(&app, "/admin/v1/audit?limit=1").await;
    let newest = newest_first(&events, |_| true)[0];
    let e = &events[newest];
    let shown = &page["events"][0];
    assert!(shown["id"].is_i64());
    assert_eq!(shown["time"], at(e.time));
    assert_eq!(shown["type"], e.kind.as_str());
    assert_eq!(shown["outcome"], e.outcome.as_str());
    assert_eq!(shown["user"], json!(e.user));
    assert_eq!(shown["token_id"], json!(e.token_id));
    assert_eq!(shown["client_ip"], json!(e.client_ip.unwrap().to_string()));
    assert_eq!(
        (&shown["method"], &shown["request_id"], &shown["node_id"]),
        (&json!("GET"), &json!(e.request_id), &json!("A6X2OX"))
    );
    assert_eq!(
        (&shown["actor"], &shown["attributes"]),
        (&Value::Null, &json!({ "i": newest }))
    );

    // Cursor pages, newest first, with and without filters.
    assert_eq!(
        all_pages(&app, "", 1_000).await,
        newest_first(&events, |_| true)
    );
    let since = base + TimeDelta::seconds(30);
    let until = base + TimeDelta::seconds(120);
    let filters: Vec<Filter> = vec![
        (
            "user=alice".into(),
            Box::new(|e| e.user.as_deref() == Some("alice")),
        ),
        (
            "type=rate_limited".into(),
            Box::new(|e| e.kind == AuditKind::RateLimited),
        ),
        (
            "token_id=tok000000003".into(),
            Box::new(|e| e.token_id.as_deref() == Some("tok000000003")),
        ),
        (
            format!("since={}&until={}", at(since), at(until)),
            Box::new(move |e| e.time >= since && e.time < until),
        ),
        (
            format!("user=bob&type=auth_failed&since={}", at(since)),
            Box::new(move |e| {
                e.user.as_deref() == Some("bob")
                    && e.kind == AuditKind::AuthFailed
                    && e.time >= since
            }),
        ),
    ];
    for (query, keep) in &filters {
        let expected = newest_first(&events, keep);
        assert!(!expected.is_empty(), "{query}");
        assert_eq!(all_pages(&app, query, 97).await, expected, "{query}");
    }
    // The default page is 100.
    assert_eq!(
        get_json(&app, "/admin/v1/audit").await["events"]
            .as_array()
            .unwrap()
            .len(),
        100
    );

    refusals(&app).await;
    exports(&app, &events).await;
    app.finish().await;
}

async fn refusals(app: &TestApp) {
    for (query, code, names) in [
        ("type=token_exploded", "invalid_query", "type"),
        ("limit=0", "invalid_query", "limit"),
        ("limit=1001", "invalid_query", "limit"),
        ("since=yesterday", "invalid_query", "since"),
        ("until=2024-02-30T00:00:00Z", "invalid_query", "until"),
        ("format=xml", "invalid_query", "format"),
        ("cursor=bm90LWEtY3Vyc29y", "invalid_cursor", "cursor"),
        ("cursor=1-0", "invalid_cursor", "cursor"),
        ("colour=blue", "invalid_query", "colour"),
    ] {
        let (status, text, _) = app
            .admin_text(Method::GET, &format!("/admin/v1/audit?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["code"], code, "{query}: {text}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(names),
            "{query}: {text}"
        );
    }
    // An empty time range matches nothing; it is no error.
    for (format, empty) in [
        ("json", r#"{"events":[],"next_cursor":null}"#),
        ("ndjson", ""),
    ] {
        let path = format!(
            "/admin/v1/audit?since=2024-06-02T00:00:00Z&until=2024-06-01T00:00:00Z&format={format}"
        );
        let (status, text, _) = app.admin_text(Method::GET, &path, None).await;
        assert_eq!((status, text.as_str()), (200, empty), "{path}");
    }
    let anonymous = app
        .client
        .get(format!("{}/admin/v1/audit", app.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

async fn exports(app: &TestApp, events: &[AuditEvent]) {
    // NDJSON: every event, newest first, one a line.
    let (status, text, content_type) = app
        .admin_text(Method::GET, "/admin/v1/audit?format=ndjson", None)
        .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/x-ndjson")
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let order: Vec<usize> = lines
        .iter()
        .map(|l| index_of(l["path"].as_str().unwrap()))
        .collect();
    assert_eq!(order, newest_first(events, |_| true));
    let first = get_json(app, "/admin/v1/audit?limit=10").await;
    assert_eq!(lines[..10], first["events"].as_array().unwrap()[..]);

    // At most `limit` events, in either format: the newest ones.
    for limit in [1, 5, 1000] {
        let path = format!("/admin/v1/audit?format=ndjson&limit={limit}");
        let (status, limited, _) = app.admin_text(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {limited}");
        let expected: Vec<&str> = text.lines().take(limit).collect();
        assert_eq!(limited.lines().collect::<Vec<_>>(), expected, "{path}");
        let path = format!("/admin/v1/audit?format=csv&limit={limit}");
        let (status, csv, _) = app.admin_text(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {csv}");
        assert_eq!(parse_csv(&csv).len(), limit + 1, "{path}");
    }

    // From a cursor on, and filtered.
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, text, _) = app
        .admin_text(
            Method::GET,
            &format!("/admin/v1/audit?format=ndjson&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(text.lines().count(), N - 10);
    let (_, text, _) = app
        .admin_text(
            Method::GET,
            "/admin/v1/audit?format=ndjson&type=fallback",
            None,
        )
        .await;
    assert_eq!(
        text.lines().count(),
        newest_first(events, |e| e.kind == AuditKind::Fallback).len()
    );

    // CSV: a header and one record per event, quoted where needed.
    let (status, text, content_type) = app
        .admin_text(Method::GET, "/admin/v1/audit?format=csv", None)
        .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/csv; charset=utf-8")
    );
    let rows = parse_csv(&text);
    assert_eq!(
        rows[0],
        [
            "id",
            "time",
            "type",
            "outcome",
            "user",
            "token_id",
            "client_ip",
            "method",
            "path",
            "request_id",
            "node_id",
            "actor",
            "attributes"
        ]
    );
    assert_eq!(rows.len(), N + 1);
    let order: Vec<usize> = rows[1..].iter().map(|r| index_of(&r[8])).collect();
    assert_eq!(order, newest_first(events, |_| true));
    for row in &rows[1..] {
        let e = &events[index_of(&row[8])];
        assert_eq!(row[1], at(e.time));
        assert_eq!(row[2], e.kind.as_str());
        assert_eq!(row[8], *e.path.as_ref().unwrap());
        // The gateway's own values are exported as they are, a request id's `@` included.
        assert_eq!(row[9], *e.request_id.as_ref().unwrap());
        assert_eq!(row[10], "A6X2OX");
        // A client's value a spreadsheet would run as a formula is defused.
        let user = e.user.as_deref().unwrap_or_default().to_owned();
        let shown = if user.starts_with('=') {
            format!("'{user}")
        } else {
            user
        };
        assert_eq!(row[4], shown);
        assert_eq!(
            serde_json::from_str::<Value>(&row[12]).unwrap(),
            e.attributes.clone().into_value()
        );
    }
}

/// RFC 4180, as much as the export writes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "the CSV does not end with a line break"
    );
    rows
}

#[tokio::test]
async fn sqlite() {
    query_api(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres() {
    query_api(Backend::Postgres).await;
}
