//! Extractors that answer in the admin API's error shape instead of axum's default text:
//! [`AdminJson`] (strict JSON bodies, naming the field at fault), [`OptionalJson`] (the same,
//! or no body at all), [`AdminQuery`] and [`AdminPath`].

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::error::Category;

use super::error::ApiError;

/// The largest request body the admin API reads: a token's largest body (256 allowed
/// networks) is about a quarter of it.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// How much of a refused body is read (and dropped) before the refusal is sent, and for how
/// long at most. Closing a connection with request bytes still unread makes the kernel reset
/// it, and a client still sending would then lose the answer; a larger body is answered at once.
const DRAIN_BYTES: u64 = 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// A JSON body: `Content-Type: application/json` (415 otherwise), at most [`MAX_BODY_BYTES`]
/// (413 beyond), parsed strictly (the target types deny unknown fields).
pub(crate) struct AdminJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for AdminJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let declared = declared_length(&parts.headers);
        if !is_json(&parts.headers) {
            drain(body, declared, 0).await;
            return Err(unsupported_media_type());
        }
        let bytes = read_body(body, declared).await?;
        parse_json(&bytes).map(Self)
    }
}

/// As [`AdminJson`], for a call whose body may be left out: an empty body is `T::default()`,
/// whatever its content type.
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let json = is_json(&parts.headers);
        let bytes = read_body(body, declared_length(&parts.headers)).await?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if !json {
            return Err(unsupported_media_type());
        }
        parse_json(&bytes).map(Self)
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON, with Content-Type: application/json",
    )
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the body is larger than the {} KiB allowed",
            MAX_BODY_BYTES / 1024
        ),
    )
}

/// The `Content-Length` a request declares.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

/// The whole body, refused with 413 past [`MAX_BODY_BYTES`] (declared or sent).
async fn read_body(mut body: Body, declared: Option<u64>) -> Result<Bytes, ApiError> {
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        drain(body, declared, 0).await;
        return Err(too_large());
    }
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| ApiError::bad_request("invalid_body", "the body could not be read"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if read.len() + data.len() > MAX_BODY_BYTES {
            drain(body, declared, (read.len() + data.len()) as u64).await;
            return Err(too_large());
        }
        read.extend_from_slice(&data);
    }
    Ok(read.freeze())
}

/// Reads and drops what is left of a refused body, `seen` bytes of it read already, within
/// [`DRAIN_BYTES`] and [`DRAIN_TIME`].
async fn drain(mut body: Body, declared: Option<u64>, mut seen: u64) {
    if declared.is_some_and(|n| n > DRAIN_BYTES) {
        return;
    }
    let draining = async {
        while seen <= DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, draining).await;
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
