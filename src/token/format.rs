//! The token string: `tgt_{id}_{secret}{checksum}`.
//!
//! `tgt_` lets secret scanners find leaked tokens; the 12-character id finds the record in one
//! indexed lookup; the 32-character secret carries 190 bits from the OS CSPRNG; the 6-character
//! CRC-32 checksum rejects a mistyped or made-up token before any store access.

use std::fmt;

use rand::Rng;
use rand::rngs::OsRng;
use secrecy::SecretString;

/// The fixed prefix of every tokengate token.
pub const TOKEN_PREFIX: &str = "tgt_";

const ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
/// Length of a whole token string.
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The public id of a token: 12 lower-case base-36 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(String);

impl TokenId {
    /// Accepts a string with the shape of an id (used for ids from URLs and the store).
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
        .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a fixed-size value, a cheap map key (no allocation).
    pub fn key(&self) -> [u8; ID_LEN] {
        let mut key = [0; ID_LEN];
        key.copy_from_slice(self.0.as_bytes());
        key
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A credential in tokengate's format, checked for shape and checksum (not yet verified).
pub struct PresentedToken<'a> {
    id: TokenId,
    whole: &'a str,
}

impl fmt::Debug for PresentedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a `tgt_` credential was refused without a store access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the token does not have the shape of a tokengate token")]
    Shape,
    #[error("the token's checksum does not match")]
    Checksum,
}

impl<'a> PresentedToken<'a> {
    /// True when `s` claims to be a tokengate token (starts with the prefix).
    pub fn is_tokengate_format(s: &str) -> bool {
        s.starts_with(TOKEN_PREFIX)
    }

    /// Checks shape and checksum. Pure CPU, no store access.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let bytes = s.as_bytes();
        // ASCII first: the slices below are byte offsets, which a multi-byte character
        // could straddle.
        if bytes.len() != TOKEN_LEN || !s.is_ascii() || !s.starts_with(TOKEN_PREFIX) {
            return Err(ParseError::Shape);
        }
        let id = &s[TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + ID_LEN];
        let sep = TOKEN_PREFIX.len() + ID_LEN;
        let rest = &s[sep + 1..];
        if bytes[sep] != b'_' || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ParseError::Shape);
        }
        let id = TokenId::parse(id).ok_or(ParseError::Shape)?;
        let (body, checksum) = s.split_at(TOKEN_LEN - CHECKSUM_LEN);
        if encode_checksum(body) != checksum.as_bytes() {
            return Err(ParseError::Checksum);
        }
        Ok(Self { id, whole: s })
    }

    /// The public id, for the store lookup.
    pub fn id(&self) -> &TokenId {
        &self.id
    }

    /// The whole token string, the input to hashing; never log it.
    pub fn expose(&self) -> &'a str {
        self.whole
    }
}

/// Creates a new token: its id and the whole secret string, shown to the user once.
pub fn generate() -> (TokenId, SecretString) {
    let mut rng = OsRng;
    let id: String = (0..ID_LEN)
        .map(|_| ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())] as char)
        .collect();
    let secret: String = (0..SECRET_LEN)
        .map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char)
        .collect();
    let body = format!("{TOKEN_PREFIX}{id}_{secret}");
    let checksum = encode_checksum(&body);
    let mut whole = body;
    whole.push_str(std::str::from_utf8(&checksum).expect("base62 is ASCII"));
    (TokenId(id), SecretString::from(whole))
}

fn encode_checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn generated_tokens_parse_back_to_their_id() {
        for _ in 0..100 {
            let (id, secret) = generate();
            let parsed = PresentedToken::parse(secret.expose_secret()).unwrap();
            assert_eq!(parsed.id(), &id);
            assert!(secret.expose_secret().starts_with("tgt_"));
        }
    }

    #[test]
    fn any_single_character_change_is_caught() {
        let (_, secret) = generate();
        let token = secret.expose_secret();
        for i in TOKEN_PREFIX.len()..token.len() {
            let mut bytes = token.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered == token {
                continue;
            }
            assert!(PresentedToken::parse(&tampered).is_err(), "position {i}");
        }
    }

    #[test]
    fn refuses_wrong_shapes() {
        let (_, secret) = generate();
        let token = secret.expose_secret();
        assert_eq!(
            PresentedToken::parse("tgt_").unwrap_err(),
            ParseError::Shape
        );
        assert_eq!(
            PresentedToken::parse(&token[1..]).unwrap_err(),
            ParseError::Shape
        );
        assert_eq!(
            PresentedToken::parse(&format!("{token}x")).unwrap_err(),
            ParseError::Shape
        );
        let upper = format!("tgt_{}", &token[4..].to_uppercase());
        assert!(PresentedToken::parse(&upper).is_err());
        let nonascii = token.replacen('_', "é", 2);
        assert!(PresentedToken::parse(&nonascii).is_err());
    }

    #[test]
    fn a_multi_byte_character_anywhere_is_a_shape_error() {
        let (_, secret) = generate();
        let token = secret.expose_secret();
        // Same byte length as a token, so only the character boundaries differ.
        for i in TOKEN_PREFIX.len()..token.len() - 1 {
            let presented = format!("{}é{}", &token[..i], &token[i + 2..]);
            assert_eq!(presented.len(), token.len());
            assert_eq!(
                PresentedToken::parse(&presented).unwrap_err(),
                ParseError::Shape,
                "position {i}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let (_, secret) = generate();
        let parsed = PresentedToken::parse(secret.expose_secret()).unwrap();
        assert!(!format!("{parsed:?}").contains(&secret.expose_secret()[17..]));
    }
}
