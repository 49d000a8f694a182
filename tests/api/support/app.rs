//! The real gateway binary as a child process, in front of an [`Upstream`] the test owns, on a
//! fresh database of either backend: [`spawn_app`] writes its config, starts
//! `tokengate serve`, learns the ports from the log file and waits for `/readyz`.
//!
//! Log lines reach the file through a non-blocking writer, so every assertion on them polls
//! ([`TestApp::wait_for_line`]); nothing here sleeps a fixed time. The log is printed only
//! when `TEST_LOG` is set.

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use secrecy::ExposeSecret as _;
use tempfile::TempDir;
use tokengate::ratelimit::RateQuota;
use tokengate::store::Store;
use tokengate::token::{NewToken, Scope, TokenId};

pub(crate) use super::binary::{
    NODE_ID, binary, rss_kib, run_binary, run_binary_with_env, test_offset,
};
mod requests;

pub(crate) use requests::{ADMIN_TOKEN, REST, Reply};

use super::binary::{start, write_config};
use super::certs::Leaf;
use super::log::LogLine;
use super::upstream::{Upstream, UpstreamOptions};
use super::{PATIENCE, eventually_explained};

/// The store a gateway runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Config overrides for [`spawn_app`].
#[derive(Debug, Clone)]
pub(crate) struct Options {
    backend: Backend,
    overrides: Vec<(String, toml::Value)>,
    upstream_url: Option<String>,
    env: Vec<(String, String)>,
    /// CA certificates (PEM) the test's client trusts.
    trust: Vec<String>,
    upstream: UpstreamOptions,
}

impl Options {
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            backend,
            overrides: Vec::new(),
            upstream_url: None,
            env: Vec::new(),
            trust: Vec::new(),
            upstream: UpstreamOptions::default(),
        }
    }

    /// Makes the test's client trust the CA certificate `pem` (for TLS listeners).
    pub(crate) fn trust(mut self, pem: &str) -> Self {
        self.trust.push(pem.to_owned());
        self
    }

    /// Makes the gateway's [`Upstream`] speak HTTPS with `leaf`.
    pub(crate) fn https_upstream(mut self, leaf: &Leaf) -> Self {
        self.upstream.tls = Some(leaf.clone());
        self
    }

    /// Makes the gateway's [`Upstream`] serve the git repositories under `root` at `/scm/…`.
    pub(crate) fn git_root(mut self, root: &std::path::Path) -> Self {
        self.upstream.git_root = Some(root.to_path_buf());
        self
    }

    /// Whether `section.tls` is set, in the file or by a `TOKENGATE_SECTION__TLS__…` variable.
    fn tls(&self, section: &str) -> bool {
        let var = format!("TOKENGATE_{}__TLS__", section.to_ascii_uppercase());
        self.overrides
            .iter()
            .any(|(key, _)| *key == format!("{section}.tls"))
            || self.env.iter().any(|(name, _)| name.starts_with(&var))
    }

    /// Sets `section.key` (or a top-level `key`) in the config file.
    pub(crate) fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.overrides.push((key.to_owned(), value.into()));
        self
    }

    /// Sets an environment variable of the gateway's process.
    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Points the gateway somewhere other than its own [`Upstream`].
    pub(crate) fn upstream_url(mut self, url: impl Into<String>) -> Self {
        self.upstream_url = Some(url.into());
        self
    }
}

/// A token to create with [`TestApp::create_token`].
#[derive(Debug, Clone)]
pub(crate) struct TokenOpts {
    pub(crate) description: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub(crate) allowed_ips: Vec<IpNet>,
    pub(crate) rate_limit: Option<RateQuota>,
}

impl Default for TokenOpts {
    fn default() -> Self {
        Self {
            description: "CI token".to_owned(),
            // Whole seconds, as the log line shows them.
            created_at: DateTime::from_timestamp(Utc::now().timestamp() - 3600, 0)
                .expect("a valid time"),
            expires_at: None,
            allowed_ips: Vec::new(),
            rate_limit: None,
        }
    }
}

