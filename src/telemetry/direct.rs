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

use super::clock::local_at;
use super::context::{RequestContext, with_current};
use super::escape::{MAX_FIELD_BYTES, any_byte, may_start_control};
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
    /// The logger field and the space after it, as lines show them, of [`AUTH_TARGET`] and
    /// [`RATE_LIMIT_TARGET`]; `None` where the filter keeps the target's INFO lines out (it
    /// is built once and never changes).
    auth: Option<Box<str>>,
    rate_limit: Option<Box<str>>,
}

/// This thread's piece of a line, as the formatter writes it: ` INFO [{thread}] `.
fn info_and_thread() -> String {
    let mut piece = String::from(" INFO [");
    // Writing to a String fails only if the escaping does, which it does not.
    let _ = with_thread_name(|name| OneLine(&mut piece).write_str(name));
    piece.push_str("] ");
    piece
}

/// The logger field of `target` and a space, as the formatter writes them.
fn logger_field(names: &LoggerNames, target: &'static str) -> Box<str> {
    let mut field = String::new();
    let _ = names.write(target, &mut OneLine(&mut field));
    field.push(' ');
    field.into()
}

static DIRECT: OnceLock<Direct> = OnceLock::new();

/// A thread's line buffer, its handle on the writer, and its [`info_and_thread`] piece.
struct Line {
    buf: String,
    writer: NonBlocking,
    info_and_thread: String,
}

thread_local! {
    /// This thread's [`Line`].
    static LINE: RefCell<Option<Line>> = const { RefCell::new(None) };
}

/// Writes decision lines directly to `writer`, which the installed subscriber writes to in
/// the Bitbucket layout, with the logger names of `names`.
/// Called once the subscriber is the global default, whose filter it asks.
pub(super) fn install(writer: NonBlocking, names: &LoggerNames) {
    let _ = DIRECT.set(Direct {
        writer,
        auth: tracing::enabled!(target: AUTH_TARGET, Level::INFO)
            .then(|| logger_field(names, AUTH_TARGET)),
        rate_limit: tracing::enabled!(target: RATE_LIMIT_TARGET, Level::INFO)
            .then(|| logger_field(names, RATE_LIMIT_TARGET)),
    });
}

/// Writes the INFO line of a decision `target` ([`AUTH_TARGET`] or [`RATE_LIMIT_TARGET`])
/// with `message`, stamped `time`, as the subscriber would have, if the filter lets it through.
/// False when lines are not written directly in this process: the caller logs through
/// `tracing`.
pub fn info_line(target: &'static str, time: DateTime<Utc>, message: &impl Message) -> bool {
    let Some(direct) = DIRECT.get() else {
        return false;
    };
    let logger = match target {
        AUTH_TARGET => &direct.auth,
        RATE_LIMIT_TARGET => &direct.rate_limit,
        _ => return false,
    };
    let Some(logger) = logger else {
        return true;
    };
    let written = LINE.try_with(|line| {
        let mut line = line.borrow_mut();
        let Line {
            buf,
            writer,
            info_and_thread,
        } = line.get_or_insert_with(|| Line {
            buf: String::new(),
            writer: direct.writer.clone(),
            info_and_thread: info_and_thread(),
        });
        buf.clear();
        if lay_out(buf, info_and_thread, logger, time, message).is_ok() {
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

/// The line as [`super::BitbucketFormat`] lays it out: `info_and_thread` and `logger` are the
/// formatter's text of those fields ([`info_and_thread`], [`logger_field`]).
fn lay_out(
    buf: &mut String,
    info_and_thread: &str,
    logger: &str,
    time: DateTime<Utc>,
    message: &impl Message,
) -> fmt::Result {
    write_time(buf, &local_at(time))?;
    buf.push_str(info_and_thread);
    with_current(|request| request.map_or(Ok(()), |r| push_request(buf, r)))?;
    buf.push_str(logger);
    match message.write_one_line(buf) {
        Some(result) => result?,
        None => write!(OneLine(buf), "{message}")?,
    }
    buf.push('\n');
    Ok(())
}

/// `{request_id} {session_id }{addresses} "{request_line}" `, as the formatter writes it
/// ([`write_request`]): each part is written as it is and then checked for anything
/// [`OneLine`] or [`Escaping`](super::escape::Escaping) would change
/// (nothing, nearly always: the id, session and addresses are the gateway's own text, and a
/// request line rarely holds a quote or a control). Only when one has, or the request line is
/// longer than [`MAX_FIELD_BYTES`] (a piece they would clip), is the whole written again the
/// formatter's way.
fn push_request(buf: &mut String, r: &RequestContext) -> fmt::Result {
    let start = buf.len();
    buf.push_str(r.request_id());
    buf.push(' ');
    if let Some(session) = r.session_id() {
        buf.push_str(session);
        buf.push(' ');
    }
    buf.push_str(r.addresses());
    let plain_so_far = !any_byte(&buf[start..], may_start_control);
    buf.push_str(" \"");
    let line = buf.len();
    r.request_line().push_onto(buf);
    let needs_escaping = |b: u8| (b == b'"') | (b == b'\\') | may_start_control(b);
    if plain_so_far
        && buf.len() - line <= MAX_FIELD_BYTES
        && !any_byte(&buf[line..], needs_escaping)
    {
        buf.push_str("\" ");
        return Ok(());
    }
    buf.truncate(start);
    write_request(buf, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request part written piece by piece is the formatter's, plain or hostile.
    #[test]
    fn the_request_part_is_the_formatters() {
        let long = format!("GET /rest/{} HTTP/1.1", "a".repeat(MAX_FIELD_BYTES));
        let cases = [
            (
                "@N1x1x1x0",
                None,
                "10.0.0.1",
                "GET /rest/api/1.0/projects HTTP/1.1",
            ),
            (
                "@N1x1x1x0",
                Some("1a2b3c"),
                "10.0.0.1, 10.0.0.2",
                "GET / HTTP/1.1",
            ),
            ("@N1x1x1x0", None, "10.0.0.1\n", "GET / HTTP/1.1"),
            ("@N1x1x1x0", Some("\u{2028}"), "10.0.0.1", "GET / HTTP/1.1"),
            ("@N1x1x1x0", None, "10.0.0.1", "GET /\"x\\y\" HTTP/1.1"),
            ("@N1x1x1x0", None, "10.0.0.1", "GET /\u{85}\r HTTP/1.1"),
            ("@N1x1x1x0", None, "10.0.0.1", long.as_str()),
        ];
        for (id, session, addresses, line) in cases {
            let context = RequestContext::new(id, addresses, line.to_owned())
                .with_session_id(session.map(str::to_owned));
            let mut direct = String::from("prefix ");
            push_request(&mut direct, &context).unwrap();
            let mut formatted = String::from("prefix ");
            write_request(&mut formatted, &context).unwrap();
            assert_eq!(direct, formatted, "{line:.60}");
        }
    }
}
