//! API tokens: the record the store keeps, the public token format with its checksum, and the
//! argon2id hashing of secrets.

mod format;
mod hash;
mod model;

pub use format::{
    ParseError, PresentedToken, SECRET_START, TOKEN_LEN, TOKEN_PREFIX, TokenId, contains_token,
    find_tokens, generate, is_token,
};
pub use hash::{hash_secret, verify_secret};
pub use model::{NewToken, Scope, TokenPatch, TokenRecord, TokenState};
