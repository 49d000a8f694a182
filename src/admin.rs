//! The admin listener: health, readiness and metrics without credentials, and the admin REST
//! API under `/admin/v1` behind the admin token.

mod health;

use std::sync::Arc;

use axum::Router;
use secrecy::SecretString;

use crate::auth::Verifier;
use crate::credential::CredentialVault;
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::store::TokenStore;

/// State shared by admin handlers.
#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<dyn TokenStore>,
    pub metrics: Arc<Metrics>,
    pub gateway: Arc<Gateway>,
    pub verifier: Arc<Verifier>,
    /// `admin.token`; without one every admin call is refused.
    pub admin_token: Option<Arc<SecretString>>,
    pub credentials: Option<Arc<CredentialVault>>,
    /// Reads the log writer's dropped-line count.
    pub log_drops: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// The admin listener's routes.
pub fn router(state: AdminState) -> Router {
    health::routes().with_state(state)
}
