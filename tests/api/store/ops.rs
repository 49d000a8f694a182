//! Rotation, stored-credential listing and deletion, and expiry notice claims, on both
//! backends: what each write leaves in the store, and what it announces to watchers.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tokengate::store::{Change, NoticeKey, NoticeStep, Store, StoreError, TokenRotation};

use super::{at, new_token, record_of};
use crate::support::both_backends;

both_backends!(store:
    rotation_without_grace_revokes_the_old_token_and_announces_both,
    rotation_with_grace_moves_the_expiry_and_never_later,
    rotation_of_a_revoked_or_unknown_token_writes_nothing,
    credentials_are_listed_by_user_and_deleted_with_an_announcement,
    a_notice_is_claimed_once_and_taken_over_only_when_released_or_stale,
    expiring_tokens_leave_out_revoked_replaced_and_far_ones,
);
both_backends!(url: a_schema_migrated_by_a_newer_version_is_accepted);

/// Rolling upgrades and rollbacks: a gateway starts on a database that a newer version has
/// already migrated further (migrations only add).
async fn a_schema_migrated_by_a_newer_version_is_accepted(url: String) {
    let checksum = if url.starts_with("sqlite:") {
        "X'00'"
    } else {
        "decode('00', 'hex')"
    };
    crate::support::execute_raw(
        &url,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (99990101, 'from a newer version', true, {checksum}, 0)"
        ),
    )
    .await;
    let store = tokengate::store::connect(&url, 2).await.unwrap();
    store.migrate().await.expect("an older version starts");
    store.ping().await.unwrap();
}

async fn next_change(changes: &mut tokio::sync::mpsc::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a change within 5 s")
        .expect("the watch goes on")
}

async fn rotation_without_grace_revokes_the_old_token_and_announces_both(store: Arc<dyn Store>) {
    let old = new_token("alice", at("2024-03-01T12:00:00Z"));
    store.insert_token(&old).await.unwrap();
    let mut changes = store.watch().await.unwrap();
    let mut successor = new_token("alice", at("2024-03-02T12:00:00Z"));
    successor.description = old.description.clone();
    let now = at("2024-03-02T12:00:00.123Z");
    let TokenRotation::Rotated { before, after, new } = store
        .rotate_token(&old.id, &successor, now, None)
        .await
        .unwrap()
    else {
        panic!("rotated");
    };
    assert_eq!(before, record_of(&old));
    assert_eq!(after.revoked_at, Some(now));
    assert_eq!(after.expires_at, None);
    assert_eq!(new, record_of(&successor));
    assert_eq!(store.get_token(&old.id).await.unwrap(), Some(after));
    let heard = [
        next_change(&mut changes).await,
        next_change(&mut changes).await,
    ];
    assert!(heard.contains(&Change::Token(old.id.clone())), "{heard:?}");
    assert!(
        heard.contains(&Change::Token(successor.id.clone())),
        "{heard:?}"
    );
}

async fn rotation_with_grace_moves_the_expiry_and_never_later(store: Arc<dyn Store>) {
    let now = at("2024-03-02T12:00:00Z");
    let mut far = new_token("alice", at("2024-03-01T12:00:00Z"));
    far.expires_at = Some(at("2024-06-01T00:00:00Z"));
    store.insert_token(&far).await.unwrap();
    let grace_end = now + TimeDelta::hours(1);
    let first = new_token("alice", now);
    let Ok(TokenRotation::Rotated { after, .. }) = store
        .rotate_token(&far.id, &first, now, Some(grace_end))
        .await
    else {
        panic!("rotated");
    };
    assert_eq!(
        (after.expires_at, after.revoked_at),
        (Some(grace_end), None)
    );

    // A token expiring before the grace ends keeps its own expiry.
    let mut soon = new_token("alice", at("2024-03-01T12:00:00Z"));
    soon.expires_at = Some(now + TimeDelta::minutes(5));
    store.insert_token(&soon).await.unwrap();
    let Ok(TokenRotation::Rotated { after, .. }) = store
        .rotate_token(&soon.id, &new_token("alice", now), now, Some(grace_end))
        .await
    else {
        panic!("rotated");
    };
    assert_eq!(after.expires_at, soon.expires_at);

    // A token in its grace is not rotated again: a retried rotation makes no second successor.
    let second = new_token("alice", now);
    let again = store
        .rotate_token(&far.id, &second, now, Some(grace_end))
        .await
        .unwrap();
    assert!(
        matches!(&again, TokenRotation::Replaced { by, .. } if *by == first.id),
        "{again:?}"
    );
    assert_eq!(store.get_token(&second.id).await.unwrap(), None);
}

async fn rotation_of_a_revoked_or_unknown_token_writes_nothing(store: Arc<dyn Store>) {
    let now = at("2024-03-02T12:00:00Z");
    let old = new_token("alice", at("2024-03-01T12:00:00Z"));
    store.insert_token(&old).await.unwrap();
    store.revoke_token(&old.id, now).await.unwrap();
    let successor = new_token("alice", now);
    let revoked = store
        .rotate_token(&old.id, &successor, now, None)
        .await
        .unwrap();
    assert!(matches!(revoked, TokenRotation::Revoked(_)), "{revoked:?}");
    let unknown = store
        .rotate_token(&successor.id, &new_token("x", now), now, None)
        .await
        .unwrap();
    assert_eq!(unknown, TokenRotation::Unknown);
    assert_eq!(store.get_token(&successor.id).await.unwrap(), None);

    // A taken new id is a conflict, and the old token is left as it was.
    let live = new_token("bob", now);
    store.insert_token(&live).await.unwrap();
    let taken = store.rotate_token(&live.id, &old, now, None).await;
    assert!(matches!(taken, Err(StoreError::Conflict)), "{taken:?}");
    assert_eq!(
        store.get_token(&live.id).await.unwrap(),
        Some(record_of(&live))
    );
}

