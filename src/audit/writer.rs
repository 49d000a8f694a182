//! The background writer: drains the bounded queue into the store in batches. When an insert
//! fails the batch goes to the spill file instead, and later batches follow it there until a
//! `ping` succeeds; then the spill file is replayed. A replay that fails while the store
//! answers its ping does not stop live inserts: the batch is retried at each probe and, after
//! [`REPLAY_ATTEMPTS`] failures, set aside in a file of its own. Every store call is bounded
//! in time, and at shutdown by one deadline, after which what is left is spilled. Every event
//! also goes to the optional Bitbucket-shaped audit file. Retention runs beside it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};

use super::bitbucket::AuditFile;
use super::spill::Spill;
use super::{AuditEvent, AuditSettings, AuditSink, Coverage, retention};
use crate::metrics::Metrics;
use crate::shutdown;
use crate::store::AuditStore;

/// Most events in one batch, which the store writes at once (SQLite: one segment).
const BATCH: usize = 4096;
/// How long a batch that did not fill at once waits for more events. The writer does not
/// watch the queue meanwhile, so the requests that add events wake no thread: a busy gateway
/// costs the writer 50 wake-ups a second, not one per event. Short enough that the work
/// gathered meanwhile is a brief burst beside the proxy workers (at 65,000 events a second,
/// about a millisecond); a longer wait makes it long enough to upset the scheduling of the
/// cores they share.
const LINGER: Duration = Duration::from_millis(20);
/// Failed replays of one batch of the spill file, each while the store answered its ping,
/// before that batch is set aside (see [`Spill::set_aside`]).
const REPLAY_ATTEMPTS: u32 = 3;

/// The writer's time limits.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// A store call (an insert, a replay step's lookup and insert, a ping) not answered in
    /// this time counts as failed: an insert's batch is spilled, so a stalled store cannot
    /// fill the queue. (Should the abandoned insert still commit, that batch would be stored
    /// twice: preferred to losing it.)
    store_call: Duration,
    /// Time between store probes while events wait in the spill file or a batch is held.
    probe_every: Duration,
    /// From [`AuditWriter::shutdown`], how long the store may take what is queued; what it
    /// has not taken by then is spilled.
    shutdown_store: Duration,
    /// Then how long spilling may take; after that the writer is stopped and what it still
    /// held is counted as lost.
    shutdown_spill: Duration,
}

impl Timing {
    const DEFAULT: Self = Self {
        store_call: Duration::from_secs(10),
        probe_every: Duration::from_secs(3),
        shutdown_store: Duration::from_secs(10),
        shutdown_spill: Duration::from_secs(5),
    };
}

/// The running writer and retention job; [`AuditWriter::shutdown`] writes out what is queued.
pub struct AuditWriter {
    /// Stops the retention job.
    stop: shutdown::Trigger,
    /// Stops the writer: the deadline for its store calls.
    deadline: watch::Sender<Option<Instant>>,
    writer: JoinHandle<()>,
    retention: JoinHandle<()>,
    /// The writer's queue, to count what is left in it should the writer have to be stopped.
    queue: mpsc::Sender<AuditEvent>,
    /// Events the writer took from the queue and has not yet stored, spilled or counted.
    in_hand: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    timing: Timing,
}

/// Starts the writer (which first replays a spill file left by an earlier run) and the
/// retention job, and returns the sink that feeds the writer. `system` names the Bitbucket
/// instance in the audit file.
pub fn start(
    store: Arc<dyn AuditStore>,
    config: &AuditSettings,
    system: String,
    metrics: Arc<Metrics>,
) -> (AuditSink, AuditWriter) {
    start_timed(store, config, system, metrics, Timing::DEFAULT)
}

