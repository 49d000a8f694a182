//! The proxy listener: request context, the decision, and streaming forwarding to Bitbucket.

mod context;
mod forward;
mod framing;
mod gateway;
mod identity;
mod report;
mod respond;
mod server;
mod service;
mod workers;

pub use context::{Present, Remote, remote, session_id};
pub use gateway::{Gateway, GatewayParts};
pub use server::{Limits, serve};
pub use workers::{Workers, bind};
