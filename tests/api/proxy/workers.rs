//! The proxy workers: every one of them takes connections, and every line a request writes
//! names the worker that served it.

use std::collections::BTreeSet;

use super::{request_id, sqlite};
use crate::support::app::spawn_app;

#[tokio::test]
async fn connections_are_spread_over_the_workers() {
    // The test config runs two workers; the kernel spreads connections by their addresses,
    // so 24 fresh connections all landing on one worker would happen once in 8 million runs.
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
