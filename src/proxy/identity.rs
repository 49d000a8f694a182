//! Whom an allowed request goes to Bitbucket as: the token's user in the identity header, or
//! the user's own stored credential as `Authorization`.

use std::cell::RefCell;

use compact_str::CompactString;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::Gateway;
use super::report::{NoCredential, Reported, report_no_credential};
use super::respond::{self, ProxyBody};
use crate::token::TokenRecord;
use crate::vault::Upstream;

/// The identity header naming the token's user, with `upstream.identity = "header"`; `None`
/// when a header cannot carry the name ([`unsendable_user`]).
pub(super) fn identity_value(
    gateway: &Gateway,
    token: &TokenRecord,
) -> Option<(HeaderName, HeaderValue)> {
    Some((gateway.identity_header.clone(), user_value(&token.user)?))
}

/// The answer to a request whose token's user name a header cannot carry.
pub(super) fn unsendable_user() -> Response<ProxyBody> {
    respond::error(
        StatusCode::BAD_REQUEST,
        "The token's user name cannot be sent to Bitbucket.",
    )
}

thread_local! {
    /// The user this thread sent in the identity header last, and the header's value: a
    /// token's requests come one after another, and a clone shares the value's bytes.
    static USER_VALUE: RefCell<Option<(CompactString, HeaderValue)>> = const { RefCell::new(None) };
}

/// `user` as a header value; `None` when a header cannot carry it.
fn user_value(user: &str) -> Option<HeaderValue> {
    USER_VALUE.with_borrow_mut(|last| match last {
        Some((known, value)) if known == user => Some(value.clone()),
        _ => {
            let value = HeaderValue::from_str(user).ok()?;
            *last = Some((user.into(), value.clone()));
            Some(value)
        }
    })
}

/// The user's own credential as `Authorization`, with `upstream.identity = "credential"`. An
/// error is the finished refusal.
pub(super) async fn credential_value(
    gateway: &Gateway,
    token: &TokenRecord,
    reported: &Reported<'_>,
) -> Result<(HeaderName, HeaderValue), Response<ProxyBody>> {
    let vault = gateway
        .credentials
        .as_ref()
        .expect("credential identity has a vault");
    let (outcome, why, refusal) = match vault.get(&token.user).await {
        Ok(Upstream::Usable(value)) => return Ok((AUTHORIZATION, value)),
        Ok(Upstream::Unsendable) => {
            return Err(respond::error(
                StatusCode::BAD_GATEWAY,
                "The stored Bitbucket credential cannot be used.",
            ));
        }
        Ok(Upstream::Missing) => (
            "no_upstream_credential",
            NoCredential::Missing,
            "No Bitbucket credential is stored for this token's user; signing in to tokengate once with Bitbucket provisions one where that is enabled, otherwise an administrator must set one.",
        ),
        Ok(Upstream::Refused) => (
            "upstream_credential_refused",
            NoCredential::Refused,
            "Bitbucket refused the stored credential of this token's user; it is replaced at the user's next sign-in to tokengate with Bitbucket, or by an administrator.",
        ),
        Err(e) => {
            gateway.metrics.count_request("credential_unavailable");
            tracing::warn!(target: "tokengate::proxy", error = %e, "opening the stored credential failed");
            return Err(respond::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The Bitbucket credential for this token's user cannot be read right now.",
            ));
        }
    };
    gateway.metrics.count_request(outcome);
    report_no_credential(gateway, token, reported, why);
    Err(respond::unauthorized(None, refusal))
}

#[cfg(test)]
mod tests {
    use super::user_value;

    #[test]
    fn a_user_is_a_header_value_unless_a_header_cannot_carry_it() {
        assert_eq!(user_value("alice").unwrap(), "alice");
        assert_eq!(user_value("alice").unwrap(), "alice");
        assert_eq!(user_value("bob").unwrap(), "bob");
        assert!(user_value("eve\r\nX-Admin: 1").is_none());
        assert_eq!(user_value("bob").unwrap(), "bob");
    }
}
