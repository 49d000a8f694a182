//! The scan against byte streams hyper accepts, fed whole and in every split, so a head is
//! found wherever the reads happen to cut the stream.

use super::*;

/// The place of the first head with both lengths, feeding `stream` in pieces of `piece` bytes.
fn scan_in_pieces(stream: &[u8], piece: usize) -> Option<u32> {
    let mut scan = Scan::default();
    stream.chunks(piece).find_map(|bytes| scan.feed(bytes))
}

/// The same answer for every piece size, which is returned.
fn scan(stream: &str) -> Option<u32> {
    let whole = scan_in_pieces(stream.as_bytes(), stream.len().max(1));
    for piece in 1..stream.len() {
        assert_eq!(
            scan_in_pieces(stream.as_bytes(), piece),
            whole,
            "pieces of {piece} bytes: {stream:?}"
        );
    }
    whole
}

fn post(headers: &str, body: &str) -> String {
    format!("POST /x HTTP/1.1\r\nHost: h\r\n{headers}\r\n{body}")
}

#[test]
fn a_head_with_both_lengths_is_found_in_either_order() {
    let chunked = "5\r\nhello\r\n0\r\n\r\n";
    assert_eq!(
        scan(&post(
            "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n",
            chunked
        )),
        Some(1)
    );
    assert_eq!(
        scan(&post(
            "transfer-encoding: chunked\r\ncontent-length: 15\r\n",
            chunked
        )),
        Some(1)
    );
    assert_eq!(
        scan(&post(
            "TRANSFER-ENCODING:chunked\nCONTENT-LENGTH:15\n",
            chunked
        )),
        Some(1)
    );
    assert_eq!(scan(&post("Transfer-Encoding: chunked\r\n", chunked)), None);
    assert_eq!(scan(&post("Content-Length: 5\r\n", "hello")), None);
    assert_eq!(
        scan(&post(
            "X-Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            chunked
        )),
        None
    );
}

#[test]
fn bodies_are_skipped_as_hyper_frames_them() {
    let lookalike = "\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n";
    let chunked_lookalike = format!("{:x}\r\n{lookalike}\r\n0\r\n\r\n", lookalike.len());
    let stream = [
        // Empty lines before a request line are skipped.
        "\r\n\n".to_owned(),
        "GET / HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(),
        post(
            &format!("Content-Length: {}\r\n", lookalike.len()),
            lookalike,
        ),
        post("Transfer-Encoding: chunked\r\n", &chunked_lookalike),
        post(
            "Transfer-Encoding:  Chunked\r\n",
            "3 ;a=b;c\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n",
        ),
        post("Content-Length: 0\r\nContent-Length: 0\r\n", ""),
        post(
            "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
    ]
    .concat();
    assert_eq!(scan(&stream), Some(6));
}

#[test]
fn what_hyper_refuses_or_cannot_be_followed_ends_the_watch() {
    let both = post(
        "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
        "0\r\n\r\n",
    );
    for first in [
        post("Transfer-Encoding: chunked\r\n", "zz\r\n\r\n"),
        post("Transfer-Encoding: chunked\r\n", "1ffffffffffffffff\r\n"),
        post("Transfer-Encoding: chunked\r\n", "3\r\nabcX"),
        post("Transfer-Encoding: chunked\r\n", "3\nabc\r\n0\r\n\r\n"),
        post("Transfer-Encoding: gzip\r\n", ""),
        post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello"),
        post("Content-Length: -1\r\n", ""),
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_owned(),
    ] {
        assert_eq!(scan(&(first.clone() + &both)), None, "{first:?}");
    }
}

/// Values are read whole, however long, so no padding hides a length.
#[test]
fn long_values_are_read_whole() {
    let padded = format!(
        "X-Pad: {}\r\nContent-Length: {}{}1 \r\n",
        "p".repeat(9000),
        " ".repeat(9000),
        "0".repeat(9000)
    );
    let both = post(
        "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
        "0\r\n\r\n",
    );
    let mut scan = Scan::default();
    assert_eq!(scan.feed((post(&padded, "h") + &both).as_bytes()), Some(2));
    let codings = format!("Transfer-Encoding: {}chunked\r\n", "gzip, ".repeat(2000));
    let mut scan = Scan::default();
    assert_eq!(
        scan.feed((post(&codings, "0\r\n\r\n") + &both).as_bytes()),
        Some(2)
    );
}

#[test]
fn lines_passed_over_whole_are_the_ones_that_cannot_matter() {
    // Names that start as the two that matter do, in either case, among names that do not.
    let both = post(
        "Cookie: a\r\nTE: trailers\r\ncontent-Lengthy: 1\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\nx: y\r\nContent-Length: 5",
        "0\r\n\r\n",
    );
    assert_eq!(scan(&both), Some(1));
    let neither = post(
        "Cookie: a\r\ntransfer-encodings: chunked\r\nContent-Lengths: 5\r\nA: b",
        "",
    );
    assert_eq!(scan(&format!("{neither}{neither}")), None);
}
