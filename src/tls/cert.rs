//! A listener's certificate and key: read from their files, checked as a matching pair, handed
//! to every new handshake, and replaced in place when a reload finds a new pair that loads.
//! Connections already open keep the session they made with the pair they were given.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use prometheus_client::metrics::gauge::Gauge;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::{Listener, pem};
use crate::config::{ConfigError, TlsFiles};

/// Why a pair was not loaded, naming the file at fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PairError {
    /// The certificate file cannot be read, holds no usable chain, or has expired.
    #[error("{}: {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    /// The key file cannot be read or holds no usable private key.
    #[error("{}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    /// Both load, but the key is not the certificate's.
    #[error("{} does not hold the private key of the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
}

impl PairError {
    /// The error as a config problem of `listener`'s `cert` or `key`.
    pub fn config_error(&self, listener: Listener) -> ConfigError {
        let (key, value, reason) = match self {
            Self::Cert { path, reason } => (listener.cert_key(), path, reason.clone()),
            Self::Key { path, reason } => (listener.key_key(), path, reason.clone()),
            Self::Mismatch { cert, key } => (
                listener.key_key(),
                key,
                format!(
                    "does not hold the private key of the certificate in {} ({})",
                    cert.display(),
                    listener.cert_key()
                ),
            ),
        };
        ConfigError::Value {
            key,
            value: value.display().to_string(),
            reason,
        }
    }
}

/// A loaded pair and what is logged and exported about it.
#[derive(Debug)]
pub struct Pair {
    certified: Arc<CertifiedKey>,
    /// Serial number of the server's own certificate: hex bytes joined by `:`, as `openssl x509
    /// -serial` and browsers show it.
    pub serial: String,
    /// When the server's own certificate expires.
    pub not_after: DateTime<Utc>,
    /// SHA-256 of both files as read: tells a changed pair from the one served.
    fingerprint: [u8; 32],
}

/// SHA-256 over both files, each prefixed by its length.
fn fingerprint(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [cert, key] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// Both files' bytes, read one right after the other.
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn read(files: &TlsFiles) -> Result<Contents, PairError> {
    let cert = pem::read_file(&files.cert).map_err(|reason| PairError::Cert {
        path: files.cert.clone(),
        reason,
    })?;
    let key = pem::read_file(&files.key).map_err(|reason| PairError::Key {
        path: files.key.clone(),
        reason,
    })?;
    Ok(Contents { cert, key })
}

impl Contents {
    fn parse(&self, files: &TlsFiles, provider: &CryptoProvider) -> Result<Pair, PairError> {
        let cert_error = |reason: String| PairError::Cert {
            path: files.cert.clone(),
            reason,
        };
        let chain = pem::certificates(&self.cert).map_err(cert_error)?;
        let (serial, not_after) = {
            let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).map_err(|e| {
                cert_error(format!(
                    "its first certificate is not a valid X.509 certificate ({e})"
                ))
            })?;
            let not_after = DateTime::from_timestamp(leaf.validity().not_after.timestamp(), 0)
                .ok_or_else(|| cert_error("its expiry date is out of range".to_owned()))?;
            (leaf.raw_serial_as_string(), not_after)
        };
        let key = pem::private_key(&self.key).map_err(|reason| PairError::Key {
            path: files.key.clone(),
            reason,
        })?;
        let key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| PairError::Key {
                path: files.key.clone(),
                reason: format!("holds a private key tokengate cannot use ({e})"),
            })?;
        let certified = CertifiedKey::new(chain, key);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(PairError::Mismatch {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                });
            }
            Err(e) => {
                return Err(cert_error(format!(
                    "its public key cannot be compared with the private key ({e})"
                )));
            }
        }
        Ok(Pair {
            certified: Arc::new(certified),
            serial,
            not_after,
            fingerprint: fingerprint(&self.cert, &self.key),
        })
    }
}

/// Reads and checks `files` once.
pub(super) fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<Pair, PairError> {
    read(files)?.parse(files, provider)
}

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP: every outcome is logged, an unchanged pair too.
    Signal,
    /// The files changed and have been quiet since: only a new outcome is logged.
    Files,
}

