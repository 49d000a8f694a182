//! The token manager and the audit page: everyone's tokens by the filters, making a token for
//! someone, rotating and revoking anyone's; the audit trail with its filters and CSV export; neither page
//! nor a link to it for people without the right; every page at 320 px.

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone, Utc};
use tokengate::store::LastUse;
use tokengate::token::{Scope, TokenId};

use super::{
    click, get_as, post_as, rotate_keeping_old_for, row, shown_secret, sign_in, site, token,
};
use crate::support::app::{Backend, Options, TokenOpts, spawn_app};
use crate::support::browser::Browser;
use crate::support::eventually;

const FILTERS: &str = "//form[contains(@class, 'tg-filters')]";
const CREATE: &str = "//form[@id='create']";

/// The ids of the tokens listed now.
async fn listed(browser: &Browser) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for row in browser.all("tr[data-token]").await {
        ids.insert(row.attr("data-token").await.unwrap().unwrap());
    }
    ids
}

fn ids(list: &[&TokenId]) -> BTreeSet<String> {
    list.iter().map(ToString::to_string).collect()
}

/// Sets the filter labelled `label` to `value` (a date as the person types it: mm dd yyyy),
/// and filters.
async fn filter(browser: &Browser, fields: &[(&str, &str)]) {
    browser
        .goto(&format!(
            "{}manage",
            browser.url().await.join("/tokengate/").unwrap()
        ))
        .await;
    for (label, value) in fields {
        let field = browser.field(FILTERS, label).await;
        match field.tag_name().await.unwrap().as_str() {
            "select" => field.select_by_label(value).await.unwrap(),
            _ => field.send_keys(value).await.unwrap(),
        }
    }
    click(browser, FILTERS, "Filter").await;
    browser
        .wait_until("the filtered page", "return location.search.length > 1;")
        .await;
    browser.find("#tokens-title").await;
}

#[tokio::test]
async fn the_manager_filters_everyone_s_tokens_makes_one_for_someone_and_revokes() {
    let app = site(Backend::Sqlite).await;
    let (bob_ci, _) = token(&app, "bob", "CI deploy", Scope::ReadWrite).await;
    let (bob_ro, _) = token(&app, "bob", "Grafana dashboard", Scope::ReadOnly).await;
    let (carol_ci, _) = token(&app, "carol", "CI deploy", Scope::ReadOnly).await;
    let old = TokenOpts {
        description: "Old laptop".to_owned(),
        created_at: Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap(),
        expires_at: Some(Utc::now() + Duration::days(5)),
        ..TokenOpts::default()
    };
    let (alice_old, _) = app.create_token("alice", Scope::ReadOnly, old).await;
    let yesterday = Utc::now() - Duration::days(1);
    let used = LastUse {
        id: bob_ci.clone(),
        at: yesterday,
        ip: "10.1.2.3".parse().unwrap(),
    };
    app.store().record_last_used(&[used]).await.unwrap();

    let browser = Browser::start().await;
    sign_in(&app, &browser, "admin", "/tokengate/manage").await;
    browser.wait_for_text("Showing 1–4 of 4 tokens.").await;
    assert_eq!(
        listed(&browser).await,
        ids(&[&bob_ci, &bob_ro, &carol_ci, &alice_old])
    );
    browser.screenshot("token-manager").await;

    filter(&browser, &[("User", "bob")]).await;
    assert_eq!(listed(&browser).await, ids(&[&bob_ci, &bob_ro]));
    filter(&browser, &[("User", "BOB"), ("Scope", "Read only")]).await;
    assert_eq!(listed(&browser).await, ids(&[&bob_ro]));
    filter(&browser, &[("Description", "ci DEPLOY")]).await;
    assert_eq!(listed(&browser).await, ids(&[&bob_ci, &carol_ci]));
    filter(&browser, &[("Created until", "03312024")]).await;
    assert_eq!(listed(&browser).await, ids(&[&alice_old]));
    let day = yesterday.format("%m%d%Y").to_string();
    filter(
        &browser,
        &[("Last used from", &day), ("Last used until", &day)],
    )
    .await;
    assert_eq!(listed(&browser).await, ids(&[&bob_ci]));
    let (today, week) = (
        Utc::now().format("%m%d%Y").to_string(),
        (Utc::now() + Duration::days(7))
            .format("%m%d%Y")
            .to_string(),
    );
    filter(
        &browser,
        &[("Expires from", &today), ("Expires until", &week)],
    )
    .await;
    assert_eq!(listed(&browser).await, ids(&[&alice_old]));

    // A token for someone else: its secret once, and its row under their name.
    browser
        .field(CREATE, "User")
        .await
        .send_keys("dave")
        .await
        .unwrap();
    browser
        .field(CREATE, "Description")
        .await
        .send_keys("Build agent")
        .await
        .unwrap();
    browser
        .field(CREATE, "Expires")
        .await
        .select_by_value("7")
        .await
        .unwrap();
    click(&browser, CREATE, "Create token").await;
    let secret = shown_secret(&app, &browser).await;
    assert_eq!(app.use_token(&secret).await, 200);
    let dave = browser
        .find_xpath("//tr[td[normalize-space()='dave']]")
        .await;
    assert!(dave.text().await.unwrap().contains("Build agent"));

    // Revoking keeps the filters the page had.
    filter(&browser, &[("User", "carol")]).await;
    click(&browser, &row(&carol_ci), "Revoke").await;
    click(&browser, "//dialog", "Revoke").await;
    browser.wait_for_text("Revoked “CI deploy” of carol.").await;
    assert!(
        browser
            .url()
            .await
            .query()
            .unwrap_or_default()
            .contains("user=carol")
    );
    assert_eq!(listed(&browser).await, ids(&[&carol_ci]));
    let state = browser
        .find_xpath(&row(&carol_ci))
        .await
        .text()
        .await
        .unwrap();
    assert!(state.contains("REVOKED"), "{state}");
    filter(&browser, &[("State", "Revoked")]).await;
    assert_eq!(listed(&browser).await, ids(&[&carol_ci]));
    browser.finish().await;
    app.finish().await;
}

