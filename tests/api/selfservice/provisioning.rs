//! Upstream credentials made, not collected: with `upstream.identity = "credential"` and
//! `self_service.provision_credentials`, a sign-in by password or session has Bitbucket make a
//! personal access token for the user, which their tokengate tokens then reach Bitbucket with.
//! When Bitbucket refuses it, the user's tokens get tokengate's 401 with a line that says why,
//! until their next sign-in makes a new one.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tokengate::token::Scope;

use super::{
    ALICE_BB_TOKEN, ALICE_PASSWORD, As, ME, REST, alice, assert_not_stored, audit_event, basic,
    bob, get, list, options, start, use_token,
};
use crate::support::app::{Backend, Options, TestApp, TokenOpts};
use crate::support::bitbucket::slug_of;
use crate::support::both_backends;
use crate::support::upstream::Seen;

both_backends!(
    a_sign_in_provisions_the_credential_tokens_reach_bitbucket_with,
    simultaneous_first_sign_ins_provision_once,
    nothing_is_made_for_someone_whose_tokens_may_not_be_used,
    a_missing_permission_is_not_a_refused_credential,
    the_token_is_made_at_the_users_slug,
    a_late_refusal_of_the_old_credential_leaves_the_new_one_usable,
);

const ACCESS_TOKENS: &str = "/rest/access-tokens/1.0/users/";

/// The requests that asked Bitbucket for an access token.
fn token_requests(app: &TestApp) -> Vec<Seen> {
    app.upstream
        .requests()
        .into_iter()
        .filter(|s| s.target.starts_with(ACCESS_TOKENS))
        .collect()
}

/// A gateway that provisions credentials.
async fn start_provisioning(backend: Backend) -> TestApp {
    start_provisioning_with(options(backend)).await
}

async fn start_provisioning_with(options: Options) -> TestApp {
    let key = STANDARD.encode(rand::random::<[u8; 32]>());
    start(
        options
            .set("upstream.identity", "credential")
            .set("upstream.credential_key", key.as_str())
            .set("self_service.provision_credentials", true)
            .set("self_service.credential_lifetime_days", 30),
    )
    .await
}

