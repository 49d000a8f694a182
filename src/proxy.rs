//! The proxy listener: request context, the decision, and streaming forwarding to Bitbucket.

mod context;
mod forward;
mod framing;
mod gateway;
mod identity;
mod pool;
mod report;
mod respond;
mod server;
mod service;
mod workers;

pub use context::{Present, Remote, remote, session_id};
pub use forward::{Upstream, UpstreamError};
pub use gateway::{Gateway, GatewayParts};
pub use pool::UpstreamBody;
pub use server::{Limits, serve};
pub use workers::{Workers, bind};
