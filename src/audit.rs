//! The audit trail: a fixed set of event types, recorded off the request path by a batching
//! writer, kept for `audit.retention_days`, and queried over the admin API.

mod coverage;
mod event;
mod sink;
mod writer;

pub use coverage::Coverage;
pub use event::{AuditEvent, AuditKind, AuditOutcome, AuditQuery, StoredAuditEvent};
pub use sink::AuditSink;
pub use writer::{AuditWriter, start};
