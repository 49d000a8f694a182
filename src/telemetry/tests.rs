//! Golden tests: the sample values of Bitbucket's own log lines through a real subscriber give
//! those lines byte for byte, and hostile text stays on its line. The harness here is shared with `settings` (logger
//! names, level filtering, settings errors) and `output` (JSON and the file writer).

mod context;
mod output;
mod settings;

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Local, NaiveDate, TimeZone, Utc};
use tracing_subscriber::fmt::MakeWriter;

use super::*;
use crate::auth::messages::AuthMessage;
use crate::ratelimit::RateQuota;
use crate::token::Scope;

/// An in-memory log file.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

/// A local wall-clock time, whatever the machine's `TZ`.
fn local(date: (i32, u32, u32), h: u32, m: u32, s: u32, ms: u32) -> DateTime<Local> {
    let naive = NaiveDate::from_ymd_opt(date.0, date.1, date.2)
        .unwrap()
        .and_hms_milli_opt(h, m, s, ms)
        .unwrap();
    Local
        .from_local_datetime(&naive)
        .earliest()
        .expect("a local time that exists")
}

/// The request context's fields.
struct Request<'a> {
    id: &'a str,
    session: Option<&'a str>,
    addresses: &'a str,
    line: &'a str,
}

impl Request<'_> {
    fn context(&self) -> RequestContext {
        RequestContext::new(self.id, self.addresses, self.line.to_owned())
            .with_session_id(self.session.map(str::to_owned))
    }
}

const SAMPLE_ADDRESSES: &str = "79.209.73.23,100.120.0.11";
const SAMPLE_GET: &str = "GET /rest/ssh/1.0/keys HTTP/1.1";
const SAMPLE_PATH: &str = "/rest/ssh/1.0/keys";

fn sample_request(id: &str) -> Request<'_> {
    Request {
        id,
        session: None,
        addresses: SAMPLE_ADDRESSES,
        line: SAMPLE_GET,
    }
}

/// Runs `emit` through a fresh subscriber for `settings`, on a thread named `thread` (unnamed
/// for `None`), inside `request` when given, with the clock at `at`; returns what was written.
fn capture(
    settings: &LogSettings,
    at: DateTime<Local>,
    thread: Option<&str>,
    request: Option<&Request<'_>>,
    emit: impl FnOnce() + Send,
) -> String {
    let buffer = Buffer::default();
    run(settings, at, thread, request, buffer.clone(), emit);
    buffer.text()
}

/// [`capture`] writing to any writer.
fn run<W>(
    settings: &LogSettings,
    at: DateTime<Local>,
    thread: Option<&str>,
    request: Option<&Request<'_>>,
    writer: W,
    emit: impl FnOnce() + Send,
) where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    run_with_clock(settings, FixedClock(at), thread, request, writer, emit);
}

/// [`run`] with any clock.
fn run_with_clock<W>(
    settings: &LogSettings,
    clock: impl Clock,
    thread: Option<&str>,
    request: Option<&Request<'_>>,
    writer: W,
    emit: impl FnOnce() + Send,
) where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = build_filter(settings).expect("valid settings");
    let subscriber = build_subscriber(settings, filter, clock, writer);
    let mut builder = std::thread::Builder::new();
    if let Some(name) = thread {
        builder = builder.name(name.to_owned());
    }
    std::thread::scope(|scope| {
        let body = move || {
            tracing::subscriber::with_default(subscriber, || match request {
                Some(r) => in_request_sync(r.context(), emit),
                None => emit(),
            });
        };
        builder.spawn_scoped(scope, body).unwrap().join().unwrap();
    });
}

fn auth_line(
    at: DateTime<Local>,
    thread: &str,
    request: &Request<'_>,
    message: AuthMessage<'_>,
) -> String {
    capture(
        &LogSettings::default(),
        at,
        Some(thread),
        Some(request),
        || {
            tracing::info!(target: AUTH_TARGET, "{}", message);
        },
    )
}

fn sample_ip() -> IpAddr {
    "79.209.73.23".parse().unwrap()
}

