//! Why a lifecycle operation did nothing.

use super::Invalid;
use crate::store::StoreError;
use crate::token::TokenId;

/// Why a lifecycle operation did nothing.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// A value was refused.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A change that changes nothing.
    #[error(
        "nothing to change: give at least one of description, expires_at, allowed_ips, rate_limit"
    )]
    EmptyPatch,
    /// No token has this id (or the id is not shaped like one); holds the id as shown.
    #[error("no token has the id {0}")]
    NotFound(String),
    /// A revoked token cannot be changed.
    #[error("token {0} is revoked and can no longer be changed")]
    Revoked(TokenId),
    /// A token in the grace of a rotation is not rotated again: it has a successor.
    #[error(
        "token {id} was rotated already; its successor is {by} (rotate that one, or revoke \
         this one to end its grace now)"
    )]
    Replaced { id: TokenId, by: TokenId },
    /// An expired token cannot be rotated: its successor would be expired too.
    #[error(
        "token {0} has expired, so a rotation would make an expired token: give it a later \
         expiry first (tokengate token update, or PATCH), or create a new token"
    )]
    Expired(TokenId),
    /// No credential is stored for this user; holds the user as shown.
    #[error("no Bitbucket credential is stored for the user {0}")]
    NoCredential(String),
    /// Credentials cannot be stored without a key.
    #[error(
        "storing users' credentials needs upstream.credential_key: set it in the config file or \
         in TOKENGATE_UPSTREAM__CREDENTIAL_KEY (32 random bytes in base64, for example from \
         `openssl rand -base64 32`)"
    )]
    NoCredentialKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}
