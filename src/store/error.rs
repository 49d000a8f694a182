//! What can go wrong talking to the store.

/// A store failure that callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or failed; the request may be retried later.
    #[error("the token store is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A unique key is already taken.
    #[error("a record with this key already exists")]
    Conflict,
    /// A migration failed.
    #[error("migrating the token store failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be read back (a column holds a value this version cannot parse).
    #[error("the token store holds an unreadable value in {column}: {detail}")]
    Corrupt {
        column: &'static str,
        detail: String,
    },
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
