//! Reading PEM files: a certificate chain, a private key (PKCS#8, PKCS#1 or SEC1) and a bundle
//! of CA certificates. Errors say what is wrong with a file without ever quoting a key.

use std::io::Read as _;
use std::path::Path;

use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The largest PEM file read: a chain or a CA bundle is a few hundred KiB at most, and a path
/// pointing at a device or a huge file must not hang or exhaust the gateway.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a whole file of at most [`MAX_FILE_BYTES`], following symbolic links.
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "is larger than {} MiB; expected a PEM file",
            MAX_FILE_BYTES / 1024 / 1024
        ));
    }
    Ok(bytes)
}

/// What is wrong with PEM text, in words that quote none of it.
fn pem_problem(e: &pem::Error) -> String {
    let what = match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64",
        pem::Error::SectionTooLarge => "a PEM section is too large",
        pem::Error::NoItemsFound => "it holds nothing of the expected kind",
        _ => "it is not valid PEM",
    };
    format!("is not a valid PEM file: {what}")
}

/// Every certificate of a PEM file, in order (for a chain: the server's own first). At least
/// one.
pub(super) fn certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_problem(&e))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(certs)
}

/// The private key of a PEM file: the first `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY`
/// (PKCS#1) or `EC PRIVATE KEY` (SEC1) section.
pub(super) fn private_key(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    match PrivateKeyDer::from_pem_slice(bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let encrypted = bytes
                .windows(b"ENCRYPTED PRIVATE KEY".len())
                .any(|w| w == b"ENCRYPTED PRIVATE KEY");
            Err(if encrypted {
                "holds an encrypted private key; tokengate needs it unencrypted".to_owned()
            } else {
                "holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
                    .to_owned()
            })
        }
        Err(e) => Err(pem_problem(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_each_encoding_are_read() {
        let pkcs8 = rcgen::KeyPair::generate().unwrap();
        assert!(matches!(
            private_key(pkcs8.serialize_pem().as_bytes()),
            Ok(PrivateKeyDer::Pkcs8(_))
        ));
        for (label, kind) in [("RSA PRIVATE KEY", "pkcs1"), ("EC PRIVATE KEY", "sec1")] {
            let pem = format!("-----BEGIN {label}-----\nMAMCAQA=\n-----END {label}-----\n");
            let key = private_key(pem.as_bytes()).unwrap();
            let got = match key {
                PrivateKeyDer::Pkcs1(_) => "pkcs1",
                PrivateKeyDer::Sec1(_) => "sec1",
                _ => "other",
            };
            assert_eq!(got, kind);
        }
    }

    #[test]
    fn problems_are_named_without_quoting_the_file() {
        let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleSBtYXRlcmlhbA==\n";
        let e = private_key(secret.as_bytes()).unwrap_err();
        assert!(e.contains("no END line"), "{e}");
        assert!(!e.contains("c2VjcmV0"), "{e}");
        let e = private_key(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.contains("encrypted"), "{e}");
        let e = certificates(b"hello").unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = private_key(b"").unwrap_err();
        assert!(e.contains("no PEM private key"), "{e}");
    }
}
