//! Request framing: the gateway reads a request at least as strictly as any server behind it or
//! balancer in front of it, so no two of them can disagree on where a request ends. Every
//! refusal is answered (never a silent close), closes the connection, and forwards nothing.

use super::{request_id, sqlite};
use crate::support::app::{TestApp, spawn_app};
use crate::support::raw::{RawAnswer, raw_exchange, raw_until_closed};

/// A body in chunked coding: `hello`.
const CHUNKED_HELLO: &str = "5\r\nhello\r\n0\r\n\r\n";

/// `POST {path}` with the given header lines and body; the request does not ask to close.
fn post(path: &str, header_lines: &str, body: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: bitbucket.example.com\r\n{header_lines}\r\n{body}")
}

/// Sends `request`, expects `status` and a closed connection, and nothing forwarded.
async fn assert_refused(app: &TestApp, request: &str, status: u16) -> RawAnswer {
    let forwarded = app.upstream.requests().len();
    let answer = raw_until_closed(app.proxy_addr(), request.as_bytes()).await;
    assert_eq!(answer.statuses, [status], "{request:?}: {answer:?}");
    assert_eq!(
        app.upstream.requests().len(),
        forwarded,
        "{request:?} was forwarded"
    );
    answer
}

#[tokio::test]
async fn transfer_encodings_but_one_chunked_are_refused_and_the_connection_closed() {
    let app = spawn_app(sqlite()).await;
    let cases = [
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: x-unknown, chunked\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: x-unknown\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 15\r\n",
        "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: 15\r\nTransfer-Encoding: chunked\r\nContent-Length: 15\r\n",
    ];
    for path in ["/projects/P/upload", "/rest/api/1.0/projects"] {
        for header_lines in cases {
            assert_refused(&app, &post(path, header_lines, CHUNKED_HELLO), 400).await;
        }
    }
    // One chunked coding, in any letter case, is a body like any other.
    for header_lines in [
        "Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding:  Chunked \r\n",
    ] {
        let request = post("/projects/P/upload", header_lines, CHUNKED_HELLO)
            + "GET /projects HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let answer = raw_until_closed(app.proxy_addr(), request.as_bytes()).await;
        assert_eq!(answer.statuses, [200, 200], "{header_lines:?}: {answer:?}");
    }
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 4);
    assert_eq!((seen[0].method.as_str(), seen[0].body_len), ("POST", 5));
    app.finish().await;
}

/// A request with both lengths behind pipelined requests (whose bodies come in either framing)
/// is refused all the same, and the requests before it are answered.
#[tokio::test]
async fn both_lengths_are_refused_behind_pipelined_requests() {
    let app = spawn_app(sqlite()).await;
    let mut request = post("/projects/a", "Content-Length: 5\r\n", "hello");
    request += &post(
        "/projects/b",
        "Transfer-Encoding: chunked\r\n",
        "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n",
    );
    // A body that reads like a head with both lengths, which it is not.
    let lookalike = "\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n";
    request += &post(
        "/projects/c",
        &format!("Content-Length: {}\r\n", lookalike.len()),
        lookalike,
    );
    request += &post(
        "/projects/d",
        "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n",
        CHUNKED_HELLO,
    );
    let answer = raw_until_closed(app.proxy_addr(), request.as_bytes()).await;
    assert_eq!(answer.statuses, [200, 200, 200, 400], "{answer:?}");
    let seen = app.upstream.requests();
    let targets: Vec<(&str, u64)> = seen
        .iter()
        .map(|s| (s.target.as_str(), s.body_len))
        .collect();
    assert_eq!(
        targets,
        [
            ("/projects/a", 5),
            ("/projects/b", 5),
            ("/projects/c", lookalike.len() as u64)
        ]
    );
    app.finish().await;
}

/// A chunked body that breaks its framing is the client's fault: 400 in Bitbucket's shape,
/// and no warning that blames Bitbucket.
#[tokio::test]
async fn a_malformed_chunked_body_gets_400_not_502() {
    let app = spawn_app(sqlite()).await;
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\nnot-hex\r\n\r\n",
        "1ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    ] {
        let request = post("/projects/P/upload", "Transfer-Encoding: chunked\r\n", body);
        let answer = raw_until_closed(app.proxy_addr(), request.as_bytes()).await;
        assert_eq!(answer.statuses, [400], "{body:?}: {answer:?}");
        let error: serde_json::Value =
            serde_json::from_str(&answer.body).expect("Bitbucket's error shape");
        assert!(error["errors"][0]["message"].is_string(), "{}", answer.body);
        let id = answer
            .header("x-arequestid")
            .expect("a request id")
            .to_owned();

        let barrier = app
            .client
            .get(format!("{}/rest/api/1.0/projects", app.proxy_url()))
            .basic_auth("alice", Some("hunter2"))
            .send()
            .await
            .expect("sending");
        let warnings: Vec<_> = app
            .lines_for_after(&id, &request_id(&barrier))
            .await
            .into_iter()
            .filter(|l| l.level == "WARN" || l.level == "ERROR")
            .collect();
        assert_eq!(warnings, [], "{body:?}");
    }
    app.finish().await;
}

#[tokio::test]
async fn an_http_1_1_request_without_exactly_one_host_gets_400() {
    let app = spawn_app(sqlite()).await;
    for request in [
        "GET /projects HTTP/1.1\r\n\r\n",
        "GET /rest/api/1.0/projects HTTP/1.1\r\nAccept: */*\r\n\r\n",
        "GET /projects HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    ] {
        let answer = assert_refused(&app, request, 400).await;
        assert!(answer.header("x-arequestid").is_some(), "{answer:?}");
    }
    // HTTP/1.0 has no Host requirement.
    let (status, _) = raw_exchange(app.proxy_addr(), b"GET /projects HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 200);
    app.finish().await;
}

#[tokio::test]
async fn connect_gets_405_and_asterisk_or_authority_targets_400() {
    let app = spawn_app(sqlite()).await;
    let answer = assert_refused(
        &app,
        "CONNECT bitbucket.example.com:443 HTTP/1.1\r\nHost: bitbucket.example.com:443\r\n\r\n",
        405,
    )
    .await;
    assert!(answer.header("allow").is_some(), "{answer:?}");
    let error: serde_json::Value =
        serde_json::from_str(&answer.body).expect("Bitbucket's error shape");
    assert!(error["errors"][0]["message"].is_string(), "{}", answer.body);
    for request in [
        "OPTIONS * HTTP/1.1\r\nHost: bitbucket.example.com\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: bitbucket.example.com\r\n\r\n",
        "GET bitbucket.example.com:80 HTTP/1.1\r\nHost: bitbucket.example.com\r\n\r\n",
    ] {
        assert_refused(&app, request, 400).await;
    }
    // An absolute-form target is a path like any other.
    let (status, _) = raw_exchange(
        app.proxy_addr(),
        b"GET http://bitbucket.example.com/projects HTTP/1.1\r\nHost: bitbucket.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.upstream.requests()[0].target, "/projects");
    app.finish().await;
}
