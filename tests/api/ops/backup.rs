//! `tokengate backup`: a copy of the SQLite store taken while a gateway serves requests and
//! tokens keep being created passes SQLite's integrity check, holds every token that existed
//! before it started, and is readable only by its owner. It never overwrites a file, and a
//! PostgreSQL store is pointed to pg_dump.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use sqlx::{Connection as _, SqliteConnection};
use tokengate::store::{Store, TokenQuery};
use tokengate::token::Scope;

use crate::support::app::{Backend, Options, TokenOpts, run_binary, spawn_app};

async fn token_ids(store: &dyn Store) -> Vec<String> {
    let query = TokenQuery {
        user: None,
        state: None,
        now: Utc::now(),
        limit: 100_000,
        after: None,
    };
    let tokens = store.list_tokens(&query).await.unwrap();
    tokens.iter().map(|t| t.id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_is_consistent_and_holds_every_token() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    for _ in 0..20 {
        app.create_token("bob", Scope::ReadOnly, TokenOpts::default())
            .await;
    }
    let before = token_ids(&**app.store()).await;

    // Load: requests (each an audit event) and new tokens, until the backup is done.
    let app = Arc::new(app);
    let done = Arc::new(AtomicBool::new(false));
    let load = {
        let (app, done, token) = (Arc::clone(&app), Arc::clone(&done), token.clone());
        tokio::spawn(async move {
            let mut rounds = 0;
            while !done.load(Ordering::SeqCst) && rounds < 10_000 {
                assert_eq!(app.use_token(&token).await, 200);
                app.create_token("carol", Scope::ReadOnly, TokenOpts::default())
                    .await;
                rounds += 1;
            }
            rounds
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.db");
    let config = format!("[database]\nurl = \"{}\"\n", app.database_url());
    let args = ["backup".to_owned(), path.display().to_string()];
    let backup = {
        let (config, args) = (config.clone(), args.clone());
        tokio::task::spawn_blocking(move || {
            run_binary(
                &config,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        })
        .await
        .unwrap()
    };
    done.store(true, Ordering::SeqCst);
    let rounds = load.await.unwrap();
    assert!(rounds > 0, "the gateway was under load");
    assert!(backup.status.success(), "{backup:?}");
    assert!(backup.stdout.contains("integrity check ok"), "{backup:?}");
    let after = token_ids(&**app.store()).await;

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the copy holds token hashes");
    let mut copy = SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap();
    let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut copy)
        .await
        .unwrap();
    assert_eq!(check, ["ok"]);
    let copied: Vec<String> = sqlx::query_scalar("SELECT id FROM tokens")
        .fetch_all(&mut copy)
        .await
        .unwrap();
    for id in &before {
        assert!(copied.contains(id), "token {id} is missing from the copy");
    }
    for id in &copied {
        assert!(
            after.contains(id),
            "the copy holds {id}, which the store never had"
        );
    }
    copy.close().await.unwrap();

    // A restored copy serves: the copied store verifies the token.
    let restored = spawn_app(
        Options::new(Backend::Sqlite).set("database.url", format!("sqlite://{}", path.display())),
    )
    .await;
    assert_eq!(restored.use_token(&token).await, 200);
    restored.finish().await;

    // An existing file is never overwritten.
    let again = run_binary(
        &config,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert!(again.stderr.contains("already exists"), "{again:?}");
    let app = Arc::into_inner(app).expect("the load task ended");
    app.finish().await;
}

#[test]
fn a_postgres_store_is_pointed_to_pg_dump() {
    let out = run_binary(
        "[database]\nurl = \"postgres://tokengate@127.0.0.1:1/tokengate\"\n",
        &["backup", "/tmp/never-written.db"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("pg_dump"), "{out:?}");
    assert!(!std::path::Path::new("/tmp/never-written.db").exists());
}