fn start_timed(
    store: Arc<dyn AuditStore>,
    config: &AuditSettings,
    system: String,
    metrics: Arc<Metrics>,
    timing: Timing,
) -> (AuditSink, AuditWriter) {
    let (stop, stop_rx) = shutdown::signal();
    let (deadline, deadline_rx) = watch::channel(None);
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let in_hand = Arc::new(AtomicU64::new(0));
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
        replay_failures: 0,
        held: None,
        deadline: deadline_rx,
        in_hand: Arc::clone(&in_hand),
        timing,
    };
    let writer = tokio::spawn(writer.run(rx));
    let retention = retention::spawn(store, config.clone(), stop_rx);
    let sink_tx = (config.coverage != Coverage::Off).then(|| tx.clone());
    (
        AuditSink::new(config.coverage, sink_tx, Arc::clone(&metrics)),
        AuditWriter {
            stop,
            deadline,
            writer,
            retention,
            queue: tx,
            in_hand,
            metrics,
            timing,
        },
    )
}

impl AuditWriter {
    /// Stops taking events and writes out what is queued: to the store while it answers within
    /// the bound, then to the spill file. Only if the spill file takes no writes either is
    /// anything lost, and that is counted in `audit_dropped`. Sinks may still exist; what they
    /// send from now on is counted as dropped.
    pub async fn shutdown(self) {
        let deadline = Instant::now() + self.timing.shutdown_store;
        let hard = deadline + self.timing.shutdown_spill;
        let _ = self.deadline.send(Some(deadline));
        self.stop.stop();
        let mut writer = self.writer;
        if timeout_at(hard, &mut writer).await.is_err() {
            // Counted before the task goes, and its queue and batches with it.
            let queued = self.queue.max_capacity() - self.queue.capacity();
            writer.abort();
            let _ = writer.await;
            let lost = queued as u64 + self.in_hand.load(Ordering::SeqCst);
            self.metrics.audit_dropped.inc_by(lost);
            tracing::error!(
                target: "tokengate::audit", lost,
                "the audit writer did not finish in time (the spill file took no writes): events it had not stored or spilled are lost"
            );
        }
        let mut retention = self.retention;
        if timeout_at(hard, &mut retention).await.is_err() {
            retention.abort();
            tracing::warn!(target: "tokengate::audit", "the audit retention job did not finish in time");
        }
    }
}

