//! The drain of a listener's connections at shutdown: each open connection is told to finish
//! what it is serving and close (an idle keep-alive connection closes at once), and the
//! listener waits until all of them have.
//!
//! A watched connection is polled on every read and write of every request, so what the
//! watch costs there is an atomic load and a comparison of wakers. Its task's waker is
//! registered when first polled (again only should the task's waker change), and the drain
//! wakes every registered task once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use slab::Slab;
use tokio::sync::Notify;

/// The connections of one listener; [`Drain::shutdown`] drains them.
#[derive(Debug, Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

/// One open connection (or one being set up: a TLS handshake), which the drain waits for
/// until it is dropped.
#[derive(Debug)]
pub struct Watcher {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    draining: AtomicBool,
    /// The tasks of watched connections, woken once when draining starts.
    tasks: Mutex<Slab<Waker>>,
    /// Watchers not yet dropped.
    open: AtomicUsize,
    /// Told when the last watcher is dropped.
    closed: Notify,
}

impl Shared {
    fn tasks(&self) -> MutexGuard<'_, Slab<Waker>> {
        // A waker's clone, wake or drop panicking leaves the list itself intact.
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drain {
    pub fn new() -> Self {
        Self::default()
    }

    /// A watcher for a connection about to be served.
    pub fn watcher(&self) -> Watcher {
        self.shared.open.fetch_add(1, Ordering::Relaxed);
        Watcher {
            shared: Arc::clone(&self.shared),
        }
    }

    /// `connection`, watched.
    pub fn watch<C: GracefulConnection>(&self, connection: C) -> Watched<C> {
        self.watcher().watch(connection)
    }

    /// Tells every connection, open or opened later, to finish and close, at once; the future
    /// completes when every watcher is gone.
    pub fn shutdown(self) -> impl Future<Output = ()> {
        let shared = self.shared;
        shared.draining.store(true, Ordering::SeqCst);
        // Under the lock: a connection registering its task next sees `draining` (it reads it
        // under the same lock), and one registered before is woken here.
        for (_, task) in shared.tasks().iter() {
            task.wake_by_ref();
        }
        async move {
            loop {
                let closed = shared.closed.notified();
                tokio::pin!(closed);
                // Listening before looking: a watcher dropped in between still wakes this.
                closed.as_mut().enable();
                if shared.open.load(Ordering::SeqCst) == 0 {
                    return;
                }
                closed.await;
            }
        }
    }
}

impl Watcher {
    /// `connection`, which this watcher then stands for.
    pub fn watch<C: GracefulConnection>(self, connection: C) -> Watched<C> {
        Watched {
            connection,
            watcher: self,
            task: None,
            closing: false,
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.shared.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.closed.notify_waiters();
        }
    }
}

pin_project! {
    /// A connection the drain tells to close gracefully; it completes as the connection does.
    pub struct Watched<C> {
        #[pin]
        connection: C,
        watcher: Watcher,
        // The task's waker as registered, and its key in the drain's list.
        task: Option<(Waker, usize)>,
        closing: bool,
    }

    impl<C> PinnedDrop for Watched<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some((_, key)) = this.task.take() {
                this.watcher.shared.tasks().remove(key);
            }
        }
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.closing {
            let shared = &this.watcher.shared;
            let mut draining = shared.draining.load(Ordering::Acquire);
            let registered = matches!(this.task, Some((waker, _)) if waker.will_wake(cx.waker()));
            if !draining && !registered {
                let mut tasks = shared.tasks();
                draining = shared.draining.load(Ordering::SeqCst);
                if !draining {
                    let waker = cx.waker().clone();
                    match this.task {
                        Some((known, key)) => {
                            tasks[*key] = waker.clone();
                            *known = waker;
                        }
                        None => *this.task = Some((waker.clone(), tasks.insert(waker))),
                    }
                }
            }
            if draining {
                *this.closing = true;
                this.connection.as_mut().graceful_shutdown();
            }
        }
        this.connection.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use futures_util::poll;
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::sync::mpsc;