/// A running gateway, its upstream and its database; the child is killed on drop.
pub(crate) struct TestApp {
    child: Option<Child>,
    dir: TempDir,
    /// The stand-in Bitbucket the gateway forwards to.
    pub(crate) upstream: Upstream,
    proxy_addr: SocketAddr,
    admin_addr: SocketAddr,
    database_url: String,
    store: Arc<dyn Store>,
    /// `http` or `https`, for each listener.
    schemes: (&'static str, &'static str),
    /// Every secret this test made; none may show up in a log or upstream.
    secrets: Mutex<Vec<String>>,
    /// Text the gateway may send to Bitbucket but must never write down (a Bitbucket password).
    unwritten: Mutex<Vec<String>>,
    /// A client with no proxy and no redirects.
    pub(crate) client: reqwest::Client,
    /// Keeps an SQLite file alive.
    _db_dir: Option<TempDir>,
}

/// A client that talks to the gateway directly, trusting the CA certificates `pems`.
pub(crate) fn client_trusting(pems: &[String]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    for pem in pems {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(pem.as_bytes()).expect("a CA certificate"),
        );
    }
    builder.build().expect("building a client")
}

/// The URL of a fresh, migrated database of `backend`, and the temp dir of an SQLite file.
pub(crate) async fn fresh_database(backend: Backend) -> (String, Option<TempDir>) {
    match backend {
        Backend::Sqlite => {
            let (url, dir) = super::fresh_sqlite_url().await;
            (url, Some(dir))
        }
        Backend::Postgres => (super::fresh_postgres_url().await, None),
    }
}

/// Starts an upstream, then the gateway in front of it on a fresh database.
pub(crate) async fn spawn_app(options: Options) -> TestApp {
    let upstream = Upstream::start_with(options.upstream.clone()).await;
    let (database_url, db_dir) = fresh_database(options.backend).await;
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let upstream_url = options
        .upstream_url
        .clone()
        .unwrap_or_else(|| upstream.url().to_owned());
    let config = write_config(dir.path(), &database_url, &upstream_url, &options.overrides);
    let child = start(
        dir.path(),
        &["serve", "--config", &config.display().to_string()],
        &options.env,
    );
    let store = tokengate::store::connect(&database_url, 2)
        .await
        .expect("opening the test's store");
    let mut app = TestApp {
        child: Some(child),
        dir,
        upstream,
        proxy_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        admin_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        database_url,
        store,
        schemes: (
            if options.tls("proxy") {
                "https"
            } else {
                "http"
            },
            if options.tls("admin") {
                "https"
            } else {
                "http"
            },
        ),
        secrets: Mutex::default(),
        unwritten: Mutex::default(),
        client: client_trusting(&options.trust),
        _db_dir: db_dir,
    };
    app.wait_until_ready().await;
    app
}