#[tokio::test]
async fn the_manager_rotates_someone_s_token_and_keeps_the_filters() {
    let app = site(Backend::Postgres).await;
    let (bob_ci, old) = token(&app, "bob", "CI deploy", Scope::ReadWrite).await;
    let (carol_ci, _) = token(&app, "carol", "CI deploy", Scope::ReadOnly).await;
    let browser = Browser::start().await;
    sign_in(&app, &browser, "admin", "/tokengate/manage").await;
    filter(&browser, &[("User", "bob")]).await;
    assert_eq!(listed(&browser).await, ids(&[&bob_ci]));

    click(&browser, &row(&bob_ci), "Rotate").await;
    browser.wait_for_text("Rotate “CI deploy”?").await;
    browser.wait_for_text("A token of bob").await;
    rotate_keeping_old_for(&browser, "0").await;
    browser
        .wait_for_text("Rotated “CI deploy”. The old token is revoked")
        .await;
    let successor = shown_secret(&app, &browser).await;
    // The page keeps bob's filter: his two tokens, the old one revoked; carol's is not listed.
    let shown = listed(&browser).await;
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(shown.contains(bob_ci.as_str()) && !shown.contains(carol_ci.as_str()));
    let old_row = browser
        .find_xpath(&row(&bob_ci))
        .await
        .text()
        .await
        .unwrap();
    assert!(old_row.contains("REVOKED"), "{old_row}");

    // The successor acts for bob.
    assert_eq!(app.use_token(&successor).await, 200);
    let seen = app.upstream.requests();
    let last = seen.last().expect("forwarded");
    assert_eq!(last.header("x-forwarded-user").as_deref(), Some("bob"));
    eventually("the old token to be refused", async || {
        (app.use_token(&old).await == 401).then_some(())
    })
    .await;
    browser.finish().await;
    app.finish().await;
}

#[tokio::test]
async fn without_the_right_neither_the_pages_nor_links_to_them_show() {
    let app = site(Backend::Sqlite).await;
    let browser = Browser::start().await;
    sign_in(&app, &browser, "alice", "/tokengate/").await;
    browser.find("#create").await;
    let links = "a[href*='manage'], a[href*='audit']";
    assert!(
        browser.all(links).await.is_empty(),
        "a link to a page alice may not use"
    );
    for page in [
        "/tokengate/manage",
        "/tokengate/audit",
        "/tokengate/audit/export.csv",
    ] {
        browser.goto(&format!("{}{page}", app.proxy_url())).await;
        browser
            .wait_for_text("This page is for token managers.")
            .await;
        assert!(browser.all(links).await.is_empty());
        assert_eq!(get_as(&app, "alice", page).await.status(), 403, "{page}");
    }
    browser.screenshot("not-allowed").await;

    sign_in(&app, &browser, "admin", "/tokengate/").await;
    let nav: Vec<String> = {
        let mut texts = Vec::new();
        for link in browser.all("nav a").await {
            texts.push(link.text().await.unwrap());
        }
        texts
    };
    assert_eq!(nav, ["My API tokens", "Token manager", "Audit"]);
    browser.finish().await;
    app.finish().await;

    // Without create_own: the tokens show, the form does not, and a post is refused.
    let app = spawn_app(
        Options::new(Backend::Sqlite).set("self_service.create_own", Vec::<String>::new()),
    )
    .await;
    let browser = Browser::start().await;
    sign_in(&app, &browser, "alice", "/tokengate/").await;
    browser
        .wait_for_text("You may not create tokens yourself here.")
        .await;
    assert!(browser.all("#create").await.is_empty());
    let refused = app
        .client
        .post(format!("{}/tokengate/", app.proxy_url()))
        .header(
            "cookie",
            format!("BITBUCKETSESSIONID={}", super::session_of("alice")),
        )
        .header("origin", app.proxy_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("atl_token=no-check&description=x&scope=read-only&expires=7&allowed_ips=")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        app.store()
            .list_tokens(&tokengate::store::TokenQuery {
                user: None,
                state: None,
                now: Utc::now(),
                limit: 10,
                after: None
            })
            .await
            .unwrap()
            .is_empty()
    );
    browser.finish().await;
    app.finish().await;
}

