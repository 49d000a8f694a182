//! One request on the proxy listener: gather the inputs, decide, then act (forward, reject,
//! log, audit).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use futures_util::FutureExt as _;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::Gateway;
use super::context::{Present, Remote, remote, session_id};
use super::forward::{UpstreamError, as_http1, set_forwarded, strip_hop_by_hop};
use super::framing;
use super::identity::{credential_value, identity_value, unsendable_user};
use super::report::{Reported, outcome, report};
use super::respond::{self, ProxyBody, add_rate_headers};
use crate::auth::{
    Credential, Decision, Policy, Presented, Progress, RateCheck, Redacted, RequestFacts,
    TokenPlace, Unroutable, Unverified, Verification, decide_until_rate, routing_path, stray_token,
};
use crate::config::Identity;
use crate::ratelimit::{RateStatus, Wording};
use crate::request_id::{Counted, REQUEST_ID_HEADER, request_id_header};
use crate::selfservice::{Edge, RequestMeta};
use crate::telemetry::{CLIPPED, MAX_FIELD_BYTES, RequestContext, clip, in_request};

/// The header Bitbucket names the authenticated user with on its answers.
const X_AUSERNAME: HeaderName = HeaderName::from_static("x-ausername");

/// Handles one request; never fails (errors become responses).
///
/// What needs no waiting is done here, before the request's future is made; the future is
/// then boxed once, and what the connection holds and moves is a pointer and the context.
pub(super) fn handle(
    gateway: Arc<Gateway>,
    mut request: Request<Incoming>,
    peer: SocketAddr,
) -> impl Future<Output = Response<ProxyBody>> + Send + use<> {
    // An HTTP/2 request gets the head an HTTP/1.1 one has (Host from :authority), for
    // self-service's origin check and for Bitbucket alike.
    as_http1(&mut request);
    // The one clock read of the request: its id, decision, audit event and last use.
    let now = Utc::now();
    let (request_id, counted) = gateway.ids.next_counted_at(now);
    let present = Present::of(request.headers(), &gateway.identity_header);
    let mut remote = remote(request.headers(), &present, peer, &gateway.trusted_proxies);
    // A token in the query string or a cookie: refused below, and never shown in a line.
    let cookies = present.cookie.then(|| request.headers());
    let stray = stray_token(request.uri().query(), cookies);
    // The addresses are only ever logged, so the context takes them.
    let context = RequestContext::new(
        request_id.clone(),
        std::mem::take(&mut remote.addresses),
        RequestLine::of(&request, stray == Some(TokenPlace::Query)),
    )
    .with_session_id(cookies.and_then(session_id));
    let id_header = request_id_header(&request_id);
    let answered_id = id_header.clone();
    let handling = Handling {
        gateway,
        _counted: counted,
        remote,
        request_id,
        id_header,
        stray,
        present,
        now,
    };
    // Boxed here, as it is made: a future is copied whole each time it moves.
    let decided = Box::pin(decide_and_act(handling, request));
    in_request(context, decided).map(move |mut response| {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER, answered_id);
        response
    })
}

/// What a request's future owns besides the request: the gateway, the request's place among
/// those in flight, and what [`handle`] settled before the future was made.
struct Handling {
    gateway: Arc<Gateway>,
    _counted: Counted,
    remote: Remote,
    request_id: CompactString,
    /// The request id as the `X-AREQUESTID` value.
    id_header: HeaderValue,
    stray: Option<TokenPlace>,
    /// Which of the headers read here the request has.
    present: Present,
    now: DateTime<Utc>,
}

/// `GET /path?query HTTP/1.1`, written only when a line inside the request is logged. It
/// holds its own copies of the method and target (a reference count, not the text), so the
/// request itself can move on to the upstream.
struct RequestLine {
    method: Method,
    target: Option<PathAndQuery>,
    version: Version,
    /// The query holds a tokengate token: it is written [`Redacted`].
    redact_query: bool,
}

impl RequestLine {
    fn of<B>(request: &Request<B>, redact_query: bool) -> Self {
        Self {
            method: request.method().clone(),
            target: request.uri().path_and_query().cloned(),
            version: request.version(),
            redact_query,
        }
    }

