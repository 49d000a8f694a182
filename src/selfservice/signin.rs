//! Who is calling: a tokengate token (acting for its owner), or a Bitbucket credential —
//! password or Bitbucket token in `Authorization`, or Bitbucket's session cookie — that
//! Bitbucket itself names the user of. Answers are cached under a digest of the credential,
//! never the credential itself; only successful ones.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use chrono::Utc;
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use sha2::{Digest, Sha256};

use super::SelfService;
use super::rights::Granted;
use crate::admin::error::ApiError;
use crate::auth::{Credential, Scheme, Verification, ip_allowed};
use crate::bitbucket::SignIn;
use crate::lifecycle::{Acting, Origin, Via};
use crate::token::{TokenRecord, TokenState};

mod cross_site;

pub use cross_site::FormNoCheck;
pub(crate) use cross_site::session_write_allowed;

/// Bitbucket's own session cookies: the only cookies sent to Bitbucket to ask who it is.
const SESSION_COOKIES: [&str; 3] = [
    "BITBUCKETSESSIONID",
    "JSESSIONID",
    "_atl_bitbucket_remember_login",
];

/// What the proxy knows of a self-service request, handed in as an extension.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The client IP every decision uses.
    pub client_ip: IpAddr,
    /// Also answered as `X-AREQUESTID`.
    pub request_id: String,
    /// Whether the request came over TLS (the scheme of its own origin).
    pub secure: bool,
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their Bitbucket user name.
    pub user: String,
    pub via: Via,
    /// The token they signed in with, when they did.
    pub token: Option<Arc<TokenRecord>>,
    /// What they may do.
    pub granted: Granted,
    /// Where their changes come from, for audit events.
    pub origin: Origin,
}

impl Caller {
    /// Whether the caller may create tokens for `user`.
    pub fn may_create_for(&self, user: &str) -> bool {
        if user.eq_ignore_ascii_case(&self.user) {
            self.granted.create_own
        } else {
            self.granted.manage_all
        }
    }

    /// Whether the caller may see and change a token of `owner`'s.
    pub fn may_see(&self, owner: &str) -> bool {
        owner.eq_ignore_ascii_case(&self.user) || self.granted.manage_all
    }
}

/// Why nobody is signed in.
#[derive(Debug)]
pub enum SignInError {
    /// No credential, or one that Bitbucket or tokengate does not accept: 401.
    NotSignedIn(&'static str),
    /// A session write without `X-Atlassian-Token: no-check` and a same-origin `Origin`: 403.
    CrossSite(&'static str),
    /// Bitbucket (or the store) could not be asked: 503.
    Unavailable(&'static str),
    /// Too many failed token verifications from this address: 429.
    Throttled(std::time::Duration),
}

impl SignInError {
    /// The answer in the API's error shape.
    pub(crate) fn into_api_error(self) -> ApiError {
        match self {
            Self::NotSignedIn(message) => ApiError::unauthorized("not_signed_in", message),
            Self::CrossSite(message) => {
                ApiError::new(StatusCode::FORBIDDEN, "xsrf_check_failed", message)
            }
            Self::Unavailable(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            Self::Throttled(after) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                format!(
                    "Too many failed token verifications from this address; try again in {} s.",
                    after.as_secs().max(1)
                ),
            ),
        }
    }
}

impl axum::response::IntoResponse for SignInError {
    fn into_response(self) -> axum::response::Response {
        let unauthorized = matches!(self, Self::NotSignedIn(_));
        let mut response = self.into_api_error().into_response();
        if unauthorized {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tokengate\""),
            );
        }
        response
    }
}

impl FromRequestParts<Arc<SelfService>> for Caller {
    type Rejection = SignInError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<SelfService>,
    ) -> Result<Self, SignInError> {
        service.sign_in(parts).await
    }
}

/// How a Bitbucket credential in `Authorization` signs in.
fn foreign_via(value: &HeaderValue) -> Via {
    let text = value.to_str().unwrap_or_default().trim();
    let (scheme, rest) = text.split_once([' ', '\t']).unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Via::BitbucketToken;
    }
    let password_is_token = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|d| d.split_once(':').map(|(_, p)| p.starts_with("BBDC-")))
        .unwrap_or(false);
    if password_is_token {
        Via::BitbucketToken
    } else {
        Via::Password
    }
}

/// Bitbucket's session cookies of the request, as one `Cookie` value.
fn session_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let pairs: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(name, value)| SESSION_COOKIES.contains(&name) && !value.is_empty())
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    HeaderValue::from_str(&pairs.join("; ")).ok()
}

fn digest(kind: u8, value: &HeaderValue) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([kind]);
    hasher.update(value.as_bytes());
    hasher.finalize().into()
}

