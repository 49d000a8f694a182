//! The time at the start of each line, `2021-01-07 08:52:38,540`. Every line within one second
//! shares the text up to the comma, so each thread keeps that text for the last second it
//! wrote and adds the milliseconds by hand; the calendar is worked out once a second, not once
//! a line.

use std::cell::RefCell;
use std::fmt;

use chrono::{DateTime, Datelike, Local, Timelike};

/// `2021-01-07 08:52:38`.
const SECOND_LEN: usize = 19;

/// A second's text and what it was made from: the Unix second and the UTC offset, so a clock
/// that jumps (or a test's fixed times in any order) never reuses the wrong text.
struct Second {
    unix: i64,
    offset: i32,
    /// `2021-01-07 08:52:38,`: held as text, so writing it checks nothing.
    text: String,
}

thread_local! {
    /// The second this thread wrote last.
    static LAST: RefCell<Option<Second>> = const { RefCell::new(None) };
}

/// `000` to `999`, three digits each: the milliseconds of a line, found rather than written.
const MILLIS: &str = {
    const DIGITS: [u8; 3000] = {
        let mut digits = [0; 3000];
        let mut n = 0;
        while n < 1000 {
            // Each quotient and remainder is below 10.
            digits[3 * n] = b'0' + (n / 100) as u8;
            digits[3 * n + 1] = b'0' + (n / 10 % 10) as u8;
            digits[3 * n + 2] = b'0' + (n % 10) as u8;
            n += 1;
        }
        digits
    };
    match std::str::from_utf8(&DIGITS) {
        Ok(text) => text,
        Err(_) => panic!("digits are text"),
    }
};

/// Writes `t` as `yyyy-MM-dd HH:mm:ss,SSS`.
pub(super) fn write_time(out: &mut impl fmt::Write, t: &DateTime<Local>) -> fmt::Result {
    let unix = t.timestamp();
    let offset = t.offset().local_minus_utc();
    // A leap second's milliseconds run past 999; keep three digits.
    let millis = t.timestamp_subsec_millis().min(999) as usize;
    // `try_with`: the cache holds a String, so it is gone once its thread is going away, and
    // a line may still be written then.
    let written = LAST.try_with(|last| {
        let mut last = last.borrow_mut();
        if !last
            .as_ref()
            .is_some_and(|s| s.unix == unix && s.offset == offset)
        {
            // A year outside 0..=9999 does not fit the layout's four digits.
            let text = second_text(t)?;
            let mut text = String::from_utf8(text.to_vec()).ok()?;
            text.push(',');
            *last = Some(Second { unix, offset, text });
        }
        let second = last.as_ref()?;
        Some(
            out.write_str(&second.text)
                .and_then(|()| out.write_str(&MILLIS[3 * millis..3 * millis + 3])),
        )
    });
    let written = written.ok().flatten();
    // Written as it is when the year does not fit, or while the thread is going away.
    written.unwrap_or_else(|| write_uncached(out, t))
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

fn write_uncached(out: &mut impl fmt::Write, t: &DateTime<Local>) -> fmt::Result {
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
