//! Config values as they may be shown (in errors, `check-config` and logs): a URL's passwords
//! hidden.

/// What a secret in a URL is shown as.
const REDACTED: &str = "[redacted]";

/// `url` as it may be shown, its secrets replaced by `[redacted]`: the password of its user info
/// (`postgres://tg:secret@host/db`) and the value of every query parameter whose name holds
/// `password` (`?password=…`, `sslpassword=…`), names read percent-decoded as sqlx reads them.
/// A password with an unescaped `/`, `?` or `#` (a URL that does not parse) is hidden up to the
/// last `@`; a query value is hidden up to the next `&`, a `#` included.
pub(crate) fn redact_url_password(url: &str) -> String {
    let mut shown = String::with_capacity(url.len() + REDACTED.len());
    let tail = match url.split_once("://") {
        Some((scheme, rest)) => {
            shown.push_str(scheme);
            shown.push_str("://");
            let (userinfo, tail) = split_userinfo(rest);
            if let Some(userinfo) = userinfo {
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        shown.push_str(user);
                        shown.push(':');
                        shown.push_str(REDACTED);
                    }
                    None => shown.push_str(userinfo),
                }
            }
            if userinfo.is_none() && tail.contains('@') {
                // No user info found, yet an `@` further on: `app:2024#Secret@db` reads as a
                // port and a fragment, but may be a password with an unescaped `#`. Shown
                // only if every `@` is inside a value hidden anyway.
                let mut rest = String::new();
                push_redacted_query(&mut rest, tail);
                if rest.contains('@') {
                    shown.push_str(REDACTED);
                    return shown;
                }
            }
            tail
        }
        None => url,
    };
    push_redacted_query(&mut shown, tail);
    shown
}

/// Pushes `tail` (what follows the user info) with every password parameter's value hidden.
fn push_redacted_query(shown: &mut String, tail: &str) {
    let Some((head, query)) = tail.split_once('?') else {
        shown.push_str(tail);
        return;
    };
    shown.push_str(head);
    shown.push('?');
    for (i, param) in query.split('&').enumerate() {
        if i > 0 {
            shown.push('&');
        }
        match param.split_once('=') {
            Some((name, _)) if percent_decoded(name).to_lowercase().contains("password") => {
                shown.push_str(name);
                shown.push('=');
                shown.push_str(REDACTED);
            }
            _ => shown.push_str(param),
        }
    }
}

/// The user info of what follows `scheme://`, and the rest from its `@` on (or all of it).
/// The user info ends at the authority's last `@`; when the authority holds none but a
/// "port" that is not a number, a password's unescaped `/`, `?` or `#` ended it early, and
/// the user info ends at the last `@` of all.
fn split_userinfo(rest: &str) -> (Option<&str>, &str) {
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let broken_port = || {
        authority.rsplit_once(':').is_some_and(|(_, port)| {
            !port.contains(']') && !port.bytes().all(|b| b.is_ascii_digit())
        })
    };
    let at = authority
        .rfind('@')
        .or_else(|| broken_port().then(|| rest.rfind('@')).flatten());
    match at {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (None, rest),
    }
}

/// `text` with `%XX` escapes and `+` decoded, as a query parameter's name is read.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|hex| bytes[i] == b'%' && hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
