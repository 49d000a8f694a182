//! The proxy listener: HTTP/1.1 connections with header size and read-time limits (with TLS,
//! HTTP/2 too, as ALPN chooses), graceful shutdown that stops accepting and drains in-flight
//! requests within a grace period.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::framing::{Heads, Watched};
use super::respond::ProxyBody;
use super::{Gateway, service};
use crate::shutdown::{Drain, Watcher};
use crate::tls::{self, Acceptor, Http};

/// Connection limits of the proxy listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub shutdown_grace: Duration,
}

/// Serves the proxy on `listener` (TLS with `tls`) until `shutdown` completes, then closes it
/// (and reports that on `closed`) and drains.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    limits: Limits,
    tls: Option<Acceptor>,
    shutdown: impl Future<Output = ()>,
    closed: tokio::sync::oneshot::Sender<()>,
) {
    let graceful = Drain::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192) * 2)
        .keep_alive(true);
    let (stop_tls, tls_stop) = crate::shutdown::signal();
    let tls = tls.map(|acceptor| {
        let http = Http::new(
            builder.clone(),
            limits.max_header_bytes,
            limits.header_read_timeout,
            tls_stop,
        );
        (acceptor, Arc::new(http))
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(target: "tokengate::proxy", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        if let Some((acceptor, http)) = &tls {
            tokio::spawn(serve_tls(
                acceptor.clone(),
                Arc::clone(http),
                stream,
                peer,
                Arc::clone(&gateway),
                graceful.watcher(),
            ));
            continue;
        }
        // What only the bytes on the wire show about each request's framing.
        let heads = Arc::new(Heads::default());
        let service = proxy_service(Arc::clone(&gateway), peer, Arc::clone(&heads));
        let stream = Watched::new(stream, heads);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target: "tokengate::proxy", error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = closed.send(());
    stop_tls.stop();
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(target: "tokengate::proxy", grace = ?limits.shutdown_grace, "in-flight requests still running after the grace period");
    }
}

/// The gateway as the service of one connection from `peer`, each request marked with what
/// `heads` saw of its framing.
fn proxy_service(
    gateway: Arc<Gateway>,
    peer: SocketAddr,
    heads: Arc<Heads>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<hyper::Response<ProxyBody>, Infallible>> + Send,
> + Clone {
    service_fn(move |mut request| {
        heads.mark(&mut request);
        // The request's future is boxed inside: hyper moves the future it is given (copying
        // it whole) on its way in, and a box moves as a pointer.
        service::handle(Arc::clone(&gateway), request, peer).map(Ok::<_, Infallible>)
    })
}

/// The handshake, then the connection as HTTP/1.1 or HTTP/2.
async fn serve_tls(
    acceptor: Acceptor,
    http: Arc<Http>,
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
    watcher: Watcher,
) {
    let Some((stream, alpn)) = acceptor.handshake(stream, peer).await else {
        return;
    };
    let heads = Arc::new(Heads::default());
    let service = proxy_service(gateway, peer, Arc::clone(&heads));
    // HTTP/2 frames every request itself: the scan stops at its preface.
    let stream = Watched::new(stream, heads);
    if let Err(e) = tls::serve_connection(stream, alpn, &http, service, watcher).await {
        tracing::debug!(target: "tokengate::proxy", error = %e, "connection ended with an error");
    }
}
