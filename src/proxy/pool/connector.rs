//! Opening a connection to Bitbucket: TCP (with `upstream.connect_timeout`), TLS for an
//! `https://` URL, the HTTP/1.1 handshake, and the connection's task spawned on the current
//! runtime.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;

use http::Uri;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::rt::{Read, Write};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::ServiceExt as _;

/// Why no connection was made, with its causes.
pub(in crate::proxy) type ConnectError = Box<dyn StdError + Send + Sync>;

/// A connection being made; boxed, so that a request's future holds a pointer to it, not
/// its states.
pub(in crate::proxy) type Connecting =
    Pin<Box<dyn Future<Output = Result<SendRequest<Incoming>, ConnectError>> + Send>>;

/// Opens connections to one Bitbucket, over TLS or not.
pub(in crate::proxy) struct Connector {
    /// Bitbucket's URL: its scheme and authority.
    to: Uri,
    transport: Transport,
}

enum Transport {
    Plain(HttpConnector),
    Tls(HttpsConnector<HttpConnector>),
}

impl Connector {
    /// Connections to `to` (a URL with a scheme and an authority) made by `tcp`, wrapped in
    /// TLS when `tls` is given.
    pub(in crate::proxy) fn new(
        tcp: HttpConnector,
        tls: Option<&Arc<rustls::ClientConfig>>,
        to: Uri,
    ) -> Self {
        let transport = match tls {
            None => Transport::Plain(tcp),
            Some(tls) => Transport::Tls(crate::tls::https_connector(tcp, tls)),
        };
        Self { to, transport }
    }

    /// A new connection, ready for its first request.
    pub(super) fn connect(&self) -> Connecting {
        let to = self.to.clone();
        match &self.transport {
            Transport::Plain(tcp) => {
                let opening = tcp.clone().oneshot(to);
                Box::pin(async move { handshake(opening.await?).await })
            }
            Transport::Tls(tls) => {
                let opening = tls.clone().oneshot(to);
                Box::pin(async move { handshake(opening.await?).await })
            }
        }
    }
}

/// Speaks HTTP/1.1 over `io`: the connection's task runs until Bitbucket or the pool closes
/// it.
async fn handshake<T>(io: T) -> Result<SendRequest<Incoming>, ConnectError>
where
    T: Read + Write + Unpin + Send + 'static,
{
    let (sender, connection) = http1::Builder::new().handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(target: "tokengate::proxy", error = %e, "a connection to Bitbucket ended");
        }
    });
    Ok(sender)
}
