//! Reading the `Authorization` header: `Bearer <token>` (RFC 6750) or `Basic base64(user:token)`
//! (RFC 7617). Anything malformed is a value the decision table handles, never an error. A
//! token anywhere else in the header (the Basic user, Basic without a colon, its prefix in
//! other letters, an unread scheme) is a token all the same, refused and never passed on.

use std::borrow::Cow;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::token::{PresentedToken, TOKEN_PREFIX, contains_token};

/// The scheme a tokengate token came in, for the `WWW-Authenticate` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Basic,
}

/// What the request presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No `Authorization` header.
    Missing,
    /// A credential not in tokengate's format: a password, a Bitbucket token, another scheme,
    /// or a malformed header. `user` is the Basic user name where one could be read.
    Foreign {
        user: Option<String>,
        scheme: Option<Scheme>,
    },
    /// A credential in tokengate's format (it starts with `tgt_`), not yet verified. Also used
    /// when several `Authorization` headers are sent, since none of them may be forwarded.
    Token {
        scheme: Scheme,
        /// The Basic user name, which must be the token's owner.
        basic_user: Option<String>,
        token: Cow<'a, str>,
    },
}

/// Longest header value considered; longer ones are foreign (and never decoded).
const MAX_LEN: usize = 8 * 1024;

impl<'a> Credential<'a> {
    /// Reads the request's `Authorization` header(s).
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(first) = values.next() else {
            return Self::Missing;
        };
        if values.next().is_some() {
            return Self::hidden_token(Scheme::Bearer);
        }
        match first.to_str() {
            Ok(value) => Self::parse(value),
            Err(_) => Self::foreign_unless_hiding_a_token(first.as_bytes(), None, None),
        }
    }

    /// Reads one header value.
    pub fn parse(value: &'a str) -> Self {
        if value.len() > MAX_LEN {
            return Self::foreign_unless_hiding_a_token(value.as_bytes(), None, None);
        }
        let value = value.trim();
        let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        let rest = rest.trim_start();
        if scheme.eq_ignore_ascii_case("bearer") {
            if PresentedToken::is_tokengate_format(rest) {
                return Self::Token {
                    scheme: Scheme::Bearer,
                    basic_user: None,
                    token: Cow::Borrowed(rest),
                };
            }
            return Self::foreign_unless_hiding_a_token(
                value.as_bytes(),
                None,
                Some(Scheme::Bearer),
            );
        }
        if scheme.eq_ignore_ascii_case("basic") {
            return Self::basic(value, rest);
        }
        Self::foreign_unless_hiding_a_token(value.as_bytes(), None, None)
    }

    fn basic(value: &str, encoded: &str) -> Self {
        let foreign =
            |user| Self::foreign_unless_hiding_a_token(value.as_bytes(), user, Some(Scheme::Basic));
        let Ok(decoded) = STANDARD.decode(encoded) else {
            return foreign(None);
        };
        let pair = std::str::from_utf8(&decoded)
            .ok()
            .and_then(|text| text.split_once(':'));
        if let Some((user, password)) = pair
            && PresentedToken::is_tokengate_format(password)
            && !contains_token(user.as_bytes())
        {
            // An empty user name is kept: it is not the owner, so the token is refused.
            return Self::Token {
                scheme: Scheme::Basic,
                basic_user: Some(user.to_owned()),
                token: Cow::Owned(password.to_owned()),
            };
        }
        // A token as the user, without a colon, or inside a password: refused, never passed
        // on, and the user name it is part of never written to a line.
        if contains_token(&decoded) {
            return Self::hidden_token(Scheme::Basic);
        }
        foreign(pair.and_then(|(user, _)| (!user.is_empty()).then(|| user.to_owned())))
    }

    /// A value this parser does not read is foreign, unless it still carries a tokengate
    /// token in a form Bitbucket or a lenient client library might read (a bare token, bytes
    /// that are not visible ASCII, an oversized value, unpadded or URL-safe base64): such a
    /// token is refused as malformed, so it never reaches Bitbucket.
    fn foreign_unless_hiding_a_token(
        value: &[u8],
        user: Option<String>,
        scheme: Option<Scheme>,
    ) -> Self {
        if hides_a_token(value) {
            return Self::hidden_token(scheme.unwrap_or(Scheme::Bearer));
        }
        Self::Foreign { user, scheme }
    }

    /// A token that is refused whatever it is: its text is empty, which never verifies.
    fn hidden_token(scheme: Scheme) -> Self {
        Self::Token {
            scheme,
            basic_user: None,
            token: Cow::Borrowed(""),
        }
    }
}

/// Base64 of either alphabet, padded or not: what lenient decoders accept.
const LENIENT: [GeneralPurpose; 2] = [
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    ),
    GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    ),
];

/// True when `value` holds a whole token (its prefix in any letter case) or `tgt_` at the start
/// of a word, or a word of it decodes (as lenient base64) to a whole token or to a
/// `user:password` whose password starts with `tgt_`.
fn hides_a_token(value: &[u8]) -> bool {
    let starts_a_word = |at: usize| at == 0 || !value[at - 1].is_ascii_alphanumeric();
    if contains_token(value)
        || value
            .windows(TOKEN_PREFIX.len())
            .enumerate()
            .any(|(at, w)| w == TOKEN_PREFIX.as_bytes() && starts_a_word(at))
    {
        return true;
    }
    value
        .split(|b| b.is_ascii_whitespace() || *b == b',')
        .filter(|word| word.len() >= 8)
        .any(|word| {
            LENIENT.iter().any(|engine| {
                engine.decode(word).is_ok_and(|decoded| {
                    contains_token(&decoded)
                        || decoded
                            .windows(TOKEN_PREFIX.len() + 1)
                            .any(|w| w[0] == b':' && &w[1..] == TOKEN_PREFIX.as_bytes())
                })
            })
        })
}

#[cfg(test)]
mod tests;