struct Writer {
    store: Arc<dyn AuditStore>,
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
    /// A replay step failed (reading the spill file, or a batch the store refused while it
    /// answered): wait for the next probe before replaying again.
    replay_paused: bool,
    /// Failed replays of the batch at the head of the spill file since one last succeeded,
    /// counted only while the store answered its ping.
    replay_failures: u32,
    /// A batch that neither the store nor the spill file took. The queue waits behind it (and
    /// events are dropped once it is full).
    held: Option<Vec<AuditEvent>>,
    /// Set at shutdown: the deadline of every store call.
    deadline: watch::Receiver<Option<Instant>>,
    /// Events taken from the queue and not yet stored, spilled or counted as dropped.
    in_hand: Arc<AtomicU64>,
    timing: Timing,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<AuditEvent>) {
        let mut probe = tokio::time::interval(self.timing.probe_every);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = self.deadline.clone();
        let mut open = true;
        let mut batch = Vec::with_capacity(BATCH);
        let deadline = loop {
            let waiting = self.held.is_some()
                || (self.spill.pending() && (!self.store_up || self.replay_paused));
            tokio::select! {
                biased;
                deadline = stop_requested(&mut stop) => break deadline,
                n = rx.recv_many(&mut batch, BATCH), if open && self.held.is_none() => {
                    if n == 0 {
                        open = false;
                        continue;
                    }
                    self.taken(n);
                    let more = linger(&mut rx, &mut batch).await;
                    self.taken(more);
                    self.record(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).await;
                    // One replay step per batch, so a busy queue does not starve the replay.
                    if self.replay_due() {
                        self.replay_step().await;
                    }
                }
                _ = probe.tick(), if waiting => self.probe().await,
                () = std::future::ready(()), if self.replay_due() => self.replay_step().await,
            }
        };
        let deadline = deadline.unwrap_or_else(|| Instant::now() + self.timing.shutdown_store);
        self.finish(rx, deadline).await;
    }

    fn replay_due(&self) -> bool {
        self.held.is_none() && self.store_up && !self.replay_paused && self.spill.pending()
    }

    /// `n` events were taken from the queue.
    fn taken(&self, n: usize) {
        self.in_hand.fetch_add(n as u64, Ordering::SeqCst);
    }

    /// `n` taken events were stored, spilled or counted as dropped.
    fn settled(&self, n: usize) {
        self.in_hand.fetch_sub(n as u64, Ordering::SeqCst);
    }

    async fn record(&mut self, batch: Vec<AuditEvent>) {
        self.append_to_file(&batch).await;
        self.persist(batch).await;
    }

    /// Inserts `batch`, or spills it, or holds it.
    async fn persist(&mut self, batch: Vec<AuditEvent>) {
        if self.store_up {
            let insert = timeout(self.timing.store_call, self.store.insert_audit(&batch));
            let why = match before_deadline(&self.deadline, insert).await {
                Some(Ok(Ok(()))) => {
                    self.metrics.audit_written.inc_by(batch.len() as u64);
                    self.settled(batch.len());
                    return;
                }
                Some(Ok(Err(e))) => e.to_string(),
                Some(Err(_)) => "timed out".to_owned(),
                None => "cut off by the shutdown deadline".to_owned(),
            };
            tracing::warn!(
                target: "tokengate::audit", error = why, events = batch.len(), spill_file = %self.spill.path().display(),
                "audit insert failed; spilling events until the store answers again"
            );
            self.store_up = false;
        }
        match self.spill.append(&batch).await {
            Ok(()) => {
                self.metrics.audit_spilled.inc_by(batch.len() as u64);
                self.settled(batch.len());
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

    /// At shutdown: everything queued goes to the store while it answers before `deadline`,
    /// else to the spill file; only what neither takes is lost (and counted).
    async fn finish(mut self, mut rx: mpsc::Receiver<AuditEvent>, deadline: Instant) {
        rx.close();
        let mut batches: Vec<Vec<AuditEvent>> = self.held.take().into_iter().collect();
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            let n = rx.recv_many(&mut batch, BATCH).await;
            if n == 0 {
                break;
            }
            self.taken(n);
            self.append_to_file(&batch).await;
            batches.push(batch);
        }
        for batch in batches {
            if self.store_up && Instant::now() < deadline {
                let limit = deadline.min(Instant::now() + self.timing.store_call);
                match timeout_at(limit, self.store.insert_audit(&batch)).await {
                    Ok(Ok(())) => {
                        self.metrics.audit_written.inc_by(batch.len() as u64);
                        self.settled(batch.len());
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
                    tracing::error!(
                        target: "tokengate::audit", error = %e, dropped = batch.len(), spill_file = %self.spill.path().display(),
                        "audit events lost at shutdown: the store and the spill file are both unavailable"
                    );
                }
            }
            self.settled(batch.len());
        }
    }
}

/// Completes once a shutdown deadline is set, with it; with `None` when the [`AuditWriter`]
/// is gone without setting one.
async fn stop_requested(stop: &mut watch::Receiver<Option<Instant>>) -> Option<Instant> {
    stop.wait_for(Option::is_some).await.ok().and_then(|d| *d)
}

/// Runs `work` unless the shutdown deadline passes first (then `None`, and `work` is dropped).
async fn before_deadline<T>(
    stop: &watch::Receiver<Option<Instant>>,
    work: impl Future<Output = T>,
) -> Option<T> {
    let mut stop = stop.clone();
    let passed = async {
        match stop_requested(&mut stop).await {
            Some(deadline) => sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        out = work => Some(out),
        () = passed => None,
    }
}

/// Unless `batch` is already full, waits [`LINGER`] without polling the queue, then adds what
/// arrived meanwhile, up to [`BATCH`] events. Returns how many it added.
async fn linger(rx: &mut mpsc::Receiver<AuditEvent>, batch: &mut Vec<AuditEvent>) -> usize {
    let before = batch.len();
    if before >= BATCH {
        return 0;
    }
    tokio::time::sleep(LINGER).await;
    while batch.len() < BATCH {
        let Ok(event) = rx.try_recv() else { break };
        batch.push(event);
    }
    batch.len() - before
}

mod replay;
#[cfg(test)]
mod tests;
