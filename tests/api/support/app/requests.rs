//! Requests to a running gateway, as methods of [`TestApp`]: through the proxy listener (the
//! answer with what the upstream saw of it), and admin API calls (the answer as JSON).

use http::{Method, StatusCode};
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::TestApp;
use crate::support::upstream::Seen;

/// A REST path under the default protected paths.
pub(crate) const REST: &str = "/rest/api/1.0/projects";

/// The admin token gateways are configured with where a test calls the admin API.
pub(crate) const ADMIN_TOKEN: &str = "admin-token-for-the-tests-0123";

/// A gateway answer and what the upstream received for that request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: HeaderMap,
    /// `X-AREQUESTID`.
    pub(crate) id: String,
    pub(crate) body: String,
    /// The upstream's record of this request, if it was forwarded.
    pub(crate) seen: Option<Seen>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// Forwarded as `user`: 200, no `Authorization`, the identity header set once.
    pub(crate) fn assert_forwarded_as(&self, user: &str) {
        assert_eq!(self.status, 200, "{self:?}");
        let seen = self.seen.as_ref().expect("forwarded");
        assert_eq!(
            seen.header_values("authorization"),
            Vec::<String>::new(),
            "a token went upstream"
        );
        assert_eq!(seen.header_values("x-forwarded-user"), [user.to_owned()]);
    }

    /// Forwarded untouched: 200, the same `Authorization` (if any), no identity header.
    pub(crate) fn assert_forwarded_untouched(&self, authorization: Option<&str>) {
        assert_eq!(self.status, 200, "{self:?}");
        let seen = self.seen.as_ref().expect("forwarded");
        assert_eq!(seen.header("authorization").as_deref(), authorization);
        assert_eq!(seen.header_values("x-forwarded-user"), Vec::<String>::new());
    }

    /// Refused with `status` in Bitbucket's error shape; the upstream saw nothing.
    pub(crate) fn assert_refused(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.seen.is_none(),
            "a refused request reached the upstream"
        );
        let value: Value = serde_json::from_str(&self.body).expect("a JSON error body");
        assert!(
            value["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert_eq!(value["errors"][0]["context"], Value::Null);
        assert_eq!(value["errors"][0]["exceptionName"], Value::Null);
    }
}

/// An admin API answer: status, `WWW-Authenticate`, and the body as JSON (`null` when empty).
#[derive(Debug)]
pub(crate) struct AdminAnswer {
    pub(crate) status: StatusCode,
    pub(crate) www_authenticate: Option<String>,
    /// `X-AREQUESTID`.
    pub(crate) request_id: Option<String>,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl AdminAnswer {
    /// Asserts an error answer: this status and code, and a message that names `field`.
    #[track_caller]
    pub(crate) fn refused(&self, status: u16, code: &str, field: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.body["error"]["code"], code, "{self:?}");
        let message = self.body["error"]["message"]
            .as_str()
            .expect("an error message");
        assert!(
            message.contains(field),
            "the message does not name {field}: {message}"
        );
    }
}

impl TestApp {
    /// Sends `method target` to the proxy listener with an optional `Authorization` value and
    /// extra headers.
    pub(crate) async fn request(
        &self,
        method: &str,
        target: &str,
        authorization: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self
            .client
            .request(method, format!("{}{target}", self.proxy_url()));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .expect("sending a request to the gateway");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let id = headers
            .get("x-arequestid")
            .expect("every response carries X-AREQUESTID")
            .to_str()
            .expect("ASCII")
            .to_owned();
        let body = response.text().await.expect("reading the body");
        let seen = self.upstream.request_with_id(&id);
        Reply {
            status,
            headers,
            id,
            body,
            seen,
        }
    }

    /// `GET` on [`REST`] with this `Authorization` value.
    pub(crate) async fn get_rest(&self, authorization: &str) -> Reply {
        self.request("GET", REST, Some(authorization), &[]).await
    }

    /// The status of a `GET` on [`REST`] with `token` as a Bearer token.
    pub(crate) async fn use_token(&self, token: &str) -> StatusCode {
        self.client
            .get(format!("{}{REST}", self.proxy_url()))
            .bearer_auth(token)
            .send()
            .await
            .expect("a proxied request")
            .status()
    }

    /// Sends an admin call with `token` (or none) and a raw body sent as JSON.
    pub(crate) async fn admin_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> AdminAnswer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.admin_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.expect("an admin call");
        let status = response.status();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let request_id = response
            .headers()
            .get("x-arequestid")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.expect("reading the answer");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
        };
        AdminAnswer {
            status,
            www_authenticate,
            request_id,
            body,
            text,
        }
    }

    /// Sends an admin call with [`ADMIN_TOKEN`].
    pub(crate) async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> AdminAnswer {
        let body = body.map(Value::to_string);
        self.admin_as(Some(ADMIN_TOKEN), method, path, body.as_deref())
            .await
    }

    /// Sends an admin call with [`ADMIN_TOKEN`] and `body` as JSON, for an answer that need not
    /// be JSON (an export): its status, text and content type.
    pub(crate) async fn admin_text(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String, String) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.admin_url()))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("an admin call");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (
            status,
            response.text().await.expect("reading the answer"),
            content_type,
        )
    }

    /// Creates a token through the admin API, remembers its secret, and returns the answer's
    /// body.
    pub(crate) async fn admin_create(&self, body: Value) -> Value {
        let answer = self
            .admin(Method::POST, "/admin/v1/tokens", Some(&body))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        self.track_secret(answer.body["token"].as_str().expect("the secret"));
        answer.body
    }
}
