//! Wiring: builds the store, verifier, limiter, audit writer and both listeners from a
//! [`Config`], runs them with their background tasks, and shuts them down in order.

mod admin_server;
mod background;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::admin::{self, AdminState};
use crate::audit::{self, AuditWriter};
use crate::auth::{Verifier, VerifierSettings};
use crate::bitbucket::Bitbucket;
use crate::config::{Config, ConfigFile, Identity, LimitBackend};
use crate::lifecycle::{Actor, AuditTo, Lifecycle, LifecycleSettings};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::proxy::{Gateway, GatewayParts, Limits, Workers};
use crate::ratelimit::{RateLimits, RedisLimiter};
use crate::request_id::RequestIds;
use crate::selfservice::{Directory, Edge, Rights, SelfService, SelfServiceParts};
use crate::shutdown;
use crate::store::{
    self, AuditStore, CredentialStore, Schema, Store, StoreError, StoreRuntime, TokenStore,
};
use crate::tls::{self, Acceptor};
use crate::usage::UsageTracker;
use crate::vault::{CredentialKey, CredentialVault};

/// A gateway ready to run: store migrated, listeners bound.
pub struct App {
    config: Config,
    proxy_listener: std::net::TcpListener,
    admin_listener: TcpListener,
    /// What every proxy worker's [`Gateway`] shares.
    parts: GatewayParts,
    admin: AdminState,
    store: Arc<dyn Store>,
    audit: AuditWriter,
    limits: Arc<RateLimits>,
    /// The shared backend's probe connection, opened at start.
    probe: Option<redis::aio::MultiplexedConnection>,
    verifier: Arc<Verifier>,
    usage: Arc<UsageTracker>,
    /// The listeners' certificates and the upstream's TLS settings.
    tls: tls::Setup,
    /// Sends expiry notices, when `notify.webhook_url` is set.
    notifier: Option<Arc<Notifier>>,
}

/// A listener address another process already listens on. The command line answers it with
/// exit code 2, as a config value that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("{key} {addr}: address in use: another process already listens there")]
pub struct AddressInUse {
    /// The config key that names the address.
    pub key: &'static str,
    pub addr: SocketAddr,
}

/// The error of binding `key`'s address `addr`: [`AddressInUse`] when it is taken.
pub fn bind_error(key: &'static str, addr: SocketAddr, error: std::io::Error) -> anyhow::Error {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        AddressInUse { key, addr }.into()
    } else {
        anyhow::Error::new(error).context(format!("binding {key} {addr}"))
    }
}

/// Why the configured store cannot be used by a command that only uses it.
#[derive(Debug, thiserror::Error)]
pub enum ExistingStoreError {
    /// The SQLite file does not exist: nothing to use, and nothing is created.
    #[error(
        "{error} (database.url = {url}; {file}): create the database with `tokengate migrate`, \
         or name the config of an existing one with --config or TOKENGATE_CONFIG"
    )]
    NoDatabase {
        error: StoreError,
        /// The URL, its password redacted.
        url: String,
        file: ConfigFile,
    },
    /// The database is not at this release's schema; only `migrate` and `serve` change it.
    #[error("{0}")]
    Schema(Schema),
    /// The store cannot be reached or read.
    #[error("opening the token store (database.url): {0}")]
    Store(StoreError),
}

/// Opens the configured store for a command that only uses it (`token`, `credential`, …): an
/// SQLite file is not created, and the schema must be this release's or a newer one's
/// (migrations are applied by `tokengate migrate` and `serve` alone).
pub async fn open_existing_store(config: &Config) -> Result<Arc<dyn Store>, ExistingStoreError> {
    let url = config.database.url.expose_secret();
    let store = store::connect_existing(url, config.database.max_connections)
        .await
        .map_err(|error| match error {
            error @ StoreError::NoDatabase { .. } => ExistingStoreError::NoDatabase {
                error,
                url: crate::config::redact_url_password(url),
                file: config.file.clone(),
            },
            error => ExistingStoreError::Store(error),
        })?;
    match store.schema().await.map_err(ExistingStoreError::Store)? {
        // Migrations only add: a newer release's schema serves this one too.
        Schema::Current | Schema::Ahead { .. } => Ok(store),
        other => Err(ExistingStoreError::Schema(other)),
    }
}

