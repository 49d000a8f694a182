//! The JSON layout: one object per line with `time` (RFC 3339, local, milliseconds), `level`,
//! `thread`, `request_id`, `session_id` (when present), `addresses`, `request_line`, `logger`,
//! `message`, and the event's other fields. Request fields are absent outside a request.

use std::fmt;
use std::sync::Arc;

use chrono::SecondsFormat;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::LogSettings;
use super::clock::{Clock, SystemClock};
use super::context::with_current;
use super::fields::MESSAGE;
use super::format::with_thread_name;
use super::logger::LoggerNames;

/// Keys the line itself uses; an event field with one of these names is written as
/// `field.{name}` instead.
const RESERVED: [&str; 9] = [
    "time",
    "level",
    "thread",
    "request_id",
    "session_id",
    "addresses",
    "request_line",
    "logger",
    "message",
];

/// The event formatter for [`super::LogFormat::Json`].
#[derive(Clone)]
pub struct JsonFormat {
    /// Display names of the decision loggers.
    names: LoggerNames,
    /// Source of the line times.
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for JsonFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonFormat")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl JsonFormat {
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

impl<S, N> FormatEvent<S, N> for JsonFormat
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
        let mut line = Map::new();
        let text = |s: &str| Value::String(s.to_owned());
        line.insert(
            "time".into(),
            Value::String(
                self.clock
                    .now()
                    .to_rfc3339_opts(SecondsFormat::Millis, false),
            ),
        );
        line.insert("level".into(), text(meta.level().as_str()));
        line.insert("thread".into(), with_thread_name(text));
        with_current(|request| {
            let Some(r) = request else { return };
            line.insert("request_id".into(), text(r.request_id()));
            if let Some(session) = r.session_id() {
                line.insert("session_id".into(), text(session));
            }
            line.insert("addresses".into(), text(r.addresses()));
            let request_line = r.request_line().to_string();
            line.insert("request_line".into(), Value::String(request_line));
        });
        line.insert("logger".into(), text(&self.names.display(meta.target())));
        let mut fields = JsonFields {
            line: &mut line,
            message: String::new(),
        };
        event.record(&mut fields);
        let message = fields.message;
        line.insert(MESSAGE.into(), Value::String(message));
        let json = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        w.write_str(&json)?;
        w.write_char('\n')
    }
}

/// Collects the message and the other fields as JSON values.
struct JsonFields<'a> {
    line: &'a mut Map<String, Value>,
    message: String,
}

impl JsonFields<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let key = if RESERVED.contains(&name) {
            format!("field.{name}")
        } else {
            name.to_owned()
        };
        self.line.insert(key, value);
    }
}

impl Visit for JsonFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.insert(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == MESSAGE {
            value.clone_into(&mut self.message);
        } else {
            self.insert(field, value.into());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == MESSAGE {
            self.message = format!("{value:?}");
        } else {
            self.insert(field, Value::String(format!("{value:?}")));
        }
    }
}
