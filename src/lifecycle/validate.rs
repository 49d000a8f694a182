//! Checks of every value a token or credential can be given, shared by the admin API and the
//! CLI: user names, descriptions, scopes, IP allow-lists, expiry times, rate limits and the
//! `auth.max_lifetime_days` policy. Pure functions: no I/O, no clock reads.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;

use crate::ratelimit::{QuotaError, RateQuota};
use crate::token::Scope;

/// Longest user name and description, in characters.
pub const MAX_TEXT_CHARS: usize = 255;
/// Most entries in one IP allow-list.
pub const MAX_ALLOWED_IPS: usize = 256;
/// Longest Bitbucket credential accepted, in bytes.
pub const MAX_CREDENTIAL_BYTES: usize = 4096;

/// The user-name rule of [`validate_user`] as a regular expression (ECMA-262, as JSON Schema
/// reads it; Rust's `regex` and Python's `re` read it the same way): no control character
/// and no white space (Unicode's `White_Space`, as `char::is_whitespace`). The length (1 to
/// [`MAX_TEXT_CHARS`] characters) is stated apart.
pub const USER_PATTERN: &str =
    r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$";

/// The description rule of [`validate_description`]: no control character, no line or
/// paragraph separator, and at least one character that is not white space.
pub const DESCRIPTION_PATTERN: &str = concat!(
    r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*",
    r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
);

/// The credential rule of [`validate_credential`]: visible ASCII, spaces only inside.
pub const CREDENTIAL_PATTERN: &str = r"^[!-~](?:[ -~]*[!-~])?$";

/// A value that was refused, naming the field (`user`, `allowed_ips[2]`,
/// `rate_limit.requests`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// Machine-readable kind: `invalid_value`, or `lifetime_exceeded` for the expiry policy.
    pub code: &'static str,
    /// The field as the admin API names it.
    pub field: String,
    /// What is wrong, without the field name.
    pub message: String,
}

impl Invalid {
    /// An `invalid_value` refusal of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: "invalid_value",
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Text shown in messages: at most 64 characters, control characters escaped.
pub(crate) fn shown(s: &str) -> impl fmt::Display + '_ {
    struct Shown<'a>(&'a str);
    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let mut chars = self.0.chars();
            let head: String = chars.by_ref().take(64).collect();
            write!(f, "\"{}\"", crate::telemetry::Escaped(&head))?;
            if chars.next().is_some() {
                f.write_str("…")?;
            }
            Ok(())
        }
    }
    Shown(s)
}

/// A Bitbucket user name: 1 to 255 characters, no whitespace, no control characters.
pub fn validate_user(user: &str) -> Result<(), Invalid> {
    let bad = |m: &str| Err(Invalid::new("user", m));
    if user.is_empty() {
        return bad("must not be empty");
    }
    if user.chars().count() > MAX_TEXT_CHARS {
        return bad("must be at most 255 characters");
    }
    if user.chars().any(char::is_control) {
        return bad("must not contain control characters or line breaks");
    }
    if user.chars().any(char::is_whitespace) {
        return bad("must not contain whitespace");
    }
    Ok(())
}

/// A description: 1 to 255 characters, not only whitespace, no control characters.
pub fn validate_description(description: &str) -> Result<(), Invalid> {
    let bad = |m: &str| Err(Invalid::new("description", m));
    if description.trim().is_empty() {
        return bad("must not be empty");
    }
    if description.chars().count() > MAX_TEXT_CHARS {
        return bad("must be at most 255 characters");
    }
    if description
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return bad("must not contain control characters or line breaks");
    }
    Ok(())
}

/// A user's Bitbucket credential, sent upstream as `Authorization: Bearer …`: 1 to
/// [`MAX_CREDENTIAL_BYTES`] characters of visible ASCII, spaces only inside, as an HTTP header
/// value can carry it.
pub fn validate_credential(credential: &str) -> Result<(), Invalid> {
    let bad = |m: String| Err(Invalid::new("credential", m));
    if credential.is_empty() {
        return bad("must not be empty".into());
    }
    if credential.len() > MAX_CREDENTIAL_BYTES {
        return bad(format!("must be at most {MAX_CREDENTIAL_BYTES} characters"));
    }
    if credential.trim() != credential {
        return bad("must not begin or end with white space".into());
    }
    if !credential.bytes().all(|b| matches!(b, b' '..=b'~')) {
        return bad(
            "must be visible ASCII characters (and inner spaces), as an HTTP header carries it"
                .into(),
        );
    }
    Ok(())
}

