use serde_json::json;

use super::*;

fn event(i: u16, user: Option<&str>, attributes: impl Into<Attributes>) -> AuditEvent {
    AuditEvent {
        time: DateTime::from_timestamp_millis(1_717_228_800_000 + i64::from(i) * 250).unwrap(),
        kind: if i.is_multiple_of(2) {
            AuditKind::AuthSucceeded
        } else {
            AuditKind::ScopeDenied
        },
        outcome: if i.is_multiple_of(2) {
            AuditOutcome::Allowed
        } else {
            AuditOutcome::Denied
        },
        user: user.map(Into::into),
        token_id: Some("abcdefghijkl".into()),
        client_ip: Some(if i.is_multiple_of(2) {
            "79.209.73.23".parse().unwrap()
        } else {
            "2001:db8::42".parse().unwrap()
        }),
        method: Some("GET".into()),
        path: Some(format!("/rest/api/1.0/projects/{}", i % 3).into()),
        request_id: Some(format!("@A6X2OXx532x{i}x0").into()),
        node_id: "A6X2OX".into(),
        actor: None,
        attributes: attributes.into(),
    }
}

fn indexed(events: &[AuditEvent]) -> Vec<(u16, &AuditEvent)> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| (u16::try_from(i).unwrap(), e))
        .collect()
}

#[test]
fn events_round_trip_with_ids_from_the_segment_and_their_index() {
    let events = vec![
        event(0, Some("alice"), Attributes::Pair("scope", "read-only")),
        event(1, Some("bob"), json!({ "scope": "read-only" })),
        event(2, None, json!({ "reason": "malformed" })),
        AuditEvent {
            user: Some("automation-user \\ \"ü😀\"".into()),
            token_id: None,
            client_ip: None,
            method: None,
            path: Some("/rest/ssh/1.0/keys?x=\"y\"\n\t\\u0041%00".into()),
            request_id: None,
            actor: Some("admin-api".to_owned()),
            attributes: json!({ "limit": { "requests": 5 }, "list": [1, "two", null, true] })
                .into(),
            ..event(3, None, json!({}))
        },
    ];
    let encoded = encode(&indexed(&events));
    assert_eq!(encoded.events, 4);
    assert_eq!(encoded.first_time, 1_717_228_800_000);
    assert_eq!(encoded.last_time, 1_717_228_800_750);
    assert_eq!(
        encoded.kinds,
        kind_bit(AuditKind::AuthSucceeded) | kind_bit(AuditKind::ScopeDenied)
    );
    let keys: Vec<_> = encoded.keys.iter().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "t:abcdefghijkl",
            "u:alice",
            "u:automation-user \\ \"ü😀\"",
            "u:bob"
        ]
    );
    let decoded = decode(7, FORMAT, &encoded.body).unwrap();
    let ids: Vec<_> = decoded.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        [
            7 * ID_STRIDE,
            7 * ID_STRIDE + 1,
            7 * ID_STRIDE + 2,
            7 * ID_STRIDE + 3
        ]
    );
    let decoded: Vec<_> = decoded.into_iter().map(|e| e.event).collect();
    assert_eq!(decoded, events);
}

#[test]
fn a_subset_keeps_its_indices() {
    let events: Vec<_> = (0..5).map(|i| event(i, Some("alice"), json!({}))).collect();
    let kept: Vec<_> = indexed(&events).into_iter().skip(3).collect();
    let decoded = decode(2, FORMAT, &encode(&kept).body).unwrap();
    assert_eq!(
        decoded.iter().map(|e| e.id).collect::<Vec<_>>(),
        [2 * ID_STRIDE + 3, 2 * ID_STRIDE + 4]
    );
    assert_eq!(decoded[0].event, events[3]);
}

