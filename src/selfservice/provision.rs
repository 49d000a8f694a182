//! Upstream credentials made, not collected: at a person's sign-in by password or session,
//! where tokengate holds no working Bitbucket credential for them, Bitbucket makes a personal
//! HTTP access token acting as that person, and tokengate stores it sealed. Nobody else ever
//! handles it.

use chrono::Utc;
use secrecy::ExposeSecret as _;

use super::{RequestMeta, SelfService};
use crate::bitbucket::SignIn;
use crate::lifecycle::{Acting, Origin, Via};
use crate::vault::Upstream;

/// The name Bitbucket shows for the tokens tokengate provisions.
const TOKEN_NAME: &str = "tokengate";

impl SelfService {
    /// Provisions `user`'s Bitbucket credential when provisioning is on and none works. A
    /// failure is logged and leaves the sign-in as it is.
    pub(super) async fn provision_if_needed(
        &self,
        user: &str,
        via: Via,
        sign_in: &SignIn,
        meta: &RequestMeta,
    ) {
        if !self.config.provision_credentials {
            return;
        }
        let Some(vault) = &self.vault else { return };
        match vault.get(user).await {
            Ok(Upstream::Usable(_) | Upstream::Unsendable) => return,
            Ok(Upstream::Missing | Upstream::Refused) => {}
            Err(e) => {
                tracing::warn!(target: "tokengate::selfservice", error = %e, "reading the stored credential failed; not provisioning now");
                return;
            }
        }
        {
            let mut busy = self
                .provisioning
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !busy.insert(user.to_owned()) {
                return;
            }
        }
        self.provision(user, via, sign_in, meta).await;
        self.provisioning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(user);
    }

    async fn provision(&self, user: &str, via: Via, sign_in: &SignIn, meta: &RequestMeta) {
        let made = self
            .bitbucket
            .create_access_token(
                user,
                sign_in,
                TOKEN_NAME,
                self.config.credential_lifetime_days,
            )
            .await;
        let token = match made {
            Ok(token) => token,
            Err(e) => {
                tracing::warn!(target: "tokengate::selfservice", user = %crate::telemetry::Escaped(user), error = %e, "provisioning a Bitbucket access token failed");
                return;
            }
        };
        let origin = Origin {
            client_ip: Some(meta.client_ip),
            method: None,
            path: None,
            request_id: Some(meta.request_id.clone()),
            acting: Some(Acting {
                user: user.to_owned(),
                via,
            }),
        };
        debug_assert!(!token.token.expose_secret().is_empty());
        match self
            .lifecycle
            .provision_credential(user, &token.token, &token.id, &origin, Utc::now())
            .await
        {
            Ok(()) => {
                tracing::info!(target: "tokengate::selfservice", user = %crate::telemetry::Escaped(user), "provisioned a Bitbucket access token for the user");
            }
            Err(e) => {
                tracing::warn!(target: "tokengate::selfservice", user = %crate::telemetry::Escaped(user), error = %e, "storing the provisioned Bitbucket access token failed");
            }
        }
    }
}
