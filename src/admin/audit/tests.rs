use axum::http::StatusCode;

use super::*;

fn params(query: &str) -> Result<(AuditQuery, Format), ApiError> {
    with_limit(query).map(|(q, format, _)| (q, format))
}

fn with_limit(query: &str) -> Result<(AuditQuery, Format, Option<u32>), ApiError> {
    let uri: axum::http::Uri = format!("/admin/v1/audit?{query}").parse().unwrap();
    let axum::extract::Query(p) = axum::extract::Query::<AuditParams>::try_from_uri(&uri).unwrap();
    p.check_export()
}

fn refusal(query: &str) -> String {
    let e = params(query).unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{query}");
    format!("{e:?}")
}

#[test]
fn defaults_and_empty_values() {
    let (q, format) = params("user=&type=&token_id=&since=&until=&limit=&cursor=&format=").unwrap();
    assert_eq!(format, Format::Json);
    assert_eq!(
        (q.user, q.kind, q.token_id, q.since, q.until, q.after),
        (None, None, None, None, None, None)
    );
    assert_eq!(q.limit, DEFAULT_LIMIT);
}

#[test]
fn every_filter_is_read() {
    let (q, format) = params(
        "user=automation-user&type=rate_limited&token_id=abcdefghijkl&since=2024-06-01T07:00:00Z\
         &until=2024-06-01T10:00:00%2B02:00&limit=1000&format=csv",
    )
    .unwrap();
    assert_eq!(format, Format::Csv);
    assert_eq!(q.user.as_deref(), Some("automation-user"));
    assert_eq!(q.kind, Some(AuditKind::RateLimited));
    assert_eq!(q.token_id.as_deref(), Some("abcdefghijkl"));
    assert_eq!(q.since.unwrap().to_rfc3339(), "2024-06-01T07:00:00+00:00");
    assert_eq!(q.until.unwrap().to_rfc3339(), "2024-06-01T08:00:00+00:00");
    assert_eq!(q.limit, 1_000);
    // An unescaped `+` arrives as a space.
    let (q, _) = params("since=2024-06-01T10:00:00+02:00").unwrap();
    assert_eq!(q.since.unwrap().to_rfc3339(), "2024-06-01T08:00:00+00:00");
    assert_eq!(params("format=ndjson").unwrap().1, Format::Ndjson);
    // A limit given bounds an export; none leaves it unbounded.
    assert_eq!(with_limit("format=csv&limit=7").unwrap().2, Some(7));
    assert_eq!(with_limit("format=csv").unwrap().2, None);
    // An empty time range is no error: it matches nothing.
    assert!(params("since=2024-06-01T08:00:00Z&until=2024-06-01T08:00:00Z").is_ok());
}

#[test]
fn bad_filters_name_the_parameter() {
    assert!(
        refusal("type=token_exploded")
            .contains("type: \\\"token_exploded\\\" is not an event type")
    );
    assert!(refusal("since=yesterday").contains("since:"));
    assert!(refusal("until=2024-13-01T00:00:00Z").contains("until:"));
    for limit in ["0", "1001", "-1", "ten", "1.5"] {
        assert!(
            refusal(&format!("limit={limit}"))
                .contains("limit: must be a whole number from 1 to 1000")
        );
    }
    assert!(refusal("format=xml").contains("format:"));
    assert!(refusal("cursor=abc").contains("invalid_cursor"));
}

#[test]
fn nul_in_a_filter_is_read_as_the_writer_stores_it() {
    let (q, _) = params("user=a%00b&token_id=%00").unwrap();
    assert_eq!(q.user.as_deref(), Some("a\u{FFFD}b"));
    assert_eq!(q.token_id.as_deref(), Some("\u{FFFD}"));
}
