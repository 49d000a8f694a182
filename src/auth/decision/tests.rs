//! The decision table, row by row. Each test builds a request, what it
//! presented and the policy, then checks the one [`Decision`] that row calls for. Every refused
//! request is decided with a rate check that panics, so a refusal can never consume quota.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use http::{HeaderMap, Method};
use ipnet::IpNet;

use super::*;
use crate::token::TokenId;

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/// The moment every request is decided at, unless a test moves it.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2021, 1, 7, 8, 52, 38).unwrap() + TimeDelta::milliseconds(540)
}

fn ms(n: i64) -> TimeDelta {
    TimeDelta::milliseconds(n)
}

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test IP {s:?}: {e}"))
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|e| panic!("bad test CIDR {s:?}: {e}"))
        })
        .collect()
}

fn quota(requests: u32, period_seconds: u64) -> RateQuota {
    RateQuota::new(requests, period_seconds).unwrap()
}

/// `rate_limit.default = "1000/1h"`.
fn default_quota() -> RateQuota {
    quota(1000, 3600)
}

fn status(remaining: u32) -> RateStatus {
    RateStatus {
        limit: 5,
        remaining,
        reset: Duration::from_secs(300),
    }
}

/// A token record, active, read-write, no IP rule, no own quota, owned by `alice`.
struct Rec(TokenRecord);

fn token() -> Rec {
    Rec(TokenRecord {
        id: TokenId::parse("abcdefghijkl").unwrap(),
        user: "alice".into(),
        description: "API Token from 2021-01-06".into(),
        scope: Scope::ReadWrite,
        created_at: now() - TimeDelta::days(1),
        expires_at: None,
        allowed_ips: Vec::new(),
        rate_limit: None,
        last_used_at: None,
        last_used_ip: None,
        revoked_at: None,
        secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
    })
}

impl Rec {
    fn id(mut self, id: &str) -> Self {
        self.0.id = TokenId::parse(id).unwrap();
        self
    }
    fn user(mut self, user: &str) -> Self {
        self.0.user = user.into();
        self
    }
    fn read_only(mut self) -> Self {
        self.0.scope = Scope::ReadOnly;
        self
    }
    fn expires(mut self, at: DateTime<Utc>) -> Self {
        self.0.expires_at = Some(at);
        self
    }
    fn revoked(mut self, at: DateTime<Utc>) -> Self {
        self.0.revoked_at = Some(at);
        self
    }
    fn ips(mut self, list: &[&str]) -> Self {
        self.0.allowed_ips = nets(list);
        self
    }
    fn quota(mut self, q: RateQuota) -> Self {
        self.0.rate_limit = Some(q);
        self
    }
    fn arc(self) -> Arc<TokenRecord> {
        Arc::new(self.0)
    }
}

/// A request: protected `GET /rest/ssh/1.0/keys` from 79.209.73.23 at [`now`].
#[derive(Clone)]
struct Req {
    method: Method,
    path: String,
    query: Option<String>,
    client_ip: IpAddr,
    protected: bool,
    stray_token: Option<TokenPlace>,
    headers: HeaderMap,
    now: DateTime<Utc>,
}

fn req(method: Method, path: &str) -> Req {
    Req {
        method,
        path: path.into(),
        query: None,
        client_ip: ip("79.209.73.23"),
        protected: true,
        stray_token: None,
        headers: HeaderMap::new(),
        now: now(),
    }
}

fn get() -> Req {
    req(Method::GET, "/rest/ssh/1.0/keys")
}

fn post() -> Req {
    req(Method::POST, "/rest/ssh/1.0/keys")
}

impl Req {
    fn query(mut self, q: &str) -> Self {
        self.query = Some(q.into());
        self
    }
    fn from(mut self, addr: &str) -> Self {
        self.client_ip = ip(addr);
        self
    }
    fn unprotected(mut self) -> Self {
        self.protected = false;
        self
    }
    fn at(mut self, t: DateTime<Utc>) -> Self {
        self.now = t;
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers
            .append(name, http::HeaderValue::from_str(value).unwrap());
        self
    }
    fn stray(mut self, place: TokenPlace) -> Self {
        self.stray_token = Some(place);
        self
    }
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            client_ip: self.client_ip,
            protected: self.protected,
            stray_token: self.stray_token,
            headers: &self.headers,
            now: self.now,
        }
    }
}

/// The policy: fallback as given, no global IP rule, default quota 1000/1h.
struct Pol {
    fallback: bool,
    allowed_ips: Vec<IpNet>,
    default_quota: RateQuota,
}

fn fallback(on: bool) -> Pol {
    Pol {
        fallback: on,
        allowed_ips: Vec::new(),
        default_quota: default_quota(),
    }
}

impl Pol {
    fn ips(mut self, list: &[&str]) -> Self {
        self.allowed_ips = nets(list);
        self
    }
    fn policy(&self) -> Policy<'_> {
        Policy {
            basic_auth_fallback: self.fallback,
            allowed_ips: &self.allowed_ips,
            default_quota: self.default_quota,
        }
    }
}

const BOTH: [bool; 2] = [true, false];

fn foreign(user: Option<&str>) -> Presented {
    Presented::Foreign {
        scheme: user.map(|_| Scheme::Basic),
        user: user.map(Into::into),
    }
}

fn bearer(verification: Verification) -> Presented {
    Presented::Token {
        scheme: Scheme::Bearer,
        basic_user: None,
        verification,
    }
}

fn basic(user: Option<&str>, verification: Verification) -> Presented {
    Presented::Token {
        scheme: Scheme::Basic,
        basic_user: user.map(Into::into),
        verification,
    }
}

fn verified(token: &Arc<TokenRecord>) -> Verification {
    Verification::Verified(Arc::clone(token))
}

fn invalid(reason: Unverified, owner: Option<&str>) -> Verification {
    Verification::Invalid {
        reason,
        owner: owner.map(Into::into),
    }
}

