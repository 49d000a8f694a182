//! Expiry notices: a webhook receiver the test runs gets exactly one notice per token and
//! warning window, even when its first delivery fails, the gateway restarts, and two gateways
//! check the same store at once. Tokens outside every window, revoked or without an expiry are
//! never announced; each delivered notice is audited.

use chrono::{Duration, Utc};
use serde_json::Value;
use tokengate::audit::{AuditKind, AuditQuery};
use tokengate::store::Store;
use tokengate::token::Scope;

use crate::support::app::{Backend, Options, TestApp, TokenOpts, fresh_database, spawn_app};
use crate::support::both_backends;
use crate::support::eventually;
use crate::support::webhook::Webhook;

both_backends!(each_token_is_announced_once_per_window_across_failures_restarts_and_replicas);

fn gateway(backend: Backend, url: &str, hook: &Webhook) -> Options {
    Options::new(backend)
        .set("database.url", url)
        .set("notify.webhook_url", hook.url())
        .set(
            "notify.expiry_warnings",
            toml::Value::Array(vec!["7d".into(), "1d".into()]),
        )
        .set("notify.check_interval", "1s")
}

async fn token(
    app: &TestApp,
    store: &dyn Store,
    description: &str,
    left: Option<Duration>,
) -> String {
    let opts = TokenOpts {
        description: description.to_owned(),
        expires_at: left.map(|d| Utc::now() + d),
        ..TokenOpts::default()
    };
    let (id, _) = app
        .create_token_in(store, "alice", Scope::ReadOnly, opts)
        .await;
    id.as_str().to_owned()
}

/// Waits until the receiver accepted a notice for `id`, and returns it.
async fn notice_of(hook: &Webhook, id: &str) -> Value {
    eventually(&format!("the notice of {id}"), async || {
        hook.accepted().into_iter().find(|n| n["token"]["id"] == id)
    })
    .await
}

fn count(hook: &Webhook, id: &str) -> usize {
    hook.accepted()
        .iter()
        .filter(|n| n["token"]["id"] == id)
        .count()
}

async fn each_token_is_announced_once_per_window_across_failures_restarts_and_replicas(
    backend: Backend,
) {
    let (url, _db_dir) = fresh_database(backend).await;
    let store = tokengate::store::connect(&url, 2).await.unwrap();
    let hook = Webhook::start(1).await;
    let first = spawn_app(gateway(backend, &url, &hook)).await;

    let week = token(&first, &*store, "CI pipeline", Some(Duration::days(3))).await;
    let day = token(&first, &*store, "nightly", Some(Duration::hours(12))).await;
    let far = token(&first, &*store, "far", Some(Duration::days(30))).await;
    let never = token(&first, &*store, "never", None).await;
    let revoked = token(&first, &*store, "revoked", Some(Duration::days(2))).await;
    store
        .revoke_token(
            &tokengate::token::TokenId::parse(&revoked).unwrap(),
            Utc::now(),
        )
        .await
        .unwrap();

    let notice = notice_of(&hook, &week).await;
    assert_eq!(notice["event"], "token_expiring");
    assert_eq!(notice["days_left"], 3);
    assert_eq!(notice["token"]["user"], "alice");
    assert_eq!(notice["token"]["description"], "CI pipeline");
    assert!(notice["token"]["expires_at"].is_string());
    assert!(
        notice["text"]
            .as_str()
            .unwrap()
            .contains("expires in 3 days"),
        "{notice}"
    );
    let notice = notice_of(&hook, &day).await;
    assert_eq!(notice["days_left"], 1);
    assert_eq!(
        hook.refused(),
        1,
        "the first delivery failed and was retried"
    );

    // A restart, then two gateways on the store at once: nothing is sent again. Each later
    // token's notice shows that checks ran after the earlier notices were sent.
    first.finish().await;
    let second = spawn_app(gateway(backend, &url, &hook)).await;
    let third = spawn_app(gateway(backend, &url, &hook)).await;
    let later = token(&second, &*store, "later", Some(Duration::days(2))).await;
    notice_of(&hook, &later).await;
    let last = token(&third, &*store, "last", Some(Duration::hours(20))).await;
    notice_of(&hook, &last).await;
    for id in [&week, &day, &later, &last] {
        assert_eq!(
            count(&hook, id),
            1,
            "notices of {id}: {:?}",
            hook.accepted()
        );
    }
    for id in [&far, &never, &revoked] {
        assert_eq!(count(&hook, id), 0, "{id} is outside every window");
    }

    // Each delivery is audited.
    let audited = eventually("the notices' audit events", async || {
        let events = store
            .query_audit(&AuditQuery {
                kind: Some(AuditKind::TokenExpiryNotified),
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        (events.len() >= 4).then_some(events)
    })
    .await;
    assert_eq!(audited.len(), 4, "{audited:?}");
    let week_event = audited
        .iter()
        .find(|e| e.event.token_id.as_deref() == Some(week.as_str()))
        .expect("the week notice is audited");
    assert_eq!(week_event.event.attributes.to_value()["window"], "7d");
    let attempts: u64 = audited
        .iter()
        .map(|e| e.event.attributes.to_value()["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(
        attempts, 5,
        "four notices, one of them sent twice: {audited:?}"
    );
    third.finish().await;
    second.finish().await;
}

/// An `https://` webhook (Slack's and Teams' are) is verified against the system's CA
/// certificates (`SSL_CERT_FILE` here) and reached over TLS; one the system does not trust
/// gets nothing, and the gateway says why without naming the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_is_verified_and_reached_over_tls() {
    let ca = crate::support::certs::TestCa::new("webhook test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let hook = Webhook::start_tls(&ca.issue(7, 2099)).await;
    assert!(hook.url().starts_with("https://"));
    let (url, _db_dir) = fresh_database(Backend::Sqlite).await;
    let store = tokengate::store::connect(&url, 2).await.unwrap();
    let app = spawn_app(
        gateway(Backend::Sqlite, &url, &hook).env("SSL_CERT_FILE", &ca_file.display().to_string()),
    )
    .await;
    let id = token(&app, &*store, "over TLS", Some(Duration::days(2))).await;
    assert_eq!(notice_of(&hook, &id).await["days_left"], 2);
    app.finish().await;

    // Trusting another CA only: the certificate does not verify, nothing is delivered.
    let stranger = crate::support::certs::TestCa::new("some other CA");
    std::fs::write(&ca_file, stranger.pem()).unwrap();
    let app = spawn_app(
        gateway(Backend::Sqlite, &url, &hook).env("SSL_CERT_FILE", &ca_file.display().to_string()),
    )
    .await;
    let refused = token(&app, &*store, "untrusted", Some(Duration::days(2))).await;
    let line = app
        .wait_for_line("the failed delivery", |l| {
            l.message.contains("an expiry notice was not delivered")
        })
        .await;
    assert!(!line.message.contains(hook.url()), "{line:?}");
    assert_eq!(count(&hook, &refused), 0);
    app.finish().await;
}
