//! The level filter: `log.level`, `log.loggers` mapped to tracing targets, and quiet defaults
//! for noisy dependencies.

use std::collections::BTreeMap;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

use super::logger::LoggerNames;
use super::{LogSettings, TelemetryError};

/// Dependencies that log too much below `warn`; they stay at `warn` (or the default level if
/// that is stricter) unless `log.loggers` names them.
const NOISY: [&str; 5] = ["sqlx", "hyper", "hyper_util", "h2", "tower"];

/// Builds the filter for `settings`, validating every level and logger key; the error names
/// the key and the bad value.
///
/// # Errors
///
/// A [`TelemetryError`] naming the first bad key: a level that is not a level, a
/// `log.loggers` key that is neither a logger name nor a tracing target, two keys setting
/// one logger to different levels, or a logger display name with spaces.
///
/// Keys of `log.loggers` are the configured logger names (or the full Java names they
/// abbreviate), which map to [`super::AUTH_TARGET`] and [`super::RATE_LIMIT_TARGET`], or
/// tracing targets, which match themselves and everything below them.
pub fn build_filter(settings: &LogSettings) -> Result<EnvFilter, TelemetryError> {
    check_name("log.auth_logger", &settings.auth_logger)?;
    check_name("log.rate_limit_logger", &settings.rate_limit_logger)?;
    let default = parse_level("log.level".into(), &settings.level)?;
    let names = LoggerNames::new(settings);

    // target -> (level, the key that set it)
    let mut levels: BTreeMap<String, (LevelFilter, &str)> = BTreeMap::new();
    for (key, value) in &settings.loggers {
        let level = parse_level(format!("log.loggers.\"{key}\""), value)?;
        let targets = names
            .targets_of(key)
            .ok_or_else(|| TelemetryError::Logger {
                key: key.clone(),
                known: names.known(),
            })?;
        let targets = if targets.is_empty() {
            vec![key.as_str()]
        } else {
            targets
        };
        for target in targets {
            match levels.get(target) {
                Some(&(other_level, other)) if other_level != level => {
                    return Err(TelemetryError::Conflict {
                        key: key.clone(),
                        other: other.to_owned(),
                    });
                }
                _ => levels.insert(target.to_owned(), (level, key)),
            };
        }
    }

    let quiet = default.min(LevelFilter::WARN);
    let mut directives: Vec<(String, LevelFilter, &str)> = NOISY
        .iter()
        .filter(|target| !levels.contains_key(**target))
        .map(|target| ((*target).to_owned(), quiet, *target))
        .collect();
    directives.extend(
        levels
            .iter()
            .map(|(target, &(level, key))| (target.clone(), level, key)),
    );

    let mut filter = EnvFilter::default().add_directive(default.into());
    for (target, level, key) in directives {
        let directive: Directive =
            format!("{target}={level}")
                .parse()
                .map_err(|_| TelemetryError::Logger {
                    key: key.to_owned(),
                    known: names.known(),
                })?;
        filter = filter.add_directive(directive);
    }
    Ok(filter)
}

/// A level name, case-insensitive.
fn parse_level(key: String, value: &str) -> Result<LevelFilter, TelemetryError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "off" => Ok(LevelFilter::OFF),
        "error" => Ok(LevelFilter::ERROR),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "info" => Ok(LevelFilter::INFO),
        "debug" => Ok(LevelFilter::DEBUG),
        "trace" => Ok(LevelFilter::TRACE),
        _ => Err(TelemetryError::Level {
            key,
            value: super::Escaped(value).to_string(),
        }),
    }
}

/// A display name goes into every line: no spaces or control characters.
fn check_name(key: &'static str, value: &str) -> Result<(), TelemetryError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TelemetryError::LoggerName {
            key,
            value: super::Escaped(value).to_string(),
        });
    }
    Ok(())
}
