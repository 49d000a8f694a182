//! `tokengate backup PATH`: a consistent copy of the SQLite store, taken while gateways run,
//! in a new file of mode 0600, checked before it is reported. A PostgreSQL store is backed up
//! with PostgreSQL's own tools.

use std::path::Path;
use std::process::ExitCode;

use secrecy::ExposeSecret as _;

use super::token::{Failure, block_on, finish};
use crate::config::Config;
use crate::store::{BackupError, backup_sqlite};

/// Runs `tokengate backup`.
pub(super) fn run(config: &Config, path: &Path) -> ExitCode {
    let url = config.database.url.expose_secret();
    if !url.starts_with("sqlite:") {
        return finish(Err(Failure::Usage(
            "tokengate backup copies an SQLite store, and database.url names PostgreSQL: back \
             it up with pg_dump, for example `pg_dump --format=custom --file=tokengate.dump \
             \"$DATABASE_URL\"`, and restore it with pg_restore (see Backup and restore in the \
             README)"
                .into(),
        )));
    }
    if url.contains(":memory:") || url.contains("mode=memory") {
        return finish(Err(Failure::Usage(
            "database.url names an in-memory SQLite database: there is nothing on disk to back up"
                .into(),
        )));
    }
    finish(block_on(async {
        let summary = backup_sqlite(url, path).await.map_err(|e| match e {
            BackupError::Exists(_) => Failure::Usage(e.to_string()),
            e => Failure::Other(e.to_string()),
        })?;
        println!(
            "backed up {} tokens, {} stored credentials and {} audit events to {} ({} bytes, \
             integrity check ok)",
            summary.tokens,
            summary.credentials,
            summary.audit_events,
            path.display(),
            summary.bytes
        );
        Ok(())
    }))
}
