//! Bitbucket's own REST API, asked by tokengate itself: who a credential belongs to, which
//! groups a user is in, and a personal HTTP access token made for a user at their sign-in.
//! Each call carries exactly the credential it needs and nothing of the caller's request.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;

use crate::config::UpstreamConfig;
use crate::tls::UpstreamClient;

/// The header Bitbucket names the signed-in user with on every authenticated answer.
const X_AUSERNAME: HeaderName = HeaderName::from_static("x-ausername");
const X_ATLASSIAN_TOKEN: HeaderName = HeaderName::from_static("x-atlassian-token");
/// Largest answer read from Bitbucket.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Groups read in one page, and pages read at most for one user.
const GROUP_PAGE: u32 = 500;
const MAX_GROUP_PAGES: u32 = 20;

/// How a caller proved who they are to Bitbucket: sent on as it came, nothing else.
#[derive(Clone)]
pub enum SignIn {
    /// The caller's `Authorization` value (a password in Basic, or a Bitbucket token).
    Authorization(HeaderValue),
    /// Bitbucket's own session cookies of the caller, as one `Cookie` value.
    Session(HeaderValue),
}

impl SignIn {
    fn apply(&self, request: &mut Request<Full<Bytes>>) {
        let (name, value) = match self {
            Self::Authorization(value) => (AUTHORIZATION, value),
            Self::Session(value) => (COOKIE, value),
        };
        let mut value = value.clone();
        value.set_sensitive(true);
        request.headers_mut().insert(name, value);
    }
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Authorization(_) => "SignIn::Authorization([redacted])",
            Self::Session(_) => "SignIn::Session([redacted])",
        })
    }
}

/// Why Bitbucket gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum BitbucketError {
    /// Not reachable, or no answer in time.
    #[error("Bitbucket could not be reached: {0}")]
    Unreachable(String),
    /// Bitbucket answered with a status that refuses the call.
    #[error("Bitbucket answered {0}")]
    Refused(StatusCode),
    /// An answer that is not what Bitbucket's documented API returns.
    #[error("Bitbucket's answer could not be read: {0}")]
    Unexpected(String),
}

/// A personal HTTP access token Bitbucket made.
pub struct AccessToken {
    /// Bitbucket's id of the token.
    pub id: String,
    /// The secret, shown by Bitbucket this once.
    pub token: SecretString,
}

/// A client for Bitbucket's REST API at `upstream.url`.
#[derive(Clone)]
pub struct Bitbucket {
    client: UpstreamClient<Full<Bytes>>,
    scheme: Scheme,
    authority: Authority,
    timeout: Duration,
    /// `self_service.bitbucket_credential`, as an `Authorization` value.
    service: Option<HeaderValue>,
}

impl Bitbucket {
    /// A client for the configured Bitbucket (over TLS with `tls`, for an `https://` URL);
    /// `service` is the credential groups are read with.
    pub fn new(
        upstream: &UpstreamConfig,
        tls: Option<&Arc<ClientConfig>>,
        service: Option<&SecretString>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(upstream.connect_timeout));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(upstream.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let client = UpstreamClient::build(&builder, connector, tls);
        let parts = upstream.url.clone().into_parts();
        Self {
            client,
            scheme: parts.scheme.unwrap_or(Scheme::HTTP),
            authority: parts
                .authority
                .expect("validated: the upstream URL has a host"),
            timeout: upstream.connect_timeout + Duration::from_secs(10),
            service: service.and_then(service_authorization),
        }
    }

