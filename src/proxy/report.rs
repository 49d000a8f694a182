//! What a decision leaves behind: its log line (one formatter over these events), its audit
//! event and its metric. Nothing here writes a secret.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use http::Method;
use serde_json::json;

use super::Gateway;
use crate::audit::{Attributes, AuditEvent, AuditKind, AuditOutcome, method_name};
use crate::auth::messages::{ANONYMOUS, AuthMessage};
use crate::auth::{AllowList, Decision, NoValidToken, TokenPlace, Unverified};
use crate::telemetry::{AUTH_TARGET, RATE_LIMIT_TARGET, info_line};
use crate::token::TokenRecord;

/// The request reported a report needs.
pub(super) struct Reported<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub client_ip: IpAddr,
    pub request_id: &'a str,
    pub now: DateTime<Utc>,
}

/// The metric label of a decision.
pub(super) fn outcome(decision: &Decision) -> &'static str {
    match decision {
        Decision::PassThrough => "pass_through",
        Decision::Fallback { .. } => "fallback",
        Decision::NoValidToken { .. } => "no_valid_token",
        Decision::IpNotAllowed { .. } => "ip_denied",
        Decision::ScopeDenied { .. } => "scope_denied",
        Decision::RateLimited { .. } => "rate_limited",
        Decision::Allow { .. } => "allowed",
        Decision::TokenOutsideProtectedPaths => "token_outside_protected_paths",
        Decision::TokenOutsideAuthorization { place } => place_reason(*place),
        Decision::StoreUnavailable => "store_unavailable",
        Decision::TooManyFailures { .. } => "too_many_failures",
    }
}

/// The metric label and audit reason of a token outside `Authorization`.
fn place_reason(place: TokenPlace) -> &'static str {
    match place {
        TokenPlace::Query => "token_in_query",
        TokenPlace::Cookie => "token_in_cookie",
    }
}

fn reason_name(reason: NoValidToken) -> &'static str {
    match reason {
        NoValidToken::Foreign => "not_a_token",
        NoValidToken::Invalid(Unverified::Malformed) => "malformed",
        NoValidToken::Invalid(Unverified::UnknownId) => "unknown_id",
        NoValidToken::Invalid(Unverified::WrongSecret) => "wrong_secret",
        NoValidToken::Expired => "expired",
        NoValidToken::Revoked => "revoked",
        NoValidToken::NotOwner => "user_not_owner",
        NoValidToken::NotPermitted => "owner_may_not_use_tokens",
    }
}

/// Writes a decision's line, stamped `now`, under its logger (rate limiting's for a
/// rate-limited request, authentication's for the rest): straight to the log writer where the
/// process has one ([`info_line`]), else through `tracing`.
fn log_line(now: DateTime<Utc>, message: &AuthMessage<'_>) {
    let target = match message {
        AuthMessage::RateLimited { .. } => RATE_LIMIT_TARGET,
        _ => AUTH_TARGET,
    };
    if info_line(target, now, message) {
        return;
    }
    if target == RATE_LIMIT_TARGET {
        tracing::info!(target: RATE_LIMIT_TARGET, "{message}");
    } else {
        tracing::info!(target: AUTH_TARGET, "{message}");
    }
}

