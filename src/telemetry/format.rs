//! Bitbucket's line layout, byte for byte:
//! `{yyyy-MM-dd HH:mm:ss,SSS} {LEVEL} [{thread}] {request_id} {session_id }{addresses}
//! "{request_line}" {logger} {message}`, or `{time} {LEVEL} [{thread}] {logger} {message}`
//! outside a request.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Local, Timelike};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::clock::{Clock, SystemClock};
use super::context::with_request;
use super::fields::{OneLine, write_message};
use super::logger::LoggerNames;
use super::{Escaped, LogSettings};

/// The event formatter for [`super::LogFormat::Bitbucket`].
#[derive(Clone)]
pub struct BitbucketFormat {
    /// Display names of the decision loggers.
    names: LoggerNames,
    /// Source of the line times.
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for BitbucketFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitbucketFormat")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl BitbucketFormat {
    /// A formatter with the settings' logger names and the system clock.
    #[must_use]
    pub fn from_settings(settings: &LogSettings) -> Self {
        Self::new(LoggerNames::new(settings))
    }

    pub(super) fn new(names: LoggerNames) -> Self {
        Self {
            names,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same formatter reading line times from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}

impl<S, N> FormatEvent<S, N> for BitbucketFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write_time(&mut w, &self.clock.now())?;
        write!(w, " {} [", meta.level())?;
        OneLine(&mut w).write_str(thread_name(&std::thread::current()))?;
        w.write_str("] ")?;
        with_request(ctx.event_scope(), |request| -> fmt::Result {
            let Some(r) = request else { return Ok(()) };
            let mut field = OneLine(&mut w);
            field.write_str(&r.request_id)?;
            field.write_char(' ')?;
            if let Some(session) = &r.session_id {
                field.write_str(session)?;
                field.write_char(' ')?;
            }
            field.write_str(&r.addresses)?;
            write!(w, " \"{}\" ", Escaped(&r.request_line))
        })?;
        self.names.write(meta.target(), &mut OneLine(&mut w))?;
        w.write_char(' ')?;
        write_message(event, &mut w)?;
        w.write_char('\n')
    }
}

/// The thread field: the thread's name, `main` when it has none.
pub(super) fn thread_name(thread: &std::thread::Thread) -> &str {
    thread.name().unwrap_or("main")
}

/// `2021-01-07 08:52:38,540`.
fn write_time(w: &mut Writer<'_>, t: &DateTime<Local>) -> fmt::Result {
    write!(
        w,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        // A leap second's milliseconds run past 999; keep three digits.
        t.timestamp_subsec_millis().min(999),
    )
}

/// A field formatter that keeps nothing: span fields are never printed, so the `fmt` layer
/// need not format them into every span's extensions.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct NoSpanFields;

impl<'w> FormatFields<'w> for NoSpanFields {
    fn format_fields<R: RecordFields>(&self, _: Writer<'w>, _: R) -> fmt::Result {
        Ok(())
    }

    fn add_fields(
        &self,
        _: &'w mut FormattedFields<Self>,
        _: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        Ok(())
    }
}
