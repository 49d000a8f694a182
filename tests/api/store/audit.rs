//! The audit trail: batch inserts, filtered keyset pages, and purging in batches.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use tokengate::audit::{AuditEvent, AuditKind, AuditOutcome, AuditQuery, StoredAuditEvent};
use tokengate::store::Store;

use super::at;
use crate::support::both_backends;

both_backends!(store:
    audit_event_round_trips_every_field,
    audit_batch_query_every_filter_and_page,
    audit_text_with_nul_is_stored_and_does_not_fail_its_batch,
    purge_by_age_in_batches,
    purge_beyond_max_rows_in_batches,
);

fn base() -> DateTime<Utc> {
    at("2024-06-01T08:00:00.000Z")
}

/// Which of the generated events a query should return.
type Keep = Box<dyn Fn(&AuditEvent) -> bool>;

/// The `i`-th generated event: four events share each second, so `id` breaks ties.
fn event(i: usize) -> AuditEvent {
    let kinds = AuditKind::ALL;
    AuditEvent {
        time: base() + TimeDelta::seconds((i / 4) as i64),
        kind: kinds[i % kinds.len()],
        outcome: [
            AuditOutcome::Allowed,
            AuditOutcome::Denied,
            AuditOutcome::PassedOn,
        ][i % 3],
        user: (!i.is_multiple_of(10)).then(|| ["alice", "bob", "carol"][i % 3].into()),
        token_id: Some(format!("tok{:09}", i % 7).into()),
        client_ip: Some(
            if i.is_multiple_of(2) {
                "79.209.73.23"
            } else {
                "2001:db8::1"
            }
            .parse()
            .unwrap(),
        ),
        method: Some("GET".into()),
        path: Some(format!("/rest/api/1.0/projects/{i}").into()),
        request_id: Some(format!("@A6X2OXx532x{i}x0").into()),
        node_id: "A6X2OX".into(),
        actor: None,
        attributes: json!({ "i": i }).into(),
    }
}

async fn all_pages(store: &dyn Store, mut query: AuditQuery) -> Vec<StoredAuditEvent> {
    let mut out: Vec<StoredAuditEvent> = Vec::new();
    loop {
        let page = store.query_audit(&query).await.unwrap();
        assert!(page.len() <= query.limit as usize);
        let Some(last) = page.last() else { break };
        query.after = Some((last.event.time, last.id));
        out.extend(page);
    }
    for pair in out.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            (a.event.time, a.id) > (b.event.time, b.id),
            "not newest first: {} then {}",
            a.id,
            b.id
        );
    }
    out
}

fn paths(events: impl IntoIterator<Item = AuditEvent>) -> Vec<String> {
    let mut p: Vec<_> = events.into_iter().map(|e| e.path.unwrap().into()).collect();
    p.sort();
    p
}

