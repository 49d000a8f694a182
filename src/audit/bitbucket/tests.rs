use chrono::DateTime;
use serde_json::json;

use super::*;
use crate::audit::{Attributes, AuditOutcome};

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn line(event: &AuditEvent) -> String {
    serde_json::to_string(&Entry::of(event, "http://bitbucket.example.com:7990/")).unwrap()
}

#[test]
fn an_authentication_event_in_bitbucket_shape() {
    let event = AuditEvent {
        time: at("2021-01-07T12:06:02.366123456Z"),
        kind: AuditKind::ScopeDenied,
        outcome: AuditOutcome::Denied,
        user: Some("automation-user".into()),
        token_id: Some("abcdefghijkl".into()),
        client_ip: Some("79.209.73.23".parse().unwrap()),
        method: Some("POST".into()),
        path: Some("/rest/ssh/1.0/keys".into()),
        request_id: Some("@16JTB8Nx726x114x0".into()),
        node_id: "16JTB8N".into(),
        actor: None,
        attributes: Attributes::Pair("scope", "read-only"),
    };
    // Keys in this order, as Bitbucket writes them.
    let expected = concat!(
        r#"{"affectedObjects":[{"id":"abcdefghijkl","name":"abcdefghijkl","type":"API_TOKEN"}],"#,
        r#""author":{"name":"automation-user","type":"user"},"#,
        r#""auditType":{"action":"API token scope denied","actionI18nKey":"tokengate.audit.action.scope_denied","#,
        r#""area":"SECURITY","category":"Authentication","categoryI18nKey":"tokengate.audit.category.authentication","level":"FULL"},"#,
        r#""changedValues":[],"#,
        r#""extraAttributes":["#,
        r#"{"name":"outcome","value":"denied","nameI18nKey":"tokengate.audit.attribute.outcome"},"#,
        r#"{"name":"request_method","value":"POST","nameI18nKey":"tokengate.audit.attribute.request_method"},"#,
        r#"{"name":"request_path","value":"/rest/ssh/1.0/keys","nameI18nKey":"tokengate.audit.attribute.request_path"},"#,
        r#"{"name":"request_id","value":"@16JTB8Nx726x114x0","nameI18nKey":"tokengate.audit.attribute.request_id"},"#,
        r#"{"name":"scope","value":"read-only","nameI18nKey":"tokengate.audit.attribute.scope"}],"#,
        r#""method":"Rest API","node":"16JTB8N","source":"79.209.73.23","system":"http://bitbucket.example.com:7990/","#,
        r#""timestamp":{"epochSecond":1610021162,"nano":366123456},"version":"1.0"}"#,
    );
    assert_eq!(line(&event), expected);
}

#[test]
fn a_lifecycle_change_in_bitbucket_shape() {
    let event = AuditEvent {
        time: at("2024-03-01T12:00:00Z"),
        kind: AuditKind::TokenChanged,
        outcome: AuditOutcome::Allowed,
        user: Some("alice".into()),
        token_id: Some("abcdefghijkl".into()),
        client_ip: None,
        method: None,
        path: None,
        request_id: None,
        node_id: "A6X2OX".into(),
        actor: Some("cli".into()),
        attributes: json!({
            "description": { "old": "old", "new": "new \"quoted\"" },
            "rate_limit": { "old": null, "new": "5/5m" },
            "count": 2,
        })
        .into(),
    };
    let value: serde_json::Value = serde_json::from_str(&line(&event)).unwrap();
    assert_eq!(
        value,
        json!({
            "affectedObjects": [
                { "id": "alice", "name": "alice", "type": "USER" },
                { "id": "abcdefghijkl", "name": "abcdefghijkl", "type": "API_TOKEN" },
            ],
            "author": { "name": "cli", "type": "system" },
            "auditType": {
                "action": "API token changed",
                "actionI18nKey": "tokengate.audit.action.token_changed",
                "area": "USER_MANAGEMENT",
                "category": "API tokens",
                "categoryI18nKey": "tokengate.audit.category.apitokens",
                "level": "BASE",
            },
            "changedValues": [
                { "from": "old", "to": "new \"quoted\"", "key": "description" },
                { "from": "", "to": "5/5m", "key": "rate_limit" },
            ],
            "extraAttributes": [
                { "name": "outcome", "value": "allowed", "nameI18nKey": "tokengate.audit.attribute.outcome" },
                { "name": "count", "value": "2", "nameI18nKey": "tokengate.audit.attribute.count" },
            ],
            "method": "System",
            "node": "A6X2OX",
            "system": "http://bitbucket.example.com:7990/",
            "timestamp": { "epochSecond": 1_709_294_400, "nano": 0 },
            "version": "1.0",
        })
    );
}

#[test]
fn an_anonymous_failure_has_a_user_author_named_anonymous() {
    let event = AuditEvent {
        user: None,
        token_id: None,
        kind: AuditKind::AuthFailed,
        ..crate::audit::test_store::event(0)
    };
    let value: serde_json::Value = serde_json::from_str(&line(&event)).unwrap();
    assert_eq!(
        value["author"],
        json!({ "name": "anonymous", "type": "user" })
    );
    assert_eq!(value["affectedObjects"], json!([]));
}

#[tokio::test]
async fn the_file_gets_one_line_per_event_appended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log/audit/tokengate-audit.log");
    let events: Vec<_> = (0..3).map(crate::audit::test_store::event).collect();
    let mut file = AuditFile::open(&path).await.unwrap();
    file.append(&events[..2], "sys").await.unwrap();
    drop(file);
    AuditFile::open(&path)
        .await
        .unwrap()
        .append(&events[2..], "sys")
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for (line, event) in lines.iter().zip(&events) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            value["extraAttributes"][2]["value"],
            json!(event.path.clone().unwrap())
        );
    }
}

#[tokio::test]
async fn a_new_file_is_readable_by_its_owner_only_and_an_existing_one_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit/tokengate-audit.log");
    let event = crate::audit::test_store::event(1);
    append_to_audit_file(&path, std::slice::from_ref(&event), "sys")
        .await
        .unwrap();
    assert_eq!(mode(&path), 0o600);

    // Opened up for a SIEM agent by its operator: left so.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    append_to_audit_file(&path, &[event], "sys").await.unwrap();
    assert_eq!(mode(&path), 0o640);
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
}
