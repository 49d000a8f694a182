//! Micro-benchmarks of the per-request hot path: credential parsing, token parse and checksum,
//! the search for tokens in the query string and cookies, the verifier's cache hit, the pure decision, the request context, one Bitbucket-format log
//! line inside a request, and the audit writer's SQLite batch insert (wall time per event,
//! checkpoints and their `fsync` included).
//! Run: `cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use http::{HeaderMap, HeaderValue, Method};
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use secrecy::ExposeSecret;
use tokengate::auth::messages::AuthMessage;
use tokengate::auth::{
    Credential, Policy, Presented, RequestFacts, Scheme, Verification, Verifier, VerifierSettings,
    decide, stray_token,
};
use tokengate::proxy::{Present, remote, session_id};
use tokengate::ratelimit::{RateDecision, RateQuota, RateStatus};
use tokengate::request_id::RequestIds;
use tokengate::store::{AuditStore, SqliteStore, TokenStore};
use tokengate::telemetry::{
    AUTH_TARGET, LogSettings, RequestContext, SystemClock, build_filter, build_subscriber,
    in_request, in_request_sync,
};
use tokengate::token::{self, NewToken, PresentedToken, Scope, TokenRecord};

/// A `tgt_` credential too short to be a token.
const TOKEN: &str = "tgt_abcdefghijkl_0123456789ABCDEFGHIJabcdefghijWXYZ";

/// A well-formed token with a correct checksum.
fn valid_token() -> String {
    token::generate().1.expose_secret().to_owned()
}

fn record() -> TokenRecord {
    let (id, _) = token::generate();
    TokenRecord {
        id,
        user: "automation-user".into(),
        description: "API Token from 2021-01-06".into(),
        scope: Scope::ReadOnly,
        created_at: Utc.with_ymd_and_hms(2021, 1, 6, 14, 14, 46).unwrap(),
        expires_at: None,
        allowed_ips: vec!["79.209.0.0/16".parse().unwrap()],
        rate_limit: None,
        last_used_at: None,
        last_used_ip: None,
        revoked_at: None,
        secret_hash: String::new(),
    }
}

fn credentials(c: &mut Criterion) {
    let bearer = format!("Bearer {}", valid_token());
    let basic = "Basic YXV0b21hdGlvbi11c2VyOnRndF9hYmNkZWZnaGlqa2xfMDEyMzQ1Njc4OUFCQ0RFRkdISUphYmNkZWZnaGlqV1hZWg==";
    c.bench_function("credential/parse_bearer", |b| {
        b.iter(|| Credential::parse(black_box(&bearer)))
    });
    c.bench_function("credential/parse_basic", |b| {
        b.iter(|| Credential::parse(black_box(basic)))
    });
    let token = valid_token();
    c.bench_function("token/parse_checksum_ok", |b| {
        b.iter(|| PresentedToken::parse(black_box(&token)).is_ok())
    });
    // The right shape with one character changed: refused by the checksum.
    let mut forged = token.clone();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(forged.len() - 1.., last);
    c.bench_function("token/parse_checksum_bad", |b| {
        b.iter(|| PresentedToken::parse(black_box(&forged)).is_err())
    });
    c.bench_function("token/parse_wrong_shape", |b| {
        b.iter(|| PresentedToken::parse(black_box(TOKEN)).is_err())
    });
}

