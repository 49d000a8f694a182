//! API tokens: the record the store keeps, the public token format with its checksum, and the
//! argon2id hashing of secrets.

mod format;
mod hash;
mod model;

pub use format::{ParseError, PresentedToken, TOKEN_PREFIX, TokenId, generate};
pub use hash::{hash_secret, verify_secret};
pub use model::{NewToken, Scope, TokenPatch, TokenRecord, TokenState};
