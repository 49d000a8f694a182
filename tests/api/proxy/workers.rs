//! The proxy workers: every one of them takes connections, and every line a request writes
//! names the worker that served it.

use std::collections::BTreeSet;

use super::{request_id, sqlite};
use crate::support::app::{run_binary, spawn_app};

#[tokio::test]
async fn connections_are_spread_over_the_workers() {
    // The test config runs two workers, both waiting on the one listening socket: the kernel
    // wakes both for each new connection and whichever accepts first serves it, so 24 fresh
    // connections all landing on one worker would mean the other never took any.
    let app = spawn_app(sqlite()).await;
    let port = app.proxy_addr().port();
    let mut threads = BTreeSet::new();
    for _ in 0..24 {
        let fresh_connection = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client");
        let response = fresh_connection
            .get(format!("{}/rest/api/1.0/projects", app.proxy_url()))
            .basic_auth("alice", Some("hunter2"))
            .send()
            .await
            .expect("sending");
        assert_eq!(response.status(), 200);
        let line = app.line_for(&request_id(&response)).await;
        threads.insert(line.thread);
    }
    let expected: BTreeSet<String> = (1..=2)
        .map(|n| format!("http-nio-{port}-exec-{n}"))
        .collect();
    assert_eq!(threads, expected);
    app.finish().await;
}

/// A second gateway on an address a running one listens on fails at once, instead of quietly
/// taking part of the traffic; the same for the admin address.
#[tokio::test]
async fn a_second_gateway_on_a_taken_address_exits_2() {
    let app = spawn_app(sqlite()).await;
    let database = tempfile::tempdir().expect("a temp dir");
    let database = format!("sqlite://{}/second.db", database.path().display());
    let admin = app.admin_url();
    let admin = admin.trim_start_matches("http://");
    for (key, config) in [
        (
            "proxy.listen",
            format!(
                "[proxy]\nlisten = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"{database}\"\n",
                app.proxy_addr()
            ),
        ),
        (
            "admin.listen",
            format!(
                "[proxy]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"{admin}\"\n[database]\nurl = \"{database}\"\n"
            ),
        ),
    ] {
        let run = run_binary(&config, &["serve"]);
        assert_eq!(run.status.code(), Some(2), "{key}: {run:?}");
        assert!(
            run.stderr.contains("address in use") && run.stderr.contains(key),
            "{key}: {run:?}"
        );
    }
    // The running gateway still answers every connection.
    for _ in 0..8 {
        let fresh_connection = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client");
        let response = fresh_connection
            .get(format!("{}/projects", app.proxy_url()))
            .send()
            .await
            .expect("sending");
        assert_eq!(response.status(), 200);
    }
    app.finish().await;
}
