//! What a decision leaves behind: its log line (one formatter over these events), its audit
//! event and its metric. Nothing here writes a secret.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Gateway;
use crate::audit::{AuditEvent, AuditKind, AuditOutcome};
use crate::auth::messages::{ANONYMOUS, AuthMessage};
use crate::auth::{Decision, Invalid, NoValidToken};
use crate::telemetry::{AUTH_TARGET, RATE_LIMIT_TARGET};
use crate::token::TokenRecord;

/// The request facts a report needs.
pub(super) struct Facts<'a> {
    pub method: &'a str,
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
        Decision::StoreUnavailable => "store_unavailable",
        Decision::TooManyFailures { .. } => "too_many_failures",
    }
}

fn reason_name(reason: NoValidToken) -> &'static str {
    match reason {
        NoValidToken::Foreign => "not_a_token",
        NoValidToken::Invalid(Invalid::Malformed) => "malformed",
        NoValidToken::Invalid(Invalid::UnknownId) => "unknown_id",
        NoValidToken::Invalid(Invalid::WrongSecret) => "wrong_secret",
        NoValidToken::Expired => "expired",
        NoValidToken::Revoked => "revoked",
        NoValidToken::NotOwner => "user_not_owner",
    }
}

/// Writes the decision's log line and audit event.
pub(super) fn report(gateway: &Gateway, decision: &Decision, facts: &Facts<'_>) {
    let fallback = gateway.basic_auth_fallback;
    let path = facts.path;
    let (kind, outcome, user, token_id, attributes) = match decision {
        Decision::PassThrough | Decision::StoreUnavailable => return,
        Decision::Fallback { user } => {
            let user = user.as_deref().unwrap_or(ANONYMOUS);
            tracing::info!(target: AUTH_TARGET, "{}", AuthMessage::Fallback { user, path });
            (
                AuditKind::Fallback,
                AuditOutcome::PassedOn,
                Some(user.to_owned()),
                None,
                json!({}),
            )
        }
        Decision::NoValidToken { user, reason, .. } => {
            let shown = user
                .as_deref()
                .filter(|u| !u.is_empty())
                .unwrap_or(ANONYMOUS);
            tracing::info!(target: AUTH_TARGET, "{}", AuthMessage::NoValidToken { user: shown, fallback, path });
            let kind = if *reason == NoValidToken::Expired {
                AuditKind::ExpiredTokenUsed
            } else {
                AuditKind::AuthFailed
            };
            (
                kind,
                AuditOutcome::Denied,
                user.clone(),
                None,
                json!({ "reason": reason_name(*reason) }),
            )
        }
        Decision::IpNotAllowed { token, .. } => {
            tracing::info!(target: AUTH_TARGET, "{}", AuthMessage::IpNotAllowed { user: &token.user, ip: facts.client_ip, fallback, path });
            (
                AuditKind::IpDenied,
                AuditOutcome::Denied,
                Some(token.user.clone()),
                Some(token.id.to_string()),
                json!({}),
            )
        }
        Decision::ScopeDenied { token } => {
            tracing::info!(target: AUTH_TARGET, "{}", AuthMessage::ScopeDenied { user: &token.user, method: facts.method, path });
            (
                AuditKind::ScopeDenied,
                AuditOutcome::Denied,
                Some(token.user.clone()),
                Some(token.id.to_string()),
                json!({ "scope": token.scope.as_str() }),
            )
        }
        Decision::RateLimited { token, quota, .. } => {
            tracing::info!(target: RATE_LIMIT_TARGET, "{}", AuthMessage::RateLimited { user: &token.user, quota: *quota });
            (
                AuditKind::RateLimited,
                AuditOutcome::Denied,
                Some(token.user.clone()),
                Some(token.id.to_string()),
                json!({ "limit": quota.to_string() }),
            )
        }
        Decision::Allow { token, .. } => {
            tracing::info!(
                target: AUTH_TARGET,
                "{}",
                AuthMessage::Success {
                    description: &token.description,
                    scope: token.scope,
                    user: &token.user,
                    created_at: token.created_at,
                    path,
                }
            );
            (
                AuditKind::AuthSucceeded,
                AuditOutcome::Allowed,
                Some(token.user.clone()),
                Some(token.id.to_string()),
                json!({ "scope": token.scope.as_str() }),
            )
        }
        Decision::TokenOutsideProtectedPaths => {
            tracing::info!(target: AUTH_TARGET, "{}", AuthMessage::TokenOutsideProtectedPaths { path });
            (
                AuditKind::AuthFailed,
                AuditOutcome::Denied,
                None,
                None,
                json!({ "reason": "outside_protected_paths" }),
            )
        }
        Decision::TooManyFailures { .. } => {
            tracing::info!(target: AUTH_TARGET, "{}", AuthMessage::TooManyFailures { ip: facts.client_ip, path });
            (
                AuditKind::AuthFailed,
                AuditOutcome::Denied,
                None,
                None,
                json!({ "reason": "too_many_failures" }),
            )
        }
    };
    let event = Event {
        kind,
        outcome,
        user,
        token_id,
        attributes,
    };
    audit(gateway, facts, event);
}

/// What an authentication audit event says beyond the request facts.
struct Event {
    kind: AuditKind,
    outcome: AuditOutcome,
    user: Option<String>,
    token_id: Option<String>,
    attributes: serde_json::Value,
}

fn audit(gateway: &Gateway, facts: &Facts<'_>, event: Event) {
    if !gateway.audit.wants(event.kind) {
        return;
    }
    gateway.audit.record(AuditEvent {
        time: facts.now,
        kind: event.kind,
        outcome: event.outcome,
        user: event.user,
        token_id: event.token_id,
        client_ip: Some(facts.client_ip),
        method: Some(facts.method.to_owned()),
        path: Some(facts.path.to_owned()),
        request_id: Some(facts.request_id.to_owned()),
        node_id: gateway.node_id.clone(),
        actor: None,
        attributes: event.attributes,
    });
}

/// A token that verified, whose user has no stored Bitbucket credential to be forwarded with.
pub(super) fn report_no_credential(gateway: &Gateway, token: &TokenRecord, facts: &Facts<'_>) {
    tracing::info!(
        target: AUTH_TARGET,
        "{}",
        AuthMessage::NoUpstreamCredential { user: &token.user, path: facts.path }
    );
    let event = Event {
        kind: AuditKind::AuthFailed,
        outcome: AuditOutcome::Denied,
        user: Some(token.user.clone()),
        token_id: Some(token.id.to_string()),
        attributes: json!({ "reason": "no_upstream_credential" }),
    };
    audit(gateway, facts, event);
}
