//! Authentication through the real gateway, on both store backends: every row of the
//! decision table with its status, what Bitbucket saw, and the exact text of its log line after
//! the fixed prefix. Every case ends with [`TestApp::finish`], which also proves that no secret
//! the case made reached the log files or the upstream.
//!
//! Each case is an `async fn case(backend)`; [`both_backends!`](crate::support::both_backends) makes
//! `auth::<area>::<case>::sqlite` and `…::postgres` tests of it.

mod decision;
mod identity;
mod method_override;
mod misuse;
mod stray;
mod tokens;

pub(crate) use tokens::HASHES;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokengate::audit::{AuditKind, AuditQuery};

use crate::support::app::{TestApp, test_offset};
use crate::support::eventually;
use crate::support::log::LogLine;
use crate::support::upstream::Seen;

/// A REST path under the default protected paths.
pub(crate) const REST: &str = "/rest/api/1.0/projects";
/// The decision lines' logger.
const AUTH_LOGGER: &str = "d.r.a.p.auth.ApiTokenAuthSharedBase";
/// The rate-limit lines' logger.
pub(crate) const RATE_LOGGER: &str = "d.r.a.p.auth.ApiTokenRateLimiter";

const BEARER_INVALID: &str = r#"Bearer realm="tokengate", error="invalid_token""#;
const BEARER_SCOPE: &str = r#"Bearer realm="tokengate", error="insufficient_scope""#;
const BASIC_REALM: &str = r#"Basic realm="tokengate""#;

/// A gateway answer and what the upstream received for that request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: HeaderMap,
    /// `X-AREQUESTID`.
    pub(crate) id: String,
    body: String,
    /// The upstream's record of this request, if it was forwarded.
    seen: Option<Seen>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// Forwarded as `user`: 200, no `Authorization`, the identity header set once.
    pub(crate) fn assert_forwarded_as(&self, user: &str) {
        assert_eq!(self.status, 200, "{self:?}");
        let seen = self.seen.as_ref().expect("forwarded");
        assert_eq!(
            seen.header_values("authorization"),
            Vec::<String>::new(),
            "a token went upstream"
        );
        assert_eq!(seen.header_values("x-forwarded-user"), [user.to_owned()]);
    }

    /// Forwarded untouched: 200, the same `Authorization` (if any), no identity header.
    fn assert_forwarded_untouched(&self, authorization: Option<&str>) {
        assert_eq!(self.status, 200, "{self:?}");
        let seen = self.seen.as_ref().expect("forwarded");
        assert_eq!(seen.header("authorization").as_deref(), authorization);
        assert_eq!(seen.header_values("x-forwarded-user"), Vec::<String>::new());
    }

    /// Refused with `status` in Bitbucket's error shape; the upstream saw nothing.
    pub(crate) fn assert_refused(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.seen.is_none(),
            "a refused request reached the upstream"
        );
        let value: serde_json::Value = serde_json::from_str(&self.body).expect("a JSON error body");
        assert!(
            value["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert_eq!(value["errors"][0]["context"], serde_json::Value::Null);
        assert_eq!(value["errors"][0]["exceptionName"], serde_json::Value::Null);
    }
}

/// Sends `method target` with an optional `Authorization` value and extra headers.
pub(crate) async fn call(
    app: &TestApp,
    method: &str,
    target: &str,
    authorization: Option<&str>,
    extra: &[(&str, &str)],
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = app
        .client
        .request(method, format!("{}{target}", app.proxy_url()));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .expect("sending a request to the gateway");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let id = headers
        .get("x-arequestid")
        .expect("every response carries X-AREQUESTID")
        .to_str()
        .expect("ASCII")
        .to_owned();
    let body = response.text().await.expect("reading the body");
    let seen = app.upstream.request_with_id(&id);
    Reply {
        status,
        headers,
        id,
        body,
        seen,
    }
}

/// `GET` on [`REST`] with this `Authorization` value.
pub(crate) async fn get(app: &TestApp, authorization: &str) -> Reply {
    call(app, "GET", REST, Some(authorization), &[]).await
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A Basic `Authorization` value.
pub(crate) fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Waits for the request's line and checks its logger and its message exactly.
pub(crate) async fn assert_line(
    app: &TestApp,
    reply: &Reply,
    logger: &str,
    message: &str,
) -> LogLine {
    let line = app.line_for(&reply.id).await;
    assert_eq!(line.level, "INFO");
    assert_eq!(line.logger, logger);
    assert_eq!(line.message, message);
    line
}

/// Asserts the audit event the gateway wrote for `reply`'s request (found by its request id,
/// once the writer has stored it): its type and attributes.
async fn assert_audited(app: &TestApp, reply: &Reply, kind: AuditKind, attributes: Value) {
    let query = AuditQuery {
        limit: 1_000,
        ..AuditQuery::default()
    };
    let event = eventually(
        &format!("the audit event of request {}", reply.id),
        async || {
            let events = app.store().query_audit(&query).await.unwrap();
            events
                .into_iter()
                .find(|e| e.event.request_id.as_deref() == Some(reply.id.as_str()))
        },
    )
    .await;
    assert_eq!(
        (event.event.kind, &event.event.attributes.into_value()),
        (kind, &attributes)
    );
}

/// The decision line text of each row, as Bitbucket words it.
pub(crate) mod says {
    use super::{DateTime, Utc, test_offset};

    /// `" and basic auth with password or personal access token is disabled"` when fallback is off.
    fn clause(fallback: bool) -> &'static str {
        if fallback {
            ""
        } else {
            " and basic auth with password or personal access token is disabled"
        }
    }

    /// `Jan 6, 2021 2:14:46 PM` in the gateway's local time.
    pub(super) fn created_on(at: DateTime<Utc>) -> String {
        at.with_timezone(&test_offset())
            .format("%b %-d, %Y %-I:%M:%S %p")
            .to_string()
    }

    pub(super) fn success(
        description: &str,
        scope: &str,
        user: &str,
        created: DateTime<Utc>,
        path: &str,
    ) -> String {
        format!(
            "Found a matching token \"{description}\" with {scope} scope and authenticated user {user}. Token was created on {}. REST endpoint: {path}",
            created_on(created)
        )
    }

    pub(super) fn no_valid_token(user: &str, fallback: bool, path: &str) -> String {
        format!(
            "Token verification for user {user} failed: No valid API token was provided{}. REST endpoint: {path}",
            clause(fallback)
        )
    }

    pub(super) fn ip_not_allowed(user: &str, ip: &str, fallback: bool, path: &str) -> String {
        format!(
            "Token verification for user {user} failed: IP address {ip} of request is not allowed to access the REST API{}. REST endpoint: {path}",
            clause(fallback)
        )
    }

    pub(super) fn fallback(user: &str, path: &str) -> String {
        format!(
            "User {user} tried to authenticate with an invalid token or regular password. Passing the request further to the default authenticator. REST endpoint: {path}"
        )
    }

    pub(super) fn scope_denied(user: &str, method: &str, path: &str) -> String {
        format!(
            "Token verification for {user} user failed: The token scope is read-only and only covers GET, HEAD and OPTIONS requests. Request method type was {method}. REST endpoint: {path}"
        )
    }

    pub(crate) fn rate_limited(user: &str, limit: &str) -> String {
        format!("User {user} has been rate limited. The API token allows executing {limit}.")
    }

    #[test]
    fn creation_time_reads_like_the_seed() {
        let at = DateTime::parse_from_rfc3339("2021-01-06T08:44:46Z")
            .unwrap()
            .to_utc();
        assert_eq!(created_on(at), "Jan 6, 2021 2:14:46 PM");
    }
}