impl SelfService {
    /// Signs in the request's caller, checking a session write's origin.
    pub(crate) async fn sign_in(&self, parts: &Parts) -> Result<Caller, SignInError> {
        let meta =
            parts
                .extensions
                .get::<RequestMeta>()
                .cloned()
                .ok_or(SignInError::Unavailable(
                    "The request was not routed through the proxy.",
                ))?;
        let headers = &parts.headers;
        let (user, via, token, sign_in) = match Credential::from_headers(headers) {
            Credential::Token {
                scheme,
                basic_user,
                token,
            } => {
                let record = self
                    .token_sign_in(&token, scheme, basic_user.as_deref(), meta.client_ip)
                    .await?;
                (record.user.clone(), Via::Token, Some(record), None)
            }
            Credential::Foreign { .. } => {
                let value = headers
                    .get(AUTHORIZATION)
                    .cloned()
                    .ok_or(SignInError::NotSignedIn("No credential was presented."))?;
                let via = foreign_via(&value);
                let sign_in = SignIn::Authorization(value);
                let user = self.bitbucket_sign_in(&sign_in, b'A').await?;
                (user, via, None, Some(sign_in))
            }
            Credential::Missing => match session_cookies(headers) {
                Some(cookies) => {
                    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
                    let public_url = self.config.public_url.as_deref();
                    if !safe && !session_write_allowed(parts, public_url, meta.secure) {
                        return Err(SignInError::CrossSite(
                            "A change signed in by a Bitbucket session needs the header X-Atlassian-Token: no-check and an Origin of this site.",
                        ));
                    }
                    let sign_in = SignIn::Session(cookies);
                    let user = self.bitbucket_sign_in(&sign_in, b'C').await?;
                    (user, Via::Session, None, Some(sign_in))
                }
                None => {
                    return Err(SignInError::NotSignedIn(
                        "Sign in with a tokengate token, a Bitbucket password or token, or Bitbucket's session.",
                    ));
                }
            },
        };
        let granted = self
            .directory
            .granted(&user)
            .await
            .map_err(|e| {
                tracing::warn!(target: "tokengate::selfservice", error = %e, "reading the user's Bitbucket groups failed");
                SignInError::Unavailable("Bitbucket could not be asked for the user's groups. Please try again shortly.")
            })?;
        if via == Via::Token && !granted.use_tokens {
            return Err(SignInError::NotSignedIn("No valid API token was provided."));
        }
        // Signing in with a token is a use of it, as a proxied request is.
        if let Some(record) = &token {
            self.usage.record(&record.id, Utc::now(), meta.client_ip);
        }
        // A Bitbucket token with admin permissions is made only for someone whose tokengate
        // tokens may be used: for anyone else it would be a credential nothing can use.
        if let Some(sign_in) = &sign_in
            && matches!(via, Via::Password | Via::Session)
            && granted.use_tokens
        {
            self.provision_if_needed(&user, via, sign_in, &meta).await;
        }
        let origin = Origin {
            client_ip: Some(meta.client_ip),
            method: Some(crate::audit::method_name(&parts.method)),
            path: Some(parts.uri.path().to_owned()),
            request_id: Some(meta.request_id),
            acting: Some(Acting {
                user: user.clone(),
                via,
            }),
        };
        Ok(Caller {
            user,
            via,
            token,
            granted,
            origin,
        })
    }

    async fn token_sign_in(
        &self,
        token: &str,
        scheme: Scheme,
        basic_user: Option<&str>,
        client_ip: IpAddr,
    ) -> Result<Arc<TokenRecord>, SignInError> {
        let invalid = SignInError::NotSignedIn("No valid API token was provided.");
        let record = match self.verifier.verify(token, client_ip).await {
            Verification::Verified(record) => record,
            Verification::Invalid { .. } | Verification::Withdrawn(_) => return Err(invalid),
            Verification::StoreUnavailable => {
                return Err(SignInError::Unavailable(
                    "Token verification is temporarily unavailable. Please try again shortly.",
                ));
            }
            Verification::Throttled(after) => return Err(SignInError::Throttled(after)),
        };
        let _ = scheme;
        if record.state(Utc::now()) != TokenState::Active
            || basic_user.is_some_and(|user| user != record.user)
        {
            return Err(invalid);
        }
        if !ip_allowed(&record.allowed_ips, client_ip) || !ip_allowed(&self.allowed_ips, client_ip)
        {
            return Err(SignInError::NotSignedIn(
                "This API token is not allowed from this IP address.",
            ));
        }
        Ok(record)
    }

    async fn bitbucket_sign_in(&self, sign_in: &SignIn, kind: u8) -> Result<String, SignInError> {
        let value = match sign_in {
            SignIn::Authorization(v) | SignIn::Session(v) => v,
        };
        let key = digest(kind, value);
        if let Some(user) = self.signins.get(&key).await {
            return Ok(user);
        }
        match self
            .bitbucket
            .whoami(&self.config.whoami_path, sign_in)
            .await
        {
            Ok(Some(user)) => {
                self.signins.insert(key, user.clone()).await;
                Ok(user)
            }
            Ok(None) => Err(SignInError::NotSignedIn(
                "Bitbucket did not accept the credential or session.",
            )),
            Err(e) => {
                tracing::warn!(target: "tokengate::selfservice", error = %e, "asking Bitbucket who is signed in failed");
                Err(SignInError::Unavailable(
                    "Bitbucket could not be reached to sign in. Please try again shortly.",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
