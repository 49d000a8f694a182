//! What keeps the pages safe: their headers (a strict Content-Security-Policy, no framing, no
//! caching of pages, cached assets), nothing inline for the policy to forbid, and a form posted
//! from another site refused.

use axum::response::Html;
use tokengate::token::Scope;

use super::{get_as, post_as, row, session_of, sign_in, site, token};
use crate::support::app::Backend;
use crate::support::browser::Browser;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn assert_page_headers(response: &reqwest::Response, what: &str) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_owned()
    };
    assert_eq!(header("content-security-policy"), CSP, "{what}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("referrer-policy"), "same-origin", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("cache-control"), "no-store", "{what}");
}

#[tokio::test]
async fn pages_carry_strict_security_headers_and_nothing_inline() {
    let app = site(Backend::Sqlite).await;
    app.upstream
        .bitbucket()
        .add_session("admin", &session_of("admin"));
    for page in [
        "/tokengate/",
        "/tokengate/manage",
        "/tokengate/audit",
        "/tokengate/nothing-here",
    ] {
        let response = get_as(&app, "admin", page).await;
        assert_page_headers(&response, page);
        let expected = if page.ends_with("nothing-here") {
            404
        } else {
            200
        };
        assert_eq!(response.status(), expected, "{page}");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
    }
    let bare = get_as(&app, "admin", "/tokengate").await;
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/tokengate/");
    let login = app
        .client
        .get(format!("{}/tokengate/manage", app.proxy_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_page_headers(&login, "the sign-in redirect");

    // The answer holding a secret is never stored by the browser.
    let body = "atl_token=no-check&description=Headers&scope=read-only&expires=7&allowed_ips=";
    let created = post_as(&app, "admin", "/tokengate/", Some(&app.proxy_url()), body).await;
    assert_eq!(created.status(), 200);
    assert_page_headers(&created, "the create answer");
    let html = created.text().await.unwrap();
    let secret = html
        .split("value=\"tgt_")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a secret");
    app.track_secret(&format!("tgt_{secret}"));

    // Assets: from here, typed, cached by digest.
    let page = get_as(&app, "admin", "/tokengate/")
        .await
        .text()
        .await
        .unwrap();
    for (asset, kind) in [
        ("tokengate.css", "text/css"),
        ("tokengate.js", "text/javascript"),
    ] {
        let start = page
            .find(&format!("/tokengate/assets/{asset}?v="))
            .expect("the asset's link");
        let href = &page[start..start + page[start..].find('"').unwrap()];
        let response = app
            .client
            .get(format!("{}{href}", app.proxy_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let etag = response.headers()["etag"].clone();
        let again = app
            .client
            .get(format!("{}{href}", app.proxy_url()))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
    }

    // In the browser: the stylesheet and script load under the policy; nothing is inline.
    let browser = Browser::start().await;
    sign_in(&app, &browser, "admin", "/tokengate/").await;
    browser.find("#create").await;
    let inline = browser
        .run("return document.querySelectorAll('script:not([src]), style, [style], [onclick]').length;", Vec::new())
        .await;
    assert_eq!(inline, serde_json::json!(0));
    let header_colour = browser
        .find(".tg-header")
        .await
        .css_value("background-color")
        .await
        .unwrap();
    assert_eq!(
        header_colour, "rgba(7, 71, 166, 1)",
        "the stylesheet applies"
    );
    browser.finish().await;
    app.finish().await;
}

#[tokio::test]
async fn a_form_posted_from_another_site_changes_nothing() {
    let app = site(Backend::Sqlite).await;
    let (id, secret) = token(&app, "alice", "Release pipeline", Scope::ReadWrite).await;

    // Another site (another origin on this machine) with forms aimed at the gateway.
    let gateway = app.proxy_url();
    let lure = format!(
        r#"<!DOCTYPE html><title>Win</title>
        <form method="post" action="{gateway}/tokengate/">
          <input type="hidden" name="atl_token" value="no-check">
          <input type="hidden" name="description" value="Planted">
          <input type="hidden" name="scope" value="read-write">
          <input type="hidden" name="expires" value="365">
          <input type="hidden" name="allowed_ips" value="">
          <button>Claim your prize</button>
        </form>
        <form method="post" action="{gateway}/tokengate/revoke">
          <input type="hidden" name="atl_token" value="no-check">
          <input type="hidden" name="id" value="{id}">
          <input type="hidden" name="confirmed" value="yes">
          <button>Another prize</button>
        </form>"#
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let page = axum::Router::new().fallback(move || async move { Html(lure) });
        axum::serve(listener, page).await.unwrap();
    });

    let browser = Browser::start().await;
    sign_in(&app, &browser, "alice", "/tokengate/").await;
    for button in ["Claim your prize", "Another prize"] {
        browser.goto(&other).await;
        browser.button("", button).await.click().await.unwrap();
        browser
            .wait_for_text("This form was sent from another site")
            .await;
    }
    browser.screenshot("cross-site-refused").await;
    let query = tokengate::store::TokenQuery {
        user: Some("alice".into()),
        state: None,
        now: chrono::Utc::now(),
        limit: 10,
        after: None,
    };
    let tokens = app.store().list_tokens(&query).await.unwrap();
    assert_eq!(tokens.len(), 1, "no token was planted");
    assert_eq!(app.use_token(&secret).await, 200, "nothing was revoked");
    browser.goto(&format!("{gateway}/tokengate/")).await;
    let state = browser.find_xpath(&row(&id)).await.text().await.unwrap();
    assert!(state.contains("ACTIVE"), "{state}");

    // The same rule as the API's session writes: this site's Origin and the no-check marker.
    let revoke = format!("id={id}&confirmed=yes");
    let refused = [
        (Some(gateway.as_str()), revoke.clone()),
        (None, format!("atl_token=no-check&{revoke}")),
        (Some(other.as_str()), format!("atl_token=no-check&{revoke}")),
    ];
    for (origin, body) in refused {
        for path in ["/tokengate/revoke", "/tokengate/rotate"] {
            let response = post_as(&app, "alice", path, origin, &body).await;
            assert_eq!(response.status(), 403, "{path} {origin:?} {body}");
        }
    }
    let tokens = app.store().list_tokens(&query).await.unwrap();
    assert_eq!(tokens.len(), 1, "nothing was rotated");
    // A browser sends a remembered Basic password with another site's form too: the pages
    // hold such a post to the same rule.
    app.upstream.bitbucket().add_user("alice", "alice-password");
    let basic = app
        .client
        .post(format!("{gateway}/tokengate/revoke"))
        .basic_auth("alice", Some("alice-password"))
        .header("origin", &other)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("atl_token=no-check&{revoke}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 403);
    assert_eq!(app.use_token(&secret).await, 200);
    let done = post_as(
        &app,
        "alice",
        "/tokengate/revoke",
        Some(&gateway),
        &format!("atl_token=no-check&{revoke}"),
    )
    .await;
    assert_eq!(done.status(), 303);
    server.abort();
    browser.finish().await;
    app.finish().await;
}
