//! The TLS client settings for an `https://` Bitbucket (TLS 1.2 and 1.3, the server's
//! certificate verified against the system's CA certificates plus those of `upstream.ca_file`),
//! and the pooled client that uses them.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;

use http::Request;
use hyper::body::Body;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Builder, Client, ResponseFuture};
use rustls::{ClientConfig, RootCertStore};

use super::{pem, provider};
use crate::config::ConfigError;

/// How many CA certificates verify Bitbucket, and from where.
#[derive(Debug, Clone, Copy)]
pub struct Roots {
    /// From the system store (`SSL_CERT_FILE` and `SSL_CERT_DIR` when set).
    pub system: usize,
    /// From `upstream.ca_file`.
    pub ca_file: usize,
}

fn ca_file_error(path: &Path, reason: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key: "upstream.ca_file",
        value: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The client settings for Bitbucket, and the count of CA certificates they trust.
///
/// # Errors
///
/// `ca_file` cannot be read or holds a certificate that is not a usable CA certificate, or
/// there are no CA certificates at all.
pub fn client_config(ca_file: Option<&Path>) -> Result<(Arc<ClientConfig>, Roots), ConfigError> {
    let (mut store, system) = system_roots();
    let mut from_file = 0;
    if let Some(path) = ca_file {
        let bytes = pem::read_file(path).map_err(|reason| ca_file_error(path, reason))?;
        let certs = pem::certificates(&bytes).map_err(|reason| ca_file_error(path, reason))?;
        for (n, cert) in certs.into_iter().enumerate() {
            store.add(cert).map_err(|e| {
                ca_file_error(
                    path,
                    format!("certificate {} is not a usable CA certificate ({e})", n + 1),
                )
            })?;
            from_file += 1;
        }
    }
    if store.is_empty() {
        return Err(ConfigError::Value {
            key: "upstream.ca_file",
            value: String::new(),
            reason: "needed for an https:// upstream.url: the system has no CA certificates \
                     (install the ca-certificates package, or set SSL_CERT_FILE)"
                .to_owned(),
        });
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(super::VERSIONS)
        .map_err(|e| ca_file_error(Path::new(""), e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok((
        Arc::new(config),
        Roots {
            system,
            ca_file: from_file,
        },
    ))
}

/// The system's CA certificates (as `SSL_CERT_FILE`, `SSL_CERT_DIR` or the system's store
/// name them), and how many of them are usable.
pub fn system_roots() -> (RootCertStore, usize) {
    let mut store = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(target: "tokengate::tls", error = %e, "reading the system CA certificates");
    }
    let (usable, _unusable) = store.add_parsable_certificates(native.certs);
    (store, usable)
}

/// `connector` wrapped in TLS with `tls`'s settings: HTTPS only, HTTP/1.1 only.
pub fn https_connector(
    mut connector: HttpConnector,
    tls: &Arc<ClientConfig>,
) -> HttpsConnector<HttpConnector> {
    connector.enforce_http(false);
    HttpsConnectorBuilder::new()
        .with_tls_config(ClientConfig::clone(tls))
        .https_only()
        .enable_http1()
        .wrap_connector(connector)
}

/// A pooled HTTP/1.1 client to Bitbucket: plain TCP for `http://`, TLS for `https://`.
#[derive(Clone)]
pub enum UpstreamClient<B> {
    Plain(Client<HttpConnector, B>),
    Tls(Client<HttpsConnector<HttpConnector>, B>),
}

impl<B> UpstreamClient<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// A client made by `builder` over `connector`, with TLS when `tls` is given.
    pub fn build(
        builder: &Builder,
        connector: HttpConnector,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Self {
        match tls {
            None => Self::Plain(builder.build(connector)),
            Some(tls) => Self::Tls(builder.build(https_connector(connector, tls))),
        }
    }

    /// Sends `request` over a pooled connection (or a new one).
    pub fn request(&self, request: Request<B>) -> ResponseFuture {
        match self {
            Self::Plain(client) => client.request(request),
            Self::Tls(client) => client.request(request),
        }
    }
}
