//! What the stand-in upstream answers as Bitbucket's REST API, in Bitbucket's documented
//! shapes: who is signed in (`X-AUSERNAME` on authenticated answers; 401 for a wrong password
//! or token), a user's groups (`/rest/api/latest/admin/users/more-members`, paged, for the
//! service credential only; 404 for a user it does not know), user search (`name` and `slug`)
//! and personal HTTP access tokens (`PUT /rest/access-tokens/1.0/users/{slug}`, acting as the
//! user). A test registers users, passwords, sessions, tokens and groups on [`Directory`].

mod accounts;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode};

pub(crate) use accounts::slug_of;

/// The service credential the stand-in accepts for group lookups (Basic `svc:svc-secret`).
pub(crate) const SERVICE_CREDENTIAL: &str = "svc:svc-secret";
/// Groups listed per page, small so paging is exercised.
const GROUP_PAGE: usize = 2;

/// A personal access token the stand-in made through its access-token API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MadeToken {
    pub(crate) user: String,
    pub(crate) id: String,
    pub(crate) secret: String,
    /// The request body's fields as sent.
    pub(crate) body: serde_json::Value,
}

#[derive(Default)]
struct State {
    passwords: HashMap<String, String>,
    /// Bearer tokens (and Basic `user:token`) by secret.
    tokens: HashMap<String, String>,
    /// Session cookie values by cookie value.
    sessions: HashMap<String, String>,
    groups: BTreeMap<String, BTreeSet<String>>,
    made: Vec<MadeToken>,
    /// Tokens revoked in Bitbucket: a forwarded request carrying one is refused.
    revoked: BTreeSet<String>,
    /// When set, every Bitbucket REST call answers 503.
    down: bool,
}

/// Bitbucket's users, credentials and groups, as the test set them up.
#[derive(Default)]
pub(crate) struct Directory {
    state: Mutex<State>,
}

enum Who {
    Nobody,
    /// A credential was presented but is wrong: 401.
    Refused,
    User(String),
}

