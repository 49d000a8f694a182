//! `/rest/tokengate/1.0`: tokengate's self-service REST API, JSON in and out, in the admin
//! API's error shape.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use super::ops::CreateInput;
use super::{Asked, Caller, Me, SelfService};
use crate::admin::error::{ApiError, ErrorBody};
use crate::admin::extract::{AdminJson, AdminPath, AdminQuery, OptionalJson};
use crate::admin::model::{ListParams, PatchTokenRequest, RateLimitBody, RotateRequest};
use crate::lifecycle::{self, CreatedToken, LifecycleError, RotatedToken, TokenPage, TokenView};
use crate::token::Scope;

pub(super) fn routes() -> Router<Arc<SelfService>> {
    Router::new()
        .route("/rest/tokengate/1.0/me", get(me))
        .route("/rest/tokengate/1.0/tokens", get(list).post(create))
        .route(
            "/rest/tokengate/1.0/tokens/{id}",
            get(show).patch(patch).delete(revoke),
        )
        .route("/rest/tokengate/1.0/tokens/{id}/rotate", post(rotate))
}

pub(super) async fn not_found() -> ApiError {
    ApiError::not_found("nothing exists at this path")
}

/// `POST /rest/tokengate/1.0/tokens`: the admin API's create body, `user` optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelfCreateRequest {
    /// For whom; the caller when absent. Another user needs the token manager right.
    #[serde(default)]
    user: Option<String>,
    /// Names the token in log lines: 1–255 characters, no control characters.
    description: String,
    /// `read-only` (the default) or `read-write`, within the caller's limits.
    #[serde(default)]
    #[schema(value_type = Option<Scope>)]
    scope: Option<String>,
    /// RFC 3339; absent for the latest allowed (see `GET /me`).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// CIDRs or addresses; absent for those of the token signed in with (or any).
    #[serde(default)]
    allowed_ips: Option<Vec<String>>,
    /// The token's own quota; absent for `rate_limit.default`.
    #[serde(default)]
    rate_limit: Option<RateLimitBody>,
}

impl SelfCreateRequest {
    fn into_input(self) -> Result<CreateInput, lifecycle::Invalid> {
        Ok(CreateInput {
            user: self.user,
            description: self.description,
            asked: Asked {
                scope: self
                    .scope
                    .as_deref()
                    .map(lifecycle::parse_scope)
                    .transpose()?,
                expires_at: self
                    .expires_at
                    .as_deref()
                    .map(lifecycle::parse_expires_at)
                    .transpose()?,
                allowed_ips: self
                    .allowed_ips
                    .map(|ips| lifecycle::parse_allowed_ips(&ips))
                    .transpose()?,
            },
            rate_limit: self.rate_limit.map(RateLimitBody::quota).transpose()?,
        })
    }
}

/// Who the caller is, their rights and the limits that apply.
#[utoipa::path(
    get,
    path = "/rest/tokengate/1.0/me",
    tag = "self-service",
    responses(
        (status = 200, body = Me),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "Bitbucket cannot be reached", body = ErrorBody),
    )
)]
pub(crate) async fn me(State(service): State<Arc<SelfService>>, caller: Caller) -> Json<Me> {
    Json(service.me(&caller))
}

