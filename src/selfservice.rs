//! Self-service: people make and manage their own tokens, signed in by Bitbucket itself, over
//! a REST API (tokengate's own and the drop-in API of the app it replaces) and web pages on
//! the proxy listener. Rights name users, Bitbucket groups or everyone; tokengate keeps no
//! directory of its own.
//!
//! The proxy hands a request under one of these paths to [`Edge::handle`], which runs it on
//! the control runtime (where the store's connections live) and never forwards it.

mod api;
mod compat;
mod directory;
mod narrow;
mod openapi;
mod ops;
mod provision;
mod rights;
mod signin;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use ipnet::IpNet;
use tokio::runtime::Handle;
use tower::ServiceExt as _;

pub(crate) use compat::Filter as TokenFilter;
pub use directory::Directory;
pub use narrow::{Asked, Bounds, Settled, Signing};
pub use openapi::{SelfServiceDoc, self_service_document};
pub use ops::{CreateInput, Limits, Me};
pub use rights::{Granted, Rights, Rule, Rules};
pub(crate) use signin::session_write_allowed;
pub use signin::{Caller, FormNoCheck, RequestMeta, SignInError};

use crate::auth::Verifier;
use crate::bitbucket::Bitbucket;
use crate::config::{Config, SelfServiceConfig};
use crate::lifecycle::Lifecycle;
use crate::ratelimit::RateQuota;
use crate::store::Store;
use crate::usage::UsageTracker;
use crate::vault::CredentialVault;

/// Where tokengate's own REST API lives.
pub const API_PREFIX: &str = "/rest/tokengate/";
/// Where the drop-in API of the app tokengate replaces lives.
pub const COMPAT_PREFIX: &str = "/rest/de.resolution.apitokenauth/";
/// How long a Bitbucket sign-in is trusted without asking again.
const SIGN_IN_TTL: Duration = Duration::from_secs(60);
/// Largest answer a self-service call gives (an audit export at most).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Everything a self-service call needs, shared by all proxy workers.
pub struct SelfService {
    pub(crate) config: SelfServiceConfig,
    pub(crate) directory: Arc<Directory>,
    pub(crate) bitbucket: Bitbucket,
    pub(crate) verifier: Arc<Verifier>,
    /// Token and credential changes (actor `self-service`, each naming the acting user).
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) store: Arc<dyn Store>,
    /// Users' stored Bitbucket credentials, to provision one where none works.
    pub(crate) vault: Option<Arc<CredentialVault>>,
    /// `auth.allowed_ips`.
    pub(crate) allowed_ips: Vec<IpNet>,
    /// `auth.max_lifetime_days`.
    pub(crate) max_lifetime_days: Option<u32>,
    /// `rate_limit.default`.
    pub(crate) default_quota: RateQuota,
    /// Who a Bitbucket credential belongs to, by a digest of it; successful answers only.
    pub(crate) signins: moka::future::Cache<[u8; 32], String>,
    /// Users whose Bitbucket credential is being provisioned now.
    pub(crate) provisioning: Mutex<HashSet<String>>,
    /// Last uses of tokens, shared with the proxy.
    pub(crate) usage: Arc<UsageTracker>,
}

/// What [`SelfService::new`] takes besides the config.
pub struct SelfServiceParts {
    pub directory: Arc<Directory>,
    pub verifier: Arc<Verifier>,
    pub lifecycle: Arc<Lifecycle>,
    pub store: Arc<dyn Store>,
    pub vault: Option<Arc<CredentialVault>>,
    /// The client settings for an `https://` Bitbucket.
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// Last uses of tokens, shared with the proxy: signing in here with a token is a use.
    pub usage: Arc<UsageTracker>,
}

impl SelfService {
    pub fn new(config: &Config, parts: SelfServiceParts) -> Self {
        Self {
            config: config.self_service.clone(),
            directory: parts.directory,
            bitbucket: Bitbucket::new(
                &config.upstream,
                parts.upstream_tls.as_ref(),
                config.self_service.bitbucket_credential.as_ref(),
            ),
            verifier: parts.verifier,
            lifecycle: parts.lifecycle,
            store: parts.store,
            vault: parts.vault,
            allowed_ips: config.auth.allowed_ips.clone(),
            max_lifetime_days: config.auth.max_lifetime_days,
            default_quota: config.rate_limit.default,
            signins: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(SIGN_IN_TTL)
                .build(),
            provisioning: Mutex::new(HashSet::new()),
            usage: parts.usage,
        }
    }

    /// The web pages' path (`self_service.path`).
    pub fn pages_path(&self) -> &str {
        &self.config.path
    }
}

/// The self-service listener side: which paths it takes, and running them.
#[derive(Clone)]
pub struct Edge {
    router: Router,
    /// The control runtime, which owns the store's connections.
    runtime: Handle,
    pages: String,
}

impl Edge {
    /// Serves `service` on `runtime`.
    pub fn new(service: Arc<SelfService>, runtime: Handle) -> Self {
        let pages = service.config.path.clone();
        let base = pages.clone();
        let router = api::routes()
            .merge(compat::routes())
            .merge(openapi::routes())
            .merge(crate::pages::routes(&pages))
            .fallback(move |uri: http::Uri| async move {
                if uri.path().starts_with(&base) {
                    crate::pages::not_found(&base)
                } else {
                    axum::response::IntoResponse::into_response(api::not_found().await)
                }
            })
            .with_state(service);
        Self {
            router,
            runtime,
            pages,
        }
    }

    /// Whether a request for `path` (as Bitbucket routes it) is self-service's.
    pub fn serves(&self, path: &str) -> bool {
        path.starts_with(API_PREFIX)
            || path.starts_with(COMPAT_PREFIX)
            || path.starts_with(&self.pages)
            || path == self.pages.trim_end_matches('/')
    }

    /// Answers a self-service request. Its body is read on the control runtime; the answer is
    /// complete when returned.
    pub async fn handle<B>(&self, request: Request<B>, meta: RequestMeta) -> Response<Full<Bytes>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let router = self.router.clone();
        let task = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let mut request = Request::from_parts(parts, axum::body::Body::new(body));
            request.extensions_mut().insert(meta);
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            match Limited::new(body, MAX_ANSWER_BYTES).collect().await {
                Ok(body) => Response::from_parts(parts, Full::new(body.to_bytes())),
                Err(e) => {
                    tracing::error!(target: "tokengate::selfservice", error = %e, "a self-service answer could not be completed");
                    internal_error()
                }
            }
        });
        task.await.unwrap_or_else(|e| {
            tracing::error!(target: "tokengate::selfservice", error = %e, "a self-service call did not complete");
            internal_error()
        })
    }
}

fn internal_error() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(
        br#"{"error":{"code":"internal","message":"The request could not be completed."}}"#,
    )));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
