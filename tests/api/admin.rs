//! The admin REST API, through the real binary: every endpoint's happy path, every
//! kind of bad input (status, error code, a message naming the field, and the store left
//! unchanged), the admin token, pagination, revocation reaching the proxy (in this process at
//! once, in another process on the same PostgreSQL within a second), the expiry policy, the
//! OpenAPI document, and random bodies never answered with a 5xx.

mod bodies;
mod cursors;
mod in_process;
mod request_ids;
mod schemathesis;
mod tokens;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokengate::audit::AuditKind;
use tokengate::store::{Store, TokenQuery};
use tokengate::token::{Scope, TokenRecord};

use crate::auth::HASHES;
use crate::support::app::{ADMIN_TOKEN, Backend, Options, TestApp, TokenOpts, spawn_app};
use crate::support::audit::{audit_event, audit_events, audit_trail};
use crate::support::refused_within_a_second;

fn sqlite() -> Options {
    Options::new(Backend::Sqlite).set("admin.token", ADMIN_TOKEN)
}

/// Every token in the store, newest first, hashes included.
pub(crate) async fn all_tokens(app: &TestApp) -> Vec<TokenRecord> {
    all_tokens_in(&**app.store()).await
}

/// Every token in `store`, newest first, hashes included.
pub(crate) async fn all_tokens_in(store: &dyn Store) -> Vec<TokenRecord> {
    let query = TokenQuery {
        user: None,
        state: None,
        now: Utc::now(),
        limit: 10_000,
        after: None,
    };
    store.list_tokens(&query).await.expect("listing tokens")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn in_days(days: i64) -> String {
    rfc3339(Utc::now() + chrono::Duration::days(days))
}

#[tokio::test]
async fn scope_and_optional_fields_have_defaults() {
    let app = spawn_app(sqlite()).await;
    let created = app
        .admin_create(json!({"user": "alice", "description": "minimal"}))
        .await;
    assert_eq!(created["scope"], "read-only");
    assert_eq!(created["expires_at"], Value::Null);
    assert_eq!(created["allowed_ips"], json!([]));
    assert_eq!(created["rate_limit"], Value::Null);
    let nulls = app.admin_create(json!({"user": "alice", "description": "nulls", "scope": null, "expires_at": null, "rate_limit": null})).await;
    assert_eq!(nulls["scope"], "read-only");
    app.finish().await;
}

/// A change takes effect on the token's next request, which reads the new record; the secret,
/// verified once, is not hashed again.
#[tokio::test]
async fn a_changed_token_is_read_again_but_not_hashed_again() {
    let app = spawn_app(sqlite()).await;
    let created = app
        .admin_create(json!({"user": "alice", "description": "d"}))
        .await;
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    assert_eq!(app.use_token(secret).await, StatusCode::OK);
    let hashes = app.metric(HASHES).await;
    let path = format!("/admin/v1/tokens/{id}");
    for (allowed, status) in [
        (json!(["10.0.0.0/8"]), StatusCode::UNAUTHORIZED),
        (json!([]), StatusCode::OK),
    ] {
        let body = json!({ "allowed_ips": allowed });
        let patched = app.admin(Method::PATCH, &path, Some(&body)).await;
        assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
        assert_eq!(app.use_token(secret).await, status, "allowed {allowed}");
    }
    assert_eq!(
        app.metric(HASHES).await,
        hashes,
        "the secret was hashed again"
    );
    app.finish().await;
}

/// The address a change records is the admin listener's peer: a caller cannot name another in
/// `X-Forwarded-For`, even where the proxy listener trusts the peer's forwarding.
#[tokio::test]
async fn a_change_records_the_connecting_address_not_a_forwarded_one() {
    let app = spawn_app(sqlite().set("proxy.trusted_proxies", vec!["127.0.0.1/32"])).await;
    let created = app
        .admin_create(json!({"user": "alice", "description": "d"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let response = app
        .client
        .delete(format!("{}/admin/v1/tokens/{id}", app.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .expect("an admin call");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let revocation = audit_event(&app, AuditKind::TokenRevoked).await.event;
    assert_eq!(revocation.client_ip, Some("127.0.0.1".parse().unwrap()));
    app.finish().await;
}

/// Sends each `(body, status, code, field)` to `method path` and checks the refusal, and that
/// the stored tokens did not change.
async fn refuses_all(app: &TestApp, method: Method, path: &str, cases: &[(&str, u16, &str, &str)]) {
    let before = all_tokens(app).await;
    for (body, status, code, field) in cases {
        let answer = app
            .admin_as(Some(ADMIN_TOKEN), method.clone(), path, Some(body))
            .await;
        assert_eq!(answer.status.as_u16(), *status, "{body}: {answer:?}");
        assert_eq!(answer.body["error"]["code"], *code, "{body}: {answer:?}");
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: the message does not name {field}: {message}"
        );
    }
    assert_eq!(
        all_tokens(app).await,
        before,
        "a refused call changed the store"
    );
}

#[tokio::test]
async fn bad_create_bodies_are_refused_and_change_nothing() {
    let app = spawn_app(sqlite()).await;
    let long = "x".repeat(256);
    let past = rfc3339(Utc::now() - chrono::Duration::hours(1));
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (r#"{"user": "a", "description": "#.into(), 400, "malformed_json", "JSON"),
        (r#"{"user": "a", "description": "d"} trailing"#.into(), 400, "malformed_json", "JSON"),
        (String::new(), 400, "malformed_json", "JSON"),
        ("[]".into(), 400, "invalid_field", "must be a JSON object"),
        (r#"{"user": "a", "description": "d", "colour": "red"}"#.into(), 400, "invalid_field", "colour"),
        (r#"{"user": 5, "description": "d"}"#.into(), 400, "invalid_field", "user"),
        (r#"{"description": "d"}"#.into(), 400, "invalid_field", "user"),
        (r#"{"user": "a"}"#.into(), 400, "invalid_field", "description"),
        (r#"{"user": "a", "description": "d", "allowed_ips": "10.0.0.0/8"}"#.into(), 400, "invalid_field", "allowed_ips"),
        (r#"{"user": "a", "description": "d", "rate_limit": {"requests": "5", "period_seconds": 60}}"#.into(), 400, "invalid_field", "rate_limit.requests"),
        (r#"{"user": "a", "description": "d", "rate_limit": {"requests": -5, "period_seconds": 60}}"#.into(), 400, "invalid_field", "rate_limit.requests"),
        (r#"{"user": "a", "description": "d", "rate_limit": {"requests": 5}}"#.into(), 400, "invalid_field", "period_seconds"),
        (r#"{"user": "a", "description": "d", "scope": "admin"}"#.into(), 422, "invalid_value", "scope"),
        (r#"{"user": "a", "description": "d", "allowed_ips": ["10.0.0.0/8", "10.0.0.0/33"]}"#.into(), 422, "invalid_value", "allowed_ips[1]"),
        (r#"{"user": "a", "description": "d", "allowed_ips": ["example.com"]}"#.into(), 422, "invalid_value", "allowed_ips[0]"),
        // Host bits set: a typo far more often than an intent, never quietly truncated.
        (r#"{"user": "a", "description": "d", "allowed_ips": ["10.0.0.0/8", "10.1.2.3/8"]}"#.into(), 422, "invalid_value", "allowed_ips[1]: \"10.1.2.3/8\" has host bits set: write the network as 10.0.0.0/8"),
        (r#"{"user": "a", "description": "d", "allowed_ips": ["2001:db8::1/32"]}"#.into(), 422, "invalid_value", "2001:db8::/32"),
        (r#"{"user": "a", "description": "d", "expires_at": "2030-01-01"}"#.into(), 422, "invalid_value", "expires_at"),
        (r#"{"user": "a", "description": "d", "expires_at": "next week"}"#.into(), 422, "invalid_value", "expires_at"),
        (format!(r#"{{"user": "a", "description": "d", "expires_at": "{past}"}}"#), 422, "invalid_value", "expires_at"),
        (format!(r#"{{"user": "a", "description": "{long}"}}"#), 422, "invalid_value", "description"),
        (r#"{"user": "a", "description": "two\nlines"}"#.into(), 422, "invalid_value", "description"),
        (r#"{"user": "a", "description": "   "}"#.into(), 422, "invalid_value", "description"),
        (r#"{"user": "", "description": "d"}"#.into(), 422, "invalid_value", "user"),
        (format!(r#"{{"user": "{long}", "description": "d"}}"#), 422, "invalid_value", "user"),
        (r#"{"user": "bad\u0007user", "description": "d"}"#.into(), 422, "invalid_value", "user"),
        (r#"{"user": "two words", "description": "d"}"#.into(), 422, "invalid_value", "user"),
        (r#"{"user": "a", "description": "d", "rate_limit": {"requests": 0, "period_seconds": 60}}"#.into(), 422, "invalid_value", "rate_limit.requests"),
        (r#"{"user": "a", "description": "d", "rate_limit": {"requests": 5, "period_seconds": 0}}"#.into(), 422, "invalid_value", "rate_limit.period_seconds"),
    ];
    let cases: Vec<(&str, u16, &str, &str)> = cases
        .iter()
        .map(|(b, s, c, f)| (b.as_str(), *s, *c, *f))
        .collect();
    refuses_all(&app, Method::POST, "/admin/v1/tokens", &cases).await;

    // Not JSON at all, or no content type: 415.
    for content_type in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        None,
    ] {
        let mut request = app
            .client
            .post(format!("{}/admin/v1/tokens", app.admin_url()))
            .bearer_auth(ADMIN_TOKEN)
            .body(r#"{"user": "a", "description": "d"}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media_type");
    }
    // Over the size limit: 413, however the body is sent.
    let padding = " ".repeat(64 * 1024);
    let oversized = format!(r#"{{"user": "a", "description": "d"{padding}}}"#);
    let answer = app
        .admin_as(
            Some(ADMIN_TOKEN),
            Method::POST,
            "/admin/v1/tokens",
            Some(&oversized),
        )
        .await;
    answer.refused(413, "payload_too_large", "64 KiB");
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(oversized.clone()), Ok(oversized)];
    let streamed = app
        .client
        .post(format!("{}/admin/v1/tokens", app.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is read (and here refused for its content, not its size).
    let fits = format!(
        r#"{{"user": "a b", "description": "d"{}}}"#,
        " ".repeat(60 * 1024)
    );
    app.admin_as(
        Some(ADMIN_TOKEN),
        Method::POST,
        "/admin/v1/tokens",
        Some(&fits),
    )
    .await
    .refused(422, "invalid_value", "user");
    assert!(all_tokens(&app).await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn bad_patches_are_refused_and_change_nothing() {
    let app = spawn_app(sqlite()).await;
    let id = app
        .admin_create(json!({"user": "alice", "description": "d"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let long = "x".repeat(256);
    let past = rfc3339(Utc::now() - chrono::Duration::hours(1));
    let cases: Vec<(String, u16, &str, &str)> = vec![
        ("{}".into(), 422, "empty_patch", "description"),
        (r#"{"description": "#.into(), 400, "malformed_json", "JSON"),
        (r#"{"user": "bob"}"#.into(), 400, "invalid_field", "user"),
        (
            r#"{"scope": "read-write"}"#.into(),
            400,
            "invalid_field",
            "scope",
        ),
        (
            r#"{"description": 7}"#.into(),
            400,
            "invalid_field",
            "description",
        ),
        (
            r#"{"description": null}"#.into(),
            422,
            "invalid_value",
            "description",
        ),
        (
            format!(r#"{{"description": "{long}"}}"#),
            422,
            "invalid_value",
            "description",
        ),
        (
            r#"{"description": "tab\there"}"#.into(),
            422,
            "invalid_value",
            "description",
        ),
        (
            r#"{"expires_at": "soon"}"#.into(),
            422,
            "invalid_value",
            "expires_at",
        ),
        (
            format!(r#"{{"expires_at": "{past}"}}"#),
            422,
            "invalid_value",
            "expires_at",
        ),
        (
            r#"{"allowed_ips": null}"#.into(),
            422,
            "invalid_value",
            "allowed_ips",
        ),
        (
            r#"{"allowed_ips": ["300.1.1.1"]}"#.into(),
            422,
            "invalid_value",
            "allowed_ips[0]",
        ),
        (
            r#"{"rate_limit": {"requests": 0, "period_seconds": 1}}"#.into(),
            422,
            "invalid_value",
            "rate_limit.requests",
        ),
        (
            r#"{"rate_limit": {"requests": 1, "period_seconds": 1, "burst": 2}}"#.into(),
            400,
            "invalid_field",
            "burst",
        ),
        // A valid field does not sneak through next to an invalid one.
        (
            r#"{"description": "fine", "allowed_ips": ["nope"]}"#.into(),
            422,
            "invalid_value",
            "allowed_ips[0]",
        ),
    ];
    let cases: Vec<(&str, u16, &str, &str)> = cases
        .iter()
        .map(|(b, s, c, f)| (b.as_str(), *s, *c, *f))
        .collect();
    refuses_all(
        &app,
        Method::PATCH,
        &format!("/admin/v1/tokens/{id}"),
        &cases,
    )
    .await;
    app.finish().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let app = spawn_app(sqlite()).await;
    app.admin_create(json!({"user": "alice", "description": "d"}))
        .await;
    let before = all_tokens(&app).await;
    let long = "a".repeat(300);
    for id in [
        "000000000000",
        "not-an-id",
        "ABCDEFGHIJKL",
        "%FF%FE",
        long.as_str(),
    ] {
        let path = format!("/admin/v1/tokens/{id}");
        app.admin(Method::GET, &path, None)
            .await
            .refused(404, "not_found", "");
        app.admin(Method::DELETE, &path, None)
            .await
            .refused(404, "not_found", "");
        app.admin(Method::PATCH, &path, Some(&json!({"description": "x"})))
            .await
            .refused(404, "not_found", "");
    }
    app.admin(Method::GET, "/admin/v1/nothing-here", None)
        .await
        .refused(404, "not_found", "");
    assert_eq!(all_tokens(&app).await, before);
    app.finish().await;
}

#[tokio::test]
async fn list_parameters_are_checked() {
    let app = spawn_app(sqlite()).await;
    for (query, code, field) in [
        ("limit=0", "invalid_query", "limit"),
        ("limit=501", "invalid_query", "limit"),
        ("limit=ten", "invalid_query", "limit"),
        ("limit=-1", "invalid_query", "limit"),
        ("state=stale", "invalid_query", "state"),
        ("user=", "invalid_query", "user"),
        ("user=a%20b", "invalid_query", "user"),
        ("colour=red", "invalid_query", "colour"),
        ("user=a&user=b", "invalid_query", "user"),
        ("cursor=garbage", "invalid_cursor", "cursor"),
        ("cursor=MTIzfGFiYw", "invalid_cursor", "cursor"),
    ] {
        app.admin(Method::GET, &format!("/admin/v1/tokens?{query}"), None)
            .await
            .refused(400, code, field);
    }
    app.finish().await;
}

#[tokio::test]
async fn pagination_walks_every_token_once() {
    let app = spawn_app(sqlite()).await;
    let base = DateTime::from_timestamp(Utc::now().timestamp() - 86_400, 0).unwrap();
    let mut expected = Vec::new();
    for i in 0..23_i64 {
        // Groups of three share a creation time, so the id breaks ties.
        let created_at = base + chrono::Duration::seconds(i / 3);
        let user = if i % 2 == 0 { "even" } else { "odd" };
        let (id, _) = app
            .create_token(
                user,
                Scope::ReadOnly,
                TokenOpts {
                    created_at,
                    ..TokenOpts::default()
                },
            )
            .await;
        expected.push((created_at, id.to_string(), user));
    }
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));

    let walk = |query: String| {
        let app = &app;
        async move {
            let (mut ids, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
            loop {
                let mut path = format!("/admin/v1/tokens?limit=5{query}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let page = app.admin(Method::GET, &path, None).await;
                assert_eq!(page.status, StatusCode::OK, "{page:?}");
                let tokens = page.body["tokens"].as_array().unwrap();
                assert!(tokens.len() <= 5);
                ids.extend(tokens.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
                pages += 1;
                match page.body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => return (ids, pages),
                }
            }
        }
    };
    let (ids, pages) = walk(String::new()).await;
    let all: Vec<String> = expected.iter().map(|e| e.1.clone()).collect();
    assert_eq!(ids, all, "pages skipped, repeated or misordered tokens");
    assert_eq!(pages, 5);
    let (evens, _) = walk("&user=even".into()).await;
    let expected_evens: Vec<String> = expected
        .iter()
        .filter(|e| e.2 == "even")
        .map(|e| e.1.clone())
        .collect();
    assert_eq!(evens, expected_evens);

    for id in &all[..4] {
        assert_eq!(
            app.admin(Method::DELETE, &format!("/admin/v1/tokens/{id}"), None)
                .await
                .status,
            StatusCode::NO_CONTENT
        );
    }
    let (revoked, _) = walk("&state=revoked".into()).await;
    assert_eq!(revoked, all[..4]);
    let (active, _) = walk("&state=active".into()).await;
    assert_eq!(active, all[4..]);
    let exact = app
        .admin(Method::GET, "/admin/v1/tokens?limit=23", None)
        .await;
    assert_eq!(
        exact.body["next_cursor"],
        Value::Null,
        "a full last page has no next page"
    );
    app.finish().await;
}

#[tokio::test]
async fn the_admin_token_is_required() {
    let app = spawn_app(sqlite()).await;
    let id = app
        .admin_create(json!({"user": "alice", "description": "d"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = all_tokens(&app).await;
    let calls = [
        (
            Method::POST,
            "/admin/v1/tokens".to_owned(),
            Some(r#"{"user": "bob", "description": "d"}"#),
        ),
        (Method::GET, "/admin/v1/tokens".to_owned(), None),
        (Method::GET, format!("/admin/v1/tokens/{id}"), None),
        (
            Method::PATCH,
            format!("/admin/v1/tokens/{id}"),
            Some(r#"{"description": "x"}"#),
        ),
        (Method::DELETE, format!("/admin/v1/tokens/{id}"), None),
        (
            Method::PUT,
            "/admin/v1/users/alice/credential".to_owned(),
            Some(r#"{"credential": "c"}"#),
        ),
    ];
    for (method, path, body) in &calls {
        for token in [
            None,
            Some("wrong-token-of-the-same-size-01"),
            Some(&ADMIN_TOKEN[1..]),
        ] {
            let answer = app.admin_as(token, method.clone(), path, *body).await;
            answer.refused(401, "unauthorized", "admin token");
            assert!(
                answer
                    .www_authenticate
                    .as_deref()
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{answer:?}"
            );
        }
        let basic = app
            .client
            .request(method.clone(), format!("{}{path}", app.admin_url()))
            .basic_auth("admin", Some(ADMIN_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(all_tokens(&app).await, before);
    for open in ["/healthz", "/readyz", "/metrics", "/admin/v1/openapi.json"] {
        let status = app
            .client
            .get(format!("{}{open}", app.admin_url()))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "{open}");
    }
    assert!(
        app.metric("tokengate_admin_requests_total{status=\"401\"}")
            .await
            >= 18.0
    );
    app.finish().await;
}

#[tokio::test]
async fn without_an_admin_token_every_call_is_refused() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    for token in [None, Some(ADMIN_TOKEN)] {
        let answer = app
            .admin_as(
                token,
                Method::POST,
                "/admin/v1/tokens",
                Some(r#"{"user": "a", "description": "d"}"#),
            )
            .await;
        answer.refused(401, "admin_token_unset", "TOKENGATE_ADMIN__TOKEN");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("admin.token")
        );
        app.admin_as(token, Method::GET, "/admin/v1/tokens", None)
            .await
            .refused(401, "admin_token_unset", "admin.token");
    }
    assert!(all_tokens(&app).await.is_empty());
    let health = app
        .client
        .get(format!("{}/healthz", app.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn max_lifetime_days_bounds_every_expiry() {
    let app = spawn_app(sqlite().set("auth.max_lifetime_days", 30)).await;
    let path = "/admin/v1/tokens";
    let before = all_tokens(&app).await;
    for body in [
        json!({"user": "a", "description": "d"}),
        json!({"user": "a", "description": "d", "expires_at": in_days(31)}),
    ] {
        let answer = app.admin(Method::POST, path, Some(&body)).await;
        answer.refused(422, "lifetime_exceeded", "expires_at");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("30 days"),
            "{answer:?}"
        );
    }
    assert_eq!(all_tokens(&app).await, before);
    let id = app
        .admin_create(json!({"user": "a", "description": "d", "expires_at": in_days(29)}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = all_tokens(&app).await;
    let token_path = format!("/admin/v1/tokens/{id}");
    app.admin(
        Method::PATCH,
        &token_path,
        Some(&json!({"expires_at": null})),
    )
    .await
    .refused(422, "lifetime_exceeded", "30 days");
    app.admin(
        Method::PATCH,
        &token_path,
        Some(&json!({"expires_at": in_days(31)})),
    )
    .await
    .refused(422, "lifetime_exceeded", "30 days");
    assert_eq!(all_tokens(&app).await, before);
    let shorter = app
        .admin(
            Method::PATCH,
            &token_path,
            Some(&json!({"expires_at": in_days(10)})),
        )
        .await;
    assert_eq!(shorter.status, StatusCode::OK, "{shorter:?}");
    app.finish().await;
}

#[tokio::test]
async fn credentials_are_stored_sealed_and_never_echoed() {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let credential = "BBDC-Mzk0NDEyOTc2MzE4OnRoaXMtaXMtc2VjcmV0";

    // Without a key: 409, saying how to set one.
    let app = spawn_app(sqlite()).await;
    let body = json!({"credential": credential});
    app.admin(Method::PUT, "/admin/v1/users/alice/credential", Some(&body))
        .await
        .refused(
            409,
            "credential_key_missing",
            "TOKENGATE_UPSTREAM__CREDENTIAL_KEY",
        );
    assert_eq!(app.store().get_credential("alice").await.unwrap(), None);
    app.finish().await;

    let app = spawn_app(sqlite().set("upstream.credential_key", key.as_str())).await;
    app.track_secret(credential);
    let stored = app
        .admin(Method::PUT, "/admin/v1/users/alice/credential", Some(&body))
        .await;
    assert_eq!(
        (stored.status, stored.text.as_str()),
        (StatusCode::NO_CONTENT, "")
    );
    let sealed = app
        .store()
        .get_credential("alice")
        .await
        .unwrap()
        .expect("a stored credential")
        .sealed;
    assert!(
        !sealed
            .windows(credential.len())
            .any(|w| w == credential.as_bytes()),
        "stored in the clear"
    );
    let key = tokengate::vault::CredentialKey::from_secret(&key.into()).unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&key.open("alice", &sealed).unwrap()),
        credential
    );
    let event = audit_event(&app, AuditKind::CredentialSet).await;
    assert_eq!(
        (event.event.user.as_deref(), event.event.actor.as_deref()),
        (Some("alice"), Some("admin-api"))
    );
    assert!(!serde_json::to_string(&event).unwrap().contains(credential));

    for (path, body, status, code, field) in [
        (
            "/admin/v1/users/alice/credential",
            r#"{"credential": ""}"#,
            422,
            "invalid_value",
            "credential",
        ),
        (
            "/admin/v1/users/alice/credential",
            r#"{"credential": "two\nlines"}"#,
            422,
            "invalid_value",
            "credential",
        ),
        (
            "/admin/v1/users/alice/credential",
            r#"{"credential": "   "}"#,
            422,
            "invalid_value",
            "credential",
        ),
        (
            "/admin/v1/users/alice/credential",
            r#"{"credential": " c "}"#,
            422,
            "invalid_value",
            "credential",
        ),
        (
            "/admin/v1/users/alice/credential",
            r#"{}"#,
            400,
            "invalid_field",
            "credential",
        ),
        (
            "/admin/v1/users/alice/credential",
            r#"{"credential": "c", "user": "bob"}"#,
            400,
            "invalid_field",
            "user",
        ),
        (
            "/admin/v1/users/two%20words/credential",
            r#"{"credential": "c"}"#,
            422,
            "invalid_value",
            "user",
        ),
    ] {
        app.admin_as(Some(ADMIN_TOKEN), Method::PUT, path, Some(body))
            .await
            .refused(status, code, field);
    }
    assert_eq!(
        app.store()
            .get_credential("alice")
            .await
            .unwrap()
            .map(|c| c.sealed),
        Some(sealed)
    );
    app.finish().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = spawn_app(sqlite()).await;
    let answer = app
        .admin_as(None, Method::GET, "/admin/v1/openapi.json", None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.body;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/admin/v1/tokens"]["post"]["requestBody"].is_object());
    assert!(doc["paths"]["/admin/v1/tokens/{id}"]["patch"].is_object());
    assert!(doc["components"]["schemas"]["CreatedToken"].is_object());
    app.finish().await;
}

/// JSON values shaped like token bodies: known and unknown keys, any kind of value.
fn body_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,300}".prop_map(Value::from),
        Just(json!("10.0.0.0/8")),
        Just(json!("2031-01-01T00:00:00Z")),
        Just(json!("read-write")),
        Just(json!(u64::MAX)),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key_strategy(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(key_strategy(), value, 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "user",
            "description",
            "scope",
            "expires_at",
            "allowed_ips",
            "rate_limit",
            "requests",
            "period_seconds"
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ]
}

#[test]
fn random_bodies_never_get_a_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_app(sqlite()));
    let id = runtime.block_on(app.admin_create(json!({"user": "alice", "description": "d"})))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch_path = format!("/admin/v1/tokens/{id}");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    runner
        .run(&body_strategy(), |body| {
            runtime.block_on(async {
                for (method, path) in [
                    (Method::POST, "/admin/v1/tokens"),
                    (Method::PATCH, patch_path.as_str()),
                ] {
                    let answer = app.admin(method.clone(), path, Some(&body)).await;
                    prop_assert!(answer.status.as_u16() < 500, "{method} {body}: {answer:?}");
                    if answer.status == StatusCode::CREATED {
                        app.track_secret(answer.body["token"].as_str().unwrap());
                    }
                }
                Ok(())
            })
        })
        .unwrap();
    runtime.block_on(app.finish());
}

/// Two gateways on one PostgreSQL: a token revoked through one is refused by the other within
/// a second, though the other had it cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_another_gateway_within_a_second() {
    let first = spawn_app(Options::new(Backend::Postgres).set("admin.token", ADMIN_TOKEN)).await;
    let second = spawn_app(
        Options::new(Backend::Postgres)
            .set("admin.token", ADMIN_TOKEN)
            .set("database.url", first.database_url()),
    )
    .await;
    let created = first
        .admin_create(json!({"user": "alice", "description": "shared"}))
        .await;
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    second.track_secret(secret);
    assert_eq!(
        second.use_token(secret).await,
        StatusCode::OK,
        "the second gateway accepts (and caches) the token"
    );
    assert_eq!(second.use_token(secret).await, StatusCode::OK);

    assert_eq!(
        first
            .admin(Method::DELETE, &format!("/admin/v1/tokens/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let revoked_at = Instant::now();
    refused_within_a_second(
        "the revoked token on the second gateway",
        revoked_at,
        async || {
            let status = second.use_token(secret).await;
            if status == StatusCode::UNAUTHORIZED {
                return Some(());
            }
            assert_eq!(status, StatusCode::OK);
            None
        },
    )
    .await;
    assert!(revoked_at.elapsed() < Duration::from_secs(1));
    second.finish().await;
    first.finish().await;
}
