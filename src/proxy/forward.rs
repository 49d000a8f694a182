//! Forwarding to Bitbucket: over the worker's keep-alive connections (TLS for an `https://`
//! URL), hop-by-hop headers handled as RFC 9110 section 7.6.1 says, `X-Forwarded-*` set,
//! bodies streamed both ways without buffering. Every request goes upstream as HTTP/1.1, an
//! HTTP/2 one included.

use std::cell::RefCell;
use std::error::Error as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use http::header::Entry;
use http::header::{
    CONNECTION, COOKIE, HOST, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
    TRAILER, UPGRADE,
};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;

use super::pool::{ConnectError, Connector, Pool, UpstreamBody};
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

/// The lengths of the [`HOP_BY_HOP`] names, one bit each (`connection` and `keep-alive`,
/// `proxy-connection`, `proxy-authenticate`, `proxy-authorization`, `te`, `trailer` and
/// `upgrade`).
const HOP_BY_HOP_LENGTHS: u32 = 1 << 10 | 1 << 16 | 1 << 18 | 1 << 19 | 1 << 2 | 1 << 7;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Why Bitbucket did not answer. Each message holds its causes (for the log line); none has
/// a `source()` that would repeat them.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The client's request body broke off or broke its framing (a chunk size that is not hex
    /// or overflows) while it was being sent on: the client's fault, 400.
    #[error("the request body could not be read: {0}")]
    ClientBody(String),
    /// Refused, reset, or not reachable: 502.
    #[error("Bitbucket could not be reached: {0}")]
    Unreachable(String),
    /// Bitbucket's TLS certificate did not verify (or the handshake failed): 502.
    #[error("Bitbucket's TLS certificate was not accepted: {0}")]
    Tls(String),
    /// No response head within `upstream.response_timeout`: 504.
    #[error("Bitbucket did not answer within {0:?}")]
    Timeout(Duration),
}

impl UpstreamError {
    /// A connection that could not be made: [`UpstreamError::Tls`] when a TLS error is
    /// anywhere in the chain. The text begins as it always has, for whoever searches the log.
    fn connecting(e: &ConnectError) -> Self {
        let mut text = String::from("client error (Connect): ");
        let tls = chain(&**e, &mut text);
        if tls {
            Self::Tls(text)
        } else {
            Self::Unreachable(text)
        }
    }

    /// A request that failed on its connection.
    fn sending(e: &hyper::Error) -> Self {
        let mut text = String::from("client error (SendRequest): ");
        chain(e, &mut text);
        if client_body_failed(e) {
            Self::ClientBody(text)
        } else {
            Self::Unreachable(text)
        }
    }
}

/// Writes `e` and its causes to `text`, separated by `: `; whether one of them is a TLS error.
fn chain(e: &(dyn std::error::Error + 'static), text: &mut String) -> bool {
    use std::fmt::Write as _;
    let mut tls = false;
    for (n, err) in causes(e).enumerate() {
        tls |= is_tls(err);
        let _ = write!(text, "{}{err}", if n == 0 { "" } else { ": " });
    }
    tls
}

/// `e`, then each error that caused the one before.
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |&err| err.source())
}

/// Whether `err` is rustls's, possibly inside `io::Error`s (which wrap an error without
/// listing it as their source).
fn is_tls(mut err: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if err.is::<rustls::Error>() {
            return true;
        }
        match err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => err = inner,
            None => return false,
        }
    }
}

/// Bitbucket, reached over the worker's pool of keep-alive connections.
pub struct Upstream {
    pool: Arc<Pool>,
    /// `Host` for a request that has none: Bitbucket's authority.
    host: HeaderValue,
    response_timeout: Duration,
}

impl Upstream {
    /// A client for `config.url`; `tls` holds the client settings of an `https://` URL.
    pub fn new(config: &UpstreamConfig, tls: Option<&Arc<rustls::ClientConfig>>) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(config.connect_timeout));
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(Duration::from_secs(60)));
        let parts = config.url.clone().into_parts();
        let authority = parts
            .authority
            .expect("validated: the upstream URL has a host");
        let host =
            HeaderValue::from_str(authority.as_str()).expect("an authority is a header value");
        let to = Uri::builder()
            .scheme(parts.scheme.unwrap_or(Scheme::HTTP))
            .authority(authority)
            .path_and_query("/")
            .build()
            .expect("scheme, authority and path are valid");
        let connector = Connector::new(tcp, tls, to);
        Self {
            pool: Arc::new(Pool::new(connector, config.pool_idle_timeout)),
            host,
            response_timeout: config.response_timeout,
        }
    }

    /// Sends a prepared request; the future returns the response head with its body still
    /// streaming, and how long the head took.
    ///
    /// The request is handed over before the future is made: the future holds a pointer to
    /// the exchange and the deadline, not the request, so the futures that await it stay
    /// small, and each of them is copied whole when it is made.
    pub fn send(
        &self,
        mut request: Request<Incoming>,
    ) -> impl Future<Output = Result<(Response<UpstreamBody>, Duration), UpstreamError>> + use<>
    {
        // The target in origin form: an HTTP/2 request's carries a scheme and an authority.
        let uri = request.uri();
        if uri.scheme().is_some() || uri.authority().is_some() {
            let path = uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            *request.uri_mut() = Uri::from(path);
        }
        if request.version() == Version::HTTP_2 {
            *request.version_mut() = Version::HTTP_11;
        }
        if let Entry::Vacant(entry) = request.headers_mut().entry(HOST) {
            entry.insert(self.host.clone());
        }
        // One clock read for the deadline, the latency and the pool's idle check: `timeout`
        // would read the clock again for its deadline. A timeout too long for the clock waits
        // 30 years, as `timeout` does.
        let started = tokio::time::Instant::now();
        let response_timeout = self.response_timeout;
        let deadline = started
            .checked_add(response_timeout)
            .unwrap_or_else(|| started + Duration::from_secs(86_400 * 365 * 30));
        let taken = self.pool.take(started);
        let exchange = Box::pin(exchange(Arc::clone(&self.pool), taken, request));
        // A `map`, not an `async` block: a block would hold the awaited future twice.
        tokio::time::timeout_at(deadline, exchange).map(move |answered| match answered {
            Ok(Ok(mut response)) => {
                strip_hop_by_hop(response.headers_mut());
                Ok((response, started.elapsed()))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(UpstreamError::Timeout(response_timeout)),
        })
    }
}

