//! One keep-alive connection over TLS (rustls), HTTP/1.1 or HTTP/2, held open by the test: it
//! shows the serial of the certificate its handshake got, whether later requests on it still
//! work, and when the gateway closed it.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use std::sync::Arc;

/// The HTTP/1.1 or HTTP/2 side of a connection.
enum Sender {
    Http1(SendRequest<Empty<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

/// An open TLS connection to a gateway listener.
pub(crate) struct TlsConnection {
    sender: Sender,
    /// The serial of the certificate this connection's handshake got, as `openssl x509
    /// -serial` writes it.
    pub(crate) serial: String,
    task: tokio::task::JoinHandle<()>,
}

/// The serial of a DER certificate, upper-case hex without separators.
pub(crate) fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("an X.509 certificate");
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

impl TlsConnection {
    /// Connects to `addr` trusting `ca_pem`, offering ALPN `http/1.1`.
    pub(crate) async fn open(addr: SocketAddr, ca_pem: &str) -> Self {
        Self::open_with(addr, ca_pem, false).await
    }

    /// Connects to `addr` trusting `ca_pem`, offering ALPN `h2` only.
    pub(crate) async fn open_http2(addr: SocketAddr, ca_pem: &str) -> Self {
        Self::open_with(addr, ca_pem, true).await
    }

    async fn open_with(addr: SocketAddr, ca_pem: &str, http2: bool) -> Self {
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
        config.alpn_protocols = vec![if http2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connecting");
        let name = ServerName::try_from("localhost").expect("a name");
        let tls = connector.connect(name, tcp).await.expect("a TLS handshake");
        let (_, session) = tls.get_ref();
        let serial = serial_of(
            session
                .peer_certificates()
                .and_then(|c| c.first())
                .expect("a server certificate"),
        );
        let (sender, task) = if http2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .expect("an HTTP/2 connection");
            let task = tokio::spawn(async move {
                let _ = connection.await;
            });
            (Sender::Http2(sender), task)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .expect("an HTTP/1.1 connection");
            let task = tokio::spawn(async move {
                let _ = connection.await;
            });
            (Sender::Http1(sender), task)
        };
        Self {
            sender,
            serial,
            task,
        }
    }

    /// `GET path` on this connection, with `Authorization: Bearer token`; the status.
    pub(crate) async fn get(&mut self, path: &str, token: &str) -> u16 {
        let builder = http::Request::get(path).header("authorization", format!("Bearer {token}"));
        let response = match &mut self.sender {
            Sender::Http1(sender) => {
                sender.ready().await.expect("the connection is open");
                let request = builder.header("host", "localhost").body(Empty::new());
                sender.send_request(request.expect("a request")).await
            }
            Sender::Http2(sender) => {
                sender.ready().await.expect("the connection is open");
                let request = builder
                    .uri(format!("https://localhost{path}"))
                    .body(Empty::new());
                sender.send_request(request.expect("a request")).await
            }
        }
        .expect("an answer on the open connection");
        let status = response.status().as_u16();
        response.into_body().collect().await.expect("the body");
        status
    }
}

impl TlsConnection {
    /// Whether the gateway has closed the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits until the gateway has closed the connection (at most `within`); how long that took.
    pub(crate) async fn closed(&mut self, within: std::time::Duration) -> std::time::Duration {
        let started = tokio::time::Instant::now();
        tokio::time::timeout(within, &mut self.task)
            .await
            .expect("the gateway closes the connection")
            .expect("the connection task");
        started.elapsed()
    }
}

impl Drop for TlsConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}
