//! The TOML file as written: serde structs that mirror its sections and keys, with defaults.
//! Validation into typed values happens in [`super::Config::from_raw`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    pub proxy: RawProxy,
    pub upstream: RawUpstream,
    pub database: RawDatabase,
    pub auth: RawAuth,
    pub rate_limit: RawRateLimit,
    pub admin: RawAdmin,
    pub audit: RawAudit,
    pub log: RawLog,
    pub self_service: RawSelfService,
    pub notify: super::RawNotify,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProxy {
    pub listen: String,
    pub trusted_proxies: Vec<String>,
    pub header_read_timeout: String,
    pub max_header_bytes: u64,
    pub shutdown_grace: String,
    pub worker_threads: u64,
    /// Last: a sub-table is written after the keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawTls>,
}

impl Default for RawProxy {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            trusted_proxies: Vec::new(),
            header_read_timeout: "10s".into(),
            max_header_bytes: 64 * 1024,
            shutdown_grace: "30s".into(),
            worker_threads: 0,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    pub url: String,
    pub identity: String,
    pub identity_header: String,
    pub connect_timeout: String,
    pub response_timeout: String,
    pub pool_idle_timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:7990".into(),
            identity: "header".into(),
            identity_header: "X-Forwarded-User".into(),
            connect_timeout: "5s".into(),
            response_timeout: "300s".into(),
            pool_idle_timeout: "90s".into(),
            credential_key: None,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDatabase {
    pub url: String,
    pub max_connections: u64,
}

impl Default for RawDatabase {
    fn default() -> Self {
        Self {
            url: "sqlite://data/tokengate.db".into(),
            max_connections: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub protected_paths: Vec<String>,
    pub basic_auth_fallback: bool,
    pub allowed_ips: Vec<String>,
    pub failed_attempts_per_ip: String,
    pub cache_ttl: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lifetime_days: Option<u64>,
    pub hash_concurrency: u64,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            protected_paths: vec!["/rest/".into(), "/scm/".into()],
            basic_auth_fallback: true,
            allowed_ips: Vec::new(),
            failed_attempts_per_ip: "20/1m".into(),
            cache_ttl: "60s".into(),
            max_lifetime_days: None,
            hash_concurrency: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRateLimit {
    pub default: String,
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    pub redis_key_prefix: String,
    pub redis_timeout: String,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        Self {
            default: "1000/1h".into(),
            backend: "local".into(),
            redis_url: None,
            redis_key_prefix: "tokengate:".into(),
            redis_timeout: "50ms".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    pub listen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawTls>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".into(),
            token: None,
            tls: None,
        }
    }
}

/// `[proxy.tls]` and `[admin.tls]`: PEM files of the certificate (chain) and its key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    pub coverage: String,
    pub retention_days: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub queue_capacity: u64,
    pub spill_file: String,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            coverage: "full".into(),
            retention_days: 90,
            max_rows: None,
            file: None,
            queue_capacity: 65_536,
            spill_file: "data/audit-spill.ndjson".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub level: String,
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub auth_logger: String,
    pub rate_limit_logger: String,
    pub loggers: BTreeMap<String, String>,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "bitbucket".into(),
            file: None,
            auth_logger: "d.r.a.p.auth.ApiTokenAuthSharedBase".into(),
            rate_limit_logger: "d.r.a.p.auth.ApiTokenRateLimiter".into(),
            loggers: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSelfService {
    pub enabled: bool,
    pub path: String,
    pub whoami_path: String,
    pub use_tokens: Vec<String>,
    pub create_own: Vec<String>,
    pub manage_all: Vec<String>,
    pub force_read_only: bool,
    pub group_cache_ttl: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub provision_credentials: bool,
    pub credential_lifetime_days: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitbucket_credential: Option<String>,
}

impl Default for RawSelfService {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/tokengate/".into(),
            whoami_path: "/rest/api/latest/application-properties".into(),
            use_tokens: vec!["*".into()],
            create_own: vec!["*".into()],
            manage_all: Vec::new(),
            force_read_only: false,
            group_cache_ttl: "5m".into(),
            public_url: None,
            provision_credentials: false,
            credential_lifetime_days: 365,
            bitbucket_credential: None,
        }
    }
}
