//! Request ids `@{NODE}x{MINUTE_OF_DAY}x{COUNTER}x{IN_FLIGHT}`, as Bitbucket writes them, and
//! the count of requests in flight. Both listeners issue them and answer them as `X-AREQUESTID`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use chrono::{DateTime, Timelike, Utc};
use compact_str::CompactString;
use http::HeaderValue;
use http::header::HeaderName;

/// The header that carries a request's id: to Bitbucket, and back to the client (from the
/// proxy and the admin API alike).
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-arequestid");

/// A request id from [`RequestIds::next`] as the value of [`REQUEST_ID_HEADER`].
pub fn request_id_header(id: &str) -> HeaderValue {
    // Node ids are validated as letters and digits, so a request id is always a header value.
    HeaderValue::from_str(id).expect("request ids are ASCII")
}

/// Issues request ids `@{NODE}x{MINUTE_OF_DAY}x{COUNTER}x{IN_FLIGHT}` and tracks requests in
/// flight.
#[derive(Debug)]
pub struct RequestIds {
    /// `@{NODE}x`, the start of every id.
    prefix: String,
    /// The minute of the day (local time) of the last second an id was issued in, as
    /// `unix_second << 11 | minute`: reading the local time costs more than the rest of an id.
    minute: AtomicU64,
    /// Requests seen by this process.
    counter: AtomicU64,
    /// Requests being handled now.
    in_flight: AtomicUsize,
}

