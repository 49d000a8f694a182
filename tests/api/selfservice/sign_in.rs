//! Who is calling: each kind of sign-in names the caller, wrong and missing credentials are
//! 401, Bitbucket out of reach is 503, the question to Bitbucket carries only the caller's own
//! Bitbucket credential, and an answer is trusted for a minute.

use chrono::{Duration, Utc};
use tokengate::token::Scope;

use super::{
    ALICE_BB_TOKEN, ALICE_PASSWORD, ALICE_SESSION, As, ME, REST, TOKENS, WHOAMI, alice, get, list,
    options, start, whoami_requests,
};
use crate::support::app::{Backend, TokenOpts};
use crate::support::both_backends;

both_backends!(
    every_kind_of_sign_in_names_the_caller,
    bitbucket_out_of_reach_is_503_and_tokens_still_sign_in,
    me_tells_rights_and_limits,
    signing_in_with_a_token_is_a_use_of_it,
);

async fn every_kind_of_sign_in_names_the_caller(backend: Backend) {
    let app = start(options(backend)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let signed_in = async |who: &As| {
        let me = get(&app, ME, who).await.expect(200);
        assert_eq!(me["user"], "alice", "{me}");
        me["signed_in_via"]
            .as_str()
            .expect("signed_in_via")
            .to_owned()
    };

    // A tokengate token is checked by tokengate alone.
    assert_eq!(signed_in(&As::bearer(&token)).await, "token");
    assert_eq!(signed_in(&As::password("alice", &token)).await, "token");
    // A token under a scheme tokengate does not read is still a token: refused here, never
    // shown to Bitbucket.
    for hidden in [format!("Token {token}"), token.clone()] {
        get(&app, ME, &As::authorization(hidden)).await.refused(401);
    }
    assert!(
        whoami_requests(&app).is_empty(),
        "Bitbucket was asked about a tokengate token"
    );

    assert_eq!(signed_in(&alice()).await, "password");
    assert_eq!(
        signed_in(&As::bearer(ALICE_BB_TOKEN)).await,
        "bitbucket_token"
    );
    assert_eq!(
        signed_in(&As::password("alice", ALICE_BB_TOKEN)).await,
        "bitbucket_token"
    );
    assert_eq!(signed_in(&As::session(ALICE_SESSION)).await, "session");

    let (revoked_id, revoked) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    app.store()
        .revoke_token(&revoked_id, Utc::now())
        .await
        .unwrap();
    let (_, expired) = app
        .create_token(
            "alice",
            Scope::ReadWrite,
            TokenOpts {
                expires_at: Some(Utc::now() - Duration::minutes(1)),
                ..TokenOpts::default()
            },
        )
        .await;
    let garbled = format!("{}x", &token[..token.len() - 1]);
    for who in [
        As::nobody(),
        As::password("alice", "not-her-password"),
        As::password("nobody-known", ALICE_PASSWORD),
        As::bearer("BBDC-bm90LWEtdG9rZW4tYml0YnVja2V0LWtub3dz"),
        As::session("no-such-session"),
        As::nobody().with("cookie", "theme=dark; atlassian.xsrf.token=x"),
        // A tokengate token whose Basic user is not its owner, revoked, expired, or garbled.
        As::password("bob", &token),
        As::bearer(&revoked),
        As::bearer(&expired),
        As::bearer(&garbled),
    ] {
        let answer = get(&app, ME, &who).await;
        answer.refused(401);
        assert_eq!(
            answer.header("www-authenticate"),
            Some(r#"Bearer realm="tokengate""#),
            "{who:?}"
        );
        let answer = get(&app, TOKENS, &who).await;
        answer.refused(401);
    }
    app.finish().await;
}

async fn bitbucket_out_of_reach_is_503_and_tokens_still_sign_in(backend: Backend) {
    let app = start(options(backend)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let bitbucket_sign_ins = [
        alice(),
        As::bearer(ALICE_BB_TOKEN),
        As::session(ALICE_SESSION),
    ];
    app.upstream.bitbucket().set_down(true);
    for who in &bitbucket_sign_ins {
        for path in [ME, TOKENS] {
            let answer = get(&app, path, who).await;
            answer.refused(503);
            assert_eq!(answer.json()["error"]["code"], "unavailable", "{who:?}");
        }
    }
    get(&app, ME, &As::bearer(&token)).await.expect(200);
    // Only answers that name someone are kept: Bitbucket is asked again once it is back.
    app.upstream.bitbucket().set_down(false);
    for who in &bitbucket_sign_ins {
        get(&app, ME, who).await.expect(200);
    }
    app.finish().await;

    // A Bitbucket nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = start(options(backend).upstream_url(url)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    for who in &bitbucket_sign_ins {
        let answer = get(&app, ME, who).await;
        answer.refused(503);
        assert_eq!(answer.json()["error"]["code"], "unavailable", "{who:?}");
    }
    get(&app, ME, &As::bearer(&token)).await.expect(200);
    app.finish().await;
}

#[tokio::test]
async fn bitbucket_hears_only_the_callers_own_credential() {
    let app = start(options(Backend::Sqlite)).await;
    let last_whoami = || whoami_requests(&app).pop().expect("Bitbucket was asked");
    // Only what Bitbucket needs may go: no header of the caller's but the credential.
    let only = |seen: &crate::support::upstream::Seen, credential: &str| {
        let names: Vec<&str> = seen.headers.keys().map(http::HeaderName::as_str).collect();
        for name in &names {
            assert!(
                ["host", "accept", credential].contains(name),
                "Bitbucket was sent {name}: {names:?}"
            );
        }
    };

    let token_call = As::bearer(ALICE_BB_TOKEN)
        .with(
            "cookie",
            format!("BITBUCKETSESSIONID={ALICE_SESSION}; theme=dark"),
        )
        .with("x-forwarded-user", "admin")
        .with("x-forwarded-for", "203.0.113.9")
        .with("x-custom", "1");
    get(&app, ME, &token_call).await.expect(200);
    let seen = last_whoami();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, WHOAMI);
    assert_eq!(
        seen.header_values("authorization"),
        [format!("Bearer {ALICE_BB_TOKEN}")]
    );
    only(&seen, "authorization");

    let session_call = As::nobody()
        .with(
            "cookie",
            format!(
                "theme=dark; BITBUCKETSESSIONID={ALICE_SESSION}; JSESSIONID=J1; other=1; _atl_bitbucket_remember_login=R1"
            ),
        )
        .with("cookie", "crowd.token_key=secret-sso")
        .with("x-custom", "1");
    get(&app, ME, &session_call).await.expect(200);
    let seen = last_whoami();
    assert_eq!(
        seen.header_values("cookie"),
        [format!(
            "BITBUCKETSESSIONID={ALICE_SESSION}; JSESSIONID=J1; _atl_bitbucket_remember_login=R1"
        )]
    );
    only(&seen, "cookie");

    get(&app, ME, &alice().with("cookie", "theme=dark"))
        .await
        .expect(200);
    let seen = last_whoami();
    assert_eq!(
        seen.header_values("authorization"),
        [super::basic("alice", ALICE_PASSWORD)]
    );
    only(&seen, "authorization");
    app.finish().await;
}

#[tokio::test]
async fn a_sign_in_is_trusted_for_a_minute_and_a_refusal_not_at_all() {
    let app = start(options(Backend::Sqlite)).await;
    let asked = || whoami_requests(&app).len();
    for who in [
        alice(),
        As::bearer(ALICE_BB_TOKEN),
        As::session(ALICE_SESSION),
    ] {
        let before = asked();
        get(&app, ME, &who).await.expect(200);
        get(&app, ME, &who).await.expect(200);
        get(&app, TOKENS, &who).await.expect(200);
        assert_eq!(
            asked(),
            before + 1,
            "Bitbucket asked again within a minute: {who:?}"
        );
    }
    let wrong = As::password("alice", "wrong-password");
    let before = asked();
    get(&app, ME, &wrong).await.refused(401);
    get(&app, ME, &wrong).await.refused(401);
    assert_eq!(asked(), before + 2, "a refusal was remembered");
    app.finish().await;
}

#[tokio::test]
async fn a_password_signs_in_with_basic_auth_fallback_off() {
    let app = start(options(Backend::Sqlite).set("auth.basic_auth_fallback", false)).await;
    let me = get(&app, ME, &alice()).await.expect(200);
    assert_eq!(me["signed_in_via"], "password");
    // Fallback is about forwarding: the same password on a Bitbucket path is refused.
    assert_eq!(get(&app, REST, &alice()).await.status, 401);
    let forwarded = app
        .upstream
        .requests()
        .into_iter()
        .any(|s| s.target == REST);
    assert!(!forwarded, "a password was forwarded with fallback off");
    app.finish().await;
}

async fn me_tells_rights_and_limits(backend: Backend) {
    let app = start(
        options(backend)
            .set("auth.max_lifetime_days", 90)
            .set("rate_limit.default", "500/1h")
            .set("self_service.create_own", list(&["alice"]))
            .set("self_service.manage_all", list(&["carol"])),
    )
    .await;
    let me = get(&app, ME, &alice()).await.expect(200);
    assert_eq!(me["user"], "alice");
    assert_eq!(me["signed_in_via"], "password");
    assert_eq!(
        me["rights"],
        serde_json::json!({ "use_tokens": true, "create_own": true, "manage_all": false })
    );
    let limits = &me["limits"];
    assert_eq!(limits["max_scope"], "read-write");
    assert_eq!(limits["max_lifetime_days"], 90);
    assert_eq!(limits["allowed_ips"], serde_json::json!([]));
    assert_eq!(limits["default_rate_limit"], "500/1h");
    let latest = chrono::DateTime::parse_from_rfc3339(limits["latest_expiry"].as_str().unwrap())
        .unwrap()
        .to_utc();
    let in_90_days = Utc::now() + Duration::days(90);
    assert!((latest - in_90_days).num_seconds().abs() < 60, "{latest}");

    let bob = get(&app, ME, &super::bob()).await.expect(200);
    assert_eq!(
        bob["rights"],
        serde_json::json!({ "use_tokens": true, "create_own": false, "manage_all": false })
    );
    let carol = get(&app, ME, &super::carol()).await.expect(200);
    assert_eq!(
        carol["rights"],
        serde_json::json!({ "use_tokens": true, "create_own": true, "manage_all": true }),
        "the manager right implies creating one's own"
    );

    // Signed in with a token: the token's own bounds.
    let expires = Utc::now() + Duration::days(10);
    let (_, token) = app
        .create_token(
            "alice",
            Scope::ReadOnly,
            TokenOpts {
                expires_at: Some(expires),
                allowed_ips: vec!["127.0.0.0/8".parse().unwrap()],
                ..TokenOpts::default()
            },
        )
        .await;
    let me = get(&app, ME, &As::bearer(&token)).await.expect(200);
    assert_eq!(me["signed_in_via"], "token");
    let limits = &me["limits"];
    assert_eq!(limits["max_scope"], "read-only");
    assert_eq!(limits["allowed_ips"], serde_json::json!(["127.0.0.0/8"]));
    let latest = chrono::DateTime::parse_from_rfc3339(limits["latest_expiry"].as_str().unwrap())
        .unwrap()
        .to_utc();
    assert_eq!(latest.timestamp(), expires.timestamp());
    app.finish().await;
}

async fn signing_in_with_a_token_is_a_use_of_it(backend: Backend) {
    let mut app = start(options(backend)).await;
    let (used, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let (unused, _) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    get(&app, ME, &As::bearer(&token)).await.expect(200);
    // Last uses are written in the background and at the latest when the gateway stops.
    app.sigterm();
    assert!(app.wait_for_exit().await.success());
    let read = async |id| app.store().get_token(id).await.unwrap().unwrap();
    let record = read(&used).await;
    assert!(record.last_used_at.is_some(), "{record:?}");
    assert_eq!(
        record.last_used_ip,
        Some("127.0.0.1".parse().unwrap()),
        "{record:?}"
    );
    let record = read(&unused).await;
    assert_eq!(record.last_used_at, None, "{record:?}");
}