/// Looking for a token in the query string and cookies, which every request pays: none of
/// either (the common API call, whose headers are not looked at), a plain query, and a
/// browser's cookies.
fn stray_tokens(c: &mut Criterion) {
    c.bench_function("stray/no_query_no_cookie", |b| {
        b.iter(|| stray_token(black_box(None), black_box(None)))
    });
    c.bench_function("stray/query", |b| {
        b.iter(|| {
            stray_token(
                black_box(Some("limit=25&start=0&at=refs%2Fheads%2Fmain")),
                None,
            )
        })
    });
    let mut browser = HeaderMap::new();
    browser.insert(
        http::header::COOKIE,
        HeaderValue::from_static(
            "BITBUCKETSESSIONID=2D7C5A1F0E9B8A7C6D5E4F3A2B1C0D9E; _atl_bitbucket_remember_login=\
             YWxpY2U6MTczMzQ4MDAwMDAwMDpkZWFkYmVlZmRlYWRiZWVmZGVhZGJlZWY%3D; \
             atlassian.xsrf.token=B3FR-2F7C-9K1L-ZQ8W_a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0_lin; \
             _ga=GA1.2.1234567890.1733480000; _gid=GA1.2.987654321.1733480000; \
             bitbucket.sidebar.expanded=true; bitbucket.pr.diff.type=side-by-side",
        ),
    );
    c.bench_function("stray/browser_cookies", |b| {
        b.iter(|| stray_token(None, black_box(Some(&browser))))
    });
}

/// `Verifier::verify` for a token already verified once: the cache hit every request but a
/// token's first takes.
fn verifier_cache_hit(c: &mut Criterion) {
    let (runtime, _dir, store) = sqlite_store();
    let (verifier, token) = runtime.block_on(async {
        let (id, secret) = token::generate();
        let secret = secret.expose_secret().to_owned();
        store
            .insert_token(&NewToken {
                id,
                user: "automation-user".into(),
                description: "bench".into(),
                scope: Scope::ReadOnly,
                created_at: Utc::now(),
                expires_at: None,
                allowed_ips: Vec::new(),
                rate_limit: None,
                secret_hash: token::hash_secret(&secret),
            })
            .await
            .unwrap();
        let verifier = Verifier::new(
            Arc::new(store),
            VerifierSettings {
                cache_ttl: Duration::from_secs(3600),
                hash_concurrency: 1,
                failed_attempts_per_ip: "20/1m".parse().unwrap(),
            },
            Counter::default(),
        );
        assert!(matches!(
            verifier.verify(&secret, ip("127.0.0.1")).await,
            Verification::Verified(_)
        ));
        (verifier, secret)
    });
    let client = ip("79.209.73.23");
    let _guard = runtime.enter();
    c.bench_function("verifier/verify_cached", |b| {
        b.iter(|| {
            // A cache hit never waits; polling once shows that it completed.
            let verification = verifier.verify(black_box(&token), client).now_or_never();
            assert!(matches!(verification, Some(Verification::Verified(_))));
        });
    });
    assert_eq!(verifier.hash_count(), 1, "the cache hit must not hash");
}

fn decision(c: &mut Criterion) {
    let token = Arc::new(record());
    let method = Method::GET;
    let facts = RequestFacts {
        method: &method,
        path: "/rest/api/1.0/projects",
        query: Some("limit=25"),
        client_ip: ip("79.209.73.23"),
        protected: true,
        stray_token: None,
        headers: &HeaderMap::new(),
        now: Utc::now(),
    };
    let allowed: Vec<IpNet> = Vec::new();
    let policy = Policy {
        basic_auth_fallback: true,
        allowed_ips: &allowed,
        default_quota: "1000/1h".parse::<RateQuota>().unwrap(),
    };
    let status = RateStatus {
        limit: 1000,
        remaining: 999,
        reset: Duration::from_secs(4),
    };
    c.bench_function("decide/allow", |b| {
        b.iter(|| {
            let presented = Presented::Token {
                scheme: Scheme::Bearer,
                basic_user: None,
                verification: Verification::Verified(Arc::clone(&token)),
            };
            decide(black_box(&facts), presented, &policy, |_, _| {
                RateDecision::Allowed(status)
            })
        });
    });
}

