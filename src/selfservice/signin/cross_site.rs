//! Which changes a Bitbucket session may make: a browser sends the session cookie with another
//! site's requests too, so a change signed in by it must carry the no-check marker and come
//! from this site's origin.

use axum::http::request::Parts;
use http::HeaderMap;
use http::header::{HOST, ORIGIN};

/// Set on a request whose form carried the pages' no-check field (`atl_token=no-check`): the
/// form's equivalent of `X-Atlassian-Token: no-check`, which a plain HTML form cannot send.
/// Only the pages' own middleware sets it, after reading the form; a client cannot.
#[derive(Debug, Clone, Copy)]
pub struct FormNoCheck;

/// Whether a change signed in by a Bitbucket session may go ahead, for the REST API and the
/// pages alike: it carries the no-check marker (`X-Atlassian-Token: no-check`, or the pages'
/// form field) and an `Origin` of this site.
pub(crate) fn session_write_allowed(parts: &Parts, public_url: Option<&str>, secure: bool) -> bool {
    let marked = no_check(&parts.headers) || parts.extensions.get::<FormNoCheck>().is_some();
    marked && same_origin(&parts.headers, public_url, secure)
}

/// Whether the request's `Origin` is this site: `public_url` where configured, else the
/// scheme and `Host` the request came with. A missing `Origin` is not.
pub(super) fn same_origin(headers: &HeaderMap, public_url: Option<&str>, secure: bool) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin = origin.trim().to_ascii_lowercase();
    match public_url {
        Some(public) => origin == public,
        None => headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|host| {
                let scheme = if secure { "https" } else { "http" };
                origin == format!("{scheme}://{}", host.trim().to_ascii_lowercase())
            }),
    }
}

fn no_check(headers: &HeaderMap) -> bool {
    headers
        .get("x-atlassian-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("no-check"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selfservice::signin::tests::headers;

    #[test]
    fn session_writes_must_come_from_this_site() {
        let from = |origin: &str, host: &str| headers(&[("origin", origin), ("host", host)]);
        assert!(same_origin(
            &from("http://bb.example:8080", "bb.example:8080"),
            None,
            false
        ));
        assert!(!same_origin(
            &from("https://bb.example:8080", "bb.example:8080"),
            None,
            false
        ));
        assert!(!same_origin(
            &from("http://evil.example", "bb.example"),
            None,
            false
        ));
        assert!(same_origin(
            &from("https://bb.example", "10.0.0.1:8080"),
            Some("https://bb.example"),
            false
        ));
        assert!(
            !same_origin(&headers(&[("host", "bb.example")]), None, false),
            "a missing Origin"
        );
    }

    #[test]
    fn a_session_write_needs_the_no_check_marker_and_this_site_s_origin() {
        let parts = |pairs: &[(&str, &str)], form_marked: bool| {
            let mut request = http::Request::post("/tokengate/").body(()).unwrap();
            *request.headers_mut() = headers(pairs);
            let (mut parts, ()) = request.into_parts();
            if form_marked {
                parts.extensions.insert(FormNoCheck);
            }
            parts
        };
        let allowed = |pairs: &[(&str, &str)], form_marked: bool| {
            session_write_allowed(&parts(pairs, form_marked), None, false)
        };
        let site = [("origin", "http://bb.example"), ("host", "bb.example")];
        let header = [site[0], site[1], ("x-atlassian-token", "no-check")];
        let elsewhere = [("origin", "http://evil.example"), ("host", "bb.example")];
        assert!(!allowed(&site, false), "no marker");
        assert!(allowed(&site, true), "the form's marker");
        assert!(allowed(&header, false), "the header");
        assert!(!allowed(&elsewhere, true), "another site");
        assert!(!allowed(&[("host", "bb.example")], true), "no Origin");
    }
}
