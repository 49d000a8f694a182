//! The bounds of a new token: `force_read_only`, a token-signed create no broader than the
//! signing token (scope, expiry, allowed IPs), a read-only token that may create read-only
//! tokens but change nothing, and `auth.max_lifetime_days`. Asking for more is refused naming
//! the field, never quietly narrowed.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tokengate::token::Scope;

use super::{
    As, COMPAT, ME, TOKENS, alice, create, create_as_the_app, get, list, options, post, send,
    start, use_token,
};
use crate::support::app::{Backend, TokenOpts};
use crate::support::both_backends;

both_backends!(
    force_read_only_makes_peoples_own_tokens_read_only,
    a_token_makes_tokens_no_broader_than_itself,
    a_read_only_token_creates_read_only_tokens_and_changes_nothing,
    expiry_is_capped_by_the_maximum_lifetime,
);

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("a time: {value}")))
        .unwrap()
        .to_utc()
}

/// Asserts a 422 that names `field` first.
async fn refused_naming(answer: super::Answer, field: &str) {
    let message = answer.refused(422);
    assert!(
        message.starts_with(&format!("{field}: ")),
        "expected a refusal of {field}: {message}"
    );
}

/// The drop-in API's scope number of the token with this id, from its list.
async fn listed_scope(app: &crate::support::app::TestApp, who: &As, secret: &str) -> Value {
    let listed = get(app, &format!("{COMPAT}/user/token"), who)
        .await
        .expect(200);
    let id = &secret[4..16];
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"))["scope"]
        .clone()
}

async fn force_read_only_makes_peoples_own_tokens_read_only(backend: Backend) {
    let app = start(
        options(backend)
            .set("self_service.force_read_only", true)
            .set("self_service.manage_all", list(&["carol"])),
    )
    .await;
    let me = get(&app, ME, &alice()).await.expect(200);
    assert_eq!(me["limits"]["max_scope"], "read-only");
    let (created, _) = create(&app, &alice(), json!({ "description": "ci" })).await;
    assert_eq!(created["scope"], "read-only");
    let wide = json!({ "description": "ci", "scope": "read-write" });
    refused_naming(post(&app, TOKENS, &alice(), wide).await, "scope").await;

    let path = format!("{COMPAT}/user/token");
    let made = create_as_the_app(&app, &alice(), json!({ "tokenDescription": "old script" })).await;
    let secret = made["plainTextToken"].as_str().unwrap();
    assert_eq!(listed_scope(&app, &alice(), secret).await, 1);
    let wide = json!({ "tokenDescription": "x", "tokenScope": 2 });
    post(&app, &path, &alice(), wide)
        .await
        .refused_as_the_app_does(400);

    // A manager making a token for someone else is not making their own.
    let (for_bob, _) = create(
        &app,
        &super::carol(),
        json!({ "user": "bob", "description": "bot", "scope": "read-write" }),
    )
    .await;
    assert_eq!(for_bob["scope"], "read-write");
    app.finish().await;
}

async fn a_token_makes_tokens_no_broader_than_itself(backend: Backend) {
    let app = start(options(backend).set("auth.max_lifetime_days", 90)).await;
    let expires = DateTime::from_timestamp(Utc::now().timestamp() + 10 * 86_400, 0).unwrap();
    let (signing_id, signing) = app
        .create_token(
            "alice",
            Scope::ReadWrite,
            TokenOpts {
                expires_at: Some(expires),
                allowed_ips: vec!["127.0.0.0/8".parse().unwrap()],
                ..TokenOpts::default()
            },
        )
        .await;
    let by_token = As::bearer(&signing);

    // Left out: the signing token's expiry (earlier than the maximum) and addresses.
    let (inherited, _) = create(&app, &by_token, json!({ "description": "next" })).await;
    assert_eq!(inherited["user"], "alice");
    assert_eq!(time(&inherited["expires_at"]), expires);
    assert_eq!(inherited["allowed_ips"], json!(["127.0.0.0/8"]));

    let refusals = [
        (
            json!({ "expires_at": rfc3339(expires + Duration::days(1)) }),
            "expires_at",
        ),
        (json!({ "allowed_ips": ["10.0.0.0/8"] }), "allowed_ips[0]"),
        (
            json!({ "allowed_ips": ["127.0.0.1", "0.0.0.0/0"] }),
            "allowed_ips[1]",
        ),
        (json!({ "allowed_ips": [] }), "allowed_ips"),
    ];
    for (mut body, field) in refusals {
        body["description"] = json!("too broad");
        refused_naming(post(&app, TOKENS, &by_token, body).await, field).await;
    }

    // Changes are bounded the same way.
    let (other_id, _) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let other = format!("{TOKENS}/{other_id}");
    for (patch, field) in [
        (json!({ "expires_at": null }), "expires_at"),
        (
            json!({ "expires_at": rfc3339(expires + Duration::days(1)) }),
            "expires_at",
        ),
        (json!({ "allowed_ips": [] }), "allowed_ips"),
        (json!({ "allowed_ips": ["192.0.2.0/24"] }), "allowed_ips[0]"),
    ] {
        let answer = send(&app, Method::PATCH, &other, &by_token, Some(patch)).await;
        refused_naming(answer, field).await;
    }
    let narrower = json!({ "allowed_ips": ["127.0.0.1"], "expires_at": rfc3339(expires) });
    send(&app, Method::PATCH, &other, &by_token, Some(narrower))
        .await
        .expect(200);

    // Outside its own allowed addresses, the token signs nobody in.
    let (_, elsewhere) = app
        .create_token(
            "alice",
            Scope::ReadWrite,
            TokenOpts {
                allowed_ips: vec!["192.0.2.0/24".parse().unwrap()],
                ..TokenOpts::default()
            },
        )
        .await;
    get(&app, ME, &As::bearer(&elsewhere)).await.refused(401);

    // Rotation: a narrower read/write successor, which then revokes the token that made it.
    let successor = json!({
        "description": "rotated",
        "scope": "read-write",
        "expires_at": rfc3339(expires - Duration::days(1)),
        "allowed_ips": ["127.0.0.1"],
    });
    let (rotated, secret) = create(&app, &by_token, successor).await;
    assert_eq!(rotated["scope"], "read-write");
    assert_eq!(rotated["allowed_ips"], json!(["127.0.0.1/32"]));
    assert_eq!(use_token(&app, &secret).await.status, 200);
    let old = format!("{TOKENS}/{signing_id}");
    send(&app, Method::DELETE, &old, &As::bearer(&secret), None)
        .await
        .expect(204);
    assert_eq!(use_token(&app, &signing).await.status, 401);
    get(&app, super::ME, &by_token).await.refused(401);
    app.finish().await;
}

