//! TLS with rustls: the proxy and admin listeners' certificates ([`ServerCert`], reloaded in
//! place by [`reload`]), their handshakes and HTTP/1.1 or HTTP/2 connections ([`Acceptor`],
//! [`serve_connection`]), and the client settings for an `https://` Bitbucket
//! ([`client_config`]).
//!
//! The crypto provider is *ring*: it builds with a C compiler alone, where aws-lc-rs also
//! needs cmake. It is passed explicitly wherever a config is built, so no process-wide default
//! has to be installed.

mod accept;
mod cert;
mod idle;
mod pem;
pub mod reload;
mod upstream;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;

pub use accept::{Acceptor, Alpn, Http, serve_connection};
pub use cert::{Pair, PairError, ServerCert, Trigger};
pub use upstream::{Roots, UpstreamClient, client_config, https_connector, system_roots};

use crate::config::{Config, ConfigError, TlsFiles};

/// The protocol versions served and spoken: TLS 1.3 and 1.2, nothing older.
const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider of every TLS config.
///
/// rustls marks *ring*'s provider deprecated because it lacks the post-quantum hybrid key
/// exchange (X25519MLKEM768); its classic groups (X25519, P-256, P-384) are what TLS 1.2 and
/// most TLS 1.3 clients use today. Building without cmake is the reason to keep it.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A listener that may serve TLS, for messages and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Proxy,
    Admin,
}

impl Listener {
    /// `proxy` or `admin`, the config section.
    pub fn name(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Admin => "admin",
        }
    }

    /// The config key of the certificate file.
    pub fn cert_key(self) -> &'static str {
        match self {
            Self::Proxy => "proxy.tls.cert",
            Self::Admin => "admin.tls.cert",
        }
    }

    /// The config key of the key file.
    pub fn key_key(self) -> &'static str {
        match self {
            Self::Proxy => "proxy.tls.key",
            Self::Admin => "admin.tls.key",
        }
    }
}

/// Everything TLS of a configured gateway, loaded at start.
#[derive(Clone, Default)]
pub struct Setup {
    /// The proxy listener's pair, with `[proxy.tls]`.
    pub proxy: Option<Arc<ServerCert>>,
    /// The admin listener's pair, with `[admin.tls]`.
    pub admin: Option<Arc<ServerCert>>,
    /// The client settings for an `https://` `upstream.url`, and what they trust.
    pub upstream: Option<(Arc<rustls::ClientConfig>, Roots)>,
}

impl Setup {
    /// Loads the pairs and client settings `config` names.
    ///
    /// # Errors
    ///
    /// A file cannot be read or used, or the pair of a listener does not match; the error
    /// names the config key.
    pub fn load(config: &Config) -> Result<Self, ConfigError> {
        let cert = |listener: Listener, files: Option<&TlsFiles>| {
            files
                .map(|files| {
                    ServerCert::load(listener, files, provider())
                        .map(Arc::new)
                        .map_err(|e| e.config_error(listener))
                })
                .transpose()
        };
        let upstream = if config.upstream.url.scheme_str() == Some("https") {
            Some(client_config(config.upstream.ca_file.as_deref())?)
        } else {
            None
        };
        Ok(Self {
            proxy: cert(Listener::Proxy, config.proxy.tls.as_ref())?,
            admin: cert(Listener::Admin, config.admin.tls.as_ref())?,
            upstream,
        })
    }

    /// The listeners' pairs.
    pub fn certs(&self) -> Vec<Arc<ServerCert>> {
        self.proxy.iter().chain(&self.admin).cloned().collect()
    }

    /// Refuses a served certificate that has expired by `now`, naming its key.
    ///
    /// # Errors
    ///
    /// The first certificate that has expired.
    pub fn check_not_expired(&self, now: DateTime<Utc>) -> Result<(), ConfigError> {
        for cert in self.certs() {
            let served = cert.served();
            if served.not_after <= now {
                return Err(ConfigError::Value {
                    key: cert.listener().cert_key(),
                    value: cert.files().cert.display().to_string(),
                    reason: format!("the certificate expired on {}", served.not_after),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
