//! Following a connection's bytes as hyper's HTTP/1 parser reads them: each request head line
//! by line (only where a line starts, and only as far as `Content-Length` and
//! `Transfer-Encoding` values go), and each body skipped exactly as hyper frames it, by length or
//! by chunked coding with hyper's strict line ends. Whatever it cannot follow (a framing hyper
//! refuses, which closes the connection anyway, or an HTTP/2 preface) ends the scan. Bodies are
//! skipped, not read.

/// Where the bytes read so far stand, as hyper's HTTP/1 parser sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a head (or in the empty lines before one).
    Head,
    /// This many body bytes to go.
    Body(u64),
    /// Chunked body: expecting the first hex digit of a chunk size.
    ChunkStart,
    /// In a chunk size of this value so far.
    ChunkSize(u64),
    /// Spaces after a chunk size.
    ChunkSizeSpace(u64),
    /// A chunk extension, up to its `\r`.
    ChunkExtension(u64),
    /// After a chunk size line's `\r`.
    ChunkSizeLf(u64),
    /// This many chunk bytes to go.
    ChunkData(u64),
    /// The `\r` after a chunk's data.
    ChunkDataCr,
    /// The `\n` after a chunk's data.
    ChunkDataLf,
    /// After the last chunk or a trailer line: `\r` ends the body, anything else starts a
    /// trailer line.
    TrailersCr,
    /// In a trailer line, up to its `\r`.
    Trailer,
    /// A trailer line's `\n`.
    TrailerLf,
    /// The body's final `\n`.
    EndLf,
    /// Nothing more can be followed.
    Stopped,
}

/// What the line being read is, as far as its bytes so far tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// A request line, `at` bytes into what may still be the HTTP/2 preface.
    Request { at: usize },
    /// The HTTP/2 preface's request line.
    Preface,
    /// A header name, `at` bytes in, that may still be `Content-Length` or `Transfer-Encoding`.
    Name {
        at: usize,
        length: bool,
        encoding: bool,
    },
    /// A line that does not matter: skipped to its end.
    Skip,
    /// A `Content-Length` value so far; `None` once it is a value hyper refuses.
    Length(Option<Digits>),
    /// A `Transfer-Encoding` value: the letters of its last coding so far (spaces left out),
    /// lower-cased, the first seven kept.
    Encoding { coding: [u8; 7], len: usize },
}

/// The digits of a `Content-Length` value so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Digits {
    value: u64,
    /// At least one digit was read.
    any: bool,
    /// Spaces followed the digits: no more may come.
    ended: bool,
}

