//! SIGTERM and the admin listener: a client there that never finishes a request cannot keep
//! the gateway from exiting after `proxy.shutdown_grace`, nor from writing last-used times and
//! the audit trail on its way out; and a client that does not send its request head is
//! disconnected after `proxy.header_read_timeout`, as on the proxy listener.

use std::time::{Duration, Instant};

use tokengate::audit::AuditQuery;
use tokengate::token::Scope;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::PATIENCE;
use crate::support::app::{Backend, Options, TokenOpts, spawn_app};

/// Half a request head: the line and one header, without the blank line that ends it.
const HALF_A_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";

#[tokio::test]
async fn an_admin_client_that_never_finishes_its_request_does_not_hold_up_sigterm() {
    let grace = Duration::from_secs(1);
    let mut app = spawn_app(
        Options::new(Backend::Sqlite)
            .set("proxy.shutdown_grace", "1s")
            // Far beyond the grace: only the grace can end the admin client's connection.
            .set("proxy.header_read_timeout", "1m"),
    )
    .await;
    let (id, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let used = app
        .client
        .get(format!("{}/rest/api/1.0/projects", app.proxy_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("a request with the token");
    assert_eq!(used.status(), 200);

    // Half a request head, and nothing more. A second connection's answer tells that the
    // admin server has taken the first one (it takes them in order).
    let admin = app.admin_url().trim_start_matches("http://").to_owned();
    let mut idle = TcpStream::connect(&admin)
        .await
        .expect("connecting to the admin listener");
    idle.write_all(HALF_A_HEAD)
        .await
        .expect("sending half a request head");
    let health = app
        .client
        .get(format!("{}/healthz", app.admin_url()))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), 200);
    drop(health);

    app.sigterm();
    let asked = Instant::now();
    let status = app.wait_for_exit().await;
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took < grace + Duration::from_secs(5),
        "the gateway took {took:?} to exit with a grace of {grace:?}"
    );
    let closing = app
        .wait_for_line("the warning about the admin client", |l| {
            l.message.contains("admin connections still open")
        })
        .await;
    assert_eq!(closing.level, "WARN", "{closing:?}");

    // The final writes happened all the same.
    let record = app
        .store()
        .get_token(&id)
        .await
        .expect("reading the token")
        .expect("the token");
    assert!(
        record.last_used_at.is_some(),
        "the last use was not written"
    );
    let events = app
        .store()
        .query_audit(&AuditQuery {
            token_id: Some(id.as_str().to_owned()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .expect("reading the audit trail");
    assert!(
        !events.is_empty(),
        "the request's audit event was not written"
    );
    // Held open, silent, until the gateway had exited.
    drop(idle);
}

#[tokio::test]
async fn an_admin_client_that_does_not_send_its_request_head_is_disconnected() {
    let app = spawn_app(Options::new(Backend::Sqlite).set("proxy.header_read_timeout", "1s")).await;
    let mut slow = TcpStream::connect(app.admin_url().trim_start_matches("http://"))
        .await
        .expect("connecting to the admin listener");
    slow.write_all(HALF_A_HEAD)
        .await
        .expect("sending half a request head");
    let connected = Instant::now();
    // Whatever the server says first (if anything), it then closes the connection.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut sink = Vec::new();
        slow.read_to_end(&mut sink).await
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection was still open {:?} after half a request head",
        connected.elapsed()
    );
    app.finish().await;
}

#[tokio::test]
async fn sigterm_closes_an_idle_keep_alive_proxy_connection_at_once() {
    // Only SIGTERM's drain can end the connection: neither limit would within the test.
    let mut app = spawn_app(
        Options::new(Backend::Sqlite)
            .set("proxy.shutdown_grace", "1h")
            .set("proxy.header_read_timeout", "1h"),
    )
    .await;
    let mut client = TcpStream::connect(app.proxy_addr())
        .await
        .expect("connecting to the proxy");
    client
        .write_all(b"GET /projects HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("sending a request");
    let mut seen = Vec::new();
    let body = br#"{"ok":true}"#;
    while !seen.ends_with(body) {
        let mut chunk = [0; 4096];
        let n = client.read(&mut chunk).await.expect("reading the answer");
        assert_ne!(n, 0, "closed before the answer: {seen:?}");
        seen.extend_from_slice(&chunk[..n]);
    }
    let answer = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        !answer.contains("connection: close"),
        "kept alive: {answer}"
    );

    app.sigterm();
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut rest))
        .await
        .expect("the gateway closed the idle connection")
        .expect("reading until the gateway closes the connection");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(app.wait_for_exit().await.code(), Some(0));
}