impl TestApp {
    /// Learns both addresses from the log file, then waits for `/readyz`; fails at once when
    /// the child exits.
    async fn wait_until_ready(&mut self) {
        let ready = async {
            loop {
                if self.proxy_addr.port() == 0 {
                    let log = self.raw_log();
                    let find = |what: &str| {
                        log.lines()
                            .find_map(|l| l.split_once(what)?.1.trim().parse::<SocketAddr>().ok())
                    };
                    if let (Some(proxy), Some(admin)) =
                        (find("proxy listening on "), find("admin listening on "))
                    {
                        (self.proxy_addr, self.admin_addr) = (proxy, admin);
                    }
                } else if let Ok(r) = self
                    .client
                    .get(format!("{}/readyz", self.admin_url()))
                    .send()
                    .await
                    && r.status() == 200
                {
                    return;
                }
                if let Some(status) = self
                    .child
                    .as_mut()
                    .expect("the gateway runs")
                    .try_wait()
                    .expect("polling the gateway")
                {
                    panic!(
                        "the gateway exited with {status} before it was ready\n{}",
                        self.diagnostics()
                    );
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(PATIENCE, ready).await.is_err() {
            panic!("the gateway never became ready\n{}", self.diagnostics());
        }
    }

    /// Polls `check` as [`eventually`](super::eventually) does; a failure shows the
    /// gateway's stderr and log.
    pub(crate) async fn poll<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        eventually_explained(what, async || check(), || self.diagnostics()).await
    }

    fn diagnostics(&self) -> String {
        let read = |name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- stderr\n{}--- log\n{}",
            read("stderr.txt"),
            read("tokengate.log")
        )
    }

    /// `http://127.0.0.1:PORT` of the proxy listener (`https://` with TLS).
    pub(crate) fn proxy_url(&self) -> String {
        format!("{}://{}", self.schemes.0, self.proxy_addr)
    }

    /// The proxy listener's address.
    pub(crate) fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    /// `http://127.0.0.1:PORT` of the admin listener (`https://` with TLS).
    pub(crate) fn admin_url(&self) -> String {
        format!("{}://{}", self.schemes.1, self.admin_addr)
    }

    /// Sends SIGHUP to the gateway.
    pub(crate) fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -HUP failed");
    }

    /// The gateway's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the gateway runs").id()
    }

    /// The database URL the gateway uses.
    pub(crate) fn database_url(&self) -> &str {
        &self.database_url
    }

    /// The test's own connection to the gateway's store.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The gateway's resident memory in KiB (`VmRSS`).
    pub(crate) fn rss_kib(&self) -> u64 {
        rss_kib(self.pid()).expect("reading VmRSS")
    }

    fn raw_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tokengate.log")).unwrap_or_default()
    }

    /// The log file's complete lines so far.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        let text = self.raw_log();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().map(str::to_owned).collect()
    }

    /// Waits for the first line matching `pred`.
    pub(crate) async fn wait_for_line(
        &self,
        what: &str,
        pred: impl Fn(&LogLine) -> bool,
    ) -> LogLine {
        self.poll(what, || {
            self.log_lines()
                .iter()
                .filter_map(|l| LogLine::parse(l))
                .find(|l| pred(l))
        })
        .await
    }

    /// Waits for the decision line of the request with this id (the response's `X-AREQUESTID`).
    pub(crate) async fn line_for(&self, request_id: &str) -> LogLine {
        self.wait_for_line(&format!("the line of request {request_id}"), |l| {
            l.request_id.as_deref() == Some(request_id)
        })
        .await
    }

    /// Every line of the request with this id, once `barrier_id`'s line has been written
    /// (lines are written in order, so nothing of `request_id` can still be queued).
    pub(crate) async fn lines_for_after(&self, request_id: &str, barrier_id: &str) -> Vec<LogLine> {
        self.line_for(barrier_id).await;
        self.log_lines()
            .iter()
            .filter_map(|l| LogLine::parse(l))
            .filter(|l| l.request_id.as_deref() == Some(request_id))
            .collect()
    }

    /// Sends SIGTERM to the gateway.
    pub(crate) fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the gateway to exit by itself.
    pub(crate) async fn wait_for_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the gateway runs");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the gateway") {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the gateway did not exit\n{}", self.diagnostics());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stores a token for `user` directly (not through the admin API) and remembers its secret
    /// for [`TestApp::finish`]. Returns the id and the whole token string.
    pub(crate) async fn create_token(
        &self,
        user: &str,
        scope: Scope,
        opts: TokenOpts,
    ) -> (TokenId, String) {
        self.create_token_in(&*self.store, user, scope, opts).await
    }

    /// [`TestApp::create_token`] on another `store`: for a gateway pointed at a database other
    /// than the one [`spawn_app`] made.
    pub(crate) async fn create_token_in(
        &self,
        store: &dyn Store,
        user: &str,
        scope: Scope,
        opts: TokenOpts,
    ) -> (TokenId, String) {
        let (id, secret) = insert_token(store, user, scope, opts).await;
        self.track_secret(&secret);
        (id, secret)
    }

    /// Remembers a token-like string that must never be logged or forwarded.
    pub(crate) fn track_secret(&self, secret: &str) {
        self.secrets
            .lock()
            .expect("secrets")
            .push(secret.to_owned());
    }

    /// Remembers text the gateway may send to Bitbucket (a password, a credential Bitbucket
    /// made) but must never write to its log, its output or its spill file.
    pub(crate) fn track_unwritten(&self, text: &str) {
        self.unwritten
            .lock()
            .expect("unwritten")
            .push(text.to_owned());
    }

    /// Reads `name`'s value from `/metrics`; `name` may hold labels (`x{a="b"}`).
    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.admin_url()))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("reading /metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
            .trim()
            .parse()
            .expect("a number")
    }

    /// Ends the test: SIGTERM, a clean exit (0), none of the secrets this test made in the log
    /// file, the gateway's output, or anything the upstream received, and none of the text of
    /// [`TestApp::track_unwritten`] in the log file or the gateway's output.
    pub(crate) async fn finish(mut self) {
        self.sigterm();
        let status = self.wait_for_exit().await;
        assert!(
            status.success(),
            "the gateway exited with {status}\n{}",
            self.diagnostics()
        );
        let secrets = self.secrets.lock().expect("secrets").clone();
        let read = |name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let written = [
            read("tokengate.log"),
            read("stdout.txt"),
            read("stderr.txt"),
            read("audit-spill.ndjson"),
        ];
        for text in self.unwritten.lock().expect("unwritten").iter() {
            for written in &written {
                assert!(
                    !written.contains(text.as_str()),
                    "text that must never be written reached the gateway's output"
                );
            }
        }
        let seen = self.upstream.requests();
        for secret in &secrets {
            // The secret part alone (after `tgt_{id}_`) is what must never leak.
            let tail = &secret[17..];
            for text in &written {
                assert!(
                    !text.contains(tail),
                    "a secret was written to the gateway's output"
                );
            }
            for request in &seen {
                assert!(
                    !request.target.contains(tail),
                    "a secret reached the upstream in {}",
                    request.target
                );
                for (name, value) in &request.headers {
                    let value = String::from_utf8_lossy(value.as_bytes());
                    assert!(
                        !value.contains(tail),
                        "a secret reached the upstream in {name}"
                    );
                    assert!(
                        !decoded_basic(&value).contains(tail),
                        "a secret reached the upstream in {name} (Basic)"
                    );
                }
            }
        }
    }
}

