//! The decision table row by row: no credential, foreign credentials with and without
//! fallback, IP allow-lists, scope (REST and git over HTTP), rate limits, and success.

use chrono::DateTime;
use tokengate::ratelimit::RateQuota;
use tokengate::token::Scope;

use super::{
    AUTH_LOGGER, BASIC_REALM, BEARER_INVALID, BEARER_SCOPE, RATE_LOGGER, assert_line, basic,
    bearer, says,
};
use crate::support::app::{Backend, Options, REST, TokenOpts, spawn_app};
use crate::support::both_backends;
use crate::support::raw::raw_exchange;

both_backends!(
    row_1_no_credential_is_forwarded_untouched_without_a_line,
    row_2_a_foreign_credential_falls_back_to_bitbucket,
    row_3_a_foreign_credential_is_refused_without_fallback,
    row_5_ip_allow_lists_judge_the_client_ip_not_its_claims,
    row_5_the_global_allow_list_without_fallback,
    row_6_a_read_only_token_cannot_write,
    row_6_git_over_http_follows_the_scope,
    row_7_a_token_over_its_rate_limit_gets_429,
    row_8_a_valid_token_is_forwarded_as_its_user,
    paths_are_decided_as_bitbucket_routes_them,
);

async fn row_1_no_credential_is_forwarded_untouched_without_a_line(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let reply = app.request("GET", REST, None, &[]).await;
    reply.assert_forwarded_untouched(None);

    // A request that does log; once its line is written, nothing of the first can be queued.
    let barrier = app.get_rest(&basic("alice", "hunter2")).await;
    assert_eq!(app.lines_for_after(&reply.id, &barrier.id).await, []);
    app.finish().await;
}

async fn row_2_a_foreign_credential_falls_back_to_bitbucket(backend: Backend) {
    let app = spawn_app(Options::new(backend).set("auth.basic_auth_fallback", true)).await;
    let password = basic("alice", "hunter2");
    let reply = app.get_rest(&password).await;
    reply.assert_forwarded_untouched(Some(&password));
    assert_line(&app, &reply, AUTH_LOGGER, &says::fallback("alice", REST)).await;

    // A Bitbucket personal access token names no user.
    let pat = "Bearer BBDC-NzYyMzQ1Njc4OTAxOkRmUPRTz";
    let reply = app.get_rest(pat).await;
    reply.assert_forwarded_untouched(Some(pat));
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::fallback("anonymous", REST),
    )
    .await;
    app.finish().await;
}

async fn row_3_a_foreign_credential_is_refused_without_fallback(backend: Backend) {
    let app = spawn_app(Options::new(backend).set("auth.basic_auth_fallback", false)).await;
    let reply = app.get_rest(&basic("alice", "hunter2")).await;
    reply.assert_refused(401);
    assert_eq!(reply.header("www-authenticate"), Some(BASIC_REALM));
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::no_valid_token("alice", false, REST),
    )
    .await;

    let reply = app.get_rest("Bearer BBDC-NzYyMzQ1Njc4OTAxOkRmUPRTz").await;
    reply.assert_refused(401);
    assert_eq!(reply.header("www-authenticate"), Some(BEARER_INVALID));
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::no_valid_token("anonymous", false, REST),
    )
    .await;
    app.finish().await;
}

async fn row_5_ip_allow_lists_judge_the_client_ip_not_its_claims(backend: Backend) {
    let app =
        spawn_app(Options::new(backend).set("proxy.trusted_proxies", vec!["127.0.0.1/32"])).await;
    let v4 = TokenOpts {
        allowed_ips: vec!["10.0.0.0/8".parse().unwrap()],
        ..TokenOpts::default()
    };
    let (_, token) = app.create_token("alice", Scope::ReadOnly, v4).await;
    let auth = bearer(&token);

    // The client prepended an allowed address; the trusted proxy (127.0.0.1) appended the real one.
    let reply = app
        .request(
            "GET",
            REST,
            Some(&auth),
            &[("x-forwarded-for", "10.0.0.1, 203.0.113.5")],
        )
        .await;
    reply.assert_refused(401);
    assert_eq!(reply.header("www-authenticate"), Some(BEARER_INVALID));
    let line = assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::ip_not_allowed("alice", "203.0.113.5", true, REST),
    )
    .await;
    assert_eq!(
        line.addresses.as_deref(),
        Some("10.0.0.1,203.0.113.5,127.0.0.1")
    );

    let reply = app
        .request("GET", REST, Some(&auth), &[("x-forwarded-for", "10.0.0.1")])
        .await;
    reply.assert_forwarded_as("alice");

    // Without a forwarded address the client is the peer itself.
    let reply = app.get_rest(&auth).await;
    reply.assert_refused(401);
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::ip_not_allowed("alice", "127.0.0.1", true, REST),
    )
    .await;

    let v6 = TokenOpts {
        allowed_ips: vec!["2001:db8::/32".parse().unwrap()],
        ..TokenOpts::default()
    };
    let (_, token) = app.create_token("bob", Scope::ReadOnly, v6).await;
    let auth = basic("bob", &token);
    let reply = app
        .request(
            "GET",
            REST,
            Some(&auth),
            &[("x-forwarded-for", "2001:db8::7")],
        )
        .await;
    reply.assert_forwarded_as("bob");
    let reply = app
        .request(
            "GET",
            REST,
            Some(&auth),
            &[("x-forwarded-for", "2001:db9::1")],
        )
        .await;
    reply.assert_refused(401);
    assert_eq!(reply.header("www-authenticate"), Some(BASIC_REALM));
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::ip_not_allowed("bob", "2001:db9::1", true, REST),
    )
    .await;
    app.finish().await;
}