/// Opens the configured store and applies its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::connect(
        config.database.url.expose_secret(),
        config.database.max_connections,
    )
    .await
    .context("opening the token store (database.url)")?;
    store.migrate().await.context("migrating the token store")?;
    Ok(store)
}

impl App {
    /// Builds everything on the control runtime (which then owns the store's connections and
    /// runs the admin listener and background tasks). `proxy_listener` is already bound; `tls`
    /// is what [`tls::Setup::load`] loaded for `config`.
    pub async fn build(
        config: Config,
        proxy_listener: std::net::TcpListener,
        tls: tls::Setup,
        log_drops: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> anyhow::Result<Self> {
        let store = open_store(&config).await?;
        let metrics = Arc::new(Metrics::new());
        let (limits, probe) = rate_limits(&config, &metrics).await?;
        for cert in tls.certs() {
            cert.report_expiry(metrics.tls_expiry(cert.listener().name()));
        }
        let upstream_tls = tls.upstream.as_ref().map(|(config, _)| Arc::clone(config));
        let verifier = Arc::new(
            Verifier::new(
                Arc::clone(&store) as Arc<dyn TokenStore>,
                VerifierSettings {
                    cache_ttl: config.auth.cache_ttl,
                    hash_concurrency: config.auth.hash_concurrency,
                    failed_attempts_per_ip: config.auth.failed_attempts_per_ip,
                },
                metrics.hash_verifications.clone(),
            )
            .with_store_runtime(StoreRuntime::current())
            .with_limits(Arc::clone(&limits)),
        );
        let (audit_sink, audit) = audit::start(
            Arc::clone(&store) as Arc<dyn AuditStore>,
            &config.audit,
            config.upstream.url.to_string(),
            Arc::clone(&metrics),
        );
        let credentials = match (&config.upstream.credential_key, config.upstream.identity) {
            (Some(key), _) => Some(Arc::new(
                CredentialVault::new(
                    Arc::clone(&store) as Arc<dyn CredentialStore>,
                    CredentialKey::from_secret(key).context("upstream.credential_key")?,
                    config.auth.cache_ttl,
                )
                .with_store_runtime(StoreRuntime::current()),
            )),
            (None, Identity::Credential) => {
                anyhow::bail!("upstream.identity = \"credential\" needs upstream.credential_key")
            }
            (None, Identity::Header) => None,
        };
        let usage = Arc::new(UsageTracker::default());
        let requests = Arc::new(RequestIds::new(config.node_id.clone()));
        let directory = Arc::new(Directory::new(
            Rights {
                use_tokens: config.self_service.use_tokens.clone(),
                create_own: config.self_service.create_own.clone(),
                manage_all: config.self_service.manage_all.clone(),
            },
            Bitbucket::new(
                &config.upstream,
                upstream_tls.as_ref(),
                config.self_service.bitbucket_credential.as_ref(),
            ),
            config.self_service.group_cache_ttl,
            tokio::runtime::Handle::current(),
        ));
        let mut parts = GatewayParts {
            ids: Arc::clone(&requests),
            verifier: Arc::clone(&verifier),
            limits: Arc::clone(&limits),
            audit: audit_sink.clone(),
            metrics: Arc::clone(&metrics),
            credentials: credentials.clone(),
            usage: Arc::clone(&usage),
            directory: Arc::clone(&directory),
            self_service: None,
            upstream_tls: upstream_tls.clone(),
        };
        let admin_listener = TcpListener::bind(config.admin.listen)
            .await
            .map_err(|e| bind_error("admin.listen", config.admin.listen, e))?;
        let lifecycle = |actor| -> anyhow::Result<Lifecycle> {
            Ok(Lifecycle::new(
                Arc::clone(&store),
                LifecycleSettings::from_config(&config).context("upstream.credential_key")?,
                actor,
                AuditTo::Sink(audit_sink.clone()),
            )
            .with_verifier(Arc::clone(&verifier))
            .with_vault(credentials.clone())
            .with_metrics(Arc::clone(&metrics)))
        };
        if config.self_service.enabled {
            let service = SelfService::new(
                &config,
                SelfServiceParts {
                    directory,
                    verifier: Arc::clone(&verifier),
                    lifecycle: Arc::new(lifecycle(Actor::SelfService)?),
                    store: Arc::clone(&store),
                    vault: credentials.clone(),
                    upstream_tls: upstream_tls.clone(),
                    usage: Arc::clone(&usage),
                },
            );
            parts.self_service = Some(Edge::new(
                Arc::new(service),
                tokio::runtime::Handle::current(),
            ));
        }
        let lifecycle = lifecycle(Actor::AdminApi)?;
        let notifier = Notifier::new(
            &config.notify,
            Arc::clone(&store) as Arc<dyn TokenStore>,
            audit_sink.clone(),
            config.node_id.clone(),
        )
        .map_err(|e| anyhow::anyhow!("notify.webhook_url: {e}"))?;
        let admin = AdminState {
            store: Arc::clone(&store),
            metrics,
            requests,
            verifier: Arc::clone(&verifier),
            admin_token: config.admin.token.clone().map(Arc::new),
            credentials,
            log_drops,
            audit: audit_sink,
            lifecycle: Arc::new(lifecycle),
        };
        Ok(Self {
            config,
            proxy_listener,
            admin_listener,
            parts,
            admin,
            store,
            audit,
            limits,
            probe,
            verifier,
            usage,
            tls,
            notifier,
        })
    }

    /// The proxy listener's address.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Starts the proxy workers (`proxy.worker_threads`, one per core by default) and runs
    /// until `shutdown` completes; then stops accepting, drains in-flight requests on both
    /// listeners (within `proxy.shutdown_grace` of `shutdown`, after which what is left is cut
    /// off), and flushes last-used times and the audit queue.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            config,
            proxy_listener,
            admin_listener,
            parts,
            admin,
            store,
            audit,
            limits,
            probe,
            verifier,
            usage,
            tls,
            notifier,
        } = self;
        let (stop_background, shutdown_background) = shutdown::signal();
        // Before the listening lines: from then on SIGHUP reloads rather than ends the process.
        let certs = tls.certs();
        let reload =
            (!certs.is_empty()).then(|| tls::reload::spawn(certs, shutdown_background.clone()));
        tracing::info!(target: "tokengate::app", "proxy listening on {}", proxy_listener.local_addr()?);
        tracing::info!(target: "tokengate::app", "admin listening on {}", admin_listener.local_addr()?);
        log_tls(&tls);
        tracing::info!(target: "tokengate::app", "forwarding to {}", config.upstream.url);
        let acceptor = |cert: &Option<Arc<tls::ServerCert>>| {
            cert.as_ref()
                .map(|c| Acceptor::new(Arc::clone(c), config.proxy.header_read_timeout))
        };
        let (proxy_tls, admin_tls) = (acceptor(&tls.proxy), acceptor(&tls.admin));

