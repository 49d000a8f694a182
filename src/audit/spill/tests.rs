use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::audit::test_store::{Flaky, event};

/// The limit of every store call in these tests: never reached unless the store hangs.
const LIMIT: Duration = Duration::from_secs(30);

/// A fresh store and a spill file in a temporary directory of its own.
struct Fixture {
    store: Arc<Flaky>,
    /// Holds the spill file; removed when the test ends.
    dir: TempDir,
    path: PathBuf,
}

impl Fixture {
    /// The spill file is `spill.ndjson`.
    async fn new() -> Self {
        Self::at("spill.ndjson").await
    }

    /// The spill file is `name`, inside the temporary directory.
    async fn at(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            store: Flaky::new().await,
            path: dir.path().join(name),
            dir,
        }
    }

    /// A spill of the fixture's file, with `events` appended to it.
    async fn spill(&self, events: &[AuditEvent]) -> Spill {
        let mut spill = Spill::new(self.path.clone());
        spill.append(events).await.unwrap();
        spill
    }

    /// Replays `spill` into the fixture's store to the end.
    async fn replay_all(&self, spill: &mut Spill) -> Replayed {
        let mut total = Replayed::default();
        while let Some(step) = spill
            .replay_next(&*self.store, LIMIT)
            .await
            .expect("replaying")
        {
            total.stored += step.stored;
            total.skipped += step.skipped;
            total.unreadable += step.unreadable;
        }
        total
    }

    /// One replay step of `spill` into the fixture's store.
    async fn replay_step(&self, spill: &mut Spill) -> Result<Option<Replayed>, ReplayError> {
        spill.replay_next(&*self.store, LIMIT).await
    }

    /// Spills `events`, then leaves the file as a pass leaves it that inserted the first batch
    /// and died before recording it, and replays it with a new `Spill`, as the next run does.
    async fn replay_after_an_unrecorded_batch(&self, events: &[AuditEvent]) -> Replayed {
        let spill = self.spill(events).await;
        std::fs::rename(&self.path, &spill.replaying).unwrap();
        self.store
            .insert_audit(&events[..REPLAY_BATCH])
            .await
            .unwrap();
        self.replay_all(&mut Spill::new(self.path.clone())).await
    }
}

/// The sample events `0..n`.
fn events(n: usize) -> Vec<AuditEvent> {
    (0..n).map(event).collect()
}

