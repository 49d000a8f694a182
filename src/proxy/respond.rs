//! Responses the gateway writes itself, in Bitbucket's REST error shape
//! `{"errors":[{"context":null,"message":"…","exceptionName":null}]}`.

use std::cell::RefCell;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

use crate::auth::Scheme;
use crate::ratelimit::{RateStatus, ceil_seconds};

/// The body type of every proxy response.
pub(super) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Wraps bytes as a [`ProxyBody`].
pub(super) fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Bitbucket's error body, fields in Bitbucket's order.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    errors: [ErrorEntry<'a>; 1],
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorEntry<'a> {
    context: Option<&'a str>,
    message: &'a str,
    exception_name: Option<&'a str>,
}

/// A response in Bitbucket's error shape.
pub(super) fn error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = ErrorBody {
        errors: [ErrorEntry {
            context: None,
            message,
            exception_name: None,
        }],
    };
    let body = serde_json::to_string(&body).expect("serialising strings cannot fail");
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    response
}

/// 401 with the `WWW-Authenticate` challenge of the scheme that was used.
pub(super) fn unauthorized(scheme: Option<Scheme>, message: &str) -> Response<ProxyBody> {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    let challenge = match scheme {
        Some(Scheme::Bearer) => r#"Bearer realm="tokengate", error="invalid_token""#,
        Some(Scheme::Basic) | None => r#"Basic realm="tokengate""#,
    };
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

/// 403 for a read-only token used for a write.
pub(super) fn insufficient_scope(message: &str) -> Response<ProxyBody> {
    let mut response = error(StatusCode::FORBIDDEN, message);
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="tokengate", error="insufficient_scope""#),
    );
    response
}

/// 429 with `Retry-After` (whole seconds, rounded up).
pub(super) fn too_many_requests(message: &str, retry_after: Duration) -> Response<ProxyBody> {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, message);
    response.headers_mut().insert(
        RETRY_AFTER,
        HeaderValue::from(ceil_seconds(retry_after).max(1)),
    );
    response
}

/// Adds `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
pub(super) fn add_rate_headers<B>(response: &mut Response<B>, status: &RateStatus) {
    const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
    const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
    let headers = response.headers_mut();
    // Room for these and `X-AREQUESTID` at once: an upstream's answer comes with room for
    // its own headers only, and each time the map grows it places every name again.
    headers.reserve(4);
    let [limit, remaining, reset] = numbers([
        u64::from(status.limit),
        u64::from(status.remaining),
        ceil_seconds(status.reset),
    ]);
    headers.insert(LIMIT, limit);
    headers.insert(REMAINING, remaining);
    headers.insert(RESET, reset);
}

thread_local! {
    /// The value each `RateLimit-*` header had last on this thread: a token's limit, and
    /// mostly its reset, repeat from one answer to the next, and a clone shares the bytes.
    static LAST_NUMBERS: RefCell<[Option<(u64, HeaderValue)>; 3]> =
        const { RefCell::new([None, None, None]) };
}

/// `ns` as header values, each remembered for the next answer.
fn numbers(ns: [u64; 3]) -> [HeaderValue; 3] {
    LAST_NUMBERS.with_borrow_mut(|last| {
        std::array::from_fn(|slot| match &last[slot] {
            Some((known, value)) if *known == ns[slot] => value.clone(),
            _ => {
                let value = HeaderValue::from(ns[slot]);
                last[slot] = Some((ns[slot], value.clone()));
                value
            }
        })
    })
}
