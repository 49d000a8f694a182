//! Token lifecycle, the one place both the admin API and the CLI go through: creating,
//! changing and revoking tokens and storing users' Bitbucket credentials, with validation,
//! the expiry policy, audit events, in-process cache invalidation and metrics.
//!
//! The edges parse their own syntax (JSON, flags) with [`validate`]'s functions, then call a
//! [`Lifecycle`] operation, which checks what depends on the store or the policy.

mod credentials;
mod error;
mod origin;
mod rotate;
mod validate;
mod view;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

pub use error::LifecycleError;
pub use origin::{Acting, Actor, AuditTo, Origin, Via};
pub use rotate::{MAX_GRACE, RotatedToken};
pub use validate::{
    CREDENTIAL_PATTERN, DESCRIPTION_PATTERN, Invalid, MAX_ALLOWED_IPS, MAX_CREDENTIAL_BYTES,
    MAX_TEXT_CHARS, USER_PATTERN, check_allowed_ips_len, check_expiry, parse_allowed_ips,
    parse_expires_at, parse_ip, parse_scope, rate_limit, validate_credential, validate_description,
    validate_user,
};
pub use view::{CreatedToken, CredentialList, CredentialView, TokenPage, TokenView};

use crate::audit::{AuditEvent, AuditKind, AuditOutcome, append_to_audit_file};
use crate::auth::Verifier;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::ratelimit::RateQuota;
use crate::store::{Change, Store, StoreError, TokenWrite};
use crate::token::{self, NewToken, Scope, TokenId, TokenPatch, TokenRecord};
use crate::vault::{CredentialError, CredentialKey, CredentialVault};

/// What a [`Lifecycle`] takes from the config.
pub struct LifecycleSettings {
    /// Node id written into audit events.
    pub node_id: String,
    /// `auth.max_lifetime_days`.
    pub max_lifetime_days: Option<u32>,
    /// `upstream.credential_key`; without it credentials cannot be stored.
    pub credential_key: Option<CredentialKey>,
}

impl LifecycleSettings {
    /// The settings of a validated config.
    pub fn from_config(config: &Config) -> Result<Self, CredentialError> {
        Ok(Self {
            node_id: config.node_id.clone(),
            max_lifetime_days: config.auth.max_lifetime_days,
            credential_key: config
                .upstream
                .credential_key
                .as_ref()
                .map(CredentialKey::from_secret)
                .transpose()?,
        })
    }
}

/// A token to create, its values already parsed by the edge.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub user: String,
    pub description: String,
    pub scope: Scope,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_ips: Vec<IpNet>,
    pub rate_limit: Option<RateQuota>,
}

/// Creates, changes and revokes tokens and stores credentials.
pub struct Lifecycle {
    store: Arc<dyn Store>,
    settings: LifecycleSettings,
    actor: Actor,
    audit: AuditTo,
    /// This process's verifier, told to forget a token the moment it changes.
    verifier: Option<Arc<Verifier>>,
    /// This process's credential cache, told to forget a replaced credential.
    vault: Option<Arc<CredentialVault>>,
    metrics: Option<Arc<Metrics>>,
}

impl Lifecycle {
    pub fn new(
        store: Arc<dyn Store>,
        settings: LifecycleSettings,
        actor: Actor,
        audit: AuditTo,
    ) -> Self {
        Self {
            store,
            settings,
            actor,
            audit,
            verifier: None,
            vault: None,
            metrics: None,
        }
    }

