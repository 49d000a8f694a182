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
use serde_json::Value;
use tokengate::audit::{AuditKind, AuditQuery};

use crate::support::app::{Reply, TestApp, test_offset};
use crate::support::eventually;
use crate::support::log::LogLine;

/// The decision lines' logger.
const AUTH_LOGGER: &str = "d.r.a.p.auth.ApiTokenAuthSharedBase";
/// The rate-limit lines' logger.
pub(crate) const RATE_LOGGER: &str = "d.r.a.p.auth.ApiTokenRateLimiter";

const BEARER_INVALID: &str = r#"Bearer realm="tokengate", error="invalid_token""#;
const BEARER_SCOPE: &str = r#"Bearer realm="tokengate", error="insufficient_scope""#;
const BASIC_REALM: &str = r#"Basic realm="tokengate""#;

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
