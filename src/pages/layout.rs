//! The frame every page shares, laid out as Bitbucket lays out its own: a header bar with the
//! navigation this person may use, a page header, then the content. Also the small pieces the
//! pages repeat: times, lozenges, notices and the problem page.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use crate::selfservice::Caller;
use crate::token::TokenState;

/// Which page is showing, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Mine,
    Manage,
    Audit,
    /// A problem page: nothing current.
    None,
}

/// The frame of one page.
pub(super) struct Frame<'a> {
    /// `self_service.path`.
    pub(super) base: &'a str,
    pub(super) title: &'a str,
    pub(super) current: Nav,
    /// Who is signed in; none on a problem page shown before sign-in.
    pub(super) caller: Option<&'a Caller>,
    /// Where a reload of this answer should go instead of posting again (the answer to a
    /// create, which shows the secret).
    pub(super) canonical: Option<String>,
}

impl Frame<'_> {
    /// The whole document around `content`.
    pub(super) fn render(&self, content: &Markup) -> Markup {
        let base = self.base;
        let manager = self.caller.is_some_and(|c| c.granted.manage_all);
        let link = |nav: Nav, href: String, text: &str| {
            html! {
                li {
                    a href=(href) aria-current=[(self.current == nav).then_some("page")] { (text) }
                }
            }
        };
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="color-scheme" content="light dark";
                    meta name="referrer" content="same-origin";
                    title { (self.title) " · tokengate" }
                    link rel="stylesheet" href=(assets::url(base, &assets::CSS));
                    script src=(assets::url(base, &assets::JS)) defer {}
                }
                body data-canonical=[self.canonical.as_deref()] {
                    a.tg-skip href="#main" { "Skip to content" }
                    header.tg-header {
                        a.tg-brand href="/" { span.tg-logo aria-hidden="true" {} "Bitbucket" }
                        @if let Some(caller) = self.caller {
                            nav.tg-nav aria-label="API tokens" {
                                ul {
                                    (link(Nav::Mine, base.to_owned(), "My API tokens"))
                                    @if manager {
                                        (link(Nav::Manage, format!("{base}manage"), "Token manager"))
                                        (link(Nav::Audit, format!("{base}audit"), "Audit"))
                                    }
                                }
                            }
                            p.tg-user { span.tg-sr { "Signed in as " } (caller.user) }
                        }
                    }
                    main #main.tg-main tabindex="-1" {
                        header.tg-page-header { h1 { (self.title) } }
                        (content)
                    }
                }
            }
        }
    }
}

/// An answer with `status` and the page `frame` around `content`.
pub(super) fn answer(status: StatusCode, frame: &Frame<'_>, content: &Markup) -> Response {
    (status, Html(frame.render(content).into_string())).into_response()
}

/// A page that explains why nothing else can be shown.
pub(super) fn problem(
    base: &str,
    caller: Option<&Caller>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let frame = Frame {
        base,
        title,
        current: Nav::None,
        caller,
        canonical: None,
    };
    let content = html! {
        (notice(Tone::Error, text))
        p { a href=(base) { "Back to my API tokens" } " · " a href="/" { "Back to Bitbucket" } }
    };
    answer(status, &frame, &content)
}

/// The tone of a notice.
#[derive(Debug, Clone, Copy)]
pub(super) enum Tone {
    Success,
    Error,
    Info,
}

/// A message box; errors are announced at once by screen readers.
pub(super) fn notice(tone: Tone, text: &str) -> Markup {
    let (class, role) = match tone {
        Tone::Success => ("tg-notice tg-success", "status"),
        Tone::Error => ("tg-notice tg-error", "alert"),
        Tone::Info => ("tg-notice tg-info", "status"),
    };
    html! { div class=(class) role=(role) { p { (text) } } }
}

/// A time as the pages show it, in UTC, with its machine-readable form.
pub(super) fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M UTC"))
        }
    }
}

/// A time or a dash-like word for none.
pub(super) fn maybe_time(at: Option<DateTime<Utc>>, none: &str) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span.tg-subtle-text { (none) } },
    }
}

/// A token's state as a lozenge.
pub(super) fn lozenge(state: TokenState) -> Markup {
    let (class, text) = match state {
        TokenState::Active => ("tg-lozenge tg-lozenge-success", "Active"),
        TokenState::Expired => ("tg-lozenge tg-lozenge-moved", "Expired"),
        TokenState::Revoked => ("tg-lozenge tg-lozenge-removed", "Revoked"),
    };
    html! { span class=(class) { (text) } }
}
