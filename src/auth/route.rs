//! Request paths and query parameters read the way Tomcat, and so Bitbucket, reads them. The
//! gateway decides on these, never on the raw request target: `//rest/`, `/rest;a=b/`,
//! `/%72est/` and `/x/../rest/` are all `/rest/` to Bitbucket, so they must be to us. Pure
//! functions, no I/O; the request is forwarded with its raw target unchanged.
//!
//! Tomcat's behaviour relied on, at its defaults (Tomcat 9, 10.1, 11: apache/tomcat
//! `CoyoteAdapter.postParseRequest`, `parsePathParameters`, `normalize`, `convertURI`,
//! `util/buf/UDecoder`; <https://tomcat.apache.org/tomcat-11.0-doc/config/http.html>). Other
//! settings of the attributes named below only make Tomcat accept what we refuse or refuse what
//! we accept (or, for `URIEncoding`, read non-ASCII bytes otherwise); none moves an ASCII
//! prefix or suffix of a path we accept.
//!
//! 1. path parameters, from a `;` up to the next `/`, are cut from the raw path, before decoding;
//! 2. `%XX` is decoded (`+` is not a space in a path); an invalid escape is a 400, and so is
//!    `%2F` (`encodedSolidusHandling="reject"`), while `%5C` decodes to `\`
//!    (`encodedReverseSolidusHandling="decode"`);
//! 3. `normalize`: a `\` (`allowBackslash="false"`), a NUL or a first byte other than `/` is a
//!    400; `//` merges; a final `/.` or `/..` gains a `/`; `/./` goes; `/../` drops the segment
//!    before it and is a 400 at the root;
//! 4. the bytes become text as UTF-8 (`URIEncoding`), malformed bytes as U+FFFD: we refuse those
//!    instead (see [`Unroutable::NotUtf8`]). `rejectSuspiciousURIs` is off, so nothing else is
//!    refused.

use std::borrow::Cow;

/// Why a request path cannot be routed: Tomcat answers such a request 400 before any servlet
/// or filter of Bitbucket's sees it, and the gateway should answer it 400 too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unroutable {
    /// The path does not start with `/` (an empty path, `*`, a relative path).
    #[error("the path does not start with '/'")]
    NotAbsolute,
    /// A `..` segment climbs above the root.
    #[error("a '..' segment climbs above the root")]
    AboveRoot,
    /// `%2F`, an encoded `/`.
    #[error("the path contains an encoded '/' (%2F)")]
    EncodedSlash,
    /// A `\`, raw or encoded as `%5C`.
    #[error("the path contains a backslash")]
    Backslash,
    /// A `%` not followed by two hex digits.
    #[error("the path contains a '%' not followed by two hex digits")]
    BadEscape,
    /// A NUL byte, raw or encoded as `%00`.
    #[error("the path contains a NUL byte")]
    Nul,
    /// The decoded path is not UTF-8. Tomcat would route it with U+FFFD in place of the bad
    /// bytes; we refuse it: no name in Bitbucket can be reached that way, and the routing path
    /// stays an exact image of what the client sent.
    #[error("the decoded path is not UTF-8")]
    NotUtf8,
}

/// The path as Tomcat routes it to Bitbucket's servlets: path parameters (`;…`) cut from every
/// segment, `%XX` decoded, empty and `.` segments dropped, `..` resolved, and a trailing `/`
/// kept where the last segment was empty, `.` or `..`.
///
/// The result is decoded text, except that a decoded `%` is written `%25` and a decoded `;`
/// `%3B`. With those two kept escaped the routing path is a canonical request path of its own:
/// routing it again returns it unchanged, and a `;` in it can never be taken for a path
/// parameter. Compare it only with prefixes and suffixes written the same way (routing a
/// configured prefix gives that form), and with suffixes that start with `/`.
///
/// A path that is already canonical (starts with `/`; no `;`, `\`, NUL, `//`, `.` or `..`
/// segment, and no `%` other than `%25` and `%3B`) is returned borrowed after a single scan.
///
/// # Errors
///
/// [`Unroutable`] for a path Tomcat answers 400.
pub fn routing_path(raw: &str) -> Result<Cow<'_, str>, Unroutable> {
    if is_canonical(raw.as_bytes()) {
        Ok(Cow::Borrowed(raw))
    } else {
        normalise(raw).map(Cow::Owned)
    }
}

