use std::ops::Range;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::*;
use crate::audit::AuditKind;
use crate::audit::test_store::{Flaky, event};

fn config(dir: &Path, coverage: Coverage) -> AuditSettings {
    AuditSettings {
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

/// A fresh store, and the config of a writer at full coverage whose spill file is in the
/// temporary directory.
async fn full_coverage() -> (Arc<Flaky>, TempDir, AuditSettings) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), Coverage::Full);
    (Flaky::new().await, dir, config)
}

/// The sample events in `range`.
fn events(range: Range<usize>) -> Vec<AuditEvent> {
    range.map(event).collect()
}

/// Starts a writer on `store` with `config`, default timing and fresh metrics.
fn started(store: &Arc<Flaky>, config: &AuditSettings) -> (AuditSink, AuditWriter, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let (sink, writer) = start(store.clone(), config, "sys".into(), Arc::clone(&metrics));
    (sink, writer, metrics)
}

/// Starts a writer on `store` with `config`, `timing` and fresh metrics.
fn started_timed(
    store: &Arc<Flaky>,
    config: &AuditSettings,
    timing: Timing,
) -> (AuditSink, AuditWriter, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let (sink, writer) = start_timed(
        store.clone(),
        config,
        "sys".into(),
        Arc::clone(&metrics),
        timing,
    );
    (sink, writer, metrics)
}

fn record_all(sink: &AuditSink, events: &[AuditEvent]) {
    for e in events {
        sink.record(e.clone());
    }
}

/// Leaves `events` in the spill file, as an earlier run that could not store them does.
async fn leave_in_spill(config: &AuditSettings, events: &[AuditEvent]) {
    Spill::new(config.spill_file.clone())
        .append(events)
        .await
        .unwrap();
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
        let (sink, writer, metrics) = started(&store, &config(dir.path(), coverage));
        let events = one_of_each_kind();
        record_all(&sink, &events);
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
    let (store, _dir, config) = full_coverage().await;
    store.set_down(true);
    let (sink, writer, metrics) = started(&store, &config);
    let events = events(0..1_200);
    record_all(&sink, &events);
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
    let (store, _dir, config) = full_coverage().await;
    store.set_down(true);
    let (sink, writer, metrics) = started(&store, &config);
    let events = events(0..50);
    record_all(&sink, &events);
    writer.shutdown().await;
    assert_eq!(metrics.audit_spilled.get(), 50);
    assert!(config.spill_file.exists());

    store.set_down(false);
    let (_sink, writer, metrics) = started(&store, &config);
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
    let (store, dir, config) = full_coverage().await;
    store.set_down(true);
    // The spill file's directory is a file: nothing can be written there.
    std::fs::write(dir.path().join("spill"), "").unwrap();
    let config = AuditSettings {
        queue_capacity: 16,
        ..config
    };
    let (sink, writer, metrics) = started(&store, &config);
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
    let config = AuditSettings {
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
            "tokengate.audit.action.credential_set",
            "tokengate.audit.action.credential_deleted",
            "tokengate.audit.action.token_expiry_notified"
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l["system"] == "http://bitbucket:7990/" && l["version"] == "1.0")
    );
}

