//! A token's state over time: expiry at its boundary, revocation, last use, the active count;
//! and users' sealed credentials.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokengate::store::{LastUse, Store, TokenQuery, TokenWrite};
use tokengate::token::{TokenId, TokenPatch, TokenRecord, TokenState};

use super::{at, new_token};
use crate::support::both_backends;

both_backends!(store:
    list_state_filter_judges_expiry_at_now,
    revoke_keeps_the_first_time_and_is_idempotent,
    a_revoked_token_is_not_changed,
    of_concurrent_revocations_one_writes,
    concurrent_patches_each_see_the_one_before,
    last_use_never_goes_backwards,
    count_active_tokens,
    credentials_put_replace_get,
    a_refused_credential_stays_refused_until_replaced,
);

async fn list_state_filter_judges_expiry_at_now(store: Arc<dyn Store>) {
    let expires = at("2025-06-01T00:00:00.500Z");
    let mut t = new_token("u", at("2025-01-01T00:00:00Z"));
    t.expires_at = Some(expires);
    store.insert_token(&t).await.unwrap();
    let state_at = |now: DateTime<Utc>| {
        let store = store.clone();
        async move {
            let mut states = Vec::new();
            for state in [TokenState::Active, TokenState::Expired, TokenState::Revoked] {
                let q = TokenQuery {
                    user: None,
                    state: Some(state),
                    now,
                    limit: 10,
                    after: None,
                };
                if !store.list_tokens(&q).await.unwrap().is_empty() {
                    states.push(state);
                }
            }
            let active = store.count_active_tokens(now).await.unwrap();
            assert_eq!(
                active == 1,
                states == [TokenState::Active],
                "count at {now}"
            );
            states
        }
    };
    // Expired exactly at `expires_at` (as `TokenRecord::state` says), and not a nanosecond before.
    assert_eq!(
        state_at(expires - TimeDelta::milliseconds(1)).await,
        [TokenState::Active]
    );
    assert_eq!(
        state_at(expires - TimeDelta::nanoseconds(1)).await,
        [TokenState::Active]
    );
    assert_eq!(state_at(expires).await, [TokenState::Expired]);
    assert_eq!(
        state_at(expires + TimeDelta::nanoseconds(1)).await,
        [TokenState::Expired]
    );
}

