//! Forwarding to Bitbucket: a pooled keep-alive client, hop-by-hop headers handled as RFC 9110
//! section 7.6.1 says, `X-Forwarded-*` set, bodies streamed both ways without buffering.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use compact_str::format_compact;
use http::header::{
    CONNECTION, HOST, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
    TRAILER, UPGRADE,
};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::UpstreamConfig;

/// Headers that belong to one connection and are never forwarded. Names, not strings: a
/// string is parsed into a name on every use, twice per request.
const HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Why Bitbucket did not answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Refused, reset, or not reachable: 502.
    #[error("Bitbucket could not be reached: {0}")]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    /// No response head within `upstream.response_timeout`: 504.
    #[error("Bitbucket did not answer within {0:?}")]
    Timeout(Duration),
}

/// The pooled client to Bitbucket.
pub struct Upstream {
    client: Client<HttpConnector, Incoming>,
    scheme: Scheme,
    authority: Authority,
    response_timeout: Duration,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        let parts = config.url.clone().into_parts();
        Self {
            client,
            scheme: parts.scheme.unwrap_or(Scheme::HTTP),
            authority: parts
                .authority
                .expect("validated: the upstream URL has a host"),
            response_timeout: config.response_timeout,
        }
    }

    /// Sends a prepared request; returns the response head with its body still streaming,
    /// and how long the head took.
    pub async fn send(
        &self,
        mut request: Request<Incoming>,
    ) -> Result<(Response<Incoming>, Duration), UpstreamError> {
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        *request.uri_mut() = Uri::from_parts(parts).expect("scheme, authority and path are valid");
        let started = Instant::now();
        match tokio::time::timeout(self.response_timeout, self.client.request(request)).await {
            Ok(Ok(mut response)) => {
                strip_hop_by_hop(response.headers_mut());
                Ok((response, started.elapsed()))
            }
            Ok(Err(e)) => Err(UpstreamError::Unreachable(e)),
            Err(_) => Err(UpstreamError::Timeout(self.response_timeout)),
        }
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the few names present is cheaper than hashing
    // each hop-by-hop name for a removal.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Sets `X-Forwarded-For` (appending the peer), `-Proto` and `-Host`. Values a trusted proxy
/// set for `-Proto` and `-Host` are kept; a client's own are replaced.
pub(super) fn set_forwarded(headers: &mut HeaderMap, peer: IpAddr, peer_trusted: bool) {
    // Every line the request came with, in order, then the peer: a proxy that adds its own
    // line (HAProxy's `option forwardfor`) must not lose its entry to the client's line.
    let mut existing = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|v| !v.is_empty())
        .peekable();
    let value = if existing.peek().is_none() {
        // Written inline (a peer address fits), so only the header value allocates.
        HeaderValue::from_str(&format_compact!("{peer}"))
    } else {
        let mut joined = Vec::with_capacity(64);
        for line in existing {
            joined.extend_from_slice(line);
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(format_compact!("{peer}").as_bytes());
        HeaderValue::from_bytes(&joined)
    };
    if let Ok(value) = value {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !peer_trusted || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !peer_trusted || !headers.contains_key(&X_FORWARDED_HOST) {
        match headers.get(HOST).cloned() {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host);
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret-Hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn forwarded_headers() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("bitbucket.example.com"));
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        set_forwarded(&mut h, "100.64.0.2".parse().unwrap(), true);
        assert_eq!(h["x-forwarded-for"], "198.51.100.7, 100.64.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "bitbucket.example.com");
        set_forwarded(&mut h, "203.0.113.1".parse().unwrap(), false);
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn every_forwarded_line_is_kept() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.append("x-forwarded-for", HeaderValue::from_static(" 203.0.113.5 "));
        h.append("x-forwarded-for", HeaderValue::from_static(""));
        set_forwarded(&mut h, "127.0.0.2".parse().unwrap(), true);
        assert_eq!(
            h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
            ["6.6.6.6, 203.0.113.5, 127.0.0.2"]
        );
    }
}
