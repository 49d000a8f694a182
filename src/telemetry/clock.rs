//! Where line times come from: the system clock, or a fixed time for exact tests.

use std::cell::Cell;

use chrono::{DateTime, FixedOffset, Local, Offset as _, TimeZone as _, Utc};

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
        local_now()
    }
}

thread_local! {
    /// The UTC second last converted on this thread, and the local offset it had.
    static OFFSET: Cell<Option<(i64, FixedOffset)>> = const { Cell::new(None) };
}

/// The current local time, as `Local::now()` gives it, for a single read of the clock: the
/// offset of the process's time zone is looked up once per second per thread (offsets change
/// only on whole seconds), not on every call.
#[must_use]
pub fn local_now() -> DateTime<Local> {
    local_at(Utc::now())
}

/// `utc` in the process's local time zone, its offset looked up as [`local_now`] does: for a
/// caller that has read the clock already.
#[must_use]
pub fn local_at(utc: DateTime<Utc>) -> DateTime<Local> {
    let second = utc.timestamp();
    let offset = match OFFSET.get() {
        Some((cached, offset)) if cached == second => offset,
        _ => {
            let offset = Local.offset_from_utc_datetime(&utc.naive_utc()).fix();
            OFFSET.set(Some((second, offset)));
            offset
        }
    };
    DateTime::from_naive_utc_and_offset(utc.naive_utc(), offset)
}

/// Always the same time; for tests that compare lines byte for byte.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Local>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Local> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_now_is_the_local_time() {
        let before = Local::now();
        let now = local_now();
        let after = Local::now();
        assert!(before <= now && now <= after);
        assert_eq!(now.offset(), after.offset());
    }
}
