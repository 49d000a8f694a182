//! tokengate's own self-service API, `/rest/tokengate/1.0/tokens`: create (201, the secret this
//! once), list (no secrets, newest first, by state, in pages), read, change and revoke, with
//! the admin API's refusals.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::{TOKENS, alice, bob, create, get, options, post, send, start, use_token};
use crate::support::app::Backend;
use crate::support::both_backends;

both_backends!(people_make_read_change_and_revoke_their_tokens);

fn ids(page: &Value) -> Vec<String> {
    page["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn people_make_read_change_and_revoke_their_tokens(backend: Backend) {
    let app = start(options(backend)).await;
    let expires = DateTime::from_timestamp(Utc::now().timestamp() + 7 * 86_400, 0).unwrap();
    let (created, secret) = create(
        &app,
        &alice(),
        json!({
            "description": "deploy",
            "scope": "read-write",
            "expires_at": expires.to_rfc3339_opts(SecondsFormat::Secs, true),
            "allowed_ips": ["127.0.0.1", "10.0.0.0/8"],
            "rate_limit": { "requests": 5, "period_seconds": 60 }
        }),
    )
    .await;
    assert!(secret.starts_with("tgt_"));
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["user"], "alice");
    assert_eq!(created["description"], "deploy");
    assert_eq!(created["scope"], "read-write");
    assert_eq!(
        created["expires_at"],
        expires.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    assert_eq!(
        created["allowed_ips"],
        json!(["127.0.0.1/32", "10.0.0.0/8"])
    );
    assert_eq!(created["state"], "active");
    let answer = use_token(&app, &secret).await;
    assert_eq!(answer.status, 200, "the new token works: {}", answer.body);
    // The API's own default scope is read-only.
    let (reader, _) = create(&app, &alice(), json!({ "description": "reader" })).await;
    assert_eq!(reader["scope"], "read-only");
    let reader_id = reader["id"].as_str().unwrap().to_owned();

    // The list: newest first, never a secret; bob sees none of alice's.
    let page = get(&app, TOKENS, &alice()).await;
    assert!(!page.body.contains(&secret[17..]), "a secret in the list");
    let page = page.expect(200);
    assert_eq!(ids(&page), [reader_id.clone(), id.clone()]);
    assert!(page["tokens"][0].get("token").is_none());
    assert_eq!(
        ids(&get(&app, TOKENS, &bob()).await.expect(200)),
        Vec::<String>::new()
    );
    let first = get(&app, &format!("{TOKENS}?limit=1"), &alice())
        .await
        .expect(200);
    assert_eq!(ids(&first), [reader_id.as_str()]);
    let cursor = first["next_cursor"].as_str().expect("a cursor");
    let second = get(&app, &format!("{TOKENS}?limit=1&cursor={cursor}"), &alice())
        .await
        .expect(200);
    assert_eq!(ids(&second), [id.as_str()]);
    assert!(second["next_cursor"].is_null());

    // Read and change.
    let path = format!("{TOKENS}/{id}");
    let token = get(&app, &path, &alice()).await.expect(200);
    assert_eq!(
        (&token["id"], &token["rate_limit"]),
        (&json!(id), &created["rate_limit"])
    );
    let sooner = expires - Duration::days(1);
    let patch = json!({
        "description": "deploy (prod)",
        "expires_at": sooner.to_rfc3339_opts(SecondsFormat::Secs, true),
        "allowed_ips": [],
        "rate_limit": null
    });
    let changed = send(&app, Method::PATCH, &path, &alice(), Some(patch))
        .await
        .expect(200);
    assert_eq!(changed["description"], "deploy (prod)");
    assert_eq!(
        changed["expires_at"],
        sooner.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    assert_eq!(changed["allowed_ips"], json!([]));
    assert!(changed["rate_limit"].is_null());

    // Refusals in the admin API's shape.
    for (body, status) in [
        (json!({ "description": "x", "colour": "red" }), 400),
        (json!({ "scope": "read-only" }), 400),
        (json!({ "description": "x", "scope": "admin" }), 422),
        (
            json!({ "description": "x", "allowed_ips": ["10.0.0.0/33"] }),
            422,
        ),
        (
            json!({ "description": "x", "expires_at": "2001-01-01T00:00:00Z" }),
            422,
        ),
        (json!({ "description": "" }), 422),
    ] {
        post(&app, TOKENS, &alice(), body.clone())
            .await
            .refused(status);
    }
    send(&app, Method::PATCH, &path, &alice(), Some(json!({})))
        .await
        .refused(422);
    get(&app, &format!("{TOKENS}/nosuchtoken1"), &alice())
        .await
        .refused(404);
    get(&app, &format!("{TOKENS}?state=sleeping"), &alice())
        .await
        .refused(400);

    // Revoke: 204, again 204, then read-only history.
    send(&app, Method::DELETE, &path, &alice(), None)
        .await
        .expect(204);
    send(&app, Method::DELETE, &path, &alice(), None)
        .await
        .expect(204);
    assert_eq!(use_token(&app, &secret).await.status, 401);
    assert_eq!(
        get(&app, &path, &alice()).await.expect(200)["state"],
        "revoked"
    );
    send(
        &app,
        Method::PATCH,
        &path,
        &alice(),
        Some(json!({ "description": "x" })),
    )
    .await
    .refused(409);
    let revoked = get(&app, &format!("{TOKENS}?state=revoked"), &alice())
        .await
        .expect(200);
    assert_eq!(ids(&revoked), [id.as_str()]);
    let active = get(&app, &format!("{TOKENS}?state=active"), &alice())
        .await
        .expect(200);
    assert_eq!(
        ids(&active).into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([reader_id])
    );
    app.finish().await;
}
