//! SQL that both backends share, built once over a [`Dialect`]: inserting, patching and
//! rotating a token, expiry notices ([`notices`]), the filtered keyset pages of tokens and
//! audit events, the batched purge, and the values both audit batch inserts store.
//! Placeholders come from [`QueryBuilder`], so one text yields `$1` or `?`.

mod notices;

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::TokenQuery;
use super::rows::{AUDIT_COLUMNS, TOKEN_COLUMNS, ceil_ms, encode_ips, encode_rate, floor_ms};
use crate::audit::{Attributes, AuditEvent, AuditQuery, stored_json, stored_text};
use crate::token::{NewToken, TokenId, TokenPatch, TokenState};

pub(super) use notices::{
    claim_notice, end_rotated, expiring_tokens, purge_notices, settle_notice,
};

/// What differs between the backends' SQL.
pub(super) trait Dialect: Database {
    /// How a time is bound: `TIMESTAMPTZ` or integer unix milliseconds.
    type Time: for<'a> Encode<'a, Self> + Type<Self> + Send;
    /// Converts a time (already at millisecond precision) for binding.
    fn time(t: DateTime<Utc>) -> Self::Time;
    /// The select expression that reads `attributes` back as JSON text.
    const JSON_SELECT: &'static str;
}

fn opt_time<DB: Dialect>(t: Option<DateTime<Utc>>) -> Option<DB::Time> {
    t.map(|t| DB::time(floor_ms(t)))
}

/// `INSERT INTO tokens … RETURNING` the stored record.
pub(super) fn insert_token<DB>(t: &NewToken) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<DB::Time>: Encode<'a, DB> + Type<DB>,
{
    let (requests, period) = encode_rate(t.rate_limit);
    let mut qb = QueryBuilder::new(format!("INSERT INTO tokens ({TOKEN_COLUMNS}) "));
    qb.push_values([t], |mut b, t| {
        b.push_bind(t.id.as_str().to_owned())
            .push_bind(t.user.clone())
            .push_bind(t.description.clone())
            .push_bind(t.scope.as_str().to_owned())
            .push_bind(DB::time(floor_ms(t.created_at)))
            .push_bind(opt_time::<DB>(t.expires_at))
            .push_bind(encode_ips(&t.allowed_ips))
            .push_bind(requests)
            .push_bind(period)
            .push_bind(None::<DB::Time>)
            .push_bind(None::<String>)
            .push_bind(None::<DB::Time>)
            .push_bind(t.secret_hash.clone());
    });
    qb.push(format!(" RETURNING {TOKEN_COLUMNS}"));
    qb
}

/// `UPDATE tokens SET revoked_at … RETURNING` the revoked record.
pub(super) fn revoke_token<DB>(id: &TokenId, at: DateTime<Utc>) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("UPDATE tokens SET revoked_at = ");
    qb.push_bind(DB::time(floor_ms(at)));
    qb.push(" WHERE id = ").push_bind(id.as_str().to_owned());
    qb.push(format!(" RETURNING {TOKEN_COLUMNS}"));
    qb
}

/// `UPDATE tokens SET … RETURNING` the changed record; `None` for an empty patch.
pub(super) fn update_token<DB>(id: &TokenId, patch: &TokenPatch) -> Option<QueryBuilder<DB>>
where
    DB: Dialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<DB::Time>: Encode<'a, DB> + Type<DB>,
{
    if patch.is_empty() {
        return None;
    }
    let mut qb = QueryBuilder::new("UPDATE tokens SET ");
    let mut set = qb.separated(", ");
    if let Some(description) = &patch.description {
        set.push("description = ")
            .push_bind_unseparated(description.clone());
    }
    if let Some(expires_at) = patch.expires_at {
        set.push("expires_at = ")
            .push_bind_unseparated(opt_time::<DB>(expires_at));
    }
    if let Some(ips) = &patch.allowed_ips {
        set.push("allowed_ips = ")
            .push_bind_unseparated(encode_ips(ips));
    }
    if let Some(quota) = patch.rate_limit {
        let (requests, period) = encode_rate(quota);
        set.push("rate_limit_requests = ")
            .push_bind_unseparated(requests);
        set.push("rate_limit_period_seconds = ")
            .push_bind_unseparated(period);
    }
    qb.push(" WHERE id = ").push_bind(id.as_str().to_owned());
    qb.push(format!(" RETURNING {TOKEN_COLUMNS}"));
    Some(qb)
}

