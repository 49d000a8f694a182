//! The stop signal of background tasks and listeners, and the two waits every such task
//! shares: until stopped, and a job on a fixed interval until stopped; and the drain of a
//! listener's connections ([`Drain`]).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

mod drain;

pub use drain::{Drain, Watched, Watcher};

/// Sends the stop signal to every [`Shutdown`] made with it. Dropping it stops them too.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Hears the stop signal of one [`Trigger`]; clone it for each task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new signal: the trigger and its first listener.
pub fn signal() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Tells every listener to stop; idempotent.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Completes once the trigger fired (or is gone).
    pub async fn stopped(&mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }

    /// Runs `work` now and then every `period` until stopped. A run in progress finishes; a
    /// tick missed while it ran is delayed, not caught up.
    pub fn every<F, Fut>(mut self, period: Duration, work: F) -> JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => work().await,
                    () = self.stopped() => break,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    #[tokio::test]
    async fn every_runs_on_each_tick_until_stopped() {
        let (trigger, shutdown) = signal();
        let (ran, mut runs) = mpsc::unbounded_channel();
        let task = shutdown.every(Duration::from_millis(5), move || {
            let ran = ran.clone();
            async move {
                let _ = ran.send(());
            }
        });
        for _ in 0..3 {
            runs.recv().await.expect("a run on each tick");
        }
        trigger.stop();
        task.await.unwrap();
        while runs.try_recv().is_ok() {}
        assert!(
            runs.recv().await.is_none(),
            "the task ended, and its job with it"
        );
    }

    #[tokio::test]
    async fn a_dropped_trigger_stops_too() {
        let (trigger, mut shutdown) = signal();
        drop(trigger);
        shutdown.stopped().await;
    }
}
