//! The `[audit]` section, validated: which events are kept, for how long, and where they wait
//! or are copied.

use std::path::PathBuf;

use super::ConfigError;
use super::raw::RawAudit;
use super::validate::{bad, count};
use crate::audit::AuditSettings;

/// `[audit]` as written, checked and converted; an error names the key and the value.
pub(super) fn validate(au: RawAudit) -> Result<AuditSettings, ConfigError> {
    Ok(AuditSettings {
        coverage: au.coverage.parse().map_err(|()| {
            bad(
                "audit.coverage",
                &au.coverage,
                "expected off, base, advanced or full",
            )
        })?,
        retention_days: u32::try_from(count("audit.retention_days", au.retention_days, 1, 36_500)?)
            .expect("bounded above"),
        max_rows: au
            .max_rows
            .map(|n| count("audit.max_rows", n, 1, u64::MAX))
            .transpose()?,
        file: au.file.filter(|f| !f.is_empty()).map(PathBuf::from),
        queue_capacity: usize::try_from(count(
            "audit.queue_capacity",
            au.queue_capacity,
            16,
            10_000_000,
        )?)
        .expect("bounded above"),
        spill_file: PathBuf::from(au.spill_file),
    })
}