    /// The line's text, written to `out` piece by piece: a line is written on nearly every
    /// request, and `write!` would run the formatting machinery for six plain texts.
    fn write_to(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        let version = match self.version {
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        };
        // Clipped here as well as where it is escaped, so the JSON format's line is bounded too.
        let marked = |(text, clipped)| (text, if clipped { CLIPPED } else { "" });
        let (method, m) = marked(clip(self.method.as_str(), MAX_FIELD_BYTES));
        let target = self.target.as_ref().map_or("/", PathAndQuery::as_str);
        let redacted;
        let target = match self.target.as_ref().and_then(PathAndQuery::query) {
            Some(query) if self.redact_query => {
                let path = self.target.as_ref().map_or("/", PathAndQuery::path);
                redacted = format!("{path}?{}", Redacted(query));
                redacted.as_str()
            }
            _ => target,
        };
        let (target, t) = marked(clip(target, MAX_FIELD_BYTES));
        for piece in [method, m, " ", target, t, " ", version] {
            out.write_str(piece)?;
        }
        Ok(())
    }
}

impl std::fmt::Display for RequestLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write_to(f)
    }
}

impl crate::telemetry::RequestLine for RequestLine {
    fn push_onto(&self, out: &mut String) {
        // Writing to a String never fails.
        let _ = self.write_to(out);
    }
}

