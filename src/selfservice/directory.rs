//! What Bitbucket says about users, cached: whose tokens may be used and what each person
//! may do, from the rights lists and the user's Bitbucket groups.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use super::rights::{Granted, Rights};
use crate::bitbucket::{Bitbucket, BitbucketError};

/// The rights lists and a cache of users' groups.
pub struct Directory {
    rights: Rights,
    /// Asked for groups on the runtime that owns its connections.
    bitbucket: Bitbucket,
    runtime: Handle,
    /// Users' groups (lower case), trusted for `self_service.group_cache_ttl`.
    groups: moka::future::Cache<String, Arc<HashSet<String>>>,
}

impl Directory {
    /// Groups are read through `bitbucket` on `runtime` (the control runtime).
    pub fn new(rights: Rights, bitbucket: Bitbucket, group_ttl: Duration, runtime: Handle) -> Self {
        Self {
            rights,
            bitbucket,
            runtime,
            groups: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(group_ttl)
                .build(),
        }
    }

    /// Whether `user` may use tokens, when that is settled without asking Bitbucket (nearly
    /// always: `self_service.use_tokens` names no groups, or names the user); `None` when only
    /// [`Directory::may_use_tokens`] can tell.
    pub fn may_use_tokens_now(&self, user: &str) -> Option<bool> {
        if self.rights.use_tokens.allows_anyone() {
            return Some(true);
        }
        self.rights.use_tokens.allows_by_name(user)
    }

    /// Whether `user`'s tokens authenticate. Free when `use_tokens` allows everyone or
    /// names the user; otherwise a cache lookup, and a question to Bitbucket on a miss.
    pub async fn may_use_tokens(&self, user: &str) -> Result<bool, Arc<BitbucketError>> {
        if self.rights.use_tokens.allows_anyone() {
            return Ok(true);
        }
        match self.rights.use_tokens.allows_by_name(user) {
            Some(settled) => Ok(settled),
            None => Ok(self
                .rights
                .use_tokens
                .allows(user, &*self.groups_of(user).await?)),
        }
    }

    /// Everything `user` may do.
    pub async fn granted(&self, user: &str) -> Result<Granted, Arc<BitbucketError>> {
        let groups = if self.rights.names_groups() {
            self.groups_of(user).await?
        } else {
            Arc::default()
        };
        Ok(self.rights.granted(user, &groups))
    }

    async fn groups_of(&self, user: &str) -> Result<Arc<HashSet<String>>, Arc<BitbucketError>> {
        let key = user.to_lowercase();
        self.groups
            .try_get_with_by_ref(&key, async {
                let (bitbucket, user) = (self.bitbucket.clone(), user.to_owned());
                match self
                    .runtime
                    .spawn(async move { bitbucket.groups(&user).await })
                    .await
                {
                    Ok(groups) => groups.map(Arc::new),
                    Err(e) => Err(BitbucketError::Unreachable(format!(
                        "the lookup was cut off: {e}"
                    ))),
                }
            })
            .await
    }
}
