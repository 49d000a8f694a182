//! Values as both backends store them: reading a row back into a [`TokenRecord`] or a
//! [`StoredAuditEvent`], the `allowed_ips` and rate-limit columns, and times at millisecond
//! precision. A value that does not parse is [`StoreError::Corrupt`] naming its column.
//!
//! Both backends keep times in whole milliseconds (SQLite as integer unix milliseconds,
//! PostgreSQL as `TIMESTAMPTZ`), so a record reads back the same from either.

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use ipnet::IpNet;

use super::StoreError;
use crate::audit::{AuditEvent, AuditKind, AuditOutcome, StoredAuditEvent};
use crate::ratelimit::RateQuota;
use crate::token::{Scope, TokenId, TokenRecord};

/// The columns of `tokens` that [`token_from_row`] reads, as a literal for `concat!`.
macro_rules! token_columns {
    () => {
        "id, user_name, description, scope, created_at, expires_at, allowed_ips, \
         rate_limit_requests, rate_limit_period_seconds, last_used_at, last_used_ip, \
         revoked_at, secret_hash"
    };
}
pub(super) use token_columns;

/// The columns of `tokens` that [`token_from_row`] reads.
pub(super) const TOKEN_COLUMNS: &str = token_columns!();

/// One column of a fetched row, as the few types the store uses. Each backend implements it;
/// times are the only column whose storage differs.
pub(super) trait ReadRow {
    fn opt_text(&self, col: &'static str) -> Result<Option<String>, StoreError>;
    fn opt_int(&self, col: &'static str) -> Result<Option<i64>, StoreError>;
    fn opt_time(&self, col: &'static str) -> Result<Option<DateTime<Utc>>, StoreError>;

    fn text(&self, col: &'static str) -> Result<String, StoreError> {
        self.opt_text(col)?.ok_or_else(|| null(col))
    }
    fn int(&self, col: &'static str) -> Result<i64, StoreError> {
        self.opt_int(col)?.ok_or_else(|| null(col))
    }
    fn time(&self, col: &'static str) -> Result<DateTime<Utc>, StoreError> {
        self.opt_time(col)?.ok_or_else(|| null(col))
    }
}

/// A column that cannot be read back.
pub(super) fn corrupt(column: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { column, detail }
}

fn null(column: &'static str) -> StoreError {
    corrupt(column, "unexpected NULL".to_owned())
}

/// A time as stored: truncated to the millisecond.
pub(super) fn floor_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// The first whole millisecond at or after `t`. For bounds: a stored time `s` satisfies
/// `s >= t` exactly when `s >= ceil_ms(t)`, and `s < t` exactly when `s < ceil_ms(t)`.
pub(super) fn ceil_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_ms(t);
    if floor == t {
        t
    } else {
        floor
            .checked_add_signed(TimeDelta::milliseconds(1))
            .unwrap_or(floor)
    }
}

/// A stored integer-millisecond time (SQLite) back into a time.
pub(super) fn from_millis(col: &'static str, ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(col, format!("{ms} is out of range")))
}

/// The `allowed_ips` column: CIDRs joined by commas; `''` means any address.
pub(super) fn encode_ips(ips: &[IpNet]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_ips(s: &str) -> Result<Vec<IpNet>, StoreError> {
    s.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse()
                .map_err(|_| corrupt("allowed_ips", format!("{part:?} is not a CIDR")))
        })
        .collect()
}

/// The `rate_limit_requests` and `rate_limit_period_seconds` columns; both NULL for none.
pub(super) fn encode_rate(quota: Option<RateQuota>) -> (Option<i64>, Option<i64>) {
    match quota {
        Some(q) => (
            Some(i64::from(q.requests.get())),
            Some(i64::try_from(q.period_seconds).unwrap_or(i64::MAX)),
        ),
        None => (None, None),
    }
}

fn decode_rate(
    requests: Option<i64>,
    period: Option<i64>,
) -> Result<Option<RateQuota>, StoreError> {
    const COL: &str = "rate_limit_requests";
    match (requests, period) {
        (None, None) => Ok(None),
        (Some(r), Some(p)) => {
            let r = u32::try_from(r).map_err(|_| corrupt(COL, format!("{r} requests")))?;
            let p = u64::try_from(p)
                .map_err(|_| corrupt("rate_limit_period_seconds", format!("{p} seconds")))?;
            RateQuota::new(r, p)
                .map(Some)
                .map_err(|e| corrupt(COL, format!("{r}/{p}s: {e}")))
        }
        _ => Err(corrupt(
            COL,
            "only one of requests and period is set".to_owned(),
        )),
    }
}

fn decode_ip(col: &'static str, s: Option<String>) -> Result<Option<IpAddr>, StoreError> {
    s.map(|s| {
        s.parse()
            .map_err(|_| corrupt(col, format!("{s:?} is not an IP address")))
    })
    .transpose()
}

/// Reads a `tokens` row selected with [`TOKEN_COLUMNS`].
pub(super) fn token_from_row(row: &impl ReadRow) -> Result<TokenRecord, StoreError> {
    let id = row.text("id")?;
    let scope = row.text("scope")?;
    Ok(TokenRecord {
        id: TokenId::parse(&id)
            .ok_or_else(|| corrupt("id", format!("{id:?} is not a token id")))?,
        user: row.text("user_name")?,
        description: row.text("description")?,
        scope: scope
            .parse::<Scope>()
            .map_err(|()| corrupt("scope", format!("{scope:?} is not a scope")))?,
        created_at: row.time("created_at")?,
        expires_at: row.opt_time("expires_at")?,
        allowed_ips: decode_ips(&row.text("allowed_ips")?)?,
        rate_limit: decode_rate(
            row.opt_int("rate_limit_requests")?,
            row.opt_int("rate_limit_period_seconds")?,
        )?,
        last_used_at: row.opt_time("last_used_at")?,
        last_used_ip: decode_ip("last_used_ip", row.opt_text("last_used_ip")?)?,
        revoked_at: row.opt_time("revoked_at")?,
        secret_hash: row.text("secret_hash")?,
    })
}

/// The columns of `audit_events` that [`audit_from_row`] reads (besides `attributes`, whose
/// select expression differs per backend).
pub(super) const AUDIT_COLUMNS: &str = "id, time, kind, outcome, user_name, token_id, \
    client_ip, method, path, request_id, node_id, actor";

/// Reads an `audit_events` row; `attributes` must come back as JSON text.
pub(super) fn audit_from_row(row: &impl ReadRow) -> Result<StoredAuditEvent, StoreError> {
    let kind = row.text("kind")?;
    let outcome = row.text("outcome")?;
    let attributes = row.text("attributes")?;
    Ok(StoredAuditEvent {
        id: row.int("id")?,
        event: AuditEvent {
            time: row.time("time")?,
            kind: AuditKind::parse(&kind)
                .ok_or_else(|| corrupt("kind", format!("{kind:?} is not an event type")))?,
            outcome: AuditOutcome::parse(&outcome)
                .ok_or_else(|| corrupt("outcome", format!("{outcome:?} is not an outcome")))?,
            user: row.opt_text("user_name")?.map(Into::into),
            token_id: row.opt_text("token_id")?.map(Into::into),
            client_ip: decode_ip("client_ip", row.opt_text("client_ip")?)?,
            method: row.opt_text("method")?.map(Into::into),
            path: row.opt_text("path")?.map(Into::into),
            request_id: row.opt_text("request_id")?.map(Into::into),
            node_id: row.text("node_id")?.into(),
            actor: row.opt_text("actor")?,
            attributes: serde_json::from_str::<serde_json::Value>(&attributes)
                .map_err(|e| corrupt("attributes", e.to_string()))?
                .into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_round_trip_and_reject_garbage() {
        let ips: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        assert_eq!(decode_ips(&encode_ips(&ips)).unwrap(), ips);
        assert_eq!(encode_ips(&[]), "");
        assert!(decode_ips("").unwrap().is_empty());
        assert!(matches!(
            decode_ips("10.0.0.0/8,nonsense"),
            Err(StoreError::Corrupt {
                column: "allowed_ips",
                ..
            })
        ));
    }

    #[test]
    fn rate_columns_round_trip_and_reject_half_set() {
        let q = RateQuota::new(u32::MAX, 86_400).unwrap();
        let (r, p) = encode_rate(Some(q));
        assert_eq!(decode_rate(r, p).unwrap(), Some(q));
        assert_eq!(decode_rate(None, None).unwrap(), None);
        assert!(decode_rate(Some(5), None).is_err());
        assert!(decode_rate(Some(0), Some(60)).is_err());
        assert!(decode_rate(Some(-1), Some(60)).is_err());
        assert!(decode_rate(Some(5), Some(0)).is_err());
    }

    #[test]
    fn millisecond_rounding() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(floor_ms(t).timestamp_subsec_nanos(), 123_000_000);
        assert_eq!(ceil_ms(t).timestamp_subsec_nanos(), 124_000_000);
        let exact = DateTime::from_timestamp(1_700_000_000, 123_000_000).unwrap();
        assert_eq!(floor_ms(exact), exact);
        assert_eq!(ceil_ms(exact), exact);
        let before_epoch = DateTime::from_timestamp(-1, 999_999_999).unwrap();
        assert_eq!(floor_ms(before_epoch).timestamp_millis(), -1);
    }
}
