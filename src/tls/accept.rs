//! The server side of a TLS listener: the handshake (TLS 1.2 and 1.3, ALPN `h2` and
//! `http/1.1`, bounded in time) and one connection served as HTTP/1.1 or HTTP/2, as ALPN chose,
//! each closed when idle and drained at shutdown.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::{http1, http2};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::idle::{Counted, Idle};
use super::{ServerCert, provider};
use crate::shutdown::{Shutdown, Watcher};

/// The application protocols offered, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Concurrent HTTP/2 streams per connection.
const MAX_STREAMS: u32 = 256;

/// The HTTP protocol a connection speaks after its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    Http1,
    Http2,
}

/// Accepts TLS connections with the pair of one [`ServerCert`] (reloaded in place).
#[derive(Clone)]
pub struct Acceptor {
    inner: TlsAcceptor,
    /// Time allowed for a handshake.
    timeout: Duration,
}

impl Acceptor {
    /// An acceptor serving `cert`'s pair, allowing each handshake `timeout`.
    pub fn new(cert: Arc<ServerCert>, timeout: Duration) -> Self {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(super::VERSIONS)
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(cert);
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Self {
            inner: TlsAcceptor::from(Arc::new(config)),
            timeout,
        }
    }

    /// Completes the handshake of a new connection. `None` when the client did not: it spoke
    /// plain HTTP, offered only older TLS versions, or stayed silent (after which rustls has
    /// sent an alert where it could, and the connection is closed).
    pub async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(TlsStream<TcpStream>, Alpn)> {
        match tokio::time::timeout(self.timeout, self.inner.accept(stream)).await {
            Ok(Ok(stream)) => {
                let alpn = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Alpn::Http2,
                    _ => Alpn::Http1,
                };
                Some((stream, alpn))
            }
            Ok(Err(e)) => {
                tracing::debug!(target: "tokengate::tls", %peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(target: "tokengate::tls", %peer, "no TLS handshake within the header read timeout");
                None
            }
        }
    }
}

/// The HTTP/1.1 and HTTP/2 connection settings of one listener.
#[derive(Clone)]
pub struct Http {
    pub http1: http1::Builder,
    pub http2: http2::Builder<TokioExecutor>,
    /// How long an HTTP/2 connection may have no request open before it is closed (HTTP/1.1's
    /// is `http1`'s header read timeout).
    idle_timeout: Duration,
    /// Fires when the listener shuts down: an HTTP/2 connection is then drained.
    stop: Shutdown,
}

impl Http {
    /// `http1` as given; HTTP/2 with the same limit on a request head, closed after
    /// `idle_timeout` without a request and drained once `stop` fires.
    pub fn new(
        http1: http1::Builder,
        max_header_bytes: usize,
        idle_timeout: Duration,
        stop: Shutdown,
    ) -> Self {
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX));
        Self {
            http1,
            http2,
            idle_timeout,
            stop,
        }
    }
}

/// Serves one TLS connection (its stream after the handshake, which the caller may wrap) with
/// `service`, as HTTP/2 or HTTP/1.1 as `alpn` says, until it ends, has been idle too long, or
/// the listener's shutdown has drained it (`watcher` keeps that shutdown waiting for it).
///
/// # Errors
///
/// The connection failed (the client reset it, sent something that is not HTTP, ...).
pub async fn serve_connection<T, S, B>(
    stream: T,
    alpn: Alpn,
    http: &Http,
    service: S,
    watcher: Watcher,
) -> Result<(), hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<
            std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<Response<B>, S::Error>> + Send>,
            >,
            B,
        >,
{
    let io = TokioIo::new(stream);
    match alpn {
        Alpn::Http2 => {
            let _draining = watcher;
            let idle = Arc::new(Idle::default());
            let service = Counted {
                inner: service,
                idle: Arc::clone(&idle),
            };
            let connection = http.http2.serve_connection(io, service);
            tokio::pin!(connection);
            let mut stop = http.stop.clone();
            let mut closing = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => return result,
                    () = stop.stopped(), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    () = idle.expired(http.idle_timeout), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
        Alpn::Http1 => {
            watcher
                .watch(http.http1.serve_connection(io, service))
                .await
        }
    }
}
