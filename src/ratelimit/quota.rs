//! A request quota, `N` requests per period, as written in config and on the CLI (`"5/5m"`),
//! and as worded in the RateLimiter log line (`5 requests within 5 minutes`).

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `requests` per `period`: `requests` is the burst, refilled evenly over the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateQuota {
    /// Requests allowed within one period (at least 1).
    #[schema(value_type = u32, minimum = 1)]
    pub requests: NonZeroU32,
    /// Length of the period in whole seconds (at least 1).
    pub period_seconds: u64,
}

/// Why a quota string or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("expected REQUESTS/PERIOD such as \"5/5m\" or \"1000/1h\"")]
    Shape,
    #[error("the request count must be a whole number from 1 to 4294967295")]
    Requests,
    #[error(
        "the period must be a whole number followed by s, m, h or d, from 1s to {}d",
        MAX_PERIOD_SECONDS / 86_400
    )]
    Period,
}

impl RateQuota {
    /// Builds a quota, refusing zero requests or a zero period.
    pub fn new(requests: u32, period_seconds: u64) -> Result<Self, QuotaError> {
        let requests = NonZeroU32::new(requests).ok_or(QuotaError::Requests)?;
        if period_seconds == 0 || period_seconds > MAX_PERIOD_SECONDS {
            return Err(QuotaError::Period);
        }
        Ok(Self {
            requests,
            period_seconds,
        })
    }

    /// The period as a [`Duration`].
    pub fn period(&self) -> Duration {
        Duration::from_secs(self.period_seconds)
    }

    /// The time one request's worth of quota takes to refill.
    pub fn replenish_interval(&self) -> Duration {
        self.period() / self.requests.get()
    }
}

/// A year: longer periods are almost certainly a typo.
const MAX_PERIOD_SECONDS: u64 = 366 * 86_400;

impl FromStr for RateQuota {
    type Err = QuotaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (requests, period) = s.trim().split_once('/').ok_or(QuotaError::Shape)?;
        let requests: u32 = requests.trim().parse().map_err(|_| QuotaError::Requests)?;
        let period = parse_period(period.trim()).ok_or(QuotaError::Period)?;
        Self::new(requests, period)
    }
}

fn parse_period(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    // "/m" reads as one minute, like "per minute".
    let count: u64 = if digits.is_empty() {
        1
    } else {
        digits.parse().ok()?
    };
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    count.checked_mul(unit_seconds)
}

/// The config and CLI spelling, `5/5m`.
impl fmt::Display for RateQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (count, unit) = largest_unit(self.period_seconds);
        let unit = match unit {
            Unit::Second => "s",
            Unit::Minute => "m",
            Unit::Hour => "h",
            Unit::Day => "d",
        };
        write!(f, "{}/{count}{unit}", self.requests)
    }
}

/// The log line wording: `5 requests within 5 minutes`, `1 request within 1 hour`.
pub struct Wording<'a>(pub &'a RateQuota);

impl fmt::Display for Wording<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let requests = self.0.requests.get();
        let (count, unit) = largest_unit(self.0.period_seconds);
        let unit = match unit {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
        };
        let r = if requests == 1 { "request" } else { "requests" };
        let s = if count == 1 { "" } else { "s" };
        write!(f, "{requests} {r} within {count} {unit}{s}")
    }
}

enum Unit {
    Second,
    Minute,
    Hour,
    Day,
}

fn largest_unit(seconds: u64) -> (u64, Unit) {
    if seconds.is_multiple_of(86_400) {
        (seconds / 86_400, Unit::Day)
    } else if seconds.is_multiple_of(3_600) {
        (seconds / 3_600, Unit::Hour)
    } else if seconds.is_multiple_of(60) {
        (seconds / 60, Unit::Minute)
    } else {
        (seconds, Unit::Second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_config_spelling() {
        for s in ["5/5m", "1000/1h", "20/1m", "1/1d", "30/45s"] {
            assert_eq!(s.parse::<RateQuota>().unwrap().to_string(), s);
        }
        assert_eq!("10/m".parse::<RateQuota>().unwrap().period_seconds, 60);
        assert_eq!("10/90s".parse::<RateQuota>().unwrap().to_string(), "10/90s");
        assert_eq!("10/120s".parse::<RateQuota>().unwrap().to_string(), "10/2m");
    }

    #[test]
    fn refuses_nonsense() {
        assert_eq!("".parse::<RateQuota>(), Err(QuotaError::Shape));
        assert_eq!("5".parse::<RateQuota>(), Err(QuotaError::Shape));
        assert_eq!("0/1m".parse::<RateQuota>(), Err(QuotaError::Requests));
        assert_eq!("-1/1m".parse::<RateQuota>(), Err(QuotaError::Requests));
        assert_eq!("5/0m".parse::<RateQuota>(), Err(QuotaError::Period));
        assert_eq!("5/1w".parse::<RateQuota>(), Err(QuotaError::Period));
        assert_eq!(
            "5/99999999999999999999d".parse::<RateQuota>(),
            Err(QuotaError::Period)
        );
        assert_eq!("5/400d".parse::<RateQuota>(), Err(QuotaError::Period));
    }

    #[test]
    fn a_refused_period_states_both_bounds() {
        for s in ["5/400d", "5/0s"] {
            let m = s.parse::<RateQuota>().unwrap_err().to_string();
            assert!(m.contains("from 1s to 366d"), "{s}: {m}");
        }
        assert!("5/366d".parse::<RateQuota>().is_ok());
    }

    #[test]
    fn words_periods_like_the_log_line() {
        let w = |s: &str| Wording(&s.parse().unwrap()).to_string();
        assert_eq!(w("5/5m"), "5 requests within 5 minutes");
        assert_eq!(w("1/1m"), "1 request within 1 minute");
        assert_eq!(w("2/30s"), "2 requests within 30 seconds");
        assert_eq!(w("1000/1h"), "1000 requests within 1 hour");
        assert_eq!(w("7/1d"), "7 requests within 1 day");
        assert_eq!(w("7/90s"), "7 requests within 90 seconds");
    }
}
