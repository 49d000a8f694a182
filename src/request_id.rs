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
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            prefix: format!("@{}x", node.into()),
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
        let now = crate::telemetry::local_at(now);
        let minute = now.hour() * 60 + now.minute();
        let count = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let others = self.in_flight.fetch_add(1, Ordering::Relaxed);
        // Written digit by digit: the formatting machinery cost more than the rest of a
        // request's id.
        let mut numbers = Digits::default();
        numbers.push(u64::from(minute));
        numbers.push_byte(b'x');
        numbers.push(count);
        numbers.push_byte(b'x');
        numbers.push(u64::try_from(others).unwrap_or(u64::MAX));
        let mut id = CompactString::with_capacity(self.prefix.len() + numbers.len);
        id.push_str(&self.prefix);
        id.push_str(numbers.as_str());
        id
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// The numbers of an id, `{minute}x{count}x{in_flight}`, written into a buffer of their own
/// and added to the id at once.
struct Digits {
    bytes: [u8; 64],
    len: usize,
}

impl Default for Digits {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl Digits {
    fn push_byte(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    /// Appends `n` in decimal.
    fn push(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            // `n % 10` is below 10, so the cast keeps every bit.
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let digits = &digits[start..];
        self.bytes[self.len..self.len + digits.len()].copy_from_slice(digits);
        self.len += digits.len();
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("ASCII digits")
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
    fn decimals_are_written_as_formatting_writes_them() {
        let all = [0, 7, 10, 99, 1440, 1_000_001, u64::MAX];
        let mut out = Digits::default();
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
