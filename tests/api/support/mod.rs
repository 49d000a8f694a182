//! Helpers shared by the integration tests: fresh databases on both backends.

mod db;

pub(crate) use db::{execute_raw, fresh_postgres, fresh_postgres_url, fresh_sqlite, fresh_sqlite_url};
