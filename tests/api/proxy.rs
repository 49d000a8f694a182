//! The proxy, through the real binary: streaming both ways in bounded memory,
//! what reaches Bitbucket and what does not, request ids, error shapes and statuses, config
//! errors, and graceful shutdown.

mod failures;
mod framing;
mod headers;
mod pool;
mod streaming;
mod workers;

use crate::support::app::{Backend, Options};

pub(super) fn sqlite() -> Options {
    Options::new(Backend::Sqlite)
}

/// The response's `X-AREQUESTID`.
pub(super) fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-arequestid")
        .expect("every response carries X-AREQUESTID")
        .to_str()
        .expect("ASCII")
        .to_owned()
}
