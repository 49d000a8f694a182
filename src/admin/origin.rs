//! Each `/admin/` call's request id, answered as `X-AREQUESTID`, and the [`Origin`] that the
//! audit events of its changes record: the connecting address, the method, the path and the
//! id. The address is the peer's own: `X-Forwarded-For` is not read on the admin listener,
//! where a caller sharing a trusted proxy's address could otherwise name any address it liked.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AdminState;
use crate::audit::method_name;
use crate::lifecycle::Origin;
use crate::request_id::{REQUEST_ID_HEADER, request_id_header};

/// Gives an `/admin/` call a request id and its handlers an [`Origin`]; `/healthz`, `/readyz`
/// and `/metrics` take no id from the node's sequence.
pub(super) async fn identify(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/admin/") {
        return next.run(request).await;
    }
    // Ids from the proxy's sequence, so an admin call's id is unique among the node's requests;
    // the call is not a proxied request, so it does not stay counted as in flight.
    let (request_id, in_flight) = state.requests.next();
    drop(in_flight);
    // Served with the peer address; a router served without it records no address.
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_canonical());
    let header = request_id_header(&request_id);
    let origin = Origin {
        client_ip,
        method: Some(method_name(request.method())),
        path: Some(request.uri().path().to_owned()),
        request_id: Some(request_id.into()),
        acting: None,
    };
    request.extensions_mut().insert(origin);
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID_HEADER, header);
    response
}
