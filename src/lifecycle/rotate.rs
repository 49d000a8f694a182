//! Rotating a token: a new token (new id and secret, shown once) with everything else of the
//! old one (owner, description, scope, expiry, allowed IPs, rate limit), while the old one
//! keeps working for a grace period and then stops everywhere.
//!
//! The old token ends by its record: revoked at once without a grace, else given the grace's
//! end as its expiry. Every replica judges expiry against its own clock on each request, and
//! hears of the changed record within a second, so the old token stops on all of them when
//! the grace ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::validate::{Invalid, check_expiry};
use super::{
    CreatedToken, Lifecycle, LifecycleError, Origin, TokenSpec, TokenView, created_attributes,
    mint, not_found,
};
use crate::audit::AuditKind;
use crate::store::{StoreError, TokenRotation};
use crate::token::{TokenRecord, TokenState};

/// The longest grace a rotation may give the old token: thirty days.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);

/// The answer to a rotation: the new token with its secret, shown this once, and the token it
/// replaces as it is now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedToken {
    #[serde(flatten)]
    pub created: CreatedToken,
    /// The old token: revoked, or expiring when the grace ends.
    pub replaces: TokenView,
}

impl Lifecycle {
    /// Rotates the token `id`, which must be neither revoked, expired, nor rotated already. The old token keeps
    /// working for `grace` (none: it is revoked at once). Both tokens are audited, each
    /// naming the other.
    pub async fn rotate(
        &self,
        id: &str,
        grace: Duration,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<RotatedToken, LifecycleError> {
        let old = self.get(id).await?;
        match old.state(now) {
            TokenState::Revoked => return Err(LifecycleError::Revoked(old.id)),
            TokenState::Expired => return Err(LifecycleError::Expired(old.id)),
            TokenState::Active => {}
        }
        if grace > MAX_GRACE {
            return Err(Invalid::new(
                "grace_seconds",
                format!("must be at most {} (30 days)", MAX_GRACE.as_secs()),
            )
            .into());
        }
        // The new token is created now, so the lifetime policy is checked anew.
        check_expiry(old.expires_at, now, now, self.settings.max_lifetime_days)?;
        let grace_until = (!grace.is_zero()).then(|| {
            chrono::Duration::from_std(grace)
                .ok()
                .and_then(|g| now.checked_add_signed(g))
                .unwrap_or(now)
        });
        let spec = TokenSpec {
            user: old.user.clone(),
            description: old.description.clone(),
            scope: old.scope,
            expires_at: old.expires_at,
            allowed_ips: old.allowed_ips.clone(),
            rate_limit: old.rate_limit,
        };
        let mut attempts = 0;
        let (before, after, new, secret) = loop {
            let (new, secret) = mint(&spec, now).await;
            match self
                .store
                .rotate_token(&old.id, &new, now, grace_until)
                .await
            {
                Ok(TokenRotation::Rotated { before, after, new }) => {
                    break (before, after, new, secret);
                }
                Ok(TokenRotation::Revoked(revoked)) => {
                    return Err(LifecycleError::Revoked(revoked.id));
                }
                Ok(TokenRotation::Replaced { record, by }) => {
                    return Err(LifecycleError::Replaced { id: record.id, by });
                }
                Ok(TokenRotation::Unknown) => return Err(not_found(old.id.as_str())),
                // A taken id, astronomically rare: a new one.
                Err(StoreError::Conflict) if attempts < 2 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        };
        self.forget(&after.id);
        self.forget(&new.id);
        if let Some(m) = &self.metrics {
            m.tokens_created.inc();
            if after.revoked_at.is_some() {
                m.tokens_revoked.inc();
            }
        }
        self.audit_rotation(&before, &after, &new, grace, origin, now)
            .await;
        Ok(RotatedToken {
            created: CreatedToken {
                record: TokenView::new(&new, now),
                token: secret,
            },
            replaces: TokenView::new(&after, now),
        })
    }

    async fn audit_rotation(
        &self,
        before: &TokenRecord,
        after: &TokenRecord,
        new: &TokenRecord,
        grace: Duration,
        origin: &Origin,
        now: DateTime<Utc>,
    ) {
        let mut created = created_attributes(new);
        created["rotated_from"] = json!(before.id.as_str());
        self.record(
            AuditKind::TokenCreated,
            &new.user,
            Some(&new.id),
            created,
            origin,
            now,
        )
        .await;
        let (kind, ended) = if after.revoked_at.is_some() {
            (
                AuditKind::TokenRevoked,
                json!({ "description": after.description }),
            )
        } else {
            (
                AuditKind::TokenChanged,
                json!({
                    "expires_at": { "old": before.expires_at, "new": after.expires_at },
                    "grace_seconds": grace.as_secs(),
                }),
            )
        };
        let mut ended = ended;
        // Attributes name the other token both ways, so either one leads to its pair.
        ended["replaced_by"] = json!(new.id.as_str());
        self.record(kind, &after.user, Some(&after.id), ended, origin, now)
            .await;
    }
}
