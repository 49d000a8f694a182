//! Turns a [`RawConfig`] into a [`Config`], naming the key and value of anything invalid.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::raw::RawRateLimit;
pub(crate) use super::redact::redact_url_password;
use super::{
    AdminConfig, AuditConfig, AuthConfig, Config, ConfigError, DatabaseConfig, Identity,
    LimitBackend, ProxyConfig, RateLimitConfig, RawConfig, RawTls, RedisConfig, TlsFiles,
    UpstreamConfig, parse_duration,
};
use crate::auth::parse_cidr;
use crate::ratelimit::RateQuota;
use crate::telemetry::{LogFormat, LogSettings};

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

fn socket(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
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
fn positive_duration(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = duration(key, value)?;
    if d.is_zero() {
        return Err(bad(key, value, "must be from 1ms to 1d (24h)"));
    }
    Ok(d)
}

fn quota(key: &'static str, value: &str) -> Result<RateQuota, ConfigError> {
    value.parse().map_err(|e| bad(key, value, e))
}

fn cidrs(key: &'static str, values: &[String]) -> Result<Vec<IpNet>, ConfigError> {
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
fn tls_files(
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

pub(super) fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let node_id = match raw.node_id {
        // As documented, and as the default is: 6-7 upper-case base-36 characters, so a
        // request id's lower-case `x` separators stay unambiguous.
        Some(id)
            if (6..=7).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) =>
        {
            id
        }
        Some(id) => {
            return Err(bad(
                "node_id",
                id,
                "expected 6 or 7 upper-case letters and digits (base 36), such as A6X2OX",
            ));
        }
        None => default_node_id(&host_name()),
    };

    let p = raw.proxy;
    let proxy = ProxyConfig {
        listen: socket("proxy.listen", &p.listen)?,
        trusted_proxies: cidrs("proxy.trusted_proxies", &p.trusted_proxies)?,
        header_read_timeout: positive_duration(
            "proxy.header_read_timeout",
            &p.header_read_timeout,
        )?,
        max_header_bytes: usize::try_from(count(
            "proxy.max_header_bytes",
            p.max_header_bytes,
            8 * 1024,
            1024 * 1024,
        )?)
        .expect("bounded above"),
        shutdown_grace: duration("proxy.shutdown_grace", &p.shutdown_grace)?,
        worker_threads: usize::try_from(count("proxy.worker_threads", p.worker_threads, 0, 1024)?)
            .expect("bounded above"),
        tls: tls_files(("proxy.tls.cert", "proxy.tls.key"), p.tls)?,
    };

    let u = raw.upstream;
    // What an error shows: a URL refused for its user info may hold a password.
    let shown_url = redact_url_password(&u.url);
    let url: http::Uri = u.url.parse().map_err(|_| {
        bad(
            "upstream.url",
            &shown_url,
            "expected a URL such as http://127.0.0.1:7990",
        )
    })?;
    let https = url.scheme_str() == Some("https");
    if !(https || url.scheme_str() == Some("http")) || url.authority().is_none() {
        return Err(bad(
            "upstream.url",
            &shown_url,
            "expected an http:// or https:// URL with a host",
        ));
    }
    // Never sent to Bitbucket (who the request is for is upstream.identity's job), while the
    // URL itself is logged at start and written into audit-file lines.
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad(
            "upstream.url",
            &shown_url,
            "must not hold a user name or password: tokengate does not use them to reach \
             Bitbucket; upstream.identity sets who a request is for",
        ));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(bad(
            "upstream.url",
            &shown_url,
            "must not have a path: Bitbucket's context path is part of the request path",
        ));
    }
    let identity = match u.identity.as_str() {
        "header" => Identity::Header,
        "credential" => Identity::Credential,
        other => {
            return Err(bad(
                "upstream.identity",
                other,
                "expected \"header\" or \"credential\"",
            ));
        }
    };
    let identity_header: http::HeaderName = u.identity_header.parse().map_err(|_| {
        bad(
            "upstream.identity_header",
            &u.identity_header,
            "expected an HTTP header name",
        )
    })?;
    if identity_header == http::header::AUTHORIZATION || identity_header == http::header::HOST {
        return Err(bad(
            "upstream.identity_header",
            &u.identity_header,
            "must not be Authorization or Host",
        ));
    }
    let credential_key = secret(u.credential_key);
    if identity == Identity::Credential {
        match &credential_key {
            None => {
                return Err(bad(
                    "upstream.credential_key",
                    "",
                    "required when upstream.identity = \"credential\"; set TOKENGATE_UPSTREAM__CREDENTIAL_KEY to 32 random bytes in base64",
                ));
            }
            Some(key) => {
                crate::vault::CredentialKey::from_secret(key)
                    .map_err(|e| bad("upstream.credential_key", "[redacted]", e))?;
            }
        }
    }
    let ca_file = u.ca_file.filter(|f| !f.is_empty()).map(PathBuf::from);
    if let Some(path) = &ca_file
        && !https
    {
        return Err(bad(
            "upstream.ca_file",
            path.display(),
            "is used only with an https:// upstream.url",
        ));
    }
    let upstream = UpstreamConfig {
        url,
        identity,
        identity_header,
        connect_timeout: positive_duration("upstream.connect_timeout", &u.connect_timeout)?,
        response_timeout: positive_duration("upstream.response_timeout", &u.response_timeout)?,
        pool_idle_timeout: positive_duration("upstream.pool_idle_timeout", &u.pool_idle_timeout)?,
        credential_key,
        ca_file,
    };

    let d = raw.database;
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
    let database = DatabaseConfig {
        url: SecretString::from(d.url),
        max_connections: u32::try_from(count(
            "database.max_connections",
            d.max_connections,
            1,
            1000,
        )?)
        .expect("bounded above"),
    };

    let a = raw.auth;
    for path in &a.protected_paths {
        if !path.starts_with('/') {
            return Err(bad(
                "auth.protected_paths",
                path,
                "every path must start with /",
            ));
        }
        // Requests are matched on their routing path, so a prefix written otherwise (`//`, a
        // dot segment, `;`, `%XX`) could never match and would protect nothing.
        match crate::auth::routing_path(path) {
            Ok(routed) if routed == path.as_str() => {}
            Ok(routed) => {
                return Err(bad(
                    "auth.protected_paths",
                    path,
                    format!("every path must be written as Bitbucket routes it, here {routed}"),
                ));
            }
            Err(e) => {
                return Err(bad(
                    "auth.protected_paths",
                    path,
                    format!("every path must be one Bitbucket can route ({e})"),
                ));
            }
        }
    }
    let auth = AuthConfig {
        protected_paths: a.protected_paths,
        basic_auth_fallback: a.basic_auth_fallback,
        allowed_ips: cidrs("auth.allowed_ips", &a.allowed_ips)?,
        failed_attempts_per_ip: quota("auth.failed_attempts_per_ip", &a.failed_attempts_per_ip)?,
        cache_ttl: positive_duration("auth.cache_ttl", &a.cache_ttl)?,
        max_lifetime_days: a
            .max_lifetime_days
            .map(|d| {
                count("auth.max_lifetime_days", d, 1, 36_500)
                    .map(|d| u32::try_from(d).expect("bounded above"))
            })
            .transpose()?,
        hash_concurrency: match count("auth.hash_concurrency", a.hash_concurrency, 0, 256)? {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => usize::try_from(n).expect("bounded above"),
        },
    };

    let rate_limit = rate_limit(raw.rate_limit)?;

    let admin = AdminConfig {
        listen: socket("admin.listen", &raw.admin.listen)?,
        token: secret(raw.admin.token),
        tls: tls_files(("admin.tls.cert", "admin.tls.key"), raw.admin.tls)?,
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

    let au = raw.audit;
    let audit = AuditConfig {
        coverage: au.coverage.parse().map_err(|()| {
            bad(
                "audit.coverage",
                &au.coverage,
                "expected off, base, advanced or full",
            )
        })?,
        retention_days: u32::try_from(count("audit.retention_days", au.retention_days, 1, 36_500)?)
            .expect("bounded above"),
        max_rows: au
            .max_rows
            .map(|n| count("audit.max_rows", n, 1, u64::MAX))
            .transpose()?,
        file: au.file.filter(|f| !f.is_empty()).map(PathBuf::from),
        queue_capacity: usize::try_from(count(
            "audit.queue_capacity",
            au.queue_capacity,
            16,
            10_000_000,
        )?)
        .expect("bounded above"),
        spill_file: PathBuf::from(au.spill_file),
    };

    let l = raw.log;
    let log = LogSettings {
        level: l.level,
        loggers: l.loggers,
        format: match l.format.as_str() {
            "bitbucket" => LogFormat::Bitbucket,
            "json" => LogFormat::Json,
            other => {
                return Err(bad(
                    "log.format",
                    other,
                    "expected \"bitbucket\" or \"json\"",
                ));
            }
        },
        file: l.file.filter(|f| !f.is_empty()).map(PathBuf::from),
        auth_logger: l.auth_logger,
        rate_limit_logger: l.rate_limit_logger,
    };
    crate::telemetry::build_filter(&log).map_err(|e| ConfigError::Log(e.to_string()))?;
    let self_service = super::self_service::validate(raw.self_service, &upstream)?;
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

fn rate_limit(r: RawRateLimit) -> Result<RateLimitConfig, ConfigError> {
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

/// The host name, from the kernel where it can be read.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A stable 6–7 character upper-case base-36 id derived from the host name.
pub(crate) fn default_node_id(host: &str) -> String {
    let digest = Sha256::digest(host.as_bytes());
    let mut n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]).max(36u32.pow(5));
    let mut out = Vec::new();
    while n > 0 {
        out.push(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}
