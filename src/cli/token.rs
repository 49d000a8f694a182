//! `tokengate token …` and `tokengate credential …`: the token lifecycle on the configured
//! store directly, with no admin token, through the same [`Lifecycle`] as the admin API.
//! Audit events go straight into the store with actor `cli`. The helpers that run a command
//! on the store and map its failure to an exit code are shared by the other store commands.

mod change;
mod render;

use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Subcommand};
use ipnet::IpNet;
use secrecy::SecretString;

use crate::app;
use crate::config::{Config, parse_duration};
use crate::lifecycle::{
    self, Actor, AuditTo, Lifecycle, LifecycleError, LifecycleSettings, Origin, TokenPage,
    TokenSpec, TokenView,
};
use crate::ratelimit::RateQuota;
use crate::store::TokenQuery;
use crate::telemetry::Escaped;
use crate::token::{Scope, TokenState};
pub(super) use render::print_json;
use render::{fields, table};

/// Longest `--expires-in`: a hundred years.
const MAX_EXPIRES_IN_DAYS: u64 = 36_500;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret, this once.
    Create(CreateArgs),
    /// List tokens, newest first, without secrets.
    List {
        /// Only this user's tokens.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only tokens in this state.
        #[arg(long, value_name = "STATE", value_parser = PossibleValuesParser::new(["active", "expired", "revoked"]))]
        state: Option<String>,
        /// Print JSON, as `GET /admin/v1/tokens` answers.
        #[arg(long)]
        json: bool,
    },
    /// Show one token.
    Show {
        /// The token's id (the 12 characters after `tgt_`).
        id: String,
        /// Print JSON, as `GET /admin/v1/tokens/{id}` answers.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it is refused from now on; the record stays, in state revoked.
    Revoke {
        /// The token's id.
        id: String,
    },
    /// Change a token's description, expiry, allowed IPs or rate limit.
    Update(change::UpdateArgs),
    /// Replace a token with a new one (new secret, shown this once) that has the same owner,
    /// description, scope, expiry, allowed IPs and rate limit.
    Rotate(change::RotateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The Bitbucket user the token acts as.
    #[arg(long, value_name = "USER")]
    user: String,
    /// Names the token in log lines and listings (1-255 characters).
    #[arg(long, value_name = "TEXT")]
    description: String,
    /// read-only: GET, HEAD, OPTIONS and git fetch/clone; read-write: every method.
    #[arg(long, value_name = "SCOPE", default_value = "read-only",
          value_parser = PossibleValuesParser::new(["read-only", "read-write"]).map(|s| s.parse::<Scope>().expect("a listed value")))]
    scope: Scope,
    /// Expire this long after creation: a whole number followed by s, m, h or d (90d). Without
    /// it the token does not expire, unless auth.max_lifetime_days requires an expiry.
    #[arg(long, value_name = "DURATION", value_parser = parse_expires_in)]
    expires_in: Option<Duration>,
    /// Accept the token only from this CIDR (10.0.0.0/8, 2001:db8::/32) or address; repeat
    /// for more. Without it any address may use the token.
    #[arg(long = "allow-ip", value_name = "CIDR", value_parser = lifecycle::parse_ip)]
    allow_ip: Vec<IpNet>,
    /// The token's own quota, REQUESTS/PERIOD such as 5/5m or 1000/1h. Without it the
    /// config's rate_limit.default applies.
    #[arg(long, value_name = "N/PERIOD", value_parser = parse_rate_limit)]
    rate_limit: Option<RateQuota>,
    /// Print JSON, as `POST /admin/v1/tokens` answers (secret included).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Store a user's Bitbucket credential (for upstream.identity = "credential"), read from
    /// stdin as one line and sealed with upstream.credential_key.
    Set {
        /// The Bitbucket user the credential belongs to.
        #[arg(long, value_name = "USER")]
        user: String,
    },
    /// List the users with a stored credential and when it was set or provisioned (never the
    /// credential itself).
    List {
        /// Print JSON, as `GET /admin/v1/credentials` answers.
        #[arg(long)]
        json: bool,
    },
    /// Delete a user's stored credential; running gateways drop their copy within a second.
    Delete {
        /// The Bitbucket user whose credential is deleted.
        #[arg(long, value_name = "USER")]
        user: String,
    },
}

