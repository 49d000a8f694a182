//! Bitbucket's response body, which gives its connection back to the pool once read to its
//! end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

use super::Pool;

/// A response body from Bitbucket that holds its connection until the body ends.
pub struct UpstreamBody {
    body: Incoming,
    /// The connection, and where it goes back; `None` once it went back, or when the body
    /// broke off (the connection is then closed).
    home: Option<Home>,
}

struct Home {
    sender: SendRequest<Incoming>,
    pool: Arc<Pool>,
}

impl UpstreamBody {
    /// `body`, read over `sender`'s connection of `pool`. A body that is empty already gives
    /// the connection back.
    pub(in crate::proxy) fn new(
        body: Incoming,
        sender: SendRequest<Incoming>,
        pool: Arc<Pool>,
    ) -> Self {
        if body.is_end_stream() {
            pool.put(sender);
            return Self { body, home: None };
        }
        Self {
            body,
            home: Some(Home { sender, pool }),
        }
    }

    fn go_home(&mut self) {
        if let Some(home) = self.home.take() {
            home.pool.put(home.sender);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.go_home(),
            // The last frame: the body's reader may not ask again. Trailers come last.
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() || self.body.is_end_stream() => {
                self.go_home();
            }
            Poll::Ready(Some(Err(_))) => self.home = None,
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