impl Directory {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("bitbucket state"))
    }

    /// Adds a user with a password.
    pub(crate) fn add_user(&self, user: &str, password: &str) {
        self.with(|s| s.passwords.insert(user.into(), password.into()));
    }

    /// Adds a Bitbucket HTTP access token of `user`.
    pub(crate) fn add_token(&self, user: &str, token: &str) {
        self.with(|s| s.tokens.insert(token.into(), user.into()));
    }

    /// Adds a signed-in browser session (`BITBUCKETSESSIONID=value`) of `user`.
    pub(crate) fn add_session(&self, user: &str, value: &str) {
        self.with(|s| s.sessions.insert(value.into(), user.into()));
    }

    /// Sets `user`'s groups.
    pub(crate) fn set_groups(&self, user: &str, groups: &[&str]) {
        self.with(|s| {
            s.groups.insert(
                user.into(),
                groups.iter().map(|g| (*g).to_owned()).collect(),
            )
        });
    }

    /// Revokes every access token of `user` (as an admin would in Bitbucket).
    pub(crate) fn revoke_tokens_of(&self, user: &str) {
        self.with(|s| {
            let gone: Vec<String> = s
                .tokens
                .iter()
                .filter(|(_, owner)| *owner == user)
                .map(|(token, _)| token.clone())
                .collect();
            for token in gone {
                s.tokens.remove(&token);
                s.revoked.insert(token);
            }
        });
    }

    /// Makes every REST call answer 503, or answer again.
    pub(crate) fn set_down(&self, down: bool) {
        self.with(|s| s.down = down);
    }

    /// The access tokens made so far.
    pub(crate) fn made_tokens(&self) -> Vec<MadeToken> {
        self.with(|s| s.made.clone())
    }

    fn who(&self, headers: &HeaderMap) -> Who {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let cookies: Vec<String> = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| {
                v.split(';')
                    .map(|p| p.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        self.with(|s| {
            if let Some(auth) = auth {
                let (scheme, rest) = auth.split_once(' ').unwrap_or((&auth, ""));
                if scheme.eq_ignore_ascii_case("bearer") {
                    return s
                        .tokens
                        .get(rest.trim())
                        .cloned()
                        .map_or(Who::Refused, Who::User);
                }
                if scheme.eq_ignore_ascii_case("basic") {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(rest.trim())
                        .ok()
                        .and_then(|d| String::from_utf8(d).ok());
                    let Some((user, secret)) = decoded.as_deref().and_then(|d| d.split_once(':'))
                    else {
                        return Who::Refused;
                    };
                    if decoded.as_deref() == Some(SERVICE_CREDENTIAL) {
                        return Who::User(user.to_owned());
                    }
                    let by_password = s.passwords.get(user).is_some_and(|p| p == secret);
                    let by_token = s.tokens.get(secret).is_some_and(|u| u == user);
                    return if by_password || by_token {
                        Who::User(user.to_owned())
                    } else {
                        Who::Refused
                    };
                }
                return Who::Refused;
            }
            cookies
                .iter()
                .filter_map(|c| c.strip_prefix("BITBUCKETSESSIONID="))
                .find_map(|v| s.sessions.get(v).cloned())
                .map_or(Who::Nobody, Who::User)
        })
    }

    /// Bitbucket's answer to a request, where the stand-in plays Bitbucket's REST API or
    /// authenticates a forwarded request with a credential; `None` for the plain upstream.
    pub(crate) fn answer(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Response> {
        let rest_call = path == "/rest/api/latest/application-properties"
            || path == "/rest/api/latest/users"
            || path.starts_with("/rest/api/latest/admin/users/more-members")
            || path.starts_with("/rest/access-tokens/1.0/users/");
        if !rest_call {
            return self.forwarded(path, headers);
        }
        if rest_call && self.with(|s| s.down) {
            return Some(json(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                r#"{"errors":[]}"#.into(),
            ));
        }
        let who = self.who(headers);
        if let Who::Refused = who {
            return Some(json(
                StatusCode::UNAUTHORIZED,
                None,
                r#"{"errors":[{"context":null,"message":"Authentication failed. Please check your credentials and try again.","exceptionName":"com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException"}]}"#.into(),
            ));
        }
        let user = match who {
            Who::User(user) => Some(user),
            Who::Nobody | Who::Refused => None,
        };
        if path == "/rest/api/latest/application-properties" {
            return Some(json(
                StatusCode::OK,
                user.as_deref(),
                r#"{"version":"8.19.0","buildNumber":"8019000","buildDate":"1700000000000","displayName":"Bitbucket"}"#.into(),
            ));
        }
        if path == "/rest/api/latest/users" {
            return Some(self.users(user.as_deref(), query));
        }
        if path.starts_with("/rest/api/latest/admin/users/more-members") {
            return Some(self.groups(user.as_deref(), query));
        }
        if let Some(slug) = path.strip_prefix("/rest/access-tokens/1.0/users/") {
            return Some(self.make_token(method, user.as_deref(), slug, headers, body));
        }
        None
    }

    /// A forwarded request: answered as the user of a Bitbucket token the stand-in knows (on
    /// a path ending in `/not-permitted`, with the 401 Bitbucket gives a signed-in user who
    /// lacks the permission), 401 for one revoked in Bitbucket, and as the plain upstream
    /// otherwise.
    fn forwarded(&self, path: &str, headers: &HeaderMap) -> Option<Response> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?
            .trim()
            .to_owned();
        self.with(|s| {
            if s.revoked.contains(&bearer) {
                return Some(json(
                    StatusCode::UNAUTHORIZED,
                    None,
                    r#"{"errors":[]}"#.into(),
                ));
            }
            let user = s.tokens.get(&bearer)?;
            Some(if path.ends_with("/not-permitted") {
                json(
                    StatusCode::UNAUTHORIZED,
                    Some(user),
                    r#"{"errors":[{"context":null,"message":"You are not permitted to access this resource","exceptionName":"com.atlassian.bitbucket.AuthorisationException"}]}"#.into(),
                )
            } else {
                json(StatusCode::OK, Some(user), r#"{"ok":true}"#.into())
            })
        })
    }

    fn groups(&self, caller: Option<&str>, query: &str) -> Response {
        let service = SERVICE_CREDENTIAL.split_once(':').expect("user:password").0;
        if caller != Some(service) {
            return json(StatusCode::UNAUTHORIZED, None, r#"{"errors":[]}"#.into());
        }
        let param = |name: &str| {
            query.split('&').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k == name).then(|| v.to_owned())
            })
        };
        let user = param("context").unwrap_or_default();
        let user = percent_decode(&user);
        let start: usize = param("start").and_then(|s| s.parse().ok()).unwrap_or(0);
        let known = self.with(|s| {
            s.passwords.contains_key(&user)
                || s.groups.contains_key(&user)
                || s.tokens.values().any(|owner| *owner == user)
                || s.sessions.values().any(|owner| *owner == user)
        });
        if !known {
            return json(
                StatusCode::NOT_FOUND,
                Some(service),
                format!(
                    r#"{{"errors":[{{"context":null,"message":"User {user} does not exist.","exceptionName":"com.atlassian.bitbucket.user.NoSuchUserException"}}]}}"#
                ),
            );
        }
        let all: Vec<String> = self.with(|s| {
            s.groups
                .get(&user)
                .map(|g| g.iter().cloned().collect())
                .unwrap_or_default()
        });
        let page: Vec<serde_json::Value> = all
            .iter()
            .skip(start)
            .take(GROUP_PAGE)
            .map(|name| serde_json::json!({ "name": name, "deletable": true }))
            .collect();
        let last = start + GROUP_PAGE >= all.len();
        let mut body = serde_json::json!({
            "size": page.len(),
            "limit": GROUP_PAGE,
            "isLastPage": last,
            "start": start,
            "values": page,
        });
        if !last {
            body["nextPageStart"] = serde_json::json!(start + GROUP_PAGE);
        }
        json(StatusCode::OK, Some(service), body.to_string())
    }
}

pub(super) fn json(status: StatusCode, user: Option<&str>, body: String) -> Response {
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(user) = user {
        response = response.header("x-ausername", user);
    }
    response.body(Body::from(body)).expect("a valid response")
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