/// Asserts a proxied call reached Bitbucket as `credential`, and nothing else of the caller's.
async fn reaches_bitbucket_with(app: &TestApp, token: &str, credential: &str) {
    let answer = use_token(app, token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen = app.upstream.request_with_id(&answer.id).expect("forwarded");
    assert_eq!(
        seen.header_values("authorization"),
        [format!("Bearer {credential}")]
    );
    assert!(seen.header_values("x-forwarded-user").is_empty());
}

async fn a_sign_in_provisions_the_credential_tokens_reach_bitbucket_with(backend: Backend) {
    let app = start_provisioning(backend).await;
    let bitbucket = app.upstream.bitbucket();
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    // Nothing stored yet: refused, and signing in with a Bitbucket token does not make one.
    assert_eq!(use_token(&app, &token).await.status, 401);
    get(&app, ME, &As::bearer(ALICE_BB_TOKEN)).await.expect(200);
    get(&app, ME, &As::bearer(&token)).await.expect(200);
    assert!(
        bitbucket.made_tokens().is_empty(),
        "provisioned at a token sign-in"
    );

    let sign_in = get(&app, ME, &alice()).await;
    sign_in.expect(200);
    let made = bitbucket.made_tokens();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].user, "alice");
    assert_eq!(
        made[0].body,
        json!({
            "name": "tokengate",
            "permissions": ["PROJECT_ADMIN", "REPO_ADMIN"],
            "expiryDays": 30
        })
    );
    let first = made[0].secret.clone();
    app.track_unwritten(&first);
    let asked = token_requests(&app);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method, "PUT");
    assert_eq!(asked[0].target, format!("{ACCESS_TOKENS}alice"));
    assert_eq!(
        asked[0].header("x-atlassian-token").as_deref(),
        Some("no-check")
    );
    assert_eq!(
        asked[0].header_values("authorization"),
        [basic("alice", ALICE_PASSWORD)]
    );
    assert!(asked[0].header_values("cookie").is_empty());
    let event = audit_event(&app, &sign_in.id, "credential_set").await;
    assert_eq!(event["user"], "alice");
    assert_eq!(event["actor"], "alice");
    assert_eq!(event["attributes"]["via"], "password");
    assert_eq!(event["attributes"]["provisioned"], true);
    assert_eq!(
        event["attributes"]["bitbucket_token_id"],
        made[0].id.as_str()
    );

    reaches_bitbucket_with(&app, &token, &first).await;
    get(&app, ME, &alice()).await.expect(200);
    assert_eq!(
        bitbucket.made_tokens().len(),
        1,
        "made again while the first works"
    );

    // Revoked in Bitbucket: Bitbucket's own 401 once, then tokengate's, saying why.
    bitbucket.revoke_tokens_of("alice");
    let refused_upstream = use_token(&app, &token).await;
    assert_eq!(refused_upstream.status, 401);
    assert!(
        app.upstream.request_with_id(&refused_upstream.id).is_some(),
        "the first refusal is Bitbucket's"
    );
    let refused_here = use_token(&app, &token).await;
    assert_eq!(refused_here.status, 401);
    assert!(
        app.upstream.request_with_id(&refused_here.id).is_none(),
        "a refused credential was sent again"
    );
    let body: serde_json::Value = serde_json::from_str(&refused_here.body).unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{body}"
    );
    let line = app.line_for(&refused_here.id).await;
    assert_eq!(line.logger, "d.r.a.p.auth.ApiTokenAuthSharedBase");
    assert_eq!(
        line.message,
        format!(
            "Token verification for user alice failed: Bitbucket refused the stored credential of this user, so the request cannot be forwarded until it is replaced. REST endpoint: {REST}"
        )
    );

    // The next sign-in by password (still trusted from a minute ago) makes a new one.
    get(&app, ME, &alice()).await.expect(200);
    let made = bitbucket.made_tokens();
    assert_eq!(made.len(), 2, "{made:?}");
    let second = made[1].secret.clone();
    assert_ne!(second, first);
    app.track_unwritten(&second);
    reaches_bitbucket_with(&app, &token, &second).await;

    // A session sign-in provisions as well, with the session's cookie.
    bitbucket.add_session("bob", "B0B5E55104");
    let (_, bobs) = app
        .create_token("bob", Scope::ReadOnly, TokenOpts::default())
        .await;
    get(&app, ME, &As::session("B0B5E55104")).await.expect(200);
    let made = bitbucket.made_tokens();
    assert_eq!(made.len(), 3);
    assert_eq!(made[2].user, "bob");
    app.track_unwritten(&made[2].secret);
    let asked = token_requests(&app).pop().unwrap();
    assert_eq!(asked.target, format!("{ACCESS_TOKENS}bob"));
    assert_eq!(
        asked.header_values("cookie"),
        ["BITBUCKETSESSIONID=B0B5E55104"]
    );
    assert!(asked.header_values("authorization").is_empty());
    reaches_bitbucket_with(&app, &bobs, &made[2].secret).await;

    for secret in [&first, &second, &made[2].secret] {
        assert_not_stored(&app, secret).await;
    }
    assert_not_stored(&app, ALICE_PASSWORD).await;
    app.finish().await;
}

async fn simultaneous_first_sign_ins_provision_once(backend: Backend) {
    let app = start_provisioning(backend).await;
    let sign_ins = (0..8).map(|_| async {
        get(&app, ME, &alice()).await.expect(200);
    });
    futures_util::future::join_all(sign_ins).await;
    let made = app.upstream.bitbucket().made_tokens();
    assert_eq!(made.len(), 1, "{made:?}");
    app.track_unwritten(&made[0].secret);
    // And later sign-ins find it working.
    for _ in 0..3 {
        get(&app, ME, &alice()).await.expect(200);
    }
    assert_eq!(app.upstream.bitbucket().made_tokens().len(), 1);
    app.finish().await;
}

