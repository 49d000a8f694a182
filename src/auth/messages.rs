//! The text of every decision log line, worded exactly as Bitbucket's API-token app logs it.
//!
//! User-controlled parts (user names, descriptions, paths) are escaped; no variant carries a
//! secret. The line around the message (time, thread, request id, ...) is the formatter's job.

use std::cell::RefCell;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Local, Utc};

use super::TokenPlace;
use crate::ratelimit::{RateQuota, Wording};
use crate::telemetry::{Escaped, Message, write_escaped};
use crate::token::{Scope, TokenRecord};

/// The user named in a line when no user is known.
pub const ANONYMOUS: &str = "anonymous";

const FALLBACK_OFF: &str = " and basic auth with password or personal access token is disabled";

/// One decision's log message.
#[derive(Debug, Clone, Copy)]
pub enum AuthMessage<'a> {
    /// Row 8: a valid token, forwarded.
    Success {
        description: &'a str,
        scope: Scope,
        user: &'a str,
        created_at: DateTime<Utc>,
        path: &'a str,
    },
    /// Rows 3 and 4: no valid token.
    NoValidToken {
        user: &'a str,
        fallback: bool,
        path: &'a str,
    },
    /// Row 5: client IP not allowed.
    IpNotAllowed {
        user: &'a str,
        ip: IpAddr,
        fallback: bool,
        path: &'a str,
    },
    /// Row 2: passed on to Bitbucket's own authenticator.
    Fallback { user: &'a str, path: &'a str },
    /// Row 6: read-only token used for a write.
    ScopeDenied {
        user: &'a str,
        method: &'a str,
        path: &'a str,
    },
    /// Row 7 (logged by the RateLimiter logger).
    RateLimited { user: &'a str, quota: RateQuota },
    /// A client IP that failed verification too often (`auth.failed_attempts_per_ip`).
    TooManyFailures { ip: IpAddr, path: &'a str },
    /// A tokengate token sent to a path where tokens are not accepted.
    TokenOutsideProtectedPaths { path: &'a str },
    /// A tokengate token sent in the query string or a cookie.
    TokenOutsideAuthorization { place: TokenPlace, path: &'a str },
    /// `upstream.identity = "credential"` and the token's user has no stored credential.
    NoUpstreamCredential { user: &'a str, path: &'a str },
    /// Bitbucket refused the user's stored credential; it waits to be replaced.
    UpstreamCredentialRefused { user: &'a str, path: &'a str },
}

fn clause(fallback: bool) -> &'static str {
    if fallback { "" } else { FALLBACK_OFF }
}

/// Creation time as Bitbucket writes it: `Jan 6, 2021 2:14:46 PM`, local time.
///
/// Every success line carries one, and a busy token writes the same one thousands of times a
/// second, so each thread remembers the text of the last few creation times it wrote.
/// The cache is keyed by the UTC second alone: the text is that instant in the process's time
/// zone, which does not change while the gateway runs.
pub struct CreatedOn(pub DateTime<Utc>);

/// Creation times each thread remembers: distinct tokens seen in quick succession.
const CACHED_TIMES: usize = 8;

/// `Sep 30, 2021 12:59:59 PM`: the longest text with a four-digit year.
const CREATED_LEN: usize = 24;

/// One remembered creation time and its text.
#[derive(Clone, Copy)]
struct CachedTime {
    /// Unix second of the creation time.
    unix: i64,
    /// The text, `len` bytes of ASCII.
    text: [u8; CREATED_LEN],
    len: u8,
}

thread_local! {
    /// Creation times by `unix % CACHED_TIMES`.
    static CREATED_TEXTS: RefCell<[Option<CachedTime>; CACHED_TIMES]> =
        const { RefCell::new([None; CACHED_TIMES]) };
}

impl CreatedOn {
    fn local_text(&self) -> String {
        self.0
            .with_timezone(&Local)
            .format("%b %-d, %Y %-I:%M:%S %p")
            .to_string()
    }
}

impl fmt::Display for CreatedOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

impl CreatedOn {
    /// Writes the text, as `Display` does, to any writer.
    fn write(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let unix = self.0.timestamp();
        let slot = usize::try_from(unix.rem_euclid(CACHED_TIMES as i64)).unwrap_or(0);
        let cached = CREATED_TEXTS.with_borrow(|texts| texts[slot].filter(|t| t.unix == unix));
        if let Some(t) = cached {
            let text =
                std::str::from_utf8(&t.text[..usize::from(t.len)]).map_err(|_| fmt::Error)?;
            return f.write_str(text);
        }
        let text = self.local_text();
        if let (Ok(len), true) = (u8::try_from(text.len()), text.len() <= CREATED_LEN) {
            let mut bytes = [0; CREATED_LEN];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            CREATED_TEXTS.with_borrow_mut(|texts| {
                texts[slot] = Some(CachedTime {
                    unix,
                    text: bytes,
                    len,
                });
            });
        }
        f.write_str(&text)
    }
}

impl fmt::Display for AuthMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Success { .. } => self.write_success(f),
            Self::NoValidToken {
                user,
                fallback,
                path,
            } => write!(
                f,
                "Token verification for user {} failed: No valid API token was provided{}. REST endpoint: {}",
                Escaped(user),
                clause(fallback),
                Escaped(path),
            ),
            Self::IpNotAllowed {
                user,
                ip,
                fallback,
                path,
            } => write!(
                f,
                "Token verification for user {} failed: IP address {ip} of request is not allowed to access the REST API{}. REST endpoint: {}",
                Escaped(user),
                clause(fallback),
                Escaped(path),
            ),
            Self::Fallback { user, path } => write!(
                f,
                "User {} tried to authenticate with an invalid token or regular password. Passing the request further to the default authenticator. REST endpoint: {}",
                Escaped(user),
                Escaped(path),
            ),
            Self::ScopeDenied { user, method, path } => write!(
                f,
                "Token verification for {} user failed: The token scope is read-only and only covers GET, HEAD and OPTIONS requests. Request method type was {}. REST endpoint: {}",
                Escaped(user),
                Escaped(method),
                Escaped(path),
            ),
            Self::RateLimited { user, quota } => write!(
                f,
                "User {} has been rate limited. The API token allows executing {}.",
                Escaped(user),
                Wording(&quota),
            ),
            Self::TooManyFailures { ip, path } => write!(
                f,
                "Token verification from IP address {ip} refused: too many failed token verifications from this address. REST endpoint: {}",
                Escaped(path),
            ),
            Self::TokenOutsideProtectedPaths { path } => write!(
                f,
                "An API token was sent to a path where tokens are not accepted; the request was refused and not forwarded. REST endpoint: {}",
                Escaped(path),
            ),
            Self::TokenOutsideAuthorization { place, path } => write!(
                f,
                "An API token was sent in {}, where tokens are not accepted; the request was refused and not forwarded. REST endpoint: {}",
                match place {
                    TokenPlace::Query => "the query string",
                    TokenPlace::Cookie => "a cookie",
                },
                Escaped(path),
            ),
            Self::NoUpstreamCredential { user, path } => write!(
                f,
                "Token verification for user {} failed: no Bitbucket credential is stored for this user, so the request cannot be forwarded. REST endpoint: {}",
                Escaped(user),
                Escaped(path),
            ),
            Self::UpstreamCredentialRefused { user, path } => write!(
                f,
                "Token verification for user {} failed: Bitbucket refused the stored credential of this user, so the request cannot be forwarded until it is replaced. REST endpoint: {}",
                Escaped(user),
                Escaped(path),
            ),
        }
    }
}

