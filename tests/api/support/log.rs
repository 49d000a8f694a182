//! Reading the gateway's log lines back: the Bitbucket layout split into its fields, so a
//! test can compare the message after the fixed prefix exactly.

/// One line: `{time} {LEVEL} [{thread}] {request_id} {session }{addresses} "{request_line}"
/// {logger} {message}`, or `{time} {LEVEL} [{thread}] {logger} {message}` outside a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogLine {
    /// `2021-01-07 08:52:38,540`.
    pub(crate) time: String,
    pub(crate) level: String,
    pub(crate) thread: String,
    pub(crate) request_id: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) addresses: Option<String>,
    /// As written, escapes kept.
    pub(crate) request_line: Option<String>,
    pub(crate) logger: String,
    pub(crate) message: String,
}

impl LogLine {
    /// Splits one line; `None` when it does not have the layout.
    pub(crate) fn parse(line: &str) -> Option<Self> {
        let time = line.get(..23)?.to_owned();
        let rest = line.get(24..)?;
        let (level, rest) = rest.split_once(" [")?;
        let (thread, mut rest) = rest.split_once("] ")?;
        let (mut request_id, mut session_id, mut addresses, mut request_line) =
            (None, None, None, None);
        if rest.starts_with('@') {
            let (id, after) = rest.split_once(' ')?;
            request_id = Some(id.to_owned());
            let (first, after) = after.split_once(' ')?;
            let after = if after.starts_with('"') {
                addresses = Some(first.to_owned());
                after
            } else {
                session_id = Some(first.to_owned());
                let (addrs, after) = after.split_once(' ')?;
                addresses = Some(addrs.to_owned());
                after
            };
            let (quoted, after) = split_quoted(after)?;
            request_line = Some(quoted.to_owned());
            rest = after.strip_prefix(' ')?;
        }
        let (logger, message) = rest.split_once(' ')?;
        Some(Self {
            time,
            level: level.to_owned(),
            thread: thread.to_owned(),
            request_id,
            session_id,
            addresses,
            request_line,
            logger: logger.to_owned(),
            message: message.to_owned(),
        })
    }

    /// The local minute of the day of the line's time (`08:52` → 532).
    pub(crate) fn minute_of_day(&self) -> u32 {
        let hour: u32 = self.time[11..13].parse().expect("hour");
        let minute: u32 = self.time[14..16].parse().expect("minute");
        hour * 60 + minute
    }
}

/// `"…" rest` → (`…`, ` rest`), honouring `\"` and `\\` inside the quotes.
fn split_quoted(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some((&inner[..i], &inner[i + 1..])),
            _ => {}
        }
    }
    None
}

#[test]
fn parses_the_seed_lines() {
    let line = LogLine::parse(
        "2022-02-08 13:42:51,024 INFO [http-nio-8080-exec-8] @MKNCWMx822x1697x0 kpe4a4 79.209.73.23,100.100.0.45 \"GET /rest/ssh/1.0/keys HTTP/1.1\" d.r.a.p.auth.ApiTokenRateLimiter User admin has been rate limited. The API token allows executing 5 requests within 5 minutes.",
    )
    .unwrap();
    assert_eq!(line.time, "2022-02-08 13:42:51,024");
    assert_eq!(line.thread, "http-nio-8080-exec-8");
    assert_eq!(line.request_id.as_deref(), Some("@MKNCWMx822x1697x0"));
    assert_eq!(line.session_id.as_deref(), Some("kpe4a4"));
    assert_eq!(line.addresses.as_deref(), Some("79.209.73.23,100.100.0.45"));
    assert_eq!(
        line.request_line.as_deref(),
        Some("GET /rest/ssh/1.0/keys HTTP/1.1")
    );
    assert_eq!(line.logger, "d.r.a.p.auth.ApiTokenRateLimiter");
    assert!(line.message.starts_with("User admin has"));
    assert_eq!(line.minute_of_day(), 822);

    let plain = LogLine::parse(
        "2021-01-07 08:52:38,540 INFO [main] tokengate::app proxy listening on 127.0.0.1:1",
    )
    .unwrap();
    assert_eq!(plain.request_id, None);
    assert_eq!(plain.logger, "tokengate::app");
    assert_eq!(plain.message, "proxy listening on 127.0.0.1:1");

    let quoted = LogLine::parse(
        "2021-01-07 08:52:38,540 INFO [t] @Ax1x1x0 1.2.3.4 \"GET /a\\\"b HTTP/1.1\" l m",
    )
    .unwrap();
    assert_eq!(quoted.request_line.as_deref(), Some("GET /a\\\"b HTTP/1.1"));
    assert_eq!(quoted.session_id, None);
}