async fn row_5_the_global_allow_list_without_fallback(backend: Backend) {
    let options = Options::new(backend)
        .set("proxy.trusted_proxies", vec!["127.0.0.1/32"])
        .set("auth.allowed_ips", vec!["10.0.0.0/8"])
        .set("auth.basic_auth_fallback", false);
    let app = spawn_app(options).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let auth = bearer(&token);
    let reply = app
        .request("GET", REST, Some(&auth), &[("x-forwarded-for", "10.1.2.3")])
        .await;
    reply.assert_forwarded_as("alice");
    let reply = app
        .request(
            "GET",
            REST,
            Some(&auth),
            &[("x-forwarded-for", "192.0.2.1")],
        )
        .await;
    reply.assert_refused(401);
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::ip_not_allowed("alice", "192.0.2.1", false, REST),
    )
    .await;
    app.finish().await;
}

async fn row_6_a_read_only_token_cannot_write(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let reply = app.request(method, REST, Some(&bearer(&token)), &[]).await;
        reply.assert_refused(403);
        assert_eq!(reply.header("www-authenticate"), Some(BEARER_SCOPE));
        assert_line(
            &app,
            &reply,
            AUTH_LOGGER,
            &says::scope_denied("alice", method, REST),
        )
        .await;
    }
    let reply = app
        .request("POST", REST, Some(&basic("alice", &token)), &[])
        .await;
    reply.assert_refused(403);
    assert_eq!(reply.header("www-authenticate"), Some(BEARER_SCOPE));
    for method in ["GET", "HEAD", "OPTIONS"] {
        app.request(method, REST, Some(&bearer(&token)), &[])
            .await
            .assert_forwarded_as("alice");
    }
    app.finish().await;
}

async fn row_6_git_over_http_follows_the_scope(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let (_, read_only) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let (_, read_write) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let requests = [
        (
            "GET",
            "/scm/p/r.git/info/refs?service=git-upload-pack",
            false,
        ),
        ("POST", "/scm/p/r.git/git-upload-pack", false),
        (
            "GET",
            "/scm/p/r.git/info/refs?service=git-receive-pack",
            true,
        ),
        ("POST", "/scm/p/r.git/git-receive-pack", true),
        // The same discovery however it is spelled: Tomcat decodes and normalises first.
        (
            "GET",
            "/scm/p/r.git/info/refs?service=git%2Dreceive-pack",
            true,
        ),
        (
            "GET",
            "/scm/p/r.git/info/refs/?service=git-receive-pack",
            true,
        ),
        (
            "GET",
            "/scm/p/r.git/info/refs;x?service=git-receive-pack",
            true,
        ),
    ];
    for (method, target, push) in requests {
        // git sends the token as the Basic password.
        let reply = app
            .request(method, target, Some(&basic("alice", &read_only)), &[])
            .await;
        if push {
            reply.assert_refused(403);
            let path = target.split('?').next().unwrap();
            assert_line(
                &app,
                &reply,
                AUTH_LOGGER,
                &says::scope_denied("alice", method, path),
            )
            .await;
        } else {
            reply.assert_forwarded_as("alice");
            assert_eq!(reply.seen.as_ref().unwrap().target, target);
        }
        let reply = app
            .request(method, target, Some(&basic("alice", &read_write)), &[])
            .await;
        reply.assert_forwarded_as("alice");
    }
    app.finish().await;
}

