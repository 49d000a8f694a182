//! The drop-in API of the app tokengate replaces, `/rest/de.resolution.apitokenauth/latest`,
//! call by call and field by field, as scripts written for that app read it: 200 on create,
//! epoch milliseconds with 0 for never, numeric scopes, read/write by default, calendar months,
//! `{"errorMessage"}` refusals.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Months, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tokengate::token::Scope;

use super::{
    As, COMPAT, alice, bob, carol, create_as_the_app, get, list, options, post, send, start,
    use_token,
};
use crate::support::app::{Backend, TestApp, TokenOpts};
use crate::support::both_backends;
use crate::support::eventually;

both_backends!(
    tokens_are_made_listed_renamed_and_revoked_as_the_app_did,
    the_expiry_is_bounded_as_the_app_bounded_it,
);

fn token_path() -> String {
    format!("{COMPAT}/user/token")
}

/// The field names of a JSON object.
fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// The caller's tokens as `GET /user/token` lists them.
async fn listed(app: &TestApp, who: &As) -> Vec<Value> {
    let list = get(app, &token_path(), who).await.expect(200);
    list.as_array().expect("a JSON array").clone()
}

/// The token with the id of `secret` in `list`.
fn find<'a>(list: &'a [Value], secret: &str) -> Option<&'a Value> {
    list.iter().find(|t| t["id"] == secret[4..16])
}

/// The expiry the create answer states, after checking its two spellings agree.
fn stated_expiry(created: &Value) -> Option<DateTime<Utc>> {
    let millis = created["tokenExpirationDateTimeMillis"]
        .as_i64()
        .expect("millis");
    match created["tokenExpirationDateTime"].as_str() {
        None => {
            assert_eq!(millis, 0, "{created}");
            None
        }
        Some(text) => {
            let at = DateTime::parse_from_rfc3339(text)
                .expect("ISO-8601")
                .to_utc();
            assert_eq!(at.timestamp_millis(), millis, "{created}");
            Some(at)
        }
    }
}

