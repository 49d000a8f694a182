//! Logger names, per-logger level filtering, and settings errors.

use super::*;
use crate::telemetry::logger::{Abbreviated, LoggerNames};

#[test]
fn loggers_are_named_and_abbreviated() {
    let names = LoggerNames::new(&LogSettings::default());
    assert_eq!(names.display(AUTH_TARGET), DEFAULT_AUTH_LOGGER);
    assert_eq!(names.display(RATE_LIMIT_TARGET), DEFAULT_RATE_LIMIT_LOGGER);
    assert_eq!(names.display("tokengate::proxy::forward"), "t.p.forward");
    assert_eq!(names.display("hyper_util::client::legacy"), "h.c.legacy");
    assert_eq!(names.display("sqlx"), "sqlx");
    assert_eq!(names.display("tokengate::auth::cache"), "t.a.cache");
    assert_eq!(Abbreviated("élan::x").to_string(), "é.x");

    let custom = LogSettings {
        auth_logger: "com.example.Auth".into(),
        ..LogSettings::default()
    };
    let at = local((2021, 1, 7), 8, 0, 0, 0);
    let out = capture(
        &custom,
        at,
        Some("t"),
        None,
        || tracing::info!(target: AUTH_TARGET, "hi"),
    );
    assert_eq!(
        out,
        "2021-01-07 08:00:00,000 INFO [t] com.example.Auth hi\n"
    );
}

fn with_loggers(level: &str, loggers: &[(&str, &str)]) -> LogSettings {
    LogSettings {
        level: level.into(),
        loggers: loggers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..LogSettings::default()
    }
}

/// Emits one line per interesting target and level; returns the loggers and levels written.
fn emitted(settings: &LogSettings) -> Vec<String> {
    let at = local((2021, 1, 7), 8, 0, 0, 0);
    let out = capture(settings, at, Some("t"), None, || {
        tracing::info!(target: RATE_LIMIT_TARGET, "x");
        tracing::warn!(target: RATE_LIMIT_TARGET, "x");
        tracing::info!(target: AUTH_TARGET, "x");
        tracing::debug!(target: "tokengate::proxy::forward", "x");
        tracing::debug!(target: "tokengate::store", "x");
        tracing::info!(target: "hyper::proto", "x");
        tracing::warn!(target: "sqlx::query", "x");
    });
    out.lines()
        .map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            format!("{} {}", fields[2], fields[4])
        })
        .collect()
}

#[test]
fn per_logger_levels_filter_by_display_name_or_target() {
    assert_eq!(
        emitted(&LogSettings::default()),
        [
            "INFO d.r.a.p.auth.ApiTokenRateLimiter",
            "WARN d.r.a.p.auth.ApiTokenRateLimiter",
            "INFO d.r.a.p.auth.ApiTokenAuthSharedBase",
            "WARN s.query",
        ]
    );
    let settings = with_loggers(
        "info",
        &[
            ("d.r.a.p.auth.ApiTokenRateLimiter", "warn"),
            (
                "de.resolution.apitokenauth.platform.auth.ApiTokenAuthSharedBase",
                "OFF",
            ),
            ("tokengate::proxy", "debug"),
            ("hyper", "info"),
            ("sqlx", "error"),
        ],
    );
    assert_eq!(
        emitted(&settings),
        [
            "WARN d.r.a.p.auth.ApiTokenRateLimiter",
            "DEBUG t.p.forward",
            "INFO h.proto"
        ]
    );
}

#[test]
fn a_quiet_default_still_gives_enabled_lines_their_request_fields() {
    let settings = with_loggers("warn", &[(RATE_LIMIT_TARGET, "info")]);
    assert_eq!(rate_limited_line(&settings), SAMPLE_RATE_LIMITED);
    let off = with_loggers("off", &[("d.r.a.p.auth.ApiTokenRateLimiter", "info")]);
    assert_eq!(rate_limited_line(&off), SAMPLE_RATE_LIMITED);
}

#[test]
fn bad_settings_name_the_key_and_the_value() {
    let err = build_filter(&with_loggers("info", &[("sqlx", "loud")])).unwrap_err();
    assert!(
        matches!(&err, TelemetryError::Level { key, value } if key == "log.loggers.\"sqlx\"" && value == "loud"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("log.loggers.\"sqlx\"") && text.contains("\"loud\""),
        "{text}"
    );

    let err = build_filter(&with_loggers("verbose", &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("log.level") && err.contains("verbose"),
        "{err}"
    );

    let err = build_filter(&with_loggers("info", &[("d.r.a.p.auth.Nope", "info")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("d.r.a.p.auth.Nope"), "{err}");

    let err = build_filter(&with_loggers("info", &[("tokengate proxy", "info")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokengate proxy"), "{err}");

    let conflict = with_loggers(
        "info",
        &[(AUTH_TARGET, "warn"), (DEFAULT_AUTH_LOGGER, "debug")],
    );
    assert!(matches!(
        build_filter(&conflict),
        Err(TelemetryError::Conflict { .. })
    ));
    let agreeing = with_loggers(
        "info",
        &[(AUTH_TARGET, "warn"), (DEFAULT_AUTH_LOGGER, "warn")],
    );
    assert!(build_filter(&agreeing).is_ok());

    let blank = LogSettings {
        rate_limit_logger: "a b".into(),
        ..LogSettings::default()
    };
    let err = build_filter(&blank).unwrap_err().to_string();
    assert!(
        err.contains("log.rate_limit_logger") && err.contains("a b"),
        "{err}"
    );
}
