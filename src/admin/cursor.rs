//! The cursors of the admin API's listings, `{ms}-{id}`: the time (milliseconds since 1970)
//! and id of the last record of a page, after which the next page starts. Every text of that
//! shape names a place in its listing, so the OpenAPI document can state exactly which cursors
//! are read ([`TOKEN_CURSOR_PATTERN`], [`AUDIT_CURSOR_PATTERN`]); anything else is refused.

use chrono::{DateTime, Utc};

use super::error::ApiError;
use crate::token::TokenId;

/// The times a cursor may name, in milliseconds: from 1970 to the end of the year 9999. chrono
/// takes times some 260,000 years either side, which PostgreSQL refuses as out of range.
const CURSOR_MILLIS: std::ops::RangeInclusive<i64> = 0..=253_402_300_799_999;

/// A token listing's cursor: `{created_at in ms}-{token id}`.
pub(crate) const TOKEN_CURSOR_PATTERN: &str = "^[0-9]{1,15}-[0-9a-z]{12}$";

/// An audit listing's cursor: `{time in ms}-{event id}`.
pub(crate) const AUDIT_CURSOR_PATTERN: &str = "^[0-9]{1,15}-[1-9][0-9]{0,17}$";

/// The time part of a cursor: up to 15 digits of milliseconds; a time after the last one a
/// store holds reads as that last one (the end of the listing).
fn time(ms: &str) -> Option<DateTime<Utc>> {
    if ms.is_empty() || ms.len() > 15 || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: i64 = ms.parse().ok()?;
    DateTime::from_timestamp_millis(ms.min(*CURSOR_MILLIS.end()))
}

/// The time of a record as a cursor writes it.
fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
        .clamp(*CURSOR_MILLIS.start(), *CURSOR_MILLIS.end())
}

fn invalid() -> ApiError {
    ApiError::bad_request(
        "invalid_cursor",
        "cursor: not a cursor this API returned; pass next_cursor from the previous page",
    )
}

/// The cursor after a token: `{created_at in ms}-{id}`.
pub(crate) fn encode_token(created_at: DateTime<Utc>, id: &TokenId) -> String {
    format!("{}-{id}", millis(created_at))
}

/// The place a token listing's cursor names.
pub(crate) fn decode_token(cursor: &str) -> Result<(DateTime<Utc>, TokenId), ApiError> {
    let (ms, id) = cursor.split_once('-').unwrap_or_default();
    time(ms).zip(TokenId::parse(id)).ok_or_else(invalid)
}

/// The cursor after an audit event: `{time in ms}-{id}`.
pub(crate) fn encode_audit(time: DateTime<Utc>, id: i64) -> String {
    format!("{}-{id}", millis(time))
}

/// The place an audit listing's cursor names.
pub(crate) fn decode_audit(cursor: &str) -> Result<(DateTime<Utc>, i64), ApiError> {
    let (ms, id) = cursor.split_once('-').unwrap_or_default();
    let id = Some(id)
        .filter(|id| {
            (1..=18).contains(&id.len())
                && !id.starts_with('0')
                && id.bytes().all(|b| b.is_ascii_digit())
        })
        .and_then(|id| id.parse::<i64>().ok());
    time(ms).zip(id).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_cursors_round_trip_and_refuse_forgeries() {
        let id = TokenId::parse("abcdefghijkl").unwrap();
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        assert_eq!(encode_token(at, &id), "1700000000123-abcdefghijkl");
        assert_eq!(
            decode_token(&encode_token(at, &id)).unwrap(),
            (at, id.clone())
        );
        for edge in ["0", "253402300799999"] {
            assert!(decode_token(&format!("{edge}-{id}")).is_ok(), "{edge}");
        }
        // Every cursor of the documented shape is a place: beyond the year 9999 is its end.
        let (end, _) = decode_token(&format!("999999999999999-{id}")).unwrap();
        assert_eq!(end.timestamp_millis(), 253_402_300_799_999);
        for bad in [
            "",
            "x",
            "-abcdefghijkl",
            "1-short",
            "x-abcdefghijkl",
            "-1-abcdefghijkl",
            "+1-abcdefghijkl",
            "1000000000000000-abcdefghijkl",
            "1-ABCDEFGHIJKL",
            "MTcwMDAwMDAwMDEyM3xhYmNkZWZnaGlqa2w",
        ] {
            assert!(decode_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn audit_cursors_round_trip_and_refuse_forgeries() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        assert_eq!(encode_audit(at, 42), "1700000000123-42");
        assert_eq!(decode_audit(&encode_audit(at, 42)).unwrap(), (at, 42));
        assert!(decode_audit("999999999999999-999999999999999999").is_ok());
        for bad in [
            "",
            "!!!",
            "1-x",
            "x-1",
            "1--5",
            "1-0",
            "1-05",
            "-1-5",
            "1000000000000000-5",
            "1-1000000000000000000",
            "MXw1",
        ] {
            assert!(decode_audit(bad).is_err(), "{bad}");
        }
    }
}
