//! The `[upstream]` section, validated: where Bitbucket is, how it is told who a request is
//! for, and how it is reached.

use std::path::PathBuf;

use super::raw::RawUpstream;
use super::validate::{bad, positive_duration, redact_url_password, secret};
use super::{ConfigError, Identity, UpstreamConfig};

/// `[upstream]` as written, checked and converted; an error names the key and the value.
pub(super) fn validate(u: RawUpstream) -> Result<UpstreamConfig, ConfigError> {
    // What an error shows: a URL refused for its user info may hold a password.
    let shown_url = redact_url_password(&u.url);
    let url: http::Uri = u.url.parse().map_err(|_| {
        bad(
            "upstream.url",
            &shown_url,
            "expected a URL such as http://127.0.0.1:7990",
        )
    })?;
    let https = url.scheme_str() == Some("https");
    if !(https || url.scheme_str() == Some("http")) || url.authority().is_none() {
        return Err(bad(
            "upstream.url",
            &shown_url,
            "expected an http:// or https:// URL with a host",
        ));
    }
    // Never sent to Bitbucket (who the request is for is upstream.identity's job), while the
    // URL itself is logged at start and written into audit-file lines.
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad(
            "upstream.url",
            &shown_url,
            "must not hold a user name or password: tokengate does not use them to reach \
             Bitbucket; upstream.identity sets who a request is for",
        ));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(bad(
            "upstream.url",
            &shown_url,
            "must not have a path: Bitbucket's context path is part of the request path",
        ));
    }
    let identity = match u.identity.as_str() {
        "header" => Identity::Header,
        "credential" => Identity::Credential,
        other => {
            return Err(bad(
                "upstream.identity",
                other,
                "expected \"header\" or \"credential\"",
            ));
        }
    };
    let identity_header: http::HeaderName = u.identity_header.parse().map_err(|_| {
        bad(
            "upstream.identity_header",
            &u.identity_header,
            "expected an HTTP header name",
        )
    })?;
    if identity_header == http::header::AUTHORIZATION || identity_header == http::header::HOST {
        return Err(bad(
            "upstream.identity_header",
            &u.identity_header,
            "must not be Authorization or Host",
        ));
    }
    let credential_key = secret(u.credential_key);
    if identity == Identity::Credential {
        match &credential_key {
            None => {
                return Err(bad(
                    "upstream.credential_key",
                    "",
                    "required when upstream.identity = \"credential\"; set TOKENGATE_UPSTREAM__CREDENTIAL_KEY to 32 random bytes in base64",
                ));
            }
            Some(key) => {
                crate::vault::CredentialKey::from_secret(key)
                    .map_err(|e| bad("upstream.credential_key", "[redacted]", e))?;
            }
        }
    }
    let ca_file = u.ca_file.filter(|f| !f.is_empty()).map(PathBuf::from);
    if let Some(path) = &ca_file
        && !https
    {
        return Err(bad(
            "upstream.ca_file",
            path.display(),
            "is used only with an https:// upstream.url",
        ));
    }
    Ok(UpstreamConfig {
        url,
        identity,
        identity_header,
        connect_timeout: positive_duration("upstream.connect_timeout", &u.connect_timeout)?,
        response_timeout: positive_duration("upstream.response_timeout", &u.response_timeout)?,
        pool_idle_timeout: positive_duration("upstream.pool_idle_timeout", &u.pool_idle_timeout)?,
        credential_key,
        ca_file,
    })
}
