//! The parts the token pages share: the table of tokens with its Rotate and Revoke buttons,
//! the create form, the new token's secret with its Copy button, and the revoke confirmation.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use secrecy::ExposeSecret as _;

use super::form::{Choices, CreateForm, NO_CHECK_FIELD};
use super::layout::{lozenge, maybe_time, time};
use crate::lifecycle::CreatedToken;
use crate::token::{Scope, TokenRecord, TokenState};

/// The hidden field every page form carries: the form's `X-Atlassian-Token: no-check`.
pub(super) fn no_check() -> Markup {
    html! { input type="hidden" name=(NO_CHECK_FIELD) value="no-check"; }
}

fn scope_text(scope: Scope) -> &'static str {
    match scope {
        Scope::ReadOnly => "Read only",
        Scope::ReadWrite => "Read/write",
    }
}

/// How a table of tokens is shown.
pub(super) struct Table<'a> {
    /// Where the Revoke forms post.
    pub(super) revoke_action: String,
    /// Where the Rotate forms post, where the caller may rotate.
    pub(super) rotate_action: Option<String>,
    /// Show each token's user (the token manager).
    pub(super) show_user: bool,
    /// Hidden `back` field of the Revoke forms: the page's filters, kept after revoking.
    pub(super) back: Option<&'a str>,
    /// What to say when there are no tokens.
    pub(super) empty: &'a str,
}

impl Table<'_> {
    pub(super) fn render(&self, records: &[TokenRecord], now: DateTime<Utc>) -> Markup {
        if records.is_empty() {
            return html! { p.tg-empty { (self.empty) } };
        }
        html! {
            table.tg-table {
                thead {
                    tr {
                        @if self.show_user { th scope="col" { "User" } }
                        th scope="col" { "Description" }
                        th scope="col" { "Scope" }
                        th scope="col" { "Created" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Last used" }
                        th scope="col" { "State" }
                        th scope="col" { span.tg-sr { "Actions" } }
                    }
                }
                tbody {
                    @for record in records { (self.row(record, now)) }
                }
            }
        }
    }

    fn row(&self, r: &TokenRecord, now: DateTime<Utc>) -> Markup {
        let state = r.state(now);
        let ips = r
            .allowed_ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        html! {
            tr data-token=(r.id) {
                @if self.show_user { td data-label="User" { (r.user) } }
                th scope="row" data-label="Description" {
                    span.tg-description { (r.description) }
                    span.tg-meta {
                        "ID " code { (r.id) }
                        @if !ips.is_empty() { " · from " (ips) }
                    }
                }
                td data-label="Scope" { (scope_text(r.scope)) }
                td data-label="Created" { (time(r.created_at)) }
                td data-label="Expires" { (maybe_time(r.expires_at, "Never")) }
                td data-label="Last used" {
                    (maybe_time(r.last_used_at, "Never"))
                    @if let Some(ip) = r.last_used_ip { br; span.tg-meta { "from " (ip) } }
                }
                td data-label="State" { (lozenge(state)) }
                td.tg-actions {
                    @if let Some(action) = self.rotate_action.as_deref().filter(|_| state == TokenState::Active) {
                        form method="post" action=(action) {
                            (no_check())
                            input type="hidden" name="id" value=(r.id);
                            @if let Some(back) = self.back { input type="hidden" name="back" value=(back); }
                            button.tg-button.tg-subtle type="submit"
                                aria-label=(format!("Rotate “{}”", r.description)) { "Rotate" }
                        }
                    }
                    @if state != TokenState::Revoked {
                        form method="post" action=(self.revoke_action)
                            data-confirm=(format!("Revoke “{}”? Anything using it stops working at once. This cannot be undone.", r.description)) {
                            (no_check())
                            input type="hidden" name="id" value=(r.id);
                            @if let Some(back) = self.back { input type="hidden" name="back" value=(back); }
                            button.tg-button.tg-subtle type="submit"
                                aria-label=(format!("Revoke “{}”", r.description)) { "Revoke" }
                        }
                    }
                }
            }
        }
    }
}

/// The create form.
pub(super) struct Create<'a> {
    pub(super) action: String,
    /// Ask for whom (the token manager).
    pub(super) for_user: bool,
    pub(super) choices: &'a Choices,
    /// What was entered, when the form comes back with a refusal.
    pub(super) values: &'a CreateForm,
    /// The refusal: the field's label, where it names one, and the text.
    pub(super) error: Option<(Option<&'static str>, String)>,
}

