//! The gateway's state: everything a request needs. Each proxy worker has its own (with its
//! own upstream connection pool); everything else in it is shared by all workers.

use std::sync::Arc;

use ipnet::IpNet;

use super::forward::Upstream;
use crate::audit::AuditSink;
use crate::auth::Verifier;
use crate::config::{Config, Identity};
use crate::metrics::Metrics;
use crate::ratelimit::{RateLimits, RateQuota};
use crate::request_id::RequestIds;
use crate::selfservice::{Directory, Edge};
use crate::usage::UsageTracker;
use crate::vault::CredentialVault;

/// What the requests of one proxy worker need.
pub struct Gateway {
    /// The node id, static text that every audit event carries without a copy.
    pub node_id: &'static str,
    /// Path prefixes where tokens are accepted.
    pub protected_paths: Vec<String>,
    /// The same, joined for messages.
    pub protected_paths_text: String,
    pub basic_auth_fallback: bool,
    pub allowed_ips: Vec<IpNet>,
    pub trusted_proxies: Vec<IpNet>,
    pub default_quota: RateQuota,
    pub identity: Identity,
    pub identity_header: http::HeaderName,
    pub ids: Arc<RequestIds>,
    pub verifier: Arc<Verifier>,
    /// Token quotas, on the configured backend.
    pub limits: Arc<RateLimits>,
    /// This worker's keep-alive pool to Bitbucket.
    pub upstream: Upstream,
    /// Whether the proxy listener serves TLS.
    pub tls: bool,
    /// `X-Forwarded-Proto` of a request from a client: `https` on a TLS listener.
    pub forwarded_proto: http::HeaderValue,
    pub audit: AuditSink,
    pub metrics: Arc<Metrics>,
    /// Present when `upstream.identity = "credential"`.
    pub credentials: Option<Arc<CredentialVault>>,
    pub usage: Arc<UsageTracker>,
    /// Whose tokens may be used (`self_service.use_tokens`).
    pub directory: Arc<Directory>,
    /// Self-service API and pages, when enabled.
    pub self_service: Option<Edge>,
}

/// The shared parts [`Gateway::new`] takes besides the config.
#[derive(Clone)]
pub struct GatewayParts {
    /// Request ids and the in-flight count, for the whole process.
    pub ids: Arc<RequestIds>,
    pub verifier: Arc<Verifier>,
    pub limits: Arc<RateLimits>,
    pub audit: AuditSink,
    pub metrics: Arc<Metrics>,
    pub credentials: Option<Arc<CredentialVault>>,
    pub usage: Arc<UsageTracker>,
    pub directory: Arc<Directory>,
    pub self_service: Option<Edge>,
    /// The client settings for an `https://` Bitbucket.
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Gateway {
    pub fn new(config: &Config, parts: GatewayParts) -> Self {
        Self {
            node_id: crate::audit::intern(&config.node_id),
            protected_paths: config.auth.protected_paths.clone(),
            protected_paths_text: config.auth.protected_paths.join(", "),
            basic_auth_fallback: config.auth.basic_auth_fallback,
            allowed_ips: config.auth.allowed_ips.clone(),
            trusted_proxies: config.proxy.trusted_proxies.clone(),
            default_quota: config.rate_limit.default,
            identity: config.upstream.identity,
            identity_header: config.upstream.identity_header.clone(),
            ids: parts.ids,
            verifier: parts.verifier,
            limits: parts.limits,
            upstream: Upstream::new(&config.upstream, parts.upstream_tls.as_ref()),
            tls: config.proxy.tls.is_some(),
            forwarded_proto: http::HeaderValue::from_static(if config.proxy.tls.is_some() {
                "https"
            } else {
                "http"
            }),
            audit: parts.audit,
            metrics: parts.metrics,
            credentials: parts.credentials,
            usage: parts.usage,
            directory: parts.directory,
            self_service: parts.self_service,
        }
    }

    /// True when `path` is under one of the protected prefixes.
    pub fn is_protected(&self, path: &str) -> bool {
        self.protected_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()))
    }
}
