//! The store contract, written once and run against both backends: every case is an
//! `async fn` taking a fresh store (or a fresh database URL), and [`both_backends!`](crate::support::both_backends) makes a
//! `postgres` and an `sqlite` test of it (`store::<case>::postgres`, `store::<case>::sqlite`).

mod audit;
mod connect;
mod ops;
mod segments;
mod sqlite_files;
mod state;
mod tokens;
mod watch;

use chrono::{DateTime, Utc};
use tokengate::ratelimit::RateQuota;
use tokengate::token::{NewToken, Scope, TokenRecord};

/// A time written as RFC 3339.
fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("test time").to_utc()
}

/// A token with every optional field empty.
fn new_token(user: &str, created_at: DateTime<Utc>) -> NewToken {
    NewToken {
        id: tokengate::token::generate().0,
        user: user.to_owned(),
        description: format!("token of {user}"),
        scope: Scope::ReadOnly,
        created_at,
        expires_at: None,
        allowed_ips: Vec::new(),
        rate_limit: None,
        secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
    }
}

/// A token with every field set.
fn full_token(user: &str) -> NewToken {
    NewToken {
        scope: Scope::ReadWrite,
        expires_at: Some(at("2031-02-03T04:05:06.789Z")),
        allowed_ips: vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.168.1.7/32".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ],
        rate_limit: Some(RateQuota::new(5, 300).unwrap()),
        description: "CI bot, \"quoted\", with ünïcode, commas".to_owned(),
        ..new_token(user, at("2024-03-01T12:00:00.123Z"))
    }
}

/// The record a fresh `NewToken` should read back as.
fn record_of(t: &NewToken) -> TokenRecord {
    TokenRecord {
        id: t.id.clone(),
        user: t.user.clone(),
        description: t.description.clone(),
        scope: t.scope,
        created_at: t.created_at,
        expires_at: t.expires_at,
        allowed_ips: t.allowed_ips.clone(),
        rate_limit: t.rate_limit,
        last_used_at: None,
        last_used_ip: None,
        revoked_at: None,
        secret_hash: t.secret_hash.clone(),
    }
}
