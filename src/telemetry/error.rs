//! What can go wrong setting up logging; each error names the `[log]` key and the bad value.

use std::io;
use std::path::PathBuf;

use tracing_subscriber::util::TryInitError;

/// Why the log settings were refused or the subscriber could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A level that is not `off`, `error`, `warn`, `info`, `debug` or `trace`.
    #[error(
        "{key} = \"{value}\" is not a log level: expected off, error, warn, info, debug or trace"
    )]
    Level {
        /// The key, e.g. `log.level` or `log.loggers."sqlx"`.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A `log.loggers` key that is neither a configured logger name nor a tracing target.
    #[error(
        "log.loggers.\"{key}\" is not a logger: expected a tracing target such as \"tokengate::proxy\" or \"sqlx\", or a configured logger name ({known})"
    )]
    Logger {
        /// The key as written.
        key: String,
        /// The configured display names, for the message.
        known: String,
    },
    /// Two `log.loggers` keys name the same logger with different levels.
    #[error(
        "log.loggers.\"{key}\" and log.loggers.\"{other}\" name the same logger with different levels"
    )]
    Conflict {
        /// One key.
        key: String,
        /// The other key.
        other: String,
    },
    /// A logger display name that is empty or contains whitespace or control characters.
    #[error(
        "{key} = \"{value}\" is not a logger name: it must be non-empty, without spaces or control characters"
    )]
    LoggerName {
        /// `log.auth_logger` or `log.rate_limit_logger`.
        key: &'static str,
        /// The value, escaped.
        value: String,
    },
    /// The log file or its directory could not be opened or created. The message holds the
    /// operating system's reason, so it is not also a `source()` (which would print it twice).
    #[error("log.file = \"{}\" cannot be opened for appending: {cause}", path.display())]
    File {
        /// The configured path.
        path: PathBuf,
        /// The operating system's reason.
        cause: io::Error,
    },
    /// A global subscriber was already installed.
    #[error("a global log subscriber is already installed")]
    AlreadyInstalled(#[source] TryInitError),
}
