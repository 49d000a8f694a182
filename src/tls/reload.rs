//! Reloading the listeners' pairs without a restart: at once on SIGHUP, and when their files
//! change, once the directories holding them have been quiet for [`SETTLE`], so a renewal that
//! replaces the certificate and the key one after the other is read as one change.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::Notify;

use super::{ServerCert, Trigger};
use crate::shutdown::Shutdown;

/// How long the watched directories must stay quiet after a change before the files are read.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Starts reloading `certs` on SIGHUP and on changes of their files, until `stop` fires.
/// SIGHUP is handled (no longer ends the process) from when this returns.
pub fn spawn(certs: Vec<Arc<ServerCert>>, mut stop: Shutdown) -> tokio::task::JoinHandle<()> {
    let hangup = hangup_signal();
    let changed = Arc::new(Notify::new());
    let mut watching = Watching::new(Arc::clone(&changed));
    watching.sync(&certs);
    tokio::spawn(async move {
        let mut hangup = hangup;
        loop {
            tokio::select! {
                () = next_hangup(&mut hangup) => {
                    tracing::info!(target: "tokengate::tls", "SIGHUP received: reloading the TLS certificates");
                    for cert in &certs {
                        cert.reload(Trigger::Signal);
                    }
                }
                () = changed.notified() => {
                    // Quiet for SETTLE first: each further change starts the wait again.
                    loop {
                        tokio::select! {
                            () = changed.notified() => {}
                            () = tokio::time::sleep(SETTLE) => break,
                            () = stop.stopped() => return,
                        }
                    }
                    for cert in &certs {
                        cert.reload(Trigger::Files);
                    }
                }
                () = stop.stopped() => return,
            }
            watching.sync(&certs);
        }
    })
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(target: "tokengate::tls", error = %e, "cannot handle SIGHUP; certificates are reloaded when their files change only");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

/// Completes at the next SIGHUP; never without one.
async fn next_hangup(hangup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(signal) = hangup {
        if signal.recv().await.is_some() {
            return;
        }
        *hangup = None;
    }
    let _ = hangup;
    std::future::pending::<()>().await;
}

/// The file watcher and the directories it watches.
struct Watching {
    watcher: Option<RecommendedWatcher>,
    dirs: BTreeSet<PathBuf>,
}

impl Watching {
    /// A watcher that wakes `changed` on every change in a watched directory (reads of the
    /// files are not changes).
    fn new(changed: Arc<Notify>) -> Self {
        let handler = move |event: notify::Result<notify::Event>| match event {
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
            // An error may hide a change (the kernel's queue overflowed, say): check.
            Ok(_) | Err(_) => changed.notify_one(),
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                tracing::warn!(target: "tokengate::tls", error = %e, "cannot watch the certificate files; they are reloaded on SIGHUP only");
                None
            }
        };
        Self {
            watcher,
            dirs: BTreeSet::new(),
        }
    }

    /// Watches the directories `certs` depend on now (symbolic links may lead elsewhere after
    /// a change) and no others.
    fn sync(&mut self, certs: &[Arc<ServerCert>]) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let wanted: BTreeSet<PathBuf> = certs.iter().flat_map(|c| c.directories()).collect();
        for gone in self.dirs.difference(&wanted) {
            // It may have been removed already, which ended the watch.
            let _ = watcher.unwatch(gone);
        }
        let mut watched = BTreeSet::new();
        for dir in wanted {
            if self.dirs.contains(&dir) {
                watched.insert(dir);
                continue;
            }
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(dir);
                }
                Err(e) => {
                    tracing::warn!(target: "tokengate::tls", dir = %dir.display(), error = %e, "cannot watch a certificate directory; its changes are picked up on SIGHUP");
                }
            }
        }
        self.dirs = watched;
    }
}