impl<'a> AuthMessage<'a> {
    /// The success line of `token`, presented on `path`.
    pub fn success(token: &'a TokenRecord, path: &'a str) -> Self {
        Self::Success {
            description: &token.description,
            scope: token.scope,
            user: &token.user,
            created_at: token.created_at,
            path,
        }
    }

    /// The success line's text, nearly every request's, piece by piece: its fixed text and
    /// the creation time hold nothing to escape, and escaped text holds nothing left for a
    /// line to escape. Nothing for any other message.
    fn write_success(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let Self::Success {
            description,
            scope,
            user,
            created_at,
            path,
        } = *self
        else {
            return Ok(());
        };
        out.write_str("Found a matching token \"")?;
        write_escaped(out, description)?;
        out.write_str("\" with ")?;
        out.write_str(scope.log_name())?;
        out.write_str(" scope and authenticated user ")?;
        write_escaped(out, user)?;
        out.write_str(". Token was created on ")?;
        CreatedOn(created_at).write(out)?;
        out.write_str(". REST endpoint: ")?;
        write_escaped(out, path)
    }
}

impl Message for AuthMessage<'_> {
    /// The success line written straight into the line, as its `Display` writes it (one
    /// function for both).
    fn write_one_line(&self, out: &mut String) -> Option<fmt::Result> {
        matches!(self, Self::Success { .. }).then(|| self.write_success(out))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Local, NaiveDate, TimeZone, Utc};

    use super::CreatedOn;

    /// The UTC instant of a local wall-clock time, whatever the machine's `TZ`.
    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> chrono::DateTime<Utc> {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap();
        Local
            .from_local_datetime(&naive)
            .earliest()
            .expect("a local time that exists")
            .with_timezone(&Utc)
    }

    /// The success line's pieces are its `Display`, escaping and clipping included.
    #[test]
    fn the_success_message_written_in_pieces_is_its_display() {
        use crate::telemetry::Message as _;
        use crate::token::Scope;

        let long = format!("/rest/{}", "é".repeat(2000));
        let cases = [
            (
                "CI \"nightly\"\n",
                "jürgen\u{2028}",
                "/rest/api/1.0/projects",
            ),
            ("tokengate bench", "bench-user", long.as_str()),
            ("", "", "/"),
        ];
        for (description, user, path) in cases {
            for scope in [Scope::ReadOnly, Scope::ReadWrite] {
                let message = super::AuthMessage::Success {
                    description,
                    scope,
                    user,
                    created_at: local(2021, 1, 6, 14, 14, 46),
                    path,
                };
                let mut pieces = String::new();
                message
                    .write_one_line(&mut pieces)
                    .expect("a fast path")
                    .unwrap();
                assert_eq!(pieces, message.to_string());
            }
        }
    }

    #[test]
    fn creation_times_are_written_as_bitbucket_does() {
        let cases = [
            (local(2021, 1, 6, 14, 14, 46), "Jan 6, 2021 2:14:46 PM"),
            (local(2021, 9, 30, 12, 59, 59), "Sep 30, 2021 12:59:59 PM"),
            (local(2022, 2, 8, 0, 5, 7), "Feb 8, 2022 12:05:07 AM"),
        ];
        for (at, text) in cases {
            assert_eq!(CreatedOn(at).to_string(), text);
        }
    }

    #[test]
    fn remembered_creation_times_never_answer_for_another_instant() {
        let first = local(2021, 1, 6, 14, 14, 46);
        // Eight seconds apart, and a year apart by the same second count: the same slot.
        let second = first + chrono::Duration::seconds(8);
        let later = first + chrono::Duration::seconds(8 * 4_000_000);
        let texts = |at| CreatedOn(at).to_string();
        for _ in 0..2 {
            assert_eq!(texts(first), "Jan 6, 2021 2:14:46 PM");
            assert_eq!(texts(second), "Jan 6, 2021 2:14:54 PM");
            assert_eq!(
                texts(later),
                later
                    .with_timezone(&Local)
                    .format("%b %-d, %Y %-I:%M:%S %p")
                    .to_string()
            );
        }
        // Sub-second parts are not shown, so they share the text.
        let fraction = first + chrono::Duration::milliseconds(999);
        assert_eq!(texts(fraction), "Jan 6, 2021 2:14:46 PM");
    }
}