/// Decides on `request` and answers it. An `async` block, not an `async fn`: a function's
/// future would hold its arguments twice, as given and as moved into its body.
#[allow(clippy::manual_async_fn)] // the block's future is about 400 bytes smaller
fn decide_and_act(
    handling: Handling,
    mut request: Request<Incoming>,
) -> impl Future<Output = Response<ProxyBody>> + Send {
    async move {
        // Every field named, so the block takes all of them: the request counts as in flight
        // until its future is dropped.
        let Handling {
            ref gateway,
            _counted: ref _in_flight,
            ref remote,
            ref request_id,
            ref id_header,
            stray,
            present,
            now,
        } = handling;
        let gateway: &Gateway = gateway;
        let request_id: &str = request_id;
        if let Err(refusal) = framing::check(&request, &present) {
            gateway.metrics.count_request(refusal.outcome());
            return refusal.response(request.version());
        }
        let client_ip = remote.client_ip;
        // Each step's locals in a block of its own: what a step holds while it waits is then not
        // also held while the request is forwarded.
        let decision = {
            let path = request.uri().path();
            // Decided on the path as Bitbucket's Tomcat routes it (`//rest/`, `/%72est/` and
            // `/x/../rest/` are `/rest/` there); logged and forwarded as sent.
            let routed = match routing_path(path) {
                Ok(routed) => routed,
                // Tomcat routes such a path with U+FFFD for the bytes (a UI page named in Latin-1,
                // say). Without a credential nothing is decided (row 1 forwards it untouched); with
                // one, it must be routable to be decided.
                Err(Unroutable::NotUtf8) if !request.headers().contains_key(AUTHORIZATION) => {
                    Cow::Borrowed(path)
                }
                Err(e) => {
                    gateway.metrics.count_request("unroutable");
                    return respond::error(
                        StatusCode::BAD_REQUEST,
                        &format!("The request path cannot be routed: {e}."),
                    );
                }
            };
            if let Some(edge) = &gateway.self_service
                && edge.serves(&routed)
                && stray.is_none()
            {
                let routed = routed.into_owned();
                let meta = RequestMeta {
                    client_ip: remote.client_ip,
                    request_id: request_id.to_owned(),
                    secure: gateway.tls,
                };
                // Boxed, as every path most requests do not take: their futures would otherwise make
                // every request's future larger, and it is moved in full.
                return Box::pin(self_service(edge, request, &routed, meta)).await;
            }
            let facts = Facts {
                request: &request,
                routed: &routed,
                protected: gateway.is_protected(&routed),
                client_ip,
                stray,
                now,
            };
            match facts.decide_now(gateway) {
                Deciding::Decided(decision) => decision,
                // Boxed, as the ways that wait are taken by few requests: their futures would
                // make every request's future larger.
                waiting => Box::pin(facts.decide_waiting(gateway, waiting)).await,
            }
        };
        // Hop-by-hop headers go first: a client naming the identity header (or `Authorization`)
        // in `Connection` must not make the forward strip what the gateway sets below.
        strip_hop_by_hop(request.headers_mut());
        // Whatever happens next, a client's copy of the identity header never goes upstream. It is
        // removed only when present: removing an absent name still hashes it.
        if present.identity {
            request.headers_mut().remove(&gateway.identity_header);
        }
        // The stored credential an allowed request is sent with, to refuse only that one if
        // Bitbucket refuses it.
        let sent = {
            let reported = Reported {
                method: request.method(),
                path: request.uri().path(),
                client_ip,
                request_id,
                now,
            };
            // Whom to forward an allowed request as, settled before the decision is reported, so a
            // user without a stored credential is logged as refused, never as authenticated.
            let identity = match &decision {
                Decision::Allow { token, .. } => {
                    let identity = match gateway.identity {
                        Identity::Header => {
                            identity_value(gateway, token).ok_or_else(unsendable_user)
                        }
                        Identity::Credential => {
                            Box::pin(credential_value(gateway, token, &reported)).await
                        }
                    };
                    match identity {
                        Ok(identity) => Some(identity),
                        Err(response) => return response,
                    }
                }
                _ => None,
            };
            gateway.metrics.count_request(outcome(&decision));
            report(gateway, &decision, &reported);
            identity.and_then(|(name, value)| {
                let headers = request.headers_mut();
                headers.remove(AUTHORIZATION);
                let sent = (gateway.identity == Identity::Credential).then(|| value.clone());
                headers.insert(name, value);
                sent
            })
        };
        match decision {
            Decision::PassThrough | Decision::Fallback { .. } => {
                forward(gateway, request, remote, id_header).await
            }
            Decision::Allow { token, status } => {
                gateway.usage.record(&token.id, now, client_ip);
                let mut response = forward(gateway, request, remote, id_header).await;
                // Bitbucket also answers 401 to a signed-in user who lacks a permission, but then
                // names the user in X-AUSERNAME: only a 401 that names nobody refuses the credential.
                // (A credential was sent only with `identity = "credential"`.)
                if response.status() == StatusCode::UNAUTHORIZED
                    && !response.headers().contains_key(X_AUSERNAME)
                    && let Some(vault) = &gateway.credentials
                    && let Some(sent) = &sent
                {
                    // Bitbucket refused the user's stored credential (expired, revoked, or its user
                    // lost access): not sent again until it is replaced.
                    // Boxed: a cold path, kept out of every request's future.
                    match Box::pin(vault.refuse(&token.user, sent)).await {
                        Ok(true) => {
                            tracing::warn!(target: "tokengate::proxy", user = %crate::telemetry::Escaped(&token.user), "Bitbucket refused the stored credential; marked refused until it is replaced");
                        }
                        // Replaced since this request was sent: the new one is not refused.
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(target: "tokengate::proxy", error = %e, "marking the stored credential refused failed");
                        }
                    }
                }
                add_rate_headers(&mut response, &status);
                response
            }
            Decision::NoValidToken { scheme, .. } => respond::unauthorized(
                scheme,
                "Authentication failed: no valid API token was provided.",
            ),
            Decision::IpNotAllowed { scheme, .. } => respond::unauthorized(
                Some(scheme),
                &format!("IP address {client_ip} is not allowed to use this API token."),
            ),
            Decision::ScopeDenied { overridden, .. } => {
                let method = overridden.as_deref().unwrap_or(request.method().as_str());
                respond::insufficient_scope(&format!(
                    "This API token is read-only and covers only GET, HEAD and OPTIONS requests and git fetch; this {method} request needs a read/write token."
                ))
            }
            Decision::RateLimited {
                quota,
                status,
                retry_after,
                ..
            } => {
                let mut response = respond::too_many_requests(
                    &format!(
                        "Rate limit exceeded: this API token allows {}.",
                        Wording(&quota)
                    ),
                    retry_after,
                );
                add_rate_headers(&mut response, &status);
                response
            }
            Decision::TokenOutsideProtectedPaths | Decision::TokenOutsideAuthorization { .. } => {
                respond::unauthorized(
                    None,
                    &format!(
                        "API tokens are accepted only in the Authorization header, on paths under {}; this request was not forwarded.",
                        gateway.protected_paths_text
                    ),
                )
            }
            Decision::StoreUnavailable => {
                tracing::warn!(target: "tokengate::proxy", "token store unavailable; refusing a token that is not cached");
                respond::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Token verification is temporarily unavailable. Please try again shortly.",
                )
            }
            Decision::TooManyFailures { retry_after } => {
                let mut response = respond::too_many_requests(
                    "Too many failed token verifications from this address.",
                    retry_after,
                );
                // Every 429 carries RateLimit-*: here the failure budget, spent until retry_after.
                let status = RateStatus {
                    limit: gateway.verifier.failure_quota().requests.get(),
                    remaining: 0,
                    reset: retry_after,
                };
                add_rate_headers(&mut response, &status);
                response
            }
        }
    }
}

