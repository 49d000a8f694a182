//! Replaying the spill file against what a real store does: text holding U+0000 (which
//! PostgreSQL cannot hold and both backends store as U+FFFD) is found after a crash and stored
//! once; a batch the store keeps refusing is set aside so the rest goes in; and a locked audit
//! table holds up neither the queue nor shutdown.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokengate::audit::{AuditEvent, AuditKind, AuditOutcome, AuditQuery, AuditSettings, Coverage};

use super::{eventually, start_writer, stored_events};
use crate::support::both_backends;
use crate::support::{execute_raw, fresh_postgres_url};

both_backends!(url:
    a_lookup_with_nul_in_its_filters_finds_what_was_stored,
    nul_text_in_a_spill_file_left_by_a_crash_is_stored_once,
    a_batch_the_store_refuses_is_set_aside_and_the_rest_is_stored,
);

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-06-01T08:00:00Z")
        .unwrap()
        .to_utc()
}

/// The `i`-th event, a millisecond after the one before; `user` presented it.
fn event(i: usize, user: &str) -> AuditEvent {
    AuditEvent {
        time: base() + TimeDelta::milliseconds(i as i64),
        kind: AuditKind::AuthFailed,
        outcome: AuditOutcome::Denied,
        user: Some(user.into()),
        token_id: None,
        client_ip: Some("79.209.73.23".parse().unwrap()),
        method: Some("GET".into()),
        path: Some("/rest/api/1.0/projects".into()),
        request_id: Some(format!("@REPLAYx1x{i}x0").into()),
        node_id: "REPLAY".into(),
        actor: None,
        attributes: json!({ "reason": "wrong_password" }).into(),
    }
}

fn config(spill_file: &Path, queue_capacity: usize) -> AuditSettings {
    AuditSettings {
        coverage: Coverage::Full,
        retention_days: 36_500,
        max_rows: None,
        file: None,
        queue_capacity,
        spill_file: spill_file.to_owned(),
    }
}

/// Writes `events` as the spill file an earlier run left.
fn leave_spill_file(spill_file: &Path, events: &[AuditEvent]) {
    std::fs::create_dir_all(spill_file.parent().unwrap()).unwrap();
    let mut text = String::new();
    for e in events {
        text.push_str(&serde_json::to_string(e).unwrap());
        text.push('\n');
    }
    std::fs::write(spill_file, text).unwrap();
}

/// The names of the files in `dir` (none while it does not exist), sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The events in ndjson files.
fn events_in(files: &[PathBuf]) -> Vec<AuditEvent> {
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<AuditEvent>>()
        })
        .collect()
}

/// Waits, as `what`, until the folder of `spill_file` holds no file: the spill is replayed.
async fn replayed(what: &str, spill_file: &Path) {
    eventually(what, async || {
        files_in(spill_file.parent().unwrap())
            .is_empty()
            .then_some(())
    })
    .await;
}

fn request_ids(events: &[AuditEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.request_id.as_deref().unwrap().to_owned())
        .collect()
}

