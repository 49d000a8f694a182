//! An `https://` Bitbucket: verified against `upstream.ca_file` or the system's CA
//! certificates (`SSL_CERT_FILE`), refused with a 502 and a line naming why otherwise, and
//! reached over pooled connections.

use super::Fixture;
use crate::support::app::{Backend, Options, spawn_app};
use crate::support::certs::TestCa;

#[tokio::test]
async fn a_bitbucket_verified_by_ca_file_is_reached_over_reused_connections() {
    let fx = Fixture::new();
    let app = spawn_app(
        Options::new(Backend::Sqlite)
            .https_upstream(&fx.leaf)
            .set("upstream.ca_file", fx.ca_file.display().to_string()),
    )
    .await;
    assert!(app.upstream.url().starts_with("https://"));
    for n in 0..5 {
        let response = app
            .client
            .get(format!("{}/rest/api/1.0/projects?n={n}", app.proxy_url()))
            .send()
            .await
            .expect("a request through the gateway");
        assert_eq!(response.status(), 200);
    }
    let seen = app.upstream.wait_for_requests(5).await;
    assert_eq!(seen[4].target, "/rest/api/1.0/projects?n=4");
    // One keep-alive client connection is served by one worker, whose pool keeps one
    // connection to Bitbucket.
    assert_eq!(app.upstream.connections(), 1);
    app.finish().await;
}

#[tokio::test]
async fn the_system_roots_verify_bitbucket_without_a_ca_file() {
    let fx = Fixture::new();
    let app = spawn_app(
        Options::new(Backend::Sqlite)
            .https_upstream(&fx.leaf)
            .env("SSL_CERT_FILE", &fx.ca_file.display().to_string()),
    )
    .await;
    let response = app
        .client
        .get(format!("{}/rest/api/1.0/projects", app.proxy_url()))
        .send()
        .await
        .expect("a request through the gateway");
    assert_eq!(response.status(), 200);
    app.finish().await;
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_is_a_502_whose_line_names_the_reason() {
    let fx = Fixture::new();
    // The system trusts another CA only.
    let stranger = TestCa::new("some other CA");
    let other_ca = fx.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, stranger.pem()).expect("other-ca.pem");
    let app = spawn_app(
        Options::new(Backend::Sqlite)
            .https_upstream(&fx.leaf)
            .env("SSL_CERT_FILE", &other_ca.display().to_string()),
    )
    .await;
    let response = app
        .client
        .get(format!("{}/rest/api/1.0/projects", app.proxy_url()))
        .send()
        .await
        .expect("a request through the gateway");
    assert_eq!(response.status(), 502);
    let id = response.headers()["x-arequestid"]
        .to_str()
        .expect("an id")
        .to_owned();
    let line = app.line_for(&id).await;
    assert_eq!(line.level, "WARN", "{line:?}");
    // As the README shows it.
    assert!(
        line.message.contains(
            "Bitbucket's TLS certificate was not accepted: client error (Connect): \
             invalid peer certificate: UnknownIssuer"
        ),
        "{line:?}"
    );
    assert!(app.upstream.requests().is_empty());
    app.finish().await;
}
