//! The `[log]` section, validated: levels, format and file of the log lines.

use std::path::PathBuf;

use super::ConfigError;
use super::raw::RawLog;
use super::validate::bad;
use crate::telemetry::{LogFormat, LogSettings};

/// `[log]` as written, checked and converted; an error names the key and the value.
pub(super) fn validate(l: RawLog) -> Result<LogSettings, ConfigError> {
    let log = LogSettings {
        level: l.level,
        loggers: l.loggers,
        format: match l.format.as_str() {
            "bitbucket" => LogFormat::Bitbucket,
            "json" => LogFormat::Json,
            other => {
                return Err(bad(
                    "log.format",
                    other,
                    "expected \"bitbucket\" or \"json\"",
                ));
            }
        },
        file: l.file.filter(|f| !f.is_empty()).map(PathBuf::from),
        auth_logger: l.auth_logger,
        rate_limit_logger: l.rate_limit_logger,
    };
    crate::telemetry::build_filter(&log).map_err(|e| ConfigError::Log(e.to_string()))?;
    Ok(log)
}
