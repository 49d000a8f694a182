//! The store the `token` and `credential` commands work on: they never migrate it (only
//! `tokengate migrate` and `serve` do), so on a database behind their release's schema they
//! exit 2 saying to run `tokengate migrate`, changing nothing; and a store that cannot be
//! reached is reported with its cause, not only the pool's timeout.

use super::Setup;
use crate::support::{execute_raw, fresh_postgres_url};

/// The migrations a database has applied, as the migration table lists them.
async fn applied(url: &str) -> Vec<i64> {
    use sqlx::Connection as _;
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    }
}

/// A database the release before this one made: every migration but the newest applied.
async fn one_release_behind(url: &str, backend: &str) -> Vec<i64> {
    use sqlx::migrate::Migrator;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("migrations/{backend}"));
    let migrator = Migrator::new(dir).await.expect("reading the migrations");
    let all: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    let before_newest = all[all.len() - 2];
    if backend == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        migrator.run_to(before_newest, &pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run_to(before_newest, &pool).await.unwrap();
        pool.close().await;
    }
    all
}

async fn commands_on_a_schema_behind_theirs(url: String, backend: &str) {
    let all = one_release_behind(&url, backend).await;
    let newest = *all.last().unwrap();
    let setup = Setup::with_database(&url).await;
    for args in [
        &["token", "list"][..],
        &["token", "create", "--user", "a", "--description", "d"],
        &["token", "revoke", "abcdefghijkl"],
        &["credential", "set", "--user", "alice"],
    ] {
        let run = setup.run(args, "BBDC-credential\n");
        run.fails(2, "run `tokengate migrate`");
        assert!(run.stderr.contains(&format!("{newest:04}")), "{run:?}");
    }
    assert_eq!(
        applied(&url).await,
        all[..all.len() - 1],
        "nothing migrated"
    );

    // `migrate` brings it up to date, and the commands work again.
    setup.run(&["migrate"], "").ok();
    assert_eq!(applied(&url).await, all);
    setup.run(&["token", "list"], "").ok();
}

#[tokio::test]
async fn sqlite_commands_on_a_schema_behind_theirs_exit_2_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    commands_on_a_schema_behind_theirs(url, "sqlite").await;
}

#[tokio::test]
async fn postgres_commands_on_a_schema_behind_theirs_exit_2_and_change_nothing() {
    let url = fresh_postgres_url().await;
    execute_raw(&url, "DROP SCHEMA public CASCADE").await;
    execute_raw(&url, "CREATE SCHEMA public").await;
    commands_on_a_schema_behind_theirs(url, "postgres").await;
}

#[tokio::test]
async fn an_empty_postgres_database_is_not_migrated_by_a_token_command() {
    let url = fresh_postgres_url().await;
    execute_raw(&url, "DROP SCHEMA public CASCADE").await;
    execute_raw(&url, "CREATE SCHEMA public").await;
    let setup = Setup::with_database(&url).await;
    setup
        .run(&["token", "list"], "")
        .fails(2, "run `tokengate migrate`");
    let tables: i64 = {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(tables, 0, "a token command created tables");
}

#[tokio::test]
async fn an_unreachable_database_is_reported_with_its_cause() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let setup = Setup::with_database(&format!(
        "postgres://tokengate@127.0.0.1:{closed}/tokengate"
    ))
    .await;
    for args in [&["token", "list"][..], &["migrate"]] {
        let run = setup.run(args, "");
        run.fails(1, "onnection refused");
        assert!(!run.stderr.contains("pool timed out"), "{run:?}");
    }
    // A database that does not exist says so.
    let url = fresh_postgres_url().await;
    let (server, _) = url.rsplit_once('/').unwrap();
    let setup = Setup::with_database(&format!("{server}/no_such_database")).await;
    setup
        .run(&["token", "list"], "")
        .fails(1, "\"no_such_database\" does not exist");
}
