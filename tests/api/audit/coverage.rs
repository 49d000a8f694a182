//! Coverage levels against a running gateway: one request or admin call for every event type,
//! then exactly the events the level records, in the store and in the audit file, and no
//! secret in any of them (nor in what the query API answers).

use base64::Engine as _;
use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tokengate::audit::{AuditKind, AuditQuery, StoredAuditEvent};
use tokengate::token::Scope;

use super::{ADMIN_TOKEN, assert_no_secret, eventually, get_json};
use crate::auth::basic;
use crate::support::app::{Backend, NODE_ID, Options, TestApp, TokenOpts, spawn_app};

/// A user's Bitbucket credential, set through the admin API: a secret too.
const CREDENTIAL: &str = "BBDC-Mzk0NDEyOTc2MzE4OnRoaXMtaXMtc2VjcmV0";

/// Everything the scenario left that must not hold a secret.
struct Scenario {
    secrets: Vec<String>,
    /// The scenario's events by type, as `full` records them.
    all_kinds: Vec<AuditKind>,
}

/// Creates a token through the admin API; returns its id and secret.
async fn create(app: &TestApp, body: Value) -> (String, String) {
    let body = app.admin_create(body).await;
    let secret = body["token"].as_str().unwrap().to_owned();
    (body["id"].as_str().unwrap().to_owned(), secret)
}

/// A proxied request with `authorization`; returns the status.
async fn proxied(app: &TestApp, method: Method, authorization: &str) -> u16 {
    app.client
        .request(method, format!("{}/rest/api/1.0/projects", app.proxy_url()))
        .header("authorization", authorization)
        .send()
        .await
        .expect("a proxied request")
        .status()
        .as_u16()
}

