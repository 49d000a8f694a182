//! The self-service web pages at `self_service.path`: **My API tokens** for everyone signed in,
//! and the **Token manager** and **Audit** pages for `manage_all`. Server-rendered HTML over
//! the same operations and sign-in as the REST API ([`SelfService`], [`Caller`]); the only
//! assets are one stylesheet and one script served from here, under a strict
//! `Content-Security-Policy`.
//!
//! Forms post `atl_token=no-check`, the form's spelling of Bitbucket's `X-Atlassian-Token`
//! header, and a write signed in by a session passes the same origin rule as the API's. A
//! token's secret is only ever in the body of the answer to its create request.

mod assets;
mod audit;
mod form;
mod layout;
mod manage;
mod mine;
mod rotate;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::admin::error::ApiError;
use crate::selfservice::{Caller, RequestMeta, SelfService, SignInError, session_write_allowed};

/// Every page answer's policy: nothing from another origin, no inline script or style, no
/// framing, forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages' routes under `base` (`self_service.path`, ending in `/`).
pub(crate) fn routes(base: &str) -> Router<Arc<SelfService>> {
    let bare = base.trim_end_matches('/').to_owned();
    let home = base.to_owned();
    Router::new()
        .route(base, get(mine::show).post(mine::create))
        .route(&format!("{base}revoke"), post(mine::revoke))
        .route(&format!("{base}rotate"), post(rotate::rotate))
        .route(
            &format!("{base}manage"),
            get(manage::show).post(manage::create),
        )
        .route(&format!("{base}manage/revoke"), post(manage::revoke))
        .route(&format!("{base}manage/rotate"), post(rotate::rotate_any))
        .route(&format!("{base}audit"), get(audit::show))
        .route(&format!("{base}audit/export.csv"), get(audit::export))
        .route(&format!("{base}assets/{{file}}"), get(assets::serve))
        .route(
            &bare,
            get(move || async move { Redirect::permanent(&home) }),
        )
        .layer(middleware::from_fn(form::mark_no_check))
        .layer(middleware::from_fn(secure_headers))
}

/// The answer to a path under the pages that names no page.
pub(crate) fn not_found(base: &str) -> Response {
    let page = layout::problem(
        base,
        None,
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.",
    );
    with_secure_headers(page)
}

/// Sets the security headers on every page answer, and `no-store` where the handler chose no
/// caching of its own (every page may show tokens, or a secret).
async fn secure_headers(request: Request, next: Next) -> Response {
    with_secure_headers(next.run(request).await)
}

fn with_secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A signed-in caller of a page. Sign-in is [`Caller`]'s; a refusal becomes what a browser
/// needs: Bitbucket's login page for someone not signed in, an HTML page otherwise.
///
/// Every form post passes the session write rule, however its sender signed in: a browser
/// also sends a remembered Basic password along with a form from another site.
pub(crate) struct Signed(pub(crate) Caller);

impl FromRequestParts<Arc<SelfService>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<SelfService>,
    ) -> Result<Self, Response> {
        let base = service.pages_path();
        let caller = match Caller::from_request_parts(parts, service).await {
            Ok(caller) => caller,
            Err(refused) => return Err(refusal(&refused, parts, base)),
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        let secure = parts
            .extensions
            .get::<RequestMeta>()
            .is_some_and(|meta| meta.secure);
        let public_url = service.config.public_url.as_deref();
        if !safe && !session_write_allowed(parts, public_url, secure) {
            return Err(refusal(&SignInError::CrossSite(""), parts, base));
        }
        Ok(Self(caller))
    }
}

fn refusal(refused: &SignInError, parts: &Parts, base: &str) -> Response {
    let (status, title, text) = match refused {
        SignInError::NotSignedIn(_) => return to_login(parts, base),
        SignInError::CrossSite(_) => (
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form was sent from another site, or without its security field, so nothing \
             was changed. Open the page again and use its form.",
        ),
        SignInError::Unavailable(message) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again shortly",
            *message,
        ),
        SignInError::Throttled(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many failed sign-ins came from your address. Please try again in a minute.",
        ),
    };
    layout::problem(base, None, status, title, text)
}

/// Bitbucket's login page, coming back to this page afterwards. A refused form post comes back
/// to the page the form is on.
fn to_login(parts: &Parts, base: &str) -> Response {
    let path = parts.uri.path();
    let back = if parts.method == Method::GET {
        parts
            .uri
            .path_and_query()
            .map_or(path, |pq| pq.as_str())
            .to_owned()
    } else {
        page_of(path, base)
    };
    let next = serde_urlencoded::to_string([("next", back)]).unwrap_or_default();
    Redirect::to(&format!("/login?{next}")).into_response()
}

/// The page a form action belongs to: `…/manage/revoke` → `…/manage`, `…/revoke` → `…/`.
fn page_of(path: &str, base: &str) -> String {
    let page = path.strip_suffix("revoke").unwrap_or(path);
    if page.len() > base.len() {
        page.trim_end_matches('/').to_owned()
    } else {
        base.to_owned()
    }
}

/// The page for an operation's refusal or failure; its text is the operation's own.
fn failed(base: &str, caller: &Caller, e: &ApiError) -> Response {
    let title = match e.status() {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::SERVICE_UNAVAILABLE => "Please try again shortly",
        s if s.is_client_error() => "Request refused",
        _ => "Something went wrong",
    };
    layout::problem(base, Some(caller), e.status(), title, e.message())
}

/// A [`Signed`] caller with the token manager right (`self_service.manage_all`); anyone else
/// gets the manager pages' 403 page.
pub(crate) struct Manager(pub(crate) Caller);

impl FromRequestParts<Arc<SelfService>> for Manager {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<SelfService>,
    ) -> Result<Self, Response> {
        let Signed(caller) = Signed::from_request_parts(parts, service).await?;
        if !caller.granted.manage_all {
            return Err(not_a_manager(service.pages_path(), &caller));
        }
        Ok(Self(caller))
    }
}

/// The answer to someone without the token manager right, on its pages.
fn not_a_manager(base: &str, caller: &Caller) -> Response {
    layout::problem(
        base,
        Some(caller),
        StatusCode::FORBIDDEN,
        "Not allowed",
        "This page is for token managers. Your Bitbucket administrator decides who they are.",
    )
}

/// Parses a query string or a form body into `T`.
fn parse<T: serde::de::DeserializeOwned>(text: &[u8]) -> Result<T, serde_urlencoded::de::Error> {
    serde_urlencoded::from_bytes(text)
}

/// The answer to a query or form that cannot be read: the client's fault.
fn unreadable(base: &str, e: &serde_urlencoded::de::Error) -> Response {
    layout::problem(
        base,
        None,
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!("The request could not be read: {e}."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_action_belongs_to_its_page() {
        assert_eq!(page_of("/tokengate/revoke", "/tokengate/"), "/tokengate/");
        assert_eq!(page_of("/tokengate/", "/tokengate/"), "/tokengate/");
        assert_eq!(
            page_of("/tokengate/manage/revoke", "/tokengate/"),
            "/tokengate/manage"
        );
        assert_eq!(
            page_of("/tokengate/manage", "/tokengate/"),
            "/tokengate/manage"
        );
    }

    #[test]
    fn the_policy_allows_nothing_from_elsewhere() {
        for directive in CSP.split(';').map(str::trim) {
            let sources = directive.split_whitespace().skip(1);
            for source in sources {
                assert!(
                    ["'self'", "'none'"].contains(&source),
                    "{directive} allows {source}"
                );
            }
        }
    }
}
