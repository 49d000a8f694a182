//! Rotation through the admin API on one gateway, watched from a second gateway on the same
//! store: the successor copies everything but the secret, the old secret keeps working
//! through its grace and is refused within a second after it on both, and both tokens are
//! audited naming each other. Without a grace the old token is refused at once.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::app::{ADMIN_TOKEN, Backend, Options, TestApp, spawn_app};
use crate::support::both_backends;
use crate::support::{eventually, refused_within_a_second};

both_backends!(a_rotated_token_works_through_its_grace_and_stops_on_every_gateway);

/// The grace the test gives: short, so the test is quick, but long enough to see it work.
const GRACE: Duration = Duration::from_secs(2);

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("a time").parse().expect("RFC 3339")
}

/// The audit events of type `kind` about token `id`, newest first, once there is one (the
/// writer batches).
async fn audit_of(app: &TestApp, id: &str, kind: &str) -> Vec<Value> {
    let path = format!("/admin/v1/audit?token_id={id}&type={kind}");
    eventually(&format!("a {kind} event of {id}"), async || {
        let answer = app.admin(Method::GET, &path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let events = answer.body["events"].as_array().expect("events").clone();
        (!events.is_empty()).then_some(events)
    })
    .await
}

async fn a_rotated_token_works_through_its_grace_and_stops_on_every_gateway(backend: Backend) {
    let one = spawn_app(Options::new(backend).set("admin.token", ADMIN_TOKEN)).await;
    let two = spawn_app(
        Options::new(backend)
            .set("admin.token", ADMIN_TOKEN)
            .set("database.url", one.database_url()),
    )
    .await;
    let expires = (Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let old = one
        .admin_create(json!({
            "user": "automation-user",
            "description": "CI pipeline",
            "scope": "read-write",
            "expires_at": expires,
            "allowed_ips": ["127.0.0.0/8", "::1/128"],
            "rate_limit": {"requests": 1000, "period_seconds": 60},
        }))
        .await;
    let (old_id, old_secret) = (
        old["id"].as_str().unwrap().to_owned(),
        old["token"].as_str().unwrap().to_owned(),
    );
    two.track_secret(&old_secret);
    // The second gateway has the old token verified and cached.
    assert_eq!(two.use_token(&old_secret).await, StatusCode::OK);

    let asked = Instant::now();
    let rotated = one
        .admin(
            Method::POST,
            &format!("/admin/v1/tokens/{old_id}/rotate"),
            Some(&json!({"grace_seconds": GRACE.as_secs()})),
        )
        .await;
    let answered = Instant::now();
    assert_eq!(rotated.status, StatusCode::CREATED, "{rotated:?}");
    let new = &rotated.body;
    let new_secret = new["token"].as_str().expect("the new secret").to_owned();
    one.track_secret(&new_secret);
    two.track_secret(&new_secret);
    let new_id = new["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    assert!(new_secret.starts_with(&format!("tgt_{new_id}_")));
    for field in [
        "user",
        "description",
        "scope",
        "expires_at",
        "allowed_ips",
        "rate_limit",
    ] {
        assert_eq!(new[field], old[field], "{field} is copied");
    }
    assert_eq!(new["state"], "active");
    let replaces = &new["replaces"];
    assert_eq!(replaces["id"], old_id.as_str());
    assert_eq!(replaces["state"], "active", "in its grace");
    assert!(
        replaces.get("token").is_none(),
        "no secret of the old token"
    );
    let ends = time(&replaces["expires_at"]);
    let grace_left = ends - Utc::now();
    assert!(
        grace_left <= chrono::Duration::from_std(GRACE).unwrap()
            && grace_left > chrono::Duration::zero(),
        "the old token ends when the grace does: {ends}"
    );

    // Rotating the old token again is refused: it has a successor.
    one.admin(
        Method::POST,
        &format!("/admin/v1/tokens/{old_id}/rotate"),
        None,
    )
    .await
    .refused(409, "token_replaced", &new_id);

    // The successor works on both gateways; the old secret too, while the grace lasts.
    assert_eq!(one.use_token(&new_secret).await, StatusCode::OK);
    assert_eq!(two.use_token(&new_secret).await, StatusCode::OK);
    let mut seen_working = false;
    refused_within_a_second(
        "the old secret at the end of its grace",
        answered + GRACE,
        async || {
            let sent = Instant::now();
            let answer = two.use_token(&old_secret).await;
            if answer == StatusCode::UNAUTHORIZED {
                // Refused after the grace ended (measured from when the rotation was asked),
                // within a second of it.
                assert!(
                    sent >= asked + GRACE - Duration::from_millis(100),
                    "refused {:?} into a grace of {GRACE:?}",
                    sent - asked
                );
                assert!(
                    sent <= answered + GRACE + Duration::from_secs(1),
                    "still accepted {:?} after the rotation",
                    sent - answered
                );
                return Some(());
            }
            assert_eq!(answer, StatusCode::OK);
            seen_working = true;
            None
        },
    )
    .await;
    assert!(seen_working, "the old secret worked during its grace");
    assert_eq!(one.use_token(&old_secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(two.use_token(&new_secret).await, StatusCode::OK);

    // Both audited, each naming the other.
    let created = audit_of(&one, &new_id, "token_created").await;
    assert_eq!(created[0]["type"], "token_created", "{created:?}");
    assert_eq!(created[0]["attributes"]["rotated_from"], old_id.as_str());
    assert_eq!(created[0]["actor"], "admin-api");
    let ended = audit_of(&one, &old_id, "token_changed").await;
    assert_eq!(ended[0]["type"], "token_changed", "{ended:?}");
    assert_eq!(ended[0]["attributes"]["replaced_by"], new_id.as_str());
    assert_eq!(ended[0]["attributes"]["grace_seconds"], GRACE.as_secs());

    // Without a body there is no grace: the old token is revoked at once, here and within a
    // second on the other gateway.
    let again = one
        .admin_as(
            Some(ADMIN_TOKEN),
            Method::POST,
            &format!("/admin/v1/tokens/{new_id}/rotate"),
            None,
        )
        .await;
    let revoked_at = Instant::now();
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    let third = again.body["token"].as_str().unwrap().to_owned();
    one.track_secret(&third);
    two.track_secret(&third);
    assert_eq!(again.body["replaces"]["state"], "revoked");
    assert_eq!(one.use_token(&new_secret).await, StatusCode::UNAUTHORIZED);
    refused_within_a_second(
        "the revoked token on the other gateway",
        revoked_at,
        async || (two.use_token(&new_secret).await != StatusCode::OK).then_some(()),
    )
    .await;
    assert_eq!(two.use_token(&third).await, StatusCode::OK);
    let revoked = audit_of(&one, &new_id, "token_revoked").await;
    assert_eq!(revoked[0]["type"], "token_revoked", "{revoked:?}");
    assert_eq!(
        revoked[0]["attributes"]["replaced_by"],
        again.body["id"].as_str().unwrap()
    );

    // Refusals name what is wrong and change nothing.
    let path = format!("/admin/v1/tokens/{new_id}/rotate");
    one.admin(Method::POST, &path, None)
        .await
        .refused(409, "token_revoked", &new_id);
    let third_id = again.body["id"].as_str().unwrap().to_owned();
    let third_path = format!("/admin/v1/tokens/{third_id}/rotate");
    one.admin(
        Method::POST,
        &third_path,
        Some(&json!({"grace_seconds": 31 * 86_400})),
    )
    .await
    .refused(422, "invalid_value", "grace_seconds");
    one.admin(Method::POST, &third_path, Some(&json!({"grace": 5})))
        .await
        .refused(400, "invalid_field", "grace");
    one.admin(Method::POST, "/admin/v1/tokens/zzzzzzzzzzzz/rotate", None)
        .await
        .refused(404, "not_found", "zzzzzzzzzzzz");
    let tokens = one.admin(Method::GET, "/admin/v1/tokens", None).await;
    assert_eq!(
        tokens.body["tokens"].as_array().unwrap().len(),
        3,
        "no token was made"
    );
    assert_eq!(one.use_token(&third).await, StatusCode::OK);
    two.finish().await;
    one.finish().await;
}