/// `read-only` or `read-write`.
pub fn parse_scope(s: &str) -> Result<Scope, Invalid> {
    s.parse().map_err(|()| {
        Invalid::new(
            "scope",
            format!("must be \"read-only\" or \"read-write\", not {}", shown(s)),
        )
    })
}

/// One allow-list entry: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address (taken as
/// `/32` or `/128`). A CIDR with host bits set (`10.1.2.3/8`) is refused: it is a typo far more
/// often than an intent, and clearing the bits would quietly allow a whole other network.
pub fn parse_ip(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        let network = net.trunc();
        if network != net {
            return Err(format!(
                "{} has host bits set: write the network as {network}, or the address alone \
                 as {}",
                shown(s),
                net.addr()
            ));
        }
        return Ok(net);
    }
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    Err(format!(
        "{} is neither an IP address nor a CIDR such as 10.0.0.0/8 or 2001:db8::/32",
        shown(s)
    ))
}

/// An allow-list of `len` entries is not too long.
pub fn check_allowed_ips_len(len: usize) -> Result<(), Invalid> {
    if len > MAX_ALLOWED_IPS {
        return Err(Invalid::new(
            "allowed_ips",
            format!("must have at most {MAX_ALLOWED_IPS} entries"),
        ));
    }
    Ok(())
}

/// A whole allow-list (empty means any address).
pub fn parse_allowed_ips<S: AsRef<str>>(entries: &[S]) -> Result<Vec<IpNet>, Invalid> {
    check_allowed_ips_len(entries.len())?;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            parse_ip(e.as_ref()).map_err(|m| Invalid::new(format!("allowed_ips[{i}]"), m))
        })
        .collect()
}

/// An RFC 3339 time such as `2030-01-31T12:00:00Z`.
pub fn parse_expires_at(s: &str) -> Result<DateTime<Utc>, Invalid> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.to_utc())
        .map_err(|e| {
            Invalid::new(
                "expires_at",
                format!(
                    "{} is not an RFC 3339 time such as 2030-01-31T12:00:00Z ({e})",
                    shown(s)
                ),
            )
        })
}

/// A token's own quota: `requests` (at least 1) per `period_seconds` (1 second to 366 days).
pub fn rate_limit(requests: u64, period_seconds: u64) -> Result<RateQuota, Invalid> {
    let requests = u32::try_from(requests).map_err(|_| {
        Invalid::new(
            "rate_limit.requests",
            "must be a whole number from 1 to 4294967295",
        )
    })?;
    RateQuota::new(requests, period_seconds).map_err(|e| match e {
        QuotaError::Period => Invalid::new(
            "rate_limit.period_seconds",
            "must be a whole number of seconds from 1 to 31622400 (366 days)",
        ),
        QuotaError::Requests | QuotaError::Shape => Invalid::new(
            "rate_limit.requests",
            "must be a whole number from 1 to 4294967295",
        ),
    })
}

/// The expiry policy: an expiry must lie after `now`, and when `max_lifetime_days` is set
/// a token must expire, at most that many days after `created_at`.
pub fn check_expiry(
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    max_lifetime_days: Option<u32>,
) -> Result<(), Invalid> {
    if let Some(at) = expires_at
        && at <= now
    {
        return Err(Invalid::new(
            "expires_at",
            format!(
                "must be in the future: {} is not after now ({})",
                rfc3339(at),
                rfc3339(now)
            ),
        ));
    }
    let Some(days) = max_lifetime_days else {
        return Ok(());
    };
    let latest = created_at + Duration::days(i64::from(days));
    let lifetime = |message: String| Invalid {
        code: "lifetime_exceeded",
        field: "expires_at".into(),
        message,
    };
    match expires_at {
        None => Err(lifetime(format!(
            "required: tokens may live at most {days} days (auth.max_lifetime_days), so set an \
             expiry no later than {}",
            rfc3339(latest)
        ))),
        Some(at) if at > latest => Err(lifetime(format!(
            "must be at most {days} days after the token's creation (auth.max_lifetime_days): \
             no later than {}",
            rfc3339(latest)
        ))),
        Some(_) => Ok(()),
    }
}

