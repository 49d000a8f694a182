//! When things go wrong: a bad config, Bitbucket down or slow, SIGTERM with a request in
//! flight, an oversized request head.

use std::time::{Duration, Instant};

use super::{request_id, sqlite};
use crate::support::app::{run_binary, spawn_app};
use crate::support::raw::raw_exchange;

#[test]
fn a_bad_config_exits_with_code_2_and_names_the_key() {
    let cases = [
        ("[proxy]\nlisten = \"not-an-address\"\n", "proxy.listen"),
        (
            "[auth]\nfailed_attempts_per_ip = \"lots\"\n",
            "auth.failed_attempts_per_ip",
        ),
        ("[upstream]\nurl = \"ftp://bitbucket\"\n", "upstream.url"),
        ("[proxy]\nlisten_port = 8080\n", "listen_port"),
    ];
    for (config, key) in cases {
        for command in ["check-config", "serve"] {
            let run = run_binary(config, &[command]);
            assert_eq!(
                run.status.code(),
                Some(2),
                "{command} with {config:?}: {run:?}"
            );
            assert!(
                run.stderr.contains(key),
                "{command} with {config:?} does not name {key}: {run:?}"
            );
            assert_eq!(
                run.stdout, "",
                "{command} printed something for a bad config"
            );
        }
    }
}

/// Asserts a body is exactly Bitbucket's error shape with one non-empty message.
fn assert_bitbucket_error(body: &str) {
    let value: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
    let message = value["errors"][0]["message"].as_str().expect("a message");
    assert!(!message.is_empty());
    let expected = serde_json::json!({"errors": [{"context": null, "message": message, "exceptionName": null}]});
    assert_eq!(value, expected);
    assert!(
        body.starts_with(r#"{"errors":[{"context":null,"message":"#),
        "{body}"
    );
    assert!(body.ends_with(r#","exceptionName":null}]}"#), "{body}");
}

#[tokio::test]
async fn a_stopped_upstream_gives_502_in_bitbucket_shape() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
    let url = format!("http://{}", dead.local_addr().expect("bound"));
    drop(dead);
    let app = spawn_app(sqlite().upstream_url(url)).await;
    let response = app
        .client
        .get(format!("{}/projects", app.proxy_url()))
        .send()
        .await
        .expect("sending");
    assert_eq!(response.status(), 502);
    let id = request_id(&response);
    let line = app.line_for(&id).await;
    assert_eq!(line.level, "WARN", "{line:?}");
    assert!(
        line.message.contains(
            "Bitbucket could not be reached: client error (Connect): tcp connect error: \
             Connection refused"
        ),
        "{line:?}"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("application/json")
    );
    assert_bitbucket_error(&response.text().await.expect("body"));
    app.finish().await;
}

#[tokio::test]
async fn an_upstream_slower_than_response_timeout_gives_504() {
    let app = spawn_app(sqlite().set("upstream.response_timeout", "1s")).await;
    let started = Instant::now();
    let response = app
        .client
        .get(format!("{}/rest/api/1.0/slow", app.proxy_url()))
        .send()
        .await
        .expect("sending");
    let took = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "answered after {took:?}"
    );
    assert_bitbucket_error(&response.text().await.expect("body"));
    app.upstream.release_slow();
    app.finish().await;
}

#[tokio::test]
async fn sigterm_lets_a_slow_request_finish_refuses_new_connections_and_exits_0() {
    let mut app = spawn_app(sqlite()).await;
    let slow = tokio::spawn(
        app.client
            .get(format!("{}/projects/slow", app.proxy_url()))
            .send(),
    );
    app.upstream.wait_for_requests(1).await;

    app.sigterm();
    app.wait_for_line("the listener closing", |l| {
        l.message.starts_with("stopped accepting")
    })
    .await;
    let refused = tokio::net::TcpStream::connect(app.proxy_addr()).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "a new connection after SIGTERM: {refused:?}"
    );

    app.upstream.release_slow();
    let response = slow
        .await
        .expect("the slow request task")
        .expect("the slow request finished");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), r#"{"ok":true}"#);
    let status = app.wait_for_exit().await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let app = spawn_app(sqlite()).await;
    let request = |size: usize| {
        format!(
            "GET /projects HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            app.proxy_addr(),
            "a".repeat(size)
        )
    };
    let (status, _) = raw_exchange(app.proxy_addr(), request(32 * 1024).as_bytes()).await;
    assert_eq!(status, 200, "a head under proxy.max_header_bytes passes");
    let (status, _) = raw_exchange(app.proxy_addr(), request(80 * 1024).as_bytes()).await;
    assert_eq!(status, 431);
    assert_eq!(
        app.upstream.requests().len(),
        1,
        "the oversized request was forwarded"
    );
    app.finish().await;
}