/// Marks one request in flight until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks one request in flight until dropped, holding the ids that counted it.
#[derive(Debug)]
pub struct Counted(Arc<RequestIds>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RequestIds {
    /// Ids for the node `node`: a node id, 6 or 7 letters and digits as configured (longer
    /// ones are cut to [`MAX_NODE_BYTES`]).
    pub fn new(node: impl Into<String>) -> Self {
        let mut node: String = node.into();
        if node.len() > MAX_NODE_BYTES {
            let mut end = MAX_NODE_BYTES;
            while !node.is_char_boundary(end) {
                end -= 1;
            }
            node.truncate(end);
        }
        Self {
            prefix: format!("@{node}x"),
            minute: AtomicU64::new(u64::MAX),
            counter: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// A new request id for a request arriving now (local time), and its in-flight mark. A
    /// typical id (up to 24 bytes) is held inline, so issuing or copying one allocates nothing.
    pub fn next(&self) -> (CompactString, InFlight<'_>) {
        self.next_at(Utc::now())
    }

    /// The same for a request that arrived at `now`, for a caller that has read the clock.
    pub fn next_at(&self, now: DateTime<Utc>) -> (CompactString, InFlight<'_>) {
        (self.issue(now), InFlight(&self.in_flight))
    }

    /// The same, with a mark that holds the ids itself: for a request whose handling is a
    /// future of its own.
    pub fn next_counted_at(self: &Arc<Self>, now: DateTime<Utc>) -> (CompactString, Counted) {
        (self.issue(now), Counted(Arc::clone(self)))
    }

    /// A new id, counting its request in flight.
    fn issue(&self, now: DateTime<Utc>) -> CompactString {
        let minute = self.minute_of_day(now);
        let count = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let others = self.in_flight.fetch_add(1, Ordering::Relaxed);
        // Written byte by byte into one buffer, and made an id at once: the formatting
        // machinery cost more than the rest of a request's id.
        let mut id = IdText::default();
        id.push_str(&self.prefix);
        id.push(minute);
        id.push_byte(b'x');
        id.push(count);
        id.push_byte(b'x');
        id.push(u64::try_from(others).unwrap_or(u64::MAX));
        CompactString::new(id.as_str())
    }

    /// The minute of the day at `now`, local time: read once for each second ids are issued
    /// in, as the local offset may change at any second.
    fn minute_of_day(&self, now: DateTime<Utc>) -> u64 {
        const MINUTE_BITS: u32 = 11;
        // Seconds before 1970 (a clock set wrong) are not cached.
        let second = u64::try_from(now.timestamp()).ok();
        let cached = self.minute.load(Ordering::Relaxed);
        if let Some(second) = second
            && cached >> MINUTE_BITS == second
        {
            return cached & ((1 << MINUTE_BITS) - 1);
        }
        let local = crate::telemetry::local_at(now);
        let minute = u64::from(local.hour() * 60 + local.minute());
        if let Some(second) = second.filter(|s| *s < 1 << (64 - MINUTE_BITS)) {
            self.minute
                .store(second << MINUTE_BITS | minute, Ordering::Relaxed);
        }
        minute
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// The longest node id kept in request ids; configured ones have 6 or 7 characters.
const MAX_NODE_BYTES: usize = 32;

/// An id, `@{NODE}x{minute}x{count}x{in_flight}`, written into a buffer of its own: the
/// prefix (at most 34 bytes) and three numbers of at most 20 digits each fit.
struct IdText {
    bytes: [u8; 96],
    len: usize,
}

impl Default for IdText {
    fn default() -> Self {
        Self {
            bytes: [0; 96],
            len: 0,
        }
    }
}

impl IdText {
    fn push_str(&mut self, text: &str) {
        self.bytes[self.len..self.len + text.len()].copy_from_slice(text.as_bytes());
        self.len += text.len();
    }

    fn push_byte(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    /// Appends `n` in decimal.
    fn push(&mut self, n: u64) {
        self.push_str(itoa::Buffer::new().format(n));
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("the prefix's text and digits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_count_and_track_in_flight() {
        let ids = RequestIds::new("A6X2OX");
        let (first, mark) = ids.next();
        let (second, _mark2) = ids.next();
        assert!(
            first.starts_with("@A6X2OXx") && first.ends_with("x1x0"),
            "{first}"
        );
        assert!(second.ends_with("x2x1"), "{second}");
        drop(mark);
        assert_eq!(ids.in_flight(), 1);
    }

    #[test]
    fn a_counted_request_holds_its_place_until_dropped() {
        let ids = Arc::new(RequestIds::new("A6X2OX"));
        let (first, counted) = ids.next_counted_at(Utc::now());
        let (second, mark) = ids.next();
        assert!(
            first.ends_with("x1x0") && second.ends_with("x2x1"),
            "{first} {second}"
        );
        drop(mark);
        assert_eq!(ids.in_flight(), 1);
        drop(counted);
        assert_eq!(ids.in_flight(), 0);
    }

    #[test]
    fn each_id_names_the_local_minute_of_its_own_time() {
        let ids = RequestIds::new("A6X2OX");
        let start = Utc::now();
        // The same second twice, then later and earlier ones, each against the last.
        for seconds in [0, 0, 1, 59, 60, 61, 3_600, -86_400, 0] {
            let at = start + chrono::Duration::seconds(seconds);
            let local = crate::telemetry::local_at(at);
            let minute = local.hour() * 60 + local.minute();
            let (id, _mark) = ids.next_at(at);
            assert!(
                id.starts_with(&format!("@A6X2OXx{minute}x")),
                "{seconds}: {id}"
            );
        }
    }

    #[test]
    fn an_overlong_node_is_cut_so_every_id_fits() {
        let ids = RequestIds::new("N".repeat(100));
        let (id, _mark) = ids.next();
        assert!(
            id.starts_with(&format!("@{}x", "N".repeat(MAX_NODE_BYTES))),
            "{id}"
        );
    }

    #[test]
    fn decimals_are_written_as_formatting_writes_them() {
        let all = [0, 7, 10, 99, 1440, 1_000_001, u64::MAX];
        let mut out = IdText::default();
        for (i, n) in all.into_iter().enumerate() {
            if i > 0 {
                out.push_byte(b'x');
            }
            out.push(n);
        }
        let expected: Vec<String> = all.iter().map(u64::to_string).collect();
        assert_eq!(out.as_str(), expected.join("x"));
    }
}
