use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use super::*;
use crate::audit::test_store::{Flaky, event};

/// The limit of every store call in these tests: never reached unless the store hangs.
const LIMIT: Duration = Duration::from_secs(30);

async fn replay_all(spill: &mut Spill, store: &dyn TokenStore) -> Replayed {
    let mut total = Replayed::default();
    while let Some(step) = spill.replay_next(store, LIMIT).await.expect("replaying") {
        total.stored += step.stored;
        total.skipped += step.skipped;
        total.unreadable += step.unreadable;
    }
    total
}

fn floored(events: impl IntoIterator<Item = AuditEvent>) -> Vec<AuditEvent> {
    events
        .into_iter()
        .map(|e| AuditEvent {
            time: floor_ms(e.time),
            ..e
        })
        .collect()
}

#[tokio::test]
async fn replays_every_event_once_then_removes_the_files() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/spill.ndjson");
    let events: Vec<_> = (0..1_234).map(event).collect();
    let mut spill = Spill::new(path.clone());
    assert!(!spill.pending());
    spill.append(&events[..1_000]).await.unwrap();
    spill.append(&events[1_000..]).await.unwrap();
    assert!(spill.pending());

    let done = replay_all(&mut spill, &*store).await;
    assert_eq!(
        done,
        Replayed {
            stored: 1_234,
            skipped: 0,
            unreadable: 0
        }
    );
    assert_eq!(store.all().await, floored(events));
    assert!(!spill.pending());
    assert!(!path.exists());
    assert!(!spill.replaying.exists() && !spill.offset.exists());
}

#[tokio::test]
async fn a_file_left_by_an_earlier_run_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    Spill::new(path.clone()).append(&[event(1)]).await.unwrap();
    assert!(Spill::new(path.clone()).pending());
    std::fs::rename(&path, with_suffix(&path, ".replaying")).unwrap();
    assert!(Spill::new(path).pending());
}

#[tokio::test]
async fn a_pass_cut_off_after_a_batch_resumes_where_it_stopped() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let events: Vec<_> = (0..1_200).map(event).collect();
    let mut first = Spill::new(path.clone());
    first.append(&events).await.unwrap();
    let step = first.replay_next(&*store, LIMIT).await.unwrap().unwrap();
    assert_eq!(step.stored, REPLAY_BATCH as u64);
    // The process dies here; the next one finds `.replaying` and its offset.
    drop(first);
    assert!(!path.exists());

    let mut second = Spill::new(path.clone());
    assert!(second.pending());
    let done = replay_all(&mut second, &*store).await;
    assert_eq!(
        done,
        Replayed {
            stored: 700,
            skipped: 0,
            unreadable: 0
        }
    );
    assert_eq!(store.all().await, floored(events));
}

#[tokio::test]
async fn a_batch_committed_before_its_offset_was_written_is_not_stored_twice() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let events: Vec<_> = (0..800).map(event).collect();
    let mut spill = Spill::new(path.clone());
    spill.append(&events).await.unwrap();
    // As if a pass had inserted the first batch and died before recording it.
    std::fs::rename(&path, &spill.replaying).unwrap();
    store.insert_audit(&events[..REPLAY_BATCH]).await.unwrap();

    let done = replay_all(&mut Spill::new(path), &*store).await;
    assert_eq!(
        done,
        Replayed {
            stored: 300,
            skipped: REPLAY_BATCH as u64,
            unreadable: 0
        }
    );
    assert_eq!(store.all().await, floored(events));
}

#[tokio::test]
async fn a_failed_insert_leaves_the_rest_for_the_next_pass() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let events: Vec<_> = (0..1_100).map(event).collect();
    let mut spill = Spill::new(path.clone());
    spill.append(&events).await.unwrap();
    spill.replay_next(&*store, LIMIT).await.unwrap();
    store.set_down(true);
    assert!(matches!(
        spill.replay_next(&*store, LIMIT).await,
        Err(ReplayError::Store(_))
    ));
    // More is spilled while the store is down: into a new file, replayed after the first.
    spill.append(&[event(5_000)]).await.unwrap();
    assert!(path.exists() && spill.replaying.exists());
    store.set_down(false);

    let done = replay_all(&mut spill, &*store).await;
    assert_eq!(
        done,
        Replayed {
            stored: 601,
            skipped: 0,
            unreadable: 0
        }
    );
    let mut expected = events;
    expected.push(event(5_000));
    assert_eq!(store.all().await, floored(expected));
    assert!(!spill.pending() && !path.exists() && !spill.replaying.exists());
}

