//! Per-token rate limiting: quotas, and the limiter that enforces them.
//!
//! Limits are counted per gateway process (per replica); the [`Limiter`] trait is the seam
//! where a shared backend can come in.

mod limiter;
mod quota;

pub use limiter::{GovernorLimiter, Limiter, RateDecision, RateStatus, ceil_seconds};
pub use quota::{QuotaError, RateQuota, Wording};
