//! Requests refused before anything is decided, because the gateway must read a request at least
//! as strictly as any server behind it or balancer in front of it: where two of them disagree on
//! where a request ends, a client can hide a second request inside the first (request
//! smuggling). hyper already refuses what it cannot frame at all (a `Transfer-Encoding` whose
//! last coding is not `chunked`, differing `Content-Length`s); this refuses what it accepts but a
//! neighbour may read otherwise: a `Transfer-Encoding` other than exactly one `chunked` coding,
//! `Content-Length` beside it (seen on the wire by [`watch`], as hyper drops it), an HTTP/1.1
//! request without exactly one `Host`, `CONNECT`, and a target that is not a path.

mod scan;
mod watch;

pub(super) use watch::{Heads, Watched};

use http::header::{ALLOW, CONNECTION, CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
use http::{Method, Request, Response, StatusCode, Version};

use super::context::Present;
use super::respond::{self, ProxyBody};

/// Why a request is refused before the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `Transfer-Encoding` other than exactly one `chunked` coding on one line.
    TransferEncoding,
    /// `Content-Length` together with `Transfer-Encoding`.
    LengthWithChunked,
    /// An HTTP/1.1 request without a `Host`, or with more than one.
    Host,
    /// `CONNECT`: the gateway opens no tunnels.
    Connect,
    /// An asterisk-form (`OPTIONS *`) or authority-form target: nothing to forward to Bitbucket.
    Target,
}

/// Marks a request whose head carried `Content-Length` beside `Transfer-Encoding`, which only
/// the bytes on the wire show (see [`Heads::mark`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct LengthWithChunked;

/// Checks the request's framing, method and target.
///
/// # Errors
///
/// The [`Refusal`] the request gets.
pub(super) fn check<B>(request: &Request<B>, present: &Present) -> Result<(), Refusal> {
    let headers = request.headers();
    if request.method() == Method::CONNECT {
        return Err(Refusal::Connect);
    }
    let mut codings = present
        .transfer_encoding
        .then(|| headers.get_all(TRANSFER_ENCODING).iter())
        .into_iter()
        .flatten();
    if let Some(first) = codings.next() {
        if codings.next().is_some()
            || !first
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked")
        {
            return Err(Refusal::TransferEncoding);
        }
        if headers.contains_key(CONTENT_LENGTH)
            || request.extensions().get::<LengthWithChunked>().is_some()
        {
            return Err(Refusal::LengthWithChunked);
        }
    }
    if request.version() == Version::HTTP_11 && present.hosts != 1 {
        return Err(Refusal::Host);
    }
    if !request.uri().path().starts_with('/') {
        return Err(Refusal::Target);
    }
    Ok(())
}

