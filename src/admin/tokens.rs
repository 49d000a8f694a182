//! `/admin/v1/tokens`: create, list, show, change, rotate and revoke tokens.

use axum::Json;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::Utc;

use super::AdminState;
use super::cursor;
use super::error::{ApiError, ErrorBody};
use super::extract::{AdminJson, AdminPath, AdminQuery, OptionalJson};
use super::model::{CreateTokenRequest, ListParams, PatchTokenRequest, RotateRequest};
use crate::lifecycle::{CreatedToken, Origin, RotatedToken, TokenPage, TokenView};
use crate::store::TokenQuery;

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/v1/tokens", post(create).get(list))
        .route(
            "/admin/v1/tokens/{id}",
            get(show).patch(patch).delete(revoke),
        )
        .route("/admin/v1/tokens/{id}/rotate", post(rotate))
}

/// Create a token. The answer holds the secret (`token`), shown this once.
#[utoipa::path(
    post,
    path = "/admin/v1/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "Created; `token` is the secret, never shown again", body = CreatedToken),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 422, description = "A value is refused (`invalid_value`, `lifetime_exceeded`)", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(super) async fn create(
    State(state): State<AdminState>,
    Extension(origin): Extension<Origin>,
    AdminJson(body): AdminJson<CreateTokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let spec = body
        .into_spec()
        .map_err(crate::lifecycle::LifecycleError::from)?;
    let created: CreatedToken = state.lifecycle.create(spec, &origin, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List tokens, newest first, without secrets.
#[utoipa::path(
    get,
    path = "/admin/v1/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    params(ListParams),
    responses(
        (status = 200, description = "One page; follow `next_cursor` for the next", body = TokenPage),
        (status = 400, description = "A bad parameter (`invalid_query`, `invalid_cursor`)", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(super) async fn list(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<TokenPage>, ApiError> {
    let filter = params.check()?;
    let now = Utc::now();
    let query = TokenQuery {
        user: filter.user,
        state: filter.state,
        now,
        // One more than asked tells whether another page follows.
        limit: filter.limit + 1,
        after: filter.after,
    };
    let mut records = state.lifecycle.store().list_tokens(&query).await?;
    let more = records.len() > filter.limit as usize;
    records.truncate(filter.limit as usize);
    let next_cursor = records
        .last()
        .filter(|_| more)
        .map(|r| cursor::encode_token(r.created_at, &r.id));
    let tokens = records.iter().map(|r| TokenView::new(r, now)).collect();
    Ok(Json(TokenPage {
        tokens,
        next_cursor,
    }))
}

/// One token, whatever its state.
#[utoipa::path(
    get,
    path = "/admin/v1/tokens/{id}",
    operation_id = "get_token",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, body = TokenView),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No token has this id", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(super) async fn show(
    State(state): State<AdminState>,
    AdminPath(id): AdminPath<String>,
) -> Result<Json<TokenView>, ApiError> {
    let record = state.lifecycle.get(&id).await?;
    Ok(Json(TokenView::new(&record, Utc::now())))
}

/// Change a token's description, expiry, allowed IPs or rate limit.
#[utoipa::path(
    patch,
    path = "/admin/v1/tokens/{id}",
    operation_id = "patch_token",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    request_body = PatchTokenRequest,
    responses(
        (status = 200, description = "The changed token", body = TokenView),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No token has this id", body = ErrorBody),
        (status = 409, description = "The token is revoked (`token_revoked`)", body = ErrorBody),
        (status = 422, description = "A value is refused, or the patch is empty (`empty_patch`)", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(super) async fn patch(
    State(state): State<AdminState>,
    Extension(origin): Extension<Origin>,
    AdminPath(id): AdminPath<String>,
    AdminJson(body): AdminJson<PatchTokenRequest>,
) -> Result<Json<TokenView>, ApiError> {
    let patch = body
        .into_patch()
        .map_err(crate::lifecycle::LifecycleError::from)?;
    let now = Utc::now();
    let record = state.lifecycle.patch(&id, patch, &origin, now).await?;
    Ok(Json(TokenView::new(&record, now)))
}

/// Revoke a token. The record stays (state `revoked`); revoking again changes nothing.
#[utoipa::path(
    delete,
    path = "/admin/v1/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked (or already revoked)"),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No token has this id", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(super) async fn revoke(
    State(state): State<AdminState>,
    Extension(origin): Extension<Origin>,
    AdminPath(id): AdminPath<String>,
) -> Result<StatusCode, ApiError> {
    state.lifecycle.revoke(&id, &origin, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a token: a new token (new id and secret, shown this once) with the old one's owner,
/// description, scope, expiry, allowed IPs and rate limit. The old token keeps working for
/// `grace_seconds` (default 0: revoked at once), then stops on every gateway.
#[utoipa::path(
    post,
    path = "/admin/v1/tokens/{id}/rotate",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    request_body(content = Option<RotateRequest>, description = "May be left out: no grace"),
    responses(
        (status = 201, description = "Rotated; `token` is the new secret, never shown again, and `replaces` the old token as it is now", body = RotatedToken),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 404, description = "No token has this id", body = ErrorBody),
        (status = 409, description = "The token is revoked (`token_revoked`), expired (`token_expired`) or rotated already (`token_replaced`)", body = ErrorBody),
        (status = 422, description = "The grace is too long, or the token breaks the lifetime policy", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(super) async fn rotate(
    State(state): State<AdminState>,
    Extension(origin): Extension<Origin>,
    AdminPath(id): AdminPath<String>,
    OptionalJson(body): OptionalJson<RotateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let rotated = state
        .lifecycle
        .rotate(&id, body.grace(), &origin, Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(rotated)))
}