/// Pushes ` AND <the state condition at now>`.
fn push_state<DB>(qb: &mut QueryBuilder<DB>, state: TokenState, now: DateTime<Utc>)
where
    DB: Dialect,
{
    // A stored expiry `e` is past at `now` exactly when `e <= floor_ms(now)`.
    let now = DB::time(floor_ms(now));
    match state {
        TokenState::Active => {
            qb.push(" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ")
                .push_bind(now)
                .push(")");
        }
        TokenState::Expired => {
            qb.push(" AND revoked_at IS NULL AND expires_at <= ")
                .push_bind(now);
        }
        TokenState::Revoked => {
            qb.push(" AND revoked_at IS NOT NULL");
        }
    }
}

/// `SELECT COUNT(*)` of the tokens active at `now`.
pub(super) fn count_active<DB: Dialect>(now: DateTime<Utc>) -> QueryBuilder<DB> {
    let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM tokens WHERE 1 = 1");
    push_state(&mut qb, TokenState::Active, now);
    qb
}

/// One page of tokens, newest first, after the cursor.
pub(super) fn list_tokens<DB>(q: &TokenQuery) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE 1 = 1"));
    if let Some(user) = &q.user {
        qb.push(" AND user_name = ").push_bind(user.clone());
    }
    if let Some(state) = q.state {
        push_state(&mut qb, state, q.now);
    }
    if let Some((at, id)) = &q.after {
        qb.push(" AND (created_at, id) < (")
            .push_bind(DB::time(floor_ms(*at)))
            .push(", ")
            .push_bind(id.as_str().to_owned())
            .push(")");
    }
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(q.limit));
    qb
}

/// One page of audit events, newest first, after the cursor.
pub(super) fn query_audit<DB>(q: &AuditQuery) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!(
        "SELECT {AUDIT_COLUMNS}, {} AS attributes FROM audit_events WHERE 1 = 1",
        DB::JSON_SELECT
    ));
    // Compared as stored (U+0000 as U+FFFD): PostgreSQL refuses U+0000 in a bound text.
    if let Some(user) = &q.user {
        qb.push(" AND user_name = ")
            .push_bind(stored_text(user).into_owned());
    }
    if let Some(kind) = q.kind {
        qb.push(" AND kind = ").push_bind(kind.as_str().to_owned());
    }
    if let Some(token_id) = &q.token_id {
        qb.push(" AND token_id = ")
            .push_bind(stored_text(token_id).into_owned());
    }
    if let Some(since) = q.since {
        qb.push(" AND time >= ").push_bind(DB::time(ceil_ms(since)));
    }
    if let Some(until) = q.until {
        qb.push(" AND time < ").push_bind(DB::time(ceil_ms(until)));
    }
    if let Some((at, id)) = q.after {
        qb.push(" AND (time, id) < (")
            .push_bind(DB::time(floor_ms(at)))
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY time DESC, id DESC LIMIT ")
        .push_bind(i64::from(q.limit));
    qb
}

/// The `(time, id)` of the `n`-th newest audit event (0 is the newest).
pub(super) fn nth_newest_audit<DB>(n: u64) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb =
        QueryBuilder::new("SELECT time, id FROM audit_events ORDER BY time DESC, id DESC LIMIT 1");
    qb.push(" OFFSET ")
        .push_bind(i64::try_from(n).unwrap_or(i64::MAX));
    qb
}

