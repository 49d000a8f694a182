//! Request bodies and parameters of the admin API, and their conversion into checked
//! lifecycle inputs. Unknown fields are refused; values are checked by [`crate::lifecycle`].

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};

use super::cursor;
use super::error::ApiError;
use crate::lifecycle::{self, Invalid, TokenSpec};
use crate::ratelimit::RateQuota;
use crate::token::{Scope, TokenId, TokenPatch, TokenState};

/// `POST /admin/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTokenRequest {
    /// The Bitbucket user the token acts as: 1–255 characters, no whitespace.
    #[schema(example = "automation-user")]
    user: String,
    /// Names the token in log lines: 1–255 characters, no control characters.
    #[schema(example = "API Token from 2021-01-06")]
    description: String,
    /// `read-only` (the default when absent or null) or `read-write`.
    #[serde(default)]
    #[schema(value_type = Option<Scope>, default = "read-only")]
    scope: Option<String>,
    /// RFC 3339, in the future; absent or null for no expiry (refused when
    /// `auth.max_lifetime_days` is set, as is an expiry beyond it).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, example = "2030-01-31T12:00:00Z")]
    expires_at: Option<String>,
    /// CIDRs or bare addresses (taken as /32 or /128); absent or empty for any address.
    #[serde(default)]
    #[schema(example = json!(["10.0.0.0/8", "192.168.1.7"]))]
    allowed_ips: Option<Vec<String>>,
    /// The token's own quota; absent or null for the configured `rate_limit.default`.
    #[serde(default)]
    rate_limit: Option<RateLimitBody>,
}

/// A quota: `requests` per `period_seconds`.
// `remote = "Self"` makes the derived code the inherent `RateLimitBody::deserialize`, which the
// `Deserialize` impl below calls only for a JSON object.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub(crate) struct RateLimitBody {
    /// From 1 to 4294967295.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 4_294_967_295_u64, example = 5)]
    requests: u64,
    /// From 1 to 31622400 (366 days).
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 31_622_400, example = 300)]
    period_seconds: u64,
}

/// A JSON number without a fraction, `5` and `5.0` alike, as JSON Schema's `integer` reads it.
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Whole;
    impl Visitor<'_> for Whole {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            // 2^64: every whole float below it is a u64.
            if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::invalid_value(Unexpected::Float(v), &self))
            }
        }
    }
    d.deserialize_any(Whole)
}

/// serde's derived struct deserializer also takes an array of the fields in order
/// (`[5, 300]`); a quota is an object, as the body around it must be.
impl<'de> Deserialize<'de> for RateLimitBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = RateLimitBody;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with requests and period_seconds")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RateLimitBody, A::Error> {
                RateLimitBody::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Object)
    }
}

impl RateLimitBody {
    pub(crate) fn quota(self) -> Result<RateQuota, Invalid> {
        lifecycle::rate_limit(self.requests, self.period_seconds)
    }
}

impl CreateTokenRequest {
    pub(crate) fn into_spec(self) -> Result<TokenSpec, Invalid> {
        Ok(TokenSpec {
            scope: self
                .scope
                .as_deref()
                .map_or(Ok(Scope::ReadOnly), lifecycle::parse_scope)?,
            expires_at: self
                .expires_at
                .as_deref()
                .map(lifecycle::parse_expires_at)
                .transpose()?,
            allowed_ips: lifecycle::parse_allowed_ips(
                self.allowed_ips.as_deref().unwrap_or_default(),
            )?,
            rate_limit: self.rate_limit.map(RateLimitBody::quota).transpose()?,
            user: self.user,
            description: self.description,
        })
    }
}

