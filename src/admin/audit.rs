//! `GET /admin/v1/audit`: audit events, newest first, filtered by user, type, token and time.
//! `format=json` (the default) answers one page with an opaque `next_cursor`; `format=ndjson`
//! and `format=csv` stream every matching event, page by page from the store (see [`export`]).

pub(crate) mod export;

pub(crate) use export::{CSV_CONTENT_TYPE, CSV_HEADER, NDJSON_CONTENT_TYPE, csv_row};

use std::borrow::Cow;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AdminState;
use super::cursor;
use super::error::{ApiError, ErrorBody};
use super::extract::AdminQuery;
use crate::audit::{AuditKind, AuditOutcome, AuditQuery, StoredAuditEvent, stored_text};
use crate::store::AuditStore;

/// Page size when none is given.
const DEFAULT_LIMIT: u32 = 100;
/// Largest page.
pub(crate) const MAX_LIMIT: u32 = 1_000;

pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/admin/v1/audit", get(list))
}

/// Filters, page and format of `GET /admin/v1/audit`. An empty value is the same as none. A
/// time range that is empty (`since` not before `until`) matches no event.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Only events about this user.
    pub(crate) user: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(value_type = Option<AuditKind>)]
    pub(crate) kind: Option<String>,
    /// Only events about this token id.
    pub(crate) token_id: Option<String>,
    /// Events at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub(crate) since: Option<String>,
    /// Events before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub(crate) until: Option<String>,
    /// Page size of `format=json`, 1 to 1000 (default 100); an export stops after this many
    /// events (without it, an export holds every match).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub(crate) limit: Option<String>,
    /// `next_cursor` of the previous page; an export starts after it.
    pub(crate) cursor: Option<String>,
    /// `json` (default): one page; `ndjson` or `csv`: the matching events, streamed.
    #[param(value_type = Option<String>, example = "csv")]
    pub(crate) format: Option<String>,
}

/// How the answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Ndjson,
    Csv,
}

/// One page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    pub(crate) events: Vec<AuditEventView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// An audit event as the API shows it. Never carries a secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEventView {
    pub(crate) id: i64,
    /// RFC 3339, UTC, milliseconds.
    #[schema(example = "2021-01-07T08:52:38.540Z")]
    pub(crate) time: String,
    #[serde(rename = "type")]
    pub(crate) kind: AuditKind,
    pub(crate) outcome: AuditOutcome,
    /// The Bitbucket user concerned: the token's owner, or the name a client presented.
    pub(crate) user: Option<String>,
    pub(crate) token_id: Option<String>,
    pub(crate) client_ip: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) node_id: String,
    /// Who made a lifecycle change (`admin-api`, `cli`).
    pub(crate) actor: Option<String>,
    /// Details: the reason of a denial, the limit hit, `{"field": {"old", "new"}}` of a change.
    #[schema(value_type = Object)]
    pub(crate) attributes: serde_json::Value,
}

impl From<StoredAuditEvent> for AuditEventView {
    fn from(stored: StoredAuditEvent) -> Self {
        let e = stored.event;
        Self {
            id: stored.id,
            time: e.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            kind: e.kind,
            outcome: e.outcome,
            user: e.user.map(Into::into),
            token_id: e.token_id.map(Into::into),
            client_ip: e.client_ip.map(|ip| ip.to_string()),
            method: e.method.map(Cow::into_owned),
            path: e.path.map(Into::into),
            request_id: e.request_id.map(Into::into),
            node_id: e.node_id.into_owned(),
            actor: e.actor,
            attributes: e.attributes.into_value(),
        }
    }
}

/// Audit events, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "`format=json`: one page; follow `next_cursor` for the next. \
            `format=ndjson` (`application/x-ndjson`, one event a line) or `format=csv` \
            (`text/csv`): every matching event", body = AuditPage),
        (status = 400, description = "A bad parameter (`invalid_query`, `invalid_cursor`)", body = ErrorBody),
        (status = 401, description = "No valid admin token", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(super) async fn list(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let (query, format, limit) = params.check_export()?;
    if format != Format::Json {
        return export::stream_limited(state.store, query, format, limit).await;
    }
    Ok(Json(page(&*state.store, query).await?).into_response())
}

/// One page of the events `query` matches, and the cursor of the next page if there is one.
pub(crate) async fn page(
    store: &dyn AuditStore,
    mut query: AuditQuery,
) -> Result<AuditPage, ApiError> {
    let limit = query.limit;
    // One more than asked tells whether another page follows.
    query.limit += 1;
    let mut events = store.query_audit(&query).await?;
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_cursor = events
        .last()
        .filter(|_| more)
        .map(|e| cursor::encode_audit(e.event.time, e.id));
    let events = events.into_iter().map(AuditEventView::from).collect();
    Ok(AuditPage {
        events,
        next_cursor,
    })
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

impl AuditParams {
    /// The store query and answer format these parameters ask for.
    pub(crate) fn check(self) -> Result<(AuditQuery, Format), ApiError> {
        self.check_export()
            .map(|(query, format, _)| (query, format))
    }

    /// As [`AuditParams::check`], and the `limit` as given: an export's bound.
    pub(crate) fn check_export(self) -> Result<(AuditQuery, Format, Option<u32>), ApiError> {
        let given = |v: Option<String>| v.filter(|s| !s.is_empty());
        let kind = match given(self.kind) {
            None => None,
            Some(k) => Some(AuditKind::parse(&k).ok_or_else(|| {
                let names: Vec<_> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
                invalid(format!(
                    "type: {k:?} is not an event type; use one of {}",
                    names.join(", ")
                ))
            })?),
        };
        let since = given(self.since)
            .map(|s| parse_time("since", &s))
            .transpose()?;
        let until = given(self.until)
            .map(|s| parse_time("until", &s))
            .transpose()?;
        let limit = given(self.limit)
            .map(|l| {
                l.parse::<u32>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        invalid(format!(
                            "limit: must be a whole number from 1 to {MAX_LIMIT}"
                        ))
                    })
            })
            .transpose()?;
        let format = match given(self.format).as_deref() {
            None | Some("json") => Format::Json,
            Some("ndjson") => Format::Ndjson,
            Some("csv") => Format::Csv,
            Some(_) => return Err(invalid("format: must be json, ndjson or csv".into())),
        };
        // Filters on text the writer stored with U+0000 replaced, replaced the same way.
        let stored = |v: Option<String>| given(v).map(|s| stored_text(&s).into_owned());
        let query = AuditQuery {
            user: stored(self.user),
            kind,
            token_id: stored(self.token_id),
            since,
            until,
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            after: given(self.cursor)
                .as_deref()
                .map(cursor::decode_audit)
                .transpose()?,
        };
        Ok((query, format, limit))
    }
}

/// An RFC 3339 time. A `+` of the offset that arrived unescaped (decoded as a space) is read
/// as the `+` that was meant.
fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .or_else(|e| DateTime::parse_from_rfc3339(&value.replace(' ', "+")).map_err(|_| e))
        .map(|t| t.to_utc())
        .map_err(|e| {
            invalid(format!(
                "{name}: {value:?} is not an RFC 3339 time like 2024-06-01T08:00:00Z ({e})"
            ))
        })
}

#[cfg(test)]
mod tests;