fn replayed(stored: u64, skipped: u64, unreadable: u64) -> Replayed {
    Replayed {
        stored,
        skipped,
        unreadable,
    }
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

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Adds to `path` the first half of `event`'s line and two bytes that are not UTF-8, as a
/// write cut short by a crash leaves it.
fn append_torn_line(path: &Path, event: &AuditEvent) {
    let mut torn = serde_json::to_vec(event).unwrap();
    torn.truncate(torn.len() / 2);
    torn.extend_from_slice(&[0xff, 0xfe]);
    let mut text = std::fs::read(path).unwrap();
    text.extend_from_slice(&torn);
    std::fs::write(path, text).unwrap();
}

/// The events in a file of one JSON event a line.
fn read_events(path: &Path) -> Vec<AuditEvent> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn replays_every_event_once_then_removes_the_files() {
    let t = Fixture::at("nested/dir/spill.ndjson").await;
    let events = events(1_234);
    let mut spill = Spill::new(t.path.clone());
    assert!(!spill.pending());
    spill.append(&events[..1_000]).await.unwrap();
    spill.append(&events[1_000..]).await.unwrap();
    assert!(spill.pending());

    let done = t.replay_all(&mut spill).await;
    assert_eq!(done, replayed(1_234, 0, 0));
    assert_eq!(t.store.all().await, floored(events));
    assert!(!spill.pending());
    assert!(!t.path.exists());
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
    let t = Fixture::new().await;
    let events = events(1_200);
    let mut first = t.spill(&events).await;
    let step = t.replay_step(&mut first).await.unwrap().unwrap();
    assert_eq!(step.stored, REPLAY_BATCH as u64);
    // The process dies here; the next one finds `.replaying` and its offset.
    drop(first);
    assert!(!t.path.exists());

    let mut second = Spill::new(t.path.clone());
    assert!(second.pending());
    let done = t.replay_all(&mut second).await;
    assert_eq!(done, replayed(700, 0, 0));
    assert_eq!(t.store.all().await, floored(events));
}

#[tokio::test]
async fn a_batch_committed_before_its_offset_was_written_is_not_stored_twice() {
    let t = Fixture::new().await;
    let events = events(800);
    let done = t.replay_after_an_unrecorded_batch(&events).await;
    assert_eq!(done, replayed(300, REPLAY_BATCH as u64, 0));
    assert_eq!(t.store.all().await, floored(events));
}

#[tokio::test]
async fn a_failed_insert_leaves_the_rest_for_the_next_pass() {
    let t = Fixture::new().await;
    let events = events(1_100);
    let mut spill = t.spill(&events).await;
    t.replay_step(&mut spill).await.unwrap();
    t.store.set_down(true);
    assert!(matches!(
        t.replay_step(&mut spill).await,
        Err(ReplayError::Store(_))
    ));
    // More is spilled while the store is down: into a new file, replayed after the first.
    spill.append(&[event(5_000)]).await.unwrap();
    assert!(t.path.exists() && spill.replaying.exists());
    t.store.set_down(false);

    let done = t.replay_all(&mut spill).await;
    assert_eq!(done, replayed(601, 0, 0));
    let mut expected = events;
    expected.push(event(5_000));
    assert_eq!(t.store.all().await, floored(expected));
    assert!(!spill.pending() && !t.path.exists() && !spill.replaying.exists());
}

#[tokio::test]
async fn a_line_cut_short_by_a_crash_is_skipped_and_does_not_swallow_the_next() {
    let t = Fixture::new().await;
    let mut spill = t.spill(&[event(1)]).await;
    append_torn_line(&t.path, &event(2));
    spill.append(&[event(3)]).await.unwrap();

    let done = t.replay_all(&mut spill).await;
    assert_eq!(done, replayed(2, 0, 1));
    assert_eq!(t.store.all().await, floored([event(1), event(3)]));
}

#[tokio::test]
async fn a_stale_offset_never_applies_to_a_new_file() {
    let t = Fixture::new().await;
    let mut spill = Spill::new(t.path.clone());
    // Left over by a pass that removed `.replaying` and died before removing its offset.
    std::fs::write(&spill.offset, "999999").unwrap();
    spill.append(&[event(1), event(2)]).await.unwrap();
    let done = t.replay_all(&mut spill).await;
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
    let t = Fixture::new().await;
    let events: Vec<_> = (0..800).map(with_nul).collect();
    // The store holds U+FFFD where the spill file holds U+0000: the lookup of the batch
    // already inserted must find it all the same.
    let done = t.replay_after_an_unrecorded_batch(&events).await;
    assert_eq!(done, replayed(300, REPLAY_BATCH as u64, 0));
    let stored = t.store.all().await;
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
    let t = Fixture::new().await;
    let events = events(600);
    let mut spill = t.spill(&events).await;
    t.store.set_hung(true);
    let limit = Duration::from_millis(100);
    let step = tokio::time::timeout(LIMIT, spill.replay_next(&*t.store, limit))
        .await
        .expect("the step ends within its limit");
    assert!(matches!(step, Err(ReplayError::TimedOut(l)) if l == limit));

    t.store.set_hung(false);
    assert_eq!(t.replay_all(&mut spill).await.stored, 600);
    assert_eq!(t.store.all().await, floored(events));
}

#[tokio::test]
async fn a_step_cancelled_midway_leaves_its_batch_for_the_next_one() {
    let t = Fixture::new().await;
    let events = events(1_200);
    let mut spill = t.spill(&events).await;
    t.replay_step(&mut spill).await.unwrap();
    // A shutdown deadline drops the second step while the store does not answer.
    t.store.set_hung(true);
    let cut = tokio::time::timeout(Duration::from_millis(100), t.replay_step(&mut spill)).await;
    assert!(cut.is_err());

    t.store.set_hung(false);
    let done = t.replay_all(&mut spill).await;
    assert_eq!(done.stored, 700);
    assert_eq!(t.store.all().await, floored(events));
}

#[tokio::test]
async fn a_batch_set_aside_goes_to_a_file_of_its_own_and_the_replay_goes_on() {
    let t = Fixture::new().await;
    let events = events(1_200);
    let mut spill = t.spill(&events).await;
    t.replay_step(&mut spill).await.unwrap();

    let now = DateTime::parse_from_rfc3339("2024-06-01T08:00:00.123Z")
        .unwrap()
        .to_utc();
    let aside = spill.set_aside(now).await.unwrap().expect("a batch");
    let expected = t
        .dir
        .path()
        .join("spill.ndjson.failed-20240601T080000.123Z");
    assert_eq!(
        aside,
        SetAside {
            file: expected.clone(),
            events: REPLAY_BATCH as u64
        }
    );
    assert_eq!(read_events(&expected), events[500..1_000]);
    assert_eq!(mode(&expected), 0o600);

    // A second batch set aside in the same millisecond gets a name of its own.
    let again = spill.set_aside(now).await.unwrap().expect("a batch");
    assert_eq!(
        again.file,
        t.dir
            .path()
            .join("spill.ndjson.failed-20240601T080000.123Z-2")
    );
    assert_eq!(again.events, 200);
    assert_eq!(t.replay_all(&mut spill).await, Replayed::default());
    assert!(!spill.pending() && !t.path.exists() && !spill.replaying.exists());
    assert_eq!(t.store.all().await, floored(events[..500].to_vec()));
    assert!(spill.set_aside(now).await.unwrap().is_none());
}

#[tokio::test]
async fn a_process_that_dies_after_setting_a_batch_aside_resumes_after_it() {
    let t = Fixture::new().await;
    let events = events(700);
    let mut first = t.spill(&events).await;
    first.set_aside(Utc::now()).await.unwrap().expect("a batch");
    drop(first);

    let done = t.replay_all(&mut Spill::new(t.path.clone())).await;
    assert_eq!(done.stored, 200);
    assert_eq!(t.store.all().await, floored(events[500..].to_vec()));
}

#[tokio::test]
async fn the_spill_file_and_its_side_files_are_readable_by_their_owner_only() {
    let t = Fixture::at("spill/audit-spill.ndjson").await;
    let mut spill = t.spill(&events(600)).await;
    assert_eq!(mode(&t.path), 0o600);
    t.replay_step(&mut spill).await.unwrap();
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