fn request_context(c: &mut Criterion) {
    let ids = RequestIds::new("A6X2OX");
    c.bench_function("context/request_id", |b| b.iter(|| ids.next().0));
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_static("79.209.73.23"));
    headers.insert(
        "cookie",
        HeaderValue::from_static("a=b; BITBUCKETSESSIONID=0123456789ABCDEF"),
    );
    let peer: SocketAddr = "100.120.0.11:50000".parse().unwrap();
    let trusted: Vec<IpNet> = vec!["100.64.0.0/10".parse().unwrap()];
    let identity = http::HeaderName::from_static("x-ausername");
    c.bench_function("context/present_headers", |b| {
        b.iter(|| Present::of(black_box(&headers), &identity))
    });
    let present = Present::of(&headers, &identity);
    c.bench_function("context/remote", |b| {
        b.iter(|| remote(black_box(&headers), &present, peer, &trusted))
    });
    c.bench_function("context/session_id", |b| {
        b.iter(|| session_id(black_box(&headers)))
    });
}

/// One success line through the real subscriber (filter, Bitbucket formatter) into a sink: the
/// formatting cost without the disk.
fn log_line(c: &mut Criterion) {
    let settings = LogSettings::default();
    let subscriber = build_subscriber(
        &settings,
        build_filter(&settings).unwrap(),
        SystemClock,
        std::io::sink,
    );
    let token = record();
    let path = "/rest/api/1.0/projects";
    let success = || {
        tracing::info!(
            target: AUTH_TARGET,
            "{}",
            AuthMessage::success(&token, path)
        );
    };
    // The request's id and addresses are Strings the proxy has already built; the context
    // takes them, so building them is part of the measured cost here.
    let context = || {
        RequestContext::new(
            String::from("@A6X2OXx532x2669x0"),
            String::from("79.209.73.23,100.120.0.11"),
            "GET /rest/api/1.0/projects HTTP/1.1",
        )
    };
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function("log/success_line", |b| {
            in_request_sync(context(), || b.iter(success));
        });
        c.bench_function("log/request_context_and_line", |b| {
            b.iter(|| in_request_sync(context(), success));
        });
        // The same through the future wrapper the proxy uses, polled once.
        c.bench_function("log/request_future_and_line", |b| {
            b.iter(|| {
                let request = in_request(context(), async { success() });
                assert!(request.now_or_never().is_some());
            });
        });
    });
}

/// A runtime and a migrated SQLite store in a fresh directory (kept while the directory lives).
fn sqlite_store() -> (tokio::runtime::Runtime, tempfile::TempDir, SqliteStore) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let store = runtime.block_on(async {
        let store = SqliteStore::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        store
    });
    (runtime, dir, store)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The audit writer's batch insert on SQLite, off the request path but on the same cores: a
/// full batch of authentication events as the gateway records them, reported per event, into
/// a table that grows by a batch each iteration, as it does in use.
fn audit_batch_insert(c: &mut Criterion) {
    use tokengate::audit::{AuditEvent, AuditKind, AuditOutcome};
    const BATCH: usize = 1024;
    let (runtime, _dir, store) = sqlite_store();
    let (id, _) = token::generate();
    let events: Vec<_> = (0..BATCH)
        .map(|i| AuditEvent {
            time: Utc::now(),
            kind: AuditKind::AuthSucceeded,
            outcome: AuditOutcome::Allowed,
            user: Some("automation-user".into()),
            token_id: Some(id.as_str().into()),
            client_ip: Some(ip("79.209.73.23")),
            method: Some("GET".into()),
            path: Some("/rest/api/1.0/projects".into()),
            request_id: Some(format!("@BENCH01x954x{i}x1").into()),
            node_id: "BENCH01".into(),
            actor: None,
            attributes: serde_json::json!({ "scope": "read-only" }).into(),
        })
        .collect();
    let mut group = c.benchmark_group("audit");
    group.throughput(criterion::Throughput::Elements(BATCH as u64));
    group.bench_function("sqlite_insert_batch_of_1024", |b| {
        b.iter(|| {
            runtime
                .block_on(store.insert_audit(black_box(&events)))
                .unwrap()
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    credentials,
    stray_tokens,
    verifier_cache_hit,
    decision,
    request_context,
    log_line,
    audit_batch_insert
);
criterion_main!(benches);
