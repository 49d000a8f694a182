//! **Token manager** (`{path}manage`, `manage_all`): everyone's tokens by the filters of the
//! app tokengate replaces (user, description, scope, created, last used, expiring between),
//! a page at a time; creating a token for someone; rotating and revoking anyone's.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::form::{Choices, CreateForm, labelled};
use super::layout::{Frame, Nav, Tone, answer, notice};
use super::mine::RevokeForm;
use super::views::{Create, Table, confirm_dialog, confirm_page, secret};
use super::{Manager, failed, parse, unreadable};
use crate::admin::error::ApiError;
use crate::lifecycle::{CreatedToken, LifecycleError, RotatedToken};
use crate::selfservice::{Caller, SelfService, TokenFilter};
use crate::token::{Scope, TokenState};

/// Tokens looked through.
const MAX_TOKENS: usize = 100_000;
/// Tokens per page.
const PAGE: usize = 50;

/// The filters, as the page's GET form sends them; dates are `YYYY-MM-DD`, whole days in UTC.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct Filters {
    #[serde(skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    scope: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    created_from: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    created_until: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    used_from: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    used_until: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    expires_from: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    expires_until: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) page: usize,
    /// The id of a token just revoked, to say so.
    #[serde(skip_serializing_if = "String::is_empty")]
    revoked: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A date field as epoch milliseconds: its first millisecond, or with `end` its last.
fn day(label: &str, value: &str, end: bool) -> Result<Option<i64>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| format!("{label}: {value:?} is not a date such as 2026-01-31"))?;
    let time = if end {
        NaiveTime::from_hms_milli_opt(23, 59, 59, 999)
    } else {
        Some(NaiveTime::MIN)
    };
    Ok(time.map(|t| {
        DateTime::<Utc>::from_naive_utc_and_offset(date.and_time(t), Utc).timestamp_millis()
    }))
}

impl Filters {
    /// The filters a form's `back` field carries; none where it carries nothing readable.
    pub(super) fn from_back(back: Option<&str>) -> Self {
        back.and_then(|back| serde_urlencoded::from_str(back).ok())
            .unwrap_or_default()
    }

    fn to_filter(&self) -> Result<(TokenFilter, Option<TokenState>), String> {
        let scope = match self.scope.as_str() {
            "" => None,
            "read-only" => Some(1),
            "read-write" => Some(2),
            other => return Err(format!("Scope: {other:?} is not a scope")),
        };
        let state = match self.state.as_str() {
            "" => None,
            "active" => Some(TokenState::Active),
            "expired" => Some(TokenState::Expired),
            "revoked" => Some(TokenState::Revoked),
            other => return Err(format!("State: {other:?} is not a state")),
        };
        let user = self.user.trim().to_lowercase();
        let description = self.description.trim().to_lowercase();
        let filter = TokenFilter {
            users: if user.is_empty() {
                Vec::new()
            } else {
                vec![user]
            },
            description: (!description.is_empty()).then_some(description),
            scope,
            from_created: day("Created from", &self.created_from, false)?,
            until_created: day("Created until", &self.created_until, true)?,
            from_last_used: day("Last used from", &self.used_from, false)?,
            until_last_used: day("Last used until", &self.used_until, true)?,
            from_expires: day("Expires from", &self.expires_from, false)?,
            until_expires: day("Expires until", &self.expires_until, true)?,
            page: self.page,
            limit: PAGE,
            ..TokenFilter::default()
        };
        Ok((filter, state))
    }

    /// The query string of these filters on `page`, without the revoked notice.
    pub(super) fn query(&self, page: usize) -> String {
        let plain = Self {
            page,
            revoked: String::new(),
            ..self.clone()
        };
        serde_urlencoded::to_string(&plain).unwrap_or_default()
    }
}

/// `GET {path}manage`.
pub(super) async fn show(
    State(service): State<Arc<SelfService>>,
    Manager(caller): Manager,
    RawQuery(query): RawQuery,
) -> Response {
    let base = service.pages_path();
    match parse::<Filters>(query.unwrap_or_default().as_bytes()) {
        Ok(filters) => render(&service, &caller, &filters, Extra::default()).await,
        Err(e) => unreadable(base, &e),
    }
}

