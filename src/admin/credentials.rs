//! `PUT /admin/v1/users/{user}/credential`: stores a user's Bitbucket credential, sealed, for
//! `upstream.identity = "credential"`. The credential is never echoed or logged.

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::routing::put;
use chrono::Utc;

use super::AdminState;
use super::error::{ApiError, ErrorBody};
use super::extract::{AdminJson, AdminPath};
use super::model::SetCredentialRequest;
use crate::lifecycle::Origin;

pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/admin/v1/users/{user}/credential", put(set_credential))
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