async fn row_7_a_token_over_its_rate_limit_gets_429(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    let limited = TokenOpts {
        rate_limit: Some(RateQuota::new(5, 300).unwrap()),
        ..TokenOpts::default()
    };
    let (_, token) = app.create_token("alice", Scope::ReadOnly, limited).await;
    for remaining in (0..5).rev() {
        let reply = app.get_rest(&bearer(&token)).await;
        reply.assert_forwarded_as("alice");
        assert_eq!(reply.header("ratelimit-limit"), Some("5"));
        assert_eq!(
            reply.header("ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
        assert!(reply.header("ratelimit-reset").is_some());
    }
    let reply = app.get_rest(&bearer(&token)).await;
    reply.assert_refused(429);
    let retry: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(reply.header("ratelimit-limit"), Some("5"));
    assert_eq!(reply.header("ratelimit-remaining"), Some("0"));
    assert!(reply.header("ratelimit-reset").is_some());
    assert_line(
        &app,
        &reply,
        RATE_LOGGER,
        &says::rate_limited("alice", "5 requests within 5 minutes"),
    )
    .await;
    app.finish().await;
}

async fn row_8_a_valid_token_is_forwarded_as_its_user(backend: Backend) {
    let app = spawn_app(Options::new(backend)).await;
    // 08:44:46 UTC is 2:14:46 PM in the gateway's zone (UTC+05:30), as in Bitbucket's sample line.
    let created = DateTime::parse_from_rfc3339("2021-01-06T08:44:46Z")
        .unwrap()
        .to_utc();
    let opts = TokenOpts {
        description: "API Token from 2021-01-06".to_owned(),
        created_at: created,
        ..TokenOpts::default()
    };
    let (_, token) = app
        .create_token("automation-user", Scope::ReadOnly, opts)
        .await;
    let path = "/rest/ssh/1.0/keys";

    let reply = app.request("GET", path, Some(&bearer(&token)), &[]).await;
    reply.assert_forwarded_as("automation-user");
    let line = assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        "Found a matching token \"API Token from 2021-01-06\" with Read Only scope and authenticated user automation-user. Token was created on Jan 6, 2021 2:14:46 PM. REST endpoint: /rest/ssh/1.0/keys",
    )
    .await;
    assert_eq!(line.session_id, None);

    // The Basic password, from a session: the line carries a hash of the cookie, never the cookie.
    let cookie = ("cookie", "BITBUCKETSESSIONID=session-cookie-value-7f3a");
    let reply = app
        .request(
            "GET",
            path,
            Some(&basic("automation-user", &token)),
            &[cookie],
        )
        .await;
    reply.assert_forwarded_as("automation-user");
    let line = app.line_for(&reply.id).await;
    assert!(
        line.session_id.as_ref().is_some_and(|s| s.len() == 6),
        "{line:?}"
    );
    assert!(
        app.log_lines()
            .iter()
            .all(|l| !l.contains("session-cookie-value"))
    );

    let opts = TokenOpts::default();
    let created = opts.created_at;
    let (_, writer) = app.create_token("alice", Scope::ReadWrite, opts).await;
    let reply = app.request("POST", REST, Some(&bearer(&writer)), &[]).await;
    reply.assert_forwarded_as("alice");
    assert_eq!(reply.seen.as_ref().unwrap().method, "POST");
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &says::success("CI token", "Read/Write", "alice", created, REST),
    )
    .await;
    app.finish().await;
}

/// Bitbucket's Tomcat strips `;parameters`, decodes `%XX`, merges `//` and resolves dot
/// segments before routing, so each of these is `/rest/…` to Bitbucket and must be decided
/// as a protected path (a password is refused without fallback); one climbing above the root
/// is refused as Tomcat refuses it. Sent over a bare socket: an HTTP client would resolve the
/// dot segments itself.
async fn paths_are_decided_as_bitbucket_routes_them(backend: Backend) {
    let app = spawn_app(Options::new(backend).set("auth.basic_auth_fallback", false)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let send = |target: &str, authorization: &str| {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
        );
        let addr = app.proxy_addr();
        async move {
            let (status, headers) = raw_exchange(addr, request.as_bytes()).await;
            let id = headers
                .into_iter()
                .find(|(name, _)| name == "x-arequestid")
                .map(|(_, value)| value)
                .expect("a request id");
            (status, id)
        }
    };
    let password = basic("alice", "hunter2");
    let spellings = [
        "//rest/api/1.0/projects",
        "/rest;a=b/api/1.0/projects",
        "/%72est/api/1.0/projects",
        "/./rest/api/1.0/projects",
        "/x/../rest/api/1.0/projects",
        "//scm/p/r.git/info/refs",
    ];
    for target in spellings {
        let (status, id) = send(target, &password).await;
        assert_eq!(status, 401, "{target}");
        assert!(app.upstream.request_with_id(&id).is_none(), "{target}");
        let (status, id) = send(target, &bearer(&token)).await;
        assert_eq!(status, 200, "{target}");
        let seen = app.upstream.request_with_id(&id).expect("forwarded");
        assert_eq!(seen.target, target, "forwarded as sent");
        assert_eq!(seen.header("x-forwarded-user").as_deref(), Some("alice"));
    }
    for target in [
        "/../rest/api/1.0/projects",
        "/rest/a%2Fb",
        "/rest/%zz",
        "/projects/%E9t%E9",
    ] {
        let (status, id) = send(target, &password).await;
        assert_eq!(status, 400, "{target}");
        assert!(app.upstream.request_with_id(&id).is_none(), "{target}");
    }
    // Without a credential nothing is decided: a Latin-1 page name goes to Bitbucket as sent.
    let request = "GET /projects/%E9t%E9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (status, _) = raw_exchange(app.proxy_addr(), request.as_bytes()).await;
    assert_eq!(status, 200);
    assert!(
        app.upstream
            .wait_for_requests(1)
            .await
            .iter()
            .any(|seen| seen.target == "/projects/%E9t%E9")
    );
    app.finish().await;
}
