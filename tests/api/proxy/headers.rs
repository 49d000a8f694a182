//! What reaches Bitbucket: untouched requests outside the protected paths, no client-sent
//! identity header, no hop-by-hop headers, `X-Forwarded-*`, and the request id on both sides
//! and in the log line.

use tokengate::token::Scope;

use super::{request_id, sqlite};
use crate::support::app::{NODE_ID, TokenOpts, spawn_app};
use crate::support::log::LogLine;
use crate::support::raw::raw_exchange;

#[tokio::test]
async fn an_unprotected_path_reaches_bitbucket_with_its_authorization_untouched() {
    let app = spawn_app(sqlite()).await;
    let cases = [
        (
            "/projects/P/repos/r/browse?at=refs%2Fheads%2Fmain",
            Some("Basic YWxpY2U6aHVudGVyMg=="),
        ),
        ("/plugins/servlet/x", Some("Bearer BBDC-NzYyMzQ1Njc4OTAx")),
        ("/s/static/app.js", None),
    ];
    for (target, authorization) in cases {
        let mut request = app.client.get(format!("{}{target}", app.proxy_url()));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("sending");
        assert_eq!(response.status(), 200, "{target}");
        let id = request_id(&response);
        assert_eq!(response.text().await.expect("body"), r#"{"ok":true}"#);
        let seen = app.upstream.request_with_id(&id).expect("forwarded");
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.target, target);
        assert_eq!(
            seen.header("authorization").as_deref(),
            authorization,
            "{target}"
        );
        assert_eq!(seen.header("x-forwarded-user"), None);
    }
    app.finish().await;
}

#[tokio::test]
async fn a_client_sent_identity_header_never_reaches_bitbucket() {
    let app = spawn_app(sqlite()).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let bearer = format!("Bearer {token}");
    let password = "Basic YWxpY2U6aHVudGVyMg==";
    let cases: [(&str, Option<&str>, u16, Option<&str>); 6] = [
        ("/projects/P", None, 200, None),
        ("/projects/P", Some(password), 200, None),
        ("/rest/api/1.0/projects", None, 200, None),
        ("/rest/api/1.0/projects", Some(password), 200, None),
        ("/rest/api/1.0/projects", Some(&bearer), 200, Some("alice")),
        (
            "/rest/api/1.0/projects",
            Some("Bearer tgt_forged"),
            401,
            None,
        ),
    ];
    for (path, authorization, status, user) in cases {
        let mut request = app
            .client
            .get(format!("{}{path}", app.proxy_url()))
            .header("x-forwarded-user", "admin")
            .header("X-Forwarded-User", "admin2");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("sending");
        assert_eq!(response.status(), status, "{path} {authorization:?}");
        let seen = app.upstream.request_with_id(&request_id(&response));
        match (status, seen) {
            (200, Some(seen)) => assert_eq!(
                seen.header_values("x-forwarded-user"),
                user.into_iter().collect::<Vec<_>>()
            ),
            (200, None) => panic!("{path} was not forwarded"),
            (_, seen) => assert!(seen.is_none(), "a refused request was forwarded"),
        }
    }
    app.finish().await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded_either_way() {
    let app = spawn_app(sqlite()).await;
    let request = format!(
        "GET /hop-headers HTTP/1.1\r\nHost: {}\r\nConnection: close, X-Hop-Custom\r\nX-Hop-Custom: 1\r\n\
         Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nX-End-To-End: kept\r\n\r\n",
        app.proxy_addr()
    );
    let (status, headers) = raw_exchange(app.proxy_addr(), request.as_bytes()).await;
    assert_eq!(status, 200);

    let seen = app.upstream.wait_for_requests(1).await.remove(0);
    for name in [
        "connection",
        "x-hop-custom",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert_eq!(
            seen.header_values(name),
            Vec::<String>::new(),
            "{name} was forwarded"
        );
    }
    assert_eq!(seen.header("x-end-to-end").as_deref(), Some("kept"));

    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"x-end-to-end"), "{headers:?}");
    for name in ["x-hop-response", "keep-alive"] {
        assert!(
            !names.contains(&name),
            "{name} came back to the client: {headers:?}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn x_forwarded_headers_are_set_and_only_a_trusted_proxy_is_believed() {
    let app = spawn_app(sqlite()).await;
    let host = app.proxy_addr().to_string();
    let response = app
        .client
        .get(format!("{}/projects", app.proxy_url()))
        .send()
        .await
        .expect("sending");
    let seen = app
        .upstream
        .request_with_id(&request_id(&response))
        .expect("forwarded");
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some(host.as_str())
    );

    // An untrusted peer's own claims are kept in the chain but replaced where they decide.
    let response = app
        .client
        .get(format!("{}/projects", app.proxy_url()))
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .expect("sending");
    let seen = app
        .upstream
        .request_with_id(&request_id(&response))
        .expect("forwarded");
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("198.51.100.1, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some(host.as_str())
    );
    app.finish().await;

    let app = spawn_app(sqlite().set("proxy.trusted_proxies", vec!["127.0.0.1/32"])).await;
    let response = app
        .client
        .get(format!("{}/projects", app.proxy_url()))
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "bitbucket.example.com")
        .send()
        .await
        .expect("sending");
    let seen = app
        .upstream
        .request_with_id(&request_id(&response))
        .expect("forwarded");
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("198.51.100.1, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("bitbucket.example.com")
    );
    app.finish().await;
}

