//! The decision table as one pure function: plain inputs in, a
//! [`Decision`] out. No I/O, no clock reads, no logging; the proxy gathers the inputs and acts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, Method};
use ipnet::IpNet;

use super::{Scheme, TokenPlace, query_values};
use crate::ratelimit::{RateDecision, RateQuota, RateStatus};
use crate::token::{Scope, TokenRecord, TokenState};

/// The request, as far as the decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Right-most address not in `trusted_proxies`.
    pub client_ip: IpAddr,
    /// Under one of `auth.protected_paths`.
    pub protected: bool,
    /// Where the request carries a tokengate token outside `Authorization`
    /// ([`super::stray_token`]).
    pub stray_token: Option<TokenPlace>,
    /// The request's headers, read for the method-override headers (see [`write_override`])
    /// when a read-only token's request is otherwise a read.
    pub headers: &'a HeaderMap,
    pub now: DateTime<Utc>,
}

/// Settings the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub basic_auth_fallback: bool,
    /// Global allow-list; empty means any address.
    pub allowed_ips: &'a [IpNet],
    /// Quota for tokens that set none.
    pub default_quota: RateQuota,
}

/// Why a tokengate-format credential did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unverified {
    /// Wrong shape or checksum: refused before any store access.
    Malformed,
    /// No token has this id.
    UnknownId,
    /// The id is known; the secret is wrong.
    WrongSecret,
}

/// What verifying the presented tokengate credential found.
#[derive(Debug, Clone)]
pub enum Verification {
    /// The secret matches this record (which may still be revoked or expired).
    Verified(Arc<TokenRecord>),
    /// Not a valid token; `owner` is the owner where the id is known.
    Invalid {
        reason: Unverified,
        owner: Option<String>,
    },
    /// The secret matches, but the owner's tokens may no longer be used
    /// (`self_service.use_tokens`): refused as a revoked token is.
    Withdrawn(Arc<TokenRecord>),
    /// The store could not be asked.
    StoreUnavailable,
    /// This client IP failed verification too often; try again after the given time.
    Throttled(Duration),
}

/// What the request presented, after verification.
#[derive(Debug, Clone)]
pub enum Presented {
    /// Row 1: no `Authorization` header.
    Nothing,
    /// Not in tokengate's format; the Basic user where known.
    Foreign {
        user: Option<String>,
        /// The scheme used, where it was Bearer or Basic (for the 401 challenge).
        scheme: Option<Scheme>,
    },
    /// In tokengate's format.
    Token {
        scheme: Scheme,
        basic_user: Option<String>,
        verification: Verification,
    },
}

/// The allow-list a client IP was refused by (row 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowList {
    /// The token's own `allowed_ips`.
    Token,
    /// The global `auth.allowed_ips`.
    Global,
}

/// Why a request was refused with "no valid token" (rows 3 and 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoValidToken {
    /// Row 3: a foreign credential with fallback off.
    Foreign,
    Invalid(Unverified),
    Expired,
    Revoked,
    /// Basic auth whose user name is not the token's owner.
    NotOwner,
    /// The owner's tokens may not be used (`self_service.use_tokens`).
    NotPermitted,
}

/// The outcome, one variant per row of the table (plus the cases around it).
#[derive(Debug, Clone)]
pub enum Decision {
    /// Row 1, and any unprotected request without a tokengate token: forward untouched.
    PassThrough,
    /// Row 2: forward untouched to Bitbucket's own authenticator.
    Fallback { user: Option<String> },
    /// Rows 3 and 4: 401.
    NoValidToken {
        user: Option<String>,
        reason: NoValidToken,
        scheme: Option<Scheme>,
        /// The token, when its secret matched (expired, revoked, not the Basic user's, or one
        /// whose owner may not use tokens).
        token: Option<Arc<TokenRecord>>,
    },
    /// Row 5: 401.
    IpNotAllowed {
        token: Arc<TokenRecord>,
        scheme: Scheme,
        /// The allow-list that refused the client IP.
        refused_by: AllowList,
    },
    /// Row 6: 403. `overridden` is the method a method-override header named, when that made
    /// the request a write.
    ScopeDenied {
        token: Arc<TokenRecord>,
        overridden: Option<String>,
    },
    /// Row 7: 429.
    RateLimited {
        token: Arc<TokenRecord>,
        quota: RateQuota,
        status: RateStatus,
        retry_after: Duration,
    },
    /// Row 8: forward as the token's user.
    Allow {
        token: Arc<TokenRecord>,
        status: RateStatus,
    },
    /// A tokengate token on a path where tokens are not accepted: 401, never forwarded.
    TokenOutsideProtectedPaths,
    /// A tokengate token in the query string or a cookie, on any path, whatever else the
    /// request presents: 401, never forwarded.
    TokenOutsideAuthorization { place: TokenPlace },
    /// The store is down and the token is not cached: 503.
    StoreUnavailable,
    /// The client IP failed verification too often: 429.
    TooManyFailures { retry_after: Duration },
}