/// Decides a request that must be refused (or passed on): the rate check panics if called.
fn refused(request: &Req, presented: Presented, policy: &Pol) -> Decision {
    decide(
        &request.facts(),
        presented,
        &policy.policy(),
        |token, quota| {
            panic!(
                "rate_check called for a request that is not allowed (token {}, quota {quota})",
                token.id
            )
        },
    )
}

/// A rate check that answers `answer` and records every call.
struct Probe {
    calls: RefCell<Vec<(TokenId, RateQuota)>>,
}

impl Probe {
    fn new() -> Self {
        Self {
            calls: RefCell::new(Vec::new()),
        }
    }
    fn decide(
        &self,
        request: &Req,
        presented: Presented,
        policy: &Pol,
        answer: RateDecision,
    ) -> Decision {
        decide(
            &request.facts(),
            presented,
            &policy.policy(),
            |token, quota| {
                self.calls.borrow_mut().push((token.id.clone(), quota));
                answer
            },
        )
    }
    fn calls(&self) -> Vec<(TokenId, RateQuota)> {
        self.calls.borrow().clone()
    }
}

/// Decides a request expected to reach the rate check, which allows it.
fn allowed(
    request: &Req,
    presented: Presented,
    policy: &Pol,
) -> (Decision, Vec<(TokenId, RateQuota)>) {
    let probe = Probe::new();
    let decision = probe.decide(request, presented, policy, RateDecision::Allowed(status(4)));
    (decision, probe.calls())
}

/// Asserts `decision` is an allow of `token`, and that the rate check ran once with `quota`.
#[track_caller]
fn assert_allow(
    decision: &Decision,
    calls: &[(TokenId, RateQuota)],
    token: &Arc<TokenRecord>,
    quota: RateQuota,
) {
    match decision {
        Decision::Allow {
            token: t,
            status: s,
        } => {
            assert!(Arc::ptr_eq(t, token), "allowed as another token: {t:?}");
            assert_eq!(*s, status(4), "the rate check's status is carried");
        }
        other => panic!("expected Allow, got {other:?}"),
    }
    assert_eq!(
        calls.len(),
        1,
        "rate_check must run exactly once on the allow path: {calls:?}"
    );
    assert_eq!(calls[0].0, token.id, "rate_check got another token");
    assert_eq!(calls[0].1, quota, "rate_check got the wrong quota");
}

/// Asserts `decision` is a 401 "no valid token" with these fields.
#[track_caller]
fn assert_no_valid_token(
    decision: &Decision,
    user: Option<&str>,
    reason: NoValidToken,
    scheme: Option<Scheme>,
) {
    match decision {
        Decision::NoValidToken {
            user: u,
            reason: r,
            scheme: s,
            ..
        } => {
            assert_eq!(u.as_deref(), user, "user of {decision:?}");
            assert_eq!(*r, reason, "reason of {decision:?}");
            assert_eq!(*s, scheme, "scheme of {decision:?}");
        }
        other => panic!("expected NoValidToken({reason:?}), got {other:?}"),
    }
}

#[track_caller]
fn assert_ip_not_allowed(decision: &Decision, token: &Arc<TokenRecord>, scheme: Scheme) {
    match decision {
        Decision::IpNotAllowed {
            token: t,
            scheme: s,
            ..
        } => {
            assert!(
                Arc::ptr_eq(t, token),
                "IpNotAllowed for another token: {t:?}"
            );
            assert_eq!(*s, scheme);
        }
        other => panic!("expected IpNotAllowed, got {other:?}"),
    }
}

