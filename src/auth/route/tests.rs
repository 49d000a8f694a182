//! Routing paths and query values: every bypass the probe found, Tomcat's refusals, and
//! properties over generated paths, checked against a transcription of Tomcat's own steps.

use std::borrow::Cow;
use std::fmt::Write as _;

use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The routing path of a path that must route.
fn routed(raw: &str) -> String {
    routing_path(raw)
        .unwrap_or_else(|e| panic!("{raw:?} should route: {e}"))
        .into_owned()
}

fn assert_borrowed(raw: &str) {
    match routing_path(raw) {
        Ok(Cow::Borrowed(path)) => assert_eq!(path, raw),
        other => panic!("{raw:?} should come back borrowed and unchanged, got {other:?}"),
    }
}

fn assert_routes(cases: &[(&str, &str)]) {
    for &(raw, expected) in cases {
        assert_eq!(routed(raw), expected, "routing {raw:?}");
    }
}

fn assert_unroutable(cases: &[&str], why: Unroutable) {
    for &raw in cases {
        assert_eq!(routing_path(raw), Err(why), "routing {raw:?}");
    }
}

fn values<'q>(query: &'q str, name: &str) -> Vec<Cow<'q, str>> {
    query_values(query, name).collect()
}

/// Tomcat's steps on a raw path, transcribed from `CoyoteAdapter` (`parsePathParameters`,
/// `UDecoder.convert` with `encodedSolidusHandling="reject"`, `normalize` with
/// `allowBackslash="false"`, `convertURI`) as literally as Rust allows. `None` is a 400. The one
/// departure is the last step: Tomcat would route malformed UTF-8 as U+FFFD, we refuse it.
fn tomcat(raw: &str) -> Option<String> {
    let mut uri = raw.as_bytes().to_vec();
    while let Some(semicolon) = uri.iter().position(|&b| b == b';') {
        let end = uri[semicolon..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(uri.len(), |p| semicolon + p);
        uri.drain(semicolon..end);
    }

    let mut decoded = Vec::new();
    let mut j = 0;
    while j < uri.len() {
        if uri[j] == b'%' {
            if j + 2 >= uri.len() {
                return None;
            }
            let digit = |b: u8| (b as char).to_digit(16);
            let byte = digit(uri[j + 1])? * 16 + digit(uri[j + 2])?;
            if byte == u32::from(b'/') {
                return None;
            }
            decoded.push(u8::try_from(byte).unwrap());
            j += 3;
        } else {
            decoded.push(uri[j]);
            j += 1;
        }
    }

    let mut b = decoded;
    if b.first() != Some(&b'/') || b.iter().any(|&c| c == b'\\' || c == 0) {
        return None;
    }
    let mut pos = 0;
    while pos + 1 < b.len() {
        if b[pos] == b'/' && b[pos + 1] == b'/' {
            b.remove(pos + 1);
        } else {
            pos += 1;
        }
    }
    if b.ends_with(b"/.") || b.ends_with(b"/..") {
        b.push(b'/');
    }
    while let Some(index) = find(&b, b"/./") {
        b.drain(index..index + 2);
    }
    while let Some(index) = find(&b, b"/../") {
        if index == 0 {
            return None;
        }
        let index2 = b[..index].iter().rposition(|&c| c == b'/').unwrap();
        b.drain(index2..index + 3);
    }
    String::from_utf8(b).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How the routing path writes Tomcat's decoded path.
fn escaped(decoded: &str) -> String {
    decoded.replace('%', "%25").replace(';', "%3B")
}

// ---------------------------------------------------------------------------------------------
// Canonical paths: borrowed, unchanged
// ---------------------------------------------------------------------------------------------

#[test]
fn canonical_paths_are_borrowed_unchanged() {
    for raw in [
        "/",
        "/rest/api/1.0/projects",
        "/rest/api/1.0/projects/",
        "/rest/api/1.0/projects/~ALICE/repos/a-b_c.d/browse/src/main.rs",
        "/scm/prj/repo.git/info/refs",
        "/scm/prj/repo.git/git-receive-pack",
        "/rest/.../a/.b/..c/c./d..",
        "/rest/a%25b",
        "/rest/a%3Bb",
        "/rest/a b/é/日本",
        "/rest/a+b/a:b@c!$&'()*,=",
    ] {
        assert_borrowed(raw);
    }
}

#[test]
fn a_percent_escape_makes_a_decoded_owned_path() {
    // The routing path is decoded text: `%20` is a space, as in Tomcat's servlet path.
    let raw = "/rest/api/1.0/projects/~ALICE/repos/a%20b";
    let path = routing_path(raw).unwrap();
    assert!(matches!(path, Cow::Owned(_)));
    assert_eq!(path, "/rest/api/1.0/projects/~ALICE/repos/a b");
    assert_borrowed(&path);
}

// ---------------------------------------------------------------------------------------------
// The probe's bypasses of `/rest/`
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_segments_merge() {
    assert_routes(&[
        ("//rest/api/1.0/projects", "/rest/api/1.0/projects"),
        ("/rest//api///1.0/projects", "/rest/api/1.0/projects"),
        ("/rest/api//", "/rest/api/"),
        ("//", "/"),
        ("///", "/"),
    ]);
}

#[test]
fn path_parameters_are_cut_from_every_segment() {
    assert_routes(&[
        ("/rest;a=b/api/1.0/projects", "/rest/api/1.0/projects"),
        ("/;x/rest/api", "/rest/api"),
        ("/rest;/api;jsessionid=1;b=2/projects", "/rest/api/projects"),
        ("/rest/api;x", "/rest/api"),
        ("/rest/api/;x", "/rest/api/"),
        ("/rest;a%G1\\/api", "/rest/api"),
    ]);
}

#[test]
fn percent_escapes_decode_in_either_case() {
    assert_routes(&[
        ("/%72est/api/1.0/projects", "/rest/api/1.0/projects"),
        ("/%72%65%73%74/api", "/rest/api"),
        ("/r%45st/api", "/rEst/api"),
        ("/rest/%7eALICE/%C3%A9t%c3%a9", "/rest/~ALICE/été"),
    ]);
}

#[test]
fn dot_segments_resolve() {
    assert_routes(&[
        ("/./rest/api/1.0/projects", "/rest/api/1.0/projects"),
        ("/x/../rest/api/1.0/projects", "/rest/api/1.0/projects"),
        ("/x/y/../../rest/api", "/rest/api"),
        ("/x/%2e%2e/rest/api", "/rest/api"),
        ("/x/.%2E/rest/api", "/rest/api"),
        ("/%2e/rest/api", "/rest/api"),
        ("/rest/.;x/api", "/rest/api"),
        ("/x/..;y/rest/api", "/rest/api"),
        ("/x/.//../rest", "/rest"),
    ]);
}

#[test]
fn a_trailing_slash_stays_and_a_final_dot_segment_leaves_one() {
    assert_routes(&[
        ("/rest/api/", "/rest/api/"),
        ("/rest/.", "/rest/"),
        ("/rest/api/..", "/rest/"),
        ("/rest/..", "/"),
        ("/.", "/"),
        ("/rest/api", "/rest/api"),
    ]);
}

// ---------------------------------------------------------------------------------------------
// The probe's bypasses of the push check
// ---------------------------------------------------------------------------------------------

#[test]
fn git_push_discovery_paths_route_to_info_refs() {
    assert_routes(&[
        ("/scm/p/r.git/info/refs;x", "/scm/p/r.git/info/refs"),
        ("/scm/p/r.git/info/%72efs", "/scm/p/r.git/info/refs"),
        ("/scm/p/r.git/info//refs", "/scm/p/r.git/info/refs"),
        ("/scm/p/r.git/x/../info/refs", "/scm/p/r.git/info/refs"),
        // The trailing slash is kept: a suffix check has to allow for it.
        ("/scm/p/r.git/info/refs/", "/scm/p/r.git/info/refs/"),
        ("/scm/p/r.git/info/refs/.", "/scm/p/r.git/info/refs/"),
    ]);
}

#[test]
fn encoded_percent_and_semicolon_stay_escaped() {
    assert_routes(&[
        // Decoded once, as Tomcat does: `%2541` is `%41`, never `A`.
        ("/rest/a%2541", "/rest/a%2541"),
        ("/rest/a%3bb", "/rest/a%3Bb"),
        // An encoded `;` is a character of the segment, not a path parameter.
        ("/rest%3B/api", "/rest%3B/api"),
        ("/scm/p/r.git/info/refs%3bx", "/scm/p/r.git/info/refs%3Bx"),
    ]);
}

// ---------------------------------------------------------------------------------------------
// What Tomcat answers 400
// ---------------------------------------------------------------------------------------------

#[test]
fn climbing_above_the_root_is_unroutable() {
    assert_unroutable(
        &[
            "/..",
            "/../rest/api",
            "/a/../../rest",
            "/%2e%2e/rest",
            "/..;x/rest",
            "/a/./../..",
        ],
        Unroutable::AboveRoot,
    );
}

#[test]
fn an_encoded_slash_is_unroutable() {
    assert_unroutable(
        &["/rest%2Fapi", "/rest%2fapi", "/x/..%2Frest/api"],
        Unroutable::EncodedSlash,
    );
}

#[test]
fn a_backslash_is_unroutable() {
    assert_unroutable(
        &["/rest%5Capi", "/rest%5capi", "/rest\\api", "/x/..%5C/rest"],
        Unroutable::Backslash,
    );
}

#[test]
fn an_invalid_escape_is_unroutable() {
    assert_unroutable(
        &[
            "/%G1",
            "/rest/%",
            "/rest/%4",
            "/rest/%4g",
            "/%%41",
            "/rest/%é",
        ],
        Unroutable::BadEscape,
    );
}

#[test]
fn a_nul_is_unroutable() {
    assert_unroutable(&["/rest/%00", "/rest/a\0b"], Unroutable::Nul);
}

#[test]
fn bytes_that_are_not_utf8_are_unroutable() {
    assert_unroutable(
        &["/%FF", "/rest/%C3", "/rest/%C3%28", "/rest/%ED%A0%80"],
        Unroutable::NotUtf8,
    );
    // As in Tomcat, which decodes characters only after normalising, a dropped segment
    // never counts.
    assert_eq!(routed("/%FF/../rest"), "/rest");
}

#[test]
fn a_path_not_starting_with_a_slash_is_unroutable() {
    assert_unroutable(
        &["", "*", "rest/api", ";/rest", "\\rest", "%2Frest"],
        Unroutable::NotAbsolute,
    );
}

// ---------------------------------------------------------------------------------------------
// Query values
// ---------------------------------------------------------------------------------------------

#[test]
fn query_values_decode_escapes_in_values() {
    assert_eq!(
        values("service=git%2Dreceive-pack", "service"),
        ["git-receive-pack"]
    );
    assert_eq!(
        values("service=%67%69%74-receive-pack", "service"),
        ["git-receive-pack"]
    );
}

#[test]
fn query_values_decode_names() {
    assert_eq!(
        values("servic%65=git-receive-pack", "service"),
        ["git-receive-pack"]
    );
    assert!(values("Service=git-receive-pack", "service").is_empty());
}

#[test]
fn query_values_return_every_value() {
    assert_eq!(
        values(
            "service=git-upload-pack&x=1&service=git-receive-pack",
            "service"
        ),
        ["git-upload-pack", "git-receive-pack"]
    );
}

#[test]
fn query_values_read_plus_as_space() {
    assert_eq!(values("q=a+b%2Bc", "q"), ["a b+c"]);
    assert_eq!(values("a+b=1", "a b"), ["1"]);
}

#[test]
fn query_values_borrow_what_needs_no_decoding() {
    let found = values("x=1&service=git-receive-pack", "service");
    assert!(matches!(
        found.as_slice(),
        [Cow::Borrowed("git-receive-pack")]
    ));
}

#[test]
fn query_values_keep_invalid_escapes_as_written() {
    assert_eq!(values("q=100%&r=%G1%4", "q"), ["100%"]);
    assert_eq!(values("q=100%&r=%G1%4", "r"), ["%G1%4"]);
}

#[test]
fn query_values_without_equals_are_empty() {
    assert_eq!(values("service&x=1", "service"), [""]);
    assert_eq!(values("service=", "service"), [""]);
    assert_eq!(values("service==a", "service"), ["=a"]);
}

#[test]
fn query_values_split_on_ampersand_only() {
    assert!(values("x=1;service=git-receive-pack", "service").is_empty());
    assert_eq!(
        values("x=1;service=git-receive-pack", "x"),
        ["1;service=git-receive-pack"]
    );
    assert!(values("", "service").is_empty());
    assert!(values("=git-receive-pack&&", "").is_empty());
}

#[test]
fn query_values_replace_bytes_that_are_not_utf8() {
    assert_eq!(values("q=a%FFb", "q"), ["a\u{FFFD}b"]);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Pieces that exercise every rule: separators, dots, parameters, escapes good and bad.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/", "/", "/", "/", ".", "..", "/.", "/..", "/..", ";", ";x=1", "%", "%2e", "%2E", "%2f",
        "%2F", "%25", "%3B", "%3b", "%5c", "%00", "%zz", "%4", "%C3%A9", "%C3", "%FF", "%20",
        "%41", "a", "rest", "scm", "~", " ", "\\", "é", "+", "?", "\0",
    ])
}

