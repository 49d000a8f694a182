//! Self-service through the real gateway: people sign in with a tokengate token or with
//! Bitbucket (password, Bitbucket token, session cookie), as the stand-in Bitbucket answers,
//! and make and manage tokens within their rights over tokengate's API and the drop-in API of
//! the app tokengate replaces. Every case ends with [`TestApp::finish`], which also proves that
//! no token secret or Bitbucket password reached the log files.

mod api;
mod audit;
mod compat;
mod filter;
mod limits;
mod paths;
mod provisioning;
mod rights;
mod schemathesis;
mod sign_in;
mod xsrf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::eventually;
use crate::support::upstream::Seen;

/// The admin token of every gateway here (to read the audit trail).
const ADMIN_TOKEN: &str = "self-service-admin-token-0123";
const ME: &str = "/rest/tokengate/1.0/me";
const TOKENS: &str = "/rest/tokengate/1.0/tokens";
/// The drop-in API.
const COMPAT: &str = "/rest/de.resolution.apitokenauth/latest";
/// Where tokengate asks Bitbucket who a credential belongs to.
const WHOAMI: &str = "/rest/api/latest/application-properties";
/// A proxied REST path.
const REST: &str = "/rest/api/1.0/projects";

/// alice's Bitbucket password, personal access token and browser session.
const ALICE_PASSWORD: &str = "Tr0ub4dor&3-alice";
const ALICE_BB_TOKEN: &str = "BBDC-MzQ1Njc4OTAxMjM0OmFsaWNlLXBlcnNvbmFs";
const ALICE_SESSION: &str = "8F2C1A9E0B7D4C3A";
const BOB_PASSWORD: &str = "bobs-own-password-7";
const CAROL_PASSWORD: &str = "carols-password-55";

/// The options of every gateway here: the admin token set.
fn options(backend: crate::support::app::Backend) -> Options {
    Options::new(backend).set("admin.token", ADMIN_TOKEN)
}

/// A list of rights entries as a config value.
fn list(entries: &[&str]) -> toml::Value {
    toml::Value::Array(entries.iter().map(|e| toml::Value::from(*e)).collect())
}

/// Starts a gateway whose Bitbucket knows alice (password, access token, session), bob and
/// carol (passwords).
async fn start(options: Options) -> TestApp {
    let app = spawn_app(options).await;
    let bitbucket = app.upstream.bitbucket();
    bitbucket.add_user("alice", ALICE_PASSWORD);
    bitbucket.add_token("alice", ALICE_BB_TOKEN);
    bitbucket.add_session("alice", ALICE_SESSION);
    bitbucket.add_user("bob", BOB_PASSWORD);
    bitbucket.add_user("carol", CAROL_PASSWORD);
    for password in [ALICE_PASSWORD, BOB_PASSWORD, CAROL_PASSWORD] {
        app.track_unwritten(password);
    }
    app.track_unwritten(ALICE_BB_TOKEN);
    app.track_unwritten(ALICE_SESSION);
    app
}

/// A Basic `Authorization` value.
fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// How a call signs in: the headers it carries.
#[derive(Debug, Clone, Default)]
struct As(Vec<(String, String)>);

impl As {
    /// No credential at all.
    fn nobody() -> Self {
        Self::default()
    }

    fn authorization(value: impl Into<String>) -> Self {
        Self::nobody().with("authorization", value)
    }

    /// A Bitbucket password (or a tokengate token as the password) in Basic.
    fn password(user: &str, password: &str) -> Self {
        Self::authorization(basic(user, password))
    }

    /// A tokengate or Bitbucket token as Bearer.
    fn bearer(token: &str) -> Self {
        Self::authorization(format!("Bearer {token}"))
    }

    /// Bitbucket's session cookie.
    fn session(value: &str) -> Self {
        Self::nobody().with("cookie", format!("BITBUCKETSESSIONID={value}"))
    }

    /// A session write as tokengate's pages (or a careful script) send it: the XSRF header and
    /// this site's origin.
    fn session_write(app: &TestApp, value: &str) -> Self {
        Self::session(value)
            .with("x-atlassian-token", "no-check")
            .with("origin", format!("http://{}", app.proxy_addr()))
    }

    fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.push((name.to_owned(), value.into()));
        self
    }
}

/// alice, by password.
fn alice() -> As {
    As::password("alice", ALICE_PASSWORD)
}

fn bob() -> As {
    As::password("bob", BOB_PASSWORD)
}

fn carol() -> As {
    As::password("carol", CAROL_PASSWORD)
}

