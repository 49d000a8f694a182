//! The floor under tokengate's proxy path: the same HTTP stack (hyper's HTTP/1 server, one
//! single-threaded runtime per worker accepting on the one listening socket, each worker's own
//! pool of connections to the upstream, tokengate's `Upstream`) forwarding every request
//! untouched, with no authentication, logging or audit. `bench/run.sh` runs it beside nginx,
//! to tell what the stack costs from what tokengate adds.
//!
//! ```sh
//! cargo run --release --example plain_proxy -- 127.0.0.1:8080 http://127.0.0.1:7990 2
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokengate::config::{Identity, UpstreamConfig};
use tokengate::proxy::Upstream;
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: plain_proxy LISTEN UPSTREAM_URL [WORKERS]";
    let listen: SocketAddr = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let upstream: Uri = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let config = UpstreamConfig {
        url: upstream,
        identity: Identity::Header,
        identity_header: HeaderName::from_static("x-forwarded-user"),
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(60),
        pool_idle_timeout: Duration::from_secs(90),
        credential_key: None,
        ca_file: None,
    };
    let socket = tokengate::proxy::bind(listen)?;
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let listener = socket.try_clone()?;
            let config = config.clone();
            Ok(std::thread::spawn(move || worker(listener, &config)))
        })
        .collect::<std::io::Result<_>>()?;
    for thread in threads {
        thread.join().expect("a worker panicked")?;
    }
    Ok(())
}

fn worker(listener: std::net::TcpListener, config: &UpstreamConfig) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let upstream = Arc::new(Upstream::new(config, None));
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let upstream = Arc::clone(&upstream);
            let service = service_fn(move |request: hyper::Request<Incoming>| {
                let sent = upstream.send(request);
                async move {
                    Ok::<_, Infallible>(match sent.await {
                        Ok((response, _)) => response.map(BodyExt::boxed_unsync),
                        Err(_) => hyper::Response::builder()
                            .status(502)
                            .body(
                                http_body_util::Empty::new()
                                    .map_err(|never| match never {})
                                    .boxed_unsync(),
                            )
                            .expect("a valid response"),
                    })
                }
            });
            tokio::spawn(
                http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    })
}
