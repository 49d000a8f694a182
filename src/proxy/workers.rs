//! The proxy's worker threads, one per core as nginx runs its workers. Each thread runs a
//! single-threaded runtime that accepts on its own handle (a dup) of the one listening socket,
//! so a request stays on the thread that accepted its connection: parsed, decided, forwarded
//! over that thread's own upstream pool and answered without waking another thread. An idle
//! worker wakes first for a new connection, so the busy ones get fewer. One socket, bound
//! without `SO_REUSEPORT`, also means a second gateway on the same address fails to start
//! instead of quietly taking part of the traffic. Shared state (token cache, rate limits, audit
//! queue) is thread-safe; store I/O runs on the control runtime (see
//! [`crate::store::StoreRuntime`]).

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::{Gateway, Limits, serve};
use crate::shutdown::Shutdown;
use crate::tls::Acceptor;

/// Pending connections the listening socket queues before the kernel refuses more.
const BACKLOG: i32 = 1024;

/// Binds the proxy's listening socket on `addr`.
///
/// # Errors
///
/// The address is taken (`AddrInUse`, whatever socket options the other listener has), not
/// local, or not permitted.
pub fn bind(addr: SocketAddr) -> io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Rebinding over connections of a previous run in TIME_WAIT; on Linux this never lets
    // two sockets listen on one address.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// How far ahead [`anchor_timers`] keeps a timer set.
const TIMER_ANCHOR: Duration = Duration::from_secs(1);

/// Keeps a timer due within [`TIMER_ANCHOR`] on this worker's runtime, for as long as it runs.
///
/// Every request arms timers (the header read timeout, the upstream response timeout) and
/// drops them when it is done. tokio wakes the runtime's driver (an `eventfd` write, then an
/// extra `epoll_wait`) whenever a timer is armed that is due before every other one, which
/// without an earlier timer is each request's first: two system calls per request for a wake
/// that is never needed, since the worker is running. With this earlier timer always set, a
/// new request's timers are never the earliest.
async fn anchor_timers() {
    let mut tick = tokio::time::interval(TIMER_ANCHOR);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// The running workers; [`Workers::closed`] waits until each has closed its listening
/// socket, [`Workers::stopped`] until each has drained.
#[derive(Debug)]
pub struct Workers {
    closed: Vec<oneshot::Receiver<()>>,
    finished: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts `count` workers (at least one), named `http-nio-{port}-exec-{n}` from 1, that
    /// serve until `stop` turns true, each with the [`Gateway`] `gateway` makes for it, all
    /// accepting on `listener` (made by [`bind`]). With `tls`, every worker serves TLS with it.
    ///
    /// # Errors
    ///
    /// A runtime, thread or socket the operating system refused.
    pub fn start(
        listener: StdListener,
        count: usize,
        mut gateway: impl FnMut() -> Gateway,
        limits: Limits,
        tls: Option<&Acceptor>,
        shutdown: &Shutdown,
    ) -> io::Result<Self> {
        let port = listener.local_addr()?.port();
        let mut closed = Vec::new();
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
                let own = listener.try_clone()?;
                own.set_nonblocking(true)?;
                TcpListener::from_std(own)?
            };
            let gateway = Arc::new(gateway());
            let tls = tls.cloned();
            let mut stop = shutdown.clone();
            let (done, waiter) = oneshot::channel();
            let (on_closed, closed_waiter) = oneshot::channel();
            std::thread::Builder::new().name(name).spawn(move || {
                let shutdown = async move { stop.stopped().await };
                runtime.block_on(async move {
                    let anchor = tokio::spawn(anchor_timers());
                    serve(listener, gateway, limits, tls, shutdown, on_closed).await;
                    anchor.abort();
                });
                drop(runtime);
                let _ = done.send(());
            })?;
            closed.push(closed_waiter);
            finished.push(waiter);
        }
        // Every worker holds a handle of its own: the socket closes when the last of them does.
        drop(listener);
        Ok(Self { closed, finished })
    }

    /// Completes when every worker has closed its listening socket (after `stop` turned
    /// true): from then on a new connection to the proxy port is refused.
    pub async fn closed(&mut self) {
        for worker in self.closed.drain(..) {
            // An error means the thread ended without reporting: its socket is gone either way.
            let _ = worker.await;
        }
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