#[tokio::test]
async fn a_line_cut_short_by_a_crash_is_skipped_and_does_not_swallow_the_next() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let mut spill = Spill::new(path.clone());
    spill.append(&[event(1)]).await.unwrap();
    let mut torn = serde_json::to_vec(&event(2)).unwrap();
    torn.truncate(torn.len() / 2);
    torn.extend_from_slice(&[0xff, 0xfe]);
    let mut text = std::fs::read(&path).unwrap();
    text.extend_from_slice(&torn);
    std::fs::write(&path, text).unwrap();
    spill.append(&[event(3)]).await.unwrap();

    let done = replay_all(&mut spill, &*store).await;
    assert_eq!(
        done,
        Replayed {
            stored: 2,
            skipped: 0,
            unreadable: 1
        }
    );
    assert_eq!(store.all().await, floored([event(1), event(3)]));
}

#[tokio::test]
async fn a_stale_offset_never_applies_to_a_new_file() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let mut spill = Spill::new(path.clone());
    // Left over by a pass that removed `.replaying` and died before removing its offset.
    std::fs::write(&spill.offset, "999999").unwrap();
    spill.append(&[event(1), event(2)]).await.unwrap();
    let done = replay_all(&mut spill, &*store).await;
    assert_eq!(done.stored, 2);
}

/// The `i`-th sample event with U+0000 in every text a client or a change can put there.
fn with_nul(i: usize) -> AuditEvent {
    AuditEvent {
        user: Some("a\0b".into()),
        token_id: Some("tok\0en".into()),
        path: Some(format!("/rest/\0/{i}").into()),
        request_id: Some(format!("@\0x{i}").into()),
        actor: Some("cli\0".into()),
        attributes: json!({ "reason\0": "x\0y", "list": ["\0"] }).into(),
        ..event(i)
    }
}

#[tokio::test]
async fn a_batch_with_nul_text_committed_before_its_offset_was_written_is_not_stored_twice() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let events: Vec<_> = (0..800).map(with_nul).collect();
    let mut spill = Spill::new(path.clone());
    spill.append(&events).await.unwrap();
    // As if a pass had inserted the first batch and died before recording it. The store holds
    // U+FFFD where the spill file holds U+0000: the lookup must find it all the same.
    std::fs::rename(&path, &spill.replaying).unwrap();
    store.insert_audit(&events[..REPLAY_BATCH]).await.unwrap();

    let done = replay_all(&mut Spill::new(path), &*store).await;
    assert_eq!(
        done,
        Replayed {
            stored: 300,
            skipped: REPLAY_BATCH as u64,
            unreadable: 0
        }
    );
    let stored = store.all().await;
    assert_eq!(stored, events.iter().map(stored_form).collect::<Vec<_>>());
    assert_eq!(stored[0].user.as_deref(), Some("a\u{FFFD}b"));
}

#[test]
fn the_stored_form_replaces_nul_in_every_text() {
    let stored = stored_form(&with_nul(7));
    let text = serde_json::to_string(&stored).unwrap();
    assert!(!text.contains("\\u0000"), "{text}");
    assert_eq!(stored.path.as_deref(), Some("/rest/\u{FFFD}/7"));
    assert_eq!(
        stored.attributes,
        json!({ "reason\u{FFFD}": "x\u{FFFD}y", "list": ["\u{FFFD}"] })
    );
    // Text without U+0000 is left as it is.
    assert_eq!(stored_form(&event(7)), floored([event(7)])[0]);
}