    /// Also invalidates this verifier's cache on every change.
    #[must_use]
    pub fn with_verifier(mut self, verifier: Arc<Verifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Also invalidates this credential cache when a credential is replaced.
    #[must_use]
    pub fn with_vault(mut self, vault: Option<Arc<CredentialVault>>) -> Self {
        self.vault = vault;
        self
    }

    /// Also counts created and revoked tokens.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The store, for reads.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates a token; the answer carries the secret, which is not kept anywhere.
    pub async fn create(
        &self,
        spec: TokenSpec,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<CreatedToken, LifecycleError> {
        validate_user(&spec.user)?;
        validate_description(&spec.description)?;
        // The CLI parses its entries one by one, so the length is checked here for both edges.
        check_allowed_ips_len(spec.allowed_ips.len())?;
        check_expiry(spec.expires_at, now, now, self.settings.max_lifetime_days)?;
        let (record, secret) = self.insert(&spec, now).await?;
        self.forget(&record.id);
        if let Some(m) = &self.metrics {
            m.tokens_created.inc();
        }
        let attributes = created_attributes(&record);
        self.record(
            AuditKind::TokenCreated,
            &record.user,
            Some(&record.id),
            attributes,
            origin,
            now,
        )
        .await;
        Ok(CreatedToken {
            record: TokenView::new(&record, now),
            token: secret,
        })
    }

    async fn insert(
        &self,
        spec: &TokenSpec,
        now: DateTime<Utc>,
    ) -> Result<(TokenRecord, SecretString), LifecycleError> {
        // 62 bits of id: a collision is astronomically rare, but costs only a retry.
        for _ in 0..3 {
            let (new, secret) = mint(spec, now).await;
            match self.store.insert_token(&new).await {
                Ok(record) => return Ok((record, secret)),
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict.into())
    }

    /// One token, whatever its state; `id` as given by the caller.
    pub async fn get(&self, id: &str) -> Result<TokenRecord, LifecycleError> {
        let id = parse_id(id)?;
        self.store
            .get_token(&id)
            .await?
            .ok_or_else(|| not_found(id.as_str()))
    }

    /// Changes a token that is not revoked. An empty patch is refused.
    pub async fn patch(
        &self,
        id: &str,
        patch: TokenPatch,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<TokenRecord, LifecycleError> {
        if patch.is_empty() {
            return Err(LifecycleError::EmptyPatch);
        }
        if let Some(description) = &patch.description {
            validate_description(description)?;
        }
        if let Some(ips) = &patch.allowed_ips {
            check_allowed_ips_len(ips.len())?;
        }
        // Read first for the checks that need the record; the store re-reads it under a lock
        // and is the authority on whether it is still unrevoked.
        let current = self.get(id).await?;
        if current.revoked_at.is_some() {
            return Err(LifecycleError::Revoked(current.id));
        }
        if let Some(expires_at) = patch.expires_at {
            check_expiry(
                expires_at,
                current.created_at,
                now,
                self.settings.max_lifetime_days,
            )?;
        }
        let (old, new) = match self.store.update_token(&current.id, &patch).await? {
            TokenWrite::Written { before, after } => (before, after),
            TokenWrite::Revoked(revoked) => return Err(LifecycleError::Revoked(revoked.id)),
            TokenWrite::Unknown => return Err(not_found(current.id.as_str())),
        };
        self.forget(&new.id);
        self.record(
            AuditKind::TokenChanged,
            &new.user,
            Some(&new.id),
            changes(&old, &new, &patch),
            origin,
            now,
        )
        .await;
        Ok(new)
    }

    /// Revokes a token; revoking a revoked token changes nothing and succeeds. Of concurrent
    /// revocations, only the one that revoked is audited and counted.
    pub async fn revoke(
        &self,
        id: &str,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<TokenRecord, LifecycleError> {
        let id = parse_id(id)?;
        let new = match self.store.revoke_token(&id, now).await? {
            TokenWrite::Written { after, .. } => after,
            TokenWrite::Revoked(revoked) => return Ok(revoked),
            TokenWrite::Unknown => return Err(not_found(id.as_str())),
        };
        self.forget(&new.id);
        if let Some(m) = &self.metrics {
            m.tokens_revoked.inc();
        }
        let attributes = json!({ "description": new.description });
        self.record(
            AuditKind::TokenRevoked,
            &new.user,
            Some(&new.id),
            attributes,
            origin,
            now,
        )
        .await;
        Ok(new)
    }

    fn forget(&self, id: &TokenId) {
        if let Some(verifier) = &self.verifier {
            verifier.forget(&Change::Token(id.clone()));
        }
    }

    async fn record(
        &self,
        kind: AuditKind,
        user: &str,
        id: Option<&TokenId>,
        attributes: Value,
        origin: &Origin,
        now: DateTime<Utc>,
    ) {
        let event = AuditEvent {
            time: now,
            kind,
            outcome: AuditOutcome::Allowed,
            user: Some(user.into()),
            token_id: id.map(|id| id.as_str().into()),
            client_ip: origin.client_ip,
            method: origin.method.clone(),
            path: origin.path.as_deref().map(Into::into),
            request_id: origin.request_id.as_deref().map(Into::into),
            node_id: self.settings.node_id.clone().into(),
            actor: Some(match &origin.acting {
                Some(acting) => acting.user.clone(),
                None => self.actor.as_str().to_owned(),
            }),
            attributes: with_via(attributes, origin.acting.as_ref()).into(),
        };
        match &self.audit {
            AuditTo::Sink(sink) => sink.record(event),
            AuditTo::Store {
                coverage,
                file,
                system,
            } if coverage.records(kind) => {
                let events = [event];
                if let Some(path) = file
                    && let Err(e) = append_to_audit_file(path, &events, system).await
                {
                    tracing::warn!(target: "tokengate::lifecycle", error = %e, kind = kind.as_str(), file = %path.display(), "the change was made but its audit event could not be written to the audit file");
                }
                if let Err(e) = self.store.insert_audit(&events).await {
                    tracing::warn!(target: "tokengate::lifecycle", error = %e, kind = kind.as_str(), "the change was made but its audit event could not be stored");
                }
            }
            AuditTo::Store { .. } => {}
        }
    }
}

/// A new token of `spec` created at `now`: a fresh id and secret, and the secret's argon2id
/// hash (made on the blocking pool). The secret is not kept anywhere else.
async fn mint(spec: &TokenSpec, now: DateTime<Utc>) -> (NewToken, SecretString) {
    let (id, secret) = token::generate();
    let whole = secret.clone();
    let secret_hash =
        tokio::task::spawn_blocking(move || token::hash_secret(whole.expose_secret()))
            .await
            .expect("hashing does not panic");
    let new = NewToken {
        id,
        user: spec.user.clone(),
        description: spec.description.clone(),
        scope: spec.scope,
        created_at: now,
        expires_at: spec.expires_at,
        allowed_ips: spec.allowed_ips.clone(),
        rate_limit: spec.rate_limit,
        secret_hash,
    };
    (new, secret)
}

/// The attributes of a created token's audit event.
fn created_attributes(record: &TokenRecord) -> Value {
    json!({
        "description": record.description,
        "scope": record.scope.as_str(),
        "expires_at": record.expires_at,
        "allowed_ips": record.allowed_ips,
        "rate_limit": record.rate_limit.map(|q| q.to_string()),
    })
}

/// An id from a URL or the command line; anything not shaped like an id is simply not found.
pub fn parse_id(id: &str) -> Result<TokenId, LifecycleError> {
    TokenId::parse(id).ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> LifecycleError {
    LifecycleError::NotFound(validate::shown(id).to_string())
}

/// `{"field": {"old": …, "new": …}}` for each field the patch names.
fn changes(old: &TokenRecord, new: &TokenRecord, patch: &TokenPatch) -> Value {
    let mut out = serde_json::Map::new();
    let mut put = |field: &str, old: Value, new: Value| {
        out.insert(field.to_owned(), json!({ "old": old, "new": new }));
    };
    if patch.description.is_some() {
        put(
            "description",
            json!(old.description),
            json!(new.description),
        );
    }
    if patch.expires_at.is_some() {
        put("expires_at", json!(old.expires_at), json!(new.expires_at));
    }
    if patch.allowed_ips.is_some() {
        put(
            "allowed_ips",
            json!(old.allowed_ips),
            json!(new.allowed_ips),
        );
    }
    if patch.rate_limit.is_some() {
        let q = |q: Option<RateQuota>| json!(q.map(|q| q.to_string()));
        put("rate_limit", q(old.rate_limit), q(new.rate_limit));
    }
    Value::Object(out)
}

/// Adds `via` (how the acting person signed in) to an event's attributes.
fn with_via(mut attributes: Value, acting: Option<&Acting>) -> Value {
    if let (Some(acting), Value::Object(map)) = (acting, &mut attributes) {
        map.insert("via".into(), Value::from(acting.via.as_str()));
    }
    attributes
}
