//! Opening stores: URL forms, and failing fast when the database cannot be reached.

use std::sync::Arc;
use std::time::Duration;

use tokengate::store::{self, Backend, Store, StoreError};
use tokio::time::timeout;

use super::{at, new_token};
use crate::support::both_backends;

both_backends!(store: ping);

/// Far more than the store's own acquire timeout, far less than a hung test.
const PROMPTLY: Duration = Duration::from_secs(10);

fn is_unavailable<T>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Unavailable(_)))
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable_promptly() {
    let url = format!("postgres://tokengate@127.0.0.1:{}/tokengate", closed_port());
    let store = match timeout(PROMPTLY, store::connect(&url, 2))
        .await
        .expect("connect hung")
    {
        Ok(store) => store,
        Err(e) => return assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}"),
    };
    assert_eq!(store.backend(), Backend::Postgres);
    let id = tokengate::token::generate().0;
    // Each call gives up on its own; together they take one acquire timeout, not four.
    let (ping, get, migrate, watch) = timeout(PROMPTLY, async {
        tokio::join!(
            store.ping(),
            store.get_token(&id),
            store.migrate(),
            store.watch()
        )
    })
    .await
    .expect("a call to an unreachable database hung");
    assert!(is_unavailable(&ping), "ping");
    assert!(is_unavailable(&get), "get_token");
    assert!(is_unavailable(&migrate), "migrate");
    assert!(is_unavailable(&watch), "watch");
}

#[tokio::test]
async fn unreachable_sqlite_is_unavailable_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let url = format!("sqlite://{}/sub/tokengate.db", file.display());
    let r = timeout(PROMPTLY, store::connect(&url, 2))
        .await
        .expect("connect hung");
    assert!(is_unavailable(&r));
}

#[tokio::test]
async fn unsupported_scheme_is_refused() {
    let r = store::connect("mysql://localhost/db", 2).await;
    assert!(matches!(r, Err(StoreError::UnsupportedUrl)));
}

#[tokio::test]
async fn sqlite_creates_missing_directories_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/tokengate.db");
    let url = format!("sqlite://{}", path.display());
    let store = store::connect(&url, 2).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.unwrap();
    assert!(path.is_file());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn sqlite_in_memory_keeps_its_data_across_calls() {
    let store = store::connect("sqlite::memory:", 4).await.unwrap();
    store.migrate().await.unwrap();
    let t = new_token("u", at("2024-01-01T00:00:00Z"));
    store.insert_token(&t).await.unwrap();
    for _ in 0..5 {
        assert!(store.get_token(&t.id).await.unwrap().is_some());
    }
    let mut changes = store.watch().await.unwrap();
    let revoked = store.revoke_token(&t.id, chrono::Utc::now()).await.unwrap();
    assert!(matches!(revoked, store::TokenWrite::Written { .. }));
    let change = timeout(Duration::from_secs(1), changes.recv())
        .await
        .unwrap();
    assert_eq!(change, Some(store::Change::Token(t.id)));
}

async fn ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    // Migrating again is a no-op.
    store.migrate().await.unwrap();
}