/// Sends `request` over `taken` (an idle connection of `pool`, ready for it) or a new one.
/// When Bitbucket closed the idle connection before the request went out, the request goes
/// once more, over a new connection.
async fn exchange(
    pool: Arc<Pool>,
    taken: Option<SendRequest<Incoming>>,
    mut request: Request<Incoming>,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    if let Some(mut sender) = taken {
        match sender.try_send_request(request).await {
            Ok(response) => {
                return Ok(response.map(|body| UpstreamBody::new(body, sender, pool)));
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) => request = unsent,
                None => return Err(UpstreamError::sending(e.error())),
            },
        }
    }
    let mut sender = pool
        .connect()
        .await
        .map_err(|e| UpstreamError::connecting(&e))?;
    match sender.send_request(request).await {
        Ok(response) => Ok(response.map(|body| UpstreamBody::new(body, sender, pool))),
        Err(e) => Err(UpstreamError::sending(&e)),
    }
}

/// Makes an HTTP/2 request's head one HTTP/1.1 carries: `Host` from the `:authority`
/// pseudo-header, and the cookie lines HTTP/2 may split joined into one (RFC 9113 section
/// 8.2.3).
pub(super) fn as_http1<B>(request: &mut Request<B>) {
    if request.version() != Version::HTTP_2 {
        return;
    }
    if !request.headers().contains_key(HOST)
        && let Some(host) = request
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        request.headers_mut().insert(HOST, host);
    }
    let headers = request.headers_mut();
    if headers.get_all(COOKIE).iter().nth(1).is_some() {
        let joined = headers
            .get_all(COOKIE)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect::<Vec<_>>()
            .join(&b"; "[..]);
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            headers.insert(COOKIE, value);
        }
    }
}

