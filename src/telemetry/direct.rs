//! Decision lines written straight to the log writer, byte for byte the lines the subscriber
//! writes for the same events, without `tracing`'s dispatch and field machinery: a decision
//! line is the one line nearly every request writes, and that machinery cost more than laying
//! the line out. [`super::init`] enables it for the Bitbucket layout; with the JSON layout,
//! or with a subscriber installed any other way (tests), lines go through `tracing`.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use tracing::Level;
use tracing_appender::non_blocking::NonBlocking;
use tracing_subscriber::fmt::format::Writer;

use super::clock::local_at;
use super::context::with_current;
use super::fields::OneLine;
use super::format::{with_thread_name, write_request};
use super::logger::LoggerNames;
use super::stamp::write_time;
use super::{AUTH_TARGET, RATE_LIMIT_TARGET};

/// A log message that can also write itself in one piece.
pub trait Message: fmt::Display {
    /// Writes exactly what [`OneLine`] makes of the message's `Display`, when the message has
    /// a faster way to (text that needs no escaping for one line, written piece by piece);
    /// `None` writes the `Display` through [`OneLine`].
    fn write_one_line(&self, _out: &mut String) -> Option<fmt::Result> {
        None
    }
}

/// What the direct path writes with, set by [`super::init`].
struct Direct {
    writer: NonBlocking,
    names: LoggerNames,
}

static DIRECT: OnceLock<Direct> = OnceLock::new();

thread_local! {
    /// This thread's line buffer and its handle on the writer.
    static LINE: RefCell<Option<(String, NonBlocking)>> = const { RefCell::new(None) };
}

/// Writes decision lines directly to `writer`, which the installed subscriber writes to in
/// the Bitbucket layout, with the logger names of `names`.
pub(super) fn install(writer: NonBlocking, names: LoggerNames) {
    let _ = DIRECT.set(Direct { writer, names });
}

/// Writes the INFO line of a decision `target` ([`AUTH_TARGET`] or [`RATE_LIMIT_TARGET`])
/// with `message`, stamped `time`, as the subscriber would have, if the filter lets it through.
/// False when lines are not written directly in this process: the caller logs through
/// `tracing`.
pub fn info_line(target: &'static str, time: DateTime<Utc>, message: &impl Message) -> bool {
    let Some(direct) = DIRECT.get() else {
        return false;
    };
    let enabled = match target {
        AUTH_TARGET => tracing::enabled!(target: AUTH_TARGET, Level::INFO),
        RATE_LIMIT_TARGET => tracing::enabled!(target: RATE_LIMIT_TARGET, Level::INFO),
        _ => return false,
    };
    if !enabled {
        return true;
    }
    let written = LINE.try_with(|line| {
        let mut line = line.borrow_mut();
        let (buf, writer) = line.get_or_insert_with(|| (String::new(), direct.writer.clone()));
        buf.clear();
        if lay_out(buf, &direct.names, target, time, message).is_ok() {
            // The lossy writer never fails: a line that does not fit is counted as dropped.
            let _ = writer.write_all(buf.as_bytes());
        }
        // A line far longer than usual (a long path) does not keep its memory.
        if buf.capacity() > 16 * 1024 {
            *buf = String::new();
        }
    });
    // While the thread's locals are being destroyed: through `tracing`.
    written.is_ok()
}

/// The line as [`super::BitbucketFormat`] lays it out.
fn lay_out(
    buf: &mut String,
    names: &LoggerNames,
    target: &'static str,
    time: DateTime<Utc>,
    message: &impl Message,
) -> fmt::Result {
    write_time(buf, &local_at(time))?;
    buf.push_str(" INFO [");
    with_thread_name(|name| OneLine(buf).write_str(name))?;
    buf.push_str("] ");
    with_current(|request| request.map_or(Ok(()), |r| write_request(&mut Writer::new(buf), r)))?;
    names.write(target, &mut OneLine(buf))?;
    buf.push(' ');
    match message.write_one_line(buf) {
        Some(result) => result?,
        None => write!(OneLine(buf), "{message}")?,
    }
    buf.push('\n');
    Ok(())
}
