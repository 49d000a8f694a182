//! Reading the `Authorization` header: `Bearer <token>` (RFC 6750) or `Basic base64(user:token)`
//! (RFC 7617). Anything malformed is a value the decision table handles, never an error.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::token::PresentedToken;

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
            return Self::Token {
                scheme: Scheme::Bearer,
                basic_user: None,
                token: Cow::Borrowed(""),
            };
        }
        match first.to_str() {
            Ok(value) => Self::parse(value),
            Err(_) => Self::Foreign {
                user: None,
                scheme: None,
            },
        }
    }

    /// Reads one header value.
    pub fn parse(value: &'a str) -> Self {
        if value.len() > MAX_LEN {
            return Self::Foreign {
                user: None,
                scheme: None,
            };
        }
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim_start();
        if scheme.eq_ignore_ascii_case("bearer") {
            if PresentedToken::is_tokengate_format(rest) {
                return Self::Token {
                    scheme: Scheme::Bearer,
                    basic_user: None,
                    token: Cow::Borrowed(rest),
                };
            }
            return Self::Foreign {
                user: None,
                scheme: Some(Scheme::Bearer),
            };
        }
        if scheme.eq_ignore_ascii_case("basic") {
            return Self::basic(rest);
        }
        Self::Foreign {
            user: None,
            scheme: None,
        }
    }

    fn basic(encoded: &str) -> Self {
        let foreign = |user| Self::Foreign {
            user,
            scheme: Some(Scheme::Basic),
        };
        let Ok(decoded) = STANDARD.decode(encoded) else {
            return foreign(None);
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return foreign(None);
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return foreign(None);
        };
        if PresentedToken::is_tokengate_format(password) {
            // An empty user name is kept: it is not the owner, so the token is refused.
            Self::Token {
                scheme: Scheme::Basic,
                basic_user: Some(user.to_owned()),
                token: Cow::Owned(password.to_owned()),
            }
        } else {
            foreign((!user.is_empty()).then(|| user.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn basic(s: &str) -> String {
        format!("Basic {}", STANDARD.encode(s))
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(
            Credential::parse("Bearer tgt_abc"),
            Credential::Token {
                scheme: Scheme::Bearer,
                basic_user: None,
                token: "tgt_abc".into()
            }
        );
        assert_eq!(
            Credential::parse("bearer   tgt_abc"),
            Credential::Token {
                scheme: Scheme::Bearer,
                basic_user: None,
                token: "tgt_abc".into()
            }
        );
        assert_eq!(
            Credential::parse("Bearer BBDC-bitbucket-token"),
            Credential::Foreign {
                user: None,
                scheme: Some(Scheme::Bearer)
            }
        );
    }

    #[test]
    fn basic_credentials() {
        assert_eq!(
            Credential::parse(&basic("alice:tgt_abc")),
            Credential::Token {
                scheme: Scheme::Basic,
                basic_user: Some("alice".into()),
                token: "tgt_abc".into()
            }
        );
        assert_eq!(
            Credential::parse(&basic("alice:hunter2")),
            Credential::Foreign {
                user: Some("alice".into()),
                scheme: Some(Scheme::Basic)
            }
        );
        assert_eq!(
            Credential::parse(&basic(":tgt_abc")),
            Credential::Token {
                scheme: Scheme::Basic,
                basic_user: Some(String::new()),
                token: "tgt_abc".into()
            }
        );
        // A colon inside the password is part of the password (RFC 7617).
        assert_eq!(
            Credential::parse(&basic("bob:pa:ss")),
            Credential::Foreign {
                user: Some("bob".into()),
                scheme: Some(Scheme::Basic)
            }
        );
    }

    #[test]
    fn malformed_headers_are_foreign() {
        let foreign_basic = Credential::Foreign {
            user: None,
            scheme: Some(Scheme::Basic),
        };
        assert_eq!(Credential::parse("Basic !!!not-base64"), foreign_basic);
        assert_eq!(
            Credential::parse(&format!("Basic {}", STANDARD.encode("no-colon"))),
            foreign_basic
        );
        assert_eq!(
            Credential::parse(&format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':']))),
            foreign_basic
        );
        assert_eq!(Credential::parse("Basic"), foreign_basic);
        for v in ["", "   ", "Digest x", "Negotiate abc", "tgt_abc", "Bearer"] {
            assert!(
                matches!(Credential::parse(v), Credential::Foreign { .. }),
                "{v:?}"
            );
        }
        let huge = format!("Bearer tgt_{}", "a".repeat(MAX_LEN));
        assert!(matches!(
            Credential::parse(&huge),
            Credential::Foreign { .. }
        ));
    }

    #[test]
    fn header_maps() {
        let mut headers = HeaderMap::new();
        assert_eq!(Credential::from_headers(&headers), Credential::Missing);
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xfftgt").unwrap(),
        );
        assert!(matches!(
            Credential::from_headers(&headers),
            Credential::Foreign { .. }
        ));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer tgt_x"));
        assert!(
            matches!(Credential::from_headers(&headers), Credential::Token { .. }),
            "several headers are never forwarded"
        );
    }
}