/// The head being read.
#[derive(Debug, Default, Clone, Copy)]
struct Head {
    /// The request line was read (empty lines before it are skipped, as hyper skips them).
    started: bool,
    content_length: bool,
    /// The value of the `Content-Length` lines; `None` for one hyper refuses.
    length: Option<u64>,
    transfer_encoding: bool,
    /// Whether the last `Transfer-Encoding` line ends in the coding `chunked`.
    chunked: bool,
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0";
const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";

/// The watch of one connection's bytes.
#[derive(Debug)]
pub(super) struct Scan {
    state: State,
    head: Head,
    line: Line,
    /// Bytes of the current line so far, and its first one.
    line_len: usize,
    first: u8,
    /// Heads read so far.
    heads: u32,
}

impl Default for Scan {
    fn default() -> Self {
        Self {
            state: State::Head,
            head: Head::default(),
            line: Line::Skip,
            line_len: 0,
            first: 0,
            heads: 0,
        }
    }
}

impl Scan {
    /// Reads the next bytes of the connection; returns the place of a head with both lengths
    /// that ended in them. After such a head the watch stops (the request is refused and the
    /// connection closed).
    pub(super) fn feed(&mut self, mut input: &[u8]) -> Option<u32> {
        while let Some((&byte, rest)) = input.split_first() {
            match self.state {
                State::Stopped => return None,
                State::Head => {
                    let Some(end) = memchr::memchr(b'\n', input) else {
                        self.read_line(input);
                        return None;
                    };
                    // A whole header line whose first letter is neither `c` nor `t` cannot be
                    // `Content-Length` or `Transfer-Encoding`, and at two bytes or more it is not
                    // the empty line that ends the head: reading it would change nothing.
                    if self.line_len == 0
                        && self.head.started
                        && end >= 2
                        && !matches!(byte | 0x20, b'c' | b't')
                    {
                        input = &input[end + 1..];
                        continue;
                    }
                    self.read_line(&input[..end]);
                    input = &input[end + 1..];
                    if let Some(place) = self.end_line() {
                        return Some(place);
                    }
                }
                State::Body(left) | State::ChunkData(left) => {
                    let taken = usize::try_from(left).map_or(input.len(), |l| l.min(input.len()));
                    input = &input[taken..];
                    let left = left - taken as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), _) => State::Body(left),
                        (_, 0) => State::ChunkDataCr,
                        _ => State::ChunkData(left),
                    };
                }
                _ => {
                    input = rest;
                    self.state = self.chunked(byte);
                }
            }
        }
        None
    }

    /// The next state of a chunked body after `byte`, as hyper's decoder reads it.
    fn chunked(&self, byte: u8) -> State {
        let hex = |size: u64| {
            let digit = u64::from(char::from(byte).to_digit(16)?);
            size.checked_mul(16)?.checked_add(digit)
        };
        match (self.state, byte) {
            (State::ChunkStart, _) => hex(0).map_or(State::Stopped, State::ChunkSize),
            (State::ChunkSize(size) | State::ChunkSizeSpace(size), b' ' | b'\t') => {
                State::ChunkSizeSpace(size)
            }
            (State::ChunkSize(size) | State::ChunkSizeSpace(size), b';') => {
                State::ChunkExtension(size)
            }
            (
                State::ChunkSize(size) | State::ChunkSizeSpace(size) | State::ChunkExtension(size),
                b'\r',
            ) => State::ChunkSizeLf(size),
            (State::ChunkSize(size), _) => hex(size).map_or(State::Stopped, State::ChunkSize),
            (State::ChunkExtension(size), b) if b != b'\n' => State::ChunkExtension(size),
            (State::ChunkSizeLf(0), b'\n') => State::TrailersCr,
            (State::ChunkSizeLf(size), b'\n') => State::ChunkData(size),
            (State::ChunkDataCr, b'\r') => State::ChunkDataLf,
            (State::ChunkDataLf, b'\n') => State::ChunkStart,
            (State::TrailersCr, b'\r') => State::EndLf,
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::TrailersCr | State::Trailer, _) => State::Trailer,
            (State::TrailerLf, b'\n') => State::TrailersCr,
            (State::EndLf, b'\n') => State::Head,
            _ => State::Stopped,
        }
    }

    /// Reads a piece of the current head line (without its `\n`), up to where it stops
    /// mattering.
    fn read_line(&mut self, piece: &[u8]) {
        let Some(&first) = piece.first() else {
            return;
        };
        if self.line_len == 0 {
            self.first = first;
            self.line = if self.head.started {
                Line::Name {
                    at: 0,
                    length: true,
                    encoding: true,
                }
            } else {
                Line::Request { at: 0 }
            };
        }
        self.line_len += piece.len();
        for &byte in piece {
            if self.line == Line::Skip {
                break;
            }
            self.line = next(self.line, byte);
        }
    }

    /// Reads the line that just ended; returns the place of a head with both lengths that it
    /// ended.
    fn end_line(&mut self) -> Option<u32> {
        let empty = self.line_len == 0 || (self.line_len == 1 && self.first == b'\r');
        self.line_len = 0;
        let head = &mut self.head;
        if empty {
            return if head.started { self.end_head() } else { None };
        }
        head.started = true;
        match self.line {
            // HTTP/2 with prior knowledge: not HTTP/1 from here on.
            Line::Preface => self.state = State::Stopped,
            Line::Length(value) => {
                let value = value.filter(|d| d.any).map(|d| d.value);
                head.length = match (head.content_length, head.length, value) {
                    (false, _, value) => value,
                    (true, Some(first), Some(again)) if first == again => Some(first),
                    _ => None,
                };
                head.content_length = true;
            }
            Line::Encoding { coding, len } => {
                head.transfer_encoding = true;
                head.chunked = len == coding.len() && coding == *b"chunked";
            }
            Line::Request { .. } | Line::Name { .. } | Line::Skip => {}
        }
        None
    }

    /// The head ended: where its body goes, and its place if it carried both lengths.
    fn end_head(&mut self) -> Option<u32> {
        self.heads += 1;
        let head = std::mem::take(&mut self.head);
        if head.content_length && head.transfer_encoding {
            self.state = State::Stopped;
            return Some(self.heads);
        }
        self.state = match head {
            Head {
                transfer_encoding: true,
                chunked: true,
                ..
            } => State::ChunkStart,
            // hyper refuses the request: the connection ends.
            Head {
                transfer_encoding: true,
                ..
            }
            | Head {
                content_length: true,
                length: None,
                ..
            } => State::Stopped,
            Head {
                length: Some(length),
                ..
            } if length > 0 => State::Body(length),
            _ => State::Head,
        };
        None
    }
}

