//! Telemetry: every log line in Bitbucket's layout (or as JSON), written off the request path.
//!
//! One `tracing` subscriber: an [`EnvFilter`] built from [`LogSettings`] and one event formatter
//! ([`BitbucketFormat`] or [`JsonFormat`]) writing through a lossy non-blocking writer whose
//! dropped lines are counted.
//!
//! # Request context
//!
//! A line logged while a request is handled carries the request's id, session, addresses and
//! request line. The proxy builds a [`RequestContext`] for each request and runs the request's
//! future with [`in_request`]; both formatters read the context of the future being polled, so
//! every line inside it, at any level and from any future it awaits (the verifier, the
//! forwarder), carries the fields, and no line outside it does. The context lives in a
//! task-local rather than a `tracing` span: it costs no span bookkeeping per request or poll,
//! and the request line is formatted only when a line is written. Work spawned onto another
//! task or thread is outside the request. [`in_request_sync`] does the same for synchronous
//! code.

mod clock;
mod context;
mod direct;
mod error;
mod escape;
mod fields;
mod filter;
mod format;
mod json;
mod logger;
mod stamp;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use clock::{Clock, FixedClock, SystemClock, local_at, local_now};
pub use context::{RequestContext, RequestLine, in_request, in_request_sync};
pub use direct::{Message, info_line};
pub use error::TelemetryError;
pub use escape::{CLIPPED, Escaped, MAX_FIELD_BYTES, clip, write_escaped};
pub use filter::build_filter;
pub use format::BitbucketFormat;
pub use json::JsonFormat;
pub use writer::{LogGuard, check_log_file, dropped_lines};

/// Target of the decision lines, shown as [`LogSettings::auth_logger`].
pub const AUTH_TARGET: &str = "tokengate::auth";
/// Target of the rate-limit lines, shown as [`LogSettings::rate_limit_logger`].
pub const RATE_LIMIT_TARGET: &str = "tokengate::ratelimit";

/// Default display name of [`AUTH_TARGET`], as Bitbucket's API-token app logs it.
pub const DEFAULT_AUTH_LOGGER: &str = "d.r.a.p.auth.ApiTokenAuthSharedBase";
/// Default display name of [`RATE_LIMIT_TARGET`].
pub const DEFAULT_RATE_LIMIT_LOGGER: &str = "d.r.a.p.auth.ApiTokenRateLimiter";

/// How each line is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Bitbucket's own layout, byte for byte (see [`BitbucketFormat`]).
    #[default]
    Bitbucket,
    /// One JSON object per line (see [`JsonFormat`]).
    Json,
}

/// The validated `[log]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Default level: `off`, `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Per-logger levels. Keys are display names (the two configured logger names, or their
    /// full Java names such as `de.resolution.apitokenauth.platform.auth.ApiTokenRateLimiter`)
    /// or tracing targets (`tokengate::proxy`, `sqlx`).
    pub loggers: BTreeMap<String, String>,
    /// Line layout.
    pub format: LogFormat,
    /// `None` writes to stdout; `Some` appends to this file, creating its parent directories.
    pub file: Option<PathBuf>,
    /// Display name of the decision lines' logger.
    pub auth_logger: String,
    /// Display name of the rate-limit lines' logger.
    pub rate_limit_logger: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            loggers: BTreeMap::new(),
            format: LogFormat::Bitbucket,
            file: None,
            auth_logger: DEFAULT_AUTH_LOGGER.into(),
            rate_limit_logger: DEFAULT_RATE_LIMIT_LOGGER.into(),
        }
    }
}

/// Installs the global subscriber (and a `log` bridge, so `log` records become lines too),
/// writing to [`LogSettings::file`] or stdout.
///
/// The returned guard must live until exit: dropping it flushes the lines still queued.
/// Lines the writer had to drop are counted in [`dropped_lines`].
///
/// # Errors
///
/// Invalid settings (see [`build_filter`]), a log file that cannot be opened, or a global
/// subscriber that is already installed.
pub fn init(settings: &LogSettings) -> Result<LogGuard, TelemetryError> {
    let filter = build_filter(settings)?;
    let (writer, guard) = writer::open(settings.file.as_deref())?;
    let direct = writer.clone();
    build_subscriber(settings, filter, SystemClock, writer)
        .try_init()
        .map_err(TelemetryError::AlreadyInstalled)?;
    if settings.format == LogFormat::Bitbucket {
        direct::install(direct, &logger::LoggerNames::new(settings));
    }
    guard.publish_counter();
    Ok(guard)
}

/// The subscriber [`init`] installs, writing to any `writer` with the given clock; for tests
/// (an in-memory buffer and a [`FixedClock`]) and for callers that install it themselves.
pub fn build_subscriber<W>(
    settings: &LogSettings,
    filter: EnvFilter,
    clock: impl Clock,
    writer: W,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let names = logger::LoggerNames::new(settings);
    let base = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .fmt_fields(format::NoSpanFields)
        .with_writer(writer);
    let lines = match settings.format {
        LogFormat::Bitbucket => base
            .event_format(BitbucketFormat::new(names).with_clock(clock))
            .boxed(),
        LogFormat::Json => base
            .event_format(JsonFormat::new(names).with_clock(clock))
            .boxed(),
    };
    Registry::default().with(filter).with(lines)
}
