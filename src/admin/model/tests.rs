use super::*;
use crate::admin::extract::parse_json;

#[test]
fn patch_tells_null_from_absent() {
    let p: PatchTokenRequest = parse_json(br#"{"expires_at": null, "rate_limit": null}"#).unwrap();
    let patch = p.into_patch().unwrap();
    assert_eq!(patch.expires_at, Some(None));
    assert_eq!(patch.rate_limit, Some(None));
    assert_eq!(patch.description, None);
    assert_eq!(patch.allowed_ips, None);
    let p: PatchTokenRequest = parse_json(br#"{}"#).unwrap();
    assert!(p.into_patch().unwrap().is_empty());
    let p: PatchTokenRequest = parse_json(br#"{"description": null}"#).unwrap();
    assert_eq!(p.into_patch().unwrap_err().field, "description");
    let p: PatchTokenRequest = parse_json(br#"{"allowed_ips": ["1.2.3.4", "x"]}"#).unwrap();
    assert_eq!(p.into_patch().unwrap_err().field, "allowed_ips[1]");
}

#[test]
fn create_defaults_to_read_only() {
    let c: CreateTokenRequest = parse_json(br#"{"user": "u", "description": "d"}"#).unwrap();
    let spec = c.into_spec().unwrap();
    assert_eq!(spec.scope, Scope::ReadOnly);
    assert!(spec.allowed_ips.is_empty() && spec.rate_limit.is_none() && spec.expires_at.is_none());
    let c: CreateTokenRequest =
        parse_json(br#"{"user": "u", "description": "d", "scope": "admin"}"#).unwrap();
    assert_eq!(c.into_spec().unwrap_err().field, "scope");
    let c: CreateTokenRequest =
        parse_json(br#"{"user": "u", "description": "d", "rate_limit": {"requests": 0, "period_seconds": 60}}"#).unwrap();
    assert_eq!(c.into_spec().unwrap_err().field, "rate_limit.requests");
}

#[test]
fn a_quota_takes_whole_numbers_written_either_way() {
    for body in [
        r#"{"user": "u", "description": "d", "rate_limit": {"requests": 313.0, "period_seconds": 6e1}}"#,
        r#"{"user": "u", "description": "d", "rate_limit": {"requests": 313, "period_seconds": 60}}"#,
    ] {
        let c: CreateTokenRequest = parse_json(body.as_bytes()).unwrap();
        assert_eq!(
            c.into_spec().unwrap().rate_limit.unwrap().to_string(),
            "313/1m"
        );
    }
    for bad in ["313.5", "-1", "1e20", "-0.5"] {
        let body = format!(
            r#"{{"user": "u", "description": "d", "rate_limit": {{"requests": {bad}, "period_seconds": 60}}}}"#
        );
        let e = parse_json::<CreateTokenRequest>(body.as_bytes()).unwrap_err();
        assert!(
            format!("{e:?}").contains("rate_limit.requests"),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn a_rate_limit_is_an_object() {
    let c: CreateTokenRequest = parse_json(
        br#"{"user": "u", "description": "d", "rate_limit": {"requests": 5, "period_seconds": 60}}"#,
    )
    .unwrap();
    assert!(c.into_spec().unwrap().rate_limit.is_some());
    for body in [
        r#"{"user": "u", "description": "d", "rate_limit": [5, 60]}"#,
        r#"{"user": "u", "description": "d", "rate_limit": 5}"#,
    ] {
        let e = parse_json::<CreateTokenRequest>(body.as_bytes()).unwrap_err();
        let shown = format!("{e:?}");
        assert!(
            shown.contains("invalid_field") && shown.contains("rate_limit: invalid type"),
            "{shown}"
        );
    }
    let e = parse_json::<PatchTokenRequest>(br#"{"rate_limit": [5, 60]}"#).unwrap_err();
    assert!(format!("{e:?}").contains("rate_limit: invalid type"));
    // Paths inside the object are still named.
    let e = parse_json::<CreateTokenRequest>(
        br#"{"user": "u", "description": "d", "rate_limit": {"requests": "5", "period_seconds": 60}}"#,
    )
    .unwrap_err();
    assert!(format!("{e:?}").contains("rate_limit.requests"));
    let e = parse_json::<CreateTokenRequest>(
        br#"{"user": "u", "description": "d", "rate_limit": {"requests": 5, "burst": 1}}"#,
    )
    .unwrap_err();
    assert!(format!("{e:?}").contains("burst"));
}