/// The store reads a user or token id filter as it stores text, whoever asks: on PostgreSQL
/// U+0000 in a bound parameter would fail the query, on SQLite it would find nothing.
async fn a_lookup_with_nul_in_its_filters_finds_what_was_stored(url: String) {
    let store = tokengate::store::connect(&url, 4).await.unwrap();
    let events: Vec<_> = (0..3)
        .map(|i| AuditEvent {
            token_id: Some("tok\0en".into()),
            ..event(i, "a\0b")
        })
        .collect();
    store.insert_audit(&events).await.unwrap();
    let found = store
        .query_audit(&AuditQuery {
            user: Some("a\0b".into()),
            token_id: Some("tok\0en".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 3);
    assert!(
        found
            .iter()
            .all(|e| e.event.token_id.as_deref() == Some("tok\u{FFFD}en"))
    );
}

/// A client sent `Authorization: Basic base64("a\0b:pw")` during an outage; the gateway died
/// after the replay stored that batch and before it recorded so. The next start looks the
/// batch up as the store keeps it: found, not stored again (SQLite), and no lookup error that
/// would hold the whole trail in the spill file for good (PostgreSQL).
async fn nul_text_in_a_spill_file_left_by_a_crash_is_stored_once(url: String) {
    let store = tokengate::store::connect(&url, 4).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spill_file = dir.path().join("data/audit-spill.ndjson");
    let events: Vec<_> = (0..100).map(|i| event(i, "a\0b")).collect();
    leave_spill_file(&spill_file, &events);
    store.insert_audit(&events).await.unwrap();

    let (sink, writer, metrics) = start_writer(&store, &config(&spill_file, 1_000));
    replayed("the spill file to be replayed", &spill_file).await;
    // The writer stores live events: the store was never taken for down.
    sink.record(event(100, "a\0b"));
    eventually("a new event to be stored", async || {
        let stored = stored_events(&*store).await;
        stored
            .iter()
            .any(|e| e.request_id.as_deref() == Some("@REPLAYx1x100x0"))
            .then_some(())
    })
    .await;
    writer.shutdown().await;

    let stored = stored_events(&*store).await;
    let ids = request_ids(&stored);
    assert_eq!(ids.len(), 101, "every event once");
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        101,
        "no event twice"
    );
    assert!(
        stored
            .iter()
            .all(|e| e.user.as_deref() == Some("a\u{FFFD}b"))
    );
    assert_eq!(metrics.audit_spilled.get() + metrics.audit_dropped.get(), 0);
}

/// Refuses every audit event of the user `poison`, as a database refuses a value it cannot
/// hold, while everything else works.
async fn refuse_poison(url: &str) {
    let statement = if url.starts_with("sqlite:") {
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_segment_keys \
         WHEN NEW.key = 'u:poison' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    } else {
        "ALTER TABLE audit_events ADD CONSTRAINT refuse_poison \
         CHECK (user_name IS DISTINCT FROM 'poison')"
    };
    execute_raw(url, statement).await;
}

/// One event the store refuses: spilled, retried at three probes, then set aside in a file
/// beside the spill file (readable by its owner only); the events after it are stored.
async fn a_batch_the_store_refuses_is_set_aside_and_the_rest_is_stored(url: String) {
    refuse_poison(&url).await;
    let store = tokengate::store::connect(&url, 4).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spill_file = dir.path().join("data/audit-spill.ndjson");
    let (sink, writer, metrics) = start_writer(&store, &config(&spill_file, 1_000));
    let poison = event(0, "poison");
    sink.record(poison.clone());
    let aside = eventually("the refused event to be set aside", async || {
        let names = files_in(spill_file.parent()?);
        let aside: Vec<_> = names
            .iter()
            .filter(|n| n.starts_with("audit-spill.ndjson.failed-"))
            .collect();
        (names.len() == 1 && aside.len() == 1).then(|| spill_file.with_file_name(aside[0]))
    })
    .await;
    let later: Vec<_> = (1..=50).map(|i| event(i, "automation-user")).collect();
    for e in &later {
        sink.record(e.clone());
    }
    eventually("the later events to be stored", async || {
        (metrics.audit_written.get() == 50).then_some(())
    })
    .await;
    writer.shutdown().await;

    assert_eq!(events_in(std::slice::from_ref(&aside)), [poison]);
    let mode = std::fs::metadata(&aside).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(metrics.audit_set_aside.get(), 1);
    assert_eq!(metrics.audit_spilled.get(), 1);
    assert_eq!(metrics.audit_dropped.get(), 0);
    assert_eq!(
        request_ids(&stored_events(&*store).await),
        request_ids(&later)
    );
}

/// Another session holds `LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE` while the writer
/// replays a spill file and 300 events arrive for a queue of 100. The replay gives up after
/// its store timeout, and shutdown spills what is queued within its bound: the 200 that did
/// not fit are counted as dropped, the other 100 are in the spill file, and the next start
/// stores them once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_audit_table_holds_up_neither_the_queue_nor_shutdown() {
    let url = fresh_postgres_url().await;
    let store = tokengate::store::connect(&url, 4).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spill_file = dir.path().join("data/audit-spill.ndjson");
    let earlier: Vec<_> = (0..50).map(|i| event(i, "automation-user")).collect();
    leave_spill_file(&spill_file, &earlier);

    let mut locker = PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let mut observer = PgConnection::connect(&url).await.unwrap();

    let config = config(&spill_file, 100);
    let (sink, writer, metrics) = start_writer(&store, &config);
    eventually("the replay to wait for the lock", async || {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE 'SELECT%FROM audit_events%'",
        )
        .fetch_one(&mut observer)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
    let recorded: Vec<_> = (1_000..1_300)
        .map(|i| event(i, "automation-user"))
        .collect();
    for e in &recorded {
        sink.record(e.clone());
    }
    assert_eq!(metrics.audit_dropped.get(), 200);

    let started = Instant::now();
    writer.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(metrics.audit_written.get(), 0);
    assert_eq!(metrics.audit_spilled.get(), 100, "nothing queued vanished");
    assert_eq!(metrics.audit_dropped.get(), 200);
    let waiting: Vec<_> = earlier.iter().chain(&recorded[..100]).cloned().collect();
    let replaying = PathBuf::from(format!("{}.replaying", spill_file.display()));
    let mut in_files = request_ids(&events_in(&[replaying, spill_file.clone()]));
    in_files.sort();
    let mut expected = request_ids(&waiting);
    expected.sort();
    assert_eq!(in_files, expected);

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let (_sink, writer, _metrics) = start_writer(&store, &config);
    replayed("the spill to be replayed", &spill_file).await;
    writer.shutdown().await;
    let mut ids = request_ids(&stored_events(&*store).await);
    ids.sort();
    assert_eq!(ids, expected, "every waiting event once");
}
