//! The background writer: drains the bounded queue into the store in batches. When an insert
//! fails the batch goes to the spill file instead, and later batches follow it there until a
//! `ping` succeeds; then the spill file is replayed. Every event also goes to the optional
//! Bitbucket-shaped audit file. Retention runs beside it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};

use super::bitbucket::AuditFile;
use super::spill::{ReplayError, Spill};
use super::{AuditEvent, AuditSink, Coverage, retention};
use crate::config::AuditConfig;
use crate::metrics::Metrics;
use crate::store::TokenStore;

/// Most events in one batch, which the store writes at once (SQLite: one segment).
const BATCH: usize = 4096;
/// How long a batch that did not fill at once waits for more events. The writer does not
/// watch the queue meanwhile, so the requests that add events wake no thread: a busy gateway
/// costs the writer 50 wake-ups a second, not one per event. Short enough that the work
/// gathered meanwhile is a brief burst beside the proxy workers (at 65,000 events a second,
/// about a millisecond), which a longer wait made long enough to upset the scheduling of the
/// cores they share.
const LINGER: Duration = Duration::from_millis(20);
/// Time between store probes while events wait in the spill file or a batch is held.
const PROBE_EVERY: Duration = Duration::from_secs(3);
/// An insert not answered in this time counts as failed and its batch is spilled, so a stalled
/// store cannot fill the queue. (Should the abandoned insert still commit, that batch would be
/// stored twice: preferred to losing it.)
const INSERT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown may take to write out what is queued.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

/// The running writer and retention job; [`AuditWriter::shutdown`] writes out what is queued.
pub struct AuditWriter {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the writer (which first replays a spill file left by an earlier run) and the
/// retention job, and returns the sink that feeds the writer. `system` names the Bitbucket
/// instance in the audit file.
pub fn start(
    store: Arc<dyn TokenStore>,
    config: &AuditConfig,
    system: String,
    metrics: Arc<Metrics>,
) -> (AuditSink, AuditWriter) {
    let (stop, stop_rx) = watch::channel(false);
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let writer = Writer {
        store: Arc::clone(&store),
        metrics: Arc::clone(&metrics),
        spill: Spill::new(config.spill_file.clone()),
        file_path: config.file.clone(),
        file: None,
        file_failing: false,
        system,
        store_up: true,
        replay_paused: false,
        held: None,
    };
    let tasks = vec![
        tokio::spawn(writer.run(rx, stop_rx.clone())),
        retention::spawn(store, config.clone(), stop_rx),
    ];
    let tx = (config.coverage != Coverage::Off).then_some(tx);
    (
        AuditSink::new(config.coverage, tx, metrics),
        AuditWriter { stop, tasks },
    )
}

impl AuditWriter {
    /// Stops taking events and writes out what is queued: to the store, or to the spill file
    /// when the store does not answer within the bound. Sinks may still exist; what they send
    /// from now on is counted as dropped.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + SHUTDOWN_BOUND + Duration::from_secs(5);
        for mut task in self.tasks {
            if timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                tracing::warn!(target: "tokengate::audit", "the audit writer did not finish in time");
            }
        }
    }
}

