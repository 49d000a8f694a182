//! The gateway's keep-alive connections to Bitbucket: reused request after request, never
//! reused when an answer was not read to its end or Bitbucket closed them, not taken while a
//! request's upload is still going out, and closed once idle for
//! `upstream.pool_idle_timeout`.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::sqlite;
use crate::support::app::{TestApp, spawn_app};

/// GETs `target` through the gateway and reads the whole answer; its status.
async fn get(app: &TestApp, target: &str) -> u16 {
    let response = app
        .client
        .get(format!("{}{target}", app.proxy_url()))
        .send()
        .await
        .expect("a request through the gateway");
    let status = response.status().as_u16();
    response.bytes().await.expect("the whole body");
    status
}

/// Waits until the gateway's first connection to Bitbucket is closed, then checks that the
/// next request is answered over a second one.
async fn the_next_request_opens_a_second_connection(app: &TestApp) {
    app.upstream.wait_for_open_connections(0).await;
    assert_eq!(get(app, "/rest/api/1.0/projects").await, 200);
    assert_eq!(app.upstream.connections(), 2);
}

#[tokio::test]
async fn requests_in_a_row_share_one_connection_to_bitbucket() {
    let app = spawn_app(sqlite()).await;
    for n in 0..5 {
        assert_eq!(
            get(&app, &format!("/rest/api/1.0/projects?n={n}")).await,
            200
        );
    }
    assert_eq!(get(&app, "/rest/api/1.0/download/300000").await, 200);
    assert_eq!(get(&app, "/rest/api/1.0/projects").await, 200);
    app.upstream.wait_for_requests(7).await;
    // One keep-alive client connection is served by one worker, whose pool keeps one
    // connection to Bitbucket.
    assert_eq!(app.upstream.connections(), 1);
    app.finish().await;
}

#[tokio::test]
async fn a_download_the_client_abandons_is_not_continued_on_the_next_request() {
    let app = spawn_app(sqlite()).await;
    let mut response = app
        .client
        .get(format!(
            "{}/rest/api/1.0/download/{}",
            app.proxy_url(),
            64 << 20
        ))
        .send()
        .await
        .expect("a download through the gateway");
    assert_eq!(response.status(), 200);
    response
        .chunk()
        .await
        .expect("a first chunk")
        .expect("not the end");
    drop(response);
    // The connection that carried the rest of the download is closed, not handed to the next
    // request.
    the_next_request_opens_a_second_connection(&app).await;
    app.finish().await;
}

#[tokio::test]
async fn a_connection_bitbucket_closes_is_replaced() {
    let app = spawn_app(sqlite()).await;
    assert_eq!(get(&app, "/rest/api/1.0/close").await, 200);
    app.upstream.wait_for_open_connections(0).await;
    for _ in 0..3 {
        assert_eq!(get(&app, "/rest/api/1.0/projects").await, 200);
    }
    assert_eq!(app.upstream.connections(), 2);
    app.finish().await;
}

#[tokio::test]
async fn idle_connections_close_after_pool_idle_timeout() {
    let app = spawn_app(sqlite().set("upstream.pool_idle_timeout", "1s")).await;
    assert_eq!(get(&app, "/rest/api/1.0/projects").await, 200);
    assert_eq!(app.upstream.connections(), 1);
    // Bitbucket never closes an idle connection itself: the gateway does.
    the_next_request_opens_a_second_connection(&app).await;
    app.finish().await;
}

#[tokio::test]
async fn a_request_whose_upload_is_still_going_out_does_not_hold_up_the_next_one() {
    // One worker, so both clients share its pool; a request held up would wait out this.
    let app = spawn_app(
        sqlite()
            .set("proxy.worker_threads", 1)
            .set("upstream.response_timeout", "20s"),
    )
    .await;
    // Bitbucket answers before reading the upload, which goes on (one chunk so far).
    let mut uploader = tokio::net::TcpStream::connect(app.proxy_addr())
        .await
        .expect("connecting");
    uploader
        .write_all(
            b"POST /rest/api/1.0/early HTTP/1.1\r\nHost: bitbucket\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n",
        )
        .await
        .expect("the head and a first chunk");
    let mut answer = Vec::new();
    while !answer.ends_with(br#"{"ok":true}"#) {
        let mut chunk = [0; 1024];
        let n = uploader.read(&mut chunk).await.expect("the answer");
        assert_ne!(n, 0, "closed before the answer: {answer:?}");
        answer.extend_from_slice(&chunk[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 "), "{answer:?}");
    // The connection carrying the upload is not ready for another request until it ends.
    let started = std::time::Instant::now();
    assert_eq!(get(&app, "/rest/api/1.0/projects").await, 200);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "held up for {:?}",
        started.elapsed()
    );
    assert_eq!(app.upstream.connections(), 2);
    drop(uploader);
    app.finish().await;
}
