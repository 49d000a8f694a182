//! Extractors that answer in the admin API's error shape instead of axum's default text:
//! [`AdminJson`] (strict JSON bodies, naming the field at fault), [`OptionalJson`] (the same,
//! or no body at all), [`AdminQuery`] and [`AdminPath`].

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::error::Category;

use super::error::ApiError;

/// A JSON body: `Content-Type: application/json`, parsed strictly (the target types deny
/// unknown fields).
pub(crate) struct AdminJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for AdminJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::bad_request(
                "unsupported_media_type",
                "send the body as JSON, with Content-Type: application/json",
            ));
        }
        // Too large or unreadable: either way bad input, answered 400 as the contract says.
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::bad_request(
                    "payload_too_large",
                    "the body is larger than the 2 MB allowed",
                )
            } else {
                ApiError::bad_request("invalid_body", "the body could not be read")
            }
        })?;
        parse_json(&bytes).map(Self)
    }
}

/// As [`AdminJson`], for a call whose body may be left out: an empty body is `T::default()`.
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::bad_request(
                    "payload_too_large",
                    "the body is larger than the 2 MB allowed",
                )
            } else {
                ApiError::bad_request("invalid_body", "the body could not be read")
            }
        })?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if !json {
            return Err(ApiError::bad_request(
                "unsupported_media_type",
                "send the body as JSON, with Content-Type: application/json",
            ));
        }
        parse_json(&bytes).map(Self)
    }
}

/// Parses a whole JSON document into `T`, naming the path of a value that does not fit. The
/// document must be an object: serde's derived struct deserializer would also take an array of
/// the fields in order.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first.is_some_and(|b| *b != b'{') {
        // Valid JSON of another kind is a body of the wrong shape; anything else is malformed.
        serde_json::from_slice::<IgnoredAny>(bytes).map_err(|e| json_error(".", &e))?;
        return Err(ApiError::bad_request(
            "invalid_field",
            "the body must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(&path, &inner)
    })?;
    de.end().map_err(|e| json_error(".", &e))?;
    Ok(value)
}

fn json_error(path: &str, e: &serde_json::Error) -> ApiError {
    match e.classify() {
        Category::Data => {
            let message = if path == "." {
                e.to_string()
            } else {
                format!("{path}: {e}")
            };
            ApiError::bad_request("invalid_field", message)
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A query string, refused with `invalid_query` when it has unknown or repeated parameters.
pub(crate) struct AdminQuery<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for AdminQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(q)| Self(q))
            .map_err(|e| {
                let text = e.body_text();
                let text = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::bad_request(
                    "invalid_query",
                    format!("the query string is not valid: {text}"),
                )
            })
    }
}

/// Path parameters; a path that cannot be decoded names nothing, so it is a 404.
pub(crate) struct AdminPath<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for AdminPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Self(p))
            .map_err(|_| ApiError::not_found("nothing exists at this path"))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        user: String,
        rate_limit: Option<Limit>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limit {
        requests: u64,
    }

    fn refusal(body: &str) -> String {
        let e = parse_json::<Body>(body.as_bytes()).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        format!("{e:?}")
    }

    #[test]
    fn names_the_field_at_fault() {
        assert!(refusal(r#"{"user": 5}"#).contains("user: invalid type"));
        assert!(
            refusal(r#"{"user": "a", "rate_limit": {"requests": -1}}"#)
                .contains("rate_limit.requests")
        );
        assert!(refusal(r#"{"user": "a", "extra": 1}"#).contains("unknown field `extra`"));
        assert!(refusal("{}").contains("missing field `user`"));
        assert!(refusal(r#"{"user": "a"} x"#).contains("malformed_json"));
        assert!(refusal(r#"{"user": "#).contains("malformed_json"));
    }

    #[test]
    fn the_body_must_be_an_object() {
        for body in [r#"["a", null]"#, "[]", r#"  "a""#, "5", "null", "true"] {
            let message = refusal(body);
            assert!(
                message.contains("invalid_field") && message.contains("must be a JSON object"),
                "{body}: {message}"
            );
        }
        for body in ["", "  ", "[", "x", "nul"] {
            assert!(refusal(body).contains("malformed_json"), "{body}");
        }
        assert!(parse_json::<Body>(br#" {"user": "a"}"#).is_ok());
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            h.insert(header::CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_json(&h), json, "{value}");
        }
    }
}
