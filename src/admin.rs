//! The admin listener: health, readiness and metrics without credentials, and the admin REST
//! API under `/admin/v1` behind the admin token.

pub(crate) mod audit;
mod auth;
mod credentials;
pub(crate) mod cursor;
pub(crate) mod error;
pub(crate) mod extract;
mod health;
pub(crate) mod model;
pub(crate) mod openapi;
mod origin;
mod tokens;

pub use openapi::{ApiDoc, openapi_document};

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;

use crate::audit::AuditSink;
use crate::auth::Verifier;
use crate::lifecycle::Lifecycle;
use crate::metrics::{Metrics, StatusLabel};
use crate::request_id::RequestIds;
use crate::store::Store;
use crate::vault::CredentialVault;

/// State shared by admin handlers.
#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// Request ids and the proxy's in-flight count.
    pub requests: Arc<RequestIds>,
    pub verifier: Arc<Verifier>,
    /// `admin.token`; without one every admin call is refused.
    pub admin_token: Option<Arc<SecretString>>,
    pub credentials: Option<Arc<CredentialVault>>,
    /// Reads the log writer's dropped-line count.
    pub log_drops: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// The audit trail's queue.
    pub audit: AuditSink,
    /// Token and credential changes (actor `admin-api`), with audit, cache invalidation and
    /// metrics.
    pub lifecycle: Arc<Lifecycle>,
}

/// The admin listener's routes.
pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .merge(tokens::routes())
        .merge(credentials::routes())
        .merge(audit::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin_token,
        ));
    health::routes()
        .merge(openapi::routes())
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Around every route and both fallbacks, so each `/admin/` answer has its request id:
        // the OpenAPI document, a 404 and a 405 as well as the authenticated calls.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            origin::identify,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_admin_requests,
        ))
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("nothing exists at this path")
}

async fn method_not_allowed() -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not answer this method",
    )
}

/// Counts every `/admin/` answer by status (`tokengate_admin_requests_total`).
async fn count_admin_requests(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let counted = request.uri().path().starts_with("/admin/");
    let response = next.run(request).await.into_response();
    if counted {
        let status = response.status().as_u16();
        state
            .metrics
            .admin_requests
            .get_or_create(&StatusLabel { status })
            .inc();
    }
    response
}
