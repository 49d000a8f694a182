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

use crate::support::app::{ADMIN_TOKEN, TestApp};
use crate::support::eventually;

/// `GET path` answered 200 with JSON.
async fn get_json(app: &TestApp, path: &str) -> Value {
    let (status, text, _) = app.admin_text(Method::GET, path, None).await;
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