/// Every value of the query parameter `name`, decoded as Tomcat's `getParameter` and git's
/// `http-backend` decode them: pairs split on `&` only (not `;`), name and value both decoded,
/// `%XX` as a byte and `+` as a space. An invalid escape is kept as written, as git keeps it
/// (Tomcat drops that parameter; either way it cannot spell another value). Bytes that are not
/// UTF-8 become U+FFFD, as in Tomcat. Borrowed where nothing needed decoding.
///
/// Every value, not one: Tomcat answers the first, git `http-backend` the last, so a check such
/// as "is this a push" must ask whether any value matches.
pub fn query_values<'q>(query: &'q str, name: &str) -> impl Iterator<Item = Cow<'q, str>> {
    query.split('&').filter_map(move |pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (!key.is_empty() && form_decode(key) == name).then(|| form_decode(value))
    })
}

/// Whether `routing_path` would return `path` unchanged, in one pass: it starts with `/`, has
/// no empty, `.` or `..` segment but a final empty one (a trailing slash), no `;`, `\` or NUL,
/// and no `%` but in `%25` and `%3B`.
fn is_canonical(path: &[u8]) -> bool {
    let Some((b'/', rest)) = path.split_first() else {
        return false;
    };
    // Bytes in the current segment, and how many of them are dots.
    let (mut len, mut dots) = (0usize, 0usize);
    let mut bytes = rest.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'/' => {
                if len == 0 || is_dot_segment(len, dots) {
                    return false;
                }
                (len, dots) = (0, 0);
                continue;
            }
            b'.' => dots += 1,
            b'%' => {
                if !matches!(
                    (bytes.next(), bytes.next()),
                    (Some(b'2'), Some(b'5')) | (Some(b'3'), Some(b'B'))
                ) {
                    return false;
                }
                len += 2;
            }
            b';' | b'\\' | 0 => return false,
            _ => {}
        }
        len += 1;
    }
    !is_dot_segment(len, dots)
}

/// A segment of `len` bytes of which `dots` are dots is `.` or `..`.
fn is_dot_segment(len: usize, dots: usize) -> bool {
    len > 0 && len <= 2 && dots == len
}

/// The slow path of [`routing_path`], for any path: Tomcat's steps, one segment at a time.
fn normalise(raw: &str) -> Result<String, Unroutable> {
    let rest = raw.strip_prefix('/').ok_or(Unroutable::NotAbsolute)?;
    let mut out = Vec::with_capacity(raw.len() + 1);
    // Where each segment kept so far starts in `out`, for `..` to drop it.
    let mut starts = Vec::new();
    let mut segment = Vec::new();
    let mut trailing_slash = false;
    for raw_segment in rest.split('/') {
        let without_parameters = raw_segment.split_once(';').map_or(raw_segment, |(s, _)| s);
        percent_decode(without_parameters, &mut segment)?;
        trailing_slash = true;
        match segment.as_slice() {
            b"" | b"." => {}
            b".." => out.truncate(starts.pop().ok_or(Unroutable::AboveRoot)?),
            kept => {
                starts.push(out.len());
                out.push(b'/');
                push_escaped(&mut out, kept);
                trailing_slash = false;
            }
        }
    }
    if trailing_slash {
        out.push(b'/');
    }
    // Only now: bytes of a segment that `..` dropped never reach Tomcat's UTF-8 decoding.
    String::from_utf8(out).map_err(|_| Unroutable::NotUtf8)
}

/// Decodes one path segment (already cut at `;`) into `out`, refusing what Tomcat refuses.
fn percent_decode(segment: &str, out: &mut Vec<u8>) -> Result<(), Unroutable> {
    out.clear();
    let mut bytes = segment.bytes();
    while let Some(b) = bytes.next() {
        let b = if b == b'%' {
            let high = bytes.next().and_then(hex_value);
            let low = bytes.next().and_then(hex_value);
            let (Some(high), Some(low)) = (high, low) else {
                return Err(Unroutable::BadEscape);
            };
            match high << 4 | low {
                b'/' => return Err(Unroutable::EncodedSlash),
                decoded => decoded,
            }
        } else {
            b
        };
        match b {
            b'\\' => return Err(Unroutable::Backslash),
            0 => return Err(Unroutable::Nul),
            _ => out.push(b),
        }
    }
    Ok(())
}

/// Appends a decoded segment, writing `%` as `%25` and `;` as `%3B`.
fn push_escaped(out: &mut Vec<u8>, segment: &[u8]) {
    for &b in segment {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b';' => out.extend_from_slice(b"%3B"),
            _ => out.push(b),
        }
    }
}

/// Decodes a query name or value: `+` as a space, `%XX` as a byte, an invalid `%` kept.
fn form_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.get(i + 1).copied().and_then(hex_value);
                let low = bytes.get(i + 2).copied().and_then(hex_value);
                match (high, low) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(match String::from_utf8(out) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The value of one hex digit, either case.
pub(super) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
