//! A stand-in Bitbucket: a real HTTP/1.1 server on `127.0.0.1:0` in the test's runtime that
//! records every request it receives (method, target, headers, body length and SHA-256,
//! hashed while streaming, never buffered whole) and answers by path:
//!
//! - `…/download/N` streams N bytes of generated data in 64 KiB chunks;
//! - `…/slow` waits until [`Upstream::release_slow`];
//! - `…/hop-headers` answers with hop-by-hop headers the gateway must drop;
//! - `…/close` answers with `Connection: close` and closes the connection;
//! - `…/early` answers at once, before reading the request's body (recorded without it);
//! - Bitbucket's REST API for sign-in, groups and access tokens, and requests carrying a
//!   credential, as [`super::bitbucket`] answers them;
//! - with a git root ([`UpstreamOptions::git_root`]), `/scm/…` is git over HTTP, served by
//!   `git http-backend` as CGI (see [`super::git`]), refused with 401 as Bitbucket does when
//!   the gateway named no user;
//! - anything else: 200 `{"ok":true}`.
//!
//! It speaks HTTP/1.1, over TLS with [`UpstreamOptions::tls`], and counts the connections it
//! accepted and those still open.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::StreamExt as _;
use http::{HeaderMap, Version};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

use super::certs::Leaf;

use super::bitbucket::Directory;

/// Size of each generated download chunk.
const CHUNK: usize = 64 * 1024;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    /// Path and query.
    pub(crate) target: String,
    pub(crate) headers: HeaderMap,
    /// The HTTP version the request came in.
    pub(crate) version: Version,
    pub(crate) body_len: u64,
    /// Lower-case hex SHA-256 of the body.
    pub(crate) body_sha256: String,
}

impl Seen {
    /// Every value of header `name`, as text.
    pub(crate) fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The single value of header `name`, if present.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let mut values = self.header_values(name);
        assert!(
            values.len() <= 1,
            "{name} sent {} times: {values:?}",
            values.len()
        );
        values.pop()
    }
}

/// What the upstream sent for one `/download/N`, known once the stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) len: u64,
    pub(crate) sha256: String,
}

#[derive(Default)]
struct Log {
    seen: Vec<Seen>,
    sent: Vec<Sent>,
}

struct Shared {
    log: Mutex<Log>,
    released: watch::Receiver<bool>,
    bitbucket: Directory,
    /// Where `/scm/…` repositories are, when git is served.
    git_root: Option<PathBuf>,
    /// Connections accepted.
    connections: AtomicUsize,
    /// Connections accepted and not yet closed.
    open: AtomicUsize,
    /// Bodies of `…/early` requests, never read.
    unread: Mutex<Vec<Body>>,
}

/// What [`Upstream::start_with`] serves besides the defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpstreamOptions {
    /// Serve HTTPS with this certificate.
    pub(crate) tls: Option<Leaf>,
    /// Serve git repositories under this directory at `/scm/…`.
    pub(crate) git_root: Option<PathBuf>,
}

/// The first bytes of a request body kept for Bitbucket's REST calls.
const KEPT_BODY: usize = 64 * 1024;