/// What a head line is after one more `byte`. Values are read as hyper reads them where that
/// matters: a `Content-Length` of decimal digits only, surrounded by spaces; the last
/// `Transfer-Encoding` coding compared without its spaces (so a value hyper refuses may read as
/// `chunked` here, never the other way round).
fn next(line: Line, byte: u8) -> Line {
    let space = matches!(byte, b' ' | b'\t' | b'\r');
    match line {
        Line::Request { at } if PREFACE.get(at) == Some(&byte) => {
            if at + 1 == PREFACE.len() {
                Line::Preface
            } else {
                Line::Request { at: at + 1 }
            }
        }
        Line::Name {
            at,
            length,
            encoding,
        } => {
            if byte == b':' {
                return match (
                    length && at == CONTENT_LENGTH.len(),
                    encoding && at == TRANSFER_ENCODING.len(),
                ) {
                    (true, _) => Line::Length(Some(Digits::default())),
                    (_, true) => Line::Encoding {
                        coding: [0; 7],
                        len: 0,
                    },
                    _ => Line::Skip,
                };
            }
            let byte = byte.to_ascii_lowercase();
            let length = length && CONTENT_LENGTH.get(at) == Some(&byte);
            let encoding = encoding && TRANSFER_ENCODING.get(at) == Some(&byte);
            if length || encoding {
                Line::Name {
                    at: at + 1,
                    length,
                    encoding,
                }
            } else {
                Line::Skip
            }
        }
        Line::Length(Some(digits)) => Line::Length(match byte {
            _ if space => Some(Digits {
                ended: digits.any,
                ..digits
            }),
            b'0'..=b'9' if !digits.ended => digits
                .value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                .map(|value| Digits {
                    value,
                    any: true,
                    ended: false,
                }),
            _ => None,
        }),
        Line::Encoding { mut coding, len } => match byte {
            b',' => Line::Encoding { coding, len: 0 },
            _ if space => line,
            _ => {
                if let Some(slot) = coding.get_mut(len) {
                    *slot = byte.to_ascii_lowercase();
                }
                Line::Encoding {
                    coding,
                    len: len.saturating_add(1),
                }
            }
        },
        // Settled: the rest of the line changes nothing.
        Line::Preface | Line::Length(None) => line,
        _ => Line::Skip,
    }
}

#[cfg(test)]
mod tests;
