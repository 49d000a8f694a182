//! The `[auth]` section, validated: which paths need a token, from where tokens are taken,
//! and how verification is bounded.

use super::raw::RawAuth;
use super::validate::{bad, cidrs, count, positive_duration, quota};
use super::{AuthConfig, ConfigError};

/// `[auth]` as written, checked and converted; an error names the key and the value.
pub(super) fn validate(a: RawAuth) -> Result<AuthConfig, ConfigError> {
    for path in &a.protected_paths {
        if !path.starts_with('/') {
            return Err(bad(
                "auth.protected_paths",
                path,
                "every path must start with /",
            ));
        }
        // Requests are matched on their routing path, so a prefix written otherwise (`//`, a
        // dot segment, `;`, `%XX`) could never match and would protect nothing.
        match crate::auth::routing_path(path) {
            Ok(routed) if routed == path.as_str() => {}
            Ok(routed) => {
                return Err(bad(
                    "auth.protected_paths",
                    path,
                    format!("every path must be written as Bitbucket routes it, here {routed}"),
                ));
            }
            Err(e) => {
                return Err(bad(
                    "auth.protected_paths",
                    path,
                    format!("every path must be one Bitbucket can route ({e})"),
                ));
            }
        }
    }
    Ok(AuthConfig {
        protected_paths: a.protected_paths,
        basic_auth_fallback: a.basic_auth_fallback,
        allowed_ips: cidrs("auth.allowed_ips", &a.allowed_ips)?,
        failed_attempts_per_ip: quota("auth.failed_attempts_per_ip", &a.failed_attempts_per_ip)?,
        cache_ttl: positive_duration("auth.cache_ttl", &a.cache_ttl)?,
        max_lifetime_days: a
            .max_lifetime_days
            .map(|d| {
                count("auth.max_lifetime_days", d, 1, 36_500)
                    .map(|d| u32::try_from(d).expect("bounded above"))
            })
            .transpose()?,
        hash_concurrency: match count("auth.hash_concurrency", a.hash_concurrency, 0, 256)? {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => usize::try_from(n).expect("bounded above"),
        },
    })
}
