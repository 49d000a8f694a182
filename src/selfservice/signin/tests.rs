use super::*;

pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[test]
fn only_bitbucket_session_cookies_are_kept() {
    let h = headers(&[
        ("cookie", "theme=dark; BITBUCKETSESSIONID=abc"),
        (
            "cookie",
            "_atl_bitbucket_remember_login=r1; other=x; JSESSIONID=",
        ),
    ]);
    assert_eq!(
        session_cookies(&h).unwrap(),
        "BITBUCKETSESSIONID=abc; _atl_bitbucket_remember_login=r1"
    );
    assert!(session_cookies(&headers(&[("cookie", "theme=dark")])).is_none());
}

#[test]
fn passwords_and_bitbucket_tokens_are_told_apart() {
    let basic = |text: &str| {
        HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        ))
        .unwrap()
    };
    assert_eq!(foreign_via(&basic("alice:hunter2")), Via::Password);
    assert_eq!(foreign_via(&basic("alice:BBDC-xyz")), Via::BitbucketToken);
    assert_eq!(
        foreign_via(&HeaderValue::from_static("Bearer BBDC-xyz")),
        Via::BitbucketToken
    );
}