/// `POST {path}manage`: creates a token for the user the form names.
pub(super) async fn create(
    State(service): State<Arc<SelfService>>,
    Manager(caller): Manager,
    body: Bytes,
) -> Response {
    let base = service.pages_path();
    let form: CreateForm = match parse(&body) {
        Ok(form) => form,
        Err(e) => return unreadable(base, &e),
    };
    let now = Utc::now();
    let choices = Choices::new(&service.bounds(&caller, ""), now);
    let outcome = match form.input(&choices, now) {
        Ok(input) => service.create(&caller, input, Scope::ReadOnly).await,
        Err(invalid) => Err(ApiError::from(LifecycleError::from(invalid))),
    };
    let extra = match outcome {
        Ok(created) => Extra {
            created: Some(created),
            ..Extra::default()
        },
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => Extra {
            status: Some(StatusCode::UNPROCESSABLE_ENTITY),
            error: Some(labelled(e.message())),
            form,
            ..Extra::default()
        },
        Err(e) => return failed(base, &caller, &e),
    };
    render(&service, &caller, &Filters::default(), extra).await
}

/// `POST {path}manage/revoke`: asks for a confirmation where the script did not, revokes, and
/// shows the page again with its filters.
pub(super) async fn revoke(
    State(service): State<Arc<SelfService>>,
    Manager(caller): Manager,
    body: Bytes,
) -> Response {
    let base = service.pages_path();
    let form: RevokeForm = match parse(&body) {
        Ok(form) => form,
        Err(e) => return unreadable(base, &e),
    };
    let filters = Filters::from_back(form.back.as_deref());
    let page = format!("{base}manage");
    if form.confirmed.as_deref() != Some("yes") {
        return match service.token(&caller, &form.id).await {
            Ok(record) => {
                let back = filters.query(filters.page);
                let cancel = format!("{page}?{back}");
                let content =
                    confirm_page(&format!("{page}/revoke"), &record, Some(&back), &cancel);
                answer(StatusCode::OK, &frame(base, &caller, None), &content)
            }
            Err(e) => failed(base, &caller, &e),
        };
    }
    match service.revoke(&caller, &form.id).await {
        Ok(record) => {
            let after = Filters {
                revoked: record.id.as_str().to_owned(),
                ..filters
            };
            let query = serde_urlencoded::to_string(&after).unwrap_or_default();
            Redirect::to(&format!("{page}?{query}")).into_response()
        }
        Err(e) => failed(base, &caller, &e),
    }
}

/// The answer to a rotation: the page with its filters and the successor's secret, once.
pub(super) async fn rotated(
    service: &SelfService,
    caller: &Caller,
    filters: &Filters,
    rotated: RotatedToken,
) -> Response {
    let extra = Extra {
        replaced: Some(super::rotate::replaced(&rotated)),
        created: Some(rotated.created),
        ..Extra::default()
    };
    render(service, caller, filters, extra).await
}

pub(super) fn frame<'a>(base: &'a str, caller: &'a Caller, canonical: Option<String>) -> Frame<'a> {
    Frame {
        base,
        title: "Token manager",
        current: Nav::Manage,
        caller: Some(caller),
        canonical,
    }
}