/// A token that passed rows 1 to 6: row 7 needs its quota checked.
#[derive(Debug, Clone)]
pub struct RateCheck {
    pub token: Arc<TokenRecord>,
    /// The token's quota, or the default.
    pub quota: RateQuota,
}

impl RateCheck {
    /// Rows 7 and 8, once the request was counted against [`RateCheck::quota`].
    pub fn decide(self, outcome: RateDecision) -> Decision {
        let Self { token, quota } = self;
        match outcome {
            RateDecision::Allowed(status) => Decision::Allow { token, status },
            RateDecision::Limited {
                status,
                retry_after,
            } => Decision::RateLimited {
                token,
                quota,
                status,
                retry_after,
            },
        }
    }
}

/// How far [`decide_until_rate`] got.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Decided by one of rows 1 to 6 (or the cases around them).
    Decided(Decision),
    /// Rows 1 to 6 passed; the caller counts the request (which may take a round trip to a
    /// shared backend) and finishes with [`RateCheck::decide`].
    NeedsRateCheck(RateCheck),
}

/// Decides a request. `rate_check` counts the request against the token's quota and is called
/// only when every other check passed (row 7 comes after rows 1 to 6).
pub fn decide(
    request: &RequestFacts<'_>,
    presented: Presented,
    policy: &Policy<'_>,
    rate_check: impl FnOnce(&TokenRecord, RateQuota) -> RateDecision,
) -> Decision {
    match decide_until_rate(request, presented, policy) {
        Progress::Decided(decision) => decision,
        Progress::NeedsRateCheck(check) => {
            let outcome = rate_check(&check.token, check.quota);
            check.decide(outcome)
        }
    }
}

/// [`decide`] up to row 7, for a caller whose rate-limit check is asynchronous.
pub fn decide_until_rate(
    request: &RequestFacts<'_>,
    presented: Presented,
    policy: &Policy<'_>,
) -> Progress {
    match rows_1_to_6(request, presented, policy) {
        Ok(check) => Progress::NeedsRateCheck(check),
        Err(decision) => Progress::Decided(decision),
    }
}

/// Rows 1 to 6: the decision, or what row 7 needs.
fn rows_1_to_6(
    request: &RequestFacts<'_>,
    presented: Presented,
    policy: &Policy<'_>,
) -> Result<RateCheck, Decision> {
    if let Some(place) = request.stray_token {
        return Err(Decision::TokenOutsideAuthorization { place });
    }
    let (scheme, basic_user, verification) = match presented {
        Presented::Token {
            scheme,
            basic_user,
            verification,
        } => (scheme, basic_user, verification),
        Presented::Nothing => return Err(Decision::PassThrough),
        Presented::Foreign { .. } if !request.protected => return Err(Decision::PassThrough),
        Presented::Foreign { user, .. } if policy.basic_auth_fallback => {
            return Err(Decision::Fallback { user });
        }
        Presented::Foreign { user, scheme } => {
            return Err(Decision::NoValidToken {
                user,
                reason: NoValidToken::Foreign,
                scheme,
                token: None,
            });
        }
    };
    if !request.protected {
        return Err(Decision::TokenOutsideProtectedPaths);
    }
    let invalid = |reason, owner: Option<String>, token| Decision::NoValidToken {
        // With Basic the user is the name presented; with Bearer, the owner where known.
        user: basic_user.clone().or(owner),
        reason,
        scheme: Some(scheme),
        token,
    };
    let token = match verification {
        Verification::Verified(token) => token,
        Verification::Invalid { reason, owner } => {
            return Err(invalid(NoValidToken::Invalid(reason), owner, None));
        }
        Verification::StoreUnavailable => return Err(Decision::StoreUnavailable),
        Verification::Throttled(retry_after) => {
            return Err(Decision::TooManyFailures { retry_after });
        }
        Verification::Withdrawn(token) => {
            let owner = Some(token.user.clone());
            return Err(invalid(NoValidToken::NotPermitted, owner, Some(token)));
        }
    };
    let refused = match token.state(request.now) {
        TokenState::Active => None,
        TokenState::Expired => Some(NoValidToken::Expired),
        TokenState::Revoked => Some(NoValidToken::Revoked),
    }
    .or_else(|| {
        basic_user
            .as_deref()
            .is_some_and(|user| user != token.user)
            .then_some(NoValidToken::NotOwner)
    });
    if let Some(reason) = refused {
        return Err(invalid(reason, Some(token.user.clone()), Some(token)));
    }
    let refused_by = if !ip_allowed(&token.allowed_ips, request.client_ip) {
        Some(AllowList::Token)
    } else if !ip_allowed(policy.allowed_ips, request.client_ip) {
        Some(AllowList::Global)
    } else {
        None
    };
    if let Some(refused_by) = refused_by {
        return Err(Decision::IpNotAllowed {
            token,
            scheme,
            refused_by,
        });
    }
    if token.scope == Scope::ReadOnly {
        if is_write(request.method, request.path, request.query) {
            return Err(Decision::ScopeDenied {
                token,
                overridden: None,
            });
        }
        if let Some(method) = write_override(request.headers) {
            return Err(Decision::ScopeDenied {
                token,
                overridden: Some(method.into_owned()),
            });
        }
    }
    let quota = token.rate_limit.unwrap_or(policy.default_quota);
    Ok(RateCheck { token, quota })
}