/// How far the decision on a request for Bitbucket gets without waiting.
enum Deciding<'a> {
    Decided(Decision),
    /// Rows 1 to 6 passed, and the request is counted by the shared rate-limit backend.
    CountRate(RateCheck),
    /// The token `credential` carries is to be verified (it is not among those verified
    /// before), or whether its owner may use tokens is to be asked.
    Verify(Credential<'a>),
}

/// What the rules are applied to, besides the credential.
struct Facts<'a> {
    request: &'a Request<Incoming>,
    routed: &'a str,
    protected: bool,
    client_ip: IpAddr,
    stray: Option<TokenPlace>,
    now: DateTime<Utc>,
}

impl<'a> Facts<'a> {
    /// Whether a token presented is looked up at all: elsewhere it is refused whatever it is.
    fn looks_up_tokens(&self) -> bool {
        self.protected && self.stray.is_none()
    }

    /// The decision, as far as it gets without waiting: a token verified before whose
    /// owner's right to use tokens is settled, and the request counted by this process's own
    /// limits.
    fn decide_now(&self, gateway: &Gateway) -> Deciding<'a> {
        let credential = Credential::from_headers(self.request.headers());
        let verification = match &credential {
            Credential::Token { token, .. } if self.looks_up_tokens() => {
                match verified_now(gateway, token) {
                    Some(verification) => Some(verification),
                    None => return Deciding::Verify(credential),
                }
            }
            _ => None,
        };
        match self.progress(gateway, credential, verification) {
            Progress::Decided(decision) => Deciding::Decided(decision),
            Progress::NeedsRateCheck(check) => {
                match gateway
                    .limits
                    .check_token_here(&check.token.id.key(), check.quota)
                {
                    Some(outcome) => Deciding::Decided(check.decide(outcome)),
                    None => Deciding::CountRate(check),
                }
            }
        }
    }

    /// The decision from where [`Facts::decide_now`] stopped (`from`), waiting where it must:
    /// the credential verified (with the rights of the token's owner), the rules, and the
    /// request counted by the shared rate-limit backend.
    async fn decide_waiting(self, gateway: &Gateway, from: Deciding<'a>) -> Decision {
        let check = match from {
            Deciding::Decided(decision) => return decision,
            Deciding::CountRate(check) => check,
            Deciding::Verify(credential) => {
                let verification = match &credential {
                    Credential::Token { token, .. } => {
                        let verified = gateway.verifier.verify(token, self.client_ip).await;
                        Some(may_use(gateway, verified).await)
                    }
                    _ => None,
                };
                match self.progress(gateway, credential, verification) {
                    Progress::Decided(decision) => return decision,
                    Progress::NeedsRateCheck(check) => check,
                }
            }
        };
        // Rows 7 and 8: the request counted against the token's quota.
        let outcome = gateway
            .limits
            .check_token(&check.token.id.key(), check.quota)
            .await;
        check.decide(outcome)
    }

    /// Rows 1 to 6 on `credential`, whose token (if it is one, and is looked up at all) was
    /// verified as `verification` says.
    fn progress(
        &self,
        gateway: &Gateway,
        credential: Credential<'_>,
        verification: Option<Verification>,
    ) -> Progress {
        let presented = match credential {
            Credential::Missing => Presented::Nothing,
            Credential::Foreign { user, scheme } => Presented::Foreign { user, scheme },
            Credential::Token {
                scheme, basic_user, ..
            } => Presented::Token {
                scheme,
                basic_user,
                // Not looked up: refused below whatever it is.
                verification: verification.unwrap_or(Verification::Invalid {
                    reason: Unverified::Malformed,
                    owner: None,
                }),
            },
        };
        let request_facts = RequestFacts {
            method: self.request.method(),
            path: self.routed,
            query: self.request.uri().query(),
            client_ip: self.client_ip,
            protected: self.protected,
            stray_token: self.stray,
            headers: self.request.headers(),
            now: self.now,
        };
        let policy = Policy {
            basic_auth_fallback: gateway.basic_auth_fallback,
            allowed_ips: &gateway.allowed_ips,
            default_quota: gateway.default_quota,
        };
        decide_until_rate(&request_facts, presented, &policy)
    }
}

