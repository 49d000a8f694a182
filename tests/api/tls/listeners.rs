//! The listeners over TLS: curl with TLS 1.2, 1.3 and HTTP/2 gets the decisions and log lines
//! of plain HTTP/1.1; plain HTTP and TLS 1.1 get no answer; the admin listener serves TLS too.

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::Duration;

use tokengate::token::Scope;

use super::{Fixture, curl, header_of};
use crate::support::app::{Backend, TokenOpts, spawn_app};
use crate::support::certs::tls_table;
use crate::support::tls_client::TlsConnection;

// curl and git block a worker thread while the upstream, on this runtime, answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_tls_1_2_1_3_and_http2_is_decided_and_forwarded_as_plain_http_is() {
    let fx = Fixture::new();
    let app = spawn_app(fx.proxy_options(Backend::Sqlite)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let port = app.proxy_addr().port();
    let url = format!("{}/rest/api/1.0/projects", app.proxy_url());
    let bearer = format!("Authorization: Bearer {token}");
    for (flags, tls, http, request_version) in [
        (
            &["--http1.1", "--tlsv1.2", "--tls-max", "1.2"][..],
            "TLSv1.2",
            "1.1",
            "HTTP/1.1",
        ),
        (
            &["--http1.1", "--tlsv1.3"][..],
            "TLSv1.3",
            "1.1",
            "HTTP/1.1",
        ),
        (&["--http2"][..], "TLSv1.3", "2", "HTTP/2.0"),
    ] {
        for (method, status, message) in [
            ("GET", 200, "Found a matching token"),
            (
                "POST",
                403,
                "Token verification for alice user failed: The token scope is read-only",
            ),
        ] {
            let mut args = flags.to_vec();
            args.extend([
                "-X",
                method,
                "-H",
                &bearer,
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{response_code}\n",
                &url,
            ]);
            let out = curl(&fx.ca_file, &args);
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            let case = format!("{flags:?} {method}: {stdout}\n{stderr}");
            assert!(out.status.success(), "{case}");
            assert!(
                stderr.contains(&format!("SSL connection using {tls}")),
                "{case}"
            );
            assert_eq!(
                stdout.lines().last(),
                Some(format!("{http} {status}").as_str()),
                "{case}"
            );
            let id = header_of(&stdout, "x-arequestid").expect("a request id");
            let line = app.line_for(&id).await;
            assert_eq!(
                line.request_line.as_deref(),
                Some(format!("{method} /rest/api/1.0/projects {request_version}").as_str()),
                "{case}"
            );
            assert!(
                line.thread.starts_with(&format!("http-nio-{port}-exec-")),
                "{line:?}"
            );
            assert!(line.message.starts_with(message), "{line:?}");
            if status == 200 {
                let seen = app.upstream.request_with_id(&id).expect("forwarded");
                assert_eq!(seen.version, http::Version::HTTP_11, "{case}");
                assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
                assert_eq!(seen.header("x-forwarded-user").as_deref(), Some("alice"));
                assert_eq!(seen.header("authorization"), None);
                let host = format!("127.0.0.1:{port}");
                assert_eq!(seen.header("host").as_deref(), Some(host.as_str()));
                assert_eq!(
                    seen.header("x-forwarded-host").as_deref(),
                    Some(host.as_str())
                );
            } else {
                assert!(app.upstream.request_with_id(&id).is_none(), "{case}");
            }
        }
    }
    app.finish().await;
}

#[tokio::test]
async fn plain_http_and_tls_1_1_get_no_answer() {
    let fx = Fixture::new();
    let app = spawn_app(fx.proxy_options(Backend::Sqlite)).await;
    let addr = app.proxy_addr();

    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connecting");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        stream
            .write_all(b"GET /rest/api/1.0/projects HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("writing");
        let mut answer = Vec::new();
        // Ends with the connection closed; a timeout would fail here.
        stream
            .read_to_end(&mut answer)
            .expect("the connection is closed");
        answer
    })
    .await
    .expect("the plain client");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // Nothing or a TLS alert record (content type 21).
    assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");

    // OpenSSL refuses TLS 1.1 at its default security level; level 0 lets it offer it.
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-tls1_1"])
        .args(["-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "localhost"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("alert"), "{text}");
    assert!(text.contains("no peer certificate available"), "{text}");
    assert!(app.upstream.requests().is_empty());
    app.finish().await;
}

#[tokio::test]
async fn the_admin_listener_serves_tls_with_its_own_pair_and_both_expiries_are_exported() {
    let fx = Fixture::new();
    let admin_leaf = fx.ca.issue(2, 2098);
    let admin_dir = fx.dir.path().join("admin");
    std::fs::create_dir(&admin_dir).expect("a dir");
    let (cert, key) = admin_leaf.write(&admin_dir);
    // The admin pair from the environment, as a Kubernetes Secret would give it.
    let app = spawn_app(
        fx.proxy_options(Backend::Sqlite)
            .env("TOKENGATE_ADMIN__TLS__CERT", &cert.display().to_string())
            .env("TOKENGATE_ADMIN__TLS__KEY", &key.display().to_string()),
    )
    .await;
    assert!(app.admin_url().starts_with("https://"));
    let response = app
        .client
        .get(format!("{}/healthz", app.admin_url()))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let out = curl(
        &fx.ca_file,
        &[
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{response_code}",
            &format!("{}/readyz", app.admin_url()),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.1 200", "{out:?}");
    let gauge =
        |listener| format!("tokengate_tls_certificate_expiry_seconds{{listener=\"{listener}\"}}");
    assert_eq!(app.metric(&gauge("proxy")).await, fx.leaf.not_after as f64);
    assert_eq!(
        app.metric(&gauge("admin")).await,
        admin_leaf.not_after as f64
    );
    app.finish().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_header_read_timeout() {
    let fx = Fixture::new();
    let app = spawn_app(
        fx.proxy_options(Backend::Sqlite)
            .set("proxy.header_read_timeout", "1s"),
    )
    .await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let mut busy = TlsConnection::open_http2(app.proxy_addr(), fx.ca.pem()).await;
    let mut idle = TlsConnection::open_http2(app.proxy_addr(), fx.ca.pem()).await;
    assert_eq!(idle.get("/rest/api/1.0/projects", &token).await, 200);
    assert!(!idle.is_closed());
    // A connection in use stays open past the limit; an idle one is closed after it, as an
    // idle HTTP/1.1 keep-alive connection is.
    for _ in 0..6 {
        assert_eq!(busy.get("/rest/api/1.0/projects", &token).await, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let waited = idle.closed(Duration::from_secs(10)).await;
    assert!(waited < Duration::from_secs(10));
    assert_eq!(busy.get("/rest/api/1.0/projects", &token).await, 200);
    app.finish().await;
}

#[tokio::test]
async fn the_same_pair_serves_both_listeners_from_the_config_file() {
    let fx = Fixture::new();
    let app = spawn_app(
        fx.proxy_options(Backend::Sqlite)
            .set("admin.tls", tls_table(&fx.cert, &fx.key)),
    )
    .await;
    let out = curl(
        &fx.ca_file,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{response_code}",
            &format!("{}/metrics", app.admin_url()),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200", "{out:?}");
    app.finish().await;
}