/// The caller's tokens, newest first, without secrets; everyone's with the manager right.
#[utoipa::path(
    get,
    path = "/rest/tokengate/1.0/tokens",
    tag = "self-service",
    params(ListParams),
    responses(
        (status = 200, body = TokenPage),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Another user's tokens without the manager right", body = ErrorBody),
        (status = 503, description = "Bitbucket or the store cannot be reached", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<TokenPage>, ApiError> {
    let filter = params.check()?;
    let mut records = service
        .list(
            &caller,
            filter.user,
            filter.state,
            filter.limit + 1,
            filter.after,
        )
        .await?;
    let more = records.len() > filter.limit as usize;
    records.truncate(filter.limit as usize);
    let next_cursor = records
        .last()
        .filter(|_| more)
        .map(|r| crate::admin::cursor::encode_token(r.created_at, &r.id));
    let now = Utc::now();
    Ok(Json(TokenPage {
        tokens: records.iter().map(|r| TokenView::new(r, now)).collect(),
        next_cursor,
    }))
}

/// Create a token; the answer holds the secret (`token`), shown this once.
#[utoipa::path(
    post,
    path = "/rest/tokengate/1.0/tokens",
    tag = "self-service",
    request_body = SelfCreateRequest,
    responses(
        (status = 201, body = CreatedToken),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No right to create this token, or a session write without its XSRF headers", body = ErrorBody),
        (status = 422, description = "A value is refused or broader than allowed", body = ErrorBody),
        (status = 503, description = "Bitbucket or the store cannot be reached", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    AdminJson(body): AdminJson<SelfCreateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let input = body.into_input().map_err(LifecycleError::from)?;
    let created = service.create(&caller, input, Scope::ReadOnly).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One of the caller's tokens (anyone's with the manager right).
#[utoipa::path(
    get,
    path = "/rest/tokengate/1.0/tokens/{id}",
    operation_id = "get_token",
    tag = "self-service",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, body = TokenView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No token of the caller's has this id", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    AdminPath(id): AdminPath<String>,
) -> Result<Json<TokenView>, ApiError> {
    let record = service.token(&caller, &id).await?;
    Ok(Json(TokenView::new(&record, Utc::now())))
}

/// Change a token's description, expiry, allowed IPs or rate limit.
#[utoipa::path(
    patch,
    path = "/rest/tokengate/1.0/tokens/{id}",
    tag = "self-service",
    params(("id" = String, Path, description = "The token's id")),
    request_body = PatchTokenRequest,
    responses(
        (status = 200, body = TokenView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Signed in with a read-only token, or no right", body = ErrorBody),
        (status = 404, description = "No token of the caller's has this id", body = ErrorBody),
        (status = 409, description = "The token is revoked", body = ErrorBody),
        (status = 422, description = "A value is refused or broader than allowed", body = ErrorBody),
    )
)]
pub(crate) async fn patch(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    AdminPath(id): AdminPath<String>,
    AdminJson(body): AdminJson<PatchTokenRequest>,
) -> Result<Json<TokenView>, ApiError> {
    let patch = body.into_patch().map_err(LifecycleError::from)?;
    let record = service.patch(&caller, &id, patch).await?;
    Ok(Json(TokenView::new(&record, Utc::now())))
}

/// Revoke a token; revoking again changes nothing.
#[utoipa::path(
    delete,
    path = "/rest/tokengate/1.0/tokens/{id}",
    tag = "self-service",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Signed in with a read-only token", body = ErrorBody),
        (status = 404, description = "No token of the caller's has this id", body = ErrorBody),
    )
)]
pub(crate) async fn revoke(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    AdminPath(id): AdminPath<String>,
) -> Result<StatusCode, ApiError> {
    service.revoke(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a token: a new token (new secret, shown this once) with everything else of the old
/// one, which keeps working for `grace_seconds` (default 0: revoked at once).
#[utoipa::path(
    post,
    path = "/rest/tokengate/1.0/tokens/{id}/rotate",
    tag = "self-service",
    params(("id" = String, Path, description = "The token's id")),
    request_body(content = Option<RotateRequest>, description = "May be left out: no grace"),
    responses(
        (status = 201, body = RotatedToken),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Signed in with a read-only token other than this one, or no right", body = ErrorBody),
        (status = 404, description = "No token of the caller's has this id", body = ErrorBody),
        (status = 409, description = "The token is revoked or expired", body = ErrorBody),
        (status = 422, description = "The grace is too long, or the token is broader than the caller may create", body = ErrorBody),
    )
)]
pub(crate) async fn rotate(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    AdminPath(id): AdminPath<String>,
    OptionalJson(body): OptionalJson<RotateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let rotated = service.rotate(&caller, &id, body.grace()).await?;
    Ok((StatusCode::CREATED, Json(rotated)))
}
