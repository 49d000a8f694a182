//! A webhook receiver: a real HTTP (or HTTPS) server on `127.0.0.1:0` in the test's runtime
//! that keeps the JSON body of every POST it gets, answering 500 to the first ones it is told
//! to refuse and 204 to the rest.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use http::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use super::certs::Leaf;

#[derive(Default)]
struct Received {
    /// Every body, in arrival order, and whether it was accepted.
    bodies: Vec<(Value, bool)>,
    /// POSTs still to be refused.
    refuse: usize,
}

/// A running receiver; stops with the test's runtime.
pub(crate) struct Webhook {
    url: String,
    received: Arc<Mutex<Received>>,
}

impl Webhook {
    /// Starts a receiver that answers 500 to its first `refuse` POSTs.
    pub(crate) async fn start(refuse: usize) -> Self {
        Self::start_with(refuse, None).await
    }

    /// Starts a receiver that speaks HTTPS with `leaf`, and accepts every POST.
    pub(crate) async fn start_tls(leaf: &Leaf) -> Self {
        Self::start_with(0, Some(leaf.clone())).await
    }

    async fn start_with(refuse: usize, tls: Option<Leaf>) -> Self {
        let received = Arc::new(Mutex::new(Received {
            refuse,
            ..Received::default()
        }));
        let app = Router::new()
            .route("/hooks/expiry", post(receive))
            .with_state(Arc::clone(&received));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let port = listener.local_addr().expect("an address").port();
        let url = match tls {
            None => {
                tokio::spawn(async move { axum::serve(listener, app).await });
                format!("http://127.0.0.1:{port}/hooks/expiry")
            }
            Some(leaf) => {
                tokio::spawn(serve_tls(listener, app, leaf));
                // The name the test CA's certificates are issued for.
                format!("https://localhost:{port}/hooks/expiry")
            }
        };
        Self { url, received }
    }

    /// The URL to configure as `notify.webhook_url`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The bodies it accepted, in arrival order.
    pub(crate) fn accepted(&self) -> Vec<Value> {
        let received = self.received.lock().expect("received");
        received
            .bodies
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(b, _)| b.clone())
            .collect()
    }

    /// How many POSTs it refused.
    pub(crate) fn refused(&self) -> usize {
        let received = self.received.lock().expect("received");
        received.bodies.iter().filter(|(_, ok)| !ok).count()
    }
}

async fn receive(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> StatusCode {
    let value: Value = serde_json::from_slice(&body).expect("a JSON notice");
    let mut received = received.lock().expect("received");
    let accept = received.refuse == 0;
    received.refuse = received.refuse.saturating_sub(1);
    received.bodies.push((value, accept));
    if accept {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// Serves `app` over TLS with `leaf` on every connection `listener` accepts.
async fn serve_tls(listener: TcpListener, app: Router, leaf: Leaf) {
    let acceptor = leaf.acceptor();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| app.clone().oneshot(request),
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
