//! What the pages' forms send: the no-check marker read before sign-in, and the create form
//! turned into the operation's input, with the expiry choices the caller's limits allow.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt as _;
use serde::Deserialize;

use crate::lifecycle::{self, Invalid};
use crate::selfservice::{Asked, Bounds, CreateInput, FormNoCheck};
use crate::token::Scope;

/// Largest form body read.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// The form field that stands for `X-Atlassian-Token: no-check`.
pub(super) const NO_CHECK_FIELD: &str = "atl_token";
/// Expiry choices offered, in days, where the limits allow them.
const EXPIRY_DAYS: [i64; 6] = [7, 30, 60, 90, 180, 365];
/// The choice selected when the form first shows.
const DEFAULT_DAYS: i64 = 90;

/// Reads a posted form before sign-in, marking the request [`FormNoCheck`] when the form
/// carries `atl_token=no-check`; the body is handed on unchanged.
pub(super) async fn mark_no_check(request: Request, next: Next) -> Response {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if request.method() != Method::POST || !is_form {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.").into_response(),
    };
    if carries_no_check(&bytes) {
        parts.extensions.insert(FormNoCheck);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn carries_no_check(form: &Bytes) -> bool {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(form).is_ok_and(|pairs| {
        pairs
            .iter()
            .any(|(k, v)| k == NO_CHECK_FIELD && v == "no-check")
    })
}

/// The create form, as posted.
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct CreateForm {
    /// For whom (the token manager's form only).
    #[serde(default)]
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) description: String,
    /// `read-only` or `read-write`.
    #[serde(default)]
    pub(super) scope: String,
    /// Days, `max` (the latest allowed) or `never`.
    #[serde(default)]
    pub(super) expires: String,
    /// Addresses and CIDRs separated by commas, spaces or lines; empty for any address.
    #[serde(default)]
    pub(super) allowed_ips: String,
}

/// What the caller may choose in the create form.
#[derive(Debug, Clone)]
pub(super) struct Choices {
    pub(super) read_write: bool,
    /// `(value, label)` of each expiry offered.
    pub(super) expiries: Vec<(String, String)>,
    pub(super) default_expiry: String,
    /// The latest expiry allowed; none for tokens that need not expire.
    pub(super) latest: Option<DateTime<Utc>>,
}

impl Choices {
    /// The choices `bounds` leave at `now`.
    pub(super) fn new(bounds: &Bounds<'_>, now: DateTime<Utc>) -> Self {
        let latest = bounds.latest_expiry(now);
        let max_days = latest.map(|at| (at - now).num_days());
        let mut expiries: Vec<(String, String)> = EXPIRY_DAYS
            .iter()
            .filter(|d| max_days.is_none_or(|max| **d <= max))
            .map(|d| (d.to_string(), format!("{d} days")))
            .collect();
        match max_days {
            Some(max) if !EXPIRY_DAYS.contains(&max) => {
                let label = match max {
                    0 => "Today (the latest allowed)".to_owned(),
                    1 => "1 day (the longest allowed)".to_owned(),
                    n => format!("{n} days (the longest allowed)"),
                };
                expiries.push(("max".to_owned(), label));
            }
            Some(_) => {
                if let Some(last) = expiries.last_mut() {
                    last.1.push_str(" (the longest allowed)");
                }
            }
            None => expiries.push(("never".to_owned(), "Never".to_owned())),
        }
        let default_expiry = if expiries.iter().any(|(v, _)| v == "90") {
            DEFAULT_DAYS.to_string()
        } else {
            expiries.last().map(|(v, _)| v.clone()).unwrap_or_default()
        };
        Self {
            read_write: bounds.max_scope() == Scope::ReadWrite,
            expiries,
            default_expiry,
            latest,
        }
    }
}

impl CreateForm {
    /// The operation's input, or the field that is wrong. What the limits refuse is left to
    /// the operation, which names the field.
    pub(super) fn input(
        &self,
        choices: &Choices,
        now: DateTime<Utc>,
    ) -> Result<CreateInput, Invalid> {
        let scope = lifecycle::parse_scope(self.scope.trim())?;
        let expires_at = match self.expires.trim() {
            "max" => None,
            "never" if choices.latest.is_some() => {
                return Err(Invalid::new(
                    "expires_at",
                    "is required: tokens here must expire",
                ));
            }
            "never" => None,
            days => {
                let days = days
                    .parse::<i64>()
                    .ok()
                    .filter(|d| (1..=36_500).contains(d))
                    .ok_or_else(|| {
                        Invalid::new("expires_at", "choose one of the offered expiries")
                    })?;
                Some(now + Duration::days(days))
            }
        };
        let entries: Vec<&str> = self
            .allowed_ips
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .collect();
        let allowed_ips = lifecycle::parse_allowed_ips(&entries)?;
        Ok(CreateInput {
            user: self.user.as_deref().map(str::trim).map(str::to_owned),
            description: self.description.trim().to_owned(),
            asked: Asked {
                scope: Some(scope),
                expires_at,
                allowed_ips: Some(allowed_ips),
            },
            rate_limit: None,
        })
    }
}

/// The label a form field has on the page, for a refusal that names the field as the API does
/// (`expires_at: …`, `allowed_ips[1]: …`).
pub(super) fn field_label(field: &str) -> Option<&'static str> {
    let name = field.split('[').next().unwrap_or(field);
    Some(match name {
        "user" => "User",
        "description" => "Description",
        "scope" => "Scope",
        "expires_at" => "Expires",
        "allowed_ips" => "Allowed IPs",
        _ => return None,
    })
}