/// The events in the spill file and its `.replaying` file, in the order they are replayed.
fn spilled_events(spill_file: &Path) -> Vec<AuditEvent> {
    let replaying = PathBuf::from(format!("{}.replaying", spill_file.display()));
    [replaying, spill_file.to_owned()]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| {
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The files batches were set aside in, by name.
fn set_aside_files(spill_file: &Path) -> Vec<PathBuf> {
    let prefix = format!(
        "{}.failed-",
        spill_file.file_name().unwrap().to_string_lossy()
    );
    let mut files: Vec<_> = std::fs::read_dir(spill_file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_batch_the_store_refuses_while_it_answers_is_set_aside_and_live_events_still_go_in() {
    let (store, _dir, config) = full_coverage().await;
    store.refuse_user(Some("poison"));
    // Left by an earlier run: a first replay batch (500 events) holding one event the store
    // refuses, then 100 more.
    let mut earlier = events(0..600);
    earlier[250].user = Some("poison".into());
    leave_in_spill(&config, &earlier).await;
    let timing = Timing {
        probe_every: Duration::from_millis(100),
        ..Timing::DEFAULT
    };
    let (sink, writer, metrics) = started_timed(&store, &config, timing);
    eventually("the store to refuse the batch", async || {
        store.refusals() >= 1
    })
    .await;
    // The store answers: events recorded meanwhile go in, not to the spill file.
    let live = events(1_000..1_010);
    record_all(&sink, &live);
    eventually(
        "the live events and the rest of the spill to be stored",
        async || metrics.audit_written.get() == 110,
    )
    .await;
    eventually("the spill file to go", async || {
        spilled_events(&config.spill_file).is_empty()
    })
    .await;
    writer.shutdown().await;

    assert_eq!(store.refusals(), REPLAY_ATTEMPTS as usize);
    assert_eq!(metrics.audit_spilled.get(), 0);
    assert_eq!(metrics.audit_set_aside.get(), 500);
    assert_eq!(metrics.audit_dropped.get(), 0);
    let aside = set_aside_files(&config.spill_file);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(spilled_events(&aside[0]), earlier[..500]);
    let mut stored = earlier[500..].to_vec();
    stored.extend(live);
    assert_eq!(store.all().await, floored(stored));
}

#[tokio::test]
async fn a_replay_the_store_does_not_answer_holds_up_neither_the_queue_nor_shutdown() {
    let (store, _dir, config) = full_coverage().await;
    let config = AuditSettings {
        queue_capacity: 100,
        ..config
    };
    let earlier = events(0..50);
    leave_in_spill(&config, &earlier).await;
    // As behind a lock on the audit table: every audit call waits, a ping answers.
    store.set_hung(true);
    let timing = Timing {
        store_call: Duration::from_millis(300),
        ..Timing::DEFAULT
    };
    let (sink, writer, metrics) = started_timed(&store, &config, timing);
    eventually("the replay to wait on the store", async || {
        store.hangs() == 1
    })
    .await;
    let recorded = events(1_000..1_300);
    record_all(&sink, &recorded);
    assert_eq!(metrics.audit_dropped.get(), 200);
    // The replay gives up in time: the queue drains into the spill file.
    eventually("the queued events to be spilled", async || {
        metrics.audit_spilled.get() == 100
    })
    .await;
    writer.shutdown().await;
    assert_eq!(metrics.audit_written.get(), 0);
    assert_eq!(metrics.audit_dropped.get(), 200);
    let mut waiting = earlier;
    waiting.extend_from_slice(&recorded[..100]);
    assert_eq!(spilled_events(&config.spill_file), waiting);

    // Once the store answers, the next run replays it all.
    store.set_hung(false);
    let (_sink, writer, metrics) = started(&store, &config);
    eventually("the spill to be replayed", async || {
        metrics.audit_written.get() == 150
    })
    .await;
    writer.shutdown().await;
    assert_eq!(store.all().await, floored(waiting));
}

#[tokio::test]
async fn shutdown_cuts_off_a_store_call_at_its_deadline_and_spills_what_is_left() {
    let (store, _dir, config) = full_coverage().await;
    store.set_hung(true);
    // A store call alone would wait an hour; the shutdown deadline is what ends it.
    let timing = Timing {
        store_call: Duration::from_secs(3_600),
        shutdown_store: Duration::from_millis(200),
        shutdown_spill: Duration::from_secs(30),
        ..Timing::DEFAULT
    };
    let (sink, writer, metrics) = started_timed(&store, &config, timing);
    let events = events(0..150);
    record_all(&sink, &events[..100]);
    eventually("the insert to wait on the store", async || {
        store.hangs() == 1
    })
    .await;
    record_all(&sink, &events[100..]);
    let started = Instant::now();
    writer.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(metrics.audit_spilled.get(), 150);
    assert_eq!(metrics.audit_written.get() + metrics.audit_dropped.get(), 0);
    assert_eq!(spilled_events(&config.spill_file), events);
}

#[tokio::test]
async fn what_a_writer_stopped_at_the_deadline_still_held_is_counted_as_lost() {
    let (store, _dir, config) = full_coverage().await;
    store.set_down(true);
    let timing = Timing {
        shutdown_store: Duration::from_millis(100),
        shutdown_spill: Duration::from_millis(200),
        ..Timing::DEFAULT
    };
    let (sink, writer, metrics) = started_timed(&store, &config, timing);
    // A spill "file" that takes no more than a pipe's buffer: the writer waits on it.
    std::fs::create_dir_all(config.spill_file.parent().unwrap()).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&config.spill_file)
        .status()
        .unwrap();
    assert!(made.success());
    for i in 0..300 {
        sink.record(event(i));
    }
    eventually("the writer to take the batch", async || {
        writer.in_hand.load(Ordering::SeqCst) == 300
    })
    .await;
    for i in 300..350 {
        sink.record(event(i));
    }
    writer.shutdown().await;
    assert_eq!(metrics.audit_dropped.get(), 350);
    assert_eq!(metrics.audit_written.get() + metrics.audit_spilled.get(), 0);

    // Let the stuck write finish, so the runtime can shut down.
    let fifo = config.spill_file.clone();
    tokio::task::spawn_blocking(move || {
        let mut pipe = std::fs::File::open(fifo).unwrap();
        std::io::copy(&mut pipe, &mut std::io::sink()).unwrap();
    })
    .await
    .unwrap();
}