/// Writes the decision's log line and audit event.
pub(super) fn report(gateway: &Gateway, decision: &Decision, reported: &Reported<'_>) {
    let fallback = gateway.basic_auth_fallback;
    let path = reported.path;
    let (message, event) = match decision {
        Decision::PassThrough | Decision::StoreUnavailable => return,
        Decision::Fallback { user } => {
            let user = user.as_deref().unwrap_or(ANONYMOUS);
            (
                AuthMessage::Fallback { user, path },
                Event {
                    kind: AuditKind::Fallback,
                    user: Some(user),
                    token: None,
                    attributes: Attributes::empty(),
                },
            )
        }
        Decision::NoValidToken {
            user,
            reason,
            token,
            ..
        } => {
            let shown = user
                .as_deref()
                .filter(|u| !u.is_empty())
                .unwrap_or(ANONYMOUS);
            let kind = if *reason == NoValidToken::Expired {
                AuditKind::ExpiredTokenUsed
            } else {
                AuditKind::AuthFailed
            };
            (
                AuthMessage::NoValidToken {
                    user: shown,
                    fallback,
                    path,
                },
                Event {
                    kind,
                    user: user.as_deref(),
                    // A token whose secret matched (expired, revoked, not the Basic user's) is
                    // named.
                    token: token.as_deref(),
                    attributes: Attributes::Pair("reason", reason_name(*reason)),
                },
            )
        }
        Decision::IpNotAllowed {
            token, refused_by, ..
        } => {
            let (list, nets) = match refused_by {
                AllowList::Token => ("token", &token.allowed_ips),
                AllowList::Global => ("auth.allowed_ips", &gateway.allowed_ips),
            };
            let attributes = json!({
                "client_ip": reported.client_ip.to_string(),
                "allow_list": list,
                "allowed_ips": nets.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            (
                AuthMessage::IpNotAllowed {
                    user: &token.user,
                    ip: reported.client_ip,
                    fallback,
                    path,
                },
                Event::of(token, AuditKind::IpDenied, Attributes::Json(attributes)),
            )
        }
        Decision::ScopeDenied { token, overridden } => {
            let method = overridden.as_deref().unwrap_or(reported.method.as_str());
            (
                AuthMessage::ScopeDenied {
                    user: &token.user,
                    method,
                    path,
                },
                Event::of(
                    token,
                    AuditKind::ScopeDenied,
                    Attributes::Pair("scope", token.scope.as_str()),
                ),
            )
        }
        Decision::RateLimited { token, quota, .. } => (
            AuthMessage::RateLimited {
                user: &token.user,
                quota: *quota,
            },
            Event::of(
                token,
                AuditKind::RateLimited,
                Attributes::Json(json!({ "limit": quota.to_string() })),
            ),
        ),
        Decision::Allow { token, .. } => (
            AuthMessage::success(token, path),
            Event::of(
                token,
                AuditKind::AuthSucceeded,
                Attributes::Pair("scope", token.scope.as_str()),
            ),
        ),
        Decision::TokenOutsideProtectedPaths => (
            AuthMessage::TokenOutsideProtectedPaths { path },
            Event::anonymous(Attributes::Pair("reason", "outside_protected_paths")),
        ),
        Decision::TokenOutsideAuthorization { place } => (
            AuthMessage::TokenOutsideAuthorization {
                place: *place,
                path,
            },
            Event::anonymous(Attributes::Pair("reason", place_reason(*place))),
        ),
        Decision::TooManyFailures { .. } => (
            AuthMessage::TooManyFailures {
                ip: reported.client_ip,
                path,
            },
            Event::anonymous(Attributes::Pair("reason", "too_many_failures")),
        ),
    };
    log_line(reported.now, &message);
    audit(gateway, reported, event);
}

/// What an authentication audit event says beyond the request reported, borrowed from the
/// decision: the user and token are copied only when coverage records the event (the
/// attributes are fixed texts, but for the limit of a rate-limited request).
struct Event<'a> {
    kind: AuditKind,
    user: Option<&'a str>,
    token: Option<&'a TokenRecord>,
    attributes: Attributes,
}

impl<'a> Event<'a> {
    /// An event about `token`'s request.
    fn of(token: &'a TokenRecord, kind: AuditKind, attributes: Attributes) -> Self {
        Self {
            kind,
            user: Some(&token.user),
            token: Some(token),
            attributes,
        }
    }

    /// A refusal that names no user or token.
    fn anonymous(attributes: Attributes) -> Self {
        Self {
            kind: AuditKind::AuthFailed,
            user: None,
            token: None,
            attributes,
        }
    }
}

/// How an authentication decision of type `kind` ended: only a success is forwarded as the
/// token's user, only a fallback is passed on untouched, everything else is refused.
fn outcome_of(kind: AuditKind) -> AuditOutcome {
    match kind {
        AuditKind::AuthSucceeded => AuditOutcome::Allowed,
        AuditKind::Fallback => AuditOutcome::PassedOn,
        _ => AuditOutcome::Denied,
    }
}

fn audit(gateway: &Gateway, reported: &Reported<'_>, event: Event<'_>) {
    if !gateway.audit.wants(event.kind) {
        return;
    }
    gateway.audit.record(AuditEvent {
        time: reported.now,
        kind: event.kind,
        outcome: outcome_of(event.kind),
        user: event.user.map(Into::into),
        token_id: event.token.map(|t| t.id.as_str().into()),
        client_ip: Some(reported.client_ip),
        method: Some(method_name(reported.method)),
        path: Some(reported.path.into()),
        request_id: Some(reported.request_id.into()),
        node_id: Cow::Borrowed(gateway.node_id),
        actor: None,
        attributes: event.attributes,
    });
}

/// Why a verified token's request cannot be forwarded with its user's credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoCredential {
    /// None is stored.
    Missing,
    /// Bitbucket refused the stored one.
    Refused,
}

/// A token that verified, whose user has no usable Bitbucket credential to be forwarded with.
pub(super) fn report_no_credential(
    gateway: &Gateway,
    token: &TokenRecord,
    reported: &Reported<'_>,
    why: NoCredential,
) {
    let (message, reason) = match why {
        NoCredential::Missing => (
            AuthMessage::NoUpstreamCredential {
                user: &token.user,
                path: reported.path,
            },
            "no_upstream_credential",
        ),
        NoCredential::Refused => (
            AuthMessage::UpstreamCredentialRefused {
                user: &token.user,
                path: reported.path,
            },
            "upstream_credential_refused",
        ),
    };
    log_line(reported.now, &message);
    let event = Event::of(
        token,
        AuditKind::AuthFailed,
        Attributes::Pair("reason", reason),
    );
    audit(gateway, reported, event);
}