/// A verified token whose owner may no longer use tokens is withdrawn. Free unless
/// `self_service.use_tokens` names groups or users.
/// How `token` verifies, when that is known without waiting: it verified before, and whether
/// its owner may use tokens is settled.
fn verified_now(gateway: &Gateway, token: &str) -> Option<Verification> {
    let record = gateway.verifier.verified_before(token)?;
    Some(if gateway.directory.may_use_tokens_now(&record.user)? {
        Verification::Verified(record)
    } else {
        Verification::Withdrawn(record)
    })
}

async fn may_use(gateway: &Gateway, verification: Verification) -> Verification {
    let Verification::Verified(token) = verification else {
        return verification;
    };
    let allowed = match gateway.directory.may_use_tokens_now(&token.user) {
        Some(settled) => Ok(settled),
        None => Box::pin(gateway.directory.may_use_tokens(&token.user)).await,
    };
    match allowed {
        Ok(true) => Verification::Verified(token),
        Ok(false) => Verification::Withdrawn(token),
        Err(e) => {
            tracing::warn!(target: "tokengate::proxy", error = %e, "Bitbucket could not be asked whether the token's user may use tokens");
            Verification::StoreUnavailable
        }
    }
}

/// A request for tokengate's own API or pages: answered here, never forwarded. It is decided
/// on the path as routed.
async fn self_service(
    edge: &Edge,
    mut request: Request<Incoming>,
    routed: &str,
    meta: RequestMeta,
) -> Response<ProxyBody> {
    if routed != request.uri().path() {
        let target = match request.uri().query() {
            Some(query) => format!("{routed}?{query}"),
            None => routed.to_owned(),
        };
        match target.parse::<http::Uri>() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => {
                return respond::error(
                    StatusCode::BAD_REQUEST,
                    "The request path cannot be routed.",
                );
            }
        }
    }
    edge.handle(request, meta)
        .await
        .map(|body| body.map_err(|never| match never {}).boxed())
}

/// Sets the forwarding headers and hands the request to the upstream pool; the future
/// answers with Bitbucket's response or the gateway's error. Made before it is awaited, so
/// the request is not part of it.
fn forward<'a>(
    gateway: &'a Gateway,
    mut request: Request<Incoming>,
    remote: &Remote,
    request_id: &HeaderValue,
) -> impl Future<Output = Response<ProxyBody>> + use<'a> {
    // Hop-by-hop headers were stripped before the decision's headers were set.
    let headers = request.headers_mut();
    // Room for the three forwarding headers and `X-AREQUESTID` at once: the map came with
    // room for the request's own headers, and each time it grows it places every name again.
    headers.reserve(4);
    set_forwarded(
        headers,
        remote.peer_ip,
        remote.peer_trusted,
        &gateway.forwarded_proto,
    );
    headers.insert(REQUEST_ID_HEADER, request_id.clone());
    // A `map`, not an `async` block: a block would hold the awaited future twice.
    gateway.upstream.send(request).map(move |sent| {
        match sent {
            Ok((response, latency)) => {
                gateway
                    .metrics
                    .upstream_latency
                    .observe(latency.as_secs_f64());
                response.map(|body| body.boxed())
            }
            // Not Bitbucket's doing: no warning, and the client learns it was its request.
            Err(UpstreamError::ClientBody(e)) => {
                tracing::debug!(target: "tokengate::proxy", error = %e, "the request body could not be read");
                gateway.metrics.count_request("bad_request_body");
                respond::error(
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read: it ended early or its chunked coding is malformed.",
                )
            }
            Err(e @ (UpstreamError::Unreachable(_) | UpstreamError::Tls(_))) => {
                tracing::warn!(target: "tokengate::proxy", error = %e, "forwarding failed");
                let outcome = if matches!(e, UpstreamError::Tls(_)) {
                    "upstream_tls_failed"
                } else {
                    "upstream_unreachable"
                };
                gateway.metrics.count_request(outcome);
                respond::error(
                    StatusCode::BAD_GATEWAY,
                    "Bitbucket could not be reached. Please try again shortly.",
                )
            }
            Err(e @ UpstreamError::Timeout(_)) => {
                tracing::warn!(target: "tokengate::proxy", error = %e, "forwarding failed");
                gateway.metrics.count_request("upstream_timeout");
                respond::error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Bitbucket did not answer in time.",
                )
            }
        }
    })
}
