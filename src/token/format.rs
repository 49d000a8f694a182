//! The token string: `tgt_{id}_{secret}{checksum}`.
//!
//! `tgt_` lets secret scanners find leaked tokens; the 12-character id finds the record in one
//! indexed lookup; the 32-character secret carries 190 bits from the OS CSPRNG; the 6-character
//! CRC-32 checksum rejects a mistyped or made-up token before any store access. The same
//! shape and checksum find tokens where they must not be (a query string, a cookie), whatever
//! the letter case of their prefix.

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
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;
/// Where a token's secret starts, after `tgt_{id}_`: what a redaction hides from there on.
pub const SECRET_START: usize = TOKEN_PREFIX.len() + ID_LEN + 1;

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
    /// True when `s` claims to be a tokengate token: it starts with the prefix, or with a
    /// token whose prefix is written in other letters (`TGT_…`, which is refused as malformed
    /// but is no less a secret).
    pub fn is_tokengate_format(s: &str) -> bool {
        s.starts_with(TOKEN_PREFIX) || s.as_bytes().get(..TOKEN_LEN).is_some_and(is_token)
    }

    /// Checks shape and checksum. Pure CPU, no store access.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let bytes = s.as_bytes();
        // ASCII first: the slices below are byte offsets, which a multi-byte character
        // could straddle.
        if bytes.len() != TOKEN_LEN || !s.is_ascii() || !s.starts_with(TOKEN_PREFIX) {
            return Err(ParseError::Shape);
        }
        if !has_token_shape(bytes) {
            return Err(ParseError::Shape);
        }
        let id = TokenId::parse(&s[TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + ID_LEN])
            .ok_or(ParseError::Shape)?;
        let (body, checksum) = bytes.split_at(TOKEN_LEN - CHECKSUM_LEN);
        if encode_checksum(body) != checksum {
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

/// Whether `token` (exactly [`TOKEN_LEN`] bytes after the prefix's) has the shape of a token
/// after its prefix: a lower-case base-36 id, `_`, and base-62 secret and checksum.
fn has_token_shape(token: &[u8]) -> bool {
    let sep = TOKEN_PREFIX.len() + ID_LEN;
    // One table lookup a byte, without an early exit: every token that is checked has the
    // shape, nearly always.
    let all = |bytes: &[u8], class: u8| {
        bytes
            .iter()
            .fold(class, |left, &b| left & CLASSES[usize::from(b)])
            != 0
    };
    all(&token[TOKEN_PREFIX.len()..sep], ID_CHAR)
        && token[sep] == b'_'
        && all(&token[sep + 1..], SECRET_CHAR)
}

/// A character of a token id: a digit or a lower-case letter.
const ID_CHAR: u8 = 1;
/// A character of a token secret: an ASCII letter or digit.
const SECRET_CHAR: u8 = 2;

/// Each byte's classes.
const CLASSES: [u8; 256] = {
    let mut classes = [0; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_digit() || c.is_ascii_lowercase() {
            classes[b] |= ID_CHAR;
        }
        if c.is_ascii_alphanumeric() {
            classes[b] |= SECRET_CHAR;
        }
        b += 1;
    }
    classes
};

/// Whether `candidate` is exactly a whole token, its prefix in any letter case: shape and
/// checksum, the checksum taken over the prefix as generated.
pub fn is_token(candidate: &[u8]) -> bool {
    let Some((prefix, rest)) = candidate.split_at_checked(TOKEN_PREFIX.len()) else {
        return false;
    };
    if candidate.len() != TOKEN_LEN
        || !prefix.eq_ignore_ascii_case(TOKEN_PREFIX.as_bytes())
        || !has_token_shape(candidate)
    {
        return false;
    }
    let (body, checksum) = rest.split_at(rest.len() - CHECKSUM_LEN);
    let mut crc = crc32fast::Hasher::new();
    crc.update(TOKEN_PREFIX.as_bytes());
    crc.update(body);
    checksum_text(crc.finalize()) == checksum
}

/// Where `text` holds a whole token, its prefix in any letter case (`TGT_…` is the same secret
/// written otherwise): the offset of each, as written (not percent-decoded). One byte search
/// for `_`; the shape and checksum are checked only where `tgt` stands before one.
pub fn find_tokens(text: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let prefix = &TOKEN_PREFIX.as_bytes()[..TOKEN_PREFIX.len() - 1];
    memchr::memchr_iter(b'_', text).filter_map(move |underscore| {
        let start = underscore.checked_sub(prefix.len())?;
        let candidate = text.get(start..start + TOKEN_LEN)?;
        (candidate[..prefix.len()].eq_ignore_ascii_case(prefix) && is_token(candidate))
            .then_some(start)
    })
}

/// Whether `text` holds a whole token anywhere, as written (see [`find_tokens`]).
pub fn contains_token(text: &[u8]) -> bool {
    find_tokens(text).next().is_some()
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
    let checksum = encode_checksum(body.as_bytes());
    let mut whole = body;
    whole.push_str(std::str::from_utf8(&checksum).expect("base62 is ASCII"));
    (TokenId(id), SecretString::from(whole))
}

fn encode_checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    checksum_text(crc32fast::hash(body))
}

/// A CRC-32 as the checksum's base-62 characters.
fn checksum_text(mut n: u32) -> [u8; CHECKSUM_LEN] {
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
    fn tokens_are_found_anywhere_with_the_prefix_in_any_case() {
        let (_, secret) = generate();
        let token = secret.expose_secret();
        let upper = format!("TGT_{}", &token[4..]);
        let text = format!("a=1&x={token}&y=x{upper}-and-{token}");
        let found: Vec<usize> = find_tokens(text.as_bytes()).collect();
        let second = 6 + TOKEN_LEN + 4;
        assert_eq!(found, [6, second, second + TOKEN_LEN + 5]);
        assert!(is_token(token.as_bytes()) && is_token(upper.as_bytes()));
        assert!(!is_token(format!("{token}x").as_bytes()));

        // A credential with another prefix case is a token, refused as malformed.
        assert!(PresentedToken::is_tokengate_format(&upper));
        assert!(PresentedToken::is_tokengate_format(&format!(
            "tGt_{}",
            &token[4..]
        )));
        assert!(PresentedToken::parse(&upper).is_err());
        assert!(PresentedToken::is_tokengate_format("tgt_abc"));
        assert!(!PresentedToken::is_tokengate_format("TGT_abc"));

        // The shape and checksum make a token, not the prefix.
        let mut tampered = token.as_bytes().to_vec();
        tampered[20] = if tampered[20] == b'a' { b'b' } else { b'a' };
        let shouted = format!("Tgt_{}", &token[4..].to_uppercase());
        for text in [
            b"tgt_abc".as_slice(),
            b"TGT_",
            b"_tgt_",
            &token.as_bytes()[..TOKEN_LEN - 1],
            &tampered,
            shouted.as_bytes(),
        ] {
            assert!(!contains_token(text), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let (_, secret) = generate();
        let parsed = PresentedToken::parse(secret.expose_secret()).unwrap();
        assert!(!format!("{parsed:?}").contains(&secret.expose_secret()[17..]));
    }
}
