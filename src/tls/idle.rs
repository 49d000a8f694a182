//! An idle limit for HTTP/2 connections, which hyper does not close on its own: requests are
//! counted from arrival to their response head, and a connection with none open for the
//! listener's `header_read_timeout` is closed gracefully (GOAWAY), as an idle HTTP/1.1
//! keep-alive connection is closed after that time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::Service;
use tokio::sync::Notify;

/// Requests open on one connection.
#[derive(Debug, Default)]
pub(super) struct Idle {
    open: AtomicUsize,
    changed: Notify,
}

/// Marks one request open until dropped.
struct Open(Arc<Idle>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl Idle {
    fn open(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        Open(Arc::clone(self))
    }

    /// Completes once no request has been open for `after`.
    pub(super) async fn expired(&self, after: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the count is read, so no change in between is missed.
            changed.as_mut().enable();
            if self.open.load(Ordering::SeqCst) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(after) => return,
                    () = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// `inner`, counting its requests in `idle`.
#[derive(Clone)]
pub(super) struct Counted<S> {
    pub(super) inner: S,
    pub(super) idle: Arc<Idle>,
}

impl<S> Service<Request<Incoming>> for Counted<S>
where
    S: Service<Request<Incoming>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let open = self.idle.open();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(open);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_only_after_a_quiet_period_with_nothing_open() {
        let idle = Arc::new(Idle::default());
        let open = idle.open();
        let waiting = {
            let idle = Arc::clone(&idle);
            tokio::spawn(async move { idle.expired(Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished(), "expired with a request open");
        drop(open);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let again = idle.open();
        drop(again);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(
            !waiting.is_finished(),
            "a request 9 s ago restarts the wait"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        waiting.await.unwrap();
    }
}