pub(super) fn parse_expires_in(s: &str) -> Result<Duration, String> {
    let d =
        parse_duration(s).ok_or("expected a whole number followed by s, m, h or d, such as 90d")?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    if d > Duration::from_secs(MAX_EXPIRES_IN_DAYS * 86_400) {
        return Err(format!("must be at most {MAX_EXPIRES_IN_DAYS}d"));
    }
    Ok(d)
}

pub(super) fn parse_rate_limit(s: &str) -> Result<RateQuota, String> {
    s.parse()
        .map_err(|e: crate::ratelimit::QuotaError| e.to_string())
}

/// What a command failed with, and its exit code.
pub(super) enum Failure {
    /// Bad input: exit 2.
    Usage(String),
    /// Anything else: exit 1.
    Other(String),
}

impl From<LifecycleError> for Failure {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Invalid(i) => {
                Self::Usage(format!("{}: {}", flag_of(&i.field), i.message))
            }
            e @ LifecycleError::NoCredentialKey => Self::Usage(e.to_string()),
            e => Self::Other(e.to_string()),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(format!("{e:#}"))
    }
}

/// The flag a field of the API came from.
fn flag_of(field: &str) -> &str {
    match field.split(['.', '[']).next().unwrap_or(field) {
        "user" => "--user",
        "description" => "--description",
        "scope" => "--scope",
        "expires_at" => "--expires-in",
        "allowed_ips" => "--allow-ip",
        "rate_limit" => "--rate-limit",
        "grace_seconds" => "--grace",
        "credential" => "the credential on stdin",
        other => other,
    }
}

/// Runs a `token` command.
pub(super) fn run_token(config: &Config, command: TokenCommand) -> ExitCode {
    finish(block_on(async {
        let lifecycle = open(config).await?;
        token(&lifecycle, command).await
    }))
}

/// Runs a `credential` command.
pub(super) fn run_credential(config: &Config, command: CredentialCommand) -> ExitCode {
    let user = match command {
        CredentialCommand::Set { user } => user,
        CredentialCommand::List { json } => return super::credential::list(config, json),
        CredentialCommand::Delete { user } => return super::credential::delete(config, &user),
    };
    if let Err(e) = lifecycle::validate_user(&user) {
        return finish(Err(LifecycleError::from(e).into()));
    }
    if config.upstream.credential_key.is_none() {
        return finish(Err(LifecycleError::NoCredentialKey.into()));
    }
    let credential = match read_credential(&user) {
        Ok(c) => c,
        Err(e) => return finish(Err(e)),
    };
    finish(block_on(async {
        let lifecycle = open(config).await?;
        lifecycle
            .set_credential(&user, &credential, &Origin::default(), Utc::now())
            .await?;
        println!(
            "stored the credential of {}; running gateways use it within a second",
            Escaped(&user)
        );
        Ok(())
    }))
}

pub(super) fn block_on(work: impl Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("starting the async runtime: {e}")))?
        .block_on(work)
}

pub(super) fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("tokengate: {m}");
            ExitCode::from(super::EXIT_CONFIG)
        }
        Err(Failure::Other(m)) => {
            eprintln!("tokengate: {m}");
            ExitCode::FAILURE
        }
    }
}

pub(super) async fn open(config: &Config) -> Result<Lifecycle, Failure> {
    // The CLI has no log subscriber of its own: warnings (an audit event that could not be
    // stored) go to stderr.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .with_target(false)
        .try_init();
    let store = app::open_existing_store(config)
        .await
        .map_err(|e| match e {
            e @ app::ExistingStoreError::Store(_) => Failure::Other(e.to_string()),
            e => Failure::Usage(e.to_string()),
        })?;
    let settings = LifecycleSettings::from_config(config)
        .map_err(|e| Failure::Usage(format!("upstream.credential_key: {e}")))?;
    Ok(Lifecycle::new(
        store,
        settings,
        Actor::Cli,
        AuditTo::Store {
            coverage: config.audit.coverage,
            file: config.audit.file.clone(),
            system: config.upstream.url.to_string(),
        },
    ))
}

