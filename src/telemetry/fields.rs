//! An event's fields as text: the `message`, then every other field as ` key=value`, all
//! through [`OneLine`] so no field can break the line.

use std::fmt::{self, Write as _};

use tracing::Event;
use tracing::field::{Field, Visit};

use super::escape::{any_byte, may_start_control};

/// The field `tracing`'s macros put the formatted message in.
pub(super) const MESSAGE: &str = "message";

/// Fields added by the `log` bridge (`log.target`, `log.file`, ...), not shown.
fn is_log_metadata(name: &str) -> bool {
    name.starts_with("log.")
}

/// A writer that escapes control characters and Unicode line separators (`\n`, `\r`, `\t`,
/// `\u{1b}`), and leaves everything else, quotes and backslashes included, as it is.
pub(super) struct OneLine<'w>(pub(super) &'w mut dyn fmt::Write);

impl fmt::Write for OneLine<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most text has no control character: one pass over the bytes, then one write.
        if !any_byte(s, may_start_control) {
            return self.0.write_str(s);
        }
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if !(c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
                continue;
            }
            self.0.write_str(&s[start..i])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                _ => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            start = i + c.len_utf8();
        }
        self.0.write_str(&s[start..])
    }
}

/// Writes the message, then ` key=value` for each other field (strings quoted, `%` values
/// displayed, `?` values debug-printed, as `tracing`'s own formatter does), on one line.
pub(super) fn write_message(event: &Event<'_>, out: &mut dyn fmt::Write) -> fmt::Result {
    let mut out = OneLine(out);
    let mut message = TextVisitor {
        out: &mut out,
        message: true,
        result: Ok(()),
    };
    event.record(&mut message);
    message.result?;
    let mut rest = TextVisitor {
        out: &mut out,
        message: false,
        result: Ok(()),
    };
    event.record(&mut rest);
    rest.result
}

/// Writes either the message field only, or every field but the message.
struct TextVisitor<'a, 'w> {
    out: &'a mut OneLine<'w>,
    /// Whether this pass writes the message (else the other fields).
    message: bool,
    result: fmt::Result,
}

impl TextVisitor<'_, '_> {
    fn wants(&self, field: &Field) -> bool {
        let is_message = field.name() == MESSAGE;
        self.result.is_ok() && is_message == self.message && !is_log_metadata(field.name())
    }
}

impl Visit for TextVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.wants(field) {
            return;
        }
        self.result = if self.message {
            self.out.write_str(value)
        } else {
            write!(self.out, " {}={value:?}", field.name())
        };
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.wants(field) {
            return;
        }
        self.result = if self.message {
            write!(self.out, "{value:?}")
        } else {
            write!(self.out, " {}={value:?}", field.name())
        };
    }
}