async fn a_read_only_token_creates_read_only_tokens_and_changes_nothing(backend: Backend) {
    let app = start(options(backend)).await;
    let (_, read_only) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let by_token = As::bearer(&read_only);
    let wide = json!({ "description": "x", "scope": "read-write" });
    refused_naming(post(&app, TOKENS, &by_token, wide).await, "scope").await;
    let (created, _) = create(&app, &by_token, json!({ "description": "reader" })).await;
    assert_eq!(created["scope"], "read-only");
    // The drop-in API's default is read/write; signed in read-only, read-only is the most.
    let made = create_as_the_app(&app, &by_token, json!({ "tokenDescription": "reader 2" })).await;
    let secret = made["plainTextToken"].as_str().unwrap();
    assert_eq!(listed_scope(&app, &alice(), secret).await, 1);
    post(
        &app,
        &format!("{COMPAT}/user/token"),
        &by_token,
        json!({ "tokenDescription": "x", "tokenScope": 2 }),
    )
    .await
    .refused_as_the_app_does(400);

    let id = created["id"].as_str().unwrap();
    let path = format!("{TOKENS}/{id}");
    let rename = json!({ "description": "renamed" });
    send(&app, Method::PATCH, &path, &by_token, Some(rename))
        .await
        .refused(403);
    send(&app, Method::DELETE, &path, &by_token, None)
        .await
        .refused(403);
    let compat = format!("{COMPAT}/user/token/{id}");
    let rename = json!({ "tokenDescription": "renamed" });
    send(&app, Method::PATCH, &compat, &by_token, Some(rename))
        .await
        .refused_as_the_app_does(403);
    send(&app, Method::DELETE, &compat, &by_token, None)
        .await
        .refused_as_the_app_does(403);
    // Reading is fine, and nothing changed.
    let token = get(&app, &path, &by_token).await.expect(200);
    assert_eq!(
        (&token["description"], &token["state"]),
        (&json!("reader"), &json!("active"))
    );
    app.finish().await;
}

async fn expiry_is_capped_by_the_maximum_lifetime(backend: Backend) {
    let app = start(options(backend).set("auth.max_lifetime_days", 30)).await;
    let before = Utc::now();
    let (defaulted, _) = create(&app, &alice(), json!({ "description": "no expiry given" })).await;
    let after = Utc::now();
    let expires = time(&defaulted["expires_at"]);
    assert!(
        expires >= before + Duration::days(30) - Duration::seconds(1)
            && expires <= after + Duration::days(30),
        "a create without expiry gets the maximum: {expires}"
    );
    let at = rfc3339(Utc::now() + Duration::days(31));
    let answer = post(
        &app,
        TOKENS,
        &alice(),
        json!({ "description": "x", "expires_at": at }),
    )
    .await;
    assert_eq!(answer.json()["error"]["code"], "lifetime_exceeded");
    refused_naming(answer, "expires_at").await;
    let within = DateTime::from_timestamp(Utc::now().timestamp() + 29 * 86_400, 0).unwrap();
    let body = json!({ "description": "x", "expires_at": rfc3339(within) });
    let (created, _) = create(&app, &alice(), body).await;
    assert_eq!(time(&created["expires_at"]), within);

    let path = format!("{TOKENS}/{}", created["id"].as_str().unwrap());
    let forever = json!({ "expires_at": null });
    let answer = send(&app, Method::PATCH, &path, &alice(), Some(forever)).await;
    refused_naming(answer, "expires_at").await;
    let later = json!({ "expires_at": rfc3339(Utc::now() + Duration::days(40)) });
    let answer = send(&app, Method::PATCH, &path, &alice(), Some(later)).await;
    refused_naming(answer, "expires_at").await;
    app.finish().await;
}
