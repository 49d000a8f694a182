//! The `[admin]` section, validated: the admin listener, its token and TLS.

use super::raw::RawAdmin;
use super::validate::{bad, secret, socket, tls_files};
use super::{AdminConfig, ConfigError};

/// `[admin]` as written, checked and converted; an error names the key and the value.
pub(super) fn validate(a: RawAdmin) -> Result<AdminConfig, ConfigError> {
    let admin = AdminConfig {
        listen: socket("admin.listen", &a.listen)?,
        token: secret(a.token),
        tls: tls_files(("admin.tls.cert", "admin.tls.key"), a.tls)?,
    };
    if let Some(token) = &admin.token {
        use secrecy::ExposeSecret;
        if token.expose_secret().len() < 16 {
            return Err(bad(
                "admin.token",
                "[redacted]",
                "must be at least 16 characters",
            ));
        }
    }
    Ok(admin)
}
