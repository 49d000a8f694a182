//! Authentication: reading credentials, verifying tokengate tokens, the decision table, and
//! the wording of its log lines.

mod credential;
mod decision;
pub mod messages;
mod route;
mod stray;
mod tag;
mod verifier;

pub use credential::{Credential, Scheme};
pub use decision::{
    AllowList, Decision, NoValidToken, Policy, Presented, Progress, RateCheck, RequestFacts,
    Unverified, Verification, canonical, decide, decide_until_rate, ip_allowed, is_write,
    parse_cidr, write_override,
};
pub use route::{Unroutable, query_values, routing_path};
pub use stray::{Redacted, TokenPlace, holds_token, stray_token};
pub use verifier::{Verifier, VerifierSettings};
