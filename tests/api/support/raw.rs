//! Raw HTTP/1.1 over a socket, for requests an HTTP client would not send as written (dot
//! segments, bytes that are not visible ASCII, hop-by-hop headers, broken framing).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Everything the gateway wrote back on one connection, up to its close.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    /// The status of each response, in order (several for pipelined requests).
    pub(crate) statuses: Vec<u16>,
    /// The first response's headers, names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    /// The whole text after the first response's head.
    pub(crate) body: String,
}

impl RawAnswer {
    /// The first response's value of header `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends raw bytes and reads the whole answer (the request asks to close the connection).
pub(crate) async fn raw_exchange(
    addr: std::net::SocketAddr,
    request: &[u8],
) -> (u16, Vec<(String, String)>) {
    let answer = raw_until_closed(addr, request).await;
    (answer.statuses[0], answer.headers)
}

/// Sends raw bytes and reads until the gateway closes the connection, which it must do within
/// 10 s: a request that does not ask to close proves with this that the gateway closed it.
pub(crate) async fn raw_until_closed(addr: std::net::SocketAddr, request: &[u8]) -> RawAnswer {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting");
    stream
        .write_all(request)
        .await
        .expect("writing the request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the answer arrives and the connection closes")
        .expect("reading the answer");
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = |line: &str| line.split(' ').nth(1).and_then(|s| s.parse().ok());
    let first = lines
        .next()
        .and_then(status)
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    // Pipelined answers follow the first one's body directly.
    let later = body
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| status(&body[at..]));
    RawAnswer {
        statuses: std::iter::once(first).chain(later).collect(),
        headers,
        body: body.to_owned(),
    }
}
