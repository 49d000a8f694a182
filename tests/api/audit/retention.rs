//! Retention on both backends: only what is older than `retention_days` goes, `max_rows`
//! keeps the newest, many batches are purged in one run, and the job runs once at start.

use crate::support::both_backends;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use tokengate::audit::{
    self, AuditEvent, AuditKind, AuditOutcome, AuditQuery, AuditSettings, Coverage,
};
use tokengate::metrics::Metrics;
use tokengate::store::{AuditStore, Store};

use super::eventually;

fn config(retention_days: u32, max_rows: Option<u64>, dir: &std::path::Path) -> AuditSettings {
    AuditSettings {
        coverage: Coverage::Full,
        retention_days,
        max_rows,
        file: None,
        queue_capacity: 1_024,
        spill_file: dir.join("audit-spill.ndjson"),
    }
}

fn event(time: DateTime<Utc>, label: &str) -> AuditEvent {
    AuditEvent {
        time,
        kind: AuditKind::TokenCreated,
        outcome: AuditOutcome::Allowed,
        user: Some("alice".into()),
        token_id: None,
        client_ip: None,
        method: None,
        path: Some(label.into()),
        request_id: None,
        node_id: "N".into(),
        actor: Some("cli".to_owned()),
        attributes: json!({}).into(),
    }
}

async fn labels(store: &dyn Store) -> Vec<String> {
    let all = store
        .query_audit(&AuditQuery {
            limit: 10_000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let mut labels: Vec<_> = all
        .into_iter()
        .map(|e| e.event.path.unwrap().into())
        .collect();
    labels.sort();
    labels
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

async fn only_what_is_older_goes_and_max_rows_keeps_the_newest(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let now = now();
    let days = |d: i64| now - TimeDelta::days(d);
    store
        .insert_audit(&[
            event(days(400), "a-400d"),
            event(days(91), "b-91d"),
            event(days(90) - TimeDelta::milliseconds(1), "c-90d-and-a-bit"),
            event(days(90) + TimeDelta::hours(1), "d-just-inside"),
            event(days(10), "e-10d"),
            event(days(2), "f-2d"),
            event(now, "g-now"),
        ])
        .await
        .unwrap();
    assert_eq!(
        audit::purge(&*store, &config(90, None, dir.path()), now)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        labels(&*store).await,
        ["d-just-inside", "e-10d", "f-2d", "g-now"]
    );
    assert_eq!(
        audit::purge(&*store, &config(90, None, dir.path()), now)
            .await
            .unwrap(),
        0
    );

    assert_eq!(
        audit::purge(&*store, &config(90, Some(2), dir.path()), now)
            .await
            .unwrap(),
        2
    );
    assert_eq!(labels(&*store).await, ["f-2d", "g-now"]);
    assert_eq!(
        audit::purge(&*store, &config(1, Some(2), dir.path()), now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(labels(&*store).await, ["g-now"]);
}

async fn a_large_backlog_goes_in_many_batches(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let now = now();
    let old: Vec<_> = (0..2_500)
        .map(|i| {
            event(
                now - TimeDelta::days(200) + TimeDelta::seconds(i),
                &format!("old-{i:04}"),
            )
        })
        .collect();
    store.insert_audit(&old).await.unwrap();
    store.insert_audit(&[event(now, "new")]).await.unwrap();
    assert_eq!(
        audit::purge(&*store, &config(30, None, dir.path()), now)
            .await
            .unwrap(),
        2_500
    );
    assert_eq!(labels(&*store).await, ["new"]);
}

async fn the_job_purges_once_at_start(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let now = now();
    store
        .insert_audit(&[event(now - TimeDelta::days(8), "old"), event(now, "new")])
        .await
        .unwrap();
    let (_sink, writer) = audit::start(
        Arc::clone(&store) as Arc<dyn AuditStore>,
        &config(7, None, dir.path()),
        "sys".into(),
        Arc::new(Metrics::new()),
    );
    eventually("the old event to be purged", async || {
        (labels(&*store).await == ["new"]).then_some(())
    })
    .await;
    writer.shutdown().await;
}

both_backends!(store:
    only_what_is_older_goes_and_max_rows_keeps_the_newest,
    a_large_backlog_goes_in_many_batches,
    the_job_purges_once_at_start,
);
