//! `GET /user/tokensByFilter` of the drop-in API: everyone's tokens that are not revoked, by
//! each of the app's filters, a page at a time; for token managers only.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokengate::store::LastUse;
use tokengate::token::{Scope, TokenId};

use super::{COMPAT, alice, carol, get, list, options, start};
use crate::support::app::{Backend, TestApp, TokenOpts};
use crate::support::both_backends;

both_backends!(managers_filter_everyones_tokens_as_the_app_did);

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn ms(text: &str) -> i64 {
    at(text).timestamp_millis()
}

/// One stored token: owner, description, scope, created, expires, last used.
struct Planted {
    user: &'static str,
    description: &'static str,
    scope: Scope,
    created: &'static str,
    expires: Option<&'static str>,
    used: Option<&'static str>,
}

async fn plant(app: &TestApp, token: &Planted) -> TokenId {
    let opts = TokenOpts {
        description: token.description.to_owned(),
        created_at: at(token.created),
        expires_at: token.expires.map(at),
        ..TokenOpts::default()
    };
    let (id, _) = app.create_token(token.user, token.scope, opts).await;
    if let Some(used) = token.used {
        let using = LastUse {
            id: id.clone(),
            at: at(used),
            ip: "192.0.2.7".parse().unwrap(),
        };
        app.store().record_last_used(&[using]).await.unwrap();
    }
    id
}

/// The descriptions of the tokens `query` keeps, all pages of 1000.
async fn kept(app: &TestApp, query: &str) -> BTreeSet<String> {
    let page = get(
        app,
        &format!("{COMPAT}/user/tokensByFilter?{query}"),
        &carol(),
    )
    .await
    .expect(200);
    let tokens = page["tokens"].as_array().expect("tokens");
    assert_eq!(page["total"], tokens.len(), "{query}: {page}");
    tokens
        .iter()
        .map(|t| t["description"].as_str().unwrap().to_owned())
        .collect()
}

fn set(descriptions: &[&str]) -> BTreeSet<String> {
    descriptions.iter().map(|d| (*d).to_owned()).collect()
}

