//! The admin API's one error type: every refusal answers `{"error":{"code","message"}}` with a
//! 4xx for the caller's mistakes, 503 when the store is down and 500 for our own faults. Store
//! failures are logged here, once; their internal text never reaches the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::lifecycle::LifecycleError;
use crate::store::StoreError;

/// An answer other than success.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Machine-readable: `malformed_json`, `invalid_field`, `invalid_value`, `lifetime_exceeded`,
    /// `empty_patch`, `invalid_query`, `invalid_cursor`, `not_found`, `token_revoked`,
    /// `token_expired`, `token_replaced`,
    /// `credential_key_missing`, `unauthorized`, `admin_token_unset`, `store_unavailable`, …
    #[schema(example = "invalid_value")]
    code: String,
    /// For people: names the field and what is wrong with it.
    #[schema(example = "allowed_ips[0]: \"10.0.0.0/33\" is neither an IP address nor a CIDR")]
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request cannot be read.
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no valid admin token.
    pub(crate) fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// What went wrong, for people.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tokengate admin\""),
            );
        }
        response
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        let message = e.to_string();
        match e {
            LifecycleError::Invalid(invalid) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, invalid.code, message)
            }
            LifecycleError::EmptyPatch => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "empty_patch", message)
            }
            LifecycleError::NotFound(_) => Self::not_found(message),
            LifecycleError::Revoked(_) => Self::new(StatusCode::CONFLICT, "token_revoked", message),
            LifecycleError::Expired(_) => Self::new(StatusCode::CONFLICT, "token_expired", message),
            LifecycleError::Replaced { .. } => {
                Self::new(StatusCode::CONFLICT, "token_replaced", message)
            }
            LifecycleError::NoCredential(_) => Self::not_found(message),
            LifecycleError::NoCredentialKey => {
                Self::new(StatusCode::CONFLICT, "credential_key_missing", message)
            }
            LifecycleError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(target: "tokengate::admin", error = %e, "admin request failed: store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the token store is unavailable; try again later",
                )
            }
            StoreError::Conflict => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "a record with this key already exists; try again",
            ),
            e => {
                tracing::error!(target: "tokengate::admin", error = %e, "admin request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the gateway log has the details",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn answer(e: ApiError) -> (StatusCode, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn store_failures_never_show_their_text() {
        let down = StoreError::Unavailable(sqlx::Error::Protocol("secret internal detail".into()));
        let (status, body) = answer(LifecycleError::Store(down).into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "store_unavailable");
        let corrupt = StoreError::Corrupt {
            column: "scope",
            detail: "secret internal detail".into(),
        };
        let (status, body) = answer(corrupt.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("secret internal detail"));
    }

    #[tokio::test]
    async fn lifecycle_refusals_map_to_4xx() {
        let invalid = crate::lifecycle::Invalid::new("allowed_ips[0]", "bad");
        let (status, body) = answer(LifecycleError::from(invalid).into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "invalid_value", "message": "allowed_ips[0]: bad"}})
        );
        let (status, _) = answer(LifecycleError::EmptyPatch.into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = answer(LifecycleError::NoCredentialKey.into()).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, body) = answer(LifecycleError::NotFound("\"x\"".into()).into()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
    }
}
