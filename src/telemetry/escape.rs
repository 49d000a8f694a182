//! Escaping of user-controlled text inside log lines, so no input can split or forge a line.

use std::fmt;

/// Displays text with `\`, `"` and every control character escaped (`\n`, `\r`, `\t`,
/// `\u{7f}`), so the result is one line whose quoted fields cannot be closed early.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
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
}

/// Unicode line and paragraph separators, which some log viewers treat as line breaks.
fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}')
}

#[cfg(test)]
mod tests {
    use super::Escaped;

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
}
