//! A webhook receiver: a real HTTP server on `127.0.0.1:0` in the test's runtime that keeps
//! the JSON body of every POST it gets, answering 500 to the first ones it is told to refuse
//! and 204 to the rest.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use http::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

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
        let received = Arc::new(Mutex::new(Received {
            refuse,
            ..Received::default()
        }));
        let app = Router::new()
            .route("/hooks/expiry", post(receive))
            .with_state(Arc::clone(&received));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let url = format!(
            "http://{}/hooks/expiry",
            listener.local_addr().expect("an address")
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
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
