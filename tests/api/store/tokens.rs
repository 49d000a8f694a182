//! Tokens: round trips, conflicts, unknown ids, pages with filters, patches.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use tokengate::ratelimit::RateQuota;
use tokengate::store::{Store, StoreError, TokenQuery, TokenWrite};
use tokengate::token::{TokenId, TokenPatch, TokenRecord, TokenState};

use super::{at, full_token, new_token, record_of};
use crate::support::both_backends;

both_backends!(store:
    insert_and_get_round_trip_every_field,
    times_are_kept_to_the_millisecond,
    duplicate_id_is_a_conflict,
    unknown_id_is_none,
    list_pages_newest_first_with_filters,
    update_applies_each_field_and_clears_optional_ones,
);

async fn insert_and_get_round_trip_every_field(store: Arc<dyn Store>) {
    let full = full_token("automation-user");
    let inserted = store.insert_token(&full).await.unwrap();
    assert_eq!(inserted, record_of(&full));
    assert_eq!(
        store.get_token(&full.id).await.unwrap(),
        Some(record_of(&full))
    );

    let bare = new_token("bare", at("2024-03-01T12:00:00Z"));
    assert_eq!(store.insert_token(&bare).await.unwrap(), record_of(&bare));
    assert_eq!(
        store.get_token(&bare.id).await.unwrap(),
        Some(record_of(&bare))
    );

    // The whole u32 range of a request count survives.
    let mut big = new_token("big", at("2024-03-01T12:00:00Z"));
    big.rate_limit = Some(RateQuota::new(u32::MAX, 366 * 86_400).unwrap());
    store.insert_token(&big).await.unwrap();
    assert_eq!(
        store.get_token(&big.id).await.unwrap().unwrap().rate_limit,
        big.rate_limit
    );
}

async fn times_are_kept_to_the_millisecond(store: Arc<dyn Store>) {
    let mut t = new_token("u", at("2024-03-01T12:00:00.123456789Z"));
    t.expires_at = Some(at("1969-12-31T23:59:59.999999Z"));
    let stored = store.insert_token(&t).await.unwrap();
    assert_eq!(stored.created_at, at("2024-03-01T12:00:00.123Z"));
    assert_eq!(stored.expires_at, Some(at("1969-12-31T23:59:59.999Z")));
    assert_eq!(store.get_token(&t.id).await.unwrap().unwrap(), stored);
}

async fn duplicate_id_is_a_conflict(store: Arc<dyn Store>) {
    let first = new_token("alice", at("2024-03-01T12:00:00Z"));
    store.insert_token(&first).await.unwrap();
    let mut again = new_token("mallory", at("2024-03-02T12:00:00Z"));
    again.id = first.id.clone();
    let err = store.insert_token(&again).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(
        store.get_token(&first.id).await.unwrap(),
        Some(record_of(&first))
    );
}

async fn unknown_id_is_none(store: Arc<dyn Store>) {
    let id = TokenId::parse("000000000000").unwrap();
    assert_eq!(store.get_token(&id).await.unwrap(), None);
    assert_eq!(
        store
            .update_token(&id, &TokenPatch::default())
            .await
            .unwrap(),
        TokenWrite::Unknown
    );
    let patch = TokenPatch {
        description: Some("x".into()),
        ..TokenPatch::default()
    };
    assert_eq!(
        store.update_token(&id, &patch).await.unwrap(),
        TokenWrite::Unknown
    );
    assert_eq!(
        store.revoke_token(&id, Utc::now()).await.unwrap(),
        TokenWrite::Unknown
    );
}

/// Reads every page of `query` with `limit` and checks there are no duplicates.
async fn all_pages(store: &dyn Store, mut query: TokenQuery) -> Vec<TokenRecord> {
    let mut out: Vec<TokenRecord> = Vec::new();
    loop {
        let page = store.list_tokens(&query).await.unwrap();
        assert!(page.len() <= query.limit as usize);
        let Some(last) = page.last() else { break };
        query.after = Some((last.created_at, last.id.clone()));
        out.extend(page);
    }
    let ids: HashSet<_> = out.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), out.len(), "a record came twice");
    out
}

fn newest_first(mut records: Vec<TokenRecord>) -> Vec<TokenRecord> {
    records.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    records
}