async fn nothing_is_made_for_someone_whose_tokens_may_not_be_used(backend: Backend) {
    let app =
        start_provisioning_with(options(backend).set("self_service.use_tokens", list(&["alice"])))
            .await;
    let me = get(&app, ME, &bob()).await.expect(200);
    assert_eq!(me["rights"]["use_tokens"], false);
    assert!(
        app.upstream.bitbucket().made_tokens().is_empty(),
        "a Bitbucket token was made for a user whose tokens are refused"
    );
    assert!(token_requests(&app).is_empty());
    get(&app, ME, &alice()).await.expect(200);
    let made = app.upstream.bitbucket().made_tokens();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].user, "alice");
    app.track_unwritten(&made[0].secret);
    app.finish().await;
}

async fn a_missing_permission_is_not_a_refused_credential(backend: Backend) {
    let app = start_provisioning(backend).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    get(&app, ME, &alice()).await.expect(200);
    let made = app.upstream.bitbucket().made_tokens();
    app.track_unwritten(&made[0].secret);
    // Bitbucket answers 401 to a signed-in user who lacks a permission, naming the user: the
    // credential worked, so it is not marked refused.
    let secret_repo = "/rest/api/1.0/projects/SECRET/repos/vault/not-permitted";
    let answer = get(&app, secret_repo, &As::bearer(&token)).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.body.contains("AuthorisationException"),
        "{}",
        answer.body
    );
    reaches_bitbucket_with(&app, &token, &made[0].secret).await;
    assert_eq!(app.upstream.bitbucket().made_tokens().len(), 1);
    app.finish().await;
}

async fn the_token_is_made_at_the_users_slug(backend: Backend) {
    let app = start_provisioning(backend).await;
    // Bitbucket's slug of a name like this is not the name.
    let (jane, password) = ("Jane.Doe@corp.example", "janes-password-1");
    assert_ne!(slug_of(jane), jane);
    app.upstream.bitbucket().add_user(jane, password);
    app.track_unwritten(password);
    let (_, token) = app
        .create_token(jane, Scope::ReadWrite, TokenOpts::default())
        .await;
    get(&app, ME, &As::password(jane, password))
        .await
        .expect(200);
    let made = app.upstream.bitbucket().made_tokens();
    assert_eq!(made.len(), 1, "{made:?}");
    app.track_unwritten(&made[0].secret);
    let asked = token_requests(&app);
    assert_eq!(
        asked.last().expect("asked").target,
        format!("{ACCESS_TOKENS}{}", slug_of(jane))
    );
    reaches_bitbucket_with(&app, &token, &made[0].secret).await;
    app.finish().await;
}

async fn a_late_refusal_of_the_old_credential_leaves_the_new_one_usable(backend: Backend) {
    let app = start_provisioning(backend).await;
    let bitbucket = app.upstream.bitbucket();
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    get(&app, ME, &alice()).await.expect(200);
    let first = bitbucket.made_tokens()[0].secret.clone();
    app.track_unwritten(&first);

    // A slow call leaves with the first credential and is held at Bitbucket.
    let slow = {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}{REST}/slow", app.proxy_url()),
            token.clone(),
        );
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("the slow call")
                .status()
        })
    };
    crate::support::eventually("the slow call at Bitbucket", async || {
        app.upstream
            .requests()
            .iter()
            .any(|s| s.target.ends_with("/slow"))
            .then_some(())
    })
    .await;

    // Bitbucket revokes it, a quick call is refused, the next sign-in makes a second one.
    bitbucket.revoke_tokens_of("alice");
    assert_eq!(use_token(&app, &token).await.status, 401);
    get(&app, ME, &alice()).await.expect(200);
    let made = bitbucket.made_tokens();
    assert_eq!(made.len(), 2, "{made:?}");
    let second = made[1].secret.clone();
    app.track_unwritten(&second);

    // The slow call's refusal arrives after that: it was the first credential's, and it does
    // not mark the second one.
    app.upstream.release_slow();
    assert_eq!(slow.await.unwrap(), 401);
    reaches_bitbucket_with(&app, &token, &second).await;
    let stored = app.store().get_credential("alice").await.unwrap().unwrap();
    assert_eq!(stored.refused_at, None);
    app.finish().await;
}
