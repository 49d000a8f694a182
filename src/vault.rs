//! Users' Bitbucket credentials for `upstream.identity = "credential"`, sealed at rest with
//! ChaCha20-Poly1305 under a key from the environment.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};

use subtle::ConstantTimeEq as _;

use crate::store::{Change, ChangeCount};

const NONCE_LEN: usize = 12;

/// Why a key or sealed value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("expected 32 bytes encoded in base64 (for example from `openssl rand -base64 32`)")]
    BadKey,
    #[error("the stored credential cannot be decrypted with the configured key")]
    Undecryptable,
    #[error("a credential must be non-empty printable text without line breaks")]
    BadCredential,
}

/// The sealing key.
pub struct CredentialKey(ChaCha20Poly1305);

impl CredentialKey {
    /// Reads a base64-encoded 32-byte key.
    pub fn from_secret(secret: &SecretString) -> Result<Self, CredentialError> {
        let bytes = STANDARD
            .decode(secret.expose_secret().trim())
            .map_err(|_| CredentialError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CredentialError::BadKey);
        }
        Ok(Self(ChaCha20Poly1305::new(Key::from_slice(&bytes))))
    }

    /// Encrypts a credential bound to its user (the user name is the associated data, so a
    /// sealed value moved to another user's row does not open).
    pub fn seal(&self, user: &str, credential: &SecretString) -> Result<Vec<u8>, CredentialError> {
        let text = credential.expose_secret();
        if text.is_empty() || text.chars().any(char::is_control) {
            return Err(CredentialError::BadCredential);
        }
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = chacha20poly1305::aead::Payload {
            msg: text.as_bytes(),
            aad: user.as_bytes(),
        };
        let mut out = nonce.to_vec();
        out.extend(
            self.0
                .encrypt(&nonce, payload)
                .map_err(|_| CredentialError::BadCredential)?,
        );
        Ok(out)
    }

    /// Decrypts a sealed credential of `user`.
    pub fn open(&self, user: &str, sealed: &[u8]) -> Result<SecretString, CredentialError> {
        if sealed.len() <= NONCE_LEN {
            return Err(CredentialError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let payload = chacha20poly1305::aead::Payload {
            msg: ciphertext,
            aad: user.as_bytes(),
        };
        let plain = self
            .0
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| CredentialError::Undecryptable)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| CredentialError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CredentialKey {
        CredentialKey::from_secret(&SecretString::from(STANDARD.encode([7u8; 32]))).unwrap()
    }

    #[test]
    fn seals_and_opens_bound_to_the_user() {
        let k = key();
        let sealed = k.seal("alice", &SecretString::from("BBDC-secret")).unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"BBDC-secret"));
        assert_eq!(
            k.open("alice", &sealed).unwrap().expose_secret(),
            "BBDC-secret"
        );
        assert_eq!(
            k.open("bob", &sealed).unwrap_err(),
            CredentialError::Undecryptable
        );
        let other =
            CredentialKey::from_secret(&SecretString::from(STANDARD.encode([8u8; 32]))).unwrap();
        assert_eq!(
            other.open("alice", &sealed).unwrap_err(),
            CredentialError::Undecryptable
        );
        assert_eq!(
            k.open("alice", &sealed[..5]).unwrap_err(),
            CredentialError::Undecryptable
        );
    }

    #[test]
    fn refuses_bad_keys_and_credentials() {
        assert!(CredentialKey::from_secret(&SecretString::from("short")).is_err());
        assert!(
            CredentialKey::from_secret(&SecretString::from(STANDARD.encode([1u8; 16]))).is_err()
        );
        assert!(key().seal("a", &SecretString::from("")).is_err());
        assert!(key().seal("a", &SecretString::from("x\ny")).is_err());
    }
}

/// What the vault holds for a user.
#[derive(Clone)]
pub enum Upstream {
    /// Nothing is stored.
    Missing,
    /// Bitbucket refused the stored credential; it is not sent again until replaced.
    Refused,
    /// The credential, opened, as the `Authorization` value that sends it ([`bearer`]): made
    /// once when it is read from the store, not for every request.
    Usable(http::HeaderValue),
    /// A stored credential no header can carry.
    Unsendable,
}