/// `PATCH /admin/v1/tokens/{id}`: only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchTokenRequest {
    /// 1–255 characters, no control characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String)]
    description: Option<Option<String>>,
    /// RFC 3339, in the future; `null` removes the expiry (refused when
    /// `auth.max_lifetime_days` is set).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Option<String>>,
    /// Replaces the allow-list; `[]` allows any address.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<String>)]
    allowed_ips: Option<Option<Vec<String>>>,
    /// Replaces the quota; `null` returns to the configured default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RateLimitBody>)]
    rate_limit: Option<Option<RateLimitBody>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`, the default).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl PatchTokenRequest {
    pub(crate) fn into_patch(self) -> Result<TokenPatch, Invalid> {
        let description = match self.description {
            Some(None) => return Err(Invalid::new("description", "cannot be null")),
            other => other.flatten(),
        };
        let allowed_ips = match self.allowed_ips {
            Some(None) => {
                return Err(Invalid::new(
                    "allowed_ips",
                    "cannot be null; send [] to allow any address",
                ));
            }
            Some(Some(ips)) => Some(lifecycle::parse_allowed_ips(&ips)?),
            None => None,
        };
        let expires_at = self
            .expires_at
            .map(|e| e.as_deref().map(lifecycle::parse_expires_at).transpose())
            .transpose()?;
        let rate_limit = self
            .rate_limit
            .map(|r| r.map(RateLimitBody::quota).transpose())
            .transpose()?;
        Ok(TokenPatch {
            description,
            expires_at,
            allowed_ips,
            rate_limit,
        })
    }
}

/// `PUT /admin/v1/users/{user}/credential`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetCredentialRequest {
    /// The user's Bitbucket credential (for example an HTTP access token): visible ASCII, up to
    /// 4096 characters; stored sealed, never shown again.
    #[schema(value_type = String, example = "BBDC-Mzk0NDEyOTc2MzE4OnRoaXMtaXMtYW4tZXhhbXBsZQ")]
    pub(crate) credential: SecretString,
}

/// `POST /admin/v1/tokens/{id}/rotate`; the body may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateRequest {
    /// How long the old token keeps working, in seconds (at most 2592000, 30 days); 0 or
    /// absent revokes it at once.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(example = 3600, minimum = 0, maximum = 2592000)]
    pub(crate) grace_seconds: u64,
}

impl RotateRequest {
    /// The grace.
    pub(crate) fn grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.grace_seconds)
    }
}

/// Filters and page of `GET /admin/v1/tokens`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only this user's tokens.
    user: Option<String>,
    /// Only tokens in this state: `active`, `expired` or `revoked`.
    #[param(value_type = Option<TokenState>)]
    state: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Page size when none is given.
const DEFAULT_LIMIT: u32 = 100;
/// Largest page.
pub(crate) const MAX_LIMIT: u32 = 500;

/// [`ListParams`], checked.
pub(crate) struct ListFilter {
    pub(crate) user: Option<String>,
    pub(crate) state: Option<TokenState>,
    pub(crate) limit: u32,
    pub(crate) after: Option<(DateTime<Utc>, TokenId)>,
}

impl ListParams {
    pub(crate) fn check(self) -> Result<ListFilter, ApiError> {
        let query = |m: String| ApiError::bad_request("invalid_query", m);
        let user = match self.user {
            Some(u) => {
                lifecycle::validate_user(&u).map_err(|e| query(e.to_string()))?;
                Some(u)
            }
            None => None,
        };
        let state = match self.state.as_deref() {
            None => None,
            Some("active") => Some(TokenState::Active),
            Some("expired") => Some(TokenState::Expired),
            Some("revoked") => Some(TokenState::Revoked),
            Some(_) => return Err(query("state: must be active, expired or revoked".into())),
        };
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    query(format!(
                        "limit: must be a whole number from 1 to {MAX_LIMIT}"
                    ))
                })?,
        };
        let after = self
            .cursor
            .as_deref()
            .map(cursor::decode_token)
            .transpose()?;
        Ok(ListFilter {
            user,
            state,
            limit,
            after,
        })
    }
}

#[cfg(test)]
mod tests;
