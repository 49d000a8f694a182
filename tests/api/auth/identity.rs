//! `upstream.identity = "credential"`: the token's user is forwarded with their own Bitbucket
//! credential, opened from the sealed copy in the store; a replaced credential is used at once,
//! not after the cache lifetime; a user without one is refused.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde_json::json;
use tokengate::audit::AuditKind;
use tokengate::token::Scope;
use tokengate::vault::CredentialKey;

use super::{AUTH_LOGGER, assert_audited, assert_line, bearer};
use crate::support::app::{Backend, Options, REST, TokenOpts, spawn_app};
use crate::support::both_backends;

both_backends!(a_credential_user_is_forwarded_with_their_bitbucket_credential);

async fn a_credential_user_is_forwarded_with_their_bitbucket_credential(backend: Backend) {
    let key = STANDARD.encode([42u8; 32]);
    let app = spawn_app(
        Options::new(backend)
            .set("upstream.identity", "credential")
            .set("upstream.credential_key", key.as_str()),
    )
    .await;
    let sealer = CredentialKey::from_secret(&SecretString::from(key.clone())).unwrap();
    let seal = |credential: &str| {
        sealer
            .seal("alice", &SecretString::from(credential))
            .unwrap()
    };
    let credential = "BBDC-NDI0MjQyNDI0MjQyOnN0b3JlZC1jcmVkZW50aWFs";
    app.store()
        .put_credential("alice", &seal(credential), false)
        .await
        .unwrap();

    let (_, alice) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let reply = app.get_rest(&bearer(&alice)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = reply.seen.as_ref().expect("forwarded");
    assert_eq!(
        seen.header_values("authorization"),
        [format!("Bearer {credential}")]
    );
    assert_eq!(seen.header_values("x-forwarded-user"), Vec::<String>::new());

    // Replaced by another process (the CLI, another replica) while the gateway holds the old
    // one in its cache for `auth.cache_ttl` (60 s): forwarded with the new one within a
    // second or so, when the change notification arrives.
    let replaced = "BBDC-MTMxMzEzMTMxMzEzOnJlcGxhY2VkLWNyZWRlbnRpYWw";
    app.store()
        .put_credential("alice", &seal(replaced), false)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let reply = app.get_rest(&bearer(&alice)).await;
        let sent = reply
            .seen
            .as_ref()
            .expect("forwarded")
            .header_values("authorization");
        if sent == [format!("Bearer {replaced}")] {
            break;
        }
        assert_eq!(sent, [format!("Bearer {credential}")]);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replaced credential was still forwarded after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A user without a stored credential cannot be forwarded: 401, and Bitbucket sees nothing.
    let (_, bob) = app
        .create_token("bob", Scope::ReadOnly, TokenOpts::default())
        .await;
    let reply = app.get_rest(&bearer(&bob)).await;
    reply.assert_refused(401);
    assert_line(
        &app,
        &reply,
        AUTH_LOGGER,
        &format!(
            "Token verification for user bob failed: no Bitbucket credential is stored for this user, so the request cannot be forwarded. REST endpoint: {REST}"
        ),
    )
    .await;
    let reason = json!({ "reason": "no_upstream_credential" });
    assert_audited(&app, &reply, AuditKind::AuthFailed, reason).await;

    assert!(
        app.log_lines()
            .iter()
            .all(|line| !line.contains(credential) && !line.contains(replaced)),
        "a stored credential reached the log"
    );
    app.finish().await;
}
