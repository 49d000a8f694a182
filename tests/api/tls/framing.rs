//! Request framing over TLS: the checks plain HTTP/1.1 gets apply to HTTP/1.1 inside TLS too,
//! `Content-Length` beside `Transfer-Encoding` included, which only the bytes on the wire show.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::Fixture;
use crate::support::app::{Backend, spawn_app};

/// Sends `request` over TLS (ALPN `http/1.1`) and reads until the gateway closes the
/// connection; the status of each answer.
async fn statuses_until_closed(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    request: &str,
) -> Vec<u16> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.expect("a CA certificate"))
            .expect("a usable CA");
    }
    #[allow(deprecated)] // ring, as the gateway uses it
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting");
    let name = ServerName::try_from("localhost").expect("a name");
    let mut tls = connector.connect(name, tcp).await.expect("a TLS handshake");
    tls.write_all(request.as_bytes()).await.expect("writing");
    let mut answer = Vec::new();
    // A close without close_notify ends the read with an error; what came before counts.
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .expect("the gateway closes the connection");
    let text = String::from_utf8_lossy(&answer);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text[at + 9..].get(..3)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn both_lengths_over_tls_are_refused_behind_a_pipelined_request() {
    let fx = Fixture::new();
    let app = spawn_app(fx.proxy_options(Backend::Sqlite)).await;
    let request = "POST /projects/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello\
                   POST /projects/b HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
                   Content-Length: 15\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let statuses = statuses_until_closed(app.proxy_addr(), fx.ca.pem(), request).await;
    assert_eq!(statuses, [200, 400]);
    let seen: Vec<String> = app
        .upstream
        .requests()
        .into_iter()
        .map(|s| s.target)
        .collect();
    assert_eq!(seen, ["/projects/a"]);
    let statuses = statuses_until_closed(
        app.proxy_addr(),
        fx.ca.pem(),
        "GET /projects HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\nHost: localhost\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(statuses, [400]);
    app.finish().await;
}
