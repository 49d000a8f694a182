//! The pages' stylesheet and script, built into the binary and served from the pages' own
//! path. Their URLs carry a digest of the content, so a browser may keep them for a year and
//! still gets a changed file after an upgrade.

use std::sync::LazyLock;

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One served file.
pub(super) struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// The first 16 hex digits of the content's SHA-256.
    digest: LazyLock<String>,
}

fn digest_of(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

const CSS_BODY: &[u8] = include_bytes!("../../assets/tokengate.css");
const JS_BODY: &[u8] = include_bytes!("../../assets/tokengate.js");

pub(super) static CSS: Asset = Asset {
    name: "tokengate.css",
    content_type: "text/css; charset=utf-8",
    body: CSS_BODY,
    digest: LazyLock::new(|| digest_of(CSS_BODY)),
};

pub(super) static JS: Asset = Asset {
    name: "tokengate.js",
    content_type: "text/javascript; charset=utf-8",
    body: JS_BODY,
    digest: LazyLock::new(|| digest_of(JS_BODY)),
};

/// Where a page links `asset`.
pub(super) fn url(base: &str, asset: &Asset) -> String {
    format!("{base}assets/{}?v={}", asset.name, *asset.digest)
}

/// `GET {path}assets/{file}`: the file, cached for a year when asked for by its current digest,
/// briefly otherwise; `304` when the browser's copy is current.
pub(super) async fn serve(
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = [&CSS, &JS].into_iter().find(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, "No such file.").into_response();
    };
    let etag = format!("\"{}\"", *asset.digest);
    let current = query.as_deref() == Some(&format!("v={}", *asset.digest));
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}
