//! My API tokens: signing in through Bitbucket, making a token and copying it, the secret shown
//! once, rotating with a grace, revoking after a confirmation, and the form by keyboard alone.

use fantoccini::key::Key;
use serde_json::json;
use tokengate::token::Scope;

use super::{click, rotate_keeping_old_for, row, shown_secret, sign_in, site, token};
use crate::support::app::Backend;
use crate::support::browser::Browser;
use crate::support::eventually;

const CREATE: &str = "//form[@id='create']";

#[tokio::test]
async fn someone_not_signed_in_is_sent_to_bitbucket_s_login_and_back() {
    let app = site(Backend::Sqlite).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/tokengate/?revoked=x", app.proxy_url()))
        .await;
    let url = browser.url().await;
    assert_eq!(url.path(), "/login", "{url}");
    let next: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        next,
        [("next".to_owned(), "/tokengate/?revoked=x".to_owned())]
    );

    // A session Bitbucket does not know is not signed in either.
    browser.set_session("stale-session").await;
    browser
        .goto(&format!("{}/tokengate/", app.proxy_url()))
        .await;
    assert_eq!(browser.url().await.path(), "/login");

    // Signed in at Bitbucket, the page it named opens.
    app.upstream
        .bitbucket()
        .add_session("alice", "fresh-session");
    browser.set_session("fresh-session").await;
    browser
        .goto(&format!("{}/tokengate/", app.proxy_url()))
        .await;
    let heading = browser.find("h1").await.text().await.unwrap();
    assert_eq!(heading, "My API tokens");
    assert!(
        browser.text().await.contains("alice"),
        "the page names who is signed in"
    );
    browser.finish().await;
    app.finish().await;
}

#[tokio::test]
async fn a_new_token_is_shown_once_copied_and_works_through_the_gateway() {
    let app = site(Backend::Postgres).await;
    token(&app, "alice", "Release pipeline", Scope::ReadWrite).await;
    token(&app, "alice", "Dashboard (read only)", Scope::ReadOnly).await;
    let browser = Browser::start().await;
    sign_in(&app, &browser, "alice", "/tokengate/").await;

    browser
        .field(CREATE, "Description")
        .await
        .send_keys("Deploy bot")
        .await
        .unwrap();
    browser
        .field(CREATE, "Scope")
        .await
        .select_by_label("Read/write")
        .await
        .unwrap();
    browser
        .field(CREATE, "Expires")
        .await
        .select_by_value("30")
        .await
        .unwrap();
    browser
        .field(CREATE, "Allowed IPs")
        .await
        .send_keys("127.0.0.1, 10.0.0.0/8")
        .await
        .unwrap();
    click(&browser, CREATE, "Create token").await;

    let secret = shown_secret(&app, &browser).await;
    assert!(secret.starts_with("tgt_"), "{secret}");
    browser.wait_for_text("Copy it now.").await;
    browser.screenshot("my-tokens").await;

    // Copy puts it on the clipboard: pasting it shows the same text.
    browser.button("", "Copy").await.click().await.unwrap();
    browser.wait_for_text("Copied to the clipboard.").await;
    let pasted = browser.field(CREATE, "Description").await;
    pasted.clear().await.unwrap();
    pasted.send_keys(&(Key::Control + "v")).await.unwrap();
    assert_eq!(
        pasted.prop("value").await.unwrap().as_deref(),
        Some(secret.as_str())
    );

    // It works through the gateway, as alice, from an allowed address.
    assert_eq!(app.use_token(&secret).await, 200);
    let seen = app.upstream.requests();
    let used = seen
        .iter()
        .find(|r| r.target == "/rest/api/1.0/projects")
        .expect("forwarded");
    assert_eq!(used.header("x-forwarded-user").as_deref(), Some("alice"));

    // A reload shows the page afresh: no secret, and no second token made by a repeated post.
    browser.client().refresh().await.unwrap();
    browser.find("#tokens-title").await;
    assert_eq!(browser.url().await.path(), "/tokengate/");
    assert!(browser.all("#secret").await.is_empty());
    let source = browser.client().source().await.unwrap();
    assert!(
        !source.contains(&secret[17..]),
        "the secret is on the reloaded page"
    );
    let rows = browser.all("tr[data-token]").await;
    assert_eq!(rows.len(), 3, "one new token");
    let new_row = browser
        .find_xpath("//tr[.//span[normalize-space()='Deploy bot']]")
        .await;
    let text = new_row.text().await.unwrap();
    for shown in ["Read/write", "ACTIVE", "127.0.0.1/32, 10.0.0.0/8"] {
        assert!(text.contains(shown), "{shown} not in {text:?}");
    }
    // Back in history does not bring it back either.
    browser.client().back().await.unwrap();
    let source = browser.client().source().await.unwrap();
    assert!(
        !source.contains(&secret[17..]),
        "the secret is in the browser's history"
    );

    // Its last use shows once the gateway has written it.
    browser
        .goto(&format!("{}/tokengate/", app.proxy_url()))
        .await;
    eventually("the last use on the page", async || {
        browser.client().refresh().await.unwrap();
        let row = browser
            .find_xpath("//tr[.//span[normalize-space()='Deploy bot']]")
            .await;
        let text = row.text().await.unwrap();
        text.contains("from 127.0.0.1").then_some(())
    })
    .await;
    browser.finish().await;
    app.finish().await;
}