    use super::*;

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    /// Long enough for anything here; a connection never told to close would take forever.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// Reads one whole answer (its body is `ok`) from `client`.
    async fn answer(client: &mut DuplexStream) -> String {
        let mut seen = Vec::new();
        while !seen.ends_with(b"\r\n\r\nok") {
            let mut chunk = [0; 512];
            let n = client.read(&mut chunk).await.expect("read");
            assert_ne!(n, 0, "closed before the answer: {seen:?}");
            seen.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(seen).expect("text")
    }

    /// Waits for the drain's `shutdown` to complete.
    async fn drained(shutdown: impl Future<Output = ()>) {
        tokio::time::timeout(PATIENCE, shutdown)
            .await
            .expect("drained");
    }

    /// What `client` reads until the connection closes.
    async fn rest(client: &mut DuplexStream) -> String {
        let mut rest = Vec::new();
        tokio::time::timeout(PATIENCE, client.read_to_end(&mut rest))
            .await
            .expect("the connection closed")
            .expect("read to the end");
        String::from_utf8_lossy(&rest).into_owned()
    }

    /// A keep-alive connection served by `watcher`: the client's end, where each request is
    /// announced, and where its answer (`ok`) is released, a unit each.
    fn connection(
        watcher: Watcher,
    ) -> (
        DuplexStream,
        mpsc::UnboundedReceiver<()>,
        mpsc::UnboundedSender<()>,
    ) {
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let (release, released) = mpsc::unbounded_channel();
        let released = Arc::new(tokio::sync::Mutex::new(released));
        let (client, server) = tokio::io::duplex(4096);
        let service = service_fn(move |_: hyper::Request<Incoming>| {
            let (arrived, released) = (arrived.clone(), Arc::clone(&released));
            async move {
                let _ = arrived.send(());
                released.lock().await.recv().await;
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        });
        let connection = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(server), service);
        tokio::spawn(watcher.watch(connection));
        (client, arrivals, release)
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_and_the_drain_completes() {
        let drain = Drain::new();
        let (mut client, _arrivals, release) = connection(drain.watcher());
        release.send(()).unwrap();
        client.write_all(REQUEST).await.unwrap();
        let first = answer(&mut client).await;
        assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
        assert!(
            !first.to_ascii_lowercase().contains("connection: close"),
            "{first}"
        );
        drained(drain.shutdown()).await;
        assert_eq!(rest(&mut client).await, "", "nothing after the answer");
    }

    #[tokio::test]
    async fn a_request_in_flight_is_answered_then_its_connection_closes() {
        let drain = Drain::new();
        let (mut client, mut arrivals, release) = connection(drain.watcher());
        client.write_all(REQUEST).await.unwrap();
        arrivals.recv().await.expect("the request arrived");
        let shutdown = drain.shutdown();
        tokio::pin!(shutdown);
        assert!(
            poll!(shutdown.as_mut()).is_pending(),
            "the connection is open"
        );
        release.send(()).unwrap();
        let answered = answer(&mut client).await;
        assert!(answered.starts_with("HTTP/1.1 200 OK"), "{answered}");
        assert!(
            answered.to_ascii_lowercase().contains("connection: close"),
            "the answer says the connection closes: {answered}"
        );
        assert_eq!(rest(&mut client).await, "", "nothing after the answer");
        drained(shutdown).await;
    }

    /// A drain begun while a watcher is held, as a TLS connection's watcher is from accept to
    /// the end of its handshake: the watcher, and the drain's `shutdown`, pending.
    async fn begun_while_handshaking() -> (Watcher, Pin<Box<impl Future<Output = ()>>>) {
        let drain = Drain::new();
        let handshaking = drain.watcher();
        let mut shutdown = Box::pin(drain.shutdown());
        assert!(poll!(shutdown.as_mut()).is_pending(), "the watcher is held");
        (handshaking, shutdown)
    }

    #[tokio::test]
    async fn a_connection_served_after_the_drain_began_is_closed_too() {
        let (handshaking, shutdown) = begun_while_handshaking().await;
        let (mut client, _arrivals, release) = connection(handshaking);
        release.send(()).unwrap();
        client.write_all(REQUEST).await.unwrap();
        let told = rest(&mut client).await;
        assert!(
            told.is_empty() || told.to_ascii_lowercase().contains("connection: close"),
            "closed, at most after one answer: {told}"
        );
        drained(shutdown).await;
    }

    #[tokio::test]
    async fn the_drain_waits_for_a_watcher_until_it_is_dropped() {
        let (handshaking, shutdown) = begun_while_handshaking().await;
        drop(handshaking);
        drained(shutdown).await;
    }
}
