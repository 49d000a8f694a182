//! **My API tokens** (`{path}`): the caller's tokens, the create form and, in the answer to a
//! create or a rotation, the new token's secret; revoking after a confirmation.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::form::{Choices, CreateForm, labelled};
use super::layout::{Frame, Nav, Tone, answer, notice};
use super::views::{Create, Table, confirm_dialog, confirm_page, secret};
use super::{Signed, failed, parse, unreadable};
use crate::admin::error::ApiError;
use crate::lifecycle::{CreatedToken, LifecycleError, RotatedToken};
use crate::selfservice::{Caller, SelfService};
use crate::token::Scope;

/// Most of one person's tokens listed.
const MAX_LISTED: usize = 1_000;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MineQuery {
    /// The id of a token just revoked, to say so.
    revoked: Option<String>,
}

/// What one answer of the page shows besides the list.
#[derive(Default)]
struct Shown {
    status: Option<StatusCode>,
    revoked: Option<String>,
    created: Option<CreatedToken>,
    /// What became of the token a rotation replaced.
    replaced: Option<Markup>,
    form: CreateForm,
    error: Option<(Option<&'static str>, String)>,
}

/// `GET {path}`.
pub(super) async fn show(
    State(service): State<Arc<SelfService>>,
    Signed(caller): Signed,
    RawQuery(query): RawQuery,
) -> Response {
    let base = service.pages_path();
    let query: MineQuery = match parse(query.unwrap_or_default().as_bytes()) {
        Ok(query) => query,
        Err(e) => return unreadable(base, &e),
    };
    let shown = Shown {
        revoked: query.revoked,
        ..Shown::default()
    };
    render(&service, &caller, shown).await
}

/// `POST {path}`: creates a token for the caller; the answer shows its secret, once.
pub(super) async fn create(
    State(service): State<Arc<SelfService>>,
    Signed(caller): Signed,
    body: Bytes,
) -> Response {
    let base = service.pages_path();
    let form: CreateForm = match parse(&body) {
        Ok(form) => form,
        Err(e) => return unreadable(base, &e),
    };
    let now = Utc::now();
    let choices = Choices::new(&service.bounds(&caller, &caller.user), now);
    let outcome = match form.input(&choices, now) {
        Ok(mut input) => {
            input.user = None;
            service.create(&caller, input, Scope::ReadOnly).await
        }
        Err(invalid) => Err(ApiError::from(LifecycleError::from(invalid))),
    };
    let shown = match outcome {
        Ok(created) => Shown {
            created: Some(created),
            ..Shown::default()
        },
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => Shown {
            status: Some(StatusCode::UNPROCESSABLE_ENTITY),
            error: Some(labelled(e.message())),
            form,
            ..Shown::default()
        },
        Err(e) => return failed(base, &caller, &e),
    };
    render(&service, &caller, shown).await
}

#[derive(Debug, Deserialize)]
pub(super) struct RevokeForm {
    pub(super) id: String,
    /// `yes` once the person confirmed.
    #[serde(default)]
    pub(super) confirmed: Option<String>,
    /// The filters of the page the form is on.
    #[serde(default)]
    pub(super) back: Option<String>,
}

/// `POST {path}revoke`: asks for a confirmation where the script did not, then revokes and
/// shows the page again.
pub(super) async fn revoke(
    State(service): State<Arc<SelfService>>,
    Signed(caller): Signed,
    body: Bytes,
) -> Response {
    let base = service.pages_path();
    let form: RevokeForm = match parse(&body) {
        Ok(form) => form,
        Err(e) => return unreadable(base, &e),
    };
    if form.confirmed.as_deref() != Some("yes") {
        return match service.token(&caller, &form.id).await {
            Ok(record) => {
                let frame = frame(base, &caller, None);
                let action = format!("{base}revoke");
                answer(
                    StatusCode::OK,
                    &frame,
                    &confirm_page(&action, &record, None, base),
                )
            }
            Err(e) => failed(base, &caller, &e),
        };
    }
    match service.revoke(&caller, &form.id).await {
        Ok(record) => {
            let query =
                serde_urlencoded::to_string([("revoked", record.id.as_str())]).unwrap_or_default();
            Redirect::to(&format!("{base}?{query}")).into_response()
        }
        Err(e) => failed(base, &caller, &e),
    }
}

/// The answer to a rotation: the page with the successor's secret, once.
pub(super) async fn rotated(
    service: &SelfService,
    caller: &Caller,
    rotated: RotatedToken,
) -> Response {
    let shown = Shown {
        replaced: Some(super::rotate::replaced(&rotated)),
        created: Some(rotated.created),
        ..Shown::default()
    };
    render(service, caller, shown).await
}

pub(super) fn frame<'a>(base: &'a str, caller: &'a Caller, canonical: Option<String>) -> Frame<'a> {
    Frame {
        base,
        title: "My API tokens",
        current: Nav::Mine,
        caller: Some(caller),
        canonical,
    }
}

async fn render(service: &SelfService, caller: &Caller, shown: Shown) -> Response {
    let base = service.pages_path();
    let records = match service
        .all_tokens(caller, Some(caller.user.clone()), MAX_LISTED)
        .await
    {
        Ok(records) => records,
        Err(e) => return failed(base, caller, &e),
    };
    let now = Utc::now();
    let choices = Choices::new(&service.bounds(caller, &caller.user), now);
    let revoked = shown.revoked.as_deref().and_then(|id| {
        records.iter().find(|r| r.id.as_str() == id).map(|r| {
            format!(
                "Revoked “{}”. Anything still using it is refused from now on.",
                r.description
            )
        })
    });
    let create = Create {
        action: base.to_owned(),
        for_user: false,
        choices: &choices,
        values: &shown.form,
        error: shown.error,
    };
    let table = Table {
        revoke_action: format!("{base}revoke"),
        rotate_action: caller.granted.create_own.then(|| format!("{base}rotate")),
        show_user: false,
        back: None,
        empty: "You have no API tokens yet.",
    };
    let content = html! {
        p.tg-lead {
            "API tokens let scripts and tools use Bitbucket's REST API and Git over HTTP as you, \
             limited to a scope, the addresses you allow and an expiry."
        }
        @if let Some(text) = &revoked { (notice(Tone::Success, text)) }
        @if let Some(replaced) = &shown.replaced { (replaced) }
        @if let Some(created) = &shown.created { (secret(created)) }
        @if caller.granted.create_own {
            (create.render())
        } @else {
            (notice(Tone::Info, "You may not create tokens yourself here. Your Bitbucket administrator can make one for you."))
        }
        section aria-labelledby="tokens-title" {
            h2 #tokens-title { "Your tokens" }
            (table.render(&records, now))
            @if records.len() >= MAX_LISTED { p.tg-hint { "Showing your newest " (MAX_LISTED) " tokens." } }
        }
        (confirm_dialog())
    };
    let canonical = shown.created.is_some().then(|| base.to_owned());
    let status = shown.status.unwrap_or(StatusCode::OK);
    answer(status, &frame(base, caller, canonical), &content)
}
