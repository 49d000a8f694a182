//! The admin listener's HTTP/1 server (with TLS, HTTP/2 too, as ALPN chooses): a time limit on
//! each request head, and a drain that its owner can cut short by dropping it.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::shutdown::Drain;
use crate::tls::{self, Acceptor, Http};

/// Serves the admin routes on `listener` until `shutdown` completes, then stops accepting and
/// waits for open connections to finish. A client has `header_read_timeout` to send each
/// request head (and to complete a TLS handshake, with `tls`), which also ends an idle
/// keep-alive connection. Dropping the future (as aborting its task does) closes every
/// connection at once.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    tls: Option<Acceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = Drain::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    // The proxy's default limit on a request head, for HTTP/2's header list.
    let (stop_tls, tls_stop) = crate::shutdown::signal();
    let http = Http::new(builder.clone(), 64 * 1024, header_read_timeout, tls_stop);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let router = router.clone();
                    let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(ConnectInfo(peer));
                        router.clone().oneshot(request)
                    });
                    if let Some(acceptor) = &tls {
                        let (acceptor, http, watcher) = (acceptor.clone(), http.clone(), graceful.watcher());
                        connections.spawn(async move {
                            let Some((stream, alpn)) = acceptor.handshake(stream, peer).await else {
                                return;
                            };
                            if let Err(e) = tls::serve_connection(stream, alpn, &http, service, watcher).await {
                                tracing::debug!(target: "tokengate::admin", error = %e, "connection ended with an error");
                            }
                        });
                        continue;
                    }
                    let connection =
                        graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    connections.spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(target: "tokengate::admin", error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(target: "tokengate::admin", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    stop_tls.stop();
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}
