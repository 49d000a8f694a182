//! The audit trail end to end: coverage levels against a running gateway, retention, the spill
//! file across a real PostgreSQL outage, the query API with its exports, and that no secret
//! ever reaches an event.

mod cluster;
mod coverage;
mod denials;
mod filters;
mod query;
mod replay;
mod retention;
mod spill;

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;
use tokengate::audit::{self, AuditEvent, AuditQuery, AuditSettings, AuditSink, AuditWriter};
use tokengate::metrics::Metrics;
use tokengate::store::{AuditStore, Store};

use crate::support::app::TestApp;
use crate::support::eventually;

/// The admin token of every gateway here.
const ADMIN_TOKEN: &str = "audit-admin-token-for-the-tests";

/// An admin call with the admin token: status, body text, content type.
async fn admin(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String, String) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.admin_url()))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("an admin call");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        response.text().await.expect("reading the answer"),
        content_type,
    )
}

/// `GET path` answered 200 with JSON.
async fn get_json(app: &TestApp, path: &str) -> Value {
    let (status, text, _) = admin(app, Method::GET, path, None).await;
    assert_eq!(status, 200, "GET {path}: {text}");
    serde_json::from_str(&text).expect("a JSON answer")
}

/// Starts an audit writer of `config` into `store`, with metrics of its own.
fn start_writer(
    store: &Arc<dyn Store>,
    config: &AuditSettings,
) -> (AuditSink, AuditWriter, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let (sink, writer) = audit::start(
        Arc::clone(store) as Arc<dyn AuditStore>,
        config,
        "sys".into(),
        Arc::clone(&metrics),
    );
    (sink, writer, metrics)
}

/// Every event in `store`, oldest first, read page by page.
async fn stored_events(store: &dyn Store) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    let mut query = AuditQuery {
        limit: 1_000,
        ..AuditQuery::default()
    };
    loop {
        let page = store.query_audit(&query).await.unwrap();
        let Some(last) = page.last() else { break };
        query.after = Some((last.event.time, last.id));
        out.extend(page.into_iter().map(|e| e.event));
    }
    out.reverse();
    out
}

/// Asserts that `text` holds none of `secrets`, whole or by their secret part.
#[track_caller]
fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in {what}");
        // `tgt_{id}_{secret}`: the part after the public id must never show.
        if let Some(tail) = secret
            .strip_prefix("tgt_")
            .and_then(|s| s.split_once('_'))
            .map(|(_, tail)| tail)
        {
            assert!(
                !text.contains(tail),
                "the secret part of a token is in {what}"
            );
        }
    }
}
