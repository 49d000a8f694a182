//! Escaping of user-controlled text inside log lines, so no input can split or forge a line.

use std::fmt;

/// Displays text with `\`, `"` and every control character escaped (`\n`, `\r`, `\t`,
/// `\u{7f}`), so the result is one line whose quoted fields cannot be closed early.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0)
    }
}

/// A writer that escapes everything written through it as [`Escaped`] does, for text that
/// arrives in pieces (a `Display` value inside quotes).
pub(super) struct Escaping<'w>(pub(super) &'w mut dyn fmt::Write);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s)
    }
}

/// Longest user-controlled text written into a line, in bytes; the rest is cut, marked
/// [`CLIPPED`]. It bounds a line (and so the log queue's memory) whatever a request carries:
/// a request head may hold 64 KiB of path.
pub const MAX_FIELD_BYTES: usize = 1024;

/// Marks text cut at [`MAX_FIELD_BYTES`].
pub const CLIPPED: &str = "...[clipped]";

/// `s` cut to at most `max` bytes on a character boundary, and whether anything was cut.
pub fn clip(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// Writes `s` as [`Escaped`] displays it, without the formatting machinery.
pub fn write_escaped<W: fmt::Write + ?Sized>(f: &mut W, s: &str) -> fmt::Result {
    let (s, clipped) = clip(s, MAX_FIELD_BYTES);
    write_escaped_whole(f, s)?;
    if clipped {
        f.write_str(CLIPPED)?;
    }
    Ok(())
}

fn write_escaped_whole<W: fmt::Write + ?Sized>(f: &mut W, s: &str) -> fmt::Result {
    // Most text (paths, names, descriptions) has nothing to escape: one pass over the bytes.
    if !any_byte(s, |b| (b == b'"') | (b == b'\\') | may_start_control(b)) {
        return f.write_str(s);
    }
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let replacement = match c {
            '\\' => "\\\\",
            '"' => "\\\"",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if c.is_control() || is_line_separator(c) => {
                f.write_str(&s[start..i])?;
                write!(f, "\\u{{{:x}}}", c as u32)?;
                start = i + c.len_utf8();
                continue;
            }
            _ => continue,
        };
        f.write_str(&s[start..i])?;
        f.write_str(replacement)?;
        start = i + c.len_utf8();
    }
    f.write_str(&s[start..])
}

/// Whether any byte of `s` passes `test`, which must not pass `a`. Each 32-byte chunk is tested
/// without an early exit, so the loop compiles to vector compares; the last, shorter one (the
/// whole of most log fields) is copied into a chunk filled with `a` first, rather than tested
/// byte by byte.
pub(super) fn any_byte(s: &str, test: impl Fn(u8) -> bool) -> bool {
    let in_chunk = |chunk: &[u8; 32]| chunk.iter().fold(false, |found, &b| found | test(b));
    let (chunks, rest) = s.as_bytes().as_chunks::<32>();
    if chunks.iter().any(in_chunk) {
        return true;
    }
    let mut last = [b'a'; 32];
    last[..rest.len()].copy_from_slice(rest);
    in_chunk(&last)
}

/// Whether a byte of UTF-8 text may begin a control character or a line separator: an ASCII
/// control, or the lead byte of U+0080..U+00BF (`0xC2`, holding the C1 controls and U+0085) or
/// of U+2000..U+2FFF (`0xE2`, holding U+2028 and U+2029). Text without such bytes needs no
/// escaping of controls; text with them is checked character by character.
pub(super) fn may_start_control(b: u8) -> bool {
    (b < 0x20) | (b == 0x7f) | (b == 0xc2) | (b == 0xe2)
}

/// Unicode line and paragraph separators, which some log viewers treat as line breaks.
fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}')
}

#[cfg(test)]
mod tests {
    use super::{Escaped, is_line_separator, may_start_control};

    #[test]
    fn long_text_is_clipped_on_a_character_boundary() {
        let long = format!("/rest/{}", "é".repeat(2000));
        let shown = Escaped(&long).to_string();
        let kept = shown
            .strip_suffix(super::CLIPPED)
            .expect("marked as clipped");
        assert!(kept.len() <= super::MAX_FIELD_BYTES && kept.len() > super::MAX_FIELD_BYTES - 4);
        assert!(long.starts_with(kept));
        let fits = "a".repeat(super::MAX_FIELD_BYTES);
        assert_eq!(Escaped(&fits).to_string(), fits);
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(Escaped("automation-user").to_string(), "automation-user");
        assert_eq!(
            Escaped("API Token from 2021-01-06").to_string(),
            "API Token from 2021-01-06"
        );
        assert_eq!(Escaped("Jürgen Ölmann").to_string(), "Jürgen Ölmann");
    }

    #[test]
    fn breaks_quotes_and_controls_are_escaped() {
        assert_eq!(Escaped("a\nb").to_string(), "a\\nb");
        assert_eq!(Escaped("a\r\nb").to_string(), "a\\r\\nb");
        assert_eq!(Escaped("say \"hi\"").to_string(), "say \\\"hi\\\"");
        assert_eq!(Escaped("back\\slash").to_string(), "back\\\\slash");
        assert_eq!(Escaped("\u{1b}[31mred").to_string(), "\\u{1b}[31mred");
        assert_eq!(Escaped("x\u{2028}y\u{0}").to_string(), "x\\u{2028}y\\u{0}");
    }

    #[test]
    fn escaped_output_never_contains_a_line_break() {
        let nasty: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = Escaped(&nasty).to_string();
        assert!(!out.contains(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}']));
    }

    /// Every length around a chunk's, with the byte looked for at every place, and without it.
    #[test]
    fn the_byte_scan_finds_a_byte_anywhere() {
        for len in 0..100 {
            let plain = "x".repeat(len);
            assert!(!super::any_byte(&plain, may_start_control));
            for at in 0..len {
                let mut text = plain.clone().into_bytes();
                text[at] = b'\n';
                let text = String::from_utf8(text).unwrap();
                assert!(super::any_byte(&text, may_start_control), "{len} {at}");
            }
        }
    }

    #[test]
    fn every_character_that_needs_escaping_is_seen_by_the_byte_scan() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            if c.is_control() || is_line_separator(c) {
                let mut utf8 = [0; 4];
                let lead = c.encode_utf8(&mut utf8).as_bytes()[0];
                assert!(may_start_control(lead), "{:x}", c as u32);
            }
        }
    }
}
