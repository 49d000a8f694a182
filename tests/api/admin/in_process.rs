//! The admin API's input validation, answered by its router in this process through
//! `tower::ServiceExt::oneshot`: no gateway process and no listener, only a fresh SQLite store.
//! Bad JSON, an unknown field, a bad CIDR, a missing content type and an oversized body each get
//! their status and the documented error shape, `{"error":{"code":"…","message":"…"}}` with a
//! message naming what is wrong, and change nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use secrecy::SecretString;
use serde_json::Value;
use tempfile::TempDir;
use tokengate::admin::{AdminState, router};
use tokengate::audit::{self, AuditSettings, AuditWriter, Coverage};
use tokengate::auth::{Verifier, VerifierSettings};
use tokengate::lifecycle::{Actor, AuditTo, Lifecycle, LifecycleSettings};
use tokengate::metrics::Metrics;
use tokengate::request_id::RequestIds;
use tokengate::store::{AuditStore, Store, TokenStore};
use tower::ServiceExt as _;

use super::all_tokens_in;
use crate::support::app::{ADMIN_TOKEN, NODE_ID};
use crate::support::fresh_sqlite;

/// The admin router on a fresh SQLite store, as the gateway builds it, without a listener.
struct Admin {
    router: axum::Router,
    store: Arc<dyn Store>,
    writer: AuditWriter,
    _dir: TempDir,
}

impl Admin {
    async fn new() -> Self {
        let (store, dir) = fresh_sqlite().await;
        let metrics = Arc::new(Metrics::new());
        let settings = AuditSettings {
            coverage: Coverage::Full,
            retention_days: 90,
            max_rows: None,
            file: None,
            queue_capacity: 1_024,
            spill_file: dir.path().join("audit-spill.ndjson"),
        };
        let (sink, writer) = audit::start(
            Arc::clone(&store) as Arc<dyn AuditStore>,
            &settings,
            "sys".into(),
            Arc::clone(&metrics),
        );
        let verifier = Arc::new(Verifier::new(
            Arc::clone(&store) as Arc<dyn TokenStore>,
            VerifierSettings {
                cache_ttl: Duration::from_secs(10),
                hash_concurrency: 1,
                failed_attempts_per_ip: "20/1m".parse().expect("a quota"),
            },
            metrics.hash_verifications.clone(),
        ));
        let lifecycle = Lifecycle::new(
            Arc::clone(&store),
            LifecycleSettings {
                node_id: NODE_ID.into(),
                max_lifetime_days: None,
                credential_key: None,
            },
            Actor::AdminApi,
            AuditTo::Sink(sink.clone()),
        );
        let state = AdminState {
            store: Arc::clone(&store),
            metrics,
            requests: Arc::new(RequestIds::new(NODE_ID)),
            verifier,
            admin_token: Some(Arc::new(SecretString::from(ADMIN_TOKEN))),
            credentials: None,
            log_drops: Arc::new(|| 0),
            audit: sink,
            lifecycle: Arc::new(lifecycle),
        };
        Self {
            router: router(state),
            store,
            writer,
            _dir: dir,
        }
    }

    /// Sends `body` with the admin token, as JSON unless `content_type` says otherwise, and
    /// returns the status and the answer as JSON.
    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(body.into()).expect("a request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("reading the answer");
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, body)
    }

    /// Sends each JSON body to `method path` and asserts its refusal: the status, the documented
    /// error shape with `code`, and a message naming `field`. The store is left as it was.
    async fn refuses_all(&self, method: Method, path: &str, cases: &[(&str, u16, &str, &str)]) {
        let before = all_tokens_in(&*self.store).await;
        for &(body, status, code, field) in cases {
            let (answered, answer) = self
                .send(
                    method.clone(),
                    path,
                    Some("application/json"),
                    body.to_owned(),
                )
                .await;
            assert_eq!(answered.as_u16(), status, "{body}: {answer}");
            assert_documented_error(&answer, code, field);
        }
        assert_eq!(
            all_tokens_in(&*self.store).await,
            before,
            "a refused call changed the store"
        );
    }

    /// A token to patch, created through the router; its id.
    async fn token(&self) -> String {
        let (status, created) = self
            .send(
                Method::POST,
                "/admin/v1/tokens",
                Some("application/json"),
                r#"{"user": "automation-user", "description": "CI token"}"#,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().expect("an id").to_owned()
    }

    async fn finish(self) {
        self.writer.shutdown().await;
    }
}

