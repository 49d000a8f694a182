//! The stand-in Bitbucket's accounts: user search, which names each user's slug, and the
//! personal HTTP access tokens a user makes for themselves (`PUT
//! /rest/access-tokens/1.0/users/{slug}`, with the XSRF header Bitbucket demands).

use std::collections::BTreeSet;

use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};

use super::{Directory, MadeToken, json, percent_decode};

impl Directory {
    /// `GET /rest/api/latest/users?filter=…`: the users whose name holds the filter, for any
    /// signed-in caller.
    pub(super) fn users(&self, caller: Option<&str>, query: &str) -> Response {
        let Some(caller) = caller else {
            return json(StatusCode::UNAUTHORIZED, None, r#"{"errors":[]}"#.into());
        };
        let filter = query
            .split('&')
            .find_map(|p| p.strip_prefix("filter="))
            .map(|f| percent_decode(f).to_lowercase())
            .unwrap_or_default();
        let known: BTreeSet<String> = self.with(|s| {
            s.passwords
                .keys()
                .chain(s.tokens.values())
                .chain(s.sessions.values())
                .chain(s.groups.keys())
                .filter(|name| name.to_lowercase().contains(&filter))
                .cloned()
                .collect()
        });
        let values: Vec<serde_json::Value> = known
            .iter()
            .map(|name| serde_json::json!({ "name": name, "slug": slug_of(name), "active": true }))
            .collect();
        let body =
            serde_json::json!({ "size": values.len(), "isLastPage": true, "values": values });
        json(StatusCode::OK, Some(caller), body.to_string())
    }

    pub(super) fn make_token(
        &self,
        method: &Method,
        caller: Option<&str>,
        slug: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        if *method != Method::PUT {
            return json(StatusCode::METHOD_NOT_ALLOWED, None, "{}".into());
        }
        let Some(caller) = caller else {
            return json(StatusCode::UNAUTHORIZED, None, r#"{"errors":[]}"#.into());
        };
        let xsrf = headers
            .get("x-atlassian-token")
            .is_some_and(|v| v == "no-check");
        if !xsrf {
            return json(
                StatusCode::FORBIDDEN,
                Some(caller),
                r#"{"errors":[{"message":"XSRF check failed"}]}"#.into(),
            );
        }
        if percent_decode(slug) != slug_of(caller) {
            return json(
                StatusCode::NOT_FOUND,
                Some(caller),
                r#"{"errors":[]}"#.into(),
            );
        }
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(body) else {
            return json(
                StatusCode::BAD_REQUEST,
                Some(caller),
                r#"{"errors":[]}"#.into(),
            );
        };
        let made = self.with(|s| {
            let n = s.made.len() + 1;
            let token = MadeToken {
                user: caller.to_owned(),
                id: format!("{n}0000000{n}"),
                secret: format!("BBDC-made{n}-{}", caller.len() * 7919 + n),
                body: body.clone(),
            };
            s.tokens.insert(token.secret.clone(), caller.to_owned());
            s.made.push(token.clone());
            token
        });
        let answer = serde_json::json!({
            "id": made.id,
            "createdDate": 1_700_000_000_000_i64,
            "name": body["name"],
            "permissions": body["permissions"],
            "user": { "name": caller, "slug": caller },
            "token": made.secret,
        });
        json(StatusCode::OK, Some(caller), answer.to_string())
    }
}

/// A user's slug as the stand-in makes it: lower case, `_` for what a URL path would escape;
/// not the name for names such as `Jane.Doe@corp.example`.
pub(crate) fn slug_of(name: &str) -> String {
    name.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '-' | '_') => c,
            _ => '_',
        })
        .collect()
}