#[tokio::test]
async fn the_audit_page_filters_the_trail_and_exports_it_as_csv() {
    let app = site(Backend::Postgres).await;
    let (_, secret) = token(&app, "bob", "CI deploy", Scope::ReadOnly).await;
    assert_eq!(app.use_token(&secret).await, 200);
    assert_eq!(
        app.use_token(&format!("{}x", &secret[..secret.len() - 1]))
            .await,
        401
    );
    // A token made for carol on the manager's page, and revoked there.
    app.upstream
        .bitbucket()
        .add_session("admin", &super::session_of("admin"));
    let origin = app.proxy_url();
    let made = "atl_token=no-check&user=carol&description=Release+bot&scope=read-write&expires=30&allowed_ips=10.0.0.0%2F8";
    let made = post_as(&app, "admin", "/tokengate/manage", Some(&origin), made).await;
    let made = made.text().await.unwrap();
    let secret_at = made.find("value=\"tgt_").expect("a secret") + 7;
    app.track_secret(&made[secret_at..secret_at + made[secret_at..].find('"').unwrap()]);
    let id = &made[secret_at + 4..secret_at + 16];
    let revoke = format!("atl_token=no-check&id={id}&confirmed=yes");
    assert_eq!(
        post_as(
            &app,
            "admin",
            "/tokengate/manage/revoke",
            Some(&origin),
            &revoke
        )
        .await
        .status(),
        303
    );

    let browser = Browser::start().await;
    sign_in(&app, &browser, "admin", "/tokengate/audit").await;
    eventually("the events on the page", async || {
        browser.client().refresh().await.unwrap();
        let text = browser.text().await;
        [
            "Auth succeeded",
            "Auth failed",
            "Token created",
            "Token revoked",
        ]
        .iter()
        .all(|kind| text.contains(kind))
        .then_some(())
    })
    .await;
    browser.screenshot("audit").await;

    browser
        .field(FILTERS, "Event")
        .await
        .select_by_label("Auth succeeded")
        .await
        .unwrap();
    browser
        .field(FILTERS, "User")
        .await
        .send_keys("bob")
        .await
        .unwrap();
    click(&browser, FILTERS, "Filter").await;
    browser
        .wait_until(
            "the filtered page",
            "return location.search.includes('auth_succeeded');",
        )
        .await;
    let rows = browser.all("tbody tr").await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0]
            .text()
            .await
            .unwrap()
            .contains("/rest/api/1.0/projects")
    );

    // The export link gives what the filters show, as CSV.
    let href = browser.link_href("Export CSV").await;
    let csv = get_as(&app, "admin", &href).await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("id,time,type,outcome,user"), "{text}");
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].contains(",auth_succeeded,allowed,bob,"), "{text}");
    browser.finish().await;
    app.finish().await;
}

#[tokio::test]
async fn every_page_fits_a_320_px_wide_screen() {
    let app = site(Backend::Sqlite).await;
    let long =
        "Deployment pipeline of the payments-service-with-a-very-long-name-that-does-not-wrap";
    token(&app, "admin", long, Scope::ReadWrite).await;
    token(&app, "admin", "Grafana", Scope::ReadOnly).await;
    let browser = Browser::start().await;
    sign_in(&app, &browser, "admin", "/tokengate/").await;
    browser.set_viewport_width(320).await;
    for page in ["/tokengate/", "/tokengate/manage", "/tokengate/audit"] {
        browser.goto(&format!("{}{page}", app.proxy_url())).await;
        browser.find("h1").await;
        let fits = browser
            .run(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                Vec::new(),
            )
            .await;
        assert_eq!(
            fits,
            serde_json::json!(true),
            "{page} scrolls sideways at 320 px"
        );
        if page == "/tokengate/" {
            browser.screenshot("my-tokens-320px").await;
        }
    }
    browser.finish().await;
    app.finish().await;
}