#[test]
fn nul_is_stored_as_the_replacement_character() {
    let mut poisoned = event(0, Some("ev\0il"), json!({ "k\0": ["a\0b"] }));
    poisoned.path = Some("/rest/\0".into());
    let decoded = decode(1, FORMAT, &encode(&[(0, &poisoned)]).body).unwrap();
    let got = &decoded[0].event;
    assert_eq!(got.user.as_deref(), Some("ev\u{FFFD}il"));
    assert_eq!(got.path.as_deref(), Some("/rest/\u{FFFD}"));
    assert_eq!(got.attributes, json!({ "k\u{FFFD}": ["a\u{FFFD}b"] }));
}

#[test]
fn repeated_text_is_stored_once() {
    let one = encode(&[(0, &event(0, Some("alice"), json!({ "scope": "read-only" })))]);
    let events: Vec<_> = (0..1000)
        .map(|i| event(i * 2, Some("alice"), json!({ "scope": "read-only" })))
        .collect();
    let many = encode(&indexed(&events));
    let per_event = (many.body.len() - one.body.len()) / 999;
    // The request id (about 20 bytes) and a few bytes of numbers.
    assert!(per_event < 40, "{per_event} bytes per event");
}

#[test]
fn a_damaged_body_or_unknown_format_is_an_error_not_a_panic() {
    let encoded = encode(&[(0, &event(0, Some("alice"), json!({})))]);
    assert!(matches!(
        decode(1, FORMAT + 1, &encoded.body),
        Err(StoreError::Corrupt {
            column: "format",
            ..
        })
    ));
    for cut in [0, 1, encoded.body.len() / 2, encoded.body.len() - 1] {
        assert!(matches!(
            decode(1, FORMAT, &encoded.body[..cut]),
            Err(StoreError::Corrupt { .. })
        ));
    }
    let mut bad_text = encoded.body.clone();
    let last = bad_text.len() - 1;
    bad_text[last] = 0x7f; // the attributes' text number: past the end of the texts
    assert!(decode(1, FORMAT, &bad_text).is_err());
}

/// Events of every shape: both address families and none, texts repeated, changing and
/// absent, times out of order, attributes repeated and changing.
fn assorted() -> Vec<AuditEvent> {
    (0..300u16)
        .map(|i| {
            let mut e = event(
                i,
                [Some("alice"), Some("bob"), None, Some("ü\0")][usize::from(i % 7 % 4)],
                json!({ "n": i / 50 }),
            );
            e.time -= chrono::Duration::milliseconds(i64::from(i % 5) * 400);
            e.token_id = (i % 11 != 0).then(|| format!("tok{}", i / 30).into());
            e.client_ip = match i % 3 {
                0 => None,
                1 => Some("10.0.0.1".parse().unwrap()),
                _ => Some(format!("2001:db8::{i:x}").parse().unwrap()),
            };
            e.request_id =
                (i % 13 != 0).then(|| format!("@A6X2OXx{}x{i}x0", u32::from(i) * 997).into());
            e.actor = (i % 17 == 0).then(|| "admin-api".to_owned());
            e
        })
        .collect()
}

#[test]
fn the_body_is_exactly_what_postcard_writes_for_it() {
    let events = assorted();
    let encoded = encode(&indexed(&events));
    let body: Body<String> = postcard::from_bytes(&encoded.body).unwrap();
    assert_eq!(body.events.len(), events.len());
    assert_eq!(postcard::to_stdvec(&body).unwrap(), encoded.body);
}

#[test]
fn keys_are_the_users_and_token_ids_held() {
    let events = assorted();
    let encoded = encode(&indexed(&events));
    assert_eq!(encoded.keys, keys_of(&events));
    assert!(encoded.keys.contains("u:ü\u{FFFD}"));
    let decoded: Vec<_> = decode(3, FORMAT, &encoded.body)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(decoded.len(), events.len());
    assert_eq!(decoded[1], events[1]);
    assert_eq!(
        (encoded.first_time, encoded.last_time),
        (
            events
                .iter()
                .map(|e| e.time.timestamp_millis())
                .min()
                .unwrap(),
            events
                .iter()
                .map(|e| e.time.timestamp_millis())
                .max()
                .unwrap()
        )
    );
}
