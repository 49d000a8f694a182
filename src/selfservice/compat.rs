//! `/rest/de.resolution.apitokenauth/latest`: the REST API of the app tokengate replaces, so
//! scripts written for it keep working. Its field names, epoch-millisecond times (0 for
//! never), numeric scopes (1 read-only, 2 read/write) and `{"errorMessage"}` refusals.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ops::CreateInput;
use super::{Asked, Caller, SelfService};
use crate::admin::error::ApiError;
use crate::admin::extract::{AdminPath, parse_json};
use crate::token::{Scope, TokenPatch, TokenRecord, TokenState};

const BASE: &str = "/rest/de.resolution.apitokenauth/latest";
/// Most tokens `tokensByFilter` looks through.
const FILTER_CAP: usize = 100_000;

pub(super) fn routes() -> Router<Arc<SelfService>> {
    Router::new()
        .route(&format!("{BASE}/user/token"), get(list).post(create))
        .route(
            &format!("{BASE}/user/token/{{id}}"),
            patch(rename).delete(revoke),
        )
        .route(&format!("{BASE}/user/tokensByFilter"), get(by_filter))
}

/// A refusal as the app answers: `{"errorMessage": "…"}` with the status.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "errorMessage": self.1 }))).into_response()
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        // Refused values are the app's 400; everything else keeps its status.
        let status = match e.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        Self(status, e.message().to_owned())
    }
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.into())
}

fn millis(t: Option<DateTime<Utc>>) -> i64 {
    t.map_or(0, |t| t.timestamp_millis())
}

fn scope_number(scope: Scope) -> u8 {
    match scope {
        Scope::ReadOnly => 1,
        Scope::ReadWrite => 2,
    }
}

/// A token as the app lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    id: String,
    description: String,
    created: i64,
    last_accessed: i64,
    valid_until: i64,
    scope: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
}

impl Listed {
    fn of(record: &TokenRecord, with_user: bool) -> Self {
        Self {
            id: record.id.as_str().to_owned(),
            description: record.description.clone(),
            created: record.created_at.timestamp_millis(),
            last_accessed: millis(record.last_used_at),
            valid_until: millis(record.expires_at),
            scope: scope_number(record.scope),
            user: with_user.then(|| record.user.clone()),
        }
    }
}

/// `POST /user/token`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    token_description: String,
    #[serde(default)]
    token_validity_time_in_months: Option<u32>,
    #[serde(default)]
    token_expiration_date_time: Option<String>,
    #[serde(default)]
    token_scope: Option<u8>,
    #[serde(default)]
    token_for_user_key: Option<String>,
}

async fn create(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, Refusal> {
    let body: CreateBody = parse_json(&body).map_err(Refusal::from)?;
    let now = Utc::now();
    let scope = match body.token_scope {
        None => None,
        Some(1) => Some(Scope::ReadOnly),
        Some(2) => Some(Scope::ReadWrite),
        Some(n) => {
            return Err(bad(format!(
                "tokenScope must be 1 (read-only) or 2 (read/write), not {n}"
            )));
        }
    };
    let expires_at = match (&body.token_expiration_date_time, body.token_validity_time_in_months) {
        (Some(at), _) => Some(
            DateTime::parse_from_rfc3339(at.trim())
                .map(|t| t.to_utc())
                .map_err(|_| bad("tokenExpirationDateTime must be an ISO-8601 date and time such as 2030-01-31T12:00:00Z"))?,
        ),
        (None, Some(0)) => return Err(bad("tokenValidityTimeInMonths must be at least 1")),
        (None, Some(months)) => Some(
            now.checked_add_months(Months::new(months))
                .ok_or_else(|| bad("tokenValidityTimeInMonths is too large"))?,
        ),
        (None, None) => None,
    };
    if let (Some(at), Some(days)) = (expires_at, service.max_lifetime_days)
        && at > now + chrono::Duration::days(i64::from(days))
    {
        return Err(bad(format!(
            "The token's expiry is beyond the maximum lifetime of {days} days."
        )));
    }
    let input = CreateInput {
        user: body.token_for_user_key,
        description: body.token_description,
        asked: Asked {
            scope,
            expires_at,
            allowed_ips: None,
        },
        rate_limit: None,
    };
    // Scripts written before scopes existed expect read/write.
    let created = service.create(&caller, input, Scope::ReadWrite).await?;
    let expiry = created.record.expires_at;
    Ok(Json(json!({
        "plainTextToken": secrecy::ExposeSecret::expose_secret(&created.token),
        "tokenDescription": created.record.description,
        "tokenExpirationDateTime": expiry.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "tokenExpirationDateTimeMillis": millis(expiry),
    })))
}

/// `GET /user/token`: the caller's own tokens that are not revoked.
async fn list(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
) -> Result<Json<Vec<Listed>>, Refusal> {
    let records = service
        .all_tokens(&caller, Some(caller.user.clone()), FILTER_CAP)
        .await?;
    Ok(Json(
        records
            .iter()
            .filter(|r| r.revoked_at.is_none())
            .map(|r| Listed::of(r, false))
            .collect(),
    ))
}

/// `PATCH /user/token/{id}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RenameBody {
    token_description: String,
}

