//! The text of every decision log line, worded exactly as Bitbucket's API-token app logs it.
//!
//! User-controlled parts (user names, descriptions, paths) are escaped; no variant carries a
//! secret. The line around the message (time, thread, request id, ...) is the formatter's job.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Local, Utc};

use crate::ratelimit::{RateQuota, Wording};
use crate::telemetry::Escaped;
use crate::token::Scope;

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
    /// `upstream.identity = "credential"` and the token's user has no stored credential.
    NoUpstreamCredential { user: &'a str, path: &'a str },
}

fn clause(fallback: bool) -> &'static str {
    if fallback { "" } else { FALLBACK_OFF }
}

/// Creation time as Bitbucket writes it: `Jan 6, 2021 2:14:46 PM`, local time.
pub struct CreatedOn(pub DateTime<Utc>);

impl fmt::Display for CreatedOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            self.0
                .with_timezone(&Local)
                .format("%b %-d, %Y %-I:%M:%S %p")
        )
    }
}

impl fmt::Display for AuthMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Success {
                description,
                scope,
                user,
                created_at,
                path,
            } => write!(
                f,
                "Found a matching token \"{}\" with {} scope and authenticated user {}. Token was created on {}. REST endpoint: {}",
                Escaped(description),
                scope.log_name(),
                Escaped(user),
                CreatedOn(created_at),
                Escaped(path),
            ),
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
            Self::NoUpstreamCredential { user, path } => write!(
                f,
                "Token verification for user {} failed: no Bitbucket credential is stored for this user, so the request cannot be forwarded. REST endpoint: {}",
                Escaped(user),
                Escaped(path),
            ),
        }
    }
}
