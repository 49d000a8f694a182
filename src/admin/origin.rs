//! Each admin API call's request id, answered as `X-AREQUESTID`, and the [`Origin`] that the
//! audit events of its changes record: the caller's address, the method, the path and the id.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::AdminState;
use crate::lifecycle::Origin;
use crate::proxy::remote;

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-arequestid");

/// Gives the call a request id and its handlers an [`Origin`].
pub(super) async fn identify(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    let (request_id, in_flight) = state.requests.next();
    drop(in_flight);
    // Served with the peer address; a router served without it records no address.
    let client_ip =
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| {
                remote(request.headers(), *peer, &state.trusted_proxies).client_ip
            });
    let header = HeaderValue::from_str(&request_id).expect("request ids are ASCII");
    let origin = Origin {
        client_ip,
        method: Some(request.method().as_str().to_owned()),
        path: Some(request.uri().path().to_owned()),
        request_id: Some(request_id),
    };
    request.extensions_mut().insert(origin);
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID_HEADER, header);
    response
}