    /// Who `sign_in` belongs to: the `X-AUSERNAME` of a 2xx answer from `whoami_path`, or
    /// `None` for any other answer (not signed in). A server error or 429 is an error: Bitbucket
    /// cannot tell now (restarting, in maintenance, overloaded), which says nothing about the
    /// credential.
    pub async fn whoami(
        &self,
        whoami_path: &str,
        sign_in: &SignIn,
    ) -> Result<Option<String>, BitbucketError> {
        let mut request = self.request(Method::GET, whoami_path, Bytes::new())?;
        sign_in.apply(&mut request);
        let response = self.send(request).await?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(BitbucketError::Refused(status));
        }
        if !status.is_success() {
            return Ok(None);
        }
        let user = response
            .headers()
            .get(X_AUSERNAME)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| !u.is_empty() && *u != "anonymous")
            .map(percent_decoded);
        Ok(user)
    }

    /// The groups `user` is a member of, in lower case, read with the service credential; none
    /// for a user Bitbucket does not know.
    pub async fn groups(&self, user: &str) -> Result<HashSet<String>, BitbucketError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            values: Vec<Group>,
            #[serde(default)]
            is_last_page: bool,
            next_page_start: Option<u32>,
        }
        #[derive(Deserialize)]
        struct Group {
            name: String,
        }
        let service = self.service.clone().ok_or_else(|| {
            BitbucketError::Unexpected("no service credential to read groups with".into())
        })?;
        let mut groups = HashSet::new();
        let mut start = 0;
        for _ in 0..MAX_GROUP_PAGES {
            let path = format!(
                "/rest/api/latest/admin/users/more-members?context={}&limit={GROUP_PAGE}&start={start}",
                encode(user)
            );
            let mut request = self.request(Method::GET, &path, Bytes::new())?;
            request.headers_mut().insert(AUTHORIZATION, service.clone());
            let page: Page = match self.json(request).await {
                Ok(page) => page,
                // No such user (deleted, or a name Bitbucket never knew): a member of no group.
                Err(BitbucketError::Refused(StatusCode::NOT_FOUND)) => break,
                Err(e) => return Err(e),
            };
            groups.extend(page.values.into_iter().map(|g| g.name.to_lowercase()));
            match page.next_page_start {
                Some(next) if !page.is_last_page && next > start => start = next,
                _ => break,
            }
        }
        Ok(groups)
    }

    /// Makes a personal HTTP access token for `user`, acting as that user with `sign_in`, at
    /// the user's slug.
    pub async fn create_access_token(
        &self,
        user: &str,
        sign_in: &SignIn,
        name: &str,
        expiry_days: u32,
    ) -> Result<AccessToken, BitbucketError> {
        #[derive(Deserialize)]
        struct Created {
            id: serde_json::Value,
            token: String,
        }
        let body = serde_json::json!({
            "name": name,
            "permissions": ["PROJECT_ADMIN", "REPO_ADMIN"],
            "expiryDays": expiry_days,
        });
        let slug = self.slug_of(user, sign_in).await?;
        let path = format!("/rest/access-tokens/1.0/users/{}", encode(&slug));
        let mut request = self.request(Method::PUT, &path, Bytes::from(body.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(X_ATLASSIAN_TOKEN, HeaderValue::from_static("no-check"));
        sign_in.apply(&mut request);
        let created: Created = self.json(request).await?;
        if created.token.is_empty() {
            return Err(BitbucketError::Unexpected("the token is empty".into()));
        }
        Ok(AccessToken {
            id: match created.id {
                serde_json::Value::String(id) => id,
                other => other.to_string(),
            },
            token: SecretString::from(created.token),
        })
    }

    /// The slug Bitbucket addresses `user` by in URLs, which is not the name for names such as
    /// `Jane.Doe@corp.example`: from a user search, asked as `sign_in`.
    async fn slug_of(&self, user: &str, sign_in: &SignIn) -> Result<String, BitbucketError> {
        #[derive(Deserialize)]
        struct Page {
            values: Vec<Found>,
        }
        #[derive(Deserialize)]
        struct Found {
            name: String,
            slug: String,
        }
        let path = format!("/rest/api/latest/users?filter={}&limit=1000", encode(user));
        let mut request = self.request(Method::GET, &path, Bytes::new())?;
        sign_in.apply(&mut request);
        let page: Page = self.json(request).await?;
        page.values
            .into_iter()
            .find(|found| found.name == user)
            .map(|found| found.slug)
            .ok_or_else(|| {
                BitbucketError::Unexpected("the user search did not find the user".into())
            })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, BitbucketError> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| BitbucketError::Unexpected(format!("bad path: {e}")))?;
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        request
            .headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        Ok(request)
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, BitbucketError> {
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(BitbucketError::Unreachable(e.to_string())),
            Err(_) => Err(BitbucketError::Unreachable(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<T, BitbucketError> {
        let response = self.send(request).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(BitbucketError::Refused(status));
        }
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| BitbucketError::Unexpected(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| BitbucketError::Unexpected(e.to_string()))
    }
}

/// `user:password` becomes Basic, anything else a Bearer token.
fn service_authorization(credential: &SecretString) -> Option<HeaderValue> {
    use base64::Engine as _;
    let text = credential.expose_secret();
    let value = if text.contains(':') {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    } else {
        format!("Bearer {text}")
    };
    let mut value = HeaderValue::from_str(&value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Percent-encodes a path or query component.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `X-AUSERNAME` carries a user name URL-encoded where it is not plain ASCII.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(u8::try_from(h * 16 + l).expect("two hex digits"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_encoded() {
        assert_eq!(encode("automation-user"), "automation-user");
        assert_eq!(encode("a b/c&d"), "a%20b%2Fc%26d");
        assert_eq!(encode("jürgen"), "j%C3%BCrgen");
    }

    #[test]
    fn user_names_are_decoded() {
        assert_eq!(percent_decoded("j%C3%BCrgen"), "jürgen");
        assert_eq!(percent_decoded("plain"), "plain");
        assert_eq!(percent_decoded("bad%zz"), "bad%zz");
        assert_eq!(percent_decoded("end%4"), "end%4");
    }

    #[test]
    fn the_service_credential_picks_its_scheme() {
        let basic = service_authorization(&SecretString::from("svc:pw")).unwrap();
        assert_eq!(basic.to_str().unwrap(), "Basic c3ZjOnB3");
        let bearer = service_authorization(&SecretString::from("BBDC-abc")).unwrap();
        assert_eq!(bearer.to_str().unwrap(), "Bearer BBDC-abc");
        assert!(service_authorization(&SecretString::from("a\nb")).is_none());
    }
}
