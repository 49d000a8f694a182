//! The functions the fuzz targets (`fuzz/`) run, and the test that replays their seed corpora
//! (`tests/api/fuzz_corpus.rs`) runs too, on stable: each takes arbitrary bytes, runs one parser
//! of untrusted input on them, and panics only where a property it must keep whatever the input
//! is broken. Not part of the API.

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

use crate::auth::{Credential, query_values, routing_path};
use crate::token::{PresentedToken, TOKEN_PREFIX, TokenId};

/// Request paths and queries, as the proxy routes them: a routed path is canonical (it starts
/// with `/` and routing it again returns it unchanged, borrowed).
pub fn route(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    if let Ok(routed) = routing_path(path) {
        assert!(routed.starts_with('/'), "{path:?} routed to {routed:?}");
        match routing_path(&routed) {
            Ok(std::borrow::Cow::Borrowed(again)) => {
                assert_eq!(again, &*routed, "{path:?} is not canonical once routed");
            }
            other => panic!("{path:?} routed to {routed:?}, which routes to {other:?}"),
        }
    }
    for name in ["service", "", "a"] {
        for value in query_values(query, name) {
            std::hint::black_box(value);
        }
    }
}

/// `Authorization` values: a tokengate token in one is never read as a foreign credential
/// (which would forward it to Bitbucket), whatever surrounds it.
pub fn credential(data: &[u8]) {
    if let Ok(value) = std::str::from_utf8(data) {
        check_credential(data, &Credential::parse(value));
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        check_credential(data, &Credential::from_headers(&headers));
    }
}

fn check_credential(value: &[u8], credential: &Credential<'_>) {
    let prefix = TOKEN_PREFIX.as_bytes();
    let holds_a_token = value
        .windows(prefix.len())
        .enumerate()
        .any(|(at, w)| w == prefix && (at == 0 || !value[at - 1].is_ascii_alphanumeric()));
    if holds_a_token {
        assert!(
            !matches!(credential, Credential::Foreign { .. }),
            "a token would be forwarded: {:?}",
            String::from_utf8_lossy(value)
        );
    }
    if let Credential::Token { token, .. } = credential {
        let _ = PresentedToken::parse(token);
    }
}

/// Token strings: what parses has the token's shape, and its id is one.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = TokenId::parse(text);
    if let Ok(token) = PresentedToken::parse(text) {
        assert!(PresentedToken::is_tokengate_format(text));
        assert_eq!(token.expose(), text);
        assert_eq!(
            token.id().as_str(),
            &text[TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + 12]
        );
        assert!(TokenId::parse(token.id().as_str()).is_some());
    }
}

/// Config files and `TOKENGATE_*` variables: TOML up to a line `%%`, then one `NAME=VALUE`
/// variable a line (the `TOKENGATE_` prefix added). Any input is a config or an error.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, env) = text.split_once("\n%%\n").unwrap_or((text, ""));
    let vars = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (format!("TOKENGATE_{name}"), value.to_owned()))
        .collect();
    if let Ok(config) = crate::config::from_text(toml, vars) {
        let _ = config.warnings().count();
    }
}

/// SQLite audit segment bodies, as read back from the store: a body this release did not
/// write is refused as corrupt, never a panic. The first eight bytes are the segment id.
pub fn segment(data: &[u8]) {
    let (id, body) = data.split_at(data.len().min(8));
    let mut bytes = [0u8; 8];
    bytes[..id.len()].copy_from_slice(id);
    let segment_id = i64::from_le_bytes(bytes);
    if let Ok(events) = crate::store::decode_segment(segment_id, crate::store::SEGMENT_FORMAT, body)
    {
        std::hint::black_box(events);
    }
}
