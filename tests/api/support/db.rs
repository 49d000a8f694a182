//! A fresh, migrated database per test: a new PostgreSQL database in the cluster that
//! `scripts/test.sh` starts (`TG_TEST_PG_URL`), or an SQLite file in a temp dir.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection, PgConnection, SqliteConnection};
use tempfile::TempDir;
use tokengate::store::{self, Store};

/// The variable naming the PostgreSQL server the tests may create databases in.
const PG_URL_VAR: &str = "TG_TEST_PG_URL";

fn pg_server_url() -> String {
    std::env::var(PG_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{PG_URL_VAR} is not set: run the tests with scripts/test.sh, which starts a \
             throwaway PostgreSQL and sets it"
        )
    })
}

/// A name no other test (in this or another process) uses.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "tg_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `base` with its database (the URL path) replaced by `db`.
fn with_database(base: &str, db: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (base, None),
    };
    let authority = head.find("://").map_or(0, |i| i + 3);
    let path = head[authority..]
        .find('/')
        .map_or(head.len(), |i| authority + i);
    let mut url = format!("{}/{db}", &head[..path]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

async fn open_migrated(url: &str) -> Arc<dyn Store> {
    let store = store::connect(url, 5)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    store.migrate().await.expect("migrating a fresh database");
    store
}

/// The URL of a new, migrated PostgreSQL database of its own.
pub(crate) async fn fresh_postgres_url() -> String {
    let server = pg_server_url();
    let name = unique_name();
    let mut conn = PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("connecting to {PG_URL_VAR}={server}: {e}"));
    sqlx::query(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .execute(&mut conn)
        .await
        .expect("creating a test database");
    conn.close().await.ok();
    let url = with_database(&server, &name);
    open_migrated(&url).await;
    url
}

/// A store on a new, migrated PostgreSQL database of its own.
pub(crate) async fn fresh_postgres() -> Arc<dyn Store> {
    open_migrated(&fresh_postgres_url().await).await
}

/// The URL of a new, migrated SQLite file; the file lives as long as the [`TempDir`].
pub(crate) async fn fresh_sqlite_url() -> (String, TempDir) {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let url = format!("sqlite://{}", dir.path().join("tokengate.db").display());
    open_migrated(&url).await;
    (url, dir)
}

/// A store on a new, migrated SQLite file; the file lives as long as the [`TempDir`].
pub(crate) async fn fresh_sqlite() -> (Arc<dyn Store>, TempDir) {
    let (url, dir) = fresh_sqlite_url().await;
    (open_migrated(&url).await, dir)
}

/// Runs one statement directly on either backend, bypassing the store (to plant bad data).
pub(crate) async fn execute_raw(url: &str, sql: &str) {
    let sql = AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite:") {
        let mut conn = SqliteConnection::connect(url)
            .await
            .expect("opening sqlite");
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .expect("raw statement");
        conn.close().await.ok();
    } else {
        let mut conn = PgConnection::connect(url)
            .await
            .expect("connecting to postgres");
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .expect("raw statement");
        conn.close().await.ok();
    }
}

#[test]
fn replaces_the_database_of_a_url() {
    assert_eq!(
        with_database("postgres://u@127.0.0.1:5432/postgres", "x"),
        "postgres://u@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
        "postgres://u@h:1/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
}
