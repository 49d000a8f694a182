//! Turns a [`RawConfig`] into a [`Config`], naming the key and value of anything invalid: each
//! section is validated by its own module (`proxy.rs`, `upstream.rs`, …, `notify.rs`), with
//! the checks they share defined here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

pub(crate) use super::redact::redact_url_password;
use super::{Config, ConfigError, RawConfig, RawTls, TlsFiles, parse_duration};
use crate::auth::parse_cidr;
use crate::ratelimit::RateQuota;

pub(super) fn bad(
    key: &'static str,
    value: impl std::fmt::Display,
    reason: impl std::fmt::Display,
) -> ConfigError {
    ConfigError::Value {
        key,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

pub(super) fn socket(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        bad(
            key,
            value,
            "expected an address and port such as 0.0.0.0:8080",
        )
    })
}

/// The longest any duration key may be (every one is a timeout, a grace period or a cache
/// lifetime): longer is a typo, and would overflow the clocks and caches it is added to.
const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// A duration from zero to [`MAX_DURATION`].
pub(super) fn duration(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(value).ok_or_else(|| {
        bad(
            key,
            value,
            "expected a duration such as 500ms, 60s, 5m, 1h or 1d",
        )
    })?;
    if d > MAX_DURATION {
        return Err(bad(key, value, "must be at most 1d (24h)"));
    }
    Ok(d)
}

/// A duration from 1ms to [`MAX_DURATION`].
pub(super) fn positive_duration(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = duration(key, value)?;
    if d.is_zero() {
        return Err(bad(key, value, "must be from 1ms to 1d (24h)"));
    }
    Ok(d)
}

pub(super) fn quota(key: &'static str, value: &str) -> Result<RateQuota, ConfigError> {
    value.parse().map_err(|e| bad(key, value, e))
}

pub(super) fn cidrs(key: &'static str, values: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    values
        .iter()
        .map(|v| {
            parse_cidr(v).ok_or_else(|| {
                bad(
                    key,
                    v,
                    "expected an IPv4 or IPv6 address or CIDR such as 10.0.0.0/8",
                )
            })
        })
        .collect()
}

pub(super) fn count(key: &'static str, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if value < min || value > max {
        return Err(bad(key, value, format!("must be from {min} to {max}")));
    }
    Ok(value)
}

/// A `[section.tls]` table: both files named. Whether they load is checked where they are read
/// (`serve` and `check-config`), so the other commands work without access to the key.
pub(super) fn tls_files(
    keys: (&'static str, &'static str),
    raw: Option<RawTls>,
) -> Result<Option<TlsFiles>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    for (key, value) in [(keys.0, &raw.cert), (keys.1, &raw.key)] {
        if value.trim().is_empty() {
            return Err(bad(
                key,
                value,
                "required with TLS: the path of a PEM file (cert: the certificate and its chain; key: its private key)",
            ));
        }
    }
    Ok(Some(TlsFiles {
        cert: PathBuf::from(raw.cert),
        key: PathBuf::from(raw.key),
    }))
}

pub(super) fn secret(value: Option<String>) -> Option<SecretString> {
    value.filter(|v| !v.is_empty()).map(SecretString::from)
}

/// Every section, each by the function of its own module, in the order of the file.
pub(super) fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let node_id = super::node_id::validate(raw.node_id)?;
    let proxy = super::proxy::validate(raw.proxy)?;
    let upstream = super::upstream::validate(raw.upstream)?;
    let database = super::database::validate(raw.database)?;
    let auth = super::auth::validate(raw.auth)?;
    let rate_limit = super::rate_limit::validate(raw.rate_limit)?;
    let admin = super::admin::validate(raw.admin)?;
    let audit = super::audit::validate(raw.audit)?;
    let log = super::log::validate(raw.log)?;
    let self_service = super::self_service::validate(raw.self_service, &upstream, &auth)?;
    let notify = super::notify::validate(raw.notify)?;

    Ok(Config {
        node_id,
        proxy,
        upstream,
        database,
        auth,
        rate_limit,
        admin,
        audit,
        log,
        self_service,
        notify,
        ignored_env: Vec::new(),
        file: super::ConfigFile::None,
    })
}