async fn list_pages_newest_first_with_filters(store: Arc<dyn Store>) {
    let base = at("2024-03-01T12:00:00.000Z");
    let now = base + TimeDelta::days(1);
    let mut all = Vec::new();
    for i in 0..23_i64 {
        let user = if i % 3 == 0 { "alice" } else { "bob" };
        // Groups of three share a creation time, so the id breaks ties.
        let mut t = new_token(user, base + TimeDelta::milliseconds(i / 3));
        if i % 5 == 1 {
            t.expires_at = Some(now - TimeDelta::hours(1));
        }
        let mut record = store.insert_token(&t).await.unwrap();
        if i % 7 == 2 {
            let TokenWrite::Written { after, .. } = store.revoke_token(&t.id, now).await.unwrap()
            else {
                panic!("an unrevoked token is revoked");
            };
            record = after;
        }
        all.push(record);
    }
    let query = TokenQuery {
        user: None,
        state: None,
        now,
        limit: 4,
        after: None,
    };

    let everything = all_pages(&*store, query.clone()).await;
    assert_eq!(everything, newest_first(all.clone()));

    let alice = all_pages(
        &*store,
        TokenQuery {
            user: Some("alice".into()),
            ..query.clone()
        },
    )
    .await;
    let expected: Vec<_> = all.iter().filter(|r| r.user == "alice").cloned().collect();
    assert_eq!(alice, newest_first(expected));

    for state in [TokenState::Active, TokenState::Expired, TokenState::Revoked] {
        for user in [None, Some("bob")] {
            let q = TokenQuery {
                user: user.map(Into::into),
                state: Some(state),
                limit: 3,
                ..query.clone()
            };
            let got = all_pages(&*store, q).await;
            let expected: Vec<_> = all
                .iter()
                .filter(|r| r.state(now) == state && user.is_none_or(|u| r.user == u))
                .cloned()
                .collect();
            assert!(!expected.is_empty());
            assert_eq!(got, newest_first(expected), "{state:?} {user:?}");
        }
    }

    let none = TokenQuery {
        user: Some("nobody".into()),
        ..query.clone()
    };
    assert!(store.list_tokens(&none).await.unwrap().is_empty());
    let zero = TokenQuery { limit: 0, ..query };
    assert!(store.list_tokens(&zero).await.unwrap().is_empty());
}

/// What a patch should do to the record.
type Apply = fn(&mut TokenRecord);

async fn update_applies_each_field_and_clears_optional_ones(store: Arc<dyn Store>) {
    let t = full_token("u");
    let original = store.insert_token(&t).await.unwrap();

    let unchanged = store
        .update_token(&t.id, &TokenPatch::default())
        .await
        .unwrap();
    assert_eq!(
        unchanged,
        TokenWrite::Written {
            before: original.clone(),
            after: original.clone()
        }
    );

    let new_expiry = at("2030-01-01T00:00:00.001Z");
    let new_quota = RateQuota::new(1000, 3600).unwrap();
    let steps: Vec<(TokenPatch, Apply)> = vec![
        (
            TokenPatch {
                description: Some("renamed".into()),
                ..TokenPatch::default()
            },
            |r| r.description = "renamed".into(),
        ),
        (
            TokenPatch {
                expires_at: Some(Some(new_expiry)),
                ..TokenPatch::default()
            },
            |r| r.expires_at = Some(at("2030-01-01T00:00:00.001Z")),
        ),
        (
            TokenPatch {
                expires_at: Some(None),
                ..TokenPatch::default()
            },
            |r| r.expires_at = None,
        ),
        (
            TokenPatch {
                allowed_ips: Some(vec!["fe80::/10".parse().unwrap()]),
                ..TokenPatch::default()
            },
            |r| r.allowed_ips = vec!["fe80::/10".parse().unwrap()],
        ),
        (
            TokenPatch {
                allowed_ips: Some(Vec::new()),
                ..TokenPatch::default()
            },
            |r| {
                r.allowed_ips.clear();
            },
        ),
        (
            TokenPatch {
                rate_limit: Some(Some(new_quota)),
                ..TokenPatch::default()
            },
            |r| r.rate_limit = Some(RateQuota::new(1000, 3600).unwrap()),
        ),
        (
            TokenPatch {
                rate_limit: Some(None),
                ..TokenPatch::default()
            },
            |r| r.rate_limit = None,
        ),
    ];
    let mut expected = original;
    for (patch, apply) in steps {
        let before = expected.clone();
        apply(&mut expected);
        let updated = store.update_token(&t.id, &patch).await.unwrap();
        assert_eq!(
            updated,
            TokenWrite::Written {
                before,
                after: expected.clone()
            },
            "{patch:?}"
        );
        assert_eq!(
            store.get_token(&t.id).await.unwrap(),
            Some(expected.clone())
        );
    }

    let all = TokenPatch {
        description: Some("all at once".into()),
        expires_at: Some(Some(new_expiry)),
        allowed_ips: Some(vec!["127.0.0.1/32".parse().unwrap()]),
        rate_limit: Some(Some(new_quota)),
    };
    let TokenWrite::Written { after: updated, .. } = store.update_token(&t.id, &all).await.unwrap()
    else {
        panic!("an unrevoked token is updated");
    };
    assert_eq!(updated.description, "all at once");
    assert_eq!(updated.expires_at, Some(new_expiry));
    assert_eq!(updated.allowed_ips, vec!["127.0.0.1/32".parse().unwrap()]);
    assert_eq!(updated.rate_limit, Some(new_quota));
    assert_eq!(
        (updated.user, updated.scope, updated.created_at),
        (expected.user, expected.scope, expected.created_at)
    );
}
