//! The `[database]` section, validated: which store, and how many connections to it.

use secrecy::SecretString;

use super::raw::RawDatabase;
use super::validate::{bad, count, redact_url_password};
use super::{ConfigError, DatabaseConfig};

/// `[database]` as written, checked and converted; an error names the key and the value.
pub(super) fn validate(d: RawDatabase) -> Result<DatabaseConfig, ConfigError> {
    if !(d.url.starts_with("sqlite:")
        || d.url.starts_with("postgres://")
        || d.url.starts_with("postgresql://"))
    {
        return Err(bad(
            "database.url",
            redact_url_password(&d.url),
            "expected sqlite://path, postgres:// or postgresql://",
        ));
    }
    Ok(DatabaseConfig {
        url: SecretString::from(d.url),
        max_connections: u32::try_from(count(
            "database.max_connections",
            d.max_connections,
            1,
            1000,
        )?)
        .expect("bounded above"),
    })
}