#[test]
fn success_line_matches_the_seed() {
    let created_at = local((2021, 1, 6), 14, 14, 46, 0).with_timezone(&Utc);
    let message = AuthMessage::Success {
        description: "API Token from 2021-01-06",
        scope: Scope::ReadOnly,
        user: "automation-user",
        created_at,
        path: SAMPLE_PATH,
    };
    let at = local((2021, 1, 7), 8, 52, 38, 540);
    assert_eq!(
        auth_line(
            at,
            "http-nio-8080-exec-2",
            &sample_request("@A6X2OXx532x2669x0"),
            message
        ),
        "2021-01-07 08:52:38,540 INFO [http-nio-8080-exec-2] @A6X2OXx532x2669x0 79.209.73.23,100.120.0.11 \"GET /rest/ssh/1.0/keys HTTP/1.1\" d.r.a.p.auth.ApiTokenAuthSharedBase Found a matching token \"API Token from 2021-01-06\" with Read Only scope and authenticated user automation-user. Token was created on Jan 6, 2021 2:14:46 PM. REST endpoint: /rest/ssh/1.0/keys\n"
    );
}

#[test]
fn no_valid_token_lines_match_the_seed() {
    let at = local((2021, 1, 7), 9, 16, 33, 541);
    let request = sample_request("@16JTB8Nx556x10x0");
    let line = |fallback| {
        let message = AuthMessage::NoValidToken {
            user: "automation-user",
            fallback,
            path: SAMPLE_PATH,
        };
        auth_line(at, "http-nio-8080-exec-10", &request, message)
    };
    assert_eq!(
        line(false),
        "2021-01-07 09:16:33,541 INFO [http-nio-8080-exec-10] @16JTB8Nx556x10x0 79.209.73.23,100.120.0.11 \"GET /rest/ssh/1.0/keys HTTP/1.1\" d.r.a.p.auth.ApiTokenAuthSharedBase Token verification for user automation-user failed: No valid API token was provided and basic auth with password or personal access token is disabled. REST endpoint: /rest/ssh/1.0/keys\n"
    );
    assert_eq!(
        line(true),
        "2021-01-07 09:16:33,541 INFO [http-nio-8080-exec-10] @16JTB8Nx556x10x0 79.209.73.23,100.120.0.11 \"GET /rest/ssh/1.0/keys HTTP/1.1\" d.r.a.p.auth.ApiTokenAuthSharedBase Token verification for user automation-user failed: No valid API token was provided. REST endpoint: /rest/ssh/1.0/keys\n"
    );
}

#[test]
fn ip_not_allowed_lines_match_the_seed() {
    let at = local((2021, 1, 7), 9, 22, 4, 950);
    let request = sample_request("@16JTB8Nx562x42x0");
    let line = |fallback| {
        let message = AuthMessage::IpNotAllowed {
            user: "automation-user",
            ip: sample_ip(),
            fallback,
            path: SAMPLE_PATH,
        };
        auth_line(at, "http-nio-8080-exec-1", &request, message)
    };
    assert_eq!(
        line(false),
        "2021-01-07 09:22:04,950 INFO [http-nio-8080-exec-1] @16JTB8Nx562x42x0 79.209.73.23,100.120.0.11 \"GET /rest/ssh/1.0/keys HTTP/1.1\" d.r.a.p.auth.ApiTokenAuthSharedBase Token verification for user automation-user failed: IP address 79.209.73.23 of request is not allowed to access the REST API and basic auth with password or personal access token is disabled. REST endpoint: /rest/ssh/1.0/keys\n"
    );
    assert_eq!(
        line(true),
        "2021-01-07 09:22:04,950 INFO [http-nio-8080-exec-1] @16JTB8Nx562x42x0 79.209.73.23,100.120.0.11 \"GET /rest/ssh/1.0/keys HTTP/1.1\" d.r.a.p.auth.ApiTokenAuthSharedBase Token verification for user automation-user failed: IP address 79.209.73.23 of request is not allowed to access the REST API. REST endpoint: /rest/ssh/1.0/keys\n"
    );
}

#[test]
fn fallback_line_matches_the_seed() {
    let at = local((2021, 1, 7), 11, 2, 37, 820);
    let message = AuthMessage::Fallback {
        user: "automation-user",
        path: SAMPLE_PATH,
    };
    assert_eq!(
        auth_line(
            at,
            "http-nio-8080-exec-2",
            &sample_request("@16JTB8Nx662x69x0"),
            message
        ),
        "2021-01-07 11:02:37,820 INFO [http-nio-8080-exec-2] @16JTB8Nx662x69x0 79.209.73.23,100.120.0.11 \"GET /rest/ssh/1.0/keys HTTP/1.1\" d.r.a.p.auth.ApiTokenAuthSharedBase User automation-user tried to authenticate with an invalid token or regular password. Passing the request further to the default authenticator. REST endpoint: /rest/ssh/1.0/keys\n"
    );
}

