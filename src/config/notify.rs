//! The `[notify]` section: telling people, through a webhook, that their tokens are about to
//! expire. Warning windows are days long, so they have a bound of their own instead of the
//! one-day bound of the timeouts.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::validate::{bad, duration, secret};
use super::{ConfigError, parse_duration};

/// `[notify]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotify {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    pub expiry_warnings: Vec<String>,
    pub check_interval: String,
}

impl Default for RawNotify {
    fn default() -> Self {
        Self {
            webhook_url: None,
            expiry_warnings: vec!["7d".into(), "1d".into()],
            check_interval: "1h".into(),
        }
    }
}

/// `[notify]`, validated.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Where expiry notices are POSTed (`http://` or `https://`); without it none are sent.
    /// A secret: chat webhooks carry their credential in the URL.
    pub webhook_url: Option<SecretString>,
    /// How long before its expiry a token is warned of, once per window; shortest first.
    pub expiry_warnings: Vec<Duration>,
    /// How often tokens are looked at.
    pub check_interval: Duration,
}

/// The longest warning window: a year.
const MAX_WARNING: Duration = Duration::from_secs(365 * 86_400);
/// The shortest warning window.
const MIN_WARNING: Duration = Duration::from_secs(60);
/// The most warning windows.
const MAX_WARNINGS: usize = 16;

pub(super) fn validate(raw: RawNotify) -> Result<NotifyConfig, ConfigError> {
    let webhook_url = secret(raw.webhook_url);
    if let Some(url) = &webhook_url {
        check_url(url)?;
    }
    if raw.expiry_warnings.len() > MAX_WARNINGS {
        return Err(bad(
            "notify.expiry_warnings",
            raw.expiry_warnings.join(", "),
            format!("at most {MAX_WARNINGS} windows"),
        ));
    }
    let mut warnings = Vec::with_capacity(raw.expiry_warnings.len());
    for text in &raw.expiry_warnings {
        let key = "notify.expiry_warnings";
        let d = parse_duration(text)
            .ok_or_else(|| bad(key, text, "expected a duration such as 7d, 36h or 30m"))?;
        if !(MIN_WARNING..=MAX_WARNING).contains(&d) {
            return Err(bad(key, text, "must be from 1m to 365d"));
        }
        if warnings.contains(&d) {
            return Err(bad(key, text, "is given twice"));
        }
        warnings.push(d);
    }
    warnings.sort_unstable();
    let check_interval = duration("notify.check_interval", &raw.check_interval)?;
    if check_interval < Duration::from_secs(1) {
        return Err(bad(
            "notify.check_interval",
            &raw.check_interval,
            "must be from 1s to 1d (24h)",
        ));
    }
    Ok(NotifyConfig {
        webhook_url,
        expiry_warnings: warnings,
        check_interval,
    })
}

/// An absolute `http://` or `https://` URL with a host. The value is never shown: it may
/// hold the webhook's credential.
fn check_url(url: &SecretString) -> Result<(), ConfigError> {
    let text = secrecy::ExposeSecret::expose_secret(url);
    let refused = |reason: &str| bad("notify.webhook_url", "[redacted]", reason);
    let uri: http::Uri = text
        .parse()
        .map_err(|_| refused("not a URL such as https://hooks.example.com/services/…"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(refused("must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(refused("names no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(warnings: &[&str], interval: &str, url: Option<&str>) -> RawNotify {
        RawNotify {
            webhook_url: url.map(Into::into),
            expiry_warnings: warnings.iter().map(|w| (*w).to_owned()).collect(),
            check_interval: interval.into(),
        }
    }

    fn message(r: RawNotify) -> String {
        validate(r).unwrap_err().to_string()
    }

    #[test]
    fn defaults_warn_a_week_and_a_day_before_and_check_hourly() {
        let config = validate(RawNotify::default()).unwrap();
        assert!(config.webhook_url.is_none());
        assert_eq!(
            config.expiry_warnings,
            [Duration::from_secs(86_400), Duration::from_secs(7 * 86_400)]
        );
        assert_eq!(config.check_interval, Duration::from_secs(3_600));
    }

    #[test]
    fn warnings_may_be_longer_than_a_day_but_not_longer_than_a_year() {
        let config = validate(raw(&["90d", "30d"], "10m", None)).unwrap();
        assert_eq!(config.expiry_warnings[1], Duration::from_secs(90 * 86_400));
        for bad in ["366d", "30s", "soon", "0d"] {
            let m = message(raw(&[bad], "1h", None));
            assert!(
                m.contains("notify.expiry_warnings") && m.contains(bad),
                "{m}"
            );
        }
        assert!(message(raw(&["1d", "24h"], "1h", None)).contains("twice"));
        assert!(message(raw(&["1d"], "2d", None)).contains("notify.check_interval"));
        assert!(message(raw(&["1d"], "500ms", None)).contains("from 1s"));
    }

    #[test]
    fn a_bad_webhook_url_is_refused_without_showing_it() {
        for url in [
            "hooks.slack.com/services/T0/B0/SECRET",
            "ftp://x/SECRET",
            "https:///SECRET",
        ] {
            let m = message(raw(&["1d"], "1h", Some(url)));
            assert!(
                m.contains("notify.webhook_url") && !m.contains("SECRET"),
                "{m}"
            );
        }
        let ok = validate(raw(
            &["1d"],
            "1h",
            Some("https://hooks.slack.com/services/T/B/x"),
        ));
        assert!(ok.unwrap().webhook_url.is_some());
    }
}