/// The pair a TLS listener serves; the certificate resolver of its server config.
#[derive(Debug)]
pub struct ServerCert {
    listener: Listener,
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    /// The pair every new handshake gets.
    served: RwLock<Arc<Pair>>,
    /// The fingerprint of the last pair a reload refused, so a refusal is logged once, not at
    /// every later change in the same directory.
    refused: Mutex<Option<[u8; 32]>>,
    /// Set to the served certificate's expiry.
    expiry: OnceLock<Gauge>,
}

impl ServerCert {
    /// Loads `files` for `listener`.
    ///
    /// # Errors
    ///
    /// A file cannot be read, holds no usable certificate or key, or the two do not match.
    pub fn load(
        listener: Listener,
        files: &TlsFiles,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, PairError> {
        let pair = load(files, &provider)?;
        Ok(Self {
            listener,
            files: files.clone(),
            provider,
            served: RwLock::new(Arc::new(pair)),
            refused: Mutex::new(None),
            expiry: OnceLock::new(),
        })
    }

    /// The listener this pair is for.
    pub fn listener(&self) -> Listener {
        self.listener
    }

    /// The files the pair is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The pair served now.
    pub fn served(&self) -> Arc<Pair> {
        Arc::clone(&self.served.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reports the served certificate's expiry (Unix time) on `gauge`, now and after every
    /// reload.
    pub fn report_expiry(&self, gauge: Gauge) {
        gauge.set(self.served().not_after.timestamp());
        let _ = self.expiry.set(gauge);
    }

    /// Reads the files again and serves them if they changed and load, are a matching pair and
    /// have not expired; otherwise keeps the pair it has. Logs the outcome (see [`Trigger`]).
    pub fn reload(&self, trigger: Trigger) {
        let served = self.served();
        let name = self.listener.name();
        let contents = read(&self.files);
        let seen = match &contents {
            Ok(c) => fingerprint(&c.cert, &c.key),
            Err(e) => fingerprint(e.to_string().as_bytes(), b""),
        };
        if seen == served.fingerprint {
            *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = None;
            if trigger == Trigger::Signal {
                tracing::info!(target: "tokengate::tls", "{name}.tls: certificate and key unchanged; serving serial {} (expires {})", served.serial, served.not_after);
            }
            return;
        }
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if trigger == Trigger::Files && *refused == Some(seen) {
            return;
        }
        let loaded = contents
            .and_then(|c| c.parse(&self.files, &self.provider))
            .and_then(|pair| {
                if pair.not_after <= Utc::now() {
                    return Err(PairError::Cert {
                        path: self.files.cert.clone(),
                        reason: format!("the certificate expired on {}", pair.not_after),
                    });
                }
                Ok(pair)
            });
        match loaded {
            Ok(pair) => {
                *refused = None;
                tracing::info!(target: "tokengate::tls", "{name}.tls: serving the new certificate of {}, serial {} (expires {}), in place of serial {}", self.files.cert.display(), pair.serial, pair.not_after, served.serial);
                if let Some(gauge) = self.expiry.get() {
                    gauge.set(pair.not_after.timestamp());
                }
                *self.served.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
            }
            Err(e) => {
                *refused = Some(seen);
                tracing::error!(target: "tokengate::tls", "{name}.tls: refused the new certificate and key: {e}; still serving serial {} (expires {})", served.serial, served.not_after);
            }
        }
    }

    /// The directories whose changes may change the pair: those of both paths as configured
    /// (where certificate managers rename new files into place, and where Kubernetes swaps its
    /// `..data` link) and those the paths lead to through symbolic links.
    pub(super) fn directories(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for path in [&self.files.cert, &self.files.key] {
            dirs.push(parent(path));
            if let Ok(real) = std::fs::canonicalize(path) {
                dirs.push(parent(&real));
            }
        }
        dirs
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .served
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .certified,
        ))
    }
}