impl Create<'_> {
    pub(super) fn render(&self) -> Markup {
        let v = self.values;
        let invalid = |label: &str| {
            self.error
                .as_ref()
                .is_some_and(|(l, _)| *l == Some(label))
                .then_some("true")
        };
        let scope = if v.scope.is_empty() {
            "read-only"
        } else {
            v.scope.as_str()
        };
        let expires = if v.expires.is_empty() {
            self.choices.default_expiry.as_str()
        } else {
            v.expires.as_str()
        };
        html! {
            form #create.tg-form method="post" action=(self.action) aria-labelledby="create-title" {
                h2 #create-title { @if self.for_user { "Create a token for a user" } @else { "Create a token" } }
                @if let Some((_, message)) = &self.error {
                    div.tg-notice.tg-error role="alert" { p { (message) } }
                }
                (no_check())
                div.tg-fields {
                    @if self.for_user {
                        div.tg-field {
                            label for="user" { "User" }
                            input #user type="text" name="user" required autocomplete="off"
                                spellcheck="false" value=[v.user.as_deref()] aria-invalid=[invalid("User")];
                        }
                    }
                    div.tg-field.tg-wide {
                        label for="description" { "Description" }
                        input #description type="text" name="description" required maxlength="255"
                            value=(v.description) aria-describedby="description-hint"
                            aria-invalid=[invalid("Description")];
                        span #description-hint.tg-hint { "Says what uses the token; shown in the gateway's log." }
                    }
                    div.tg-field {
                        label for="scope" { "Scope" }
                        select #scope name="scope" aria-invalid=[invalid("Scope")] {
                            option value="read-only" selected[scope == "read-only"] { "Read only" }
                            @if self.choices.read_write {
                                option value="read-write" selected[scope == "read-write"] { "Read/write" }
                            }
                        }
                    }
                    div.tg-field {
                        label for="expires" { "Expires" }
                        select #expires name="expires" aria-invalid=[invalid("Expires")] {
                            @for (value, label) in &self.choices.expiries {
                                option value=(value) selected[value == expires] { "In " (label) }
                            }
                        }
                    }
                    div.tg-field.tg-wide {
                        label for="allowed_ips" { "Allowed IPs" }
                        input #allowed_ips type="text" name="allowed_ips" value=(v.allowed_ips)
                            autocomplete="off" spellcheck="false" inputmode="text"
                            placeholder="10.0.0.0/8, 2001:db8::/32" aria-describedby="allowed_ips-hint"
                            aria-invalid=[invalid("Allowed IPs")];
                        span #allowed_ips-hint.tg-hint { "Addresses or CIDRs, separated by commas. Empty: any address." }
                    }
                }
                div.tg-buttons { button.tg-button.tg-primary type="submit" { "Create token" } }
            }
        }
    }
}

/// The new token's secret, shown this once, with a Copy button.
pub(super) fn secret(created: &CreatedToken) -> Markup {
    html! {
        section.tg-secret aria-labelledby="secret-title" {
            h2 #secret-title { "Your new token “" (created.record.description) "”" }
            p { strong { "Copy it now." } " It is shown this once: tokengate keeps only a hash of it." }
            div.tg-copy {
                label.tg-sr for="secret" { "New token" }
                input #secret type="text" readonly value=(created.token.expose_secret())
                    autocomplete="off" spellcheck="false" data-secret;
                button.tg-button.tg-primary type="button" data-copy="secret" data-status="secret-status" hidden { "Copy" }
            }
            p #secret-status.tg-hint role="status" {}
            p.tg-hint {
                "Send it as " code { "Authorization: Bearer …" } ", or as the password with the user name "
                code { (created.record.user) } "."
            }
        }
    }
}

/// The dialog the script asks for a revoke's confirmation in.
pub(super) fn confirm_dialog() -> Markup {
    html! {
        dialog #tg-confirm.tg-dialog aria-labelledby="tg-confirm-title" aria-describedby="tg-confirm-text" {
            form method="dialog" {
                h2 #tg-confirm-title { "Revoke token" }
                p #tg-confirm-text {}
                div.tg-buttons {
                    button.tg-button.tg-danger type="submit" value="revoke" { "Revoke" }
                    button.tg-button.tg-subtle type="submit" value="cancel" autofocus { "Cancel" }
                }
            }
        }
    }
}

/// The confirmation asked without the script: the same form again, confirmed.
pub(super) fn confirm_page(
    action: &str,
    record: &TokenRecord,
    back: Option<&str>,
    cancel: &str,
) -> Markup {
    html! {
        section.tg-form aria-labelledby="confirm-title" {
            h2 #confirm-title { "Revoke “" (record.description) "”?" }
            p { "Anything using this token stops working at once. This cannot be undone." }
            form method="post" action=(action) {
                (no_check())
                input type="hidden" name="id" value=(record.id);
                input type="hidden" name="confirmed" value="yes";
                @if let Some(back) = back { input type="hidden" name="back" value=(back); }
                div.tg-buttons {
                    button.tg-button.tg-danger type="submit" { "Revoke" }
                    a.tg-button.tg-subtle href=(cancel) { "Cancel" }
                }
            }
        }
    }
}
