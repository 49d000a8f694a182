//! tokengate's own paths are answered by tokengate and never forwarded to Bitbucket, however
//! the path is spelled, whatever the method and whether or not the caller is signed in.

use reqwest::Method;
use serde_json::json;

use super::{As, WHOAMI, alice, options, send, start};
use crate::support::app::{Backend, TokenOpts};

#[tokio::test]
async fn tokengates_own_paths_are_never_forwarded() {
    let app = start(options(Backend::Sqlite)).await;
    let (_, token) = app
        .create_token(
            "alice",
            tokengate::token::Scope::ReadWrite,
            TokenOpts::default(),
        )
        .await;
    let answered = [
        (Method::GET, "/rest/tokengate/1.0/me", 200),
        (Method::GET, "//rest/tokengate/1.0/me", 200),
        (Method::GET, "/rest/./tokengate/1.0/me", 200),
        (Method::GET, "/rest/x/../tokengate/1.0/me", 200),
        (Method::GET, "/rest/%74okengate/1.0/me", 200),
        (Method::GET, "/rest/tokengate/1.0/tokens?limit=1", 200),
        (Method::GET, "/rest/tokengate/1.0/nothing-here", 404),
        (Method::GET, "/rest/tokengate/2.0/me", 404),
        (Method::GET, "/rest/tokengate/", 404),
        (
            Method::GET,
            "/rest/de.resolution.apitokenauth/latest/user/token",
            200,
        ),
        (
            Method::GET,
            "/rest/de.resolution.apitokenauth/1.0/user/token",
            404,
        ),
        (
            Method::GET,
            "/rest/de.resolution.apitokenauth/latest/admin/config",
            404,
        ),
    ];
    for who in [alice(), As::bearer(&token)] {
        for (method, path, status) in &answered {
            let answer = send(&app, method.clone(), path, &who, None).await;
            assert_eq!(
                answer.status, *status,
                "{method} {path} {who:?}: {}",
                answer.body
            );
        }
        for method in [Method::PUT, Method::POST, Method::DELETE, Method::PATCH] {
            let answer = send(
                &app,
                method.clone(),
                "/rest/tokengate/1.0/me",
                &who,
                Some(json!({})),
            )
            .await;
            assert!(
                (400..500).contains(&answer.status),
                "{method} /me answered {}",
                answer.status
            );
        }
    }
    for (method, path, _) in &answered {
        let answer = send(&app, method.clone(), path, &As::nobody(), None).await;
        assert!(
            [401, 404].contains(&answer.status),
            "{method} {path} without a credential answered {}",
            answer.status
        );
    }

    // Bitbucket heard only the sign-in questions.
    let seen = app.upstream.requests();
    assert!(!seen.is_empty());
    for request in &seen {
        assert_eq!(
            request.target, WHOAMI,
            "forwarded: {} {}",
            request.method, request.target
        );
    }
    app.finish().await;
}
