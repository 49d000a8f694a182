//! What a signed-in person can do, shared by the REST APIs and the pages: read who they are
//! and their limits, and create, read, change, rotate and revoke tokens within their rights.

use chrono::{DateTime, Utc};
use http::StatusCode;
use ipnet::IpNet;
use serde::Serialize;
use utoipa::ToSchema;

use super::narrow::{Asked, Bounds, Signing};
use super::rights::Granted;
use super::{Caller, SelfService};
use crate::admin::error::ApiError;
use crate::lifecycle::{CreatedToken, Invalid, LifecycleError, RotatedToken, TokenSpec, Via};
use crate::ratelimit::RateQuota;
use crate::store::TokenQuery;
use crate::token::{Scope, TokenPatch, TokenRecord, TokenState};

/// `GET /rest/tokengate/1.0/me`: who the caller is, their rights and their limits.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The Bitbucket user name.
    pub user: String,
    /// How they signed in: `token`, `password`, `bitbucket_token` or `session`.
    pub signed_in_via: Via,
    pub rights: Granted,
    pub limits: Limits,
}

/// What bounds the tokens the caller makes for themselves.
#[derive(Debug, Serialize, ToSchema)]
pub struct Limits {
    /// The broadest scope they may give their own tokens.
    pub max_scope: Scope,
    /// `auth.max_lifetime_days`, where set.
    pub max_lifetime_days: Option<u32>,
    /// The latest expiry a token made now may have; absent for none.
    pub latest_expiry: Option<DateTime<Utc>>,
    /// Where a new token may be used from; empty for any address.
    #[schema(value_type = Vec<String>)]
    pub allowed_ips: Vec<IpNet>,
    /// The quota of a token that sets none (`rate_limit.default`).
    #[schema(value_type = String, example = "1000/1h")]
    pub default_rate_limit: String,
}

