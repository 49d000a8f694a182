//! tokengate: an API-token authentication gateway for Bitbucket Data Center.
//!
//! # Layout
//!
//! - [`cli`] parses the command line; [`app`] wires the parts together and runs them.
//! - [`config`]: the TOML file and `TOKENGATE_SECTION__KEY` overrides, validated into [`config::Config`].
//! - [`token`]: the token string format, its checksum, argon2id hashing, the stored record.
//! - [`store`]: the store contract, [`store::Store`], split by user (tokens, credentials, audit),
//!   with PostgreSQL and SQLite backends.
//! - [`auth`]: credential parsing, verification with its cache, the pure decision table and
//!   the wording of its log lines.
//! - [`ratelimit`]: per-token quotas and the failure throttle, counted with governor in each
//!   process or in Redis for several replicas.
//! - [`proxy`]: the listener, request context, and streaming forwarding to Bitbucket.
//! - [`request_id`]: the request ids both listeners issue and answer as `X-AREQUESTID`.
//! - [`tls`]: certificates of both listeners (reloaded in place), handshakes, HTTP/2, and the
//!   client settings for an `https://` Bitbucket.
//! - [`telemetry`]: the Bitbucket-format log lines and the non-blocking log writer.
//! - [`audit`]: audit events, their batching writer and retention.
//! - [`admin`]: the admin REST API, health, readiness and metrics.
//! - [`selfservice`]: people's own tokens over a REST API and web pages on the proxy listener,
//!   signed in by Bitbucket; [`bitbucket`] asks Bitbucket's REST API who, which groups, and
//!   makes users' access tokens. `pages` renders the web pages over the same operations, with
//!   its stylesheet and script from `assets/`.
//! - [`lifecycle`]: creating, changing, rotating and revoking tokens, shared by the admin API,
//!   self-service and the CLI.
//! - [`notify`]: expiry notices to a webhook, sent once per token and window.
//! - [`vault`]: users' Bitbucket credentials for the upstream, sealed at rest.
//! - [`shutdown`]: the stop signal of listeners and background tasks.
//! - [`usage`]: coalesced last-used tracking; [`metrics`]: the Prometheus registry.
//! - `fuzzing`: the parsers of untrusted input as the fuzz targets in `fuzz/` run them.

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bitbucket;
pub mod cli;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod lifecycle;
pub mod metrics;
pub mod notify;
mod pages;
pub mod proxy;
pub mod ratelimit;
pub mod request_id;
pub mod selfservice;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod usage;
pub mod vault;