fn path_like() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..16).prop_map(|pieces| pieces.concat())
}

fn absolute_path_like() -> impl Strategy<Value = String> {
    path_like().prop_map(|rest| format!("/{rest}"))
}

/// Segments with nothing for `routing_path` to rewrite: no `/`, `;`, `%`, `\` or NUL, not `.`
/// or `..`.
fn plain_segment() -> impl Strategy<Value = String> {
    "[^/;%\\\\\\x00]{1,8}".prop_filter("not a dot segment", |s| s != "." && s != "..")
}

fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![absolute_path_like(), path_like(), any::<String>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics(raw in any::<String>(), name in any::<String>()) {
        let _ = routing_path(&raw);
        let _ = query_values(&raw, &name).count();
        let _ = query_values(&raw, "service").count();
    }

    #[test]
    fn routing_agrees_with_tomcat(raw in any_path()) {
        if !raw.starts_with('/') {
            // Stricter than the transcription, which would cut a leading `;x` and route the
            // rest: no request target starts that way (origin-form starts with `/`).
            prop_assert!(routing_path(&raw).is_err(), "{:?}", raw);
            return Ok(());
        }
        let ours = routing_path(&raw).ok().map(Cow::into_owned);
        let theirs = tomcat(&raw).map(|decoded| escaped(&decoded));
        prop_assert_eq!(ours, theirs, "routing {:?}", raw);
    }

    #[test]
    fn routing_is_idempotent_and_its_result_canonical(raw in any_path()) {
        if let Ok(path) = routing_path(&raw) {
            // Routing a routed path gives it back, borrowed.
            prop_assert!(
                matches!(routing_path(&path), Ok(Cow::Borrowed(again)) if again == path),
                "{:?} routed to {:?}, which routes to {:?}", raw, path, routing_path(&path)
            );
            prop_assert!(path.starts_with('/'));
            for bad in ["//", "/./", "/../", ";", "\\", "\0"] {
                prop_assert!(!path.contains(bad), "{:?} routed to {:?}", raw, path);
            }
            prop_assert!(!path.ends_with("/.") && !path.ends_with("/.."), "{:?}", path);
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_slow_path(raw in any_path()) {
        if is_canonical(raw.as_bytes()) {
            prop_assert_eq!(normalise(&raw), Ok(raw.clone()));
        }
    }

    #[test]
    fn plain_rest_paths_are_borrowed_unchanged(
        segments in prop::collection::vec(plain_segment(), 0..6),
        trailing_slash in any::<bool>(),
    ) {
        let mut raw = format!("/rest/{}", segments.join("/"));
        if trailing_slash && !segments.is_empty() {
            raw.push('/');
        }
        prop_assert!(
            matches!(routing_path(&raw), Ok(Cow::Borrowed(path)) if path == raw),
            "{:?} routed to {:?}", raw, routing_path(&raw)
        );
    }

    #[test]
    fn an_encoded_value_is_found_however_it_is_encoded(
        value in any::<String>(),
        mask in any::<u64>(),
        others in "[a-z0-9=&+%]{0,12}",
    ) {
        let mut encoded = String::new();
        for (i, b) in value.bytes().enumerate() {
            let plain = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            if plain && mask & (1 << (i % 64)) == 0 {
                encoded.push(char::from(b));
            } else if b == b' ' && mask & (1 << (i % 64)) == 0 {
                encoded.push('+');
            } else {
                write!(encoded, "%{b:02X}").unwrap();
            }
        }
        let query = format!("{others}&service={encoded}&{others}");
        prop_assert!(
            query_values(&query, "service").any(|v| v == value),
            "{:?} not found in {:?}", value, query
        );
    }
}
