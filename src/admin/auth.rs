//! The admin token check in front of every `/admin/v1` call (except the OpenAPI document):
//! `Authorization: Bearer <admin.token>`, compared in constant time. Without a configured
//! token every call is refused.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AdminState;
use super::error::ApiError;

/// Lets the request through only with the admin token.
pub(super) async fn require_admin_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    match check(state.admin_token.as_deref(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn check(expected: Option<&SecretString>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::unauthorized(
            "admin_token_unset",
            "the admin API is disabled until an admin token is configured: set admin.token in \
             the config file or TOKENGATE_ADMIN__TOKEN",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(presented) = presented else {
        return Err(ApiError::unauthorized(
            "unauthorized",
            "send the admin token as Authorization: Bearer <admin.token>",
        ));
    };
    // Comparing digests keeps the comparison constant-time in the token's length too.
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.expose_secret().as_bytes());
    if bool::from(a.ct_eq(&b)) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "unauthorized",
            "the admin token is not valid",
        ))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn accepts_only_the_configured_token() {
        let token = SecretString::from("0123456789abcdef");
        assert!(check(Some(&token), &headers("Bearer 0123456789abcdef")).is_ok());
        assert!(check(Some(&token), &headers("bearer 0123456789abcdef")).is_ok());
        for bad in [
            "Bearer 0123456789abcdeF",
            "Bearer 0123456789abcde",
            "Basic 0123456789abcdef",
            "0123456789abcdef",
            "Bearer ",
        ] {
            let e = check(Some(&token), &headers(bad)).unwrap_err();
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED, "{bad}");
        }
        assert!(check(Some(&token), &HeaderMap::new()).is_err());
        let unset = check(None, &headers("Bearer 0123456789abcdef")).unwrap_err();
        assert!(format!("{unset:?}").contains("TOKENGATE_ADMIN__TOKEN"));
    }
}
