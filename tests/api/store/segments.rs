//! The SQLite audit trail's segments: events written as rows by a release before them are
//! moved into segments when the database is migrated, and keep their order and every field.

use chrono::TimeDelta;
use sqlx::{Connection, SqliteConnection};
use tokengate::audit::{Attributes, AuditEvent, AuditKind, AuditOutcome, AuditQuery};
use tokengate::store;

use super::at;
use crate::support::{execute_raw, fresh_sqlite_url};

/// The `audit_events` table as migrations 0001 and 0002 made it.
const ROW_TABLE: &str = "CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, kind TEXT NOT NULL,
    outcome TEXT NOT NULL, user_name TEXT, token_id TEXT, client_ip TEXT, method TEXT,
    path TEXT, request_id TEXT, node_id TEXT NOT NULL, actor TEXT,
    attributes TEXT NOT NULL DEFAULT '{}') STRICT";

#[tokio::test]
async fn rows_of_an_earlier_release_move_into_segments_on_migrate() {
    let (url, _dir) = fresh_sqlite_url().await;
    execute_raw(&url, ROW_TABLE).await;
    // 5,000 rows, ids from 200,000: more than one segment holds. Four share each second, so
    // ids break ties.
    execute_raw(
        &url,
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4999)
         INSERT INTO audit_events (id, time, kind, outcome, user_name, token_id, client_ip,
             method, path, request_id, node_id, actor, attributes)
         SELECT 200000 + i, 1717228800000 + (i / 4) * 1000,
                CASE WHEN i % 2 = 0 THEN 'auth_succeeded' ELSE 'token_revoked' END,
                'allowed', CASE WHEN i % 3 = 0 THEN NULL ELSE 'alice' END, 'abcdefghijkl',
                CASE WHEN i % 2 = 0 THEN '2001:db8::1' ELSE NULL END, 'GET',
                '/rest/api/1.0/projects/' || i, '@A6X2OXx532x' || i || 'x0', 'A6X2OX',
                CASE WHEN i % 2 = 0 THEN NULL ELSE 'cli' END, '{\"i\":' || i || '}'
         FROM n",
    )
    .await;
    // A row this release cannot read: left out, and no reason to refuse to start.
    execute_raw(
        &url,
        "INSERT INTO audit_events (time, kind, outcome, node_id) \
         VALUES (1717228800000, 'not_a_type', 'allowed', 'A6X2OX')",
    )
    .await;

    let store = store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    // Again: nothing left to move, and the row table is gone.
    store.migrate().await.unwrap();

    let mut query = AuditQuery {
        limit: 700,
        ..AuditQuery::default()
    };
    let mut all = Vec::new();
    loop {
        let page = store.query_audit(&query).await.unwrap();
        let Some(last) = page.last() else { break };
        query.after = Some((last.event.time, last.id));
        all.extend(page);
    }
    assert_eq!(all.len(), 5_000);
    // No id a row had (200,000 to 205,000) is given to another event.
    assert!(all.iter().all(|e| e.id > 205_000), "{}", all[4_999].id);
    // Newest first, and within a second the later row first: the rows' order is kept.
    for (n, stored) in all.iter().enumerate() {
        let i = 4_999 - n;
        let e = &stored.event;
        assert_eq!(
            e.path.as_deref(),
            Some(&*format!("/rest/api/1.0/projects/{i}"))
        );
        assert_eq!(
            e.time,
            at("2024-06-01T08:00:00Z") + TimeDelta::seconds(i as i64 / 4)
        );
        let kind = if i % 2 == 0 {
            AuditKind::AuthSucceeded
        } else {
            AuditKind::TokenRevoked
        };
        assert_eq!(e.kind, kind);
        assert_eq!(e.user.as_deref(), (i % 3 != 0).then_some("alice"));
        assert_eq!(
            e.client_ip,
            (i % 2 == 0).then(|| "2001:db8::1".parse().unwrap())
        );
        assert_eq!(e.actor.as_deref(), (i % 2 == 1).then_some("cli"));
        assert_eq!(
            e.request_id.as_deref(),
            Some(&*format!("@A6X2OXx532x{i}x0"))
        );
        assert_eq!(e.attributes, serde_json::json!({ "i": i }));
    }
    let alice = store
        .query_audit(&AuditQuery {
            user: Some("alice".into()),
            kind: Some(AuditKind::TokenRevoked),
            limit: 5_000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        alice.len(),
        (0..5_000).filter(|i| i % 3 != 0 && i % 2 == 1).count()
    );
}

async fn key_rows(url: &str) -> Vec<(String, i64)> {
    let mut conn = SqliteConnection::connect(url).await.unwrap();
    sqlx::query_as("SELECT key, segment_id FROM audit_segment_keys ORDER BY key, segment_id")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

fn event(user: &str, second: i64) -> AuditEvent {
    AuditEvent {
        time: at("2024-06-01T08:00:00Z") + TimeDelta::seconds(second),
        kind: AuditKind::AuthSucceeded,
        outcome: AuditOutcome::Allowed,
        user: Some(user.into()),
        token_id: Some(format!("{user:x<12}").into()),
        client_ip: None,
        method: Some("GET".into()),
        path: Some("/rest/api/1.0/projects".into()),
        request_id: Some(format!("@A6X2OXx532x{second}x0").into()),
        node_id: "A6X2OX".into(),
        actor: None,
        attributes: Attributes::Pair("scope", "read-only"),
    }
}

#[tokio::test]
async fn a_purge_leaves_no_key_of_an_event_it_removed() {
    let (url, _dir) = fresh_sqlite_url().await;
    let store = store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    // Segment 1: alice then bob; segment 2: carol.
    store
        .insert_audit(&[event("alice", 0), event("bob", 10)])
        .await
        .unwrap();
    store.insert_audit(&[event("carol", 20)]).await.unwrap();
    let keys = |rows: Vec<(String, i64)>| rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(key_rows(&url).await),
        [
            "t:alicexxxxxxx",
            "t:bobxxxxxxxxx",
            "t:carolxxxxxxx",
            "u:alice",
            "u:bob",
            "u:carol"
        ]
    );
    // alice's event goes: the first segment is rewritten without her keys.
    let cutoff = at("2024-06-01T08:00:05Z");
    assert_eq!(store.purge_audit(cutoff, None, 100).await.unwrap(), 1);
    assert_eq!(
        keys(key_rows(&url).await),
        ["t:bobxxxxxxxxx", "t:carolxxxxxxx", "u:bob", "u:carol"]
    );
    let alice = AuditQuery {
        user: Some("alice".into()),
        limit: 10,
        ..AuditQuery::default()
    };
    assert!(store.query_audit(&alice).await.unwrap().is_empty());
    // Everything goes: no key row is left behind.
    assert_eq!(
        store
            .purge_audit(at("2024-06-02T00:00:00Z"), None, 100)
            .await
            .unwrap(),
        2
    );
    assert!(key_rows(&url).await.is_empty());
}
