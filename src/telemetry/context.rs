//! The request context: the four request fields every line logged while a request is being
//! handled carries, held in a task-local for the request's future instead of a `tracing`
//! span, so a request costs no span bookkeeping and the fields are formatted only when a line
//! is written.

use std::fmt;
use std::future::Future;

use compact_str::CompactString;

tokio::task_local! {
    /// The context of the request whose future is being polled on this thread, if any.
    static CURRENT: RequestContext;
}

/// What every line inside one request shows between the thread and the logger:
/// `{request_id} {session_id }{addresses} "{request_line}"`.
pub struct RequestContext {
    /// `@{NODE}x{MINUTE}x{COUNTER}x{IN_FLIGHT}`.
    request_id: CompactString,
    /// Hash of the session cookie, when the request had one.
    session_id: Option<String>,
    /// `X-Forwarded-For` entries and the peer, comma separated.
    addresses: CompactString,
    /// `GET /rest/ssh/1.0/keys HTTP/1.1`, unescaped; displayed only when a line is written.
    request_line: Box<dyn RequestLine>,
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("request_id", &self.request_id)
            .field("session_id", &self.session_id)
            .field("addresses", &self.addresses)
            .field("request_line", &self.request_line.to_string())
            .finish()
    }
}

impl RequestContext {
    /// A context without a session; `request_line` is displayed (and escaped) each time a
    /// line is written, so building the context formats nothing. The id and addresses are
    /// held inline when short, as they are for a typical request, so copying them allocates
    /// nothing.
    pub fn new(
        request_id: impl Into<CompactString>,
        addresses: impl Into<CompactString>,
        request_line: impl RequestLine + 'static,
    ) -> Self {
        Self {
            request_id: request_id.into(),
            session_id: None,
            addresses: addresses.into(),
            request_line: Box::new(request_line),
        }
    }

    /// The same context with the session id written after the request id (none for `None`).
    #[must_use]
    pub fn with_session_id(mut self, session_id: Option<String>) -> Self {
        self.session_id = session_id;
        self
    }

    pub(super) fn request_id(&self) -> &str {
        &self.request_id
    }

    pub(super) fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    pub(super) fn addresses(&self) -> &str {
        &self.addresses
    }

    pub(super) fn request_line(&self) -> &dyn RequestLine {
        &*self.request_line
    }
}

/// A request line (`GET /path HTTP/1.1`, unescaped), displayed where a formatter escapes it,
/// or appended as it is by the direct writer, which checks the text it appended.
pub trait RequestLine: fmt::Display + Send {
    /// Appends exactly the text `Display` writes.
    fn push_onto(&self, out: &mut String) {
        use fmt::Write as _;
        // Writing to a String fails only if `Display` does.
        let _ = write!(out, "{self}");
    }
}

impl RequestLine for String {
    fn push_onto(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl RequestLine for &'static str {
    fn push_onto(&self, out: &mut String) {
        out.push_str(self);
    }
}

/// Runs `future` inside `context`: every line logged while it is polled, at any level and
/// from any future it awaits, carries the request fields. Work it spawns onto other tasks or
/// threads does not.
pub fn in_request<F: Future>(
    context: RequestContext,
    future: F,
) -> impl Future<Output = F::Output> {
    CURRENT.scope(context, future)
}

/// Runs `f` inside `context`, for synchronous code (tests, benchmarks, blocking work that
/// belongs to one request).
pub fn in_request_sync<R>(context: RequestContext, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(context, f)
}

/// Calls `f` with the context of the request being handled on this thread, or with `None`
/// outside any request.
pub(super) fn with_current<R>(mut f: impl FnMut(Option<&RequestContext>) -> R) -> R {
    CURRENT
        .try_with(|context| f(Some(context)))
        .unwrap_or_else(|_| f(None))
}
