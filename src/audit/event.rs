//! One audit event, its fixed set of types, and the filter that queries them.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use http::Method;
use serde::{Deserialize, Serialize};

use super::Attributes;

/// The type of an audit event: a fixed set, never free text (details go into `attributes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    TokenCreated,
    TokenChanged,
    TokenRevoked,
    CredentialSet,
    AuthSucceeded,
    AuthFailed,
    ExpiredTokenUsed,
    ScopeDenied,
    IpDenied,
    RateLimited,
    Fallback,
    /// A user's stored Bitbucket credential was deleted.
    CredentialDeleted,
    /// A token's owner was told (by `notify.webhook_url`) that it is about to expire.
    TokenExpiryNotified,
}

impl AuditKind {
    /// Every kind, in a stable order: SQLite's audit segments store a kind as its position
    /// here, so a new kind is only ever appended.
    pub const ALL: [Self; 13] = [
        Self::TokenCreated,
        Self::TokenChanged,
        Self::TokenRevoked,
        Self::CredentialSet,
        Self::AuthSucceeded,
        Self::AuthFailed,
        Self::ExpiredTokenUsed,
        Self::ScopeDenied,
        Self::IpDenied,
        Self::RateLimited,
        Self::Fallback,
        Self::CredentialDeleted,
        Self::TokenExpiryNotified,
    ];

    /// The stored and JSON name, `token_created` etc.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenCreated => "token_created",
            Self::TokenChanged => "token_changed",
            Self::TokenRevoked => "token_revoked",
            Self::CredentialSet => "credential_set",
            Self::AuthSucceeded => "auth_succeeded",
            Self::AuthFailed => "auth_failed",
            Self::ExpiredTokenUsed => "expired_token_used",
            Self::ScopeDenied => "scope_denied",
            Self::IpDenied => "ip_denied",
            Self::RateLimited => "rate_limited",
            Self::Fallback => "fallback",
            Self::CredentialDeleted => "credential_deleted",
            Self::TokenExpiryNotified => "token_expiry_notified",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// True for token lifecycle and admin events (recorded from coverage `base` up); false for
    /// authentication decisions (coverage `full`).
    pub fn is_lifecycle(self) -> bool {
        matches!(
            self,
            Self::TokenCreated
                | Self::TokenChanged
                | Self::TokenRevoked
                | Self::CredentialSet
                | Self::CredentialDeleted
                | Self::TokenExpiryNotified
        )
    }
}

/// How the event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Forwarded upstream as the token's user, or a lifecycle change applied.
    Allowed,
    /// Refused at the gateway.
    Denied,
    /// Passed on untouched to Bitbucket's own authenticator.
    PassedOn,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::PassedOn => "passed_on",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Allowed, Self::Denied, Self::PassedOn]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// An event as recorded. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub time: DateTime<Utc>,
    pub kind: AuditKind,
    pub outcome: AuditOutcome,
    /// The Bitbucket user concerned (token owner, or the name a client presented). This and
    /// the other per-request texts are kept in the event itself up to 24 bytes: an
    /// authentication event allocates nothing on the worker and frees nothing on the writer.
    pub user: Option<CompactString>,
    pub token_id: Option<CompactString>,
    pub client_ip: Option<IpAddr>,
    /// A standard method's name is static text: no copy per event.
    pub method: Option<Cow<'static, str>>,
    pub path: Option<CompactString>,
    pub request_id: Option<CompactString>,
    /// Static text on the request path ([`intern`]): no copy per event.
    pub node_id: Cow<'static, str>,
    /// Who made a lifecycle change (`admin-api`, `cli`), `None` for authentication events.
    pub actor: Option<String>,
    /// Details, a JSON object: the reason of a denial, the limit that was hit; for a change,
    /// `{"field": {"old": …, "new": …}}` per changed field (the audit file's `changedValues`).
    pub attributes: Attributes,
}

/// An event read back from the store, with its store-assigned id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAuditEvent {
    pub id: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// Filters and page of an audit query, newest first (`time` then `id`, descending).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub kind: Option<AuditKind>,
    pub token_id: Option<String>,
    /// Inclusive lower bound.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
    /// Continue after this event (the last page's last `(time, id)`).
    pub after: Option<(DateTime<Utc>, i64)>,
}

/// `text` as the store holds it. PostgreSQL's text and jsonb cannot hold U+0000, and a client
/// can put one in a name it presents (a Basic user name); a batch holding it would fail whole,
/// and again at every replay of the spill file. It is stored as U+FFFD on both backends, and a
/// filter on stored text (an audit query's user or token id) is mapped the same way.
pub fn stored_text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `value` with [`stored_text`] applied to every string and key; copied only when it holds a
/// U+0000.
pub fn stored_json(value: &serde_json::Value) -> Cow<'_, serde_json::Value> {
    use serde_json::Value;
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn replaced(v: &Value) -> Value {
        let text = |s: &str| stored_text(s).into_owned();
        match v {
            Value::String(s) => Value::String(text(s)),
            Value::Array(items) => Value::Array(items.iter().map(replaced).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (text(k), replaced(v))).collect())
            }
            other => other.clone(),
        }
    }
    if has_nul(value) {
        Cow::Owned(replaced(value))
    } else {
        Cow::Borrowed(value)
    }
}

/// `text` as static text, allocated once per distinct value for the life of the process: for
/// the few texts (the node id) that every event of a process carries.
pub fn intern(text: &str) -> &'static str {
    static TEXTS: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Mutex::default);
    let mut texts = TEXTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = texts.get(text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    texts.insert(leaked);
    leaked
}

/// An HTTP method's name: static text for the standard methods, a copy for any other.
pub fn method_name(method: &Method) -> Cow<'static, str> {
    static STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    match STANDARD.iter().find(|m| *m == method) {
        Some(m) => Cow::Borrowed(m.as_str()),
        None => Cow::Owned(method.as_str().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_text_is_allocated_once_per_value() {
        let a = intern("A6X2OX");
        let b = intern(&String::from("A6X2OX"));
        assert_eq!(a, "A6X2OX");
        assert!(std::ptr::eq(a, b));
        assert_eq!(intern("16JTB8N"), "16JTB8N");
    }

    #[test]
    fn standard_methods_are_static_text() {
        let propfind = Method::from_bytes(b"PROPFIND").unwrap();
        assert!(matches!(method_name(&Method::GET), Cow::Borrowed("GET")));
        assert!(matches!(
            method_name(&Method::PATCH),
            Cow::Borrowed("PATCH")
        ));
        assert!(matches!(method_name(&propfind), Cow::Owned(m) if m == "PROPFIND"));
    }
}