async fn credentials_are_listed_by_user_and_deleted_with_an_announcement(store: Arc<dyn Store>) {
    assert!(store.list_credentials().await.unwrap().is_empty());
    store
        .put_credential("zoe", b"sealed-z", false)
        .await
        .unwrap();
    store
        .put_credential("adam", b"sealed-a", true)
        .await
        .unwrap();
    store
        .refuse_credential("adam", b"sealed-a", Utc::now())
        .await
        .unwrap();
    let listed = store.list_credentials().await.unwrap();
    let users: Vec<_> = listed.iter().map(|c| c.user.as_str()).collect();
    assert_eq!(users, ["adam", "zoe"]);
    assert!(listed[0].provisioned && listed[0].refused_at.is_some());
    assert!(!listed[1].provisioned && listed[1].refused_at.is_none());
    let stored = store.get_credential("zoe").await.unwrap().unwrap();
    assert_eq!(listed[1].updated_at, stored.updated_at);

    let mut changes = store.watch().await.unwrap();
    assert!(store.delete_credential("zoe").await.unwrap());
    assert_eq!(
        next_change(&mut changes).await,
        Change::Credential("zoe".into())
    );
    assert_eq!(store.get_credential("zoe").await.unwrap(), None);
    assert!(!store.delete_credential("zoe").await.unwrap(), "none left");
    assert_eq!(store.list_credentials().await.unwrap().len(), 1);
}

async fn a_notice_is_claimed_once_and_taken_over_only_when_released_or_stale(
    store: Arc<dyn Store>,
) {
    let now = at("2024-03-02T12:00:00Z");
    let key = NoticeKey {
        token_id: new_token("alice", now).id,
        expires_at: at("2024-03-08T12:00:00Z"),
        window_seconds: 7 * 86_400,
    };
    let stale_before = now - TimeDelta::minutes(15);
    assert!(
        store
            .claim_notice(&key, "a", now, stale_before)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_notice(&key, "b", now, stale_before)
            .await
            .unwrap(),
        "held by a"
    );
    // Only the holder may renew, release or finish it.
    assert!(
        !store
            .settle_notice(&key, "b", NoticeStep::Attempt, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .settle_notice(&key, "a", NoticeStep::Attempt, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .settle_notice(&key, "a", NoticeStep::Release, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_notice(&key, "b", now, stale_before)
            .await
            .unwrap(),
        "released"
    );
    // A claim not renewed for longer than the staleness bound is taken over.
    let later = now + TimeDelta::minutes(20);
    assert!(
        store
            .claim_notice(&key, "c", later, later - TimeDelta::minutes(15))
            .await
            .unwrap()
    );
    assert!(
        !store
            .settle_notice(&key, "b", NoticeStep::Sent, later)
            .await
            .unwrap(),
        "lost"
    );
    assert!(
        store
            .settle_notice(&key, "c", NoticeStep::Sent, later)
            .await
            .unwrap()
    );
    // Sent is final.
    let much_later = later + TimeDelta::days(1);
    assert!(
        !store
            .claim_notice(&key, "d", much_later, much_later)
            .await
            .unwrap()
    );
    // Another window, or a later expiry of the same token, is a notice of its own.
    let other = NoticeKey {
        window_seconds: 86_400,
        ..key.clone()
    };
    assert!(
        store
            .claim_notice(&other, "d", now, stale_before)
            .await
            .unwrap()
    );
    let extended = NoticeKey {
        expires_at: at("2024-04-08T12:00:00Z"),
        ..key.clone()
    };
    assert!(
        store
            .claim_notice(&extended, "d", now, stale_before)
            .await
            .unwrap()
    );
    // Notices of long-past expiries are deleted.
    assert_eq!(
        store
            .purge_notices(at("2024-04-01T00:00:00Z"))
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .claim_notice(&key, "e", much_later, stale_before)
            .await
            .unwrap()
    );
}

async fn expiring_tokens_leave_out_revoked_replaced_and_far_ones(store: Arc<dyn Store>) {
    let now = at("2024-03-02T12:00:00Z");
    let expiring = |hours: i64| {
        let mut t = new_token("alice", at("2024-03-01T12:00:00Z"));
        t.expires_at = Some(now + TimeDelta::hours(hours));
        t
    };
    let (soon, sooner, far, past, revoked, replaced) = (
        expiring(48),
        expiring(2),
        expiring(24 * 30),
        expiring(-1),
        expiring(3),
        expiring(4),
    );
    for t in [&soon, &sooner, &far, &past, &revoked, &replaced] {
        store.insert_token(t).await.unwrap();
    }
    store.insert_token(&new_token("never", now)).await.unwrap();
    store.revoke_token(&revoked.id, now).await.unwrap();
    store
        .rotate_token(
            &replaced.id,
            &new_token("alice", now),
            now,
            Some(now + TimeDelta::hours(1)),
        )
        .await
        .unwrap();
    let found = store
        .expiring_tokens(now, now + TimeDelta::days(7), 100)
        .await
        .unwrap();
    let ids: Vec<_> = found.iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids, [sooner.id.clone(), soon.id.clone()], "soonest first");
    assert_eq!(
        store
            .expiring_tokens(now, now + TimeDelta::days(7), 1)
            .await
            .unwrap()
            .len(),
        1
    );
}
