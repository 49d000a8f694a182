//! `/admin/v1/credentials` and `/admin/v1/users/{user}/credential`: list the users whose
//! Bitbucket credential is stored (for `upstream.identity = "credential"`), store one sealed,
//! or delete one. A credential is never echoed or logged.

use axum::Json;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use chrono::Utc;

use super::AdminState;
use super::error::{ApiError, ErrorBody};
use super::extract::{AdminJson, AdminPath};
use super::model::SetCredentialRequest;
use crate::lifecycle::{CredentialList, CredentialView, Origin};

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/v1/credentials", get(list_credentials))
        .route(
            "/admin/v1/users/{user}/credential",
            put(set_credential).delete(delete_credential),
        )
}

/// Store (or replace) a user's Bitbucket credential. Needs `upstream.credential_key`.
#[utoipa::path(
    put,
    path = "/admin/v1/users/{user}/credential",
    tag = "credentials",
    params(("user" = String, Path, description = "The Bitbucket user name")),
    request_body = SetCredentialRequest,
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 409, description = "No `upstream.credential_key` is configured (`credential_key_missing`)", body = ErrorBody),
        (status = 422, description = "The user name or credential is refused", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(super) async fn set_credential(
    State(state): State<AdminState>,
    Extension(origin): Extension<Origin>,
    AdminPath(user): AdminPath<String>,
    AdminJson(body): AdminJson<SetCredentialRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .lifecycle
        .set_credential(&user, &body.credential, &origin, Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The users with a stored Bitbucket credential, by user name: when it was set or
/// provisioned, and whether Bitbucket refused it. Never the credential.
#[utoipa::path(
    get,
    path = "/admin/v1/credentials",
    tag = "credentials",
    responses(
        (status = 200, body = CredentialList),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(super) async fn list_credentials(
    State(state): State<AdminState>,
) -> Result<Json<CredentialList>, ApiError> {
    let stored = state.lifecycle.store().list_credentials().await?;
    Ok(Json(CredentialList {
        credentials: stored.iter().map(CredentialView::from).collect(),
    }))
}

/// Delete a user's stored Bitbucket credential. Running gateways drop their cached copy
/// within a second.
#[utoipa::path(
    delete,
    path = "/admin/v1/users/{user}/credential",
    tag = "credentials",
    params(("user" = String, Path, description = "The Bitbucket user name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No credential is stored for this user", body = ErrorBody),
        (status = 422, description = "The user name is refused", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(super) async fn delete_credential(
    State(state): State<AdminState>,
    Extension(origin): Extension<Origin>,
    AdminPath(user): AdminPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .lifecycle
        .delete_credential(&user, &origin, Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