async fn revoke_keeps_the_first_time_and_is_idempotent(store: Arc<dyn Store>) {
    let t = new_token("u", at("2024-01-01T00:00:00Z"));
    let other = new_token("u", at("2024-01-01T00:00:00Z"));
    store.insert_token(&t).await.unwrap();
    store.insert_token(&other).await.unwrap();
    let first = at("2024-02-01T00:00:00.250Z");
    let TokenWrite::Written {
        before,
        after: revoked,
    } = store.revoke_token(&t.id, first).await.unwrap()
    else {
        panic!("an unrevoked token is revoked");
    };
    assert_eq!(before.revoked_at, None);
    assert_eq!(revoked.revoked_at, Some(first));
    assert_eq!(revoked.state(first), TokenState::Revoked);

    for later in [first + TimeDelta::days(1), first - TimeDelta::days(1)] {
        let again = store.revoke_token(&t.id, later).await.unwrap();
        assert_eq!(again, TokenWrite::Revoked(revoked.clone()));
    }
    assert_eq!(store.get_token(&t.id).await.unwrap(), Some(revoked));
    assert_eq!(
        store
            .get_token(&other.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}

async fn a_revoked_token_is_not_changed(store: Arc<dyn Store>) {
    let t = new_token("u", at("2024-01-01T00:00:00Z"));
    store.insert_token(&t).await.unwrap();
    let TokenWrite::Written { after: revoked, .. } = store
        .revoke_token(&t.id, at("2024-02-01T00:00:00Z"))
        .await
        .unwrap()
    else {
        panic!("an unrevoked token is revoked");
    };
    let patch = TokenPatch {
        description: Some("after the revocation".into()),
        ..TokenPatch::default()
    };
    assert_eq!(
        store.update_token(&t.id, &patch).await.unwrap(),
        TokenWrite::Revoked(revoked.clone())
    );
    assert_eq!(store.get_token(&t.id).await.unwrap(), Some(revoked));
}

/// Eight revocations at once: one revokes, the others find it revoked, so exactly one caller
/// reports (and audits) the revocation.
async fn of_concurrent_revocations_one_writes(store: Arc<dyn Store>) {
    let t = new_token("u", at("2024-01-01T00:00:00Z"));
    store.insert_token(&t).await.unwrap();
    let revocations: Vec<_> = (0..8)
        .map(|i| {
            let (store, id) = (Arc::clone(&store), t.id.clone());
            tokio::spawn(async move {
                store
                    .revoke_token(&id, at("2024-02-01T00:00:00Z") + TimeDelta::seconds(i))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut written = Vec::new();
    let mut found_revoked = 0;
    for revocation in revocations {
        match revocation.await.unwrap() {
            TokenWrite::Written { after, .. } => written.push(after),
            TokenWrite::Revoked(_) => found_revoked += 1,
            TokenWrite::Unknown => panic!("the token exists"),
        }
    }
    assert_eq!((written.len(), found_revoked), (1, 7));
    assert_eq!(store.get_token(&t.id).await.unwrap(), written.pop());
}

/// Eight patches at once: each one's `before` is the record another left (or the original),
/// never a record another patch has already replaced, so the audit's old values are true.
async fn concurrent_patches_each_see_the_one_before(store: Arc<dyn Store>) {
    let t = new_token("u", at("2024-01-01T00:00:00Z"));
    let original = store.insert_token(&t).await.unwrap();
    let patches: Vec<_> = (0..8)
        .map(|i| {
            let (store, id) = (Arc::clone(&store), t.id.clone());
            tokio::spawn(async move {
                let patch = TokenPatch {
                    description: Some(format!("patch {i}")),
                    ..TokenPatch::default()
                };
                store.update_token(&id, &patch).await.unwrap()
            })
        })
        .collect();
    let mut befores = std::collections::HashSet::new();
    let mut afters = std::collections::HashSet::new();
    for patch in patches {
        let TokenWrite::Written { before, after } = patch.await.unwrap() else {
            panic!("an unrevoked token is patched");
        };
        assert!(
            befores.insert(before.description),
            "two patches saw one record"
        );
        afters.insert(after.description);
    }
    // A chain: the original, then every patch but the last as some other patch's before.
    let last = store.get_token(&t.id).await.unwrap().unwrap().description;
    assert!(befores.contains(&original.description));
    afters.remove(&last);
    befores.remove(&original.description);
    assert_eq!(befores, afters);
}

async fn last_use_never_goes_backwards(store: Arc<dyn Store>) {
    let t = new_token("u", at("2024-01-01T00:00:00Z"));
    let other = new_token("u", at("2024-01-01T00:00:00Z"));
    store.insert_token(&t).await.unwrap();
    store.insert_token(&other).await.unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let use_at = |id: &TokenId, time: &str, addr: &str| LastUse {
        id: id.clone(),
        at: at(time),
        ip: ip(addr),
    };
    let last = |r: TokenRecord| (r.last_used_at, r.last_used_ip);

    store.record_last_used(&[]).await.unwrap();
    // Newer then older in one batch, and an unknown id: the newest wins, nothing fails.
    store
        .record_last_used(&[
            use_at(&t.id, "2024-05-01T10:00:00.500Z", "2001:db8::7"),
            use_at(&t.id, "2024-05-01T09:00:00Z", "10.0.0.1"),
            use_at(
                &TokenId::parse("zzzzzzzzzzzz").unwrap(),
                "2024-05-01T09:00:00Z",
                "10.0.0.1",
            ),
            use_at(&other.id, "2024-04-01T00:00:00Z", "192.0.2.1"),
        ])
        .await
        .unwrap();
    let newest = (
        Some(at("2024-05-01T10:00:00.500Z")),
        Some(ip("2001:db8::7")),
    );
    assert_eq!(last(store.get_token(&t.id).await.unwrap().unwrap()), newest);

    // Older, and equal, in a later batch: still unchanged.
    store
        .record_last_used(&[use_at(&t.id, "2024-05-01T10:00:00.499Z", "10.0.0.2")])
        .await
        .unwrap();
    store
        .record_last_used(&[use_at(&t.id, "2024-05-01T10:00:00.500Z", "10.0.0.3")])
        .await
        .unwrap();
    assert_eq!(last(store.get_token(&t.id).await.unwrap().unwrap()), newest);

    store
        .record_last_used(&[use_at(&t.id, "2024-05-01T10:00:00.501Z", "10.0.0.4")])
        .await
        .unwrap();
    let newer = (Some(at("2024-05-01T10:00:00.501Z")), Some(ip("10.0.0.4")));
    assert_eq!(last(store.get_token(&t.id).await.unwrap().unwrap()), newer);
    let other_last = (Some(at("2024-04-01T00:00:00Z")), Some(ip("192.0.2.1")));
    assert_eq!(
        last(store.get_token(&other.id).await.unwrap().unwrap()),
        other_last
    );
}

async fn count_active_tokens(store: Arc<dyn Store>) {
    let now = at("2025-01-01T00:00:00Z");
    assert_eq!(store.count_active_tokens(now).await.unwrap(), 0);
    let forever = new_token("a", at("2024-01-01T00:00:00Z"));
    let mut later = new_token("b", at("2024-01-01T00:00:00Z"));
    later.expires_at = Some(now + TimeDelta::milliseconds(1));
    let mut expiring_now = new_token("c", at("2024-01-01T00:00:00Z"));
    expiring_now.expires_at = Some(now);
    let revoked = new_token("d", at("2024-01-01T00:00:00Z"));
    for t in [&forever, &later, &expiring_now, &revoked] {
        store.insert_token(t).await.unwrap();
    }
    assert!(matches!(
        store.revoke_token(&revoked.id, now).await.unwrap(),
        TokenWrite::Written { .. }
    ));
    assert_eq!(store.count_active_tokens(now).await.unwrap(), 2);
    assert_eq!(
        store
            .count_active_tokens(now - TimeDelta::milliseconds(1))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .count_active_tokens(now + TimeDelta::milliseconds(1))
            .await
            .unwrap(),
        1
    );
}

async fn credentials_put_replace_get(store: Arc<dyn Store>) {
    let sealed_of = async |user: &str| store.get_credential(user).await.unwrap().map(|c| c.sealed);
    assert_eq!(sealed_of("alice").await, None);
    let sealed = vec![0_u8, 1, 2, 255, 0, 10, 13];
    store.put_credential("alice", &sealed, false).await.unwrap();
    assert_eq!(sealed_of("alice").await, Some(sealed));
    store
        .put_credential("alice", b"replaced", true)
        .await
        .unwrap();
    let stored = store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(stored.sealed, b"replaced".to_vec());
    assert!(stored.provisioned, "replaced by a provisioned one");
    assert_eq!(stored.refused_at, None);
    store.put_credential("bob", b"", false).await.unwrap();
    assert_eq!(sealed_of("bob").await, Some(Vec::new()));
    assert_eq!(sealed_of("ALICE").await, None);
}

async fn a_refused_credential_stays_refused_until_replaced(store: Arc<dyn Store>) {
    let at = Utc::now();
    assert!(
        !store
            .refuse_credential("alice", b"sealed", at)
            .await
            .unwrap(),
        "nothing stored, nothing marked"
    );
    store
        .put_credential("alice", b"sealed", true)
        .await
        .unwrap();
    // A refusal of a credential stored before this one (an answer that overtook a sign-in)
    // leaves this one usable.
    assert!(
        !store
            .refuse_credential("alice", b"the one before", at)
            .await
            .unwrap()
    );
    let stored = store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(stored.refused_at, None, "another credential's refusal");
    assert!(
        store
            .refuse_credential("alice", b"sealed", at)
            .await
            .unwrap()
    );
    let later = at + TimeDelta::seconds(5);
    store
        .refuse_credential("alice", b"sealed", later)
        .await
        .unwrap();
    let refused = store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(
        refused.refused_at.map(|t| t.timestamp_millis()),
        Some(at.timestamp_millis()),
        "the first refusal is kept"
    );
    store.put_credential("alice", b"new", true).await.unwrap();
    let replaced = store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(
        replaced.refused_at, None,
        "a replacement clears the refusal"
    );
}
