//! Where line times come from: the system clock, or a fixed time for exact tests.

use chrono::{DateTime, Local};

/// The local time stamped on each line.
pub trait Clock: Send + Sync + 'static {
    /// The current local time (the process's `TZ`).
    fn now(&self) -> DateTime<Local>;
}

/// The system clock in the process's local time zone.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Local> {
        Local::now()
    }
}

/// Always the same time; for tests that compare lines byte for byte.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Local>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Local> {
        self.0
    }
}