        let mut background = background::spawn(
            Arc::clone(&store) as Arc<dyn TokenStore>,
            Arc::clone(&verifier),
            admin.credentials.clone(),
            (limits, probe),
            Arc::clone(&usage),
            Arc::clone(&admin.metrics),
            shutdown_background.clone(),
        )
        .await;
        if let Some(notifier) = &notifier {
            background.extend(notifier.spawn(config.notify.check_interval, &shutdown_background));
        }

        // Whoever made `log_drops` may keep the log writer alive in it (as `tokengate serve`
        // does): held until the end, so the lines written after the admin server ends are kept.
        let log_writer = Arc::clone(&admin.log_drops);
        let mut admin_stop = shutdown_background;
        let mut admin_task = tokio::spawn(admin_server::serve(
            admin_listener,
            admin::router(admin),
            config.proxy.header_read_timeout,
            admin_tls,
            async move { admin_stop.stopped().await },
        ));

        let limits = Limits {
            header_read_timeout: config.proxy.header_read_timeout,
            max_header_bytes: config.proxy.max_header_bytes,
            shutdown_grace: config.proxy.shutdown_grace,
        };
        let threads = match config.proxy.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let (stop_proxy, proxy_shutdown) = shutdown::signal();
        let mut workers = Workers::start(
            proxy_listener,
            threads,
            || Gateway::new(&config, parts.clone()),
            limits,
            proxy_tls.as_ref(),
            &proxy_shutdown,
        )
        .context("starting the proxy workers")?;
        drop(parts);
        shutdown.await;
        let grace = config.proxy.shutdown_grace;
        let drained_by = Instant::now() + grace;
        stop_proxy.stop();
        workers.closed().await;
        tracing::info!(target: "tokengate::proxy", "stopped accepting; draining in-flight requests");
        workers.stopped().await;
        stop_background.stop();
        // Whatever holds the admin listener or a background task past the grace period, the
        // last-used times and the audit queue below are still written.
        if tokio::time::timeout_at(drained_by, &mut admin_task)
            .await
            .is_err()
        {
            tracing::warn!(target: "tokengate::admin", ?grace, "admin connections still open after the grace period; closing them");
            admin_task.abort();
        }
        for mut task in background.into_iter().chain(reload) {
            if tokio::time::timeout_at(drained_by, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        usage
            .flush(&(store as Arc<dyn TokenStore>), Duration::ZERO)
            .await;
        audit.shutdown().await;
        tracing::info!(target: "tokengate::app", "stopped");
        drop(log_writer);
        Ok(())
    }
}

/// The limits on the configured backend, and for Redis the connection of the first probe
/// (made here, so the start-up log says whether Redis answers).
async fn rate_limits(
    config: &Config,
    metrics: &Metrics,
) -> anyhow::Result<(Arc<RateLimits>, Option<redis::aio::MultiplexedConnection>)> {
    let LimitBackend::Redis(redis) = &config.rate_limit.backend else {
        return Ok((Arc::new(RateLimits::local()), None));
    };
    // The client's message may quote the URL with its password: not shown.
    let limiter =
        RedisLimiter::new(&redis.url, &redis.key_prefix, redis.timeout).map_err(|_| {
            anyhow::anyhow!(
                "rate_limit.redis_url {}: the Redis client cannot use this URL",
                redis.shown_url
            )
        })?;
    let limits = RateLimits::shared(
        limiter,
        redis.shown_url.clone(),
        metrics.rate_limit_backend_up.clone(),
    );
    let mut probe = None;
    limits.probe(&mut probe).await;
    if limits.backend_up() {
        tracing::info!(target: "tokengate::app", "rate limits and failed attempts are counted in Redis at {} (keys {}*, timeout {:?})", redis.shown_url, redis.key_prefix, redis.timeout);
    }
    Ok((Arc::new(limits), probe))
}

/// What each TLS listener serves, and what verifies an `https://` Bitbucket.
fn log_tls(tls: &tls::Setup) {
    for cert in tls.certs() {
        let served = cert.served();
        tracing::info!(target: "tokengate::tls", "{} serves TLS 1.2 and 1.3 (HTTP/2 and HTTP/1.1) with the certificate of {}, serial {} (expires {})", cert.listener().name(), cert.files().cert.display(), served.serial, served.not_after);
        if served.not_after <= chrono::Utc::now() {
            tracing::warn!(target: "tokengate::tls", "the certificate of {} ({}) expired on {}: clients will refuse it until it is renewed", cert.files().cert.display(), cert.listener().cert_key(), served.not_after);
        }
    }
    if let Some((_, roots)) = &tls.upstream {
        tracing::info!(target: "tokengate::tls", "verifying Bitbucket's certificate against {} system CA certificates and {} of upstream.ca_file", roots.system, roots.ca_file);
    }
}
