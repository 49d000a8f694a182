//! **Audit** (`{path}audit`, `manage_all`): the audit trail, newest first, filtered by user,
//! event type, token and days, a page at a time, and its CSV export. The query, its checks and
//! the export are the admin API's.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Days, NaiveDate};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::layout::{Frame, Nav, Tone, answer, notice};
use super::{Manager, failed, parse, unreadable};
use crate::admin::audit::export;
use crate::admin::audit::{AuditEventView, AuditParams, Format};
use crate::audit::AuditKind;
use crate::selfservice::SelfService;

/// Events per page.
const PAGE: &str = "50";

/// The filters, as the page's GET form sends them; dates are `YYYY-MM-DD`, whole days in UTC.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct Filters {
    #[serde(skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    token_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    from: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    until: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    cursor: String,
}

/// A day as the RFC 3339 time it starts at, `days` later.
fn day_start(label: &str, value: &str, days: u64) -> Result<Option<String>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_add_days(Days::new(days)))
        .map(|d| Some(format!("{}T00:00:00Z", d.format("%Y-%m-%d"))))
        .ok_or_else(|| format!("{label}: {value:?} is not a date such as 2026-01-31"))
}

impl Filters {
    /// The admin API's parameters for these filters.
    fn params(&self, format: &str) -> Result<AuditParams, String> {
        let given = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(AuditParams {
            user: given(&self.user),
            kind: given(&self.kind),
            token_id: given(&self.token_id),
            since: day_start("From", &self.from, 0)?,
            until: day_start("Until", &self.until, 1)?,
            limit: Some(PAGE.to_owned()),
            cursor: given(&self.cursor),
            format: Some(format.to_owned()),
        })
    }

    fn query(&self, cursor: Option<&str>) -> String {
        let plain = Self {
            cursor: cursor.unwrap_or_default().to_owned(),
            ..self.clone()
        };
        serde_urlencoded::to_string(&plain).unwrap_or_default()
    }
}

