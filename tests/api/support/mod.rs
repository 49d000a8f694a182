//! Helpers shared by the integration tests: fresh databases on both backends, and Redis.

pub(crate) mod app;
pub(crate) mod audit;
mod backends;
mod binary;
pub(crate) mod bitbucket;
pub(crate) mod browser;
pub(crate) mod certs;
pub(crate) mod command;
mod db;
pub(crate) mod forwarder;
pub(crate) mod git;
pub(crate) mod log;
pub(crate) mod raw;
pub(crate) mod redis;
pub(crate) mod schemathesis;
pub(crate) mod tls_client;
pub(crate) mod upstream;
mod wait;
pub(crate) mod webhook;

pub(crate) use backends::both_backends;
pub(crate) use wait::{PATIENCE, eventually, eventually_explained, refused_within_a_second};

pub(crate) use db::{
    execute_raw, fresh_postgres, fresh_postgres_url, fresh_sqlite, fresh_sqlite_url,
};
