//! Rotating a token from **My API tokens** (the caller's own) or the **Token manager**
//! (anyone's): the Rotate button asks how long the old token keeps working, then the answer
//! shows the successor's secret, once, and until when the old one works. The successor copies
//! the old token's scope, addresses and expiry.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Tone, answer, notice, time};
use super::views::no_check;
use super::{Manager, Signed, failed, manage, mine, parse, unreadable};
use crate::lifecycle::{MAX_GRACE, RotatedToken};
use crate::selfservice::{Caller, SelfService};
use crate::token::TokenRecord;

/// How long the old token may keep working, as offered: seconds and words.
const GRACES: [(u64, &str); 5] = [
    (0, "Stops at once"),
    (3_600, "1 hour"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days"),
];
/// The grace chosen unless the person picks another: a day to update what uses the token.
const DEFAULT_GRACE: u64 = 86_400;
const _: () = assert!(GRACES[4].0 == MAX_GRACE.as_secs());

#[derive(Debug, Deserialize)]
pub(super) struct RotateForm {
    id: String,
    /// `yes` once the person chose the grace.
    #[serde(default)]
    confirmed: Option<String>,
    /// Seconds the old token keeps working.
    #[serde(default)]
    grace: Option<u64>,
    /// The filters of the token manager's page the form is on.
    #[serde(default)]
    back: Option<String>,
}

/// `POST {path}rotate`: without a confirmation, the page asking for the grace; with one, the
/// rotation, answered by the page with the successor's secret.
pub(super) async fn rotate(
    State(service): State<Arc<SelfService>>,
    Signed(caller): Signed,
    body: Bytes,
) -> Response {
    rotate_from(&service, &caller, &body, Page::Mine).await
}

/// `POST {path}manage/rotate`: as [`rotate`], for anyone's token, from the token manager's
/// page (whose filters the answer keeps).
pub(super) async fn rotate_any(
    State(service): State<Arc<SelfService>>,
    Manager(caller): Manager,
    body: Bytes,
) -> Response {
    rotate_from(&service, &caller, &body, Page::Manager).await
}

/// The page a rotation is asked for from, and answered on.
#[derive(Debug, Clone, Copy)]
enum Page {
    /// **My API tokens**.
    Mine,
    /// The **Token manager**, whose filters travel in the form's `back`.
    Manager,
}

async fn rotate_from(service: &SelfService, caller: &Caller, body: &[u8], page: Page) -> Response {
    let base = service.pages_path();
    let form: RotateForm = match parse(body) {
        Ok(form) => form,
        Err(e) => return unreadable(base, &e),
    };
    let filters = match page {
        Page::Mine => None,
        Page::Manager => Some(manage::Filters::from_back(form.back.as_deref())),
    };
    if form.confirmed.as_deref() != Some("yes") {
        return match service.token(caller, &form.id).await {
            Ok(record) => {
                let (frame, question) = match &filters {
                    None => (
                        mine::frame(base, caller, None),
                        ask(&format!("{base}rotate"), &record, None, base),
                    ),
                    Some(filters) => {
                        let back = filters.query(filters.page);
                        let cancel = format!("{base}manage?{back}");
                        let action = format!("{base}manage/rotate");
                        (
                            manage::frame(base, caller, None),
                            ask(&action, &record, Some(&back), &cancel),
                        )
                    }
                };
                answer(StatusCode::OK, &frame, &question)
            }
            Err(e) => failed(base, caller, &e),
        };
    }
    let grace = Duration::from_secs(form.grace.unwrap_or(0));
    match (service.rotate(caller, &form.id, grace).await, &filters) {
        (Ok(rotated), None) => mine::rotated(service, caller, rotated).await,
        (Ok(rotated), Some(filters)) => manage::rotated(service, caller, filters, rotated).await,
        (Err(e), _) => failed(base, caller, &e),
    }
}

/// The question before a rotation: how long the old token keeps working.
fn ask(action: &str, record: &TokenRecord, back: Option<&str>, cancel: &str) -> Markup {
    html! {
        section.tg-form aria-labelledby="rotate-title" {
            h2 #rotate-title { "Rotate “" (record.description) "”?" }
            p.tg-hint { "A token of " (record.user) ", ID " code { (record.id) } "." }
            p {
                "A new token with the same scope, addresses and expiry replaces this one. Its \
                 secret is shown once, on the next page."
            }
            form #rotate method="post" action=(action) {
                (no_check())
                input type="hidden" name="id" value=(record.id);
                input type="hidden" name="confirmed" value="yes";
                @if let Some(back) = back { input type="hidden" name="back" value=(back); }
                div.tg-fields {
                    div.tg-field {
                        label for="grace" { "The old token" }
                        select #grace name="grace" aria-describedby="grace-hint" {
                            @for (seconds, label) in GRACES {
                                option value=(seconds) selected[seconds == DEFAULT_GRACE] {
                                    @if seconds == 0 { (label) } @else { "Keeps working for " (label) }
                                }
                            }
                        }
                        span #grace-hint.tg-hint { "Time to give what uses it the new token." }
                    }
                }
                div.tg-buttons {
                    button.tg-button.tg-primary type="submit" { "Rotate" }
                    a.tg-button.tg-subtle href=(cancel) { "Cancel" }
                }
            }
        }
    }
}

/// What the answer to a rotation says of the old token.
pub(super) fn replaced(rotated: &RotatedToken) -> Markup {
    let old = &rotated.replaces;
    match (old.revoked_at, old.expires_at) {
        (None, Some(until)) => html! {
            div.tg-notice.tg-success role="status" {
                p { "Rotated “" (old.description) "”. The old token keeps working until " (time(until)) "." }
            }
        },
        _ => notice(
            Tone::Success,
            &format!(
                "Rotated “{}”. The old token is revoked: anything still using it is refused from now on.",
                old.description
            ),
        ),
    }
}
