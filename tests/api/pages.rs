//! The web pages, used as a person uses them: a real gateway in front of the stand-in
//! Bitbucket, a real headless Chromium signed in by a Bitbucket session cookie the stand-in
//! knows, and what shows on the page.

mod manage;
mod mine;
mod security;

use tokengate::token::{Scope, TokenId};

use crate::support::app::{Backend, Options, TestApp, TokenOpts, spawn_app};
use crate::support::browser::Browser;

/// The session cookie value the stand-in knows for `user`.
pub(crate) fn session_of(user: &str) -> String {
    format!("session-{user}-7f3a9c")
}

/// A gateway whose token manager right is `admin`'s.
pub(crate) async fn site(backend: Backend) -> TestApp {
    spawn_app(Options::new(backend).set("self_service.manage_all", vec!["admin"])).await
}

/// Signs `user` in to Bitbucket in `browser` and opens `page` of the gateway.
pub(crate) async fn sign_in(app: &TestApp, browser: &Browser, user: &str, page: &str) {
    let session = session_of(user);
    app.upstream.bitbucket().add_session(user, &session);
    // A cookie is set for the site showing: any page of it.
    browser.goto(&format!("{}/", app.proxy_url())).await;
    browser.set_session(&session).await;
    browser.goto(&format!("{}{page}", app.proxy_url())).await;
}

/// A token of `user` stored directly, as if made earlier.
pub(crate) async fn token(
    app: &TestApp,
    user: &str,
    description: &str,
    scope: Scope,
) -> (TokenId, String) {
    let opts = TokenOpts {
        description: description.to_owned(),
        ..TokenOpts::default()
    };
    app.create_token(user, scope, opts).await
}

/// The XPath of the table row of token `id`.
pub(crate) fn row(id: &TokenId) -> String {
    format!("//tr[@data-token='{id}']")
}

/// A GET of the gateway's `path` signed in by `user`'s session, as a browser sends it.
pub(crate) async fn get_as(app: &TestApp, user: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.proxy_url()))
        .header("cookie", format!("BITBUCKETSESSIONID={}", session_of(user)))
        .send()
        .await
        .expect("a page request")
}

/// A form post of the page's own, as a browser sends it from `origin`.
pub(crate) async fn post_as(
    app: &TestApp,
    user: &str,
    path: &str,
    origin: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}{path}", app.proxy_url()))
        .header("cookie", format!("BITBUCKETSESSIONID={}", session_of(user)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.expect("a form post")
}

/// The new token's secret as the page shows it, remembered so that the test's end checks it
/// was written nowhere.
pub(crate) async fn shown_secret(app: &TestApp, browser: &Browser) -> String {
    let secret = browser
        .find("#secret")
        .await
        .prop("value")
        .await
        .expect("reading the secret")
        .expect("a secret");
    app.track_secret(&secret);
    secret
}

/// Clicks the button reading `text` within `scope` (an XPath).
pub(crate) async fn click(browser: &Browser, scope: &str, text: &str) {
    browser
        .button(scope, text)
        .await
        .click()
        .await
        .expect("clicking");
}

/// In the open rotate dialog, chooses how long the old token keeps working (`grace`, the
/// option's value in seconds) and rotates.
pub(crate) async fn rotate_keeping_old_for(browser: &Browser, grace: &str) {
    browser
        .field("//form[@id='rotate']", "The old token")
        .await
        .select_by_value(grace)
        .await
        .unwrap();
    click(browser, "//form[@id='rotate']", "Rotate").await;
}