#[tokio::test]
async fn revoking_asks_first_and_then_the_token_stops_working() {
    let app = site(Backend::Sqlite).await;
    let (id, secret) = token(&app, "alice", "Nightly backup", Scope::ReadWrite).await;
    let browser = Browser::start().await;
    sign_in(&app, &browser, "alice", "/tokengate/").await;

    click(&browser, &row(&id), "Revoke").await;
    let dialog = browser.find("dialog#tg-confirm[open]").await;
    assert!(
        dialog
            .text()
            .await
            .unwrap()
            .contains("Revoke “Nightly backup”?")
    );
    browser.screenshot("my-tokens-revoke").await;
    click(&browser, "//dialog", "Cancel").await;
    browser
        .wait_until(
            "the dialog to close",
            "return !document.getElementById('tg-confirm').open;",
        )
        .await;
    assert_eq!(app.use_token(&secret).await, 200, "cancelled: still valid");

    click(&browser, &row(&id), "Revoke").await;
    browser.find("dialog#tg-confirm[open]").await;
    click(&browser, "//dialog", "Revoke").await;
    browser.wait_for_text("Revoked “Nightly backup”.").await;
    let row_text = browser.find_xpath(&row(&id)).await.text().await.unwrap();
    assert!(row_text.contains("REVOKED"), "{row_text}");
    let buttons = browser
        .client()
        .find_all(fantoccini::Locator::XPath(&format!("{}//button", row(&id))))
        .await
        .unwrap();
    assert!(buttons.is_empty(), "a revoked token has no Revoke button");
    eventually("the revoked token to be refused", async || {
        (app.use_token(&secret).await == 401).then_some(())
    })
    .await;
    browser.finish().await;
    app.finish().await;
}

#[tokio::test]
async fn the_form_is_reached_and_used_by_keyboard_alone() {
    let app = site(Backend::Sqlite).await;
    let browser = Browser::start().await;
    sign_in(&app, &browser, "alice", "/tokengate/").await;
    browser.find("#create").await;

    let mut order = Vec::new();
    for _ in 0..8 {
        browser.press(Key::Tab).await;
        order.push(browser.focused().await);
    }
    assert_eq!(
        order,
        [
            "Skip to content",
            "Bitbucket",
            "My API tokens",
            "description",
            "scope",
            "expires",
            "allowed_ips",
            "Create token"
        ]
    );

    // Afresh: four steps to the description, type, and press Enter.
    browser.client().refresh().await.unwrap();
    browser.find("#create").await;
    for _ in 0..4 {
        browser.press(Key::Tab).await;
    }
    assert_eq!(browser.focused().await, "description");
    browser.type_text("Keyboard job").await;
    browser.press(Key::Enter).await;
    shown_secret(&app, &browser).await;
    assert_eq!(browser.focused().await, "Copy", "the focus waits on Copy");
    let labelled = browser
        .run(
            "return [...document.querySelectorAll('input:not([type=hidden]), select')]
                .every(e => e.labels.length > 0);",
            Vec::new(),
        )
        .await;
    assert_eq!(labelled, json!(true), "every control has a label");
    browser.finish().await;
    app.finish().await;
}

