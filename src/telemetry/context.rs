//! The span-fields layer: keeps the four request fields of each `request` span in the span's
//! extensions, where the formatters find them for every line logged inside the request.

use std::fmt;

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, Scope};

use super::REQUEST_SPAN;

/// The fields of one request span, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RequestFields {
    /// `@{NODE}x{MINUTE}x{COUNTER}x{IN_FLIGHT}`.
    pub(super) request_id: String,
    /// Hash of the session cookie, when the request had one.
    pub(super) session_id: Option<String>,
    /// `X-Forwarded-For` entries and the peer, comma separated.
    pub(super) addresses: String,
    /// `GET /rest/ssh/1.0/keys HTTP/1.1`, unescaped.
    pub(super) request_line: String,
}

impl RequestFields {
    fn set(&mut self, name: &str, value: String) {
        match name {
            "request_id" => self.request_id = value,
            "session_id" => self.session_id = Some(value),
            "addresses" => self.addresses = value,
            "request_line" => self.request_line = value,
            _ => {}
        }
    }
}

fn is_request_field(name: &str) -> bool {
    matches!(
        name,
        "request_id" | "session_id" | "addresses" | "request_line"
    )
}

impl Visit for RequestFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if is_request_field(field.name()) {
            self.set(field.name(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if is_request_field(field.name()) {
            self.set(field.name(), format!("{value:?}"));
        }
    }
}

/// Stores [`RequestFields`] on every span named [`REQUEST_SPAN`] that declares a `request_id`
/// field (so another crate's `request` span is not mistaken for ours), on creation and on
/// each later `record`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContextLayer;

impl<S> Layer<S> for RequestContextLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        if meta.name() != REQUEST_SPAN || meta.fields().field("request_id").is_none() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = RequestFields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<RequestFields>() {
            values.record(fields);
        }
    }
}

/// Calls `f` with the fields of the innermost request span in `scope` (leaf first), or with
/// `None` outside any request.
pub(super) fn with_request<'a, S, R>(
    scope: Option<Scope<'a, S>>,
    f: impl FnOnce(Option<&RequestFields>) -> R,
) -> R
where
    S: LookupSpan<'a>,
{
    for span in scope.into_iter().flatten() {
        let extensions = span.extensions();
        if let Some(fields) = extensions.get::<RequestFields>() {
            return f(Some(fields));
        }
    }
    f(None)
}
