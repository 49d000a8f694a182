use proptest::prelude::*;
use regex::Regex;

use super::*;
use crate::lifecycle::{validate_credential, validate_description, validate_user};
use crate::token::TokenId;

fn doc() -> Value {
    crate::admin::openapi_document()
}

#[test]
fn request_bodies_state_what_the_checks_refuse() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    let create = &schemas["CreateTokenRequest"]["properties"];
    assert_eq!(create["user"]["maxLength"], MAX_TEXT_CHARS);
    assert_eq!(create["user"]["minLength"], 1);
    assert_eq!(create["user"]["pattern"], USER_PATTERN);
    assert_eq!(create["description"]["pattern"], DESCRIPTION_PATTERN);
    assert_eq!(create["allowed_ips"]["maxItems"], MAX_ALLOWED_IPS);
    assert_eq!(create["allowed_ips"]["items"]["format"], IP_NETWORK_FORMAT);
    assert_eq!(create["expires_at"]["format"], "date-time");
    let patch = &schemas["PatchTokenRequest"];
    assert_eq!(patch["minProperties"], 1);
    assert_eq!(patch["properties"]["allowed_ips"]["type"], "array");
    let quota = &schemas["RateLimitBody"]["properties"];
    assert_eq!(quota["requests"]["maximum"], u64::from(u32::MAX));
    assert_eq!(quota["period_seconds"]["maximum"], 366 * 86_400);
    let credential = &schemas["SetCredentialRequest"]["properties"]["credential"];
    assert_eq!(credential["maxLength"], MAX_CREDENTIAL_BYTES);
    assert_eq!(credential["pattern"], CREDENTIAL_PATTERN);
}

#[test]
fn every_status_and_content_type_is_stated() {
    let doc = doc();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/admin/v1/tokens", "post"),
        ("/admin/v1/tokens/{id}", "patch"),
        ("/admin/v1/users/{user}/credential", "put"),
    ] {
        let responses = &paths[path][method]["responses"];
        for status in ["400", "401", "413", "415", "422", "503"] {
            assert!(responses[status].is_object(), "{method} {path} {status}");
        }
    }
    let exports = &paths["/admin/v1/audit"]["get"]["responses"]["200"]["content"];
    for media_type in ["application/json", "application/x-ndjson", "text/csv"] {
        assert!(exports[media_type].is_object(), "{media_type}");
    }
    // Each operation has an id of its own.
    let mut ids = Vec::new();
    for item in paths.as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            ids.push(operation["operationId"].as_str().unwrap().to_owned());
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "{ids:?}");
}

#[test]
fn query_parameters_state_their_bounds() {
    let doc = doc();
    let parameter = |path: &str, name: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    assert_eq!(parameter("/admin/v1/tokens", "limit")["maximum"], 500);
    assert_eq!(
        parameter("/admin/v1/tokens", "cursor")["pattern"],
        TOKEN_CURSOR_PATTERN
    );
    assert_eq!(
        parameter("/admin/v1/tokens", "user")["pattern"],
        USER_PATTERN
    );
    let limit = parameter("/admin/v1/audit", "limit");
    assert_eq!(limit["anyOf"][0]["maximum"], 1000);
    // An empty value is accepted as none.
    assert_eq!(limit["anyOf"][1]["maxLength"], 0);
}

/// Characters each rule is about, and some it is not.
fn text() -> impl Strategy<Value = String> {
    let interesting = prop::sample::select(vec![
        'a', 'Z', '0', '-', '@', '.', '/', ' ', '\t', '\n', '\r', '\u{0}', '\u{1f}', '\u{7f}',
        '\u{85}', '\u{9f}', '\u{a0}', '\u{ad}', '\u{1680}', '\u{180e}', '\u{2000}', '\u{200a}',
        '\u{200b}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}', '\u{feff}', 'é',
        '😀', '~', '!',
    ]);
    prop::collection::vec(prop_oneof![interesting, any::<char>()], 0..8)
        .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #[test]
    fn text_patterns_accept_exactly_what_the_checks_accept(s in text()) {
        let user = Regex::new(USER_PATTERN).unwrap();
        prop_assert_eq!(user.is_match(&s), validate_user(&s).is_ok(), "user {:?}", s);
        let description = Regex::new(DESCRIPTION_PATTERN).unwrap();
        prop_assert_eq!(
            description.is_match(&s),
            validate_description(&s).is_ok(),
            "description {:?}", s
        );
        let credential = Regex::new(CREDENTIAL_PATTERN).unwrap();
        prop_assert_eq!(
            credential.is_match(&s),
            validate_credential(&s).is_ok(),
            "credential {:?}", s
        );
    }

    #[test]
    fn id_and_cursor_patterns_accept_exactly_what_is_read(s in "[0-9a-zA-Z|+-]{0,20}") {
        let id = Regex::new(ID_PATTERN).unwrap();
        prop_assert_eq!(id.is_match(&s), TokenId::parse(&s).is_some());
    }

    #[test]
    fn every_cursor_of_the_documented_shape_is_read(
        token in "[0-9]{1,15}-[0-9a-z]{12}",
        audit in "[0-9]{1,15}-[1-9][0-9]{0,17}",
    ) {
        prop_assert!(Regex::new(TOKEN_CURSOR_PATTERN).unwrap().is_match(&token));
        prop_assert!(Regex::new(AUDIT_CURSOR_PATTERN).unwrap().is_match(&audit));
        prop_assert!(crate::admin::cursor::decode_token(&token).is_ok(), "{}", token);
        prop_assert!(crate::admin::cursor::decode_audit(&audit).is_ok(), "{}", audit);
    }

    #[test]
    fn a_cursor_of_another_shape_is_refused(s in "[0-9a-z|+-]{0,40}") {
        prop_assert_eq!(
            Regex::new(TOKEN_CURSOR_PATTERN).unwrap().is_match(&s),
            crate::admin::cursor::decode_token(&s).is_ok(),
            "{}", s
        );
        prop_assert_eq!(
            Regex::new(AUDIT_CURSOR_PATTERN).unwrap().is_match(&s),
            crate::admin::cursor::decode_audit(&s).is_ok(),
            "{}", s
        );
    }
}
