//! Tokengate tokens where no token belongs: the query string and cookies. Such a request is
//! refused wherever it goes and never forwarded (Bitbucket would log the query string and pass
//! cookies on), and the query string is shown redacted in every line of the request. A token
//! is found by its shape and checksum, its prefix in any letter case, written plainly or with
//! `%XX` escapes anywhere in it. The common request, with neither `_` nor `%` in its query or
//! cookies, costs one byte search each.

use std::fmt;

use http::HeaderMap;
use http::header::COOKIE;

use super::route::hex_value;
use crate::token::{SECRET_START, TOKEN_LEN, TOKEN_PREFIX, contains_token, find_tokens, is_token};

/// Where a request carries a token outside `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPlace {
    /// In the query string.
    Query,
    /// In a `Cookie` header.
    Cookie,
}

/// Where the request carries a tokengate token outside `Authorization`, if it does: in its
/// `query`, or in the cookies of `headers` (given when the request has a `Cookie` header).
pub fn stray_token(query: Option<&str>, headers: Option<&HeaderMap>) -> Option<TokenPlace> {
    if query.is_some_and(|query| holds_token(query.as_bytes())) {
        return Some(TokenPlace::Query);
    }
    headers?
        .get_all(COOKIE)
        .iter()
        .any(|cookie| holds_token(cookie.as_bytes()))
        .then_some(TokenPlace::Cookie)
}

/// Whether `text` holds a whole token, as written or with `%XX` escapes in it.
pub fn holds_token(text: &[u8]) -> bool {
    if contains_token(text) {
        return true;
    }
    if memchr::memchr(b'%', text).is_none() {
        return false;
    }
    let prefix = &TOKEN_PREFIX.as_bytes()[..TOKEN_PREFIX.len() - 1];
    // A plain prefix with escapes after it.
    let plain = memchr::memchr_iter(b'_', text)
        .filter_map(|underscore| underscore.checked_sub(prefix.len()))
        .filter(|&start| text[start..start + prefix.len()].eq_ignore_ascii_case(prefix));
    // An escaped letter of the prefix: the token starts at most three characters before it.
    let escaped = memchr::memchr_iter(b'%', text)
        .filter(|&at| {
            matches!(
                escaped_byte(text, at).map(|b| b.to_ascii_lowercase()),
                Some(b't' | b'g' | b'_')
            )
        })
        .flat_map(|at| at.saturating_sub(prefix.len())..=at);
    plain
        .chain(escaped)
        .any(|start| decode_token_at(text, start).is_some_and(|candidate| is_token(&candidate)))
}

/// The byte the escape at `at` (`%XX`) stands for.
fn escaped_byte(text: &[u8], at: usize) -> Option<u8> {
    let high = hex_value(*text.get(at + 1)?)?;
    let low = hex_value(*text.get(at + 2)?)?;
    Some(high << 4 | low)
}

/// The first [`TOKEN_LEN`] bytes `text` decodes to from `start` (`%XX` as its byte, anything
/// else as written), or `None` when it ends first.
fn decode_token_at(text: &[u8], mut start: usize) -> Option<[u8; TOKEN_LEN]> {
    let mut out = [0; TOKEN_LEN];
    for slot in &mut out {
        let byte = *text.get(start)?;
        match escaped_byte(text, start).filter(|_| byte == b'%') {
            Some(decoded) => {
                *slot = decoded;
                start += 3;
            }
            None => {
                *slot = byte;
                start += 1;
            }
        }
    }
    Some(out)
}

/// A query string with each token's secret replaced by `[redacted]` (`tgt_{id}_[redacted]`,
/// the public id kept); a query whose token is written with escapes is `[redacted]` whole.
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        let mut shown = 0;
        for start in find_tokens(text.as_bytes()) {
            // Tokens are ASCII, so these offsets are character boundaries.
            f.write_str(&text[shown..start + SECRET_START])?;
            f.write_str(REDACTED)?;
            shown = start + TOKEN_LEN;
        }
        if shown == 0 && holds_token(text.as_bytes()) {
            return f.write_str(REDACTED);
        }
        f.write_str(&text[shown..])
    }
}

const REDACTED: &str = "[redacted]";

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use secrecy::ExposeSecret as _;

    use super::*;

    fn token() -> String {
        crate::token::generate().1.expose_secret().to_owned()
    }

    /// Every character of `token` from `from` on, written as `%XX`.
    fn escaped_from(token: &str, from: usize) -> String {
        let (plain, rest) = token.split_at(from);
        let escaped: String = rest.bytes().map(|b| format!("%{b:02X}")).collect();
        format!("{plain}{escaped}")
    }

    #[test]
    fn tokens_are_found_in_queries_and_cookies_however_written() {
        let token = token();
        let upper = format!("TGT_{}", &token[4..]);
        let mut headers = HeaderMap::new();
        assert_eq!(stray_token(None, Some(&headers)), None);
        for query in [
            format!("private_token={token}"),
            format!("a=b&t={upper}&c=d"),
            format!("x{token}y"),
            token.replace('_', "%5F"),
            token.replace('_', "%5f").replacen('t', "%74", 1),
            format!("t=%54{}", &escaped_from(&token, 1)[1..]),
            escaped_from(&token, 0),
            escaped_from(&token, 2),
            escaped_from(&token, 20),
            format!("%%{}", escaped_from(&token, 4)),
        ] {
            assert_eq!(
                stray_token(Some(&query), Some(&headers)),
                Some(TokenPlace::Query),
                "{query}"
            );
        }
        headers.append(
            COOKIE,
            HeaderValue::from_static("_ga=GA1.2.3; BITBUCKETSESSIONID=x"),
        );
        assert_eq!(
            stray_token(Some("at=refs%2Fheads%2Fmain"), Some(&headers)),
            None
        );
        headers.append(
            COOKIE,
            HeaderValue::from_str(&format!("api={token}")).unwrap(),
        );
        assert_eq!(stray_token(None, Some(&headers)), Some(TokenPlace::Cookie));
    }

    #[test]
    fn what_only_looks_like_a_token_is_none() {
        let token = token();
        for text in [
            "q=tgt_abc&filter=TGT_",
            &token[..TOKEN_LEN - 1],
            &format!("{}%", &token[..TOKEN_LEN - 1]),
            &escaped_from(&token[..TOKEN_LEN - 1], 3),
            "%74%67%74%5F%",
            "%",
            "",
        ] {
            assert!(!holds_token(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn redaction_keeps_the_id_and_hides_the_secret() {
        let token = token();
        let id = &token[4..16];
        let query = format!("a={token}&b=TGT_{}&c=1", &token[4..]);
        assert_eq!(
            Redacted(&query).to_string(),
            format!("a=tgt_{id}_[redacted]&b=TGT_{id}_[redacted]&c=1")
        );
        assert_eq!(
            Redacted(&token.replace('_', "%5F")).to_string(),
            "[redacted]"
        );
        assert_eq!(Redacted("limit=25&start=0").to_string(), "limit=25&start=0");
        assert_eq!(Redacted("é=1&x=tgt_").to_string(), "é=1&x=tgt_");
    }
}