/// A refusal's text with the API's field name replaced by the field's label.
pub(super) fn labelled(message: &str) -> (Option<&'static str>, String) {
    match message.split_once(": ") {
        Some((field, rest)) => match field_label(field) {
            Some(label) => (Some(label), format!("{label}: {rest}")),
            None => (None, message.to_owned()),
        },
        None => (None, message.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    fn bounds(max_lifetime_days: Option<u32>) -> Bounds<'static> {
        Bounds {
            force_read_only: false,
            max_lifetime_days,
            signing: None,
        }
    }

    #[test]
    fn expiries_stop_at_the_longest_allowed() {
        let open = Choices::new(&bounds(None), now());
        let values: Vec<&str> = open.expiries.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(values, ["7", "30", "60", "90", "180", "365", "never"]);
        assert_eq!(open.default_expiry, "90");
        let capped = Choices::new(&bounds(Some(45)), now());
        let values: Vec<&str> = capped.expiries.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(values, ["7", "30", "max"]);
        assert_eq!(capped.default_expiry, "max");
        assert_eq!(capped.expiries[2].1, "45 days (the longest allowed)");
        let exact = Choices::new(&bounds(Some(90)), now());
        assert_eq!(
            exact.expiries.last().unwrap().1,
            "90 days (the longest allowed)"
        );
    }

    #[test]
    fn the_form_becomes_the_operation_input() {
        let form = CreateForm {
            user: Some(" bob ".into()),
            description: " CI ".into(),
            scope: "read-write".into(),
            expires: "30".into(),
            allowed_ips: "10.0.0.0/8, 192.0.2.7\n2001:db8::/32".into(),
        };
        let input = form
            .input(&Choices::new(&bounds(None), now()), now())
            .unwrap();
        assert_eq!(input.user.as_deref(), Some("bob"));
        assert_eq!(input.description, "CI");
        assert_eq!(input.asked.scope, Some(Scope::ReadWrite));
        assert_eq!(input.asked.expires_at, Some(now() + Duration::days(30)));
        assert_eq!(input.asked.allowed_ips.unwrap().len(), 3);
        let refuse = |f: CreateForm| {
            f.input(&Choices::new(&bounds(Some(90)), now()), now())
                .unwrap_err()
                .field
        };
        let ok = CreateForm {
            scope: "read-only".into(),
            expires: "7".into(),
            ..CreateForm::default()
        };
        assert_eq!(
            refuse(CreateForm {
                scope: "all".into(),
                ..ok.clone()
            }),
            "scope"
        );
        assert_eq!(
            refuse(CreateForm {
                expires: "never".into(),
                ..ok.clone()
            }),
            "expires_at"
        );
        assert_eq!(
            refuse(CreateForm {
                expires: "soon".into(),
                ..ok.clone()
            }),
            "expires_at"
        );
        assert_eq!(
            refuse(CreateForm {
                allowed_ips: "10.0.0.0/33".into(),
                ..ok
            }),
            "allowed_ips[0]"
        );
    }

    #[test]
    fn refusals_name_the_field_by_its_label() {
        assert_eq!(
            labelled("allowed_ips[1]: \"x\" is neither an IP address nor a CIDR"),
            (
                Some("Allowed IPs"),
                "Allowed IPs: \"x\" is neither an IP address nor a CIDR".to_owned()
            )
        );
        assert_eq!(labelled("no field here").0, None);
        assert!(carries_no_check(&Bytes::from_static(
            b"id=1&atl_token=no-check"
        )));
        assert!(!carries_no_check(&Bytes::from_static(
            b"id=1&atl_token=check"
        )));
    }
}