/// `GET {path}audit`.
pub(super) async fn show(
    State(service): State<Arc<SelfService>>,
    Manager(caller): Manager,
    RawQuery(query): RawQuery,
) -> Response {
    let base = service.pages_path();
    let filters: Filters = match parse(query.unwrap_or_default().as_bytes()) {
        Ok(filters) => filters,
        Err(e) => return unreadable(base, &e),
    };
    let checked = filters
        .params("json")
        .and_then(|p| p.check().map_err(|e| e.message().to_owned()));
    let (events, next, problem) = match checked {
        Ok((query, _)) => match crate::admin::audit::page(&*service.store, query).await {
            Ok(page) => (page.events, page.next_cursor, None),
            Err(e) => return failed(base, &caller, &e),
        },
        Err(problem) => (Vec::new(), None, Some(problem)),
    };
    let content = html! {
        p.tg-lead { "Every token change and authentication the gateway recorded, newest first." }
        (filter_form(base, &filters))
        section aria-labelledby="events-title" {
            div.tg-section-header {
                h2 #events-title { "Events" }
                a.tg-button.tg-subtle href=(format!("{base}audit/export.csv?{}", filters.query(None))) download {
                    "Export CSV"
                }
            }
            @if let Some(problem) = &problem { (notice(Tone::Error, problem)) }
            (table(&events))
            nav.tg-pages aria-label="Pages" {
                @if !filters.cursor.is_empty() {
                    a.tg-button.tg-subtle href=(format!("{base}audit?{}", filters.query(None))) { "Newest" }
                }
                @if let Some(next) = &next {
                    a.tg-button.tg-subtle href=(format!("{base}audit?{}", filters.query(Some(next)))) { "Older" }
                }
            }
        }
    };
    let frame = Frame {
        base,
        title: "Audit",
        current: Nav::Audit,
        caller: Some(&caller),
        canonical: None,
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    answer(status, &frame, &content)
}

/// `GET {path}audit/export.csv`: every event the filters match, as the admin API exports it.
pub(super) async fn export(
    State(service): State<Arc<SelfService>>,
    Manager(caller): Manager,
    RawQuery(query): RawQuery,
) -> Response {
    let base = service.pages_path();
    let filters: Filters = match parse(query.unwrap_or_default().as_bytes()) {
        Ok(filters) => filters,
        Err(e) => return unreadable(base, &e),
    };
    let params = match filters.params("csv") {
        Ok(params) => params,
        Err(problem) => {
            return super::layout::problem(
                base,
                Some(&caller),
                StatusCode::BAD_REQUEST,
                "Request refused",
                &problem,
            );
        }
    };
    let exported = match params.check() {
        Ok((query, _)) => export::stream(Arc::clone(&service.store) as _, query, Format::Csv).await,
        Err(e) => Err(e),
    };
    exported.unwrap_or_else(|e| failed(base, &caller, &e))
}

fn kind_text(kind: &str) -> String {
    let text = kind.replace('_', " ");
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A detail's value: text as it is, anything else as JSON.
fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn table(events: &[AuditEventView]) -> Markup {
    if events.is_empty() {
        return html! { p.tg-empty { "No event matches these filters." } };
    }
    let dash = || html! { span.tg-subtle-text { "–" } };
    html! {
        table.tg-table.tg-audit {
            thead {
                tr {
                    th scope="col" { "Time" }
                    th scope="col" { "Event" }
                    th scope="col" { "User" }
                    th scope="col" { "Token" }
                    th scope="col" { "Client IP" }
                    th scope="col" { "Request" }
                    th scope="col" { "Details" }
                }
            }
            tbody {
                @for e in events {
                    tr {
                        td data-label="Time" { time datetime=(e.time) { (e.time.replace('T', " ").trim_end_matches('Z')) " UTC" } }
                        th scope="row" data-label="Event" {
                            (kind_text(e.kind.as_str()))
                            " " span class=(format!("tg-lozenge tg-outcome-{}", e.outcome.as_str())) { (kind_text(e.outcome.as_str())) }
                        }
                        td data-label="User" { @if let Some(u) = &e.user { (u) } @else { (dash()) } }
                        td data-label="Token" { @if let Some(t) = &e.token_id { code { (t) } } @else { (dash()) } }
                        td data-label="Client IP" { @if let Some(ip) = &e.client_ip { (ip) } @else { (dash()) } }
                        td data-label="Request" {
                            @if let Some(path) = &e.path { code.tg-wrap { (e.method.as_deref().unwrap_or_default()) " " (path) } } @else { (dash()) }
                            @if let Some(id) = &e.request_id { br; span.tg-meta { (id) } }
                        }
                        td data-label="Details" {
                            @if let Some(actor) = &e.actor { span.tg-meta { "by " (actor) } }
                            @if let Some(attributes) = e.attributes.as_object().filter(|o| !o.is_empty()) {
                                ul.tg-details {
                                    @for (name, value) in attributes {
                                        li.tg-wrap { span.tg-subtle-text { (name) ": " } (shown(value)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn filter_form(base: &str, f: &Filters) -> Markup {
    html! {
        form.tg-form.tg-filters method="get" action=(format!("{base}audit")) aria-labelledby="filter-title" {
            h2 #filter-title { "Filter" }
            div.tg-fields {
                div.tg-field {
                    label for="f-user" { "User" }
                    input #f-user type="text" name="user" value=(f.user) autocomplete="off" spellcheck="false";
                }
                div.tg-field {
                    label for="f-type" { "Event" }
                    select #f-type name="type" {
                        option value="" { "Any event" }
                        @for kind in AuditKind::ALL {
                            option value=(kind.as_str()) selected[kind.as_str() == f.kind] { (kind_text(kind.as_str())) }
                        }
                    }
                }
                div.tg-field {
                    label for="f-token" { "Token ID" }
                    input #f-token type="text" name="token_id" value=(f.token_id) autocomplete="off" spellcheck="false";
                }
                div.tg-field {
                    label for="f-from" { "From" }
                    input #f-from type="date" name="from" value=(f.from);
                }
                div.tg-field {
                    label for="f-until" { "Until" }
                    input #f-until type="date" name="until" value=(f.until);
                }
            }
            p.tg-hint { "Dates are whole days in UTC." }
            div.tg-buttons {
                button.tg-button.tg-primary type="submit" { "Filter" }
                a.tg-button.tg-subtle href=(format!("{base}audit")) { "Clear" }
            }
        }
    }
}
