//! The proxy's worker threads, one per core as nginx runs its workers. Each thread runs a
//! single-threaded runtime that accepts from the one listening socket, so a request stays on
//! the thread that accepted its connection: parsed, decided, forwarded over that thread's own
//! upstream pool and answered without waking another thread. Shared state (token cache, rate
//! limits, audit queue) is thread-safe; store I/O runs on the control runtime (see
//! [`crate::store::StoreRuntime`]).

use std::io;
use std::net::TcpListener as StdListener;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use super::{Gateway, Limits, serve};

/// The running workers; [`Workers::stopped`] waits until each has drained.
#[derive(Debug)]
pub struct Workers {
    finished: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts `count` workers (at least one), named `http-nio-{port}-exec-{n}` from 1, that
    /// serve `listener` until `stop` turns true, each with the [`Gateway`] `gateway` makes for
    /// it. The listener may be dropped once this returns.
    ///
    /// # Errors
    ///
    /// A runtime, thread or socket handle the operating system refused.
    pub fn start(
        listener: &StdListener,
        count: usize,
        mut gateway: impl FnMut() -> Gateway,
        limits: Limits,
        stop: &watch::Receiver<bool>,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let mut finished = Vec::new();
        for n in 1..=count.max(1) {
            let name = format!("http-nio-{port}-exec-{n}");
            // Blocking tasks (argon2 verifications) run under the worker's name too, so every
            // line a request writes names a proxy worker.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(&name)
                .build()?;
            let listener = {
                let _entered = runtime.enter();
                TcpListener::from_std(listener.try_clone()?)?
            };
            let gateway = Arc::new(gateway());
            let mut stop = stop.clone();
            let (done, waiter) = oneshot::channel();
            std::thread::Builder::new().name(name).spawn(move || {
                let shutdown = async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                };
                runtime.block_on(serve(listener, gateway, limits, shutdown));
                drop(runtime);
                let _ = done.send(());
            })?;
            finished.push(waiter);
        }
        Ok(Self { finished })
    }

    /// Completes when every worker has stopped accepting, drained its requests (bounded by
    /// `proxy.shutdown_grace`) and shut its runtime down.
    pub async fn stopped(self) {
        for worker in self.finished {
            // An error means the thread ended without reporting: it is gone either way.
            let _ = worker.await;
        }
    }
}