#[test]
fn scope_denied_line_matches_the_seed() {
    let at = local((2021, 1, 7), 12, 6, 2, 366);
    let request = Request {
        line: "POST /rest/ssh/1.0/keys HTTP/1.1",
        ..sample_request("@16JTB8Nx726x114x0")
    };
    let message = AuthMessage::ScopeDenied {
        user: "automation-user",
        method: "POST",
        path: SAMPLE_PATH,
    };
    assert_eq!(
        auth_line(at, "http-nio-8080-exec-9", &request, message),
        "2021-01-07 12:06:02,366 INFO [http-nio-8080-exec-9] @16JTB8Nx726x114x0 79.209.73.23,100.120.0.11 \"POST /rest/ssh/1.0/keys HTTP/1.1\" d.r.a.p.auth.ApiTokenAuthSharedBase Token verification for automation-user user failed: The token scope is read-only and only covers GET, HEAD and OPTIONS requests. Request method type was POST. REST endpoint: /rest/ssh/1.0/keys\n"
    );
}

fn rate_limited_line(settings: &LogSettings) -> String {
    let at = local((2022, 2, 8), 13, 42, 51, 24);
    let request = Request {
        id: "@MKNCWMx822x1697x0",
        session: Some("kpe4a4"),
        addresses: "79.209.73.23,100.100.0.45",
        line: SAMPLE_GET,
    };
    let message = AuthMessage::RateLimited {
        user: "admin",
        quota: "5/5m".parse::<RateQuota>().unwrap(),
    };
    capture(
        settings,
        at,
        Some("http-nio-8080-exec-8"),
        Some(&request),
        || {
            tracing::info!(target: RATE_LIMIT_TARGET, "{}", message);
        },
    )
}

const SAMPLE_RATE_LIMITED: &str = "2022-02-08 13:42:51,024 INFO [http-nio-8080-exec-8] @MKNCWMx822x1697x0 kpe4a4 79.209.73.23,100.100.0.45 \"GET /rest/ssh/1.0/keys HTTP/1.1\" d.r.a.p.auth.ApiTokenRateLimiter User admin has been rate limited. The API token allows executing 5 requests within 5 minutes.\n";

#[test]
fn rate_limited_line_matches_the_seed() {
    assert_eq!(
        rate_limited_line(&LogSettings::default()),
        SAMPLE_RATE_LIMITED
    );
}

#[test]
fn hostile_text_stays_on_one_line_and_inside_its_quotes() {
    let created_at = local((2021, 1, 6), 14, 14, 46, 0).with_timezone(&Utc);
    let message = AuthMessage::Success {
        description: "evil\" token\nx",
        scope: Scope::ReadWrite,
        user: "bob\r\n2021-01-07 08:52:38,540 INFO [forged] \u{1b}[31mroot",
        created_at,
        path: "/rest/a\"b\r\nc",
    };
    let request = Request {
        id: "@A6X2OXx532x1x0",
        session: None,
        addresses: "10.0.0.1",
        line: "GET /rest/a\"b\r\nc HTTP/1.1",
    };
    let at = local((2021, 1, 7), 8, 52, 38, 540);
    let out = auth_line(at, "http-nio-8080-exec-3", &request, message);
    assert_eq!(out.matches('\n').count(), 1, "{out}");
    assert!(!out.contains(['\r', '\u{1b}']), "{out}");
    assert_eq!(
        out,
        "2021-01-07 08:52:38,540 INFO [http-nio-8080-exec-3] @A6X2OXx532x1x0 10.0.0.1 \"GET /rest/a\\\"b\\r\\nc HTTP/1.1\" d.r.a.p.auth.ApiTokenAuthSharedBase Found a matching token \"evil\\\" token\\nx\" with Read/Write scope and authenticated user bob\\r\\n2021-01-07 08:52:38,540 INFO [forged] \\u{1b}[31mroot. Token was created on Jan 6, 2021 2:14:46 PM. REST endpoint: /rest/a\\\"b\\r\\nc\n"
    );
    // The quoted request line closes at the first unescaped quote, right before the logger.
    let quoted = out.split_once(" \"").unwrap().1;
    let end = quoted
        .match_indices('"')
        .find(|(i, _)| !quoted[..*i].ends_with('\\'))
        .unwrap()
        .0;
    assert!(
        quoted[end..].starts_with("\" d.r.a.p.auth.ApiTokenAuthSharedBase "),
        "{out}"
    );
}