async fn audit_event_round_trips_every_field(store: Arc<dyn Store>) {
    let full = AuditEvent {
        time: at("2024-06-01T08:52:38.540Z"),
        kind: AuditKind::ScopeDenied,
        outcome: AuditOutcome::Denied,
        user: Some("automation-user \\ \"ü😀\"".into()),
        token_id: Some("abcdefghijkl".into()),
        client_ip: Some("2001:db8::42".parse().unwrap()),
        method: Some("POST".into()),
        path: Some("/rest/ssh/1.0/keys?x=\"y\"\n\t\\u0041%00".into()),
        request_id: Some("@A6X2OXx532x2669x0".into()),
        node_id: "A6X2OX".into(),
        actor: Some("admin-api".to_owned()),
        attributes: json!({ "reason": "read-only", "limit": { "requests": 5, "period_seconds": 300 }, "list": [1, "two", null, true] }).into(),
    };
    let bare = AuditEvent {
        time: at("2024-06-01T08:52:38.541Z"),
        kind: AuditKind::Fallback,
        outcome: AuditOutcome::PassedOn,
        user: None,
        token_id: None,
        client_ip: None,
        method: None,
        path: None,
        request_id: None,
        node_id: "N".into(),
        actor: None,
        attributes: json!({}).into(),
    };
    store.insert_audit(&[]).await.unwrap();
    store
        .insert_audit(&[full.clone(), bare.clone()])
        .await
        .unwrap();
    let got = store
        .query_audit(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let got: Vec<_> = got.into_iter().map(|e| e.event).collect();
    assert_eq!(got, vec![bare, full]);
}

/// A client can present a Basic user name holding U+0000, which PostgreSQL text cannot store.
/// The batch with it is stored whole, the character kept as U+FFFD, on both backends.
async fn audit_text_with_nul_is_stored_and_does_not_fail_its_batch(store: Arc<dyn Store>) {
    let mut poisoned = event(1);
    poisoned.user = Some("ev\0il".into());
    poisoned.path = Some("/rest/\0".into());
    poisoned.attributes = json!({ "reason": "not_a_token", "k\0": ["a\0b", { "c": "\0" }] }).into();
    let batch = vec![event(0), poisoned, event(2)];
    store.insert_audit(&batch).await.unwrap();
    let mut got: Vec<AuditEvent> = store
        .query_audit(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    got.reverse();
    let mut expected = batch;
    expected[1].user = Some("ev\u{FFFD}il".into());
    expected[1].path = Some("/rest/\u{FFFD}".into());
    expected[1].attributes =
        json!({ "reason": "not_a_token", "k\u{FFFD}": ["a\u{FFFD}b", { "c": "\u{FFFD}" }] }).into();
    assert_eq!(got, expected);
}

async fn audit_batch_query_every_filter_and_page(store: Arc<dyn Store>) {
    // More rows than one statement could bind parameters for on either backend, in one call.
    const N: usize = 6_000;
    let events: Vec<AuditEvent> = (0..N).map(event).collect();
    store.insert_audit(&events).await.unwrap();

    let everything = all_pages(
        &*store,
        AuditQuery {
            limit: 1_000,
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(everything.len(), N);
    let ids: HashSet<_> = everything.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), N);
    let mut by_path: Vec<_> = everything.iter().map(|e| e.event.clone()).collect();
    by_path.sort_by_key(|e| e.path.clone());
    let mut expected = events.clone();
    expected.sort_by_key(|e| e.path.clone());
    assert_eq!(by_path, expected);

    let since = base() + TimeDelta::seconds(100);
    let until = base() + TimeDelta::seconds(700);
    let filters: Vec<(AuditQuery, Keep)> = vec![
        (
            AuditQuery {
                user: Some("alice".into()),
                ..AuditQuery::default()
            },
            Box::new(|e| e.user.as_deref() == Some("alice")),
        ),
        (
            AuditQuery {
                kind: Some(AuditKind::RateLimited),
                ..AuditQuery::default()
            },
            Box::new(|e| e.kind == AuditKind::RateLimited),
        ),
        (
            AuditQuery {
                token_id: Some("tok000000003".into()),
                ..AuditQuery::default()
            },
            Box::new(|e| e.token_id.as_deref() == Some("tok000000003")),
        ),
        (
            AuditQuery {
                since: Some(since),
                until: Some(until),
                ..AuditQuery::default()
            },
            Box::new(move |e| e.time >= since && e.time < until),
        ),
        (
            // Sub-millisecond bounds: the event at `since` is after it, the one at `until` too.
            AuditQuery {
                since: Some(since - TimeDelta::nanoseconds(1)),
                until: Some(until + TimeDelta::nanoseconds(1)),
                ..AuditQuery::default()
            },
            Box::new(move |e| e.time >= since && e.time <= until),
        ),
        (
            AuditQuery {
                user: Some("bob".into()),
                kind: Some(AuditKind::AuthFailed),
                token_id: Some("tok000000001".into()),
                since: Some(since),
                until: Some(until + TimeDelta::seconds(500)),
                ..AuditQuery::default()
            },
            Box::new(move |e| {
                e.user.as_deref() == Some("bob")
                    && e.kind == AuditKind::AuthFailed
                    && e.token_id.as_deref() == Some("tok000000001")
                    && e.time >= since
                    && e.time < until + TimeDelta::seconds(500)
            }),
        ),
    ];
    for (query, keep) in filters {
        let expected: Vec<_> = events.iter().filter(|e| keep(e)).cloned().collect();
        assert!(!expected.is_empty(), "{query:?}");
        let got = all_pages(
            &*store,
            AuditQuery {
                limit: 97,
                ..query.clone()
            },
        )
        .await;
        assert_eq!(
            paths(got.into_iter().map(|e| e.event)),
            paths(expected),
            "{query:?}"
        );
    }

    let first = store
        .query_audit(&AuditQuery {
            limit: 3,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(first[0].event.time, events[N - 1].time);
    assert!(
        store
            .query_audit(&AuditQuery::default())
            .await
            .unwrap()
            .is_empty(),
        "limit 0"
    );
}

/// Purges until a call deletes nothing, returning each call's count.
async fn purge_all(
    store: &dyn Store,
    older_than: DateTime<Utc>,
    max_rows: Option<u64>,
    batch: u32,
) -> Vec<u64> {
    let mut counts = Vec::new();
    loop {
        let n = store
            .purge_audit(older_than, max_rows, batch)
            .await
            .unwrap();
        assert!(n <= u64::from(batch));
        counts.push(n);
        if n == 0 {
            return counts;
        }
    }
}

async fn remaining(store: &dyn Store) -> Vec<AuditEvent> {
    let all = all_pages(
        store,
        AuditQuery {
            limit: 1_000,
            ..AuditQuery::default()
        },
    )
    .await;
    all.into_iter().map(|e| e.event).collect()
}

async fn purge_by_age_in_batches(store: Arc<dyn Store>) {
    let events: Vec<AuditEvent> = (0..200).map(event).collect();
    store.insert_audit(&events).await.unwrap();
    // Nothing is older than the first event.
    assert_eq!(purge_all(&*store, base(), None, 15).await, [0]);
    // 40 seconds in: events 0..160 are older; the 4 at exactly 40 s stay.
    let cutoff = base() + TimeDelta::seconds(40);
    assert_eq!(purge_all(&*store, cutoff, None, 64).await, [64, 64, 32, 0]);
    let expected: Vec<_> = events
        .iter()
        .filter(|e| e.time >= cutoff)
        .cloned()
        .collect();
    assert_eq!(paths(remaining(&*store).await), paths(expected));
    // A bound a nanosecond after 40 s rounds up: the events at 40 s are older than it.
    assert_eq!(
        purge_all(&*store, cutoff + TimeDelta::nanoseconds(1), None, 100).await,
        [4, 0]
    );
    assert_eq!(purge_all(&*store, cutoff, None, 0).await, [0]);
}

async fn purge_beyond_max_rows_in_batches(store: Arc<dyn Store>) {
    let events: Vec<AuditEvent> = (0..100).map(event).collect();
    store.insert_audit(&events).await.unwrap();
    let long_ago = base() - TimeDelta::days(1);
    assert_eq!(purge_all(&*store, long_ago, Some(100), 10).await, [0]);
    assert_eq!(purge_all(&*store, long_ago, Some(1_000), 10).await, [0]);

    // Keep the newest 30 (by time, then id): 70 go, 25 at a time.
    assert_eq!(
        purge_all(&*store, long_ago, Some(30), 25).await,
        [25, 25, 20, 0]
    );
    let left = remaining(&*store).await;
    assert_eq!(paths(left), paths(events[70..].iter().cloned()));

    // Age and count together: whichever removes more wins.
    let cutoff = base() + TimeDelta::seconds(20); // events 80.. stay by age
    assert_eq!(purge_all(&*store, cutoff, Some(25), 1_000).await, [10, 0]);
    assert_eq!(purge_all(&*store, cutoff, Some(5), 1_000).await, [15, 0]);
    assert_eq!(
        paths(remaining(&*store).await),
        paths(events[95..].iter().cloned())
    );
    assert_eq!(purge_all(&*store, long_ago, Some(0), 2).await, [2, 2, 1, 0]);
    assert!(remaining(&*store).await.is_empty());
}