/// A time as the API writes it, to the second when it has no fraction.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn user_names() {
        assert!(validate_user("automation-user").is_ok());
        assert!(validate_user("ünïcode.name@example.com").is_ok());
        for bad in [
            "",
            "a b",
            "a\tb",
            "a\nb",
            "a\u{7f}",
            " lead",
            &"x".repeat(256),
        ] {
            let e = validate_user(bad).unwrap_err();
            assert_eq!(e.field, "user", "{bad:?}");
        }
        assert!(validate_user(&"é".repeat(255)).is_ok());
    }

    #[test]
    fn descriptions() {
        assert!(validate_description("API Token from 2021-01-06").is_ok());
        assert!(validate_description(&"é".repeat(255)).is_ok());
        for bad in [
            "",
            "   ",
            "a\nb",
            "a\rb",
            "tab\there",
            "a\u{2028}b",
            &"x".repeat(256),
        ] {
            assert_eq!(
                validate_description(bad).unwrap_err().field,
                "description",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ips_accept_cidrs_and_bare_addresses() {
        let ips = parse_allowed_ips(&["10.0.0.0/8", "192.168.1.7", "2001:db8::1", "::/0"]).unwrap();
        let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::1/128", "::/0"]
        );
        let e = parse_allowed_ips(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert_eq!(e.field, "allowed_ips[1]");
        assert!(e.message.contains("10.0.0.0/33"));
        assert!(parse_allowed_ips(&["nonsense"]).is_err());
        for typo in ["10.1.2.3/8", "192.168.1.7/24", "2001:db8::1/32"] {
            let e = parse_ip(typo).unwrap_err();
            assert!(e.contains("host bits") && e.contains(typo), "{e}");
        }
        assert!(parse_ip("10.1.2.3/8").unwrap_err().contains("10.0.0.0/8"));
        assert!(parse_allowed_ips(&vec!["10.0.0.1"; 257]).is_err());
    }

    #[test]
    fn scopes_and_times() {
        assert_eq!(parse_scope("read-write"), Ok(Scope::ReadWrite));
        assert_eq!(parse_scope("admin").unwrap_err().field, "scope");
        assert_eq!(
            parse_expires_at("2030-01-31T12:00:00+01:00").unwrap(),
            at("2030-01-31T11:00:00Z")
        );
        for bad in ["2030-01-31", "tomorrow", "2030-01-31 12:00:00", ""] {
            assert_eq!(
                parse_expires_at(bad).unwrap_err().field,
                "expires_at",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rate_limits() {
        assert_eq!(rate_limit(5, 300).unwrap().to_string(), "5/5m");
        assert_eq!(rate_limit(0, 300).unwrap_err().field, "rate_limit.requests");
        assert_eq!(
            rate_limit(1 << 32, 300).unwrap_err().field,
            "rate_limit.requests"
        );
        assert_eq!(
            rate_limit(5, 0).unwrap_err().field,
            "rate_limit.period_seconds"
        );
        assert_eq!(
            rate_limit(5, 400 * 86_400).unwrap_err().field,
            "rate_limit.period_seconds"
        );
    }

    #[test]
    fn expiry_policy() {
        let now = at("2024-01-01T00:00:00Z");
        assert!(check_expiry(None, now, now, None).is_ok());
        assert!(check_expiry(Some(at("2024-01-02T00:00:00Z")), now, now, None).is_ok());
        let past = check_expiry(Some(now), now, now, None).unwrap_err();
        assert_eq!(
            (past.code, past.field.as_str()),
            ("invalid_value", "expires_at")
        );
        let unbounded = check_expiry(None, now, now, Some(90)).unwrap_err();
        assert_eq!(unbounded.code, "lifetime_exceeded");
        assert!(
            unbounded.message.contains("90 days"),
            "{}",
            unbounded.message
        );
        assert!(check_expiry(Some(at("2024-03-31T00:00:00Z")), now, now, Some(90)).is_ok());
        let long = check_expiry(Some(at("2024-03-31T00:00:01Z")), now, now, Some(90)).unwrap_err();
        assert!(
            long.message.contains("2024-03-31T00:00:00Z"),
            "{}",
            long.message
        );
        // Measured from creation, so repeated patches cannot extend a token forever.
        let created = at("2023-12-01T00:00:00Z");
        assert!(check_expiry(Some(at("2024-03-15T00:00:00Z")), created, now, Some(90)).is_err());
    }
}