async fn tokens_are_made_listed_renamed_and_revoked_as_the_app_did(backend: Backend) {
    let app = start(options(backend).set("self_service.manage_all", list(&["carol"]))).await;
    let created_after = Utc::now().timestamp_millis();

    let plain = create_as_the_app(&app, &alice(), json!({ "tokenDescription": "build" })).await;
    assert_eq!(
        keys(&plain),
        BTreeSet::from([
            "plainTextToken",
            "tokenDescription",
            "tokenExpirationDateTime",
            "tokenExpirationDateTimeMillis"
        ])
    );
    let plain_secret = plain["plainTextToken"].as_str().unwrap().to_owned();
    assert!(plain_secret.starts_with("tgt_"), "{plain}");
    assert_eq!(plain["tokenDescription"], "build");
    assert_eq!(stated_expiry(&plain), None);

    // Calendar months, not 30-day blocks.
    for months in [1, 13] {
        let before = Utc::now();
        let body = json!({ "tokenDescription": "monthly", "tokenValidityTimeInMonths": months });
        let made = create_as_the_app(&app, &alice(), body).await;
        let after = Utc::now();
        let at = stated_expiry(&made).expect("an expiry");
        let (earliest, latest) = (
            before.checked_add_months(Months::new(months)).unwrap(),
            after.checked_add_months(Months::new(months)).unwrap(),
        );
        assert!(
            at >= earliest - Duration::milliseconds(1) && at <= latest,
            "{months} months: {at} not within {earliest}..{latest}"
        );
    }
    let exact = DateTime::parse_from_rfc3339("2031-03-31T12:30:00Z")
        .unwrap()
        .to_utc();
    let dated = create_as_the_app(
        &app,
        &alice(),
        json!({
            "tokenDescription": "dated",
            "tokenExpirationDateTime": exact.to_rfc3339_opts(SecondsFormat::Secs, true),
            "tokenScope": 1
        }),
    )
    .await;
    assert_eq!(stated_expiry(&dated), Some(exact));
    let dated_secret = dated["plainTextToken"].as_str().unwrap().to_owned();

    // The list: the app's fields, epoch milliseconds, 0 for never.
    let list = listed(&app, &alice()).await;
    assert_eq!(list.len(), 4, "{list:?}");
    for token in &list {
        assert_eq!(
            keys(token),
            BTreeSet::from([
                "id",
                "description",
                "created",
                "lastAccessed",
                "validUntil",
                "scope"
            ])
        );
        let created = token["created"].as_i64().unwrap();
        assert!(created >= created_after - 1_000 && created <= Utc::now().timestamp_millis());
        assert_eq!(token["lastAccessed"], 0);
    }
    let plain_listed = find(&list, &plain_secret).expect("listed");
    assert_eq!(
        (&plain_listed["validUntil"], &plain_listed["scope"]),
        (&json!(0), &json!(2))
    );
    let dated_listed = find(&list, &dated_secret).expect("listed");
    assert_eq!(dated_listed["validUntil"], exact.timestamp_millis());
    assert_eq!(dated_listed["scope"], 1);
    assert_eq!(dated_listed["description"], "dated");

    // Last access, once the gateway has written it.
    assert_eq!(use_token(&app, &plain_secret).await.status, 200);
    let accessed = eventually("lastAccessed of a used token", async || {
        let list = listed(&app, &alice()).await;
        let at = find(&list, &plain_secret)?["lastAccessed"].as_i64()?;
        (at > 0).then_some(at)
    })
    .await;
    assert!(accessed >= created_after && accessed <= Utc::now().timestamp_millis());

    // Rename, revoke.
    let id = &plain_secret[4..16];
    let path = format!("{}/{id}", token_path());
    let rename = json!({ "tokenDescription": "build (renamed)" });
    send(&app, Method::PATCH, &path, &alice(), Some(rename))
        .await
        .expect(200);
    let list = listed(&app, &alice()).await;
    assert_eq!(
        find(&list, &plain_secret).unwrap()["description"],
        "build (renamed)"
    );
    let revoked = send(&app, Method::DELETE, &path, &alice(), None).await;
    assert_eq!(revoked.expect(200), json!(true));
    let list = listed(&app, &alice()).await;
    assert!(
        find(&list, &plain_secret).is_none(),
        "a revoked token is listed"
    );
    assert_eq!(list.len(), 3);
    assert_eq!(use_token(&app, &plain_secret).await.status, 401);

    // For another user: with the manager right only.
    let for_bob = json!({ "tokenDescription": "for bob", "tokenForUserKey": "bob" });
    post(&app, &token_path(), &alice(), for_bob.clone())
        .await
        .refused_as_the_app_does(403);
    let made = create_as_the_app(&app, &carol(), for_bob).await;
    let bobs = made["plainTextToken"].as_str().unwrap();
    let bob_list = listed(&app, &bob()).await;
    assert_eq!(bob_list.len(), 1);
    assert_eq!(
        find(&bob_list, bobs).expect("bob's")["description"],
        "for bob"
    );
    assert!(
        listed(&app, &carol()).await.is_empty(),
        "made for bob, not carol"
    );
    // Another user's token is not the caller's to rename or revoke.
    let bobs_path = format!("{}/{}", token_path(), &bobs[4..16]);
    send(&app, Method::DELETE, &bobs_path, &alice(), None)
        .await
        .refused_as_the_app_does(404);

    // Requests the app refused.
    for body in [
        json!({ "tokenDescription": "x", "tokenScope": 3 }),
        json!({ "tokenDescription": "x", "tokenValidityTimeInMonths": 0 }),
        json!({ "tokenDescription": "x", "tokenExpirationDateTime": "next tuesday" }),
        json!({ "tokenDescription": "x", "tokenExpirationDateTime": "2001-01-01T00:00:00Z" }),
        json!({ "tokenDescription": "" }),
        json!({ "tokenValidityTimeInMonths": 1 }),
    ] {
        post(&app, &token_path(), &alice(), body)
            .await
            .refused_as_the_app_does(400);
    }
    app.finish().await;
}

async fn the_expiry_is_bounded_as_the_app_bounded_it(backend: Backend) {
    let app = start(options(backend).set("auth.max_lifetime_days", 90)).await;
    let before = Utc::now();
    let made = create_as_the_app(&app, &alice(), json!({ "tokenDescription": "no expiry" })).await;
    let at = stated_expiry(&made).expect("the maximum");
    assert!(
        at >= before + Duration::days(90) - Duration::seconds(1)
            && at <= Utc::now() + Duration::days(90),
        "{at}"
    );
    let two_months = json!({ "tokenDescription": "x", "tokenValidityTimeInMonths": 2 });
    create_as_the_app(&app, &alice(), two_months).await;
    let beyond = Utc::now() + Duration::days(91);
    for body in [
        json!({ "tokenDescription": "x", "tokenValidityTimeInMonths": 4 }),
        json!({
            "tokenDescription": "x",
            "tokenExpirationDateTime": beyond.to_rfc3339_opts(SecondsFormat::Secs, true)
        }),
    ] {
        let message = post(&app, &token_path(), &alice(), body)
            .await
            .refused_as_the_app_does(400);
        assert!(message.contains("90"), "{message}");
    }

    // Signed in with a token that expires sooner: no later than that token.
    let (_, short) = app
        .create_token(
            "alice",
            Scope::ReadWrite,
            TokenOpts {
                expires_at: Some(Utc::now() + Duration::days(5)),
                ..TokenOpts::default()
            },
        )
        .await;
    let month = json!({ "tokenDescription": "x", "tokenValidityTimeInMonths": 1 });
    let message = post(&app, &token_path(), &As::bearer(&short), month)
        .await
        .refused_as_the_app_does(400);
    assert!(message.contains("expires_at"), "{message}");
    app.finish().await;
}
