//! The `[rate_limit]` section, validated: the default quota, and where limits are counted.

use secrecy::SecretString;

use super::raw::RawRateLimit;
use super::validate::{bad, positive_duration, quota, redact_url_password};
use super::{ConfigError, LimitBackend, RateLimitConfig, RedisConfig};

/// `[rate_limit]` as written, checked and converted; an error names the key and the value.
pub(super) fn validate(r: RawRateLimit) -> Result<RateLimitConfig, ConfigError> {
    let default = quota("rate_limit.default", &r.default)?;
    // Checked whatever the backend, so a typo shows before the day Redis is turned on.
    let timeout = positive_duration("rate_limit.redis_timeout", &r.redis_timeout)?;
    if r.redis_key_prefix.len() > 256 {
        return Err(bad(
            "rate_limit.redis_key_prefix",
            &r.redis_key_prefix,
            "must be at most 256 bytes",
        ));
    }
    let url = r.redis_url.filter(|url| !url.is_empty());
    let backend = match (r.backend.as_str(), url) {
        ("local", None) => LimitBackend::Local,
        ("local", Some(url)) => {
            return Err(bad(
                "rate_limit.redis_url",
                redact_url_password(&url),
                "is set while rate_limit.backend is \"local\"; set rate_limit.backend = \"redis\" to count limits there",
            ));
        }
        ("redis", None) => {
            return Err(bad(
                "rate_limit.redis_url",
                "",
                "required when rate_limit.backend = \"redis\", such as redis://:password@redis.internal:6379/0",
            ));
        }
        ("redis", Some(url)) => {
            let shown_url = redact_url_password(&url);
            redis_url(&url, &shown_url)?;
            LimitBackend::Redis(RedisConfig {
                url: SecretString::from(url),
                shown_url,
                key_prefix: r.redis_key_prefix,
                timeout,
            })
        }
        (other, _) => {
            return Err(bad(
                "rate_limit.backend",
                other,
                "expected \"local\" or \"redis\"",
            ));
        }
    };
    Ok(RateLimitConfig { default, backend })
}

/// Checks a `redis://` or `rediss://` URL as the client will read it, without connecting.
fn redis_url(url: &str, shown_url: &str) -> Result<(), ConfigError> {
    let refuse = |reason: &str| bad("rate_limit.redis_url", shown_url, reason);
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(refuse(
            "expected redis://[:password@]host[:port][/db] or rediss:// for TLS",
        ));
    }
    match redis::Client::open(url) {
        Ok(client) => match client.get_connection_info().addr() {
            redis::ConnectionAddr::TcpTls { insecure: true, .. } => Err(refuse(
                "the server's certificate is always checked; remove #insecure and add the \
                 server's CA to the system's trusted certificates (or SSL_CERT_FILE)",
            )),
            redis::ConnectionAddr::Tcp(host, _) | redis::ConnectionAddr::TcpTls { host, .. }
                if !host.is_empty() =>
            {
                Ok(())
            }
            _ => Err(refuse(
                "expected a host, such as redis://redis.internal:6379/0",
            )),
        },
        // The client's message may quote the URL, password and all: not shown.
        Err(_) => Err(refuse(
            "not a Redis URL: expected redis://[user][:password@]host[:port][/db], the database a \
             number, special characters of the password percent-encoded",
        )),
    }
}