fn read_credential(user: &str) -> Result<SecretString, Failure> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Bitbucket credential of {} (one line): ", Escaped(user));
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Other(format!("reading the credential from stdin: {e}")))?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(Failure::Usage(
            "the credential read from stdin is empty: pipe it in as one line".into(),
        ));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

async fn token(lifecycle: &Lifecycle, command: TokenCommand) -> Result<(), Failure> {
    let now = Utc::now();
    match command {
        TokenCommand::Create(args) => {
            let expires_at = args
                .expires_in
                .map(|d| {
                    chrono::Duration::from_std(d)
                        .ok()
                        .and_then(|d| now.checked_add_signed(d))
                })
                .map(|t| {
                    t.ok_or_else(|| Failure::Usage("--expires-in: too far in the future".into()))
                })
                .transpose()?;
            let spec = TokenSpec {
                user: args.user,
                description: args.description,
                scope: args.scope,
                expires_at,
                allowed_ips: args.allow_ip,
                rate_limit: args.rate_limit,
            };
            let created = lifecycle.create(spec, &Origin::default(), now).await?;
            if args.json {
                print_json(&created);
            } else {
                println!(
                    "token:        {}",
                    secrecy::ExposeSecret::expose_secret(&created.token)
                );
                println!("              (shown only this once: copy it now)");
                print!("{}", fields(&created.record));
            }
        }
        TokenCommand::List { user, state, json } => {
            if let Some(u) = &user {
                lifecycle::validate_user(u).map_err(LifecycleError::from)?;
            }
            let state = state.as_deref().map(state_of);
            let mut tokens = Vec::new();
            let mut query = TokenQuery {
                user,
                state,
                now,
                limit: 500,
                after: None,
            };
            loop {
                let page = lifecycle
                    .store()
                    .list_tokens(&query)
                    .await
                    .map_err(LifecycleError::from)?;
                let full = page.len() == query.limit as usize;
                query.after = page.last().map(|r| (r.created_at, r.id.clone()));
                tokens.extend(page.iter().map(|r| TokenView::new(r, now)));
                if !full {
                    break;
                }
            }
            if json {
                print_json(&TokenPage {
                    tokens,
                    next_cursor: None,
                });
            } else {
                print!("{}", table(&tokens));
            }
        }
        TokenCommand::Show { id, json } => {
            let view = TokenView::new(&lifecycle.get(&id).await?, now);
            if json {
                print_json(&view);
            } else {
                print!("{}", fields(&view));
            }
        }
        TokenCommand::Revoke { id } => {
            let before = lifecycle.get(&id).await?;
            let after = lifecycle.revoke(&id, &Origin::default(), now).await?;
            if before.revoked_at.is_some() {
                println!(
                    "token {} of {} was already revoked",
                    after.id,
                    Escaped(&after.user)
                );
            } else {
                println!("revoked token {} of {}", after.id, Escaped(&after.user));
            }
        }
        TokenCommand::Update(args) => change::update(lifecycle, args, now).await?,
        TokenCommand::Rotate(args) => change::rotate(lifecycle, args, now).await?,
    }
    Ok(())
}

fn state_of(s: &str) -> TokenState {
    match s {
        "expired" => TokenState::Expired,
        "revoked" => TokenState::Revoked,
        _ => TokenState::Active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_map_to_flags() {
        assert_eq!(flag_of("allowed_ips[3]"), "--allow-ip");
        assert_eq!(flag_of("rate_limit.requests"), "--rate-limit");
        assert_eq!(flag_of("expires_at"), "--expires-in");
    }

    #[test]
    fn expiry_durations() {
        assert_eq!(
            parse_expires_in("90d"),
            Ok(Duration::from_secs(90 * 86_400))
        );
        assert!(parse_expires_in("0s").is_err());
        assert!(parse_expires_in("90").is_err());
        assert!(parse_expires_in("36501d").is_err());
    }
}
