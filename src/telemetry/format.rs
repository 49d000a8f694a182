//! Bitbucket's line layout, byte for byte:
//! `{yyyy-MM-dd HH:mm:ss,SSS} {LEVEL} [{thread}] {request_id} {session_id }{addresses}
//! "{request_line}" {logger} {message}`, or `{time} {LEVEL} [{thread}] {logger} {message}`
//! outside a request.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::LogSettings;
use super::clock::{Clock, SystemClock};
use super::context::{RequestContext, with_current};
use super::escape::Escaping;
use super::fields::{OneLine, write_message};
use super::logger::LoggerNames;
use super::stamp::write_time;

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
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write_time(&mut w, &self.clock.now())?;
        w.write_char(' ')?;
        w.write_str(meta.level().as_str())?;
        w.write_str(" [")?;
        with_thread_name(|name| OneLine(&mut w).write_str(name))?;
        w.write_str("] ")?;
        with_current(|request| request.map_or(Ok(()), |r| write_request(&mut w, r)))?;
        self.names.write(meta.target(), &mut OneLine(&mut w))?;
        w.write_char(' ')?;
        write_message(event, &mut w)?;
        w.write_char('\n')
    }
}

/// `{request_id} {session_id }{addresses} "{request_line}" `.
pub(super) fn write_request(w: &mut dyn fmt::Write, r: &RequestContext) -> fmt::Result {
    let mut field = OneLine(w);
    field.write_str(r.request_id())?;
    field.write_char(' ')?;
    if let Some(session) = r.session_id() {
        field.write_str(session)?;
        field.write_char(' ')?;
    }
    field.write_str(r.addresses())?;
    w.write_str(" \"")?;
    write!(Escaping(w), "{}", r.request_line())?;
    w.write_str("\" ")
}

thread_local! {
    /// This thread's name as lines show it; a thread's name never changes once it runs.
    static THREAD_NAME: Box<str> = thread_name(&std::thread::current()).into();
}

/// Calls `f` with the current thread's name as lines show it.
pub(super) fn with_thread_name<R>(mut f: impl FnMut(&str) -> R) -> R {
    THREAD_NAME
        .try_with(|name| f(name))
        // While the thread's locals are being destroyed, ask the thread itself.
        .unwrap_or_else(|_| f(thread_name(&std::thread::current())))
}

/// The thread field: the thread's name, `main` when it has none.
fn thread_name(thread: &std::thread::Thread) -> &str {
    thread.name().unwrap_or("main")
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