/// The decoded credentials of a `Basic` header value, or nothing.
fn decoded_basic(value: &str) -> String {
    use base64::Engine as _;
    value
        .strip_prefix("Basic ")
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!(
                "--- gateway log ({})\n{}",
                self.dir.path().display(),
                self.diagnostics()
            );
        }
    }
}

/// Stores a token for `user` in `store` directly, before any gateway runs: the caller hands its
/// secret to [`TestApp::track_secret`] once there is one. Returns the id and the whole token.
pub(crate) async fn insert_token(
    store: &dyn Store,
    user: &str,
    scope: Scope,
    opts: TokenOpts,
) -> (TokenId, String) {
    let (id, secret) = tokengate::token::generate();
    let secret = secret.expose_secret().to_owned();
    let hash = {
        let secret = secret.clone();
        tokio::task::spawn_blocking(move || tokengate::token::hash_secret(&secret))
            .await
            .expect("hashing")
    };
    let token = NewToken {
        id: id.clone(),
        user: user.to_owned(),
        description: opts.description,
        scope,
        created_at: opts.created_at,
        expires_at: opts.expires_at,
        allowed_ips: opts.allowed_ips,
        rate_limit: opts.rate_limit,
        secret_hash: hash,
    };
    store.insert_token(&token).await.expect("inserting a token");
    (id, secret)
}
