//! What the audit writer and retention are told: their own settings, made by whoever starts
//! them (the gateway, from `[audit]`; tests, directly), so the audit trail does not read the
//! config.

use std::path::PathBuf;

use super::Coverage;

/// The settings of the audit writer and of retention.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Which event types are recorded at all.
    pub coverage: Coverage,
    /// Events older than this many days are deleted.
    pub retention_days: u32,
    /// At most this many events are kept, the newest.
    pub max_rows: Option<u64>,
    /// Also append every event as a JSON line here (Bitbucket's audit file shape).
    pub file: Option<PathBuf>,
    /// Events waiting for the writer, at most; more are dropped and counted.
    pub queue_capacity: usize,
    /// Where events wait while the store is down.
    pub spill_file: PathBuf,
}
