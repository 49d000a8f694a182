//! SQL of expiry notices and rotations, shared by both backends: the tokens about to expire,
//! claiming a notice atomically, the steps of its delivery, and ending a rotated token.

use chrono::{DateTime, Utc};
use sqlx::{Encode, QueryBuilder, Type};

use super::super::rows::{TOKEN_COLUMNS, floor_ms};
use super::super::{NoticeKey, NoticeStep};
use super::Dialect;
use crate::token::TokenId;

/// Tokens neither revoked nor replaced expiring in `(now, until]`, soonest first.
pub(in crate::store) fn expiring_tokens<DB>(
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE revoked_at IS NULL AND replaced_by IS NULL \
         AND expires_at > "
    ));
    qb.push_bind(DB::time(floor_ms(now)))
        .push(" AND expires_at <= ")
        .push_bind(DB::time(floor_ms(until)))
        .push(" ORDER BY expires_at, id LIMIT ")
        .push_bind(i64::from(limit));
    qb
}

fn window(key: &NoticeKey) -> i64 {
    i64::try_from(key.window_seconds).unwrap_or(i64::MAX)
}

/// Pushes ` WHERE` the row of `key` held under `claim` and not yet sent.
fn push_held<DB>(qb: &mut QueryBuilder<DB>, key: &NoticeKey, claim: &str)
where
    DB: Dialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    qb.push(" WHERE token_id = ")
        .push_bind(key.token_id.as_str().to_owned())
        .push(" AND expires_at = ")
        .push_bind(DB::time(floor_ms(key.expires_at)))
        .push(" AND window_seconds = ")
        .push_bind(window(key))
        .push(" AND claim = ")
        .push_bind(claim.to_owned())
        .push(" AND sent_at IS NULL");
}

/// Inserts the notice `key` claimed by `claim`, or takes over an unsent one that was released
/// or claimed before `stale_before`; `RETURNING` a row exactly when the claim is now held.
pub(in crate::store) fn claim_notice<DB>(
    key: &NoticeKey,
    claim: &str,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(
        "INSERT INTO expiry_notices (token_id, expires_at, window_seconds, claim, claimed_at, \
         attempts) VALUES (",
    );
    qb.push_bind(key.token_id.as_str().to_owned())
        .push(", ")
        .push_bind(DB::time(floor_ms(key.expires_at)))
        .push(", ")
        .push_bind(window(key))
        .push(", ")
        .push_bind(claim.to_owned())
        .push(", ")
        .push_bind(DB::time(floor_ms(now)))
        .push(
            ", 0) ON CONFLICT (token_id, expires_at, window_seconds) DO UPDATE \
             SET claim = excluded.claim, claimed_at = excluded.claimed_at \
             WHERE expiry_notices.sent_at IS NULL AND (expiry_notices.claim IS NULL \
             OR expiry_notices.claimed_at < ",
        )
        .push_bind(DB::time(floor_ms(stale_before)))
        .push(") RETURNING claim");
    qb
}

/// Records `step` of the notice `key` held under `claim`; affects a row exactly when held.
pub(in crate::store) fn settle_notice<DB>(
    key: &NoticeKey,
    claim: &str,
    step: NoticeStep,
    now: DateTime<Utc>,
) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("UPDATE expiry_notices SET ");
    match step {
        NoticeStep::Attempt => {
            qb.push("attempts = attempts + 1, claimed_at = ")
                .push_bind(DB::time(floor_ms(now)));
        }
        NoticeStep::Sent => {
            qb.push("sent_at = ").push_bind(DB::time(floor_ms(now)));
        }
        NoticeStep::Release => {
            qb.push("claim = NULL");
        }
    }
    push_held(&mut qb, key, claim);
    qb
}

/// Deletes the notices of expiries before `before`.
pub(in crate::store) fn purge_notices<DB: Dialect>(before: DateTime<Utc>) -> QueryBuilder<DB> {
    let mut qb = QueryBuilder::new("DELETE FROM expiry_notices WHERE expires_at < ");
    qb.push_bind(DB::time(floor_ms(before)));
    qb
}

/// `UPDATE tokens … RETURNING` the rotated token `id`, now replaced by `new_id`: revoked at
/// `revoked_at`, or else expiring at `expires_at`.
pub(in crate::store) fn end_rotated<DB>(
    id: &TokenId,
    new_id: &TokenId,
    revoked_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> Option<DB::Time>: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("UPDATE tokens SET replaced_by = ");
    qb.push_bind(new_id.as_str().to_owned());
    if let Some(at) = revoked_at {
        qb.push(", revoked_at = ")
            .push_bind(Some(DB::time(floor_ms(at))));
    }
    if let Some(at) = expires_at {
        qb.push(", expires_at = ")
            .push_bind(Some(DB::time(floor_ms(at))));
    }
    qb.push(" WHERE id = ").push_bind(id.as_str().to_owned());
    qb.push(format!(" RETURNING {TOKEN_COLUMNS}"));
    qb
}
