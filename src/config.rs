//! Configuration: the TOML file, overridden by `TOKENGATE_SECTION__KEY` variables, validated
//! into a typed [`Config`]. Every error names the key and the value that is wrong.

mod admin;
mod audit;
mod auth;
mod database;
mod duration;
mod env;
mod file;
mod log;
mod node_id;
mod notify;
mod proxy;
mod rate_limit;
mod raw;
mod redact;
#[cfg(test)]
mod reference;
mod schema;
mod self_service;
mod upstream;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

pub use duration::parse_duration;
pub use file::{CONFIG_VAR, ConfigFile, SEARCH_PATHS};
pub use notify::{NotifyConfig, RawNotify};
pub use raw::{RawConfig, RawTls};
pub(crate) use redact::redact_url_password;
pub use self_service::SelfServiceConfig;

use crate::audit::AuditSettings;
use crate::ratelimit::RateQuota;
use crate::telemetry::LogSettings;

/// A config problem, reported before anything starts. Each message holds its cause, so none
/// of them has a `source()` that would repeat it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
    /// A `[log]` setting; the message names the key and value.
    #[error("{0}")]
    Log(String),
    #[error("invalid value {value:?} for key {key}: {reason}")]
    Value {
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// How Bitbucket learns who the token's user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Set `upstream.identity_header` to the user name.
    Header,
    /// Replace `Authorization` with the user's stored Bitbucket credential.
    Credential,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Node id in request ids and audit events.
    pub node_id: String,
    pub proxy: ProxyConfig,
    pub upstream: UpstreamConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub admin: AdminConfig,
    /// `[audit]`, as the audit writer and retention take it.
    pub audit: AuditSettings,
    pub log: LogSettings,
    pub self_service: SelfServiceConfig,
    pub notify: NotifyConfig,
    /// `TOKENGATE_…` variables that name no key or section (such as the service links
    /// Kubernetes adds for a Service named `tokengate`): ignored, and warned about at start.
    pub ignored_env: Vec<String>,
    /// The config file read, and what chose it.
    pub file: ConfigFile,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    /// Proxies whose `X-Forwarded-For` entries are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// A client must send its whole request head within this time; an idle keep-alive
    /// connection is closed after it too.
    pub header_read_timeout: Duration,
    /// Largest request head accepted.
    pub max_header_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Worker threads (`http-nio-{port}-exec-{n}`); 0 means one per core.
    pub worker_threads: usize,
    /// Serve TLS with this pair (`[proxy.tls]`).
    pub tls: Option<TlsFiles>,
}

/// The PEM files of a TLS listener: the certificate, followed by its chain, and its private
/// key (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Bitbucket's base URL (`http://host:port` or `https://host:port`).
    pub url: http::Uri,
    pub identity: Identity,
    pub identity_header: http::HeaderName,
    pub connect_timeout: Duration,
    /// Time allowed for Bitbucket to start answering (504 after that).
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    /// Key sealing users' stored Bitbucket credentials (32 bytes, base64).
    pub credential_key: Option<SecretString>,
    /// CA certificates (PEM) trusted for an `https://` Bitbucket besides the system's.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// May carry a password, hence secret.
    pub url: SecretString,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub protected_paths: Vec<String>,
    pub basic_auth_fallback: bool,
    /// Global allow-list for token use; empty means any address.
    pub allowed_ips: Vec<IpNet>,
    pub failed_attempts_per_ip: RateQuota,
    pub cache_ttl: Duration,
    pub max_lifetime_days: Option<u32>,
    /// Concurrent argon2 verifications; 0 in the file means one per core.
    pub hash_concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub default: RateQuota,
    /// Where limits are counted.
    pub backend: LimitBackend,
}

/// Where rate limits and failed attempts are counted.
#[derive(Debug, Clone)]
pub enum LimitBackend {
    /// In each gateway process.
    Local,
    /// In Redis, shared by every replica.
    Redis(RedisConfig),
}

/// `rate_limit.backend = "redis"`.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://`; may carry a password, hence secret.
    pub url: SecretString,
    /// The URL as it may be shown, its password redacted.
    pub shown_url: String,
    /// Every key starts with it, so installations can share a Redis.
    pub key_prefix: String,
    /// A call that takes longer is given up and the gateway counts alone.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: Option<SecretString>,
    /// Serve TLS with this pair (`[admin.tls]`).
    pub tls: Option<TlsFiles>,
}