/// `{"error":{"code","message"}}` and nothing else, with this code and a message naming `field`.
#[track_caller]
fn assert_documented_error(answer: &Value, code: &str, field: &str) {
    let error = answer["error"].as_object().expect("an error object");
    assert_eq!(answer.as_object().map(|o| o.len()), Some(1), "{answer}");
    assert_eq!(error.len(), 2, "{answer}");
    assert_eq!(error["code"], code, "{answer}");
    let message = error["message"].as_str().expect("a message");
    assert!(
        message.contains(field),
        "the message does not name {field}: {message}"
    );
}

#[tokio::test]
async fn bad_json_is_400_malformed_json() {
    let admin = Admin::new().await;
    let id = admin.token().await;
    let cases = [
        (
            r#"{"user": "a", "description": "#,
            400,
            "malformed_json",
            "JSON",
        ),
        (
            r#"{"user": "a", "description": "d"} trailing"#,
            400,
            "malformed_json",
            "JSON",
        ),
        ("", 400, "malformed_json", "JSON"),
        ("[]", 400, "invalid_field", "must be a JSON object"),
    ];
    admin
        .refuses_all(Method::POST, "/admin/v1/tokens", &cases)
        .await;
    admin
        .refuses_all(
            Method::PATCH,
            &format!("/admin/v1/tokens/{id}"),
            &[
                (r#"{"description": "#, 400, "malformed_json", "JSON"),
                (
                    r#"{"description": "d"} trailing"#,
                    400,
                    "malformed_json",
                    "JSON",
                ),
                ("", 400, "malformed_json", "JSON"),
            ],
        )
        .await;
    admin.finish().await;
}

#[tokio::test]
async fn an_unknown_or_mistyped_field_is_400_invalid_field_naming_it() {
    let admin = Admin::new().await;
    let id = admin.token().await;
    admin
        .refuses_all(
            Method::POST,
            "/admin/v1/tokens",
            &[
                (
                    r#"{"user": "a", "description": "d", "colour": "red"}"#,
                    400,
                    "invalid_field",
                    "colour",
                ),
                (
                    r#"{"user": 5, "description": "d"}"#,
                    400,
                    "invalid_field",
                    "user",
                ),
                (r#"{"description": "d"}"#, 400, "invalid_field", "user"),
                (
                    r#"{"user": "a", "description": "d", "allowed_ips": "10.0.0.0/8"}"#,
                    400,
                    "invalid_field",
                    "allowed_ips",
                ),
            ],
        )
        .await;
    admin
        .refuses_all(
            Method::PATCH,
            &format!("/admin/v1/tokens/{id}"),
            &[(r#"{"colour": "red"}"#, 400, "invalid_field", "colour")],
        )
        .await;
    admin.finish().await;
}

#[tokio::test]
async fn a_bad_cidr_is_422_invalid_value_naming_the_entry() {
    let admin = Admin::new().await;
    let id = admin.token().await;
    let cases = [
        (
            r#"{"user": "a", "description": "d", "allowed_ips": ["10.0.0.0/8", "10.0.0.0/33"]}"#,
            422,
            "invalid_value",
            "allowed_ips[1]",
        ),
        (
            r#"{"user": "a", "description": "d", "allowed_ips": ["example.com"]}"#,
            422,
            "invalid_value",
            "allowed_ips[0]",
        ),
        (
            r#"{"user": "a", "description": "d", "allowed_ips": ["10.0.0.0/8", "10.1.2.3/8"]}"#,
            422,
            "invalid_value",
            "allowed_ips[1]: \"10.1.2.3/8\" has host bits set: write the network as 10.0.0.0/8",
        ),
    ];
    admin
        .refuses_all(Method::POST, "/admin/v1/tokens", &cases)
        .await;
    admin
        .refuses_all(
            Method::PATCH,
            &format!("/admin/v1/tokens/{id}"),
            &[(
                r#"{"allowed_ips": ["2001:db8::1/32"]}"#,
                422,
                "invalid_value",
                "2001:db8::/32",
            )],
        )
        .await;
    admin.finish().await;
}

#[tokio::test]
async fn a_body_not_sent_as_json_or_too_large_is_refused_by_its_status() {
    let admin = Admin::new().await;
    for content_type in [Some("text/plain"), None] {
        let (status, answer) = admin
            .send(
                Method::POST,
                "/admin/v1/tokens",
                content_type,
                r#"{"user": "a", "description": "d"}"#,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_documented_error(&answer, "unsupported_media_type", "");
    }
    let padding = " ".repeat(64 * 1024);
    let (status, answer) = admin
        .send(
            Method::POST,
            "/admin/v1/tokens",
            Some("application/json"),
            format!(r#"{{"user": "a", "description": "d"{padding}}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_documented_error(&answer, "payload_too_large", "64 KiB");
    assert!(all_tokens_in(&*admin.store).await.is_empty());
    admin.finish().await;
}
