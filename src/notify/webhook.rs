//! The webhook an expiry notice is POSTed to: `http://` or `https://` (TLS 1.2 and 1.3, the
//! server verified against the system's CA certificates), a JSON body, and a 2xx answer within
//! a time limit counts as delivered. The URL is a secret (chat webhooks carry their credential
//! in it), so no message names it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use secrecy::{ExposeSecret as _, SecretString};

/// How long one delivery may take, from connecting to the end of the answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer's body that is read (and thrown away).
const MAX_ANSWER: usize = 64 * 1024;

/// *ring*, which builds with a C compiler alone. rustls marks it deprecated for lacking the
/// post-quantum hybrid key exchange; its classic groups are what webhook servers speak today.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a delivery did not count.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the webhook answered {0}")]
    Status(StatusCode),
    #[error("the webhook did not answer within {}s", TIMEOUT.as_secs())]
    Timeout,
    #[error("the webhook could not be reached: {0}")]
    Unreachable(String),
}

/// A webhook to POST JSON to.
#[derive(Clone)]
pub struct Webhook {
    url: Arc<SecretString>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Webhook {
    /// A client for `url` (already checked to be an http or https URL with a host).
    ///
    /// # Errors
    ///
    /// An `https://` URL on a system without CA certificates.
    pub fn new(url: SecretString) -> Result<Self, String> {
        let (roots, found) = crate::tls::system_roots();
        if found == 0 && url.expose_secret().starts_with("https:") {
            return Err(
                "an https:// notify.webhook_url needs the system's CA certificates, and \
                        none were found (install the ca-certificates package, or set \
                        SSL_CERT_FILE)"
                    .into(),
            );
        }
        let tls = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(TIMEOUT));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            url: Arc::new(url),
            client,
        })
    }

    /// POSTs `body` (JSON); a 2xx answer is a delivery.
    pub async fn post(&self, body: Vec<u8>) -> Result<(), DeliveryError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.url.expose_secret())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("tokengate/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| DeliveryError::Unreachable("the URL cannot be requested".into()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                // The error's text may hold the URL; its kind is enough.
                let kind = if e.is_connect() {
                    "cannot connect"
                } else {
                    "the connection failed"
                };
                DeliveryError::Unreachable(kind.into())
            })?;
            let status = response.status();
            // Read (a bounded part of) the answer, so the connection can be used again.
            let _ = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await;
            if status.is_success() {
                Ok(())
            } else {
                Err(DeliveryError::Status(status))
            }
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| DeliveryError::Timeout)?
    }
}
