//! Users' Bitbucket credentials: set by an administrator, provisioned at a user's sign-in, or
//! deleted; sealed before they are stored, never logged or echoed, and every change audited.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::validate::{Invalid, validate_credential, validate_user};
use super::{Lifecycle, LifecycleError, Origin};
use crate::audit::AuditKind;

impl Lifecycle {
    /// Stores (or replaces) a user's Bitbucket credential, sealed; never logged or echoed.
    pub async fn set_credential(
        &self,
        user: &str,
        credential: &SecretString,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        self.store_credential(user, credential, None, origin, now)
            .await
    }

    /// Stores a Bitbucket access token that was made for the user at their sign-in
    /// (`bitbucket_token_id` is Bitbucket's id of it), replacing what was stored.
    pub async fn provision_credential(
        &self,
        user: &str,
        credential: &SecretString,
        bitbucket_token_id: &str,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        self.store_credential(user, credential, Some(bitbucket_token_id), origin, now)
            .await
    }

    async fn store_credential(
        &self,
        user: &str,
        credential: &SecretString,
        provisioned_as: Option<&str>,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        validate_user(user)?;
        validate_credential(credential.expose_secret())?;
        let key = self
            .settings
            .credential_key
            .as_ref()
            .ok_or(LifecycleError::NoCredentialKey)?;
        let sealed = key.seal(user, credential).map_err(|_| {
            Invalid::new(
                "credential",
                "must be non-empty printable text without line breaks",
            )
        })?;
        self.store
            .put_credential(user, &sealed, provisioned_as.is_some())
            .await?;
        if let Some(vault) = &self.vault {
            vault.forget(user).await;
        }
        let attributes = match provisioned_as {
            Some(id) => json!({ "provisioned": true, "bitbucket_token_id": id }),
            None => json!({}),
        };
        self.record(
            AuditKind::CredentialSet,
            user,
            None,
            attributes,
            origin,
            now,
        )
        .await;
        Ok(())
    }

    /// Deletes a user's stored credential. Running gateways drop their cached copy (this one at
    /// once, the others when they hear of the change). With `upstream.identity = "credential"`
    /// the user's tokens are refused until a credential is stored again.
    pub async fn delete_credential(
        &self,
        user: &str,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        validate_user(user)?;
        if !self.store.delete_credential(user).await? {
            return Err(LifecycleError::NoCredential(
                super::validate::shown(user).to_string(),
            ));
        }
        if let Some(vault) = &self.vault {
            vault.forget(user).await;
        }
        self.record(
            AuditKind::CredentialDeleted,
            user,
            None,
            json!({}),
            origin,
            now,
        )
        .await;
        Ok(())
    }
}
