//! The token record as stored, and the inputs that create or change one.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::TokenId;
use crate::ratelimit::RateQuota;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// GET, HEAD and OPTIONS, and git fetch/clone over HTTP.
    ReadOnly,
    /// Every method.
    ReadWrite,
}

impl Scope {
    /// The name used in Bitbucket's log lines: `Read Only`, `Read/Write`.
    pub fn log_name(self) -> &'static str {
        match self {
            Self::ReadOnly => "Read Only",
            Self::ReadWrite => "Read/Write",
        }
    }

    /// The config, CLI and JSON spelling: `read-only`, `read-write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::ReadWrite => "read-write",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "read-only" => Ok(Self::ReadOnly),
            "read-write" => Ok(Self::ReadWrite),
            _ => Err(()),
        }
    }
}

/// Whether a token can still be used, as of a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl TokenState {
    /// The lowercase name used in JSON and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// A stored token. The secret itself is never kept, only its argon2id PHC hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The public id, also embedded in the token string.
    pub id: TokenId,
    /// The Bitbucket user the token acts as.
    pub user: String,
    /// Free text naming the token, shown in log lines.
    pub description: String,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    /// No expiry when `None`.
    pub expires_at: Option<DateTime<Utc>>,
    /// CIDRs the token may be used from; empty means any address.
    pub allowed_ips: Vec<IpNet>,
    /// The token's own quota; the configured default applies when `None`.
    pub rate_limit: Option<RateQuota>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<IpAddr>,
    /// Set once, when the token is revoked; the record is kept for the audit trail.
    pub revoked_at: Option<DateTime<Utc>>,
    /// argon2id PHC string of the secret.
    pub secret_hash: String,
}

impl TokenRecord {
    /// The token's state at `now`; revocation wins over expiry.
    pub fn state(&self, now: DateTime<Utc>) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

/// Everything needed to store a new token; the id and hash come from [`super::generate`].
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: TokenId,
    pub user: String,
    pub description: String,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_ips: Vec<IpNet>,
    pub rate_limit: Option<RateQuota>,
    pub secret_hash: String,
}

/// A change to a token: `None` leaves a field as it is; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenPatch {
    pub description: Option<String>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub allowed_ips: Option<Vec<IpNet>>,
    pub rate_limit: Option<Option<RateQuota>>,
}

impl TokenPatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
