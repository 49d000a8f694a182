//! The `[self_service]` section: people's own tokens, signed in by Bitbucket, governed by
//! rights that name users, Bitbucket groups or everyone.

use std::time::Duration;

use secrecy::SecretString;

use super::raw::RawSelfService;
use super::validate::{bad, count, duration, secret};
use super::{AuthConfig, ConfigError, Identity, UpstreamConfig};
use crate::selfservice::{Rule, Rules};

/// `[self_service]`, validated.
#[derive(Debug, Clone)]
pub struct SelfServiceConfig {
    /// Serve the self-service API and pages on the proxy listener.
    pub enabled: bool,
    /// Where the web pages are: an absolute path ending in `/`.
    pub path: String,
    /// The Bitbucket resource asked who a credential belongs to.
    pub whoami_path: String,
    /// Whose tokens authenticate at all.
    pub use_tokens: Rules,
    /// Who may create tokens for themselves.
    pub create_own: Rules,
    /// Who may see, create for and revoke anyone's tokens (implies `create_own`).
    pub manage_all: Rules,
    /// Tokens people make for themselves are read-only.
    pub force_read_only: bool,
    /// How long a user's Bitbucket groups are trusted.
    pub group_cache_ttl: Duration,
    /// The origin (`https://bitbucket.example.com`) that session writes must come from; without
    /// it, the scheme and `Host` of the request.
    pub public_url: Option<String>,
    /// Provision users' Bitbucket access tokens at sign-in (with `upstream.identity =
    /// "credential"`).
    pub provision_credentials: bool,
    /// Lifetime of a provisioned Bitbucket access token.
    pub credential_lifetime_days: u32,
    /// The service credential that reads users' groups: `user:password` (Basic) or an HTTP
    /// access token (Bearer).
    pub bitbucket_credential: Option<SecretString>,
}

impl SelfServiceConfig {
    /// Whether any rule names a Bitbucket group (then groups are read from Bitbucket).
    pub fn names_groups(&self) -> bool {
        [&self.use_tokens, &self.create_own, &self.manage_all]
            .iter()
            .any(|rules| rules.names_groups())
    }
}

fn rules(key: &'static str, entries: &[String]) -> Result<Rules, ConfigError> {
    entries
        .iter()
        .map(|entry| Rule::parse(entry).map_err(|reason| bad(key, entry, reason)))
        .collect::<Result<Vec<_>, _>>()
        .map(Rules::new)
}

fn web_path(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let safe = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
    if !value.starts_with('/') || !value.ends_with('/') || value.len() < 3 || !safe {
        return Err(bad(
            key,
            value,
            "expected an absolute path of letters, digits and - _ . ~ that ends in /, such as /tokengate/",
        ));
    }
    if value.contains("//") || value.split('/').any(|s| s == "." || s == "..") {
        return Err(bad(key, value, "must not hold empty, . or .. segments"));
    }
    Ok(value.to_owned())
}

fn origin(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let uri: http::Uri = value.parse().map_err(|_| {
        bad(
            key,
            value,
            "expected an origin such as https://bitbucket.example.com",
        )
    })?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(bad(
            key,
            value,
            "expected an origin such as https://bitbucket.example.com",
        ));
    };
    if !matches!(scheme, "http" | "https") || authority.as_str().contains('@') {
        return Err(bad(
            key,
            value,
            "expected http:// or https:// and a host, without user info",
        ));
    }
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err(bad(key, value, "an origin has no path or query"));
    }
    Ok(format!(
        "{scheme}://{}",
        authority.as_str().to_ascii_lowercase()
    ))
}

pub(super) fn validate(
    raw: RawSelfService,
    upstream: &UpstreamConfig,
    auth: &AuthConfig,
) -> Result<SelfServiceConfig, ConfigError> {
    let path = web_path("self_service.path", &raw.path)?;
    // The pages answer everything under their path: a protected path there would never reach
    // Bitbucket.
    if let Some(hidden) = auth.protected_paths.iter().find(|p| p.starts_with(&path)) {
        return Err(bad(
            "self_service.path",
            &path,
            format!(
                "would hide {hidden} of auth.protected_paths from Bitbucket: the pages answer every path under their own"
            ),
        ));
    }
    let config = SelfServiceConfig {
        enabled: raw.enabled,
        path,
        whoami_path: match raw.whoami_path.parse::<http::uri::PathAndQuery>() {
            Ok(p) if raw.whoami_path.starts_with('/') => p.to_string(),
            _ => {
                return Err(bad(
                    "self_service.whoami_path",
                    &raw.whoami_path,
                    "expected an absolute path such as /rest/api/latest/application-properties",
                ));
            }
        },
        use_tokens: rules("self_service.use_tokens", &raw.use_tokens)?,
        create_own: rules("self_service.create_own", &raw.create_own)?,
        manage_all: rules("self_service.manage_all", &raw.manage_all)?,
        force_read_only: raw.force_read_only,
        group_cache_ttl: duration("self_service.group_cache_ttl", &raw.group_cache_ttl)?,
        public_url: raw
            .public_url
            .filter(|u| !u.is_empty())
            .map(|u| origin("self_service.public_url", &u))
            .transpose()?,
        provision_credentials: raw.provision_credentials,
        credential_lifetime_days: u32::try_from(count(
            "self_service.credential_lifetime_days",
            raw.credential_lifetime_days,
            1,
            3650,
        )?)
        .expect("bounded above"),
        bitbucket_credential: secret(raw.bitbucket_credential),
    };
    if config.bitbucket_credential.is_none() {
        for (key, rules) in [
            ("self_service.use_tokens", &config.use_tokens),
            ("self_service.create_own", &config.create_own),
            ("self_service.manage_all", &config.manage_all),
        ] {
            if let Some(group) = rules.first_group() {
                return Err(bad(
                    key,
                    format!("group:{group}"),
                    "a rule naming a Bitbucket group needs self_service.bitbucket_credential \
                     (or TOKENGATE_SELF_SERVICE__BITBUCKET_CREDENTIAL) to read users' groups",
                ));
            }
        }
    }
    if config.provision_credentials && upstream.identity != Identity::Credential {
        return Err(bad(
            "self_service.provision_credentials",
            true,
            "provisioning needs upstream.identity = \"credential\" (and upstream.credential_key)",
        ));
    }
    Ok(config)
}