/// True when `ip` is in one of `nets`, or `nets` is empty. IPv4-mapped IPv6 addresses
/// (`::ffff:10.0.0.1`) match IPv4 networks.
pub fn ip_allowed(nets: &[IpNet], ip: IpAddr) -> bool {
    if nets.is_empty() {
        return true;
    }
    let ip = canonical(ip);
    nets.iter().any(|net| net.contains(&ip))
}

/// Parses a CIDR, or a bare address meaning a single host. Host bits are cleared, and an
/// IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) becomes the IPv4 network it means, since
/// client addresses are folded the same way.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    let net = s
        .parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))?
        .trunc();
    Some(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(
                ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).expect("prefix of at most 32"),
            ),
            None => net,
        },
        _ => net,
    })
}

/// Folds IPv4-mapped IPv6 addresses to IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Headers through which frameworks behind Bitbucket let a request run as another method
/// (Jersey's `HttpMethodOverrideFilter` reads the first; the others are common spellings).
const METHOD_OVERRIDE_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// The first method a method-override header names that is not GET, HEAD or OPTIONS (in any
/// letter case), trimmed: a write for a read-only token, whatever the request's own method.
/// Anything else a header holds (a list, bytes that are not text) counts as such a method.
pub fn write_override(headers: &HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    let read = |method: &[u8]| {
        [b"GET".as_slice(), b"HEAD", b"OPTIONS"]
            .iter()
            .any(|r| method.eq_ignore_ascii_case(r))
    };
    // Nearly no request has one: a pass over the names present costs less than looking each
    // override name up (hashing it).
    if !headers
        .keys()
        .any(|name| METHOD_OVERRIDE_HEADERS.contains(name))
    {
        return None;
    }
    METHOD_OVERRIDE_HEADERS
        .iter()
        .flat_map(|name| headers.get_all(name))
        .map(|value| value.as_bytes().trim_ascii())
        .find(|method| !read(method))
        .map(String::from_utf8_lossy)
}

/// A write, for a read-only token: any method but GET, HEAD and OPTIONS, and a git push over
/// HTTP (`…/git-receive-pack` and its `info/refs?service=git-receive-pack` discovery). A fetch
/// or clone (`POST /scm/…/git-upload-pack`) is a read; only Bitbucket's git paths (under
/// `/scm/`) get that exemption, so a REST call that happens to end the same way does not.
///
/// `path` is the routing path (see [`super::routing_path`]): decoded, without path parameters
/// or dot segments. Query values are decoded too, so `service=git%2Dreceive-pack` is a push.
pub fn is_write(method: &Method, path: &str, query: Option<&str>) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.ends_with("/git-receive-pack") {
        return true;
    }
    if path.ends_with("/info/refs")
        && query.is_some_and(|q| query_values(q, "service").any(|v| v == "git-receive-pack"))
    {
        return true;
    }
    if *method == Method::POST && path.ends_with("/git-upload-pack") && path.contains("/scm/") {
        return false;
    }
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests;
