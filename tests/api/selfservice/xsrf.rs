//! Writes signed in by Bitbucket's session cookie must carry `X-Atlassian-Token: no-check` and
//! this site's `Origin` (`self_service.public_url` when set, else the scheme and `Host` the
//! request came with), as Bitbucket's own REST requires; a browser's cross-site request has
//! neither. Reads need neither.

use reqwest::Method;
use serde_json::json;

use super::{ALICE_SESSION, As, COMPAT, ME, TOKENS, get, options, send, start};
use crate::support::app::{Backend, TestApp};
use crate::support::both_backends;

both_backends!(
    session_writes_need_the_xsrf_header_and_this_sites_origin,
    with_public_url_only_that_origin_writes,
);

fn session() -> As {
    As::session(ALICE_SESSION)
}

/// Asserts a session write is refused as cross-site.
async fn refused(app: &TestApp, method: Method, path: &str, who: &As) {
    let body = (method != Method::DELETE).then(|| json!({ "description": "from a session" }));
    let answer = send(app, method.clone(), path, who, body).await;
    assert_eq!(
        answer.status, 403,
        "{method} {path} {who:?}: {}",
        answer.body
    );
    assert_eq!(
        answer.json()["error"]["code"],
        "xsrf_check_failed",
        "{who:?}"
    );
}

async fn session_writes_need_the_xsrf_header_and_this_sites_origin(backend: Backend) {
    let app = start(options(backend)).await;
    let here = format!("http://{}", app.proxy_addr());
    get(&app, ME, &session()).await.expect(200);
    get(&app, TOKENS, &session()).await.expect(200);

    let cross_site = [
        session(),
        session().with("x-atlassian-token", "no-check"),
        session().with("origin", here.clone()),
        session()
            .with("x-atlassian-token", "no-check")
            .with("origin", "http://evil.example"),
        session()
            .with("x-atlassian-token", "no-check")
            .with("origin", format!("https://{}", app.proxy_addr())),
        session()
            .with("x-atlassian-token", "no-check")
            .with("origin", "null"),
    ];
    for who in &cross_site {
        refused(&app, Method::POST, TOKENS, who).await;
    }
    let compat = format!("{COMPAT}/user/token");
    let answer = send(
        &app,
        Method::POST,
        &compat,
        &session(),
        Some(json!({ "tokenDescription": "x" })),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let none = get(&app, TOKENS, &session()).await.expect(200);
    assert_eq!(none["tokens"], json!([]), "a refused write made a token");

    let same_site = As::session_write(&app, ALICE_SESSION);
    let (created, _) =
        super::create(&app, &same_site, json!({ "description": "from the page" })).await;
    assert_eq!(created["user"], "alice");
    let path = format!("{TOKENS}/{}", created["id"].as_str().unwrap());
    for who in &cross_site {
        refused(&app, Method::PATCH, &path, who).await;
        refused(&app, Method::DELETE, &path, who).await;
    }
    let rename = json!({ "description": "renamed" });
    send(&app, Method::PATCH, &path, &same_site, Some(rename))
        .await
        .expect(200);
    send(&app, Method::DELETE, &path, &same_site, None)
        .await
        .expect(204);
    app.finish().await;
}

async fn with_public_url_only_that_origin_writes(backend: Backend) {
    let app =
        start(options(backend).set("self_service.public_url", "https://bitbucket.example.com"))
            .await;
    let xsrf = || session().with("x-atlassian-token", "no-check");
    let here = format!("http://{}", app.proxy_addr());
    refused(&app, Method::POST, TOKENS, &xsrf().with("origin", here)).await;
    refused(
        &app,
        Method::POST,
        TOKENS,
        &xsrf().with("origin", "https://bitbucket.example.com.evil.example"),
    )
    .await;
    let from_public = xsrf().with("origin", "https://bitbucket.example.com");
    super::create(
        &app,
        &from_public,
        json!({ "description": "from the page" }),
    )
    .await;
    app.finish().await;
}
