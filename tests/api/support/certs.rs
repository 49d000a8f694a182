//! Certificates made for a test: an internal CA and the server certificates it issues (for
//! `localhost` and `127.0.0.1`), written as PEM files where the gateway reads them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber, date_time_ymd,
};

/// A CA of the test's own.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A server certificate and its key, as PEM.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    /// The certificate, then the CA's: a chain as `cert` files hold it.
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
    /// The serial number as `openssl x509 -serial` writes it, without separators: `11AB`.
    pub(crate) serial: String,
    /// The serial number as the gateway logs it: `11:ab`.
    pub(crate) serial_logged: String,
    /// `notAfter` as Unix time.
    pub(crate) not_after: i64,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("the CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `localhost` and `127.0.0.1` with serial `0x11, serial`, valid
    /// until the first of January of `until_year`.
    pub(crate) fn issue(&self, serial: u8, until_year: i32) -> Leaf {
        self.issue_with_key(serial, until_year, &KeyPair::generate().expect("a key"))
    }

    /// [`TestCa::issue`] for an existing key.
    pub(crate) fn issue_with_key(&self, serial: u8, until_year: i32, key: &KeyPair) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.serial_number = Some(SerialNumber::from(vec![0x11, serial]));
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(until_year, 1, 1);
        let cert = params.signed_by(key, &self.issuer).expect("a leaf");
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.pem),
            key_pem: key.serialize_pem(),
            serial: format!("11{serial:02X}"),
            serial_logged: format!("11:{serial:02x}"),
            not_after: params.not_after.unix_timestamp(),
        }
    }
}

impl Leaf {
    /// Writes `cert.pem` and `key.pem` into `dir`; returns their paths.
    pub(crate) fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.chain_pem).expect("writing cert.pem");
        std::fs::write(&key, &self.key_pem).expect("writing key.pem");
        (cert, key)
    }

    /// A TLS acceptor serving this certificate, with the gateway's crypto provider.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the server's chain");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("the server's key");
        #[allow(deprecated)] // ring, as the gateway uses it
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the server's pair");
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
    }
}

/// Replaces `path` with `contents` as certificate managers do: a new file renamed over it.
pub(crate) fn replace(path: &Path, contents: &str) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, contents).expect("writing the new file");
    std::fs::rename(&fresh, path).expect("renaming the new file into place");
}

/// The `[proxy.tls]` or `[admin.tls]` table for `cert` and `key`.
pub(crate) fn tls_table(cert: &Path, key: &Path) -> toml::Value {
    let mut table = toml::Table::new();
    table.insert("cert".into(), cert.display().to_string().into());
    table.insert("key".into(), key.display().to_string().into());
    table.into()
}
