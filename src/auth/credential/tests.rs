//! Reading `Authorization` values: every scheme and Basic form, malformed headers, and tokens
//! hidden anywhere in them.

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
    for v in [
        "",
        "   ",
        "Digest x",
        "Negotiate abc",
        "Bearer",
        "Bearer mytgt_x",
    ] {
        assert!(
            matches!(Credential::parse(v), Credential::Foreign { .. }),
            "{v:?}"
        );
    }
    // A password that merely contains the prefix is not a token.
    assert_eq!(
        Credential::parse(&basic("alice:hunter2tgt_")),
        Credential::Foreign {
            user: Some("alice".into()),
            scheme: Some(Scheme::Basic)
        }
    );
}

/// The token a malformed header carries is refused (its text is empty, which never
/// verifies), so it is never forwarded.
#[test]
fn tokens_in_malformed_headers_are_refused_not_foreign() {
    let refused = |scheme| Credential::Token {
        scheme,
        basic_user: None,
        token: "".into(),
    };
    let unpadded = STANDARD
        .encode("alice:tgt_abc")
        .trim_end_matches('=')
        .to_owned();
    assert_ne!(
        unpadded,
        STANDARD.encode("alice:tgt_abc"),
        "the test needs padding"
    );
    let url_safe = base64::engine::general_purpose::URL_SAFE.encode("al?>?~ce:tgt_abc");
    assert_ne!(url_safe, STANDARD.encode("al?>?~ce:tgt_abc"));
    for (value, scheme) in [
        ("tgt_abc".to_owned(), Scheme::Bearer),
        ("Token tgt_abc".to_owned(), Scheme::Bearer),
        (
            format!("Bearer tgt_{}", "a".repeat(MAX_LEN)),
            Scheme::Bearer,
        ),
        (format!("Basic {unpadded}"), Scheme::Basic),
        (format!("Basic {url_safe}"), Scheme::Basic),
        (format!("Basic   {unpadded}  "), Scheme::Basic),
    ] {
        assert_eq!(Credential::parse(&value), refused(scheme), "{value:?}");
    }
    // A tab between scheme and token is read like a space.
    assert_eq!(
        Credential::parse("Bearer\ttgt_abc"),
        Credential::Token {
            scheme: Scheme::Bearer,
            basic_user: None,
            token: "tgt_abc".into()
        }
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer \xfe tgt_abc").unwrap(),
    );
    assert_eq!(Credential::from_headers(&headers), refused(Scheme::Bearer));
}

/// A token wherever the header holds it, its prefix in any letter case: refused (its text
/// is empty, which never verifies), and no user name that holds it is kept.
#[test]
fn a_token_anywhere_in_the_header_is_refused() {
    let (_, secret) = crate::token::generate();
    let token = secrecy::ExposeSecret::expose_secret(&secret).to_owned();
    let upper = format!("TGT_{}", &token[4..]);
    let hidden = |scheme| Credential::Token {
        scheme,
        basic_user: None,
        token: "".into(),
    };
    let raw_basic = |s: &str| format!("Basic {}", STANDARD.encode(s));
    for (value, scheme) in [
        (raw_basic(&token), Scheme::Basic),
        (raw_basic(&format!("{token}:")), Scheme::Basic),
        (raw_basic(&format!("{token}:hunter2")), Scheme::Basic),
        (raw_basic(&format!("{upper}:{token}")), Scheme::Basic),
        (raw_basic(&format!("alice:x{token}")), Scheme::Basic),
        (
            format!(
                "Basic {}",
                STANDARD.encode([&[0xffu8, b':'][..], token.as_bytes()].concat())
            ),
            Scheme::Basic,
        ),
        (format!("Token {upper}"), Scheme::Bearer),
        (format!("Digest username=\"{token}\""), Scheme::Bearer),
    ] {
        assert_eq!(Credential::parse(&value), hidden(scheme), "{value}");
    }
    // Where a token belongs, in another letter case: read as a token, which then fails.
    for value in [
        format!("BEARER {upper}"),
        format!("bearer tGt_{}", &token[4..]),
    ] {
        assert!(
            matches!(
                Credential::parse(&value),
                Credential::Token {
                    scheme: Scheme::Bearer,
                    ..
                }
            ),
            "{value}"
        );
    }
    assert_eq!(
        Credential::parse(&raw_basic(&format!("alice:{upper}"))),
        Credential::Token {
            scheme: Scheme::Basic,
            basic_user: Some("alice".into()),
            token: upper.clone().into(),
        }
    );
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
