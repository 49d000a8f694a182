//! Logger names: an event's target shown as Bitbucket shows loggers, and `log.loggers` keys
//! mapped back to the targets the filter understands.

use std::borrow::Cow;
use std::fmt;

use super::{AUTH_TARGET, LogSettings, RATE_LIMIT_TARGET};

/// The configured display names of the two decision targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LoggerNames {
    /// Shown for [`AUTH_TARGET`].
    auth: String,
    /// Shown for [`RATE_LIMIT_TARGET`].
    rate_limit: String,
}

impl LoggerNames {
    pub(super) fn new(settings: &LogSettings) -> Self {
        Self {
            auth: settings.auth_logger.clone(),
            rate_limit: settings.rate_limit_logger.clone(),
        }
    }

    /// The display name of `target`: a configured name for the two decision targets, else the
    /// target abbreviated like logback's `%c{1.}` (`tokengate::proxy::forward` → `t.p.forward`).
    pub(super) fn display<'a>(&'a self, target: &'a str) -> Cow<'a, str> {
        match target {
            AUTH_TARGET => Cow::Borrowed(&self.auth),
            RATE_LIMIT_TARGET => Cow::Borrowed(&self.rate_limit),
            _ if !target.contains("::") => Cow::Borrowed(target),
            _ => Cow::Owned(Abbreviated(target).to_string()),
        }
    }

    /// Writes the display name of `target` without allocating.
    pub(super) fn write(&self, target: &str, out: &mut dyn fmt::Write) -> fmt::Result {
        match target {
            AUTH_TARGET => out.write_str(&self.auth),
            RATE_LIMIT_TARGET => out.write_str(&self.rate_limit),
            _ => write!(out, "{}", Abbreviated(target)),
        }
    }

    /// The tracing targets a `log.loggers` key stands for: the decision targets for their
    /// display names (or the full Java names those abbreviate), the key itself when it is a
    /// tracing target, else `None`.
    pub(super) fn targets_of(&self, key: &str) -> Option<Vec<&'static str>> {
        let mut targets = Vec::new();
        if names_logger(&self.auth, key) {
            targets.push(AUTH_TARGET);
        }
        if names_logger(&self.rate_limit, key) {
            targets.push(RATE_LIMIT_TARGET);
        }
        if !targets.is_empty() {
            return Some(targets);
        }
        is_target(key).then(Vec::new)
    }

    /// The two display names, for error messages.
    pub(super) fn known(&self) -> String {
        format!("\"{}\" or \"{}\"", self.auth, self.rate_limit)
    }
}

/// Whether `key` is the display name `name` itself, or a dotted name that `name` abbreviates
/// segment by segment (`de.resolution.apitokenauth.platform.auth.X` for `d.r.a.p.auth.X`).
fn names_logger(name: &str, key: &str) -> bool {
    if name == key {
        return true;
    }
    let short: Vec<&str> = name.split('.').collect();
    let long: Vec<&str> = key.split('.').collect();
    short.len() == long.len()
        && short.len() > 1
        && short.last() == long.last()
        && short
            .iter()
            .zip(&long)
            .all(|(s, l)| !s.is_empty() && l.starts_with(s))
}

/// A tracing target: `::`-separated segments of letters, digits, `_` and `-`.
pub(super) fn is_target(key: &str) -> bool {
    key.split("::").all(|segment| {
        !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

/// A target with every `::` segment but the last cut to its first character, joined by `.`.
pub(super) struct Abbreviated<'a>(pub(super) &'a str);

impl fmt::Display for Abbreviated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut segments = self.0.split("::").peekable();
        while let Some(segment) = segments.next() {
            if segments.peek().is_none() {
                return f.write_str(segment);
            }
            if let Some(first) = segment.chars().next() {
                write!(f, "{first}.")?;
            }
        }
        Ok(())
    }
}