#[track_caller]
fn assert_scope_denied(decision: &Decision, token: &Arc<TokenRecord>) {
    match decision {
        Decision::ScopeDenied {
            token: t,
            overridden: None,
        } => {
            assert!(Arc::ptr_eq(t, token), "ScopeDenied for another token")
        }
        other => panic!("expected ScopeDenied, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Row 1: no Authorization header
// ---------------------------------------------------------------------------------------------

#[test]
fn row1_no_credential_passes_through_with_either_fallback() {
    for fb in BOTH {
        for request in [get(), post(), get().from("10.9.9.9")] {
            let d = refused(
                &request,
                Presented::Nothing,
                &fallback(fb).ips(&["192.0.2.0/24"]),
            );
            assert!(matches!(d, Decision::PassThrough), "fallback={fb}: {d:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rows 2 and 3: a credential not in tokengate's format
// ---------------------------------------------------------------------------------------------

#[test]
fn row2_foreign_credential_with_fallback_on_goes_to_bitbuckets_authenticator() {
    for user in [Some("automation-user"), None] {
        let d = refused(&get(), foreign(user), &fallback(true));
        match d {
            Decision::Fallback { user: u } => {
                assert_eq!(u.as_deref(), user, "Basic user name is carried")
            }
            other => panic!("user={user:?}: expected Fallback, got {other:?}"),
        }
    }
}

#[test]
fn row2_fallback_ignores_ip_rules() {
    // The global allow-list is for token use; a password goes to Bitbucket's own authenticator.
    let d = refused(
        &get().from("203.0.113.9"),
        foreign(Some("bob")),
        &fallback(true).ips(&["10.0.0.0/8"]),
    );
    assert!(matches!(d, Decision::Fallback { .. }), "{d:?}");
}

#[test]
fn row3_foreign_credential_with_fallback_off_is_401_no_valid_token() {
    for user in [Some("automation-user"), None] {
        let d = refused(&get(), foreign(user), &fallback(false));
        assert_no_valid_token(&d, user, NoValidToken::Foreign, user.map(|_| Scheme::Basic));
    }
    // A Bitbucket token sent as Bearer is answered with a Bearer challenge.
    let bitbucket_token = Presented::Foreign {
        user: None,
        scheme: Some(Scheme::Bearer),
    };
    let d = refused(&get(), bitbucket_token, &fallback(false));
    assert_no_valid_token(&d, None, NoValidToken::Foreign, Some(Scheme::Bearer));
}

// ---------------------------------------------------------------------------------------------
// Row 4: a tokengate credential that does not verify
// ---------------------------------------------------------------------------------------------

const REASONS: [Unverified; 3] = [
    Unverified::Malformed,
    Unverified::UnknownId,
    Unverified::WrongSecret,
];

/// The owner a verifier reports: known only when the id is.
fn owner_for(reason: Unverified) -> Option<&'static str> {
    match reason {
        Unverified::WrongSecret => Some("alice"),
        Unverified::Malformed | Unverified::UnknownId => None,
    }
}

#[test]
fn row4_invalid_bearer_reports_owner_where_id_known_else_none() {
    for fb in BOTH {
        for reason in REASONS {
            let owner = owner_for(reason);
            let d = refused(&get(), bearer(invalid(reason, owner)), &fallback(fb));
            assert_no_valid_token(
                &d,
                owner,
                NoValidToken::Invalid(reason),
                Some(Scheme::Bearer),
            );
        }
    }
}

#[test]
fn row4_invalid_basic_reports_the_basic_user_name() {
    for fb in BOTH {
        for reason in REASONS {
            // Even when the id's owner is known, the log names the user who presented it.
            let d = refused(
                &get(),
                basic(Some("mallory"), invalid(reason, owner_for(reason))),
                &fallback(fb),
            );
            assert_no_valid_token(
                &d,
                Some("mallory"),
                NoValidToken::Invalid(reason),
                Some(Scheme::Basic),
            );
        }
    }
}

#[test]
fn row4_invalid_basic_without_user_name_reports_owner_where_known() {
    for reason in REASONS {
        let owner = owner_for(reason);
        let d = refused(&get(), basic(None, invalid(reason, owner)), &fallback(true));
        assert_no_valid_token(
            &d,
            owner,
            NoValidToken::Invalid(reason),
            Some(Scheme::Basic),
        );
    }
}

#[test]
fn row4_invalid_token_is_never_a_fallback_even_with_fallback_on() {
    let d = refused(
        &get(),
        bearer(invalid(Unverified::WrongSecret, Some("alice"))),
        &fallback(true),
    );
    assert!(
        matches!(
            d,
            Decision::NoValidToken {
                reason: NoValidToken::Invalid(Unverified::WrongSecret),
                ..
            }
        ),
        "a tokengate token is final at the gateway: {d:?}"
    );
}

#[test]
fn row4_expired_token_is_refused_with_owner() {
    for fb in BOTH {
        let t = token().expires(now() - TimeDelta::days(1)).arc();
        let d = refused(&get(), bearer(verified(&t)), &fallback(fb));
        assert_no_valid_token(
            &d,
            Some("alice"),
            NoValidToken::Expired,
            Some(Scheme::Bearer),
        );
        let d = refused(&get(), basic(Some("alice"), verified(&t)), &fallback(fb));
        assert_no_valid_token(
            &d,
            Some("alice"),
            NoValidToken::Expired,
            Some(Scheme::Basic),
        );
    }
}

#[test]
fn row4_expiry_boundary_at_now_is_expired_one_ms_later_is_active() {
    let t = token().expires(now()).arc();
    let d = refused(&get().at(now()), bearer(verified(&t)), &fallback(true));
    assert_no_valid_token(
        &d,
        Some("alice"),
        NoValidToken::Expired,
        Some(Scheme::Bearer),
    );

    let d = refused(
        &get().at(now() + ms(1)),
        bearer(verified(&t)),
        &fallback(true),
    );
    assert_no_valid_token(
        &d,
        Some("alice"),
        NoValidToken::Expired,
        Some(Scheme::Bearer),
    );

    // Expiring one millisecond after the request: still active.
    let t = token().expires(now() + ms(1)).arc();
    let (d, calls) = allowed(&get().at(now()), bearer(verified(&t)), &fallback(true));
    assert_allow(&d, &calls, &t, default_quota());
}

#[test]
fn row4_revoked_token_is_refused_and_revocation_wins_over_expiry() {
    for fb in BOTH {
        let t = token().revoked(now() - TimeDelta::hours(1)).arc();
        let d = refused(&get(), bearer(verified(&t)), &fallback(fb));
        assert_no_valid_token(
            &d,
            Some("alice"),
            NoValidToken::Revoked,
            Some(Scheme::Bearer),
        );

        let t = token()
            .revoked(now() - TimeDelta::hours(1))
            .expires(now() - TimeDelta::days(1))
            .arc();
        let d = refused(&get(), bearer(verified(&t)), &fallback(fb));
        assert_no_valid_token(
            &d,
            Some("alice"),
            NoValidToken::Revoked,
            Some(Scheme::Bearer),
        );

        let d = refused(&get(), basic(Some("alice"), verified(&t)), &fallback(fb));
        assert_no_valid_token(
            &d,
            Some("alice"),
            NoValidToken::Revoked,
            Some(Scheme::Basic),
        );
    }
}

#[test]
fn row4_basic_user_not_the_owner_is_refused() {
    for fb in BOTH {
        let t = token().arc();
        let d = refused(&get(), basic(Some("mallory"), verified(&t)), &fallback(fb));
        assert_no_valid_token(
            &d,
            Some("mallory"),
            NoValidToken::NotOwner,
            Some(Scheme::Basic),
        );
    }
}

/// The token a "no valid token" decision names: the one whose secret matched, if any.
fn refused_token(d: &Decision) -> Option<&Arc<TokenRecord>> {
    match d {
        Decision::NoValidToken { token, .. } => token.as_ref(),
        other => panic!("expected NoValidToken, got {other:?}"),
    }
}

#[test]
fn row4_a_token_whose_secret_matched_is_named_with_the_refusal() {
    let expired = token().expires(now() - ms(1)).arc();
    let revoked = token().revoked(now()).arc();
    let other_owner = token().arc();
    for (t, presented) in [
        (&expired, bearer(verified(&expired))),
        (&revoked, bearer(verified(&revoked))),
        (&other_owner, basic(Some("mallory"), verified(&other_owner))),
    ] {
        let d = refused(&get(), presented, &fallback(false));
        let named = refused_token(&d).expect("the token is named");
        assert!(Arc::ptr_eq(named, t), "{d:?}");
    }
    // Nothing verified: no token to name.
    for reason in REASONS {
        let d = refused(
            &get(),
            bearer(invalid(reason, owner_for(reason))),
            &fallback(false),
        );
        assert!(refused_token(&d).is_none(), "{d:?}");
    }
    let d = refused(&get(), foreign(Some("alice")), &fallback(false));
    assert!(refused_token(&d).is_none(), "{d:?}");
}

#[test]
fn row4_basic_user_that_is_the_owner_is_allowed() {
    let t = token().arc();
    let (d, calls) = allowed(&get(), basic(Some("alice"), verified(&t)), &fallback(false));
    assert_allow(&d, &calls, &t, default_quota());
}

#[test]
fn row4_basic_without_user_name_skips_the_owner_check() {
    // `Basic base64(":tgt_…")`: no name to compare, the token alone decides.
    let t = token().arc();
    let (d, calls) = allowed(&get(), basic(None, verified(&t)), &fallback(false));
    assert_allow(&d, &calls, &t, default_quota());
}

#[test]
fn row4_every_refusal_beats_ip_and_scope() {
    // A read-only token restricted to 10/8, used for a write from elsewhere: row 4 decides first.
    let elsewhere = || post().from("203.0.113.9");
    let pol = || fallback(false).ips(&["10.0.0.0/8"]);
    let base = || token().read_only().ips(&["10.0.0.0/8"]);

    let t = base().expires(now() - ms(1)).arc();
    let d = refused(&elsewhere(), bearer(verified(&t)), &pol());
    assert_no_valid_token(
        &d,
        Some("alice"),
        NoValidToken::Expired,
        Some(Scheme::Bearer),
    );

    let t = base().revoked(now()).arc();
    let d = refused(&elsewhere(), bearer(verified(&t)), &pol());
    assert_no_valid_token(
        &d,
        Some("alice"),
        NoValidToken::Revoked,
        Some(Scheme::Bearer),
    );

    let t = base().arc();
    let d = refused(&elsewhere(), basic(Some("mallory"), verified(&t)), &pol());
    assert_no_valid_token(
        &d,
        Some("mallory"),
        NoValidToken::NotOwner,
        Some(Scheme::Basic),
    );

    for reason in REASONS {
        let d = refused(
            &elsewhere(),
            bearer(invalid(reason, owner_for(reason))),
            &pol(),
        );
        assert_no_valid_token(
            &d,
            owner_for(reason),
            NoValidToken::Invalid(reason),
            Some(Scheme::Bearer),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Store trouble and throttling
// ---------------------------------------------------------------------------------------------

#[test]
fn store_unavailable_is_503_never_an_allow_nor_no_valid_token() {
    for fb in BOTH {
        for presented in [
            bearer(Verification::StoreUnavailable),
            basic(Some("alice"), Verification::StoreUnavailable),
        ] {
            let d = refused(&get(), presented, &fallback(fb));
            assert!(
                matches!(d, Decision::StoreUnavailable),
                "fallback={fb}: {d:?}"
            );
        }
    }
}

#[test]
fn throttled_is_too_many_failures_with_its_retry_after() {
    for fb in BOTH {
        let wait = Duration::from_secs(42);
        for presented in [
            bearer(Verification::Throttled(wait)),
            basic(Some("bob"), Verification::Throttled(wait)),
        ] {
            let d = refused(&get(), presented, &fallback(fb));
            match d {
                Decision::TooManyFailures { retry_after } => assert_eq!(retry_after, wait),
                other => panic!("fallback={fb}: expected TooManyFailures, got {other:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row 5: IP allow-lists
// ---------------------------------------------------------------------------------------------

#[test]
fn row5_token_allow_list_refuses_other_addresses() {
    for fb in BOTH {
        let t = token().ips(&["10.0.0.0/8"]).arc();
        let d = refused(
            &get().from("79.209.73.23"),
            bearer(verified(&t)),
            &fallback(fb),
        );
        assert_ip_not_allowed(&d, &t, Scheme::Bearer);
        let d = refused(
            &get().from("79.209.73.23"),
            basic(Some("alice"), verified(&t)),
            &fallback(fb),
        );
        assert_ip_not_allowed(&d, &t, Scheme::Basic);

        let (d, calls) = allowed(&get().from("10.1.2.3"), bearer(verified(&t)), &fallback(fb));
        assert_allow(&d, &calls, &t, default_quota());
    }
}

#[test]
fn row5_global_allow_list_refuses_other_addresses() {
    let t = token().arc();
    let pol = fallback(true).ips(&["10.0.0.0/8"]);
    let d = refused(&get().from("79.209.73.23"), bearer(verified(&t)), &pol);
    assert_ip_not_allowed(&d, &t, Scheme::Bearer);

    let (d, calls) = allowed(&get().from("10.200.0.1"), bearer(verified(&t)), &pol);
    assert_allow(&d, &calls, &t, default_quota());
}

#[test]
fn row5_both_lists_must_allow() {
    let t = token().ips(&["10.0.0.0/8"]).arc();
    let pol = fallback(true).ips(&["10.1.0.0/16"]);
    // In the token's list, not in the global one.
    let d = refused(&get().from("10.2.0.1"), bearer(verified(&t)), &pol);
    assert_ip_not_allowed(&d, &t, Scheme::Bearer);
    // In the global list, not in the token's.
    let t2 = token().ips(&["192.168.0.0/16"]).arc();
    let d = refused(&get().from("10.1.0.1"), bearer(verified(&t2)), &pol);
    assert_ip_not_allowed(&d, &t2, Scheme::Bearer);
    // In both.
    let (d, calls) = allowed(&get().from("10.1.0.1"), bearer(verified(&t)), &pol);
    assert_allow(&d, &calls, &t, default_quota());
}

#[test]
fn row5_names_the_list_that_refused() {
    let refused_by = |d: &Decision| match d {
        Decision::IpNotAllowed { refused_by, .. } => *refused_by,
        other => panic!("expected IpNotAllowed, got {other:?}"),
    };
    let pol = fallback(true).ips(&["10.1.0.0/16"]);
    let t = token().ips(&["10.0.0.0/8"]).arc();
    // Outside the token's list (and the global one): the token's is named, as it is checked first.
    for from in ["192.168.0.1", "10.200.0.1"] {
        let d = refused(&get().from(from), bearer(verified(&t)), &pol);
        let expected = if from.starts_with("10.") {
            AllowList::Global
        } else {
            AllowList::Token
        };
        assert_eq!(refused_by(&d), expected, "{from}");
    }
    let d = refused(
        &get().from("10.2.0.1"),
        bearer(verified(&token().arc())),
        &pol,
    );
    assert_eq!(refused_by(&d), AllowList::Global);
}

#[test]
fn row5_empty_lists_allow_any_address() {
    let t = token().arc();
    for addr in [
        "79.209.73.23",
        "10.0.0.1",
        "::1",
        "2001:db8::1",
        "::ffff:1.2.3.4",
        "0.0.0.0",
    ] {
        let (d, calls) = allowed(&get().from(addr), bearer(verified(&t)), &fallback(true));
        assert_allow(&d, &calls, &t, default_quota());
    }
    assert!(ip_allowed(&[], ip("203.0.113.1")));
    assert!(ip_allowed(&[], ip("2001:db8::1")));
}

#[test]
fn row5_ipv6_cidrs() {
    let t = token().ips(&["2001:db8::/32"]).arc();
    let (d, calls) = allowed(
        &get().from("2001:db8:1234::1"),
        bearer(verified(&t)),
        &fallback(true),
    );
    assert_allow(&d, &calls, &t, default_quota());
    for outside in ["2001:db9::1", "::1", "10.0.0.1"] {
        let d = refused(&get().from(outside), bearer(verified(&t)), &fallback(true));
        assert_ip_not_allowed(&d, &t, Scheme::Bearer);
    }

    let pol = fallback(true).ips(&["fd00::/8"]);
    let t = token().arc();
    let (d, calls) = allowed(&get().from("fd12:3456::9"), bearer(verified(&t)), &pol);
    assert_allow(&d, &calls, &t, default_quota());
    let d = refused(&get().from("fe80::1"), bearer(verified(&t)), &pol);
    assert_ip_not_allowed(&d, &t, Scheme::Bearer);
}

#[test]
fn row5_ipv4_list_does_not_admit_plain_ipv6_clients() {
    let t = token().ips(&["0.0.0.0/0"]).arc();
    let d = refused(
        &get().from("2001:db8::1"),
        bearer(verified(&t)),
        &fallback(true),
    );
    assert_ip_not_allowed(&d, &t, Scheme::Bearer);
    // `::1.2.3.4` is IPv4-compatible, not IPv4-mapped: it is not folded to IPv4.
    let t = token().ips(&["1.2.3.0/24"]).arc();
    let d = refused(
        &get().from("::1.2.3.4"),
        bearer(verified(&t)),
        &fallback(true),
    );
    assert_ip_not_allowed(&d, &t, Scheme::Bearer);
}

#[test]
fn row5_ipv4_mapped_client_matches_ipv4_cidrs() {
    let t = token().ips(&["10.0.0.0/8"]).arc();
    let pol = fallback(true).ips(&["10.1.0.0/16"]);
    let (d, calls) = allowed(&get().from("::ffff:10.1.2.3"), bearer(verified(&t)), &pol);
    assert_allow(&d, &calls, &t, default_quota());

    let d = refused(
        &get().from("::ffff:192.168.1.1"),
        bearer(verified(&t)),
        &pol,
    );
    assert_ip_not_allowed(&d, &t, Scheme::Bearer);
    // In the token's list but outside the global one, mapped or not.
    let d = refused(&get().from("::ffff:10.2.0.1"), bearer(verified(&t)), &pol);
    assert_ip_not_allowed(&d, &t, Scheme::Bearer);

    assert!(ip_allowed(&nets(&["10.0.0.0/8"]), ip("::ffff:10.0.0.1")));
    assert!(!ip_allowed(&nets(&["10.0.0.0/8"]), ip("::ffff:11.0.0.1")));
}

#[test]
fn row5_single_host_cidrs() {
    let t = token().ips(&["10.0.0.5/32", "2001:db8::5/128"]).arc();
    for ok in ["10.0.0.5", "::ffff:10.0.0.5", "2001:db8::5"] {
        let (d, calls) = allowed(&get().from(ok), bearer(verified(&t)), &fallback(true));
        assert_allow(&d, &calls, &t, default_quota());
    }
    for no in ["10.0.0.4", "10.0.0.6", "2001:db8::4", "2001:db8::6"] {
        let d = refused(&get().from(no), bearer(verified(&t)), &fallback(true));
        assert_ip_not_allowed(&d, &t, Scheme::Bearer);
    }
}

#[test]
fn row5_several_cidrs_any_one_matches() {
    let list = nets(&["192.0.2.0/24", "10.0.0.0/8", "2001:db8::/32"]);
    assert!(ip_allowed(&list, ip("10.9.9.9")));
    assert!(ip_allowed(&list, ip("192.0.2.200")));
    assert!(ip_allowed(&list, ip("2001:db8::abcd")));
    assert!(!ip_allowed(&list, ip("192.0.3.1")));
    assert!(!ip_allowed(&list, ip("2001:db7::1")));
}

#[test]
fn canonical_folds_only_ipv4_mapped_addresses() {
    assert_eq!(
        canonical(ip("::ffff:10.0.0.1")),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
    );
    assert_eq!(
        canonical(ip("10.0.0.1")),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
    );
    assert_eq!(
        canonical(ip("::1")),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        "loopback is not 0.0.0.1"
    );
    assert_eq!(canonical(ip("::")), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(
        canonical(ip("::1.2.3.4")),
        ip("::1.2.3.4"),
        "IPv4-compatible stays IPv6"
    );
    assert_eq!(canonical(ip("2001:db8::1")), ip("2001:db8::1"));
}

// ---------------------------------------------------------------------------------------------
// Row 6: scope
// ---------------------------------------------------------------------------------------------

/// Requests a read-only token may make.
fn reads() -> Vec<Req> {
    vec![
        req(Method::GET, "/rest/api/1.0/projects"),
        req(Method::HEAD, "/rest/api/1.0/projects"),
        req(Method::OPTIONS, "/rest/api/1.0/projects"),
        req(Method::GET, "/scm/proj/repo.git/info/refs").query("service=git-upload-pack"),
        req(Method::POST, "/scm/proj/repo.git/git-upload-pack"),
        req(Method::GET, "/rest/api/1.0/projects").query("start=25&limit=25"),
    ]
}

/// Requests that are writes for a read-only token.
fn writes() -> Vec<Req> {
    vec![
        req(Method::POST, "/rest/ssh/1.0/keys"),
        req(
            Method::PUT,
            "/rest/api/1.0/projects/P/repos/r/settings/pull-requests",
        ),
        req(Method::PATCH, "/rest/api/1.0/projects/P"),
        req(Method::DELETE, "/rest/api/1.0/projects/P/repos/r"),
        req(
            Method::from_bytes(b"PROPFIND").unwrap(),
            "/rest/api/1.0/projects",
        ),
        req(Method::GET, "/scm/proj/repo.git/info/refs").query("service=git-receive-pack"),
        req(Method::GET, "/scm/proj/repo.git/info/refs").query("foo=bar&service=git-receive-pack"),
        req(Method::HEAD, "/scm/proj/repo.git/info/refs").query("service=git-receive-pack"),
        req(Method::POST, "/scm/proj/repo.git/git-receive-pack"),
        req(Method::GET, "/scm/proj/repo.git/git-receive-pack"),
    ]
}

fn describe(r: &Req) -> String {
    format!(
        "{} {}{}",
        r.method,
        r.path,
        r.query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default()
    )
}

#[test]
fn row6_read_only_allows_reads_and_git_fetch() {
    let t = token().read_only().arc();
    for request in reads() {
        let (d, calls) = allowed(&request, bearer(verified(&t)), &fallback(false));
        assert!(
            matches!(d, Decision::Allow { .. }),
            "{}: {d:?}",
            describe(&request)
        );
        assert_allow(&d, &calls, &t, default_quota());
    }
}

#[test]
fn row6_read_only_refuses_writes_and_git_push() {
    for fb in BOTH {
        let t = token().read_only().arc();
        for request in writes() {
            let d = refused(&request, bearer(verified(&t)), &fallback(fb));
            assert!(
                matches!(d, Decision::ScopeDenied { .. }),
                "{}: {d:?}",
                describe(&request)
            );
            assert_scope_denied(&d, &t);
        }
    }
}

#[test]
fn row6_read_write_allows_everything() {
    let t = token().arc();
    for request in reads().into_iter().chain(writes()) {
        let (d, calls) = allowed(&request, bearer(verified(&t)), &fallback(false));
        assert!(
            matches!(d, Decision::Allow { .. }),
            "{}: {d:?}",
            describe(&request)
        );
        assert_allow(&d, &calls, &t, default_quota());
    }
}

#[test]
fn is_write_table() {
    let w = |m: Method, path: &str, q: Option<&str>| is_write(&m, path, q);
    // Plain methods.
    for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
        assert!(
            !w(m.clone(), "/rest/api/1.0/projects", None),
            "{m} is a read"
        );
    }
    for m in [
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::TRACE,
        Method::CONNECT,
    ] {
        assert!(
            w(m.clone(), "/rest/api/1.0/projects", None),
            "{m} is a write"
        );
    }
    // Method names are case-sensitive: `get` is not GET.
    assert!(w(
        Method::from_bytes(b"get").unwrap(),
        "/rest/api/1.0/projects",
        None
    ));
    // Git fetch and clone.
    assert!(!w(
        Method::GET,
        "/scm/p/r.git/info/refs",
        Some("service=git-upload-pack")
    ));
    assert!(!w(Method::POST, "/scm/p/r.git/git-upload-pack", None));
    assert!(
        !w(Method::GET, "/scm/p/r.git/info/refs", None),
        "dumb-protocol discovery is a read"
    );
    // The upload-pack exemption is for POST only.
    assert!(w(Method::PUT, "/scm/p/r.git/git-upload-pack", None));
    assert!(w(Method::DELETE, "/scm/p/r.git/git-upload-pack", None));
    // Git push, whatever the method and wherever the service parameter stands.
    assert!(w(
        Method::GET,
        "/scm/p/r.git/info/refs",
        Some("service=git-receive-pack")
    ));
    assert!(w(
        Method::GET,
        "/scm/p/r.git/info/refs",
        Some("a=1&service=git-receive-pack")
    ));
    assert!(w(
        Method::GET,
        "/scm/p/r.git/info/refs",
        Some("a=1&service=git-receive-pack&b=2")
    ));
    assert!(w(
        Method::GET,
        "/scm/p/r.git/info/refs",
        Some("service=git-receive-pack&b=2")
    ));
    assert!(w(Method::POST, "/scm/p/r.git/git-receive-pack", None));
    assert!(w(Method::GET, "/scm/p/r.git/git-receive-pack", None));
    assert!(w(Method::OPTIONS, "/scm/p/r.git/git-receive-pack", None));
    // Only the exact parameter: a value merely containing the name is not a push.
    assert!(!w(
        Method::GET,
        "/scm/p/r.git/info/refs",
        Some("service=git-upload-pack&x=git-receive-pack")
    ));
}

// ---------------------------------------------------------------------------------------------
// Ordering between rows
// ---------------------------------------------------------------------------------------------

#[test]
fn ip_denial_beats_scope_denial() {
    let t = token().read_only().ips(&["10.0.0.0/8"]).arc();
    let d = refused(
        &post().from("203.0.113.9"),
        bearer(verified(&t)),
        &fallback(true),
    );
    assert_ip_not_allowed(&d, &t, Scheme::Bearer);

    let t = token().read_only().arc();
    let pol = fallback(true).ips(&["10.0.0.0/8"]);
    let push = req(Method::POST, "/scm/p/r.git/git-receive-pack").from("203.0.113.9");
    let d = refused(&push, basic(Some("alice"), verified(&t)), &pol);
    assert_ip_not_allowed(&d, &t, Scheme::Basic);
}

#[test]
fn scope_denial_beats_rate_limit() {
    // `refused` panics if the rate check runs: a denied write never consumes quota.
    let t = token().read_only().quota(quota(1, 60)).arc();
    let d = refused(&post(), bearer(verified(&t)), &fallback(false));
    assert_scope_denied(&d, &t);
}

#[test]
fn rate_check_is_not_called_for_any_refused_or_passed_request() {
    let revoked = token().revoked(now()).arc();
    let expired = token().expires(now()).arc();
    let fenced = token().ips(&["10.0.0.0/8"]).arc();
    let read_only = token().read_only().arc();
    let active = token().arc();
    let cases: Vec<(&str, Req, Presented, Pol)> = vec![
        ("row 1", get(), Presented::Nothing, fallback(true)),
        ("row 2", get(), foreign(Some("bob")), fallback(true)),
        ("row 3", get(), foreign(Some("bob")), fallback(false)),
        (
            "row 4 invalid",
            get(),
            bearer(invalid(Unverified::UnknownId, None)),
            fallback(false),
        ),
        (
            "row 4 revoked",
            get(),
            bearer(verified(&revoked)),
            fallback(false),
        ),
        (
            "row 4 expired",
            get(),
            bearer(verified(&expired)),
            fallback(false),
        ),
        (
            "row 4 not owner",
            get(),
            basic(Some("eve"), verified(&active)),
            fallback(false),
        ),
        (
            "row 5 token list",
            get(),
            bearer(verified(&fenced)),
            fallback(false),
        ),
        (
            "row 5 global list",
            get(),
            bearer(verified(&active)),
            fallback(false).ips(&["10.0.0.0/8"]),
        ),
        (
            "row 6",
            post(),
            bearer(verified(&read_only)),
            fallback(false),
        ),
        (
            "store unavailable",
            get(),
            bearer(Verification::StoreUnavailable),
            fallback(false),
        ),
        (
            "throttled",
            get(),
            bearer(Verification::Throttled(Duration::from_secs(1))),
            fallback(false),
        ),
        (
            "unprotected token",
            get().unprotected(),
            bearer(verified(&active)),
            fallback(false),
        ),
        (
            "unprotected foreign",
            get().unprotected(),
            foreign(None),
            fallback(false),
        ),
    ];
    for (row, request, presented, pol) in cases {
        let called = Cell::new(false);
        let d = decide(&request.facts(), presented, &pol.policy(), |_, _| {
            called.set(true);
            RateDecision::Allowed(status(4))
        });
        assert!(!called.get(), "{row}: rate_check was called");
        assert!(
            !matches!(d, Decision::Allow { .. } | Decision::RateLimited { .. }),
            "{row}: {d:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Rows 7 and 8: rate limit and success
// ---------------------------------------------------------------------------------------------

#[test]
fn row8_allow_uses_the_tokens_own_quota() {
    let own = quota(5, 300);
    let t = token().quota(own).arc();
    for fb in BOTH {
        let (d, calls) = allowed(&get(), bearer(verified(&t)), &fallback(fb));
        assert_allow(&d, &calls, &t, own);
    }
}

#[test]
fn row8_allow_uses_the_default_quota_when_the_token_has_none() {
    let t = token().arc();
    let mut pol = fallback(true);
    pol.default_quota = quota(20, 60);
    let (d, calls) = allowed(&get(), bearer(verified(&t)), &pol);
    assert_allow(&d, &calls, &t, quota(20, 60));
}

#[test]
fn row8_allow_carries_the_verified_token_for_bearer_and_basic() {
    let t = token()
        .id("0123456789ab")
        .user("automation-user")
        .read_only()
        .arc();
    let (d, calls) = allowed(&get(), bearer(verified(&t)), &fallback(false));
    assert_allow(&d, &calls, &t, default_quota());
    let (d, calls) = allowed(
        &get(),
        basic(Some("automation-user"), verified(&t)),
        &fallback(false),
    );
    assert_allow(&d, &calls, &t, default_quota());
    match d {
        Decision::Allow { token, .. } => assert_eq!(
            token.user, "automation-user",
            "forwarded as the token's user"
        ),
        other => panic!("expected Allow, got {other:?}"),
    }
}

#[test]
fn row7_limited_is_rate_limited_with_quota_status_and_retry_after() {
    let own = quota(5, 300);
    let limited = RateDecision::Limited {
        status: status(0),
        retry_after: Duration::from_secs(61),
    };
    for (t, expected_quota) in [
        (token().quota(own).arc(), own),
        (token().arc(), default_quota()),
    ] {
        let probe = Probe::new();
        let d = probe.decide(&get(), bearer(verified(&t)), &fallback(true), limited);
        match &d {
            Decision::RateLimited {
                token: tok,
                quota: q,
                status: s,
                retry_after,
            } => {
                assert!(Arc::ptr_eq(tok, &t), "rate limited as another token");
                assert_eq!(*q, expected_quota);
                assert_eq!(*s, status(0));
                assert_eq!(*retry_after, Duration::from_secs(61));
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        assert_eq!(
            probe.calls(),
            vec![(t.id.clone(), expected_quota)],
            "rate_check runs exactly once"
        );
    }
}

#[test]
fn row7_read_only_read_over_its_limit_is_rate_limited_not_scope_denied() {
    let t = token().read_only().quota(quota(1, 60)).arc();
    let probe = Probe::new();
    let limited = RateDecision::Limited {
        status: status(0),
        retry_after: Duration::from_secs(60),
    };
    let d = probe.decide(
        &req(Method::POST, "/scm/p/r.git/git-upload-pack"),
        bearer(verified(&t)),
        &fallback(true),
        limited,
    );
    assert!(matches!(d, Decision::RateLimited { .. }), "{d:?}");
    assert_eq!(probe.calls().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Paths outside auth.protected_paths
// ---------------------------------------------------------------------------------------------

#[test]
fn unprotected_without_token_passes_through_even_with_fallback_off() {
    for fb in BOTH {
        for presented in [Presented::Nothing, foreign(Some("bob")), foreign(None)] {
            let d = refused(
                &get().unprotected(),
                presented,
                &fallback(fb).ips(&["10.0.0.0/8"]),
            );
            assert!(matches!(d, Decision::PassThrough), "fallback={fb}: {d:?}");
        }
    }
}

#[test]
fn unprotected_with_tokengate_token_is_refused_whatever_its_validity() {
    let active = token().arc();
    let revoked = token().revoked(now()).arc();
    let expired = token().expires(now()).arc();
    let read_only = token().read_only().arc();
    for fb in BOTH {
        let presented = vec![
            bearer(verified(&active)),
            basic(Some("alice"), verified(&active)),
            basic(Some("mallory"), verified(&active)),
            bearer(verified(&revoked)),
            bearer(verified(&expired)),
            bearer(invalid(Unverified::Malformed, None)),
            bearer(invalid(Unverified::UnknownId, None)),
            basic(
                Some("alice"),
                invalid(Unverified::WrongSecret, Some("alice")),
            ),
            bearer(Verification::StoreUnavailable),
            bearer(Verification::Throttled(Duration::from_secs(5))),
        ];
        for p in presented {
            let shown = format!("{p:?}");
            let d = refused(&get().unprotected(), p, &fallback(fb));
            assert!(
                matches!(d, Decision::TokenOutsideProtectedPaths),
                "fallback={fb}, {shown}: {d:?}"
            );
        }
        // A read-only token writing from a disallowed address: still just "outside".
        let d = refused(
            &post().unprotected().from("203.0.113.9"),
            bearer(verified(&read_only)),
            &fallback(fb).ips(&["10.0.0.0/8"]),
        );
        assert!(
            matches!(d, Decision::TokenOutsideProtectedPaths),
            "fallback={fb}: {d:?}"
        );
    }
}

/// A method-override header naming anything but GET, HEAD or OPTIONS makes a read-only token's
/// read a write; a read/write token may name any method.
#[test]
fn row_6_a_method_override_naming_a_write_is_a_write() {
    let read_only = token().read_only().arc();
    let read_write = token().arc();
    for (name, value, shown) in [
        ("x-http-method-override", "DELETE", "DELETE"),
        ("x-http-method", " put ", "put"),
        ("x-method-override", "PATCH", "PATCH"),
        ("x-http-method-override", "GET, DELETE", "GET, DELETE"),
        ("x-http-method-override", "", ""),
    ] {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            let request = req(method.clone(), "/rest/ssh/1.0/keys").header(name, value);
            let d = refused(&request, bearer(verified(&read_only)), &fallback(true));
            match d {
                Decision::ScopeDenied {
                    token,
                    overridden: Some(overridden),
                } => {
                    assert!(Arc::ptr_eq(&token, &read_only));
                    assert_eq!(overridden, shown, "{name}: {value:?}");
                }
                other => panic!("{method} with {name}: {value:?}: {other:?}"),
            }
            let (d, _) = allowed(&request, bearer(verified(&read_write)), &fallback(true));
            assert!(matches!(d, Decision::Allow { .. }), "{d:?}");
        }
    }
    // Naming a read, in any case, changes nothing; the first write named counts.
    let request = get()
        .header("x-http-method-override", "get")
        .header("x-http-method", "HEAD")
        .header("x-method-override", "Options");
    let (d, _) = allowed(&request, bearer(verified(&read_only)), &fallback(true));
    assert!(matches!(d, Decision::Allow { .. }), "{d:?}");
    let request = get()
        .header("x-http-method", "GET")
        .header("x-http-method", "DELETE");
    let d = refused(&request, bearer(verified(&read_only)), &fallback(true));
    assert!(
        matches!(&d, Decision::ScopeDenied { overridden: Some(m), .. } if m == "DELETE"),
        "{d:?}"
    );
}

/// A token in the query string or a cookie is refused before anything else, on any path and
/// whatever the request presents, a valid token in `Authorization` included.
#[test]
fn a_token_outside_authorization_is_refused_whatever_else_is_presented() {
    let active = token().arc();
    for place in [TokenPlace::Query, TokenPlace::Cookie] {
        for fb in BOTH {
            for request in [get(), post(), get().unprotected()] {
                for presented in [
                    Presented::Nothing,
                    foreign(Some("alice")),
                    bearer(verified(&active)),
                    bearer(Verification::StoreUnavailable),
                    bearer(Verification::Throttled(Duration::from_secs(5))),
                ] {
                    let shown = format!("{presented:?}");
                    let d = refused(&request.clone().stray(place), presented, &fallback(fb));
                    assert!(
                        matches!(d, Decision::TokenOutsideAuthorization { place: p } if p == place),
                        "{place:?}, fallback={fb}, {shown}: {d:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn rest_calls_ending_like_git_paths_get_no_fetch_exemption() {
    // Forking a repository whose slug is `git-upload-pack` is a write.
    assert!(is_write(
        &Method::POST,
        "/rest/api/1.0/projects/P/repos/git-upload-pack",
        None
    ));
    assert!(!is_write(
        &Method::POST,
        "/bitbucket/scm/p/r.git/git-upload-pack",
        None
    ));
}

#[test]
fn ipv4_mapped_networks_match_folded_clients() {
    let net = parse_cidr("::ffff:10.0.0.0/104").unwrap();
    assert_eq!(net, "10.0.0.0/8".parse::<IpNet>().unwrap());
    assert!(ip_allowed(&[net], "::ffff:10.1.2.3".parse().unwrap()));
    assert!(ip_allowed(&[net], "10.1.2.3".parse().unwrap()));
    assert_eq!(
        parse_cidr("10.1.2.3/8").unwrap(),
        "10.0.0.0/8".parse::<IpNet>().unwrap()
    );
    assert_eq!(
        parse_cidr("2001:db8::1").unwrap(),
        "2001:db8::1/128".parse::<IpNet>().unwrap()
    );
    assert_eq!(parse_cidr("nonsense"), None);
    assert_eq!(parse_cidr("10.0.0.0/33"), None);
}
