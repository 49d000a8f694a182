use std::path::Path;

use super::*;
use crate::audit::AuditKind;
use crate::audit::test_store::{Flaky, event};

fn config(dir: &Path, coverage: Coverage) -> AuditConfig {
    AuditConfig {
        coverage,
        retention_days: 36_500,
        max_rows: None,
        file: None,
        queue_capacity: 4_096,
        spill_file: dir.join("spill/audit-spill.ndjson"),
    }
}

/// Every `AuditKind` once, at times that sort them in their order.
fn one_of_each_kind() -> Vec<AuditEvent> {
    AuditKind::ALL
        .iter()
        .enumerate()
        .map(|(i, &kind)| AuditEvent { kind, ..event(i) })
        .collect()
}

fn floored(events: impl IntoIterator<Item = AuditEvent>) -> Vec<AuditEvent> {
    events
        .into_iter()
        .map(|e| AuditEvent {
            time: chrono::DateTime::from_timestamp_millis(e.time.timestamp_millis()).unwrap(),
            ..e
        })
        .collect()
}

/// Polls `check` until it holds, failing after a generous bound.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn each_coverage_level_stores_exactly_its_events() {
    for coverage in [
        Coverage::Off,
        Coverage::Base,
        Coverage::Advanced,
        Coverage::Full,
    ] {
        let store = Flaky::new().await;
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let (sink, writer) = start(
            store.clone(),
            &config(dir.path(), coverage),
            "sys".into(),
            Arc::clone(&metrics),
        );
        let events = one_of_each_kind();
        for e in &events {
            sink.record(e.clone());
        }
        writer.shutdown().await;
        let expected: Vec<_> = events
            .into_iter()
            .filter(|e| coverage.records(e.kind))
            .collect();
        assert_eq!(store.all().await, floored(expected.clone()), "{coverage:?}");
        assert_eq!(metrics.audit_written.get(), expected.len() as u64);
        assert_eq!(metrics.audit_dropped.get() + metrics.audit_spilled.get(), 0);
    }
}

#[tokio::test]
async fn a_store_outage_spills_and_the_spill_is_replayed_once_it_answers() {
    let store = Flaky::new().await;
    store.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), Coverage::Full);
    let metrics = Arc::new(Metrics::new());
    let (sink, writer) = start(store.clone(), &config, "sys".into(), Arc::clone(&metrics));
    let events: Vec<_> = (0..1_200).map(event).collect();
    for e in &events {
        sink.record(e.clone());
    }
    eventually("the events to be spilled", async || {
        metrics.audit_spilled.get() == 1_200
    })
    .await;
    let spilled = std::fs::read_to_string(&config.spill_file).unwrap();
    assert_eq!(spilled.lines().count(), 1_200);
    assert!(store.all().await.is_empty());

    store.set_down(false);
    eventually("the spill to be replayed", async || {
        metrics.audit_written.get() == 1_200
    })
    .await;
    eventually("the spill file to go", async || !config.spill_file.exists()).await;
    sink.record(event(9_999));
    writer.shutdown().await;
    let mut expected = events;
    expected.push(event(9_999));
    assert_eq!(store.all().await, floored(expected));
    assert_eq!(metrics.audit_dropped.get(), 0);
}

#[tokio::test]
async fn shutdown_spills_what_the_store_does_not_take_and_the_next_start_replays_it() {
    let store = Flaky::new().await;
    store.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), Coverage::Full);
    let metrics = Arc::new(Metrics::new());
    let (sink, writer) = start(store.clone(), &config, "sys".into(), Arc::clone(&metrics));
    let events: Vec<_> = (0..50).map(event).collect();
    for e in &events {
        sink.record(e.clone());
    }
    writer.shutdown().await;
    assert_eq!(metrics.audit_spilled.get(), 50);
    assert!(config.spill_file.exists());

    store.set_down(false);
    let metrics = Arc::new(Metrics::new());
    let (_sink, writer) = start(store.clone(), &config, "sys".into(), Arc::clone(&metrics));
    eventually("the earlier run's spill to be replayed", async || {
        metrics.audit_written.get() == 50
    })
    .await;
    writer.shutdown().await;
    assert_eq!(store.all().await, floored(events));
    assert!(!config.spill_file.exists());
}

#[tokio::test]
async fn with_the_store_down_and_the_spill_unwritable_a_full_queue_drops_and_counts() {
    let store = Flaky::new().await;
    store.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    // The spill file's directory is a file: nothing can be written there.
    std::fs::write(dir.path().join("spill"), "").unwrap();
    let config = AuditConfig {
        queue_capacity: 16,
        ..config(dir.path(), Coverage::Full)
    };
    let metrics = Arc::new(Metrics::new());
    let (sink, writer) = start(store.clone(), &config, "sys".into(), Arc::clone(&metrics));
    // The writer has not run yet (a current-thread runtime): 16 fit in the queue.
    for i in 0..100 {
        sink.record(event(i));
    }
    assert_eq!(metrics.audit_dropped.get(), 84);
    writer.shutdown().await;
    // Everything recorded was either stored, spilled or counted as dropped: here, dropped.
    assert_eq!(metrics.audit_written.get() + metrics.audit_spilled.get(), 0);
    assert_eq!(metrics.audit_dropped.get(), 100);
}

#[tokio::test]
async fn every_recorded_event_also_goes_to_the_audit_file() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit/tokengate-audit.log");
    let config = AuditConfig {
        file: Some(file.clone()),
        ..config(dir.path(), Coverage::Base)
    };
    let (sink, writer) = start(
        store.clone(),
        &config,
        "http://bitbucket:7990/".into(),
        Arc::new(Metrics::new()),
    );
    for e in one_of_each_kind() {
        sink.record(e);
    }
    writer.shutdown().await;
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<_> = lines
        .iter()
        .map(|l| l["auditType"]["actionI18nKey"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "tokengate.audit.action.token_created",
            "tokengate.audit.action.token_changed",
            "tokengate.audit.action.token_revoked",
            "tokengate.audit.action.credential_set"
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l["system"] == "http://bitbucket:7990/" && l["version"] == "1.0")
    );
}
