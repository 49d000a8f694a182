//! The bounds of a token someone makes for themselves: never broader than the token they
//! signed in with (scope, expiry, allowed IPs) or than `force_read_only` permits. A request
//! for more is refused naming the field, never quietly narrowed; what is left out gets the
//! broadest value allowed. Pure functions of plain values.

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;

use crate::lifecycle::Invalid;
use crate::token::Scope;

/// The token a caller signed in with, where they signed in with one.
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    pub scope: Scope,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_ips: &'a [IpNet],
}

/// What bounds a new token.
#[derive(Debug, Clone, Copy)]
pub struct Bounds<'a> {
    /// `self_service.force_read_only`, where it applies (to a person's own tokens).
    pub force_read_only: bool,
    /// `auth.max_lifetime_days`.
    pub max_lifetime_days: Option<u32>,
    pub signing: Option<Signing<'a>>,
}

/// What the caller asked for; `None` where they left a field out.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    pub scope: Option<Scope>,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_ips: Option<Vec<IpNet>>,
}

/// What the new token gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub scope: Scope,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_ips: Vec<IpNet>,
}

impl Bounds<'_> {
    /// The broadest scope allowed.
    pub fn max_scope(&self) -> Scope {
        let signed_read_only = self.signing.is_some_and(|s| s.scope == Scope::ReadOnly);
        if self.force_read_only || signed_read_only {
            Scope::ReadOnly
        } else {
            Scope::ReadWrite
        }
    }

    /// The latest expiry allowed at `now`, `None` for none.
    pub fn latest_expiry(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let by_lifetime = self
            .max_lifetime_days
            .map(|days| now + Duration::days(i64::from(days)));
        let by_signing = self.signing.and_then(|s| s.expires_at);
        match (by_lifetime, by_signing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Settles what a new token gets. `default_scope` is the scope a request that names none
    /// gets, where allowed (else the broadest allowed).
    pub fn settle(
        &self,
        asked: Asked,
        default_scope: Scope,
        now: DateTime<Utc>,
    ) -> Result<Settled, Invalid> {
        let max_scope = self.max_scope();
        let scope = match asked.scope {
            Some(Scope::ReadWrite) if max_scope == Scope::ReadOnly => {
                let why = if self.force_read_only {
                    "must be read-only: tokens people make for themselves are read-only here"
                } else {
                    "must be read-only: a token signed in with a read-only token makes read-only tokens only"
                };
                return Err(Invalid::new("scope", why));
            }
            Some(scope) => scope,
            None if max_scope == Scope::ReadOnly => Scope::ReadOnly,
            None => default_scope,
        };
        let signing_expiry = self.signing.and_then(|s| s.expires_at);
        let expires_at = match asked.expires_at {
            Some(at) if signing_expiry.is_some_and(|limit| at > limit) => {
                return Err(Invalid::new(
                    "expires_at",
                    format!(
                        "must not be later than the expiry of the token signed in with ({})",
                        signing_expiry
                            .expect("checked")
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                ));
            }
            Some(at) => Some(at),
            None => self.latest_expiry(now),
        };
        let signing_ips = self.signing.map_or(&[][..], |s| s.allowed_ips);
        let allowed_ips = match asked.allowed_ips {
            None => signing_ips.to_vec(),
            Some(ips) if signing_ips.is_empty() => ips,
            Some(ips) if ips.is_empty() => {
                return Err(Invalid::new(
                    "allowed_ips",
                    "must not be empty (any address): the token signed in with allows only some addresses",
                ));
            }
            Some(ips) => {
                if let Some(i) = ips
                    .iter()
                    .position(|ip| !signing_ips.iter().any(|net| net.contains(ip)))
                {
                    return Err(Invalid::new(
                        format!("allowed_ips[{i}]"),
                        format!(
                            "{} is outside the allowed IPs of the token signed in with",
                            ips[i]
                        ),
                    ));
                }
                ips
            }
        };
        Ok(Settled {
            scope,
            expires_at,
            allowed_ips,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn open() -> Bounds<'static> {
        Bounds {
            force_read_only: false,
            max_lifetime_days: None,
            signing: None,
        }
    }

    #[test]
    fn a_password_sign_in_gets_what_it_asks_within_the_lifetime() {
        let bounds = Bounds {
            max_lifetime_days: Some(90),
            ..open()
        };
        let settled = bounds
            .settle(Asked::default(), Scope::ReadWrite, now())
            .unwrap();
        assert_eq!(settled.scope, Scope::ReadWrite);
        assert_eq!(
            settled.expires_at,
            Some(now() + Duration::days(90)),
            "the maximum"
        );
        assert!(settled.allowed_ips.is_empty());
        let no_max = open()
            .settle(Asked::default(), Scope::ReadOnly, now())
            .unwrap();
        assert_eq!((no_max.scope, no_max.expires_at), (Scope::ReadOnly, None));
    }

    #[test]
    fn force_read_only_refuses_read_write_and_defaults_to_read_only() {
        let bounds = Bounds {
            force_read_only: true,
            ..open()
        };
        let asked = Asked {
            scope: Some(Scope::ReadWrite),
            ..Asked::default()
        };
        let refused = bounds.settle(asked, Scope::ReadWrite, now()).unwrap_err();
        assert_eq!(refused.field, "scope");
        let settled = bounds
            .settle(Asked::default(), Scope::ReadWrite, now())
            .unwrap();
        assert_eq!(settled.scope, Scope::ReadOnly);
    }

    #[test]
    fn a_token_makes_tokens_no_broader_than_itself() {
        let ips = nets(&["10.0.0.0/8"]);
        let expiry = now() + Duration::days(10);
        let bounds = Bounds {
            max_lifetime_days: Some(90),
            signing: Some(Signing {
                scope: Scope::ReadOnly,
                expires_at: Some(expiry),
                allowed_ips: &ips,
            }),
            ..open()
        };
        let inherited = bounds
            .settle(Asked::default(), Scope::ReadWrite, now())
            .unwrap();
        assert_eq!(
            inherited,
            Settled {
                scope: Scope::ReadOnly,
                expires_at: Some(expiry),
                allowed_ips: ips.clone(),
            }
        );
        let refuse = |asked: Asked| bounds.settle(asked, Scope::ReadWrite, now()).unwrap_err();
        let wide_scope = refuse(Asked {
            scope: Some(Scope::ReadWrite),
            ..Asked::default()
        });
        assert_eq!(wide_scope.field, "scope");
        let later = refuse(Asked {
            expires_at: Some(expiry + Duration::seconds(1)),
            ..Asked::default()
        });
        assert_eq!(later.field, "expires_at");
        let any_ip = refuse(Asked {
            allowed_ips: Some(Vec::new()),
            ..Asked::default()
        });
        assert_eq!(any_ip.field, "allowed_ips");
        let outside = refuse(Asked {
            allowed_ips: Some(nets(&["10.1.0.0/16", "192.168.0.0/24"])),
            ..Asked::default()
        });
        assert_eq!(outside.field, "allowed_ips[1]");
        let inside = bounds
            .settle(
                Asked {
                    allowed_ips: Some(nets(&["10.1.0.0/16"])),
                    expires_at: Some(expiry),
                    ..Asked::default()
                },
                Scope::ReadWrite,
                now(),
            )
            .unwrap();
        assert_eq!(inside.allowed_ips, nets(&["10.1.0.0/16"]));
    }

    #[test]
    fn the_earlier_of_lifetime_and_signing_expiry_is_the_default() {
        let bounds = Bounds {
            max_lifetime_days: Some(5),
            signing: Some(Signing {
                scope: Scope::ReadWrite,
                expires_at: Some(now() + Duration::days(30)),
                allowed_ips: &[],
            }),
            ..open()
        };
        assert_eq!(bounds.latest_expiry(now()), Some(now() + Duration::days(5)));
    }
}