/// Deletes the oldest `batch` events (by `time`, then `id`) that are older than `older_than`
/// or not newer than `nth_newest` (the last event within `max_rows`, from
/// [`nth_newest_audit`]). Both conditions select a prefix in that order, so their union is the
/// prefix before one bound.
pub(super) fn purge_audit<DB>(
    older_than: DateTime<Utc>,
    nth_newest: Option<(DateTime<Utc>, i64)>,
    batch: u32,
) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    // `time < t` is `(time, id) < (t, MIN)`; `(time, id) <= (t, i)` is `(time, id) < (t, i + 1)`.
    let by_age = (ceil_ms(older_than), i64::MIN);
    let bound = match nth_newest {
        Some((t, id)) => by_age.max((t, id.saturating_add(1))),
        None => by_age,
    };
    let mut qb = QueryBuilder::new(
        "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE (time, id) < (",
    );
    qb.push_bind(DB::time(bound.0))
        .push(", ")
        .push_bind(bound.1)
        .push(") ORDER BY time, id LIMIT ")
        .push_bind(i64::from(batch))
        .push(")");
    qb
}

/// The start of every audit batch insert: the columns, in the order their values come (the
/// time, then [`audit_values`]).
pub(super) const AUDIT_INSERT: &str = "INSERT INTO audit_events (time, kind, outcome, user_name, \
     token_id, client_ip, method, path, request_id, node_id, actor, attributes) ";

/// An event's time as stored: integer unix milliseconds.
pub(super) fn audit_millis(e: &AuditEvent) -> i64 {
    floor_ms(e.time).timestamp_millis()
}

/// How many values [`audit_values`] gives.
pub(super) const AUDIT_VALUES: usize = 11;

/// One stored value of an audit event besides its time.
pub(super) enum AuditValue<'a> {
    /// Text that often repeats from event to event (a user, a type, a path).
    Text(Option<Cow<'a, str>>),
    /// Text unique to its event (the request id).
    Unique(Option<Cow<'a, str>>),
    Ip(Option<IpAddr>),
    /// The attributes.
    Json(Cow<'a, serde_json::Value>),
}

/// The values of `e` after its time, in the column order of [`AUDIT_INSERT`], with U+0000
/// replaced ([`storable`]).
pub(super) fn audit_values(e: &AuditEvent) -> [AuditValue<'_>; AUDIT_VALUES] {
    use AuditValue::{Ip, Json, Text, Unique};
    [
        Text(Some(Cow::Borrowed(e.kind.as_str()))),
        Text(Some(Cow::Borrowed(e.outcome.as_str()))),
        Text(storable(e.user.as_deref())),
        Text(storable(e.token_id.as_deref())),
        Ip(e.client_ip),
        Text(storable(e.method.as_deref())),
        Text(storable(e.path.as_deref())),
        Unique(storable(e.request_id.as_deref())),
        Text(storable(Some(&e.node_id))),
        Text(storable(e.actor.as_deref())),
        Json(storable_attributes(&e.attributes)),
    ]
}

impl Serialize for AuditValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(text) | Self::Unique(text) => text.serialize(serializer),
            Self::Ip(ip) => ip.serialize(serializer),
            Self::Json(value) => value.serialize(serializer),
        }
    }
}

/// `events` as one JSON array with an array per event: its time, then [`audit_values`].
pub(super) fn audit_rows(events: &[AuditEvent]) -> String {
    struct Row<'a>(&'a AuditEvent);
    impl Serialize for Row<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let values = audit_values(self.0);
            let mut row = serializer.serialize_seq(Some(1 + values.len()))?;
            row.serialize_element(&audit_millis(self.0))?;
            for value in &values {
                row.serialize_element(value)?;
            }
            row.end()
        }
    }
    let rows: Vec<_> = events.iter().map(Row).collect();
    serde_json::to_string(&rows).expect("strings, numbers and JSON values serialize")
}

/// `text` as it can be stored ([`stored_text`]).
pub(super) fn storable(text: Option<&str>) -> Option<Cow<'_, str>> {
    text.map(stored_text)
}

/// `attributes` as a JSON value that can be stored, U+0000 replaced as [`storable`] does in
/// every string and key; a copy only where one is made anyway (a fixed pair, a replacement).
pub(super) fn storable_attributes(attributes: &Attributes) -> Cow<'_, serde_json::Value> {
    match attributes.to_value() {
        Cow::Borrowed(value) => stored_json(value),
        Cow::Owned(value) => {
            let replaced = match stored_json(&value) {
                Cow::Owned(replaced) => Some(replaced),
                Cow::Borrowed(_) => None,
            };
            Cow::Owned(replaced.unwrap_or(value))
        }
    }
}