impl Refusal {
    /// The label of the request metric.
    pub(super) fn outcome(self) -> &'static str {
        match self {
            Self::TransferEncoding => "bad_transfer_encoding",
            Self::LengthWithChunked => "length_with_chunked",
            Self::Host => "bad_host",
            Self::Connect => "connect",
            Self::Target => "bad_target",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::TransferEncoding => {
                "The request's Transfer-Encoding must be exactly one \"chunked\" coding."
            }
            Self::LengthWithChunked => {
                "The request has both Content-Length and Transfer-Encoding; send one of them."
            }
            Self::Host => "An HTTP/1.1 request must carry exactly one Host header.",
            Self::Connect => "CONNECT is not supported here.",
            Self::Target => "The request target must be a path starting with '/'.",
        }
    }

    /// 400 (405 with `Allow` for `CONNECT`) in Bitbucket's error shape, closing an HTTP/1
    /// connection: after a request whose end is in doubt, nothing on it can be trusted.
    pub(super) fn response(self, version: Version) -> Response<ProxyBody> {
        let status = match self {
            Self::Connect => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = respond::error(status, self.message());
        let headers = response.headers_mut();
        if self == Self::Connect {
            headers.insert(
                ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
        }
        // HTTP/2 frames each request on its own and has no `Connection` header.
        if version < Version::HTTP_2 {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    /// `check` as the proxy calls it, with what one pass found of the headers.
    fn checked<B>(request: &Request<B>) -> Result<(), Refusal> {
        let present = Present::of(
            request.headers(),
            &http::HeaderName::from_static("x-ausername"),
        );
        check(request, &present)
    }

    const HOST_LINE: (&str, &str) = ("host", "bitbucket.example.com");

    #[test]
    fn ordinary_requests_pass() {
        for (method, target, headers) in [
            ("GET", "/rest/api/1.0/projects?limit=25", vec![HOST_LINE]),
            (
                "POST",
                "/scm/p/r.git/git-upload-pack",
                vec![HOST_LINE, ("transfer-encoding", "chunked")],
            ),
            (
                "PUT",
                "/x",
                vec![HOST_LINE, ("transfer-encoding", " Chunked ")],
            ),
            ("POST", "/x", vec![HOST_LINE, ("content-length", "5")]),
            (
                "GET",
                "http://bitbucket.example.com/projects",
                vec![HOST_LINE],
            ),
        ] {
            assert_eq!(
                checked(&request(method, target, &headers)),
                Ok(()),
                "{method} {target}"
            );
        }
        let mut old = request("GET", "/projects", &[]);
        *old.version_mut() = Version::HTTP_10;
        assert_eq!(checked(&old), Ok(()), "HTTP/1.0 needs no Host");
        let mut h2 = request("GET", "/projects", &[]);
        *h2.version_mut() = Version::HTTP_2;
        assert_eq!(checked(&h2), Ok(()), "HTTP/2 names the host in :authority");
    }

    #[test]
    fn framing_a_neighbour_may_read_otherwise_is_refused() {
        let te = |value| vec![HOST_LINE, ("transfer-encoding", value)];
        for headers in [
            te("chunked, chunked"),
            te("gzip, chunked"),
            te("x-unknown, chunked"),
            te("chunked;q=1"),
            te(""),
            vec![
                HOST_LINE,
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            assert_eq!(
                checked(&request("POST", "/x", &headers)),
                Err(Refusal::TransferEncoding),
                "{headers:?}"
            );
        }
        let both = [
            HOST_LINE,
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
        ];
        assert_eq!(
            checked(&request("POST", "/x", &both)),
            Err(Refusal::LengthWithChunked)
        );
        let mut marked = request("POST", "/x", &both[..2]);
        marked.extensions_mut().insert(LengthWithChunked);
        assert_eq!(checked(&marked), Err(Refusal::LengthWithChunked));
    }

    #[test]
    fn hosts_methods_and_targets() {
        assert_eq!(checked(&request("GET", "/x", &[])), Err(Refusal::Host));
        let two = [HOST_LINE, ("host", "other.example.com")];
        assert_eq!(checked(&request("GET", "/x", &two)), Err(Refusal::Host));
        let connect = request("CONNECT", "bitbucket.example.com:443", &[HOST_LINE]);
        assert_eq!(checked(&connect), Err(Refusal::Connect));
        for target in ["*", "bitbucket.example.com:80"] {
            for method in ["OPTIONS", "GET"] {
                let refused = checked(&request(method, target, &[HOST_LINE]));
                assert_eq!(refused, Err(Refusal::Target), "{method} {target}");
            }
        }
    }

    #[test]
    fn refusals_close_the_connection_and_405_says_what_is_allowed() {
        let response = Refusal::Connect.response(Version::HTTP_11);
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(response.headers().contains_key(ALLOW));
        assert_eq!(response.headers()[CONNECTION], "close");
        let response = Refusal::Host.response(Version::HTTP_11);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[CONNECTION], "close");
        let response = Refusal::Target.response(Version::HTTP_2);
        assert!(!response.headers().contains_key(CONNECTION));
    }
}