async fn rename(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    AdminPath(id): AdminPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<Listed>, Refusal> {
    let body: RenameBody = parse_json(&body).map_err(Refusal::from)?;
    let patch = TokenPatch {
        description: Some(body.token_description),
        ..TokenPatch::default()
    };
    let record = service.patch(&caller, &id, patch).await?;
    Ok(Json(Listed::of(&record, false)))
}

/// `DELETE /user/token/{id}` → `true`.
async fn revoke(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    AdminPath(id): AdminPath<String>,
) -> Result<Json<bool>, Refusal> {
    service.revoke(&caller, &id).await?;
    Ok(Json(true))
}

/// The filters of `GET /user/tokensByFilter`, also the token manager page's; times in epoch
/// milliseconds, texts in lower case.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    pub(crate) users: Vec<String>,
    pub(crate) description: Option<String>,
    pub(crate) not_valid_after: Option<i64>,
    /// 1 read-only, 2 read/write.
    pub(crate) scope: Option<u8>,
    pub(crate) from_created: Option<i64>,
    pub(crate) until_created: Option<i64>,
    pub(crate) from_last_used: Option<i64>,
    pub(crate) until_last_used: Option<i64>,
    pub(crate) from_expires: Option<i64>,
    pub(crate) until_expires: Option<i64>,
    pub(crate) page: usize,
    pub(crate) limit: usize,
}

impl Filter {
    fn parse(query: Option<&str>) -> Result<Self, Refusal> {
        let mut filter = Self {
            limit: 50,
            ..Self::default()
        };
        let pairs: Vec<(String, String)> =
            serde_urlencoded_pairs(query.unwrap_or_default()).map_err(bad)?;
        let number = |name: &str, value: &str| {
            value
                .parse::<i64>()
                .map_err(|_| bad(format!("{name} must be a whole number, not {value:?}")))
        };
        for (name, value) in pairs {
            match name.as_str() {
                "userFilter" => filter.users.push(value.to_lowercase()),
                "descriptionFilter" => filter.description = Some(value.to_lowercase()),
                "notValidAfter" => filter.not_valid_after = Some(number(&name, &value)?),
                "tokenScope" => {
                    filter.scope = Some(match value.as_str() {
                        "1" => 1,
                        "2" => 2,
                        _ => return Err(bad("tokenScope must be 1 or 2")),
                    });
                }
                "fromCreated" => filter.from_created = Some(number(&name, &value)?),
                "untilCreated" => filter.until_created = Some(number(&name, &value)?),
                "fromLastUsed" => filter.from_last_used = Some(number(&name, &value)?),
                "untilLastUsed" => filter.until_last_used = Some(number(&name, &value)?),
                "fromExpiresDuring" => filter.from_expires = Some(number(&name, &value)?),
                "untilExpiresDuring" => filter.until_expires = Some(number(&name, &value)?),
                "page" => {
                    filter.page = value
                        .parse()
                        .map_err(|_| bad("page must be a whole number from 0"))?;
                }
                "limit" => {
                    filter.limit = value
                        .parse()
                        .ok()
                        .filter(|l| (1..=1000).contains(l))
                        .ok_or_else(|| bad("limit must be a whole number from 1 to 1000"))?;
                }
                other => return Err(bad(format!("unknown parameter {other:?}"))),
            }
        }
        Ok(filter)
    }

    /// Whether `r` passes every filter given.
    pub(crate) fn keeps(&self, r: &TokenRecord) -> bool {
        let within = |t: Option<i64>, from: Option<i64>, until: Option<i64>| match t {
            Some(t) => from.is_none_or(|f| t >= f) && until.is_none_or(|u| t <= u),
            None => from.is_none() && until.is_none(),
        };
        let expires = r.expires_at.map(|t| t.timestamp_millis());
        (self.users.is_empty() || self.users.contains(&r.user.to_lowercase()))
            && self
                .description
                .as_ref()
                .is_none_or(|d| r.description.to_lowercase().contains(d))
            && self
                .not_valid_after
                .is_none_or(|limit| expires.is_some_and(|e| e <= limit))
            && self.scope.is_none_or(|s| s == scope_number(r.scope))
            && within(
                Some(r.created_at.timestamp_millis()),
                self.from_created,
                self.until_created,
            )
            && within(
                r.last_used_at.map(|t| t.timestamp_millis()),
                self.from_last_used,
                self.until_last_used,
            )
            && within(expires, self.from_expires, self.until_expires)
    }
}

/// Decodes `a=1&b=2` into pairs, `+` as space.
fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad escape in {text:?}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} is not UTF-8"))
}

/// `GET /user/tokensByFilter`: everyone's tokens (not revoked) by the app's filters, a page at
/// a time; needs the token manager right.
async fn by_filter(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, Refusal> {
    if !caller.granted.manage_all {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "Filtering everyone's tokens needs the token manager right.".into(),
        ));
    }
    let filter = Filter::parse(query.as_deref())?;
    let now = Utc::now();
    let records = service.all_tokens(&caller, None, FILTER_CAP).await?;
    let kept: Vec<&TokenRecord> = records
        .iter()
        .filter(|r| r.state(now) != TokenState::Revoked && filter.keeps(r))
        .collect();
    let total = kept.len();
    let page: Vec<Listed> = kept
        .into_iter()
        .skip(filter.page.saturating_mul(filter.limit))
        .take(filter.limit)
        .map(|r| Listed::of(r, true))
        .collect();
    Ok(Json(json!({
        "total": total,
        "page": filter.page,
        "limit": filter.limit,
        "tokens": page,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_refuse() {
        let f = Filter::parse(Some(
            "userFilter=Alice&userFilter=bob&descriptionFilter=CI+job&tokenScope=1&page=2&limit=10",
        ))
        .unwrap();
        assert_eq!(f.users, ["alice", "bob"]);
        assert_eq!(f.description.as_deref(), Some("ci job"));
        assert_eq!((f.scope, f.page, f.limit), (Some(1), 2, 10));
        assert!(Filter::parse(Some("limit=0")).is_err());
        assert!(Filter::parse(Some("fromCreated=yesterday")).is_err());
        assert!(Filter::parse(Some("bogus=1")).is_err());
        assert!(Filter::parse(Some("userFilter=%zz")).is_err());
    }
}