/// The running stand-in; it stops when dropped (with the test's runtime).
pub(crate) struct Upstream {
    url: String,
    shared: Arc<Shared>,
    release: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Binds `127.0.0.1:0` and serves as `options` say until dropped.
    pub(crate) async fn start_with(options: UpstreamOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the upstream");
        let addr = listener.local_addr().expect("bound");
        let (release, released) = watch::channel(false);
        let shared = Arc::new(Shared {
            log: Mutex::default(),
            released,
            bitbucket: Directory::default(),
            git_root: options.git_root,
            connections: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            unread: Mutex::default(),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let server = tokio::spawn(serve(listener, app, options.tls, Arc::clone(&shared)));
        let url = format!("{scheme}://{addr}");
        Self {
            url,
            shared,
            release,
            server,
        }
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections accepted and not yet closed.
    pub(crate) fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Waits until exactly `n` connections are open.
    pub(crate) async fn wait_for_open_connections(&self, n: usize) {
        poll("the upstream's open connections", || {
            (self.open_connections() == n).then_some(())
        })
        .await;
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Every request received so far, oldest first.
    pub(crate) fn requests(&self) -> Vec<Seen> {
        self.shared.log.lock().expect("upstream log").seen.clone()
    }

    /// The request carrying `X-AREQUESTID: id`, if one arrived.
    pub(crate) fn request_with_id(&self, id: &str) -> Option<Seen> {
        self.requests()
            .into_iter()
            .find(|s| s.header_values("x-arequestid").iter().any(|v| v == id))
    }

    /// Waits (polling, up to 10 s) until at least `n` requests arrived.
    pub(crate) async fn wait_for_requests(&self, n: usize) -> Vec<Seen> {
        poll("upstream requests", || {
            let seen = self.requests();
            (seen.len() >= n).then_some(seen)
        })
        .await
    }

    /// Waits until the download of `len` bytes has been sent completely.
    pub(crate) async fn wait_for_sent(&self, len: u64) -> Sent {
        poll("a finished download", || {
            let log = self.shared.log.lock().expect("upstream log");
            log.sent.iter().find(|s| s.len == len).cloned()
        })
        .await
    }

    /// Bitbucket's users, credentials and groups.
    pub(crate) fn bitbucket(&self) -> &Directory {
        &self.shared.bitbucket
    }

    /// Lets every waiting and future `/slow` request answer.
    pub(crate) fn release_slow(&self) {
        let _ = self.release.send(true);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Polls `check` as [`eventually`](super::eventually) does.
async fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    super::eventually(what, async || check()).await
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            write!(s, "{b:02x}").expect("writing to a String");
            s
        })
}

/// Serves `app` on every connection `listener` accepts, over TLS with `leaf` when given.
async fn serve(listener: TcpListener, app: Router, leaf: Option<Leaf>, shared: Arc<Shared>) {
    let acceptor = leaf.map(|leaf| leaf.acceptor());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        shared.open.fetch_add(1, Ordering::SeqCst);
        let (acceptor, app, shared) = (acceptor.clone(), app.clone(), Arc::clone(&shared));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| app.clone().oneshot(request),
            );
            let http = hyper::server::conn::http1::Builder::new();
            match acceptor {
                None => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = http.serve_connection(io, service).await;
                }
                // A client that refused the certificate ends at the handshake.
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = http.serve_connection(io, service).await;
                    }
                }
            }
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.uri.path().ends_with("/early") {
        // The body is kept unread, still coming in, until the stand-in stops.
        shared.unread.lock().expect("unread bodies").push(body);
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(r#"{"ok":true}"#))
            .expect("a valid response");
    }
    let git = shared.git_root.is_some() && parts.uri.path().starts_with("/scm/");
    let mut hasher = Sha256::new();
    let mut body_len = 0u64;
    let mut kept = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        // A body the gateway broke off (its client's was malformed) is no request received.
        let Ok(chunk) = chunk else {
            return Response::builder()
                .status(400)
                .body(Body::empty())
                .expect("a valid response");
        };
        body_len += chunk.len() as u64;
        hasher.update(&chunk);
        if git {
            kept.extend_from_slice(&chunk);
        } else {
            let room = KEPT_BODY.saturating_sub(kept.len()).min(chunk.len());
            kept.extend_from_slice(&chunk[..room]);
        }
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    shared.log.lock().expect("upstream log").seen.push(Seen {
        method: parts.method.to_string(),
        target: target.clone(),
        headers: parts.headers.clone(),
        version: parts.version,
        body_len,
        body_sha256: hex(&hasher.finalize()),
    });

    let path = parts.uri.path();
    if git && let Some(root) = &shared.git_root {
        return super::git::serve(root, &parts, kept).await;
    }
    // Held before anything is answered, so a credential is judged as it stands on release.
    if path.ends_with("/slow") {
        let mut released = shared.released.clone();
        let _ = released.wait_for(|r| *r).await;
    }
    if let Some(answer) = shared.bitbucket.answer(
        &parts.method,
        path,
        parts.uri.query().unwrap_or_default(),
        &parts.headers,
        &kept,
    ) {
        return answer;
    }
    if let Some((_, n)) = path.rsplit_once("/download/") {
        let len: u64 = n.parse().expect("/download/N takes a byte count");
        return download(shared, len);
    }
    let mut response = Response::builder().header("content-type", "application/json");
    if path.ends_with("/close") {
        response = response.header("connection", "close");
    }
    if path.ends_with("/hop-headers") {
        response = response
            .header("connection", "x-hop-response")
            .header("x-hop-response", "1")
            .header("keep-alive", "timeout=5")
            .header("x-end-to-end", "1");
    }
    response
        .body(Body::from(r#"{"ok":true}"#))
        .expect("a valid response")
}

/// Streams `len` generated bytes, hashing what it sends and recording it at the end.
fn download(shared: Arc<Shared>, len: u64) -> Response {
    let base = pattern();
    let state = (0u64, Sha256::new(), shared, base);
    let stream = futures_util::stream::unfold(
        state,
        move |(offset, mut hasher, shared, base)| async move {
            if offset >= len {
                let sha256 = hex(&hasher.finalize());
                shared
                    .log
                    .lock()
                    .expect("upstream log")
                    .sent
                    .push(Sent { len, sha256 });
                return None;
            }
            let n = usize::try_from((len - offset).min(CHUNK as u64)).expect("a chunk fits");
            let mut chunk = base[..n].to_vec();
            // Every chunk differs, so a reordered or repeated chunk changes the digest.
            let stamp = offset.to_le_bytes();
            let stamped = stamp.len().min(n);
            chunk[..stamped].copy_from_slice(&stamp[..stamped]);
            hasher.update(&chunk);
            Some((
                Ok::<_, Infallible>(Bytes::from(chunk)),
                (offset + n as u64, hasher, shared, base),
            ))
        },
    );
    Response::builder()
        .header("content-type", "application/octet-stream")
        .body(Body::from_stream(stream))
        .expect("a valid response")
}

/// One chunk of noise (xorshift), the base of every generated chunk.
fn pattern() -> Arc<[u8]> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}