async fn managers_filter_everyones_tokens_as_the_app_did(backend: Backend) {
    let app = start(options(backend).set("self_service.manage_all", list(&["carol"]))).await;
    let tokens = [
        Planted {
            user: "alice",
            description: "Deploy key",
            scope: Scope::ReadWrite,
            created: "2024-01-10T10:00:00Z",
            expires: Some("2030-01-01T00:00:00Z"),
            used: Some("2025-02-01T08:00:00Z"),
        },
        Planted {
            user: "alice",
            description: "CI reader",
            scope: Scope::ReadOnly,
            created: "2024-03-10T10:00:00Z",
            expires: None,
            used: None,
        },
        Planted {
            user: "bob",
            description: "deploy bot",
            scope: Scope::ReadOnly,
            created: "2024-05-10T10:00:00Z",
            expires: Some("2029-06-01T00:00:00Z"),
            used: Some("2025-05-01T08:00:00Z"),
        },
        Planted {
            user: "carol",
            description: "misc",
            scope: Scope::ReadWrite,
            created: "2024-07-10T10:00:00Z",
            expires: Some("2028-01-01T00:00:00Z"),
            used: None,
        },
        Planted {
            user: "dave",
            description: "expired one",
            scope: Scope::ReadOnly,
            created: "2023-01-10T10:00:00Z",
            expires: Some("2025-01-01T00:00:00Z"),
            used: None,
        },
        Planted {
            user: "bob",
            description: "deploy old (revoked)",
            scope: Scope::ReadWrite,
            created: "2024-02-10T10:00:00Z",
            expires: None,
            used: None,
        },
    ];
    let mut ids = Vec::new();
    for token in &tokens {
        ids.push(plant(&app, token).await);
    }
    app.store().revoke_token(&ids[5], Utc::now()).await.unwrap();

    let everyone = [
        "Deploy key",
        "CI reader",
        "deploy bot",
        "misc",
        "expired one",
    ];
    assert_eq!(kept(&app, "").await, set(&everyone));
    let cases = [
        (
            "userFilter=alice".to_owned(),
            set(&["Deploy key", "CI reader"]),
        ),
        (
            "userFilter=alice&userFilter=BOB".to_owned(),
            set(&["Deploy key", "CI reader", "deploy bot"]),
        ),
        (
            "descriptionFilter=DEPLOY".to_owned(),
            set(&["Deploy key", "deploy bot"]),
        ),
        (
            "descriptionFilter=ci+reader".to_owned(),
            set(&["CI reader"]),
        ),
        (
            "tokenScope=1".to_owned(),
            set(&["CI reader", "deploy bot", "expired one"]),
        ),
        ("tokenScope=2".to_owned(), set(&["Deploy key", "misc"])),
        (
            format!(
                "fromCreated={}&untilCreated={}",
                ms("2024-03-01T00:00:00Z"),
                ms("2024-06-01T00:00:00Z")
            ),
            set(&["CI reader", "deploy bot"]),
        ),
        (
            format!("fromCreated={}", ms("2024-05-10T10:00:00Z")),
            set(&["deploy bot", "misc"]),
        ),
        (
            format!(
                "fromLastUsed={}&untilLastUsed={}",
                ms("2025-01-01T00:00:00Z"),
                ms("2025-03-01T00:00:00Z")
            ),
            set(&["Deploy key"]),
        ),
        (
            format!("fromLastUsed={}", ms("2025-01-01T00:00:00Z")),
            set(&["Deploy key", "deploy bot"]),
        ),
        (
            format!(
                "fromExpiresDuring={}&untilExpiresDuring={}",
                ms("2028-06-01T00:00:00Z"),
                ms("2030-06-01T00:00:00Z")
            ),
            set(&["Deploy key", "deploy bot"]),
        ),
        (
            format!("notValidAfter={}", ms("2029-12-31T00:00:00Z")),
            set(&["deploy bot", "misc", "expired one"]),
        ),
        (
            format!(
                "userFilter=bob&tokenScope=1&untilCreated={}",
                ms("2025-01-01T00:00:00Z")
            ),
            set(&["deploy bot"]),
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(kept(&app, &query).await, expected, "{query}");
    }

    // Pages: each token once, in a stable order.
    let mut seen = Vec::new();
    for page in 0..3 {
        let answer = get(
            &app,
            &format!("{COMPAT}/user/tokensByFilter?limit=2&page={page}"),
            &carol(),
        )
        .await
        .expect(200);
        assert_eq!(
            (&answer["total"], &answer["page"], &answer["limit"]),
            (&5.into(), &page.into(), &2.into())
        );
        let tokens = answer["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), if page < 2 { 2 } else { 1 }, "page {page}");
        for token in tokens {
            let fields: BTreeSet<&str> = token
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                fields,
                BTreeSet::from([
                    "id",
                    "description",
                    "created",
                    "lastAccessed",
                    "validUntil",
                    "scope",
                    "user"
                ])
            );
            seen.push(token["description"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        seen.iter().cloned().collect::<BTreeSet<_>>(),
        set(&everyone)
    );
    assert_eq!(seen.len(), 5);
    let beyond = get(
        &app,
        &format!("{COMPAT}/user/tokensByFilter?limit=2&page=3"),
        &carol(),
    )
    .await
    .expect(200);
    assert_eq!(beyond["tokens"], Value::Array(Vec::new()));

    // A planted token's times as listed.
    let deploy = get(
        &app,
        &format!("{COMPAT}/user/tokensByFilter?userFilter=alice&tokenScope=2"),
        &carol(),
    )
    .await
    .expect(200)["tokens"][0]
        .clone();
    assert_eq!(deploy["id"], ids[0].as_str());
    assert_eq!(deploy["user"], "alice");
    assert_eq!(deploy["created"], ms("2024-01-10T10:00:00Z"));
    assert_eq!(deploy["lastAccessed"], ms("2025-02-01T08:00:00Z"));
    assert_eq!(deploy["validUntil"], ms("2030-01-01T00:00:00Z"));

    // Not a manager; bad parameters.
    get(&app, &format!("{COMPAT}/user/tokensByFilter"), &alice())
        .await
        .refused_as_the_app_does(403);
    for query in [
        "limit=0",
        "fromCreated=yesterday",
        "tokenScope=3",
        "sort=desc",
    ] {
        get(
            &app,
            &format!("{COMPAT}/user/tokensByFilter?{query}"),
            &carol(),
        )
        .await
        .refused_as_the_app_does(400);
    }
    app.finish().await;
}