impl Config {
    /// Reads the config file (`path` from `--config`, else `TOKENGATE_CONFIG`, else the first
    /// of [`SEARCH_PATHS`] found, else none), applies the process environment, and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`Config::load`], with the environment given. An error caused by a variable's value
    /// names the variable.
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let file = locate(path, &vars);
        let (raw, overrides) = read(&file, vars)?;
        let mut config = Self::from_raw(raw).map_err(|e| overrides.blame(e))?;
        config.ignored_env = overrides.ignored;
        config.file = file;
        Ok(config)
    }

    /// Validates a raw config.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        validate::validate(raw)
    }

    /// One warning per ignored environment variable, to log or print at start.
    pub fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.ignored_env.iter().map(|var| match env::meant(var) {
            Some(meant) => format!(
                "ignoring environment variable {var}: it names no config key or section; did \
                 you mean {meant}? A section and its key are separated by two underscores"
            ),
            None => format!(
                "ignoring environment variable {var}: it names no config key or section \
                 (Kubernetes sets such variables for a Service named tokengate)"
            ),
        })
    }
}

/// The config file `path` (from `--config`) or the environment's `TOKENGATE_CONFIG` names, or
/// the first one found.
fn locate(path: Option<&Path>, vars: &[(String, String)]) -> ConfigFile {
    let named = vars
        .iter()
        .rev()
        .find(|(name, _)| name == CONFIG_VAR)
        .map(|(_, value)| value.as_str());
    ConfigFile::locate(path, named, &SEARCH_PATHS)
}

/// Reads `file` and the environment into the raw form, unvalidated (used by `check-config`).
pub fn load_raw(
    file: &ConfigFile,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<RawConfig, ConfigError> {
    read(file, vars.into_iter().collect()).map(|(raw, _)| raw)
}

/// A config from TOML `text` and the environment `vars`, validated, as if read from a file
/// (for the fuzz target of config parsing).
pub(crate) fn from_text(text: &str, vars: Vec<(String, String)>) -> Result<Config, ConfigError> {
    let (raw, overrides) = parse(text, Path::new("(text)"), vars)?;
    let mut config = Config::from_raw(raw).map_err(|e| overrides.blame(e))?;
    config.ignored_env = overrides.ignored;
    Ok(config)
}

/// The raw form, and what the environment changed in it.
fn read(
    file: &ConfigFile,
    vars: Vec<(String, String)>,
) -> Result<(RawConfig, env::Overrides), ConfigError> {
    let text = match file.path() {
        Some(path) => std::fs::read_to_string(path).map_err(|cause| match file {
            ConfigFile::Env(_) => ConfigError::Env {
                var: CONFIG_VAR.to_owned(),
                reason: format!("cannot read config file {}: {cause}", path.display()),
            },
            _ => ConfigError::Read {
                path: path.to_path_buf(),
                cause,
            },
        })?,
        None => String::new(),
    };
    parse(&text, file.path().unwrap_or(Path::new("(none)")), vars)
}

/// The raw form of TOML `text` (read from `path`, for messages) with `vars` applied.
fn parse(
    text: &str,
    path: &Path,
    vars: Vec<(String, String)>,
) -> Result<(RawConfig, env::Overrides), ConfigError> {
    let path = path.to_path_buf();
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string().trim_end().to_owned(),
        })?;
    let overrides = env::apply(&mut doc, vars)?;
    let raw = serde_path_to_error::deserialize(toml::Value::Table(doc)).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        if let Some(e) = overrides.type_error(&key, inner.message()) {
            return e;
        }
        let message = if key == "." {
            inner.message().to_owned()
        } else {
            format!("key {key}: {}", inner.message())
        };
        ConfigError::Parse { path, message }
    })?;
    Ok((raw, overrides))
}

impl RawConfig {
    /// The config as TOML with every secret replaced by `[redacted]`.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        let redact = |s: &mut Option<String>| {
            if s.is_some() {
                *s = Some("[redacted]".into());
            }
        };
        redact(&mut shown.admin.token);
        redact(&mut shown.upstream.credential_key);
        redact(&mut shown.self_service.bitbucket_credential);
        redact(&mut shown.notify.webhook_url);
        shown.database.url = validate::redact_url_password(&shown.database.url);
        if let Some(url) = &mut shown.rate_limit.redis_url {
            *url = validate::redact_url_password(url);
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
