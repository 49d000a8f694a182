//! The JSON shapes of a token and of a stored credential, as the admin API answers and the
//! CLI's `--json` prints them. A token has no field for the secret's hash; the secret itself
//! appears only in [`CreatedToken`], once. A credential shows only who has one and since when.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

use crate::ratelimit::RateQuota;
use crate::store::CredentialInfo;
use crate::token::{Scope, TokenRecord, TokenState};

/// A token as shown to administrators: everything but the secret and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TokenView {
    /// The public id, also embedded in the token string.
    #[schema(example = "k3j9x0q2m7ab")]
    pub id: String,
    /// The Bitbucket user the token acts as.
    #[schema(example = "automation-user")]
    pub user: String,
    #[schema(example = "API Token from 2021-01-06")]
    pub description: String,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    /// `null` when the token does not expire.
    pub expires_at: Option<DateTime<Utc>>,
    /// CIDRs the token may be used from; empty means any address.
    #[schema(value_type = Vec<String>, example = json!(["10.0.0.0/8", "2001:db8::/32"]))]
    pub allowed_ips: Vec<IpNet>,
    /// The token's own quota; `null` means the configured `rate_limit.default` applies.
    pub rate_limit: Option<RateQuota>,
    pub last_used_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, example = "79.209.73.23")]
    pub last_used_ip: Option<IpAddr>,
    /// When the token was revoked; `null` while it is not.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The state at the time of the answer; revocation wins over expiry.
    pub state: TokenState,
}

impl TokenView {
    /// The view of `record` with its state at `now`.
    pub fn new(record: &TokenRecord, now: DateTime<Utc>) -> Self {
        Self {
            id: record.id.to_string(),
            user: record.user.clone(),
            description: record.description.clone(),
            scope: record.scope,
            created_at: record.created_at,
            expires_at: record.expires_at,
            allowed_ips: record.allowed_ips.clone(),
            rate_limit: record.rate_limit,
            last_used_at: record.last_used_at,
            last_used_ip: record.last_used_ip,
            revoked_at: record.revoked_at,
            state: record.state(now),
        }
    }
}

/// The answer to a create: the record plus the secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub record: TokenView,
    /// The whole token (`tgt_…`), to send as `Authorization: Bearer …`. It is not stored and
    /// cannot be shown again.
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String, example = "tgt_k3j9x0q2m7ab_…")]
    pub token: SecretString,
}

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// One page of a token listing, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenPage {
    pub tokens: Vec<TokenView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A user's stored Bitbucket credential as listed: never the credential itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CredentialView {
    /// The Bitbucket user name.
    #[schema(example = "automation-user")]
    pub user: String,
    /// True when it was made through Bitbucket's access-token API at the user's sign-in
    /// (`self_service.provision_credentials`), false when an administrator set it.
    pub provisioned: bool,
    /// When it was set or provisioned.
    pub updated_at: DateTime<Utc>,
    /// When Bitbucket refused it; `null` while it has not. A refused credential is not sent
    /// again until it is replaced.
    pub refused_at: Option<DateTime<Utc>>,
}

impl From<&CredentialInfo> for CredentialView {
    fn from(info: &CredentialInfo) -> Self {
        Self {
            user: info.user.clone(),
            provisioned: info.provisioned,
            updated_at: info.updated_at,
            refused_at: info.refused_at,
        }
    }
}

/// `GET /admin/v1/credentials`: every stored credential, by user name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CredentialList {
    pub credentials: Vec<CredentialView>,
}
