//! The spill file across a real PostgreSQL outage: with the database stopped, events go to the
//! spill file; once it runs again they are replayed and every event is stored exactly once.
//! The test runs its own cluster, since stopping the suite's would break other tests.

use std::collections::HashSet;

use chrono::Utc;
use serde_json::json;
use tokengate::audit::{AuditEvent, AuditKind, AuditOutcome, AuditSettings, AuditSink, Coverage};
use tokengate::store::Store;

use super::cluster::Cluster;
use super::{eventually, start_writer, stored_events};

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        time: Utc::now(),
        kind: AuditKind::AuthSucceeded,
        outcome: AuditOutcome::Allowed,
        user: Some("automation-user".into()),
        token_id: Some("abcdefghijkl".into()),
        client_ip: Some("79.209.73.23".parse().unwrap()),
        method: Some("GET".into()),
        path: Some("/rest/ssh/1.0/keys".into()),
        request_id: Some(format!("@SPILLx1x{i}x0").into()),
        node_id: "SPILL".into(),
        actor: None,
        attributes: json!({ "scope": "read-only" }).into(),
    }
}

fn record(sink: &AuditSink, range: std::ops::Range<usize>) {
    for i in range {
        sink.record(event(i));
    }
}

/// Every stored request id, with repeats.
async fn stored_ids(store: &dyn Store) -> Vec<String> {
    stored_events(store)
        .await
        .into_iter()
        .map(|e| e.request_id.unwrap().into())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_spills_and_every_event_arrives_exactly_once() {
    let mut cluster = Cluster::start().await;
    let store = tokengate::store::connect(&cluster.url(), 4).await.unwrap();
    store.migrate().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spill_file = dir.path().join("data/audit-spill.ndjson");
    let config = AuditSettings {
        coverage: Coverage::Full,
        retention_days: 90,
        max_rows: None,
        file: None,
        queue_capacity: 65_536,
        spill_file: spill_file.clone(),
    };
    let (sink, writer, metrics) = start_writer(&store, &config);

    // The database runs: events are stored.
    record(&sink, 0..100);
    eventually("the first events to be stored", async || {
        (metrics.audit_written.get() == 100).then_some(())
    })
    .await;

    // The database stops: events go to the spill file instead, and nothing is lost.
    cluster.stop().await;
    record(&sink, 100..1_100);
    eventually("the events to be spilled", async || {
        (metrics.audit_spilled.get() == 1_000).then_some(())
    })
    .await;
    let spilled = std::fs::read_to_string(&spill_file).unwrap();
    assert_eq!(spilled.lines().count(), 1_000);
    assert_eq!(metrics.audit_written.get(), 100);

    // It runs again: the spill file is replayed into it and removed.
    cluster.restart().await;
    eventually("the spill to be replayed", async || {
        (metrics.audit_written.get() == 1_100).then_some(())
    })
    .await;
    eventually("the spill file to go", async || {
        let left = std::fs::read_dir(spill_file.parent().unwrap())
            .unwrap()
            .count();
        (left == 0).then_some(())
    })
    .await;
    record(&sink, 1_100..1_110);
    eventually("new events to be stored", async || {
        (metrics.audit_written.get() == 1_110).then_some(())
    })
    .await;
    writer.shutdown().await;

    let ids = stored_ids(&*store).await;
    assert_eq!(ids.len(), 1_110, "every event once");
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 1_110, "no event twice");
    assert!((0..1_110).all(|i| unique.contains(&format!("@SPILLx1x{i}x0"))));
    assert_eq!(metrics.audit_dropped.get(), 0);
}
