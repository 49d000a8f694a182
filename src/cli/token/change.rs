//! `tokengate token update` and `tokengate token rotate`: the admin API's PATCH and rotate on
//! the configured store, printed as the other token commands print.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args};
use ipnet::IpNet;

use super::render::{fields, print_json};
use super::{Failure, parse_expires_in, parse_rate_limit};
use crate::config::parse_duration;
use crate::lifecycle::{self, Lifecycle, MAX_GRACE, Origin, TokenView};
use crate::ratelimit::RateQuota;
use crate::telemetry::Escaped;
use crate::token::TokenPatch;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("expiry").args(["expires_in", "no_expiry"])))]
#[command(group(ArgGroup::new("quota").args(["rate_limit", "default_rate_limit"])))]
pub struct UpdateArgs {
    /// The token's id (the 12 characters after `tgt_`).
    id: String,
    /// A new description (1-255 characters).
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Expire this long from now: a whole number followed by s, m, h or d (30d).
    #[arg(long, value_name = "DURATION", value_parser = parse_expires_in)]
    expires_in: Option<Duration>,
    /// Never expire (refused when auth.max_lifetime_days requires an expiry).
    #[arg(long)]
    no_expiry: bool,
    /// Accept the token only from these CIDRs or addresses (repeat the flag): the list
    /// replaces the token's allowed IPs.
    #[arg(long = "allow-ip", value_name = "CIDR", value_parser = lifecycle::parse_ip, conflicts_with = "any_ip")]
    allow_ip: Vec<IpNet>,
    /// Accept the token from any address.
    #[arg(long)]
    any_ip: bool,
    /// The token's own quota, REQUESTS/PERIOD such as 5/5m.
    #[arg(long, value_name = "N/PERIOD", value_parser = parse_rate_limit)]
    rate_limit: Option<RateQuota>,
    /// Use the config's rate_limit.default instead of a quota of its own.
    #[arg(long)]
    default_rate_limit: bool,
    /// Print JSON, as `PATCH /admin/v1/tokens/{id}` answers.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The id of the token to replace.
    id: String,
    /// How long the old token keeps working, such as 1h (at most 30d). Without it the old
    /// token is revoked at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_grace)]
    grace: Option<Duration>,
    /// Print JSON, as `POST /admin/v1/tokens/{id}/rotate` answers (new secret included).
    #[arg(long)]
    json: bool,
}

fn parse_grace(s: &str) -> Result<Duration, String> {
    let d =
        parse_duration(s).ok_or("expected a whole number followed by s, m, h or d, such as 1h")?;
    if d > MAX_GRACE {
        return Err("must be at most 30d".into());
    }
    Ok(d)
}

impl UpdateArgs {
    fn patch(&self, now: DateTime<Utc>) -> Result<TokenPatch, Failure> {
        let expires_at = match (self.expires_in, self.no_expiry) {
            (Some(d), _) => Some(Some(
                chrono::Duration::from_std(d)
                    .ok()
                    .and_then(|d| now.checked_add_signed(d))
                    .ok_or_else(|| Failure::Usage("--expires-in: too far in the future".into()))?,
            )),
            (None, true) => Some(None),
            (None, false) => None,
        };
        let allowed_ips = if self.any_ip {
            Some(Vec::new())
        } else {
            (!self.allow_ip.is_empty()).then(|| self.allow_ip.clone())
        };
        let rate_limit = match (self.rate_limit, self.default_rate_limit) {
            (Some(q), _) => Some(Some(q)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        let patch = TokenPatch {
            description: self.description.clone(),
            expires_at,
            allowed_ips,
            rate_limit,
        };
        if patch.is_empty() {
            return Err(Failure::Usage(
                "nothing to change: give at least one of --description, --expires-in, \
                 --no-expiry, --allow-ip, --any-ip, --rate-limit, --default-rate-limit"
                    .into(),
            ));
        }
        Ok(patch)
    }
}

pub(super) async fn update(
    lifecycle: &Lifecycle,
    args: UpdateArgs,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let patch = args.patch(now)?;
    let record = lifecycle
        .patch(&args.id, patch, &Origin::default(), now)
        .await?;
    let view = TokenView::new(&record, now);
    if args.json {
        print_json(&view);
    } else {
        println!("updated token {} of {}", view.id, Escaped(&view.user));
        print!("{}", fields(&view));
    }
    Ok(())
}

pub(super) async fn rotate(
    lifecycle: &Lifecycle,
    args: RotateArgs,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let grace = args.grace.unwrap_or_default();
    let rotated = lifecycle
        .rotate(&args.id, grace, &Origin::default(), now)
        .await?;
    if args.json {
        print_json(&rotated);
        return Ok(());
    }
    let old = &rotated.replaces;
    println!(
        "token:        {}",
        secrecy::ExposeSecret::expose_secret(&rotated.created.token)
    );
    println!("              (shown only this once: copy it now)");
    print!("{}", fields(&rotated.created.record));
    match (old.revoked_at, old.expires_at) {
        (Some(_), _) => println!("replaces:     {}, revoked now", old.id),
        (None, Some(at)) => println!(
            "replaces:     {}, which keeps working until {}",
            old.id,
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        (None, None) => println!("replaces:     {}", old.id),
    }
    Ok(())
}