struct Writer {
    store: Arc<dyn TokenStore>,
    metrics: Arc<Metrics>,
    spill: Spill,
    /// `audit.file`, and its handle while it is open (reopened after a write error).
    file_path: Option<PathBuf>,
    file: Option<AuditFile>,
    /// The last attempt to write the audit file failed (and was reported).
    file_failing: bool,
    system: String,
    /// False from a failed insert until a probe succeeds: batches go straight to the spill file.
    store_up: bool,
    /// Reading the spill file failed: wait for the next probe before replaying again.
    replay_paused: bool,
    /// A batch that neither the store nor the spill file took. The queue waits behind it (and
    /// events are dropped once it is full).
    held: Option<Vec<AuditEvent>>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<AuditEvent>, mut stop: watch::Receiver<bool>) {
        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let waiting = self.held.is_some()
                || (self.spill.pending() && (!self.store_up || self.replay_paused));
            tokio::select! {
                biased;
                () = stopped(&mut stop) => break,
                n = rx.recv_many(&mut batch, BATCH), if open && self.held.is_none() => {
                    if n == 0 {
                        open = false;
                        continue;
                    }
                    linger(&mut rx, &mut batch).await;
                    self.record(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).await;
                    // One replay step per batch, so a busy queue does not starve the replay.
                    if self.replay_due() {
                        self.replay_step().await;
                    }
                }
                _ = probe.tick(), if waiting => self.probe().await,
                () = std::future::ready(()), if self.replay_due() => self.replay_step().await,
            }
        }
        rx.close();
        self.finish(rx, Instant::now() + SHUTDOWN_BOUND).await;
    }

    fn replay_due(&self) -> bool {
        self.held.is_none() && self.store_up && !self.replay_paused && self.spill.pending()
    }

    async fn record(&mut self, batch: Vec<AuditEvent>) {
        self.append_to_file(&batch).await;
        self.persist(batch).await;
    }

    /// Inserts `batch`, or spills it, or holds it.
    async fn persist(&mut self, batch: Vec<AuditEvent>) {
        if self.store_up {
            match timeout(INSERT_TIMEOUT, self.store.insert_audit(&batch)).await {
                Ok(Ok(())) => {
                    self.metrics.audit_written.inc_by(batch.len() as u64);
                    return;
                }
                Ok(Err(e)) => tracing::warn!(
                    target: "tokengate::audit", error = %e, events = batch.len(), spill_file = %self.spill.path().display(),
                    "audit insert failed; spilling events until the store answers again"
                ),
                Err(_) => tracing::warn!(
                    target: "tokengate::audit", events = batch.len(), spill_file = %self.spill.path().display(),
                    "audit insert timed out; spilling events until the store answers again"
                ),
            }
            self.store_up = false;
        }
        match self.spill.append(&batch).await {
            Ok(()) => {
                self.metrics.audit_spilled.inc_by(batch.len() as u64);
            }
            Err(e) => {
                tracing::warn!(
                    target: "tokengate::audit", error = %e, events = batch.len(), spill_file = %self.spill.path().display(),
                    "cannot write the audit spill file; events wait in the queue"
                );
                self.held = Some(batch);
            }
        }
    }

    async fn probe(&mut self) {
        let up = self.store.ping().await.is_ok();
        if up && !self.store_up {
            tracing::info!(target: "tokengate::audit", "audit store reachable again");
        }
        self.store_up = up;
        self.replay_paused = false;
        if let Some(batch) = self.held.take() {
            self.persist(batch).await;
        }
    }

    async fn replay_step(&mut self) {
        match self.spill.replay_next(&*self.store).await {
            Ok(Some(step)) => {
                self.metrics.audit_written.inc_by(step.stored);
                if step.unreadable > 0 {
                    self.metrics.audit_dropped.inc_by(step.unreadable);
                    tracing::warn!(
                        target: "tokengate::audit", lines = step.unreadable, spill_file = %self.spill.path().display(),
                        "unreadable lines in the audit spill file skipped (a write cut short)"
                    );
                }
            }
            Ok(None) => {
                tracing::info!(target: "tokengate::audit", "audit spill file replayed into the store")
            }
            Err(ReplayError::Store(e)) => {
                tracing::warn!(target: "tokengate::audit", error = %e, "replaying the audit spill file failed; retrying when the store answers");
                self.store_up = false;
            }
            Err(e @ ReplayError::Io(_)) => {
                tracing::warn!(target: "tokengate::audit", error = %e, "replaying the audit spill file failed; retrying later");
                self.replay_paused = true;
            }
        }
    }

    async fn append_to_file(&mut self, batch: &[AuditEvent]) {
        let Some(path) = &self.file_path else { return };
        let result = match &mut self.file {
            Some(file) => file.append(batch, &self.system).await,
            None => match AuditFile::open(path).await {
                Ok(mut file) => {
                    let result = file.append(batch, &self.system).await;
                    self.file = Some(file);
                    result
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => self.file_failing = false,
            Err(e) => {
                self.file = None;
                if !std::mem::replace(&mut self.file_failing, true) {
                    tracing::warn!(target: "tokengate::audit", error = %e, file = %path.display(), "cannot write the audit file");
                }
            }
        }
    }

    /// At shutdown: everything queued goes to the store while it answers within `deadline`,
    /// else to the spill file; only what neither takes is lost (and counted).
    async fn finish(mut self, mut rx: mpsc::Receiver<AuditEvent>, deadline: Instant) {
        let mut batches: Vec<Vec<AuditEvent>> = self.held.take().into_iter().collect();
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            if rx.recv_many(&mut batch, BATCH).await == 0 {
                break;
            }
            self.append_to_file(&batch).await;
            batches.push(batch);
        }
        for batch in batches {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.store_up && !left.is_zero() {
                match timeout(left.min(INSERT_TIMEOUT), self.store.insert_audit(&batch)).await {
                    Ok(Ok(())) => {
                        self.metrics.audit_written.inc_by(batch.len() as u64);
                        continue;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(target: "tokengate::audit", error = %e, "audit insert failed at shutdown; spilling")
                    }
                    Err(_) => {
                        tracing::warn!(target: "tokengate::audit", "audit insert too slow at shutdown; spilling")
                    }
                }
                self.store_up = false;
            }
            match self.spill.append(&batch).await {
                Ok(()) => {
                    self.metrics.audit_spilled.inc_by(batch.len() as u64);
                }
                Err(e) => {
                    self.metrics.audit_dropped.inc_by(batch.len() as u64);
                    tracing::warn!(
                        target: "tokengate::audit", error = %e, dropped = batch.len(), spill_file = %self.spill.path().display(),
                        "audit events lost at shutdown: the store and the spill file are both unavailable"
                    );
                }
            }
        }
    }
}

/// Completes once `stop` turns true (or its sender is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Unless `batch` is already full, waits [`LINGER`] without polling the queue, then adds what
/// arrived meanwhile, up to [`BATCH`] events.
async fn linger(rx: &mut mpsc::Receiver<AuditEvent>, batch: &mut Vec<AuditEvent>) {
    if batch.len() >= BATCH {
        return;
    }
    tokio::time::sleep(LINGER).await;
    while batch.len() < BATCH {
        let Ok(event) = rx.try_recv() else { break };
        batch.push(event);
    }
}

#[cfg(test)]
mod tests;