/// What one answer shows besides the filtered list.
#[derive(Default)]
struct Extra {
    status: Option<StatusCode>,
    created: Option<CreatedToken>,
    /// What became of the token a rotation replaced.
    replaced: Option<Markup>,
    form: CreateForm,
    error: Option<(Option<&'static str>, String)>,
}

async fn render(
    service: &SelfService,
    caller: &Caller,
    filters: &Filters,
    extra: Extra,
) -> Response {
    let base = service.pages_path();
    let now = Utc::now();
    let records = match service.all_tokens(caller, None, MAX_TOKENS).await {
        Ok(records) => records,
        Err(e) => return failed(base, caller, &e),
    };
    let (kept, total, problem) = match filters.to_filter() {
        Ok((filter, state)) => {
            let kept: Vec<_> = records
                .iter()
                .filter(|r| state.is_none_or(|s| r.state(now) == s) && filter.keeps(r))
                .collect();
            let total = kept.len();
            let page: Vec<_> = kept
                .into_iter()
                .skip(filters.page.saturating_mul(PAGE))
                .take(PAGE)
                .cloned()
                .collect();
            (page, total, None)
        }
        Err(problem) => (Vec::new(), 0, Some(problem)),
    };
    let revoked = records
        .iter()
        .find(|r| !filters.revoked.is_empty() && r.id.as_str() == filters.revoked)
        .map(|r| format!("Revoked “{}” of {}.", r.description, r.user));
    let choices = Choices::new(&service.bounds(caller, ""), now);
    let back = filters.query(filters.page);
    let table = Table {
        revoke_action: format!("{base}manage/revoke"),
        rotate_action: Some(format!("{base}manage/rotate")),
        show_user: true,
        back: Some(&back),
        empty: "No token matches these filters.",
    };
    let create = Create {
        action: format!("{base}manage"),
        for_user: true,
        choices: &choices,
        values: &extra.form,
        error: extra.error,
    };
    let first = filters.page.saturating_mul(PAGE).saturating_add(1);
    let last = filters.page.saturating_mul(PAGE).saturating_add(kept.len());
    let content = html! {
        p.tg-lead { "Everyone's API tokens. Find them by the filters, revoke them, or make one for someone." }
        @if let Some(text) = &revoked { (notice(Tone::Success, text)) }
        @if let Some(replaced) = &extra.replaced { (replaced) }
        @if let Some(created) = &extra.created { (secret(created)) }
        (filter_form(base, filters))
        section aria-labelledby="tokens-title" {
            h2 #tokens-title { "Tokens" }
            @if let Some(problem) = &problem { (notice(Tone::Error, problem)) }
            @if total > 0 { p.tg-hint role="status" { "Showing " (first) "–" (last) " of " (total) " tokens." } }
            (table.render(&kept, now))
            nav.tg-pages aria-label="Pages" {
                @if filters.page > 0 {
                    a.tg-button.tg-subtle href=(format!("{base}manage?{}", filters.query(filters.page - 1))) { "Previous" }
                }
                @if last < total {
                    a.tg-button.tg-subtle href=(format!("{base}manage?{}", filters.query(filters.page + 1))) { "Next" }
                }
            }
        }
        (create.render())
        (confirm_dialog())
    };
    let canonical = extra.created.is_some().then(|| format!("{base}manage"));
    answer(
        extra.status.unwrap_or(StatusCode::OK),
        &frame(base, caller, canonical),
        &content,
    )
}

fn filter_form(base: &str, f: &Filters) -> Markup {
    let text = |id: &str, name: &str, label: &str, value: &str| {
        html! {
            div.tg-field {
                label for=(id) { (label) }
                input id=(id) type="text" name=(name) value=(value) autocomplete="off" spellcheck="false";
            }
        }
    };
    let date = |id: &str, name: &str, label: &str, value: &str| {
        html! {
            div.tg-field {
                label for=(id) { (label) }
                input id=(id) type="date" name=(name) value=(value);
            }
        }
    };
    let choice = |id: &str, name: &str, label: &str, current: &str, options: &[(&str, &str)]| {
        html! {
            div.tg-field {
                label for=(id) { (label) }
                select id=(id) name=(name) {
                    @for (value, text) in options {
                        option value=(value) selected[*value == current] { (text) }
                    }
                }
            }
        }
    };
    html! {
        form.tg-form.tg-filters method="get" action=(format!("{base}manage")) aria-labelledby="filter-title" {
            h2 #filter-title { "Filter" }
            div.tg-fields {
                (text("f-user", "user", "User", &f.user))
                (text("f-description", "description", "Description", &f.description))
                (choice("f-scope", "scope", "Scope", &f.scope,
                    &[("", "Any scope"), ("read-only", "Read only"), ("read-write", "Read/write")]))
                (choice("f-state", "state", "State", &f.state,
                    &[("", "Any state"), ("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]))
                (date("f-created-from", "created_from", "Created from", &f.created_from))
                (date("f-created-until", "created_until", "Created until", &f.created_until))
                (date("f-used-from", "used_from", "Last used from", &f.used_from))
                (date("f-used-until", "used_until", "Last used until", &f.used_until))
                (date("f-expires-from", "expires_from", "Expires from", &f.expires_from))
                (date("f-expires-until", "expires_until", "Expires until", &f.expires_until))
            }
            p.tg-hint { "Dates are whole days in UTC." }
            div.tg-buttons {
                button.tg-button.tg-primary type="submit" { "Filter" }
                a.tg-button.tg-subtle href=(format!("{base}manage")) { "Clear" }
            }
        }
    }
}