/// A token to create, its values already parsed by the edge.
#[derive(Debug, Clone)]
pub struct CreateInput {
    /// For whom; the caller when absent.
    pub user: Option<String>,
    pub description: String,
    pub asked: Asked,
    pub rate_limit: Option<RateQuota>,
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

impl SelfService {
    /// The bounds of a token the caller makes for `user`.
    pub(crate) fn bounds<'a>(&self, caller: &'a Caller, user: &str) -> Bounds<'a> {
        Bounds {
            force_read_only: self.config.force_read_only && user.eq_ignore_ascii_case(&caller.user),
            max_lifetime_days: self.max_lifetime_days,
            signing: caller.token.as_deref().map(|t| Signing {
                scope: t.scope,
                expires_at: t.expires_at,
                allowed_ips: &t.allowed_ips,
            }),
        }
    }

    /// Who the caller is and what bounds their own tokens.
    pub(crate) fn me(&self, caller: &Caller) -> Me {
        let bounds = self.bounds(caller, &caller.user);
        Me {
            user: caller.user.clone(),
            signed_in_via: caller.via,
            rights: caller.granted,
            limits: Limits {
                max_scope: bounds.max_scope(),
                max_lifetime_days: self.max_lifetime_days,
                latest_expiry: bounds.latest_expiry(Utc::now()),
                allowed_ips: bounds
                    .signing
                    .map_or_else(Vec::new, |s| s.allowed_ips.to_vec()),
                default_rate_limit: self.default_quota.to_string(),
            },
        }
    }

    /// Creates a token for the caller, or (with `manage_all`) for anyone. A request that names
    /// no scope gets `default_scope` where allowed.
    pub(crate) async fn create(
        &self,
        caller: &Caller,
        input: CreateInput,
        default_scope: Scope,
    ) -> Result<CreatedToken, ApiError> {
        let user = input.user.unwrap_or_else(|| caller.user.clone());
        if !caller.may_create_for(&user) {
            return Err(if user.eq_ignore_ascii_case(&caller.user) {
                forbidden(
                    "You may not create tokens: self_service.create_own does not include you.",
                )
            } else {
                forbidden(
                    "Creating tokens for other users needs the token manager right (self_service.manage_all).",
                )
            });
        }
        let now = Utc::now();
        let settled = self
            .bounds(caller, &user)
            .settle(input.asked, default_scope, now)
            .map_err(LifecycleError::from)?;
        let spec = TokenSpec {
            user,
            description: input.description,
            scope: settled.scope,
            expires_at: settled.expires_at,
            allowed_ips: settled.allowed_ips,
            rate_limit: input.rate_limit,
        };
        Ok(self.lifecycle.create(spec, &caller.origin, now).await?)
    }

    /// A token the caller may see; another user's is "not found" unless they manage all.
    pub(crate) async fn token(&self, caller: &Caller, id: &str) -> Result<TokenRecord, ApiError> {
        let record = self.lifecycle.get(id).await?;
        if !caller.may_see(&record.user) {
            return Err(LifecycleError::NotFound(id.to_owned()).into());
        }
        Ok(record)
    }

    /// Changes, other than creating, need a read/write token when signed in with a token.
    fn check_write(caller: &Caller) -> Result<(), ApiError> {
        match &caller.token {
            Some(token) if token.scope == Scope::ReadOnly => Err(forbidden(
                "A read-only token may create read-only tokens, but not change or revoke tokens.",
            )),
            _ => Ok(()),
        }
    }

    /// Changes a token's description, expiry, allowed IPs or rate limit, within the caller's
    /// bounds.
    pub(crate) async fn patch(
        &self,
        caller: &Caller,
        id: &str,
        patch: TokenPatch,
    ) -> Result<TokenRecord, ApiError> {
        Self::check_write(caller)?;
        let record = self.token(caller, id).await?;
        if !caller.may_create_for(&record.user) {
            return Err(forbidden(
                "You may not change tokens: self_service.create_own does not include you.",
            ));
        }
        if let Some(signing) = self.bounds(caller, &record.user).signing {
            let asked = Asked {
                scope: None,
                expires_at: patch.expires_at.flatten(),
                allowed_ips: patch.allowed_ips.clone(),
            };
            let bounds = Bounds {
                force_read_only: false,
                max_lifetime_days: None,
                signing: Some(signing),
            };
            if matches!(patch.expires_at, Some(None)) && signing.expires_at.is_some() {
                return Err(LifecycleError::from(crate::lifecycle::Invalid::new(
                    "expires_at",
                    "cannot be removed: the token signed in with expires",
                ))
                .into());
            }
            bounds
                .settle(asked, Scope::ReadOnly, Utc::now())
                .map_err(LifecycleError::from)?;
        }
        Ok(self
            .lifecycle
            .patch(record.id.as_str(), patch, &caller.origin, Utc::now())
            .await?)
    }

    /// Rotates a token the caller may see and change: its successor is a copy of it, so it
    /// must be no broader than what the caller may create (refused naming the field, never
    /// narrowed). A read-only token may rotate itself, and only itself.
    pub(crate) async fn rotate(
        &self,
        caller: &Caller,
        id: &str,
        grace: std::time::Duration,
    ) -> Result<RotatedToken, ApiError> {
        let itself = caller.token.as_ref().is_some_and(|t| t.id.as_str() == id);
        if !itself {
            Self::check_write(caller)?;
        }
        let record = self.token(caller, id).await?;
        if !caller.may_create_for(&record.user) {
            return Err(forbidden(
                "You may not rotate tokens: self_service.create_own does not include you.",
            ));
        }
        let now = Utc::now();
        let bounds = self.bounds(caller, &record.user);
        if record.expires_at.is_none()
            && let Some(limit) = bounds.signing.and_then(|s| s.expires_at)
        {
            return Err(LifecycleError::from(Invalid::new(
                "expires_at",
                format!(
                    "the token never expires, but its successor must expire by {}, the expiry \
                     of the token signed in with: give it an expiry first",
                    limit.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            ))
            .into());
        }
        let asked = Asked {
            scope: Some(record.scope),
            expires_at: record.expires_at,
            allowed_ips: Some(record.allowed_ips.clone()),
        };
        bounds
            .settle(asked, record.scope, now)
            .map_err(LifecycleError::from)?;
        Ok(self
            .lifecycle
            .rotate(record.id.as_str(), grace, &caller.origin, now)
            .await?)
    }

    /// Revokes a token the caller may see.
    pub(crate) async fn revoke(&self, caller: &Caller, id: &str) -> Result<TokenRecord, ApiError> {
        Self::check_write(caller)?;
        let record = self.token(caller, id).await?;
        Ok(self
            .lifecycle
            .revoke(record.id.as_str(), &caller.origin, Utc::now())
            .await?)
    }

    /// A page of tokens: the caller's own, or with `manage_all` anyone's (`user` narrows it).
    pub(crate) async fn list(
        &self,
        caller: &Caller,
        user: Option<String>,
        state: Option<TokenState>,
        limit: u32,
        after: Option<(DateTime<Utc>, crate::token::TokenId)>,
    ) -> Result<Vec<TokenRecord>, ApiError> {
        let user = match user {
            Some(user) if caller.may_see(&user) => Some(user),
            Some(_) => {
                return Err(forbidden(
                    "Listing other users' tokens needs the token manager right (self_service.manage_all).",
                ));
            }
            None if caller.granted.manage_all => None,
            None => Some(caller.user.clone()),
        };
        let query = TokenQuery {
            user,
            state,
            now: Utc::now(),
            limit,
            after,
        };
        Ok(self.store.list_tokens(&query).await?)
    }

    /// Every token of `user` (or everyone's), newest first, at most `cap`.
    pub(crate) async fn all_tokens(
        &self,
        caller: &Caller,
        user: Option<String>,
        cap: usize,
    ) -> Result<Vec<TokenRecord>, ApiError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.list(caller, user.clone(), None, 500, after).await?;
            let last = page.last().map(|r| (r.created_at, r.id.clone()));
            let done = page.len() < 500;
            all.extend(page);
            if done || all.len() >= cap {
                break;
            }
            after = last;
        }
        all.truncate(cap);
        Ok(all)
    }
}