#[tokio::test]
async fn a_store_that_does_not_answer_ends_the_step_within_its_limit() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let events: Vec<_> = (0..600).map(event).collect();
    let mut spill = Spill::new(path.clone());
    spill.append(&events).await.unwrap();
    store.set_hung(true);
    let limit = Duration::from_millis(100);
    let step = tokio::time::timeout(LIMIT, spill.replay_next(&*store, limit))
        .await
        .expect("the step ends within its limit");
    assert!(matches!(step, Err(ReplayError::TimedOut(l)) if l == limit));

    store.set_hung(false);
    assert_eq!(replay_all(&mut spill, &*store).await.stored, 600);
    assert_eq!(store.all().await, floored(events));
}

#[tokio::test]
async fn a_step_cancelled_midway_leaves_its_batch_for_the_next_one() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let events: Vec<_> = (0..1_200).map(event).collect();
    let mut spill = Spill::new(path.clone());
    spill.append(&events).await.unwrap();
    spill.replay_next(&*store, LIMIT).await.unwrap();
    // A shutdown deadline drops the second step while the store does not answer.
    store.set_hung(true);
    let cut = tokio::time::timeout(
        Duration::from_millis(100),
        spill.replay_next(&*store, LIMIT),
    )
    .await;
    assert!(cut.is_err());

    store.set_hung(false);
    let done = replay_all(&mut spill, &*store).await;
    assert_eq!(done.stored, 700);
    assert_eq!(store.all().await, floored(events));
}

#[tokio::test]
async fn a_batch_set_aside_goes_to_a_file_of_its_own_and_the_replay_goes_on() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let events: Vec<_> = (0..1_200).map(event).collect();
    let mut spill = Spill::new(path.clone());
    spill.append(&events).await.unwrap();
    spill.replay_next(&*store, LIMIT).await.unwrap();

    let now = DateTime::parse_from_rfc3339("2024-06-01T08:00:00.123Z")
        .unwrap()
        .to_utc();
    let aside = spill.set_aside(now).await.unwrap().expect("a batch");
    let expected = dir.path().join("spill.ndjson.failed-20240601T080000.123Z");
    assert_eq!(
        aside,
        SetAside {
            file: expected.clone(),
            events: REPLAY_BATCH as u64
        }
    );
    let lines: Vec<AuditEvent> = std::fs::read_to_string(&expected)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, events[500..1_000]);
    assert_eq!(mode(&expected), 0o600);

    // A second batch set aside in the same millisecond gets a name of its own.
    let again = spill.set_aside(now).await.unwrap().expect("a batch");
    assert_eq!(
        again.file,
        dir.path()
            .join("spill.ndjson.failed-20240601T080000.123Z-2")
    );
    assert_eq!(again.events, 200);
    assert_eq!(replay_all(&mut spill, &*store).await, Replayed::default());
    assert!(!spill.pending() && !path.exists() && !spill.replaying.exists());
    assert_eq!(store.all().await, floored(events[..500].to_vec()));
    assert!(spill.set_aside(now).await.unwrap().is_none());
}

#[tokio::test]
async fn a_process_that_dies_after_setting_a_batch_aside_resumes_after_it() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let events: Vec<_> = (0..700).map(event).collect();
    let mut first = Spill::new(path.clone());
    first.append(&events).await.unwrap();
    first.set_aside(Utc::now()).await.unwrap().expect("a batch");
    drop(first);

    let done = replay_all(&mut Spill::new(path), &*store).await;
    assert_eq!(done.stored, 200);
    assert_eq!(store.all().await, floored(events[500..].to_vec()));
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_spill_file_and_its_side_files_are_readable_by_their_owner_only() {
    let store = Flaky::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill/audit-spill.ndjson");
    let mut spill = Spill::new(path.clone());
    spill
        .append(&(0..600).map(event).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(mode(&path), 0o600);
    spill.replay_next(&*store, LIMIT).await.unwrap();
    assert_eq!(mode(&spill.replaying), 0o600);
    assert_eq!(mode(&spill.offset), 0o600);
}

#[test]
fn names_the_side_files_after_the_spill_file() {
    let spill = Spill::new(PathBuf::from("data/audit-spill.ndjson"));
    assert_eq!(
        spill.replaying,
        PathBuf::from("data/audit-spill.ndjson.replaying")
    );
    assert_eq!(
        spill.offset,
        PathBuf::from("data/audit-spill.ndjson.replaying.offset")
    );
}
