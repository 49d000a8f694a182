//! What can go wrong talking to the store.

/// A store failure that callers can act on. A message holds sqlx's whole text, which already
/// holds its own causes, so no variant has a `source()`: a caller printing the chain
/// (`{:#}`) shows each cause once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or failed; the request may be retried later.
    #[error("the token store is unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// A unique key is already taken.
    #[error("a record with this key already exists")]
    Conflict,
    /// A migration failed.
    #[error("migrating the token store failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// A stored row could not be read back (a column holds a value this version cannot parse).
    #[error("the token store holds an unreadable value in {column}: {detail}")]
    Corrupt {
        column: &'static str,
        detail: String,
    },
    /// An SQLite database file that was to be opened, not created, does not exist.
    #[error("there is no database file at {}", path.display())]
    NoDatabase { path: std::path::PathBuf },
    /// The database URL's scheme is neither postgres nor sqlite.
    #[error("database.url must start with postgres://, postgresql:// or sqlite:")]
    UnsupportedUrl,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict,
            _ => Self::Unavailable(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI prints an error with its chain (`{:#}`): sqlx's cause shows once, not once per
    /// layer that both prints and links it.
    #[test]
    fn a_cause_is_shown_once_in_the_chain() {
        let refused = || sqlx::Error::Io(std::io::Error::other("connection refused"));
        for e in [
            StoreError::from(refused()),
            StoreError::from(sqlx::migrate::MigrateError::Execute(refused())),
        ] {
            let chain = format!("{:#}", anyhow::Error::from(e).context("opening the store"));
            assert_eq!(chain.matches("connection refused").count(), 1, "{chain}");
        }
    }
}