/// Whether sending failed because the request body (the client's, as hyper reads it) failed:
/// hyper reports an error of the body it sends as a user error caused by the body's own error.
fn client_body_failed(error: &hyper::Error) -> bool {
    causes(error).any(|e| {
        e.downcast_ref::<hyper::Error>().is_some_and(|hyper| {
            hyper.is_user()
                && hyper
                    .source()
                    .is_some_and(|body| body.downcast_ref::<hyper::Error>().is_some())
        })
    })
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few names present notes which hop-by-hop names are there (most
    // requests carry none; a keep-alive answer carries `Connection`): only those are removed,
    // rather than hashing each of the eight names for a removal.
    // A name whose length no hop-by-hop name has is passed over without comparing it to
    // each of them.
    const LENGTHS: u32 = HOP_BY_HOP_LENGTHS;
    let mut present = 0u8;
    for name in headers.keys() {
        let len = name.as_str().len();
        if len >= 32 || LENGTHS & (1 << len) == 0 {
            continue;
        }
        if let Some(i) = HOP_BY_HOP.iter().position(|hop| hop == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // `HOP_BY_HOP[0]` is `Connection`.
    if present & 1 != 0 {
        // Names of the list itself are removed below when present, so they are passed over
        // here without being parsed: a keep-alive answer's `Connection: keep-alive` then
        // costs no allocation.
        let mut named: Vec<HeaderName> = Vec::new();
        for name in headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            // The usual value, a hop-by-hop name itself, is not split.
            .filter(|v| !v.eq_ignore_ascii_case("keep-alive"))
            .flat_map(|v| v.split(','))
            .map(str::trim)
        {
            if HOP_BY_HOP
                .iter()
                .any(|hop| hop.as_str().eq_ignore_ascii_case(name))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                named.push(name);
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

thread_local! {
    /// The peer this thread forwarded for last, and its `X-Forwarded-For` value: a
    /// connection's requests all come from one peer, and a clone shares the value's bytes.
    static PEER_VALUE: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
}

/// `peer` as a header value.
fn peer_value(peer: IpAddr) -> HeaderValue {
    PEER_VALUE.with_borrow_mut(|last| match last {
        Some((known, value)) if *known == peer => value.clone(),
        _ => {
            let value = HeaderValue::from_str(&super::context::ip_text(peer))
                .expect("an address is a header value");
            *last = Some((peer, value.clone()));
            value
        }
    })
}

/// Sets `X-Forwarded-For` (appending the peer), `-Proto` (`proto`, the listener's scheme) and
/// `-Host`. Values a trusted proxy set for `-Proto` and `-Host` are kept; a client's own are
/// replaced.
pub(super) fn set_forwarded(
    headers: &mut HeaderMap,
    peer: IpAddr,
    peer_trusted: bool,
    proto: &HeaderValue,
) {
    // Each header is found once (its name hashed once) through its entry, and set or kept
    // there: setting an occupied entry replaces every line of it in place, as `insert` does.
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Vacant(entry) => {
            entry.insert(peer_value(peer));
        }
        Entry::Occupied(mut entry) => {
            // Every line the request came with, in order, then the peer: a proxy that adds its
            // own line (HAProxy's `option forwardfor`) must not lose its entry to the client's.
            let mut existing = entry
                .iter()
                .map(|v| v.as_bytes().trim_ascii())
                .filter(|v| !v.is_empty())
                .peekable();
            let value = if existing.peek().is_none() {
                Ok(peer_value(peer))
            } else {
                let mut joined = Vec::with_capacity(64);
                for line in existing {
                    joined.extend_from_slice(line);
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(super::context::ip_text(peer).as_bytes());
                HeaderValue::from_bytes(&joined)
            };
            if let Ok(value) = value {
                entry.insert(value);
            }
        }
    }
    match headers.entry(X_FORWARDED_PROTO) {
        Entry::Vacant(entry) => {
            entry.insert(proto.clone());
        }
        Entry::Occupied(mut entry) => {
            if !peer_trusted {
                entry.insert(proto.clone());
            }
        }
    }
    let host = headers.get(HOST).cloned();
    match (headers.entry(X_FORWARDED_HOST), host) {
        (Entry::Vacant(entry), Some(host)) => {
            entry.insert(host);
        }
        (Entry::Vacant(_), None) => {}
        (Entry::Occupied(mut entry), Some(host)) => {
            if !peer_trusted {
                entry.insert(host);
            }
        }
        (Entry::Occupied(entry), None) => {
            if !peer_trusted {
                entry.remove_entry_mult();
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
    fn hop_by_hop_lengths_are_the_names_lengths() {
        let lengths = HOP_BY_HOP
            .iter()
            .fold(0u32, |bits, name| bits | 1 << name.as_str().len());
        assert_eq!(lengths, HOP_BY_HOP_LENGTHS);
    }

    #[test]
    fn forwarded_headers() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("bitbucket.example.com"));
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let http = HeaderValue::from_static("http");
        set_forwarded(&mut h, "100.64.0.2".parse().unwrap(), true, &http);
        assert_eq!(h["x-forwarded-for"], "198.51.100.7, 100.64.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "bitbucket.example.com");
        set_forwarded(&mut h, "203.0.113.1".parse().unwrap(), false, &http);
        assert_eq!(h["x-forwarded-proto"], "http");
        let https = HeaderValue::from_static("https");
        set_forwarded(&mut h, "203.0.113.1".parse().unwrap(), false, &https);
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn every_forwarded_line_is_kept() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.append("x-forwarded-for", HeaderValue::from_static(" 203.0.113.5 "));
        h.append("x-forwarded-for", HeaderValue::from_static(""));
        set_forwarded(
            &mut h,
            "127.0.0.2".parse().unwrap(),
            true,
            &HeaderValue::from_static("http"),
        );
        assert_eq!(
            h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
            ["6.6.6.6, 203.0.113.5, 127.0.0.2"]
        );
    }

    #[test]
    fn rustls_errors_are_found_inside_io_errors() {
        let wrapped = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(is_tls(&wrapped));
        assert!(!is_tls(&std::io::Error::other("connection refused")));
    }

    #[test]
    fn http2_heads_become_http1_heads() {
        let mut request = Request::builder()
            .version(Version::HTTP_2)
            .uri("https://bitbucket.example.com:8443/rest/api/1.0/projects")
            .header(COOKIE, "a=1")
            .header(COOKIE, "BITBUCKETSESSIONID=x")
            .body(())
            .unwrap();
        as_http1(&mut request);
        assert_eq!(request.headers()[HOST], "bitbucket.example.com:8443");
        assert_eq!(
            request.headers().get_all(COOKIE).iter().collect::<Vec<_>>(),
            ["a=1; BITBUCKETSESSIONID=x"]
        );
        let mut http1 = Request::builder()
            .uri("/x")
            .header(HOST, "h")
            .header(COOKIE, "a=1")
            .header(COOKIE, "b=2")
            .body(())
            .unwrap();
        as_http1(&mut http1);
        assert_eq!(http1.headers().get_all(COOKIE).iter().count(), 2);
    }
}
