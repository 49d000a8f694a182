//! Rate limiting: quotas, and the limits that enforce them per token and per failing client
//! address, counted in this process or, for several replicas, in Redis.

mod limiter;
mod limits;
mod quota;
mod shared;

pub use limiter::{GovernorLimiter, RateDecision, RateStatus, ceil_seconds};
pub use limits::{PROBE_INTERVAL, RateLimits};
pub use quota::{QuotaError, RateQuota, Wording};
pub use shared::{RedisLimiter, SharedError, SharedKey};
