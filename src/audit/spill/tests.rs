use super::*;
use crate::audit::test_store::{Flaky, event};

async fn replay_all(spill: &mut Spill, store: &dyn TokenStore) -> Replayed {
    let mut total = Replayed::default();
    while let Some(step) = spill.replay_next(store).await.expect("replaying") {
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
    let step = first.replay_next(&*store).await.unwrap().unwrap();
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
    spill.replay_next(&*store).await.unwrap();
    store.set_down(true);
    assert!(matches!(
        spill.replay_next(&*store).await,
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