#[test]
fn careless_events_cannot_split_a_line_but_keep_their_quotes() {
    let at = local((2021, 1, 7), 8, 0, 0, 5);
    let out = capture(&LogSettings::default(), at, Some("worker"), None, || {
        tracing::warn!(target: "tokengate::proxy::forward", peer = "a\nb", status = 502u16, "raw \"{}\"", "x\r\ny\u{1b}\u{2028}z\tw");
    });
    assert_eq!(
        out,
        "2021-01-07 08:00:00,005 WARN [worker] t.p.forward raw \"x\\r\\ny\\u{1b}\\u{2028}z\\tw\" peer=\"a\\nb\" status=502\n"
    );
}

#[test]
fn lines_outside_a_request_skip_the_request_fields_and_unnamed_threads_are_main() {
    let at = local((2021, 1, 7), 23, 59, 59, 999);
    let out = capture(&LogSettings::default(), at, None, None, || {
        tracing::error!(target: "hyper_util::client::legacy", "connect failed");
    });
    assert_eq!(
        out,
        "2021-01-07 23:59:59,999 ERROR [main] h.c.legacy connect failed\n"
    );
}

#[test]
fn a_session_is_written_only_when_present() {
    let at = local((2021, 1, 7), 8, 52, 38, 540);
    let line = |session| {
        let request = Request {
            id: "@Ax1x1x0",
            session,
            addresses: "1.2.3.4",
            line: "GET / HTTP/1.1",
        };
        capture(
            &LogSettings::default(),
            at,
            Some("http-nio-8080-exec-1"),
            Some(&request),
            || tracing::info!(target: AUTH_TARGET, "hi"),
        )
    };
    assert_eq!(
        line(None),
        "2021-01-07 08:52:38,540 INFO [http-nio-8080-exec-1] @Ax1x1x0 1.2.3.4 \"GET / HTTP/1.1\" d.r.a.p.auth.ApiTokenAuthSharedBase hi\n"
    );
    assert_eq!(
        line(Some("abc123")),
        "2021-01-07 08:52:38,540 INFO [http-nio-8080-exec-1] @Ax1x1x0 abc123 1.2.3.4 \"GET / HTTP/1.1\" d.r.a.p.auth.ApiTokenAuthSharedBase hi\n"
    );
}

/// A clock that gives each line the next of its times.
struct Steps(Mutex<std::vec::IntoIter<DateTime<Local>>>);

impl Clock for Steps {
    fn now(&self) -> DateTime<Local> {
        self.0
            .lock()
            .unwrap()
            .next()
            .expect("a time for every line")
    }
}

#[test]
fn line_times_are_right_across_second_boundaries_and_jumps() {
    let times = vec![
        local((2021, 1, 7), 8, 52, 38, 540),
        local((2021, 1, 7), 8, 52, 38, 999),
        local((2021, 1, 7), 8, 52, 39, 0),
        local((2021, 1, 7), 8, 52, 39, 7),
        // Back a second, then the same wall-clock second a day later.
        local((2021, 1, 7), 8, 52, 38, 41),
        local((2021, 1, 8), 8, 52, 38, 41),
        local((2021, 12, 31), 23, 59, 59, 999),
        local((2022, 1, 1), 0, 0, 0, 0),
    ];
    let count = times.len();
    let buffer = Buffer::default();
    let clock = Steps(Mutex::new(times.into_iter()));
    run_with_clock(
        &LogSettings::default(),
        clock,
        Some("t"),
        None,
        buffer.clone(),
        || {
            for _ in 0..count {
                tracing::info!(target: "tokengate::app", "x");
            }
        },
    );
    let stamps: Vec<String> = buffer.text().lines().map(|l| l[..23].to_owned()).collect();
    assert_eq!(
        stamps,
        [
            "2021-01-07 08:52:38,540",
            "2021-01-07 08:52:38,999",
            "2021-01-07 08:52:39,000",
            "2021-01-07 08:52:39,007",
            "2021-01-07 08:52:38,041",
            "2021-01-08 08:52:38,041",
            "2021-12-31 23:59:59,999",
            "2022-01-01 00:00:00,000",
        ]
    );
}
