//! `Content-Length` beside `Transfer-Encoding`, seen on the wire. hyper frames such a request's
//! body as chunked and drops the length from the headers, so the service cannot tell it from a
//! plain chunked request; a balancer in front that went by the length would disagree with us on
//! where the request ends.
//!
//! [`Watched`] wraps a connection's stream and hands every byte hyper reads to a
//! [`Scan`](super::scan) of the request heads; [`Heads`] then tells the service which request,
//! counted on the connection, carried both.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};

use http::Request;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::LengthWithChunked;
use super::scan::Scan;

/// What [`Watched`] learnt about a connection's heads, for its service.
#[derive(Debug, Default)]
pub(in crate::proxy) struct Heads {
    /// Requests handed to the service so far.
    requests: AtomicU32,
    /// The place (from 1) of the first head with both lengths; 0 for none yet.
    both_lengths: AtomicU32,
}

impl Heads {
    /// Counts `request`, the connection's next one (hyper hands them over in the order of
    /// their heads, each after its head was read), and marks it with [`LengthWithChunked`]
    /// when its head carried both lengths.
    pub(in crate::proxy) fn mark<B>(&self, request: &mut Request<B>) {
        let place = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if self.both_lengths.load(Ordering::Relaxed) == place {
            request.extensions_mut().insert(LengthWithChunked);
        }
    }
}

/// A connection's stream whose request heads are watched on their way to hyper.
#[derive(Debug)]
pub(in crate::proxy) struct Watched<T> {
    io: T,
    scan: Scan,
    heads: Arc<Heads>,
}

impl<T> Watched<T> {
    pub(in crate::proxy) fn new(io: T, heads: Arc<Heads>) -> Self {
        Self {
            io,
            scan: Scan::default(),
            heads,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if let Some(place) = this.scan.feed(&buf.filled()[before..]) {
            this.heads.both_lengths.store(place, Ordering::Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_go_to_the_request_in_the_heads_place() {
        let heads = Heads::default();
        heads.both_lengths.store(2, Ordering::Relaxed);
        let marked: Vec<bool> = (0..3)
            .map(|_| {
                let mut request = Request::new(());
                heads.mark(&mut request);
                request.extensions().get::<LengthWithChunked>().is_some()
            })
            .collect();
        assert_eq!(marked, [false, true, false]);
    }
}
