//! The writer's way back from an outage: probing the store and replaying the spill file batch
//! by batch, setting aside a batch the store keeps refusing.

use chrono::Utc;
use tokio::time::timeout;

use super::{REPLAY_ATTEMPTS, Writer, before_deadline};
use crate::audit::spill::ReplayError;

impl Writer {
    /// Whether the store answers a ping in time.
    pub(super) async fn store_answers(&self) -> bool {
        let ping = timeout(self.timing.store_call, self.store.ping());
        matches!(
            before_deadline(&self.deadline, ping).await,
            Some(Ok(Ok(())))
        )
    }

    pub(super) async fn probe(&mut self) {
        let up = self.store_answers().await;
        if up && !self.store_up {
            tracing::info!(target: "tokengate::audit", "audit store reachable again");
        }
        self.store_up = up;
        self.replay_paused = false;
        if let Some(batch) = self.held.take() {
            self.persist(batch).await;
        }
    }

    pub(super) async fn replay_step(&mut self) {
        let step = self.spill.replay_next(&*self.store, self.timing.store_call);
        // Cut off at shutdown, the batch stays in the spill file for the next run.
        let Some(result) = before_deadline(&self.deadline, step).await else {
            return;
        };
        let e = match result {
            Ok(Some(step)) => {
                self.replay_failures = 0;
                self.metrics.audit_written.inc_by(step.stored);
                if step.unreadable > 0 {
                    self.metrics.audit_dropped.inc_by(step.unreadable);
                    tracing::warn!(
                        target: "tokengate::audit", lines = step.unreadable, spill_file = %self.spill.path().display(),
                        "unreadable lines in the audit spill file skipped (a write cut short)"
                    );
                }
                return;
            }
            Ok(None) => {
                tracing::info!(target: "tokengate::audit", "audit spill file replayed into the store");
                return;
            }
            Err(e @ ReplayError::Io(_)) => {
                tracing::warn!(target: "tokengate::audit", error = %e, "replaying the audit spill file failed; retrying later");
                self.replay_paused = true;
                return;
            }
            Err(e @ ReplayError::TimedOut(_)) => e,
            Err(ReplayError::Store(e)) if self.store_answers().await => {
                self.refused(&e.to_string()).await;
                return;
            }
            Err(e @ ReplayError::Store(_)) => e,
        };
        tracing::warn!(
            target: "tokengate::audit", error = %e, spill_file = %self.spill.path().display(),
            "replaying the audit spill file failed; spilling events until the store answers again"
        );
        self.store_up = false;
    }

    /// A replay step failed while the store answers: the batch is retried at the next probe,
    /// and set aside once it has failed [`REPLAY_ATTEMPTS`] times.
    async fn refused(&mut self, error: &str) {
        self.replay_failures += 1;
        if self.replay_failures < REPLAY_ATTEMPTS {
            tracing::warn!(
                target: "tokengate::audit", error, attempt = self.replay_failures, spill_file = %self.spill.path().display(),
                "the store refused a batch of the audit spill file; retrying it at the next probe"
            );
            self.replay_paused = true;
            return;
        }
        match self.spill.set_aside(Utc::now()).await {
            Ok(Some(aside)) => {
                self.replay_failures = 0;
                self.metrics.audit_set_aside.inc_by(aside.events);
                tracing::error!(
                    target: "tokengate::audit", error, events = aside.events, file = %aside.file.display(),
                    "the store refused a batch of the audit spill file {REPLAY_ATTEMPTS} times; it is set aside in this file and the replay goes on"
                );
            }
            Ok(None) => self.replay_failures = 0,
            Err(e) => {
                tracing::warn!(
                    target: "tokengate::audit", error = %e, spill_file = %self.spill.path().display(),
                    "cannot set aside a batch the store refused; retrying later"
                );
                self.replay_paused = true;
            }
        }
    }
}
