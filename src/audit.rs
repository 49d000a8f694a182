//! The audit trail: a fixed set of event types, handed off the request path to a bounded
//! queue, written by a background task in batches (to the spill file while the store is down,
//! replayed when it is back; optionally also to a Bitbucket-shaped audit file), kept for
//! `audit.retention_days` and `audit.max_rows`, and queried over the admin API.

mod attributes;
mod bitbucket;
mod coverage;
mod event;
mod retention;
mod settings;
mod sink;
mod spill;
#[cfg(test)]
mod test_store;
mod writer;

pub use attributes::Attributes;
pub use bitbucket::append_to_audit_file;
pub use coverage::Coverage;
pub use event::{
    AuditEvent, AuditKind, AuditOutcome, AuditQuery, StoredAuditEvent, intern, method_name,
    stored_json, stored_text,
};
pub use retention::purge;
pub use settings::AuditSettings;
pub use sink::AuditSink;
pub use writer::{AuditWriter, start};
