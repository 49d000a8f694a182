//! Every self-service change is an audit event naming the acting person (`actor`), how they
//! signed in (`via`), their client IP and the request id the answer carried; and a Bitbucket
//! password is never found in the audit trail, the log or the database.

use reqwest::Method;
use serde_json::{Value, json};
use tokengate::token::Scope;

use super::{
    ADMIN_TOKEN, ALICE_BB_TOKEN, ALICE_PASSWORD, ALICE_SESSION, Answer, As, BOB_PASSWORD,
    CAROL_PASSWORD, COMPAT, TOKENS, alice, assert_not_stored, audit_event, carol, list, options,
    post, send, start,
};
use crate::support::app::{Backend, TestApp, TokenOpts};
use crate::support::both_backends;

both_backends!(every_change_names_who_made_it_and_how);

/// Asserts the event of `kind` caused by `answer`'s request.
async fn audited(
    app: &TestApp,
    answer: &Answer,
    kind: &str,
    owner: &str,
    actor: &str,
    via: &str,
) -> Value {
    let event = audit_event(app, &answer.id, kind).await;
    assert_eq!(event["request_id"], answer.id.as_str());
    assert_eq!(event["user"], owner, "{event}");
    assert_eq!(event["actor"], actor, "{event}");
    assert_eq!(event["attributes"]["via"], via, "{event}");
    assert_eq!(event["outcome"], "allowed", "{event}");
    assert!(event["token_id"].is_string(), "{event}");
    event
}

fn id_of(created: &Value) -> String {
    created["id"].as_str().expect("an id").to_owned()
}

async fn every_change_names_who_made_it_and_how(backend: Backend) {
    let app = start(
        options(backend)
            .set("proxy.trusted_proxies", vec!["127.0.0.1/32"])
            .set("self_service.manage_all", list(&["carol"])),
    )
    .await;
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let body = || json!({ "description": "audited" });
    let ways = [
        (alice(), "password"),
        (As::bearer(ALICE_BB_TOKEN), "bitbucket_token"),
        (As::session_write(&app, ALICE_SESSION), "session"),
        (As::bearer(&token), "token"),
    ];
    for (who, via) in &ways {
        let created = post(&app, TOKENS, who, body()).await;
        let record = created.expect(201);
        app.track_secret(record["token"].as_str().unwrap());
        let event = audited(&app, &created, "token_created", "alice", "alice", via).await;
        assert_eq!(event["token_id"], record["id"]);
        assert_eq!(event["client_ip"], "127.0.0.1");
        assert_eq!(event["method"], "POST");
        assert_eq!(event["path"], TOKENS);

        let path = format!("{TOKENS}/{}", id_of(&record));
        let rename = json!({ "description": "renamed" });
        let changed = send(&app, Method::PATCH, &path, who, Some(rename)).await;
        changed.expect(200);
        let event = audited(&app, &changed, "token_changed", "alice", "alice", via).await;
        assert_eq!(
            event["attributes"]["description"],
            json!({ "old": "audited", "new": "renamed" })
        );
        let revoked = send(&app, Method::DELETE, &path, who, None).await;
        revoked.expect(204);
        audited(&app, &revoked, "token_revoked", "alice", "alice", via).await;
    }

    // The drop-in API, from behind a trusted proxy: the client's own address.
    let from_afar = alice().with("x-forwarded-for", "203.0.113.5");
    let created = post(
        &app,
        &format!("{COMPAT}/user/token"),
        &from_afar,
        json!({ "tokenDescription": "old script" }),
    )
    .await;
    let made = created.expect(200);
    let secret = made["plainTextToken"].as_str().unwrap().to_owned();
    app.track_secret(&secret);
    let event = audited(
        &app,
        &created,
        "token_created",
        "alice",
        "alice",
        "password",
    )
    .await;
    assert_eq!(event["client_ip"], "203.0.113.5");
    let path = format!("{COMPAT}/user/token/{}", &secret[4..16]);
    let renamed = send(
        &app,
        Method::PATCH,
        &path,
        &from_afar,
        Some(json!({ "tokenDescription": "new name" })),
    )
    .await;
    renamed.expect(200);
    audited(
        &app,
        &renamed,
        "token_changed",
        "alice",
        "alice",
        "password",
    )
    .await;

    // A manager's change of someone else's token: the token's owner, and the manager acting.
    let revoked = send(&app, Method::DELETE, &path, &carol(), None).await;
    assert_eq!(revoked.expect(200), json!(true));
    audited(
        &app,
        &revoked,
        "token_revoked",
        "alice",
        "carol",
        "password",
    )
    .await;
    let for_bob = post(
        &app,
        TOKENS,
        &carol(),
        json!({ "user": "bob", "description": "bot" }),
    )
    .await;
    app.track_secret(for_bob.expect(201)["token"].as_str().unwrap());
    audited(&app, &for_bob, "token_created", "bob", "carol", "password").await;

    // No password anywhere: the audit trail, the database (the log is checked by `finish`).
    let trail = app
        .client
        .get(format!("{}/admin/v1/audit?limit=500", app.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(trail.contains("token_revoked"), "{trail}");
    for password in [
        ALICE_PASSWORD,
        BOB_PASSWORD,
        CAROL_PASSWORD,
        ALICE_BB_TOKEN,
        ALICE_SESSION,
    ] {
        assert!(!trail.contains(password), "a credential in the audit trail");
        assert_not_stored(&app, password).await;
    }
    app.finish().await;
}
