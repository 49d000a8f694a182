//! Rights, allowed and refused: creating one's own tokens, managing everyone's, and whose
//! tokens authenticate at all, by user name and by Bitbucket group (read with the service
//! credential); a group rule without that credential is a config error.

use std::collections::BTreeSet;

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};
use tokengate::token::Scope;

use super::{
    As, COMPAT, ME, REST, TOKENS, alice, bob, carol, create, get, list, options, post, send, start,
    use_token,
};
use crate::support::app::{Backend, TestApp, TokenOpts, run_binary_with_env};
use crate::support::bitbucket::SERVICE_CREDENTIAL;
use crate::support::both_backends;
use crate::support::eventually;

both_backends!(
    creating_needs_create_own,
    a_manager_sees_makes_and_revokes_anyones_tokens,
    use_tokens_by_name_withdraws_everyone_elses_tokens,
    rights_by_group_are_read_with_the_service_credential,
    a_change_of_groups_holds_once_the_cache_expires,
    a_user_bitbucket_does_not_know_is_in_no_group,
);

/// The users of a page of tokens.
fn users(page: &Value) -> BTreeSet<String> {
    page["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t["user"].as_str().unwrap().to_owned())
        .collect()
}

async fn creating_needs_create_own(backend: Backend) {
    let app = start(options(backend).set("self_service.create_own", list(&["alice"]))).await;
    let body = json!({ "description": "deploy key" });
    let message = post(&app, TOKENS, &bob(), body.clone()).await.refused(403);
    assert!(message.contains("create_own"), "{message}");
    post(
        &app,
        &format!("{COMPAT}/user/token"),
        &bob(),
        json!({ "tokenDescription": "x" }),
    )
    .await
    .refused_as_the_app_does(403);
    let (bobs, _) = app
        .create_token("bob", Scope::ReadWrite, TokenOpts::default())
        .await;
    let path = format!("{TOKENS}/{bobs}");
    let patch = json!({ "description": "renamed" });
    send(&app, Method::PATCH, &path, &bob(), Some(patch))
        .await
        .refused(403);
    // Seeing and revoking one's own tokens needs no right.
    let own = get(&app, TOKENS, &bob()).await.expect(200);
    assert_eq!(own["tokens"][0]["id"], bobs.as_str());
    send(&app, Method::DELETE, &path, &bob(), None)
        .await
        .expect(204);

    let (created, _) = create(&app, &alice(), body).await;
    assert_eq!(created["user"], "alice");
    app.finish().await;
}

async fn a_manager_sees_makes_and_revokes_anyones_tokens(backend: Backend) {
    let app = start(options(backend).set("self_service.manage_all", list(&["carol"]))).await;
    let (alices, _) = create(&app, &alice(), json!({ "description": "alice's" })).await;
    let alices_id = alices["id"].as_str().unwrap().to_owned();
    let (_, bobs) = create(&app, &bob(), json!({ "description": "bob's" })).await;

    // Anyone else: another user's tokens do not exist for them.
    let bobs_page = get(&app, TOKENS, &bob()).await.expect(200);
    assert_eq!(users(&bobs_page), BTreeSet::from(["bob".to_owned()]));
    get(&app, &format!("{TOKENS}?user=alice"), &bob())
        .await
        .refused(403);
    let path = format!("{TOKENS}/{alices_id}");
    get(&app, &path, &bob()).await.refused(404);
    let rename = json!({ "description": "taken over" });
    send(&app, Method::PATCH, &path, &bob(), Some(rename.clone()))
        .await
        .refused(404);
    send(&app, Method::DELETE, &path, &bob(), None)
        .await
        .refused(404);
    post(
        &app,
        TOKENS,
        &bob(),
        json!({ "user": "alice", "description": "x" }),
    )
    .await
    .refused(403);
    post(
        &app,
        &format!("{COMPAT}/user/token"),
        &bob(),
        json!({ "tokenDescription": "x", "tokenForUserKey": "alice" }),
    )
    .await
    .refused_as_the_app_does(403);

    // The manager.
    let all = get(&app, TOKENS, &carol()).await.expect(200);
    assert_eq!(users(&all), BTreeSet::from(["alice".into(), "bob".into()]));
    let alices_only = get(&app, &format!("{TOKENS}?user=alice"), &carol())
        .await
        .expect(200);
    assert_eq!(users(&alices_only), BTreeSet::from(["alice".to_owned()]));
    assert_eq!(
        get(&app, &path, &carol()).await.expect(200)["id"],
        alices_id.as_str()
    );
    let (for_bob, secret) = create(
        &app,
        &carol(),
        json!({ "user": "bob", "description": "made by carol", "scope": "read-write" }),
    )
    .await;
    assert_eq!(for_bob["user"], "bob");
    let answer = use_token(&app, &secret).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen = app.upstream.request_with_id(&answer.id).expect("forwarded");
    assert_eq!(seen.header_values("x-forwarded-user"), ["bob"]);
    let renamed = send(&app, Method::PATCH, &path, &carol(), Some(rename))
        .await
        .expect(200);
    assert_eq!(renamed["description"], "taken over");
    send(&app, Method::DELETE, &path, &carol(), None)
        .await
        .expect(204);
    let alices = get(&app, &path, &alice()).await.expect(200);
    assert_eq!(alices["state"], "revoked");
    // bob's own token still works; the manager revoked only alice's.
    assert_eq!(use_token(&app, &bobs).await.status, 200);
    app.finish().await;
}

/// The message of the no-valid-token line of `answer`'s request.
async fn no_valid_token_line(app: &TestApp, request_id: &str) -> String {
    let line = app.line_for(request_id).await;
    assert_eq!(line.logger, "d.r.a.p.auth.ApiTokenAuthSharedBase");
    line.message
}

async fn use_tokens_by_name_withdraws_everyone_elses_tokens(backend: Backend) {
    let app = start(options(backend).set("self_service.use_tokens", list(&["alice"]))).await;
    let (_, alices) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let (revoked_id, revoked) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    app.store()
        .revoke_token(&revoked_id, Utc::now())
        .await
        .unwrap();
    let (_, bobs) = app
        .create_token("bob", Scope::ReadWrite, TokenOpts::default())
        .await;

    assert_eq!(use_token(&app, &alices).await.status, 200);
    let revoked = use_token(&app, &revoked).await;
    assert_eq!(revoked.status, 401);
    let withdrawn = use_token(&app, &bobs).await;
    assert_eq!(withdrawn.status, 401, "{}", withdrawn.body);
    assert_eq!(
        withdrawn.body, revoked.body,
        "refused as a revoked token is"
    );
    assert!(
        !app.upstream
            .requests()
            .iter()
            .any(|s| s.target == REST && s.header("x-forwarded-user").as_deref() == Some("bob")),
        "bob's request was forwarded"
    );
    let says = |user: &str| {
        format!(
            "Token verification for user {user} failed: No valid API token was provided. REST endpoint: {REST}"
        )
    };
    assert_eq!(no_valid_token_line(&app, &revoked.id).await, says("alice"));
    assert_eq!(no_valid_token_line(&app, &withdrawn.id).await, says("bob"));

    // bob's token does not sign him in to self-service either; his password does, with no rights.
    get(&app, ME, &As::bearer(&bobs)).await.refused(401);
    let me = get(&app, ME, &bob()).await.expect(200);
    assert_eq!(
        me["rights"],
        json!({ "use_tokens": false, "create_own": false, "manage_all": false })
    );
    post(&app, TOKENS, &bob(), json!({ "description": "x" }))
        .await
        .refused(403);
    app.finish().await;
}

async fn rights_by_group_are_read_with_the_service_credential(backend: Backend) {
    let app = start(
        options(backend)
            .set("self_service.use_tokens", list(&["group:developers"]))
            .set("self_service.manage_all", list(&["group:Token-Admins"]))
            .set("self_service.bitbucket_credential", SERVICE_CREDENTIAL),
    )
    .await;
    let bitbucket = app.upstream.bitbucket();
    // The stand-in lists two groups a page: alice's third is on the second page.
    bitbucket.set_groups("alice", &["apple", "banana", "developers"]);
    bitbucket.set_groups("bob", &["ops"]);
    bitbucket.set_groups("carol", &["developers", "token-admins"]);
    let (_, alices) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let (_, bobs) = app
        .create_token("bob", Scope::ReadWrite, TokenOpts::default())
        .await;

    assert_eq!(use_token(&app, &alices).await.status, 200);
    let withdrawn = use_token(&app, &bobs).await;
    assert_eq!(withdrawn.status, 401);
    assert_eq!(
        no_valid_token_line(&app, &withdrawn.id).await,
        format!(
            "Token verification for user bob failed: No valid API token was provided. REST endpoint: {REST}"
        )
    );
    let rights = async |who: &As| get(&app, ME, who).await.expect(200)["rights"].clone();
    assert_eq!(
        rights(&alice()).await,
        json!({ "use_tokens": true, "create_own": true, "manage_all": false })
    );
    assert_eq!(
        rights(&bob()).await,
        json!({ "use_tokens": false, "create_own": false, "manage_all": false })
    );
    assert_eq!(
        rights(&carol()).await,
        json!({ "use_tokens": true, "create_own": true, "manage_all": true })
    );
    get(&app, &format!("{TOKENS}?user=alice"), &carol())
        .await
        .expect(200);

    let lookups: Vec<_> = app
        .upstream
        .requests()
        .into_iter()
        .filter(|s| {
            s.target
                .starts_with("/rest/api/latest/admin/users/more-members")
        })
        .collect();
    assert!(!lookups.is_empty(), "groups were not asked of Bitbucket");
    let (user, password) = SERVICE_CREDENTIAL.split_once(':').unwrap();
    for seen in &lookups {
        assert_eq!(
            seen.header_values("authorization"),
            [super::basic(user, password)]
        );
        assert!(seen.header_values("cookie").is_empty());
    }
    app.finish().await;
}

async fn a_change_of_groups_holds_once_the_cache_expires(backend: Backend) {
    let app = start(
        options(backend)
            .set("self_service.use_tokens", list(&["group:developers"]))
            .set("self_service.bitbucket_credential", SERVICE_CREDENTIAL)
            .set("self_service.group_cache_ttl", "1s"),
    )
    .await;
    let bitbucket = app.upstream.bitbucket();
    bitbucket.set_groups("alice", &["developers"]);
    let (_, alices) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let (_, bobs) = app
        .create_token("bob", Scope::ReadWrite, TokenOpts::default())
        .await;
    assert_eq!(use_token(&app, &alices).await.status, 200);
    assert_eq!(use_token(&app, &bobs).await.status, 401);

    // alice leaves the group, bob joins it.
    bitbucket.set_groups("alice", &[]);
    bitbucket.set_groups("bob", &["developers"]);
    let statuses = async || {
        (
            use_token(&app, &alices).await.status,
            use_token(&app, &bobs).await.status,
        )
    };
    eventually("the new groups to hold", async || {
        (statuses().await == (401, 200)).then_some(())
    })
    .await;
    app.finish().await;
}

async fn a_user_bitbucket_does_not_know_is_in_no_group(backend: Backend) {
    let app = start(
        options(backend)
            .set("self_service.use_tokens", list(&["group:developers"]))
            .set("self_service.bitbucket_credential", SERVICE_CREDENTIAL),
    )
    .await;
    // A token of someone since deleted from Bitbucket.
    let (_, ghosts) = app
        .create_token("ghost", Scope::ReadWrite, TokenOpts::default())
        .await;
    for _ in 0..3 {
        let answer = use_token(&app, &ghosts).await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert_eq!(
            no_valid_token_line(&app, &answer.id).await,
            format!(
                "Token verification for user ghost failed: No valid API token was provided. REST endpoint: {REST}"
            )
        );
    }
    let lookups = app
        .upstream
        .requests()
        .into_iter()
        .filter(|s| s.target.contains("more-members?context=ghost"))
        .count();
    assert_eq!(lookups, 1, "the answer is kept for group_cache_ttl");
    app.finish().await;
}

#[test]
fn a_group_rule_without_a_service_credential_is_a_config_error() {
    for key in ["use_tokens", "create_own", "manage_all"] {
        let config = format!("[self_service]\n{key} = [\"alice\", \"group:admins\"]\n");
        for command in ["check-config", "serve"] {
            let run = run_binary_with_env(&config, &[command], &[]);
            assert_eq!(
                run.status.code(),
                Some(2),
                "{command} {key}: {}",
                run.stderr
            );
            assert!(
                run.stderr.contains(&format!("self_service.{key}"))
                    && run.stderr.contains("bitbucket_credential"),
                "{command} {key}: {}",
                run.stderr
            );
        }
        // With the credential (here from the environment) the file is good, and the
        // credential is not shown.
        let run = run_binary_with_env(
            &config,
            &["check-config"],
            &[(
                "TOKENGATE_SELF_SERVICE__BITBUCKET_CREDENTIAL",
                "svc:Sup3r-svc-pw",
            )],
        );
        assert_eq!(run.status.code(), Some(0), "{key}: {}", run.stderr);
        assert!(
            !run.stdout.contains("Sup3r-svc-pw") && !run.stderr.contains("Sup3r-svc-pw"),
            "check-config showed the service credential:\n{}",
            run.stdout
        );
    }
}
