//! The time at the start of each line, `2021-01-07 08:52:38,540`. Every line within one second
//! shares the text up to the comma, so each thread keeps that text for the last second it
//! wrote and adds the milliseconds by hand; the calendar is worked out once a second, not once
//! a line.

use std::cell::Cell;
use std::fmt;

use chrono::{DateTime, Datelike, Local, Timelike};

/// `2021-01-07 08:52:38`.
const SECOND_LEN: usize = 19;

/// A second's text and what it was made from: the Unix second and the UTC offset, so a clock
/// that jumps (or a test's fixed times in any order) never reuses the wrong text.
#[derive(Clone, Copy)]
struct Second {
    unix: i64,
    offset: i32,
    text: [u8; SECOND_LEN],
}

thread_local! {
    /// The second this thread wrote last.
    static LAST: Cell<Option<Second>> = const { Cell::new(None) };
}

/// Writes `t` as `yyyy-MM-dd HH:mm:ss,SSS`.
pub(super) fn write_time(out: &mut dyn fmt::Write, t: &DateTime<Local>) -> fmt::Result {
    let unix = t.timestamp();
    let offset = t.offset().local_minus_utc();
    let cached = LAST.get().filter(|s| s.unix == unix && s.offset == offset);
    let fresh = || second_text(t).map(|text| Second { unix, offset, text });
    // A year outside 0..=9999 does not fit the layout's four digits; write it as it is.
    let Some(second) = cached.or_else(fresh) else {
        return write_uncached(out, t);
    };
    LAST.set(Some(second));
    let mut line = [0; SECOND_LEN + 4];
    line[..SECOND_LEN].copy_from_slice(&second.text);
    line[SECOND_LEN] = b',';
    // A leap second's milliseconds run past 999; keep three digits.
    let millis = t.timestamp_subsec_millis().min(999);
    line[SECOND_LEN + 1..].copy_from_slice(&digits::<3>(millis));
    out.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
}

/// The text up to the second, when the year has four digits.
fn second_text(t: &DateTime<Local>) -> Option<[u8; SECOND_LEN]> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let mut text = [0; SECOND_LEN];
    text[..4].copy_from_slice(&digits::<4>(year));
    text[4] = b'-';
    text[5..7].copy_from_slice(&digits::<2>(t.month()));
    text[7] = b'-';
    text[8..10].copy_from_slice(&digits::<2>(t.day()));
    text[10] = b' ';
    text[11..13].copy_from_slice(&digits::<2>(t.hour()));
    text[13] = b':';
    text[14..16].copy_from_slice(&digits::<2>(t.minute()));
    text[16] = b':';
    text[17..19].copy_from_slice(&digits::<2>(t.second()));
    Some(text)
}

/// The last `N` decimal digits of `n`, zero-padded.
fn digits<const N: usize>(mut n: u32) -> [u8; N] {
    let mut out = [b'0'; N];
    for digit in out.iter_mut().rev() {
        // `n % 10` is below 10, so the cast keeps every bit.
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out
}

fn write_uncached(out: &mut dyn fmt::Write, t: &DateTime<Local>) -> fmt::Result {
    write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis().min(999),
    )
}