/// One of each event type (two successes), in this order.
async fn run_scenario(app: &TestApp) -> Scenario {
    let (id, secret) = create(
        app,
        json!({ "user": "automation-user", "description": "CI", "scope": "read-only" }),
    )
    .await;
    assert_eq!(
        proxied(app, Method::GET, &format!("Bearer {secret}")).await,
        200
    );
    assert_eq!(
        proxied(app, Method::POST, &format!("Bearer {secret}")).await,
        403
    );

    let limit = json!({ "user": "bot", "description": "limited", "rate_limit": { "requests": 1, "period_seconds": 3600 } });
    let (_, limited) = create(app, limit).await;
    assert_eq!(
        proxied(app, Method::GET, &format!("Bearer {limited}")).await,
        200
    );
    assert_eq!(
        proxied(app, Method::GET, &format!("Bearer {limited}")).await,
        429
    );

    let (_, fenced) = create(
        app,
        json!({ "user": "bot", "description": "fenced", "allowed_ips": ["10.0.0.0/8"] }),
    )
    .await;
    assert_eq!(
        proxied(app, Method::GET, &format!("Bearer {fenced}")).await,
        401
    );

    let past = TokenOpts {
        created_at: Utc::now() - TimeDelta::days(10),
        expires_at: Some(Utc::now() - TimeDelta::days(1)),
        ..TokenOpts::default()
    };
    let (_, expired) = app.create_token("old-user", Scope::ReadOnly, past).await;
    assert_eq!(
        proxied(app, Method::GET, &format!("Bearer {expired}")).await,
        401
    );

    let (_, unknown) = tokengate::token::generate();
    let unknown = secrecy::ExposeSecret::expose_secret(&unknown).to_owned();
    app.track_secret(&unknown);
    assert_eq!(
        proxied(app, Method::GET, &format!("Bearer {unknown}")).await,
        401
    );

    let password = base64::engine::general_purpose::STANDARD.encode("alice:hunter2-password");
    assert_eq!(
        proxied(app, Method::GET, &format!("Basic {password}")).await,
        200
    );

    let path = format!("/admin/v1/tokens/{id}");
    let (status, text, _) = app
        .admin_text(
            Method::PATCH,
            &path,
            Some(json!({ "description": "CI, renamed" })),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, text, _) = app.admin_text(Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{text}");
    let body = json!({ "credential": CREDENTIAL });
    let (status, text, _) = app
        .admin_text(Method::PUT, "/admin/v1/users/alice/credential", Some(body))
        .await;
    assert_eq!(status, 204, "{text}");

    use AuditKind::*;
    Scenario {
        secrets: vec![
            secret,
            limited,
            fenced,
            expired,
            unknown,
            CREDENTIAL.to_owned(),
            "hunter2-password".to_owned(),
            password,
        ],
        all_kinds: vec![
            TokenCreated,
            AuthSucceeded,
            ScopeDenied,
            TokenCreated,
            AuthSucceeded,
            RateLimited,
            TokenCreated,
            IpDenied,
            ExpiredTokenUsed,
            AuthFailed,
            Fallback,
            TokenChanged,
            TokenRevoked,
            CredentialSet,
        ],
    }
}

async fn stored(app: &TestApp) -> Vec<StoredAuditEvent> {
    let mut all = app
        .store()
        .query_audit(&AuditQuery {
            limit: 1_000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    all.reverse();
    all
}

fn sorted(mut kinds: Vec<AuditKind>) -> Vec<&'static str> {
    kinds.sort_by_key(|k| k.as_str());
    kinds.into_iter().map(AuditKind::as_str).collect()
}

/// Runs the scenario at `coverage`, stops the gateway (which writes out its queue), and
/// returns what was stored, the audit file's lines and the scenario.
async fn at_coverage(coverage: &str) -> (Vec<StoredAuditEvent>, Vec<Value>, Scenario) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit/tokengate-audit.log");
    let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let options = Options::new(Backend::Sqlite)
        .set("admin.token", ADMIN_TOKEN)
        .set("audit.coverage", coverage)
        .set("audit.file", file.display().to_string())
        .set("upstream.credential_key", key.as_str());
    let mut app = spawn_app(options).await;
    let scenario = run_scenario(&app).await;
    if coverage == "full" {
        // Written while the gateway runs, not only at shutdown.
        let expected = scenario.all_kinds.len();
        eventually("every event in the store", async || {
            (stored(&app).await.len() == expected).then_some(())
        })
        .await;
        the_query_api_shows_no_secret(&app, &scenario.secrets).await;
    }
    app.sigterm();
    assert!(app.wait_for_exit().await.success());
    let events = stored(&app).await;
    let mut scenario = scenario;
    // The stored hashes of the tokens are secrets as well.
    for id in events.iter().filter_map(|e| e.event.token_id.as_deref()) {
        let id = tokengate::token::TokenId::parse(id).expect("a token id");
        if let Some(token) = app.store().get_token(&id).await.unwrap() {
            scenario.secrets.push(token.secret_hash);
        }
    }
    let lines = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (events, lines, scenario)
}

async fn the_query_api_shows_no_secret(app: &TestApp, secrets: &[String]) {
    let page = get_json(app, "/admin/v1/audit?limit=1000").await;
    assert_no_secret("the audit API's page", &page.to_string(), secrets);
    for format in ["ndjson", "csv"] {
        let (status, text, _) = app
            .admin_text(
                Method::GET,
                &format!("/admin/v1/audit?format={format}"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_no_secret(format, &text, secrets);
    }
}

#[tokio::test]
async fn off_records_nothing() {
    let (events, lines, _) = at_coverage("off").await;
    assert_eq!(events, []);
    assert_eq!(lines, Vec::<Value>::new());
}

#[tokio::test]
async fn base_records_exactly_the_token_lifecycle() {
    let (events, lines, scenario) = at_coverage("base").await;
    let expected: Vec<_> = scenario
        .all_kinds
        .into_iter()
        .filter(|k| k.is_lifecycle())
        .collect();
    assert_eq!(
        sorted(events.iter().map(|e| e.event.kind).collect()),
        sorted(expected.clone())
    );
    assert_eq!(lines.len(), expected.len());
    assert!(lines.iter().all(|l| l["auditType"]["level"] == "BASE"));
    for e in &events {
        assert_eq!(e.event.actor.as_deref(), Some("admin-api"));
        assert_eq!(e.event.node_id, NODE_ID);
    }
}

#[tokio::test]
async fn full_records_every_decision_too_and_no_secret_anywhere() {
    let (events, lines, scenario) = at_coverage("full").await;
    assert_eq!(
        sorted(events.iter().map(|e| e.event.kind).collect()),
        sorted(scenario.all_kinds.clone())
    );
    // The events of requests carry the request's facts.
    for e in events
        .iter()
        .map(|e| &e.event)
        .filter(|e| !e.kind.is_lifecycle())
    {
        assert_eq!(e.client_ip, Some("127.0.0.1".parse().unwrap()), "{e:?}");
        assert_eq!(e.path.as_deref(), Some("/rest/api/1.0/projects"), "{e:?}");
        assert!(
            e.request_id
                .as_deref()
                .is_some_and(|id| id.starts_with(&format!("@{NODE_ID}x"))),
            "{e:?}"
        );
    }
    // Each decision's user, token and details, in the scenario's order.
    let decisions: Vec<_> = events
        .iter()
        .map(|e| &e.event)
        .filter(|e| !e.kind.is_lifecycle())
        .map(|e| {
            (
                e.kind,
                e.outcome.as_str(),
                e.user.as_deref(),
                e.token_id.is_some(),
                e.attributes.clone().into_value(),
            )
        })
        .collect();
    use AuditKind::*;
    let user = Some("automation-user");
    assert_eq!(
        decisions,
        [
            (
                AuthSucceeded,
                "allowed",
                user,
                true,
                json!({ "scope": "read-only" })
            ),
            (
                ScopeDenied,
                "denied",
                user,
                true,
                json!({ "scope": "read-only" })
            ),
            (
                AuthSucceeded,
                "allowed",
                Some("bot"),
                true,
                json!({ "scope": "read-only" })
            ),
            (
                RateLimited,
                "denied",
                Some("bot"),
                true,
                json!({ "limit": "1/1h" })
            ),
            (
                IpDenied,
                "denied",
                Some("bot"),
                true,
                json!({
                    "client_ip": "127.0.0.1",
                    "allow_list": "token",
                    "allowed_ips": ["10.0.0.0/8"]
                })
            ),
            (
                ExpiredTokenUsed,
                "denied",
                Some("old-user"),
                true,
                json!({ "reason": "expired" })
            ),
            (
                AuthFailed,
                "denied",
                None,
                false,
                json!({ "reason": "unknown_id" })
            ),
            (Fallback, "passed_on", Some("alice"), false, json!({})),
        ]
    );

    // The audit file has the same events in Bitbucket's shape.
    assert_eq!(lines.len(), scenario.all_kinds.len());
    let mut actions: Vec<_> = lines
        .iter()
        .map(|l| l["auditType"]["actionI18nKey"].as_str().unwrap().to_owned())
        .collect();
    actions.sort();
    let mut expected: Vec<_> = scenario
        .all_kinds
        .iter()
        .map(|k| format!("tokengate.audit.action.{}", k.as_str()))
        .collect();
    expected.sort();
    assert_eq!(actions, expected);
    assert!(lines.iter().all(|l| l["node"] == NODE_ID
        && l["version"] == "1.0"
        && l["timestamp"]["epochSecond"].is_i64()));

    let everything = serde_json::to_string(&events).unwrap();
    assert_no_secret("the stored events", &everything, &scenario.secrets);
    let file = serde_json::to_string(&lines).unwrap();
    assert_no_secret("the audit file", &file, &scenario.secrets);
}

/// A client can present a Basic user name holding U+0000, which PostgreSQL text cannot store.
/// Its fallback is audited (the character kept as U+FFFD) and the events around it are stored
/// too: one request cannot make the writer's batches fail, nor the spill file's replays.
#[tokio::test]
async fn a_nul_in_a_presented_user_name_cannot_poison_the_audit_trail() {
    let app = spawn_app(Options::new(Backend::Postgres).set("admin.token", ADMIN_TOKEN)).await;
    for user in ["alice", "ev\0il", "bob"] {
        assert_eq!(
            proxied(&app, Method::GET, &basic(user, "a-password")).await,
            200
        );
    }
    let events = eventually("the three fallbacks in the store", async || {
        let events = stored(&app).await;
        (events.len() == 3).then_some(events)
    })
    .await;
    let users: Vec<_> = events
        .iter()
        .map(|e| (e.event.kind, e.event.user.as_deref()))
        .collect();
    assert_eq!(
        users,
        [
            (AuditKind::Fallback, Some("alice")),
            (AuditKind::Fallback, Some("ev\u{FFFD}il")),
            (AuditKind::Fallback, Some("bob")),
        ]
    );
}