#[tokio::test]
async fn the_pages_follow_a_system_set_to_dark_mode() {
    let app = site(Backend::Sqlite).await;
    token(&app, "alice", "Release pipeline", Scope::ReadWrite).await;
    let (revoked, _) = token(&app, "alice", "Old laptop", Scope::ReadOnly).await;
    app.store()
        .revoke_token(&revoked, chrono::Utc::now())
        .await
        .unwrap();
    let browser = Browser::start_dark().await;
    sign_in(&app, &browser, "alice", "/tokengate/").await;
    browser.find("#create").await;
    let dark = browser
        .run(
            "return matchMedia('(prefers-color-scheme: dark)').matches;",
            Vec::new(),
        )
        .await;
    assert_eq!(dark, json!(true));
    let background = browser
        .find("body")
        .await
        .css_value("background-color")
        .await
        .unwrap();
    assert_eq!(background, "rgba(29, 33, 37, 1)", "the dark colours apply");
    browser.screenshot("my-tokens-dark").await;
    browser.finish().await;
    app.finish().await;
}

#[tokio::test]
async fn rotating_shows_the_successor_once_and_the_old_token_works_for_the_grace() {
    let app = site(Backend::Postgres).await;
    let (id, old) = token(&app, "alice", "CI runner", Scope::ReadWrite).await;
    let browser = Browser::start().await;
    sign_in(&app, &browser, "alice", "/tokengate/").await;

    // Rotate asks how long the old token keeps working; Cancel changes nothing.
    click(&browser, &row(&id), "Rotate").await;
    browser.wait_for_text("Rotate “CI runner”?").await;
    assert_eq!(browser.link_href("Cancel").await, "/tokengate/");
    browser
        .find_xpath("//a[normalize-space()='Cancel']")
        .await
        .click()
        .await
        .unwrap();
    browser.find("#tokens-title").await;
    assert_eq!(browser.all("tr[data-token]").await.len(), 1);

    click(&browser, &row(&id), "Rotate").await;
    browser.wait_for_text("Rotate “CI runner”?").await;
    browser.screenshot("my-tokens-rotate").await;
    rotate_keeping_old_for(&browser, "3600").await;
    let successor = shown_secret(&app, &browser).await;
    assert!(successor.starts_with("tgt_") && successor != old);
    browser
        .wait_for_text("Rotated “CI runner”. The old token keeps working until")
        .await;
    assert_eq!(browser.url().await.path(), "/tokengate/");

    // Both work through the gateway for the grace; the old one now expires with it.
    assert_eq!(app.use_token(&successor).await, 200);
    assert_eq!(app.use_token(&old).await, 200);
    let expires = app
        .store()
        .get_token(&id)
        .await
        .unwrap()
        .unwrap()
        .expires_at;
    let left = expires.expect("the old token expires") - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(55) && left <= chrono::Duration::hours(1),
        "{left}"
    );
    assert_eq!(browser.all("tr[data-token]").await.len(), 2);
    let new_row = browser
        .find_xpath(&format!(
            "//tr[not(@data-token='{id}')][.//span[normalize-space()='CI runner']]"
        ))
        .await;
    let new_id = new_row.attr("data-token").await.unwrap().unwrap();
    assert_ne!(new_id, id.as_str());

    // Rotated again with no grace, the token it replaces is refused at once.
    click(&browser, &format!("//tr[@data-token='{new_id}']"), "Rotate").await;
    rotate_keeping_old_for(&browser, "0").await;
    browser
        .wait_for_text("Rotated “CI runner”. The old token is revoked")
        .await;
    let third = shown_secret(&app, &browser).await;
    assert_eq!(app.use_token(&third).await, 200);
    eventually("the replaced token to be refused", async || {
        (app.use_token(&successor).await == 401).then_some(())
    })
    .await;
    browser.finish().await;
    app.finish().await;
}
