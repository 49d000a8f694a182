//! The NDJSON and CSV exports: the matching events (at most `limit` of them, when given), read
//! from the store a page at a time and
//! written to the response as each page arrives, so an export of millions of events never sits
//! in memory. The first page is read before the answer starts, so a store that fails at once
//! gets the admin API's error answer; a failure after that ends the body early (the status is
//! already sent).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{StreamExt, stream};

use super::{AuditEventView, Format};
use crate::admin::error::ApiError;
use crate::audit::{AuditQuery, StoredAuditEvent};
use crate::store::{AuditStore, StoreError};

/// Events read from the store per page.
const PAGE: u32 = 1_000;

/// The CSV columns.
pub(crate) const CSV_HEADER: &str = "id,time,type,outcome,user,token_id,client_ip,method,path,request_id,node_id,actor,attributes\r\n";

/// Streams every event `query` matches, from its cursor on, as `format` (not `Json`).
pub(crate) async fn stream(
    store: Arc<dyn AuditStore>,
    query: AuditQuery,
    format: Format,
) -> Result<Response, ApiError> {
    stream_limited(store, query, format, None).await
}

/// Streams the events `query` matches, from its cursor on, as `format` (not `Json`): at most
/// `limit` of them, or every one.
pub(crate) async fn stream_limited(
    store: Arc<dyn AuditStore>,
    mut query: AuditQuery,
    format: Format,
    limit: Option<u32>,
) -> Result<Response, ApiError> {
    let mut left = Left(limit.map(u64::from));
    query.limit = left.page();
    let first = store.query_audit(&query).await?;
    let rest = next_query(query, &first, &mut left).map(|q| (q, left));
    let head = (format == Format::Csv).then(|| Bytes::from_static(CSV_HEADER.as_bytes()));
    let first = stream::iter(
        head.into_iter()
            .chain((!first.is_empty()).then(|| render(first, format)))
            .map(Ok::<_, StoreError>),
    );
    let pages = stream::unfold(rest, move |next| {
        let store = Arc::clone(&store);
        async move {
            let (query, mut left) = next?;
            match store.query_audit(&query).await {
                Ok(page) => {
                    let next = next_query(query, &page, &mut left).map(|q| (q, left));
                    (!page.is_empty()).then(|| (Ok(render(page, format)), next))
                }
                Err(e) => {
                    tracing::warn!(target: "tokengate::admin", error = %e, "audit export cut short: the store failed");
                    Some((Err(e), None))
                }
            }
        }
    });
    let body = Body::from_stream(first.chain(pages));
    let content_type = match format {
        Format::Csv => CSV_CONTENT_TYPE,
        _ => NDJSON_CONTENT_TYPE,
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    if format == Format::Csv {
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"tokengate-audit.csv\""),
        );
    }
    Ok(response)
}

/// The content type of a CSV export.
pub(crate) const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";
/// The content type of an NDJSON export.
pub(crate) const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

/// How many more events an export may hold; `None` for every match.
#[derive(Debug, Clone, Copy)]
struct Left(Option<u64>);

impl Left {
    /// The size of the next page read from the store.
    fn page(self) -> u32 {
        self.0.map_or(PAGE, |left| {
            u32::try_from(left.min(u64::from(PAGE))).unwrap_or(PAGE)
        })
    }
}

/// The query of the page after `page`, or none when `page` was the last (a short page, or the
/// one that reached the limit).
fn next_query(
    mut query: AuditQuery,
    page: &[StoredAuditEvent],
    left: &mut Left,
) -> Option<AuditQuery> {
    let last = page.last().filter(|_| page.len() == query.limit as usize)?;
    if let Some(n) = &mut left.0 {
        *n = n.saturating_sub(page.len() as u64);
        if *n == 0 {
            return None;
        }
    }
    query.limit = left.page();
    query.after = Some((last.event.time, last.id));
    Some(query)
}

fn render(page: Vec<StoredAuditEvent>, format: Format) -> Bytes {
    let mut out = Vec::with_capacity(page.len() * 320);
    for event in page {
        let view = AuditEventView::from(event);
        if format == Format::Csv {
            csv_row(&mut out, &view);
        } else {
            serde_json::to_writer(&mut out, &view).expect("an event serializes");
            out.push(b'\n');
        }
    }
    Bytes::from(out)
}

pub(crate) fn csv_row(out: &mut Vec<u8>, e: &AuditEventView) {
    fn opt(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or_default()
    }
    let id = e.id.to_string();
    let attributes = e.attributes.to_string();
    // Each value, and whether a client chose it: only such text can be a planted formula. The
    // gateway's own values are written as they are (a request id starts with `@`).
    let fields: [(&str, bool); 13] = [
        (&id, false),
        (&e.time, false),
        (e.kind.as_str(), false),
        (e.outcome.as_str(), false),
        (opt(&e.user), true),
        (opt(&e.token_id), false),
        (opt(&e.client_ip), false),
        (opt(&e.method), true),
        (opt(&e.path), true),
        (opt(&e.request_id), false),
        (&e.node_id, false),
        (opt(&e.actor), false),
        (&attributes, true),
    ];
    for (i, (field, client_text)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, field, client_text);
    }
    out.extend_from_slice(b"\r\n");
}

/// One RFC 4180 field. Client text that a spreadsheet would run as a formula (starting with `=`,
/// `+`, `-`, `@`, tab or CR) is quoted behind a `'`.
fn csv_field(out: &mut Vec<u8>, value: &str, client_text: bool) {
    let formula = client_text
        && matches!(
            value.as_bytes().first(),
            Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
        );
    if !formula && !value.contains([',', '"', '\n', '\r']) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    out.push(b'"');
    if formula {
        out.push(b'\'');
    }
    out.extend_from_slice(value.replace('"', "\"\"").as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(value: &str) -> String {
        let mut out = Vec::new();
        csv_field(&mut out, value, true);
        String::from_utf8(out).unwrap()
    }

    fn server_field(value: &str) -> String {
        let mut out = Vec::new();
        csv_field(&mut out, value, false);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(field("alice"), "alice");
        assert_eq!(field(""), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(field("/rest/api/1.0/users"), "/rest/api/1.0/users");
        // The gateway's own values are never rewritten, only quoted where they must be.
        assert_eq!(server_field("@A6X2OXx532x2669x0"), "@A6X2OXx532x2669x0");
        assert_eq!(server_field("-1"), "-1");
        assert_eq!(server_field("a,b"), "\"a,b\"");
    }
}