/// A gateway answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    /// `X-AREQUESTID`.
    id: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// Asserts the status and returns the JSON body.
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a refusal in tokengate's API error shape; returns its message.
    fn refused(&self, status: u16) -> String {
        let body = self.expect(status);
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {body}"));
        assert!(!message.is_empty());
        message.to_owned()
    }

    /// Asserts a refusal in the drop-in API's shape, `{"errorMessage":…}`; returns the message.
    fn refused_as_the_app_does(&self, status: u16) -> String {
        let body = self.expect(status);
        let message = body["errorMessage"]
            .as_str()
            .unwrap_or_else(|| panic!("no errorMessage: {body}"));
        assert!(!message.is_empty());
        message.to_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII"))
    }
}

/// Sends `method path` to the proxy listener, signed in `who`, with an optional JSON body.
async fn send(app: &TestApp, method: Method, path: &str, who: &As, body: Option<Value>) -> Answer {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.proxy_url()));
    for (name, value) in &who.0 {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("calling the gateway");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let id = headers
        .get("x-arequestid")
        .expect("every answer carries X-AREQUESTID")
        .to_str()
        .expect("ASCII")
        .to_owned();
    let body = response.text().await.expect("reading the answer");
    Answer {
        status,
        headers,
        id,
        body,
    }
}

async fn get(app: &TestApp, path: &str, who: &As) -> Answer {
    send(app, Method::GET, path, who, None).await
}

async fn post(app: &TestApp, path: &str, who: &As, body: Value) -> Answer {
    send(app, Method::POST, path, who, Some(body)).await
}

/// Creates a token over tokengate's API (201); the created record and its secret, which the
/// test then tracks.
async fn create(app: &TestApp, who: &As, body: Value) -> (Value, String) {
    let answer = post(app, TOKENS, who, body).await;
    let created = answer.expect(201);
    let secret = created["token"].as_str().expect("the secret").to_owned();
    app.track_secret(&secret);
    (created, secret)
}

/// Creates a token over the drop-in API (200); the answer, whose secret the test then tracks.
async fn create_as_the_app(app: &TestApp, who: &As, body: Value) -> Value {
    let created = post(app, &format!("{COMPAT}/user/token"), who, body)
        .await
        .expect(200);
    let secret = created["plainTextToken"].as_str().expect("plainTextToken");
    app.track_secret(secret);
    created
}

/// A proxied `GET` of [`REST`] with a tokengate token.
async fn use_token(app: &TestApp, token: &str) -> Answer {
    get(app, REST, &As::bearer(token)).await
}

/// The sign-in questions Bitbucket was asked so far.
fn whoami_requests(app: &TestApp) -> Vec<Seen> {
    app.upstream
        .requests()
        .into_iter()
        .filter(|s| s.target.starts_with(WHOAMI))
        .collect()
}

/// The audit event of `kind` that the request with this id caused, once it is stored, as the
/// admin API shows it.
async fn audit_event(app: &TestApp, request_id: &str, kind: &str) -> Value {
    eventually(
        &format!("the {kind} event of request {request_id}"),
        async || {
            let answer = app
                .client
                .get(format!(
                    "{}/admin/v1/audit?type={kind}&limit=500",
                    app.admin_url()
                ))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("GET /admin/v1/audit");
            assert_eq!(answer.status(), 200);
            let page: Value = answer.json().await.expect("JSON");
            page["events"]
                .as_array()
                .expect("events")
                .iter()
                .find(|e| e["request_id"] == request_id)
                .cloned()
        },
    )
    .await
}

/// Everything the store holds, as text: an SQLite database's files, or every row of every
/// PostgreSQL table (byte columns also in hex).
async fn database_text(app: &TestApp) -> String {
    use sqlx::{Connection as _, Row as _};
    let url = app.database_url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().expect("a path");
        let mut text = String::new();
        for suffix in ["", "-wal", "-journal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        assert!(!text.is_empty(), "the database file {path} was read");
        return text;
    }
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connecting to postgres");
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("listing tables")
    .iter()
    .map(|row| row.get(0))
    .collect();
    assert!(!tables.is_empty(), "no tables in {url}");
    let mut text = String::new();
    for table in tables {
        let sql = format!(r#"SELECT CAST(t AS text) FROM "{table}" t"#);
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await
            .expect("reading a table")
        {
            text.push_str(row.get::<&str, _>(0));
            text.push('\n');
        }
    }
    conn.close().await.ok();
    text
}

/// Asserts that `text` is nowhere in the store, in plain text or hex.
async fn assert_not_stored(app: &TestApp, text: &str) {
    let stored = database_text(app).await;
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!stored.contains(text), "found in the database");
    assert!(!stored.contains(&hex), "found in the database, in hex");
}
