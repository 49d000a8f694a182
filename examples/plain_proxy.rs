//! The floor under tokengate's proxy path: the same HTTP stack (hyper's HTTP/1 server, one
//! single-threaded runtime per worker accepting on the one listening socket, the pooled hyper-util
//! client) forwarding every request untouched, with no authentication, logging or audit.
//! `bench/run.sh` runs it beside nginx, to tell what the stack costs from what
//! tokengate adds.
//!
//! ```sh
//! cargo run --release --example plain_proxy -- 127.0.0.1:8080 http://127.0.0.1:7990 2
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use http::Uri;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

type ProxyClient = Client<HttpConnector, Incoming>;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: plain_proxy LISTEN UPSTREAM_URL [WORKERS]";
    let listen: SocketAddr = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let upstream: Uri = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let socket = tokengate::proxy::bind(listen)?;
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let listener = socket.try_clone()?;
            let upstream = upstream.clone();
            Ok(std::thread::spawn(move || worker(listener, &upstream)))
        })
        .collect::<std::io::Result<_>>()?;
    for thread in threads {
        thread.join().expect("a worker panicked")?;
    }
    Ok(())
}

fn worker(listener: std::net::TcpListener, upstream: &Uri) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let upstream = upstream.clone();
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: ProxyClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .build(connector);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            let upstream = upstream.clone();
            let service = service_fn(move |mut request: hyper::Request<Incoming>| {
                let client = client.clone();
                let mut parts = upstream.clone().into_parts();
                parts.path_and_query = request.uri().path_and_query().cloned();
                async move {
                    *request.uri_mut() = Uri::from_parts(parts).expect("a valid URI");
                    Ok::<_, Infallible>(match client.request(request).await {
                        Ok(response) => response.map(BodyExt::boxed_unsync),
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