/// The `Authorization` value that sends `credential` to Bitbucket, marked sensitive; `None`
/// for a credential a header cannot carry.
pub fn bearer(credential: &SecretString) -> Option<http::HeaderValue> {
    let mut value =
        http::HeaderValue::from_str(&format!("Bearer {}", credential.expose_secret())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Opens users' stored credentials for forwarding, with a short cache in front of the store.
pub struct CredentialVault {
    store: std::sync::Arc<dyn crate::store::CredentialStore>,
    /// Where store lookups run; `None` runs them on the caller's runtime.
    store_runtime: Option<crate::store::StoreRuntime>,
    key: std::sync::Arc<CredentialKey>,
    cache: moka::future::Cache<String, Upstream>,
    /// Credential changes heard, so a lookup that one overtook is not kept.
    changes: ChangeCount,
}

/// Why no credential could be used for a user.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

impl CredentialVault {
    pub fn new(
        store: std::sync::Arc<dyn crate::store::CredentialStore>,
        key: CredentialKey,
        ttl: std::time::Duration,
    ) -> Self {
        Self {
            store,
            store_runtime: None,
            key: std::sync::Arc::new(key),
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            changes: ChangeCount::default(),
        }
    }

    /// Runs store lookups on `runtime` (the one that owns the store's connections) rather than
    /// on the caller's.
    #[must_use]
    pub fn with_store_runtime(mut self, runtime: crate::store::StoreRuntime) -> Self {
        self.store_runtime = Some(runtime);
        self
    }

    /// What is stored for the user.
    pub async fn get(&self, user: &str) -> Result<Upstream, std::sync::Arc<VaultError>> {
        let mark = self.changes.mark();
        let credential = self
            .cache
            .try_get_with_by_ref(user, async {
                let sealed = match &self.store_runtime {
                    Some(runtime) => {
                        let (store, owner) = (std::sync::Arc::clone(&self.store), user.to_owned());
                        runtime
                            .run(async move { store.get_credential(&owner).await })
                            .await?
                    }
                    None => self.store.get_credential(user).await?,
                };
                match sealed {
                    Some(stored) if stored.refused_at.is_some() => Ok(Upstream::Refused),
                    Some(stored) => Ok(bearer(&self.key.open(user, &stored.sealed)?)
                        .map_or(Upstream::Unsendable, Upstream::Usable)),
                    None => Ok(Upstream::Missing),
                }
            })
            .await;
        if self.changes.changed_since(mark) {
            self.cache.invalidate(user).await;
        }
        credential
    }

    /// Marks the user's credential refused by Bitbucket, here and (through the store's change
    /// announcement) on every replica, if it is still the one `sent` (the `Authorization` value
    /// made by [`bearer`]) carried. An answer to a request sent before the user's credential
    /// was replaced refuses nothing: the replacement was never shown to Bitbucket. True when the
    /// credential was marked.
    pub async fn refuse(
        &self,
        user: &str,
        sent: &http::HeaderValue,
    ) -> Result<bool, crate::store::StoreError> {
        let (store, owner, sent, at) = (
            std::sync::Arc::clone(&self.store),
            user.to_owned(),
            sent.clone(),
            chrono::Utc::now(),
        );
        let key = std::sync::Arc::clone(&self.key);
        let refuse = async move {
            let Some(stored) = store.get_credential(&owner).await? else {
                return Ok(false);
            };
            // A credential that cannot be opened was not the one sent.
            let Some(stored_value) = key
                .open(&owner, &stored.sealed)
                .ok()
                .and_then(|secret| bearer(&secret))
            else {
                return Ok(false);
            };
            if !bool::from(stored_value.as_bytes().ct_eq(sent.as_bytes())) {
                return Ok(false);
            }
            // Compared again by the store, so a replacement stored since is not marked.
            store.refuse_credential(&owner, &stored.sealed, at).await
        };
        let marked = match &self.store_runtime {
            Some(runtime) => runtime.run(refuse).await?,
            None => refuse.await?,
        };
        self.forget(user).await;
        Ok(marked)
    }

    /// Forgets a cached credential (after it was replaced).
    pub async fn forget(&self, user: &str) {
        self.changes.count();
        self.cache.invalidate(user).await;
    }

    /// Forgets what `change` makes stale: a replaced credential, or all of them when changes
    /// may have been missed.
    pub async fn apply(&self, change: &Change) {
        match change {
            Change::Credential(user) => self.forget(user).await,
            Change::All => {
                self.changes.count();
                self.cache.invalidate_all();
            }
            Change::Token(_) => {}
        }
    }
}