#[tokio::test]
async fn request_ids_match_upstream_response_and_log_line() {
    let app = spawn_app(sqlite()).await;
    let port = app.proxy_addr().port();
    for n in 1..=2u32 {
        // A password on a protected path: forwarded to Bitbucket with a fallback line.
        let response = app
            .client
            .get(format!("{}/rest/api/1.0/projects", app.proxy_url()))
            .basic_auth("alice", Some("hunter2"))
            .send()
            .await
            .expect("sending");
        assert_eq!(response.status(), 200);
        let id = request_id(&response);
        let seen = app
            .upstream
            .request_with_id(&id)
            .expect("the upstream got the same X-AREQUESTID");
        assert_eq!(
            seen.header_values("x-arequestid"),
            std::slice::from_ref(&id)
        );

        let fields: Vec<&str> = id
            .strip_prefix('@')
            .expect("starts with @")
            .split('x')
            .collect();
        assert_eq!(fields.len(), 4, "{id}");
        assert_eq!(fields[0], NODE_ID);
        let minute: u32 = fields[1].parse().expect("MINUTE_OF_DAY");
        assert_eq!(
            fields[2],
            n.to_string(),
            "COUNTER counts this process's proxy requests"
        );
        assert_eq!(fields[3], "0", "nothing else was in flight");

        let line = app.line_for(&id).await;
        let logged = line.minute_of_day();
        assert!(
            logged == minute || logged == (minute + 1) % 1440,
            "request id minute {minute}, line time {}",
            line.time
        );
        let thread_n = line
            .thread
            .strip_prefix(&format!("http-nio-{port}-exec-"))
            .unwrap_or_else(|| panic!("thread {:?} does not name port {port}", line.thread));
        assert!(
            thread_n.parse::<u32>().is_ok_and(|n| n >= 1),
            "{}",
            line.thread
        );
        assert_eq!(line.addresses.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            line.request_line.as_deref(),
            Some("GET /rest/api/1.0/projects HTTP/1.1")
        );
    }
    // Every line written inside a request names the proxy's worker threads.
    for line in app
        .log_lines()
        .iter()
        .filter_map(|l| LogLine::parse(l))
        .filter(|l| l.request_id.is_some())
    {
        assert!(
            line.thread.starts_with(&format!("http-nio-{port}-exec-")),
            "{line:?}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn a_client_cannot_strip_the_identity_the_gateway_sets() {
    let app = spawn_app(sqlite()).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let request = format!(
        "GET /rest/api/1.0/projects HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close, X-Forwarded-User, X-Forwarded-For\r\n\r\n",
        app.proxy_addr()
    );
    let (status, _) = raw_exchange(app.proxy_addr(), request.as_bytes()).await;
    assert_eq!(status, 200);
    let seen = app.upstream.wait_for_requests(1).await.remove(0);
    assert_eq!(seen.header_values("x-forwarded-user"), ["alice"]);
    assert_eq!(seen.header_values("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.header("authorization"), None);
    app.finish().await;
}

/// Behind a trusted proxy, an unreadable entry the client wrote must not make the proxy's own
/// address the client's: the address the proxy appended after it decides.
#[tokio::test]
async fn an_unreadable_forwarded_entry_does_not_lift_an_allow_list() {
    let app = spawn_app(sqlite().set("proxy.trusted_proxies", vec!["127.0.0.1/32"])).await;
    let (_, token) = app
        .create_token(
            "carol",
            Scope::ReadOnly,
            TokenOpts {
                allowed_ips: vec!["127.0.0.0/8".parse().unwrap()],
                ..TokenOpts::default()
            },
        )
        .await;
    let send = |xff: &[u8]| {
        let mut request = format!(
            "GET /rest/api/1.0/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\nX-Forwarded-For: "
        )
        .into_bytes();
        request.extend_from_slice(xff);
        request.extend_from_slice(b"\r\n\r\n");
        let addr = app.proxy_addr();
        async move { raw_exchange(addr, &request).await.0 }
    };
    assert_eq!(send(b"127.0.0.9").await, 200, "an allowed client");
    assert_eq!(send(b"203.0.113.5").await, 401);
    assert_eq!(send(b"\xff, 203.0.113.5").await, 401);
    assert_eq!(send(b"203.0.113.5:40123").await, 401);
    assert_eq!(send(b"not-an-address").await, 401, "an unknown client");
    app.finish().await;
}

/// A tokengate token in a header the parser does not read as one (unpadded or URL-safe
/// base64, an oversized value, no scheme) is refused on every path, never passed on to
/// Bitbucket as a foreign credential.
#[tokio::test]
async fn a_token_in_a_malformed_header_is_refused_not_forwarded() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE};

    let app = spawn_app(sqlite()).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let cases = [
        format!("Bearer\t{token}"),
        format!("Basic {}", STANDARD_NO_PAD.encode(format!("alice:{token}"))),
        format!("Basic {}", URL_SAFE.encode(format!("alice:{token}"))),
        format!("Bearer {}{token}", " ".repeat(9000)),
        token.clone(),
    ];
    for path in ["/projects", "/rest/api/1.0/projects"] {
        for value in &cases {
            let response = app
                .client
                .get(format!("{}{path}", app.proxy_url()))
                .header("authorization", value)
                .send()
                .await
                .expect("sending");
            let id = request_id(&response);
            match app.upstream.request_with_id(&id) {
                // Read as a token after all (a tab after the scheme reads like a space; URL-safe
                // base64 may be standard base64 too): authenticated, and the token removed.
                Some(seen) => {
                    assert_eq!(response.status(), 200, "{path} {value:.30}");
                    assert_eq!(path, "/rest/api/1.0/projects", "{value:.30}");
                    assert_eq!(seen.header("authorization"), None);
                    assert_eq!(seen.header("x-forwarded-user").as_deref(), Some("alice"));
                }
                None => assert_eq!(response.status(), 401, "{path} {value:.30}"),
            }
        }
    }
    app.finish().await;
}

/// A request head may hold 64 KiB of path and thousands of forwarded addresses; its decision
/// line stays a few KiB, so a stalled log output cannot turn the line queue into gigabytes.
#[tokio::test]
async fn a_huge_request_head_gives_a_bounded_log_line() {
    let app = spawn_app(sqlite()).await;
    let path = format!("/rest/{}", "a".repeat(60_000));
    let response = app
        .client
        .get(format!("{}{path}", app.proxy_url()))
        .header("authorization", "Bearer tgt_unknown")
        .header("x-forwarded-for", vec!["x"; 2_000].join(","))
        .send()
        .await
        .expect("sending");
    assert_eq!(response.status(), 401);
    let line = app.line_for(&request_id(&response)).await;
    let request_line = line.request_line.as_deref().expect("a request line");
    assert!(
        request_line.starts_with("GET /rest/aaa"),
        "{request_line:.40}"
    );
    assert!(
        request_line.contains("...[clipped] HTTP/1.1"),
        "{request_line:.40}"
    );
    assert!(
        line.message.contains("...[clipped]"),
        "{:.80}",
        line.message
    );
    let addresses = line.addresses.as_deref().expect("addresses");
    assert!(addresses.starts_with("...,unknown,"), "{addresses:.40}");
    let whole = request_line.len() + line.message.len() + addresses.len();
    assert!(whole < 4_096, "{whole} bytes");
    app.finish().await;
}
