//! The request context in async code: which lines carry the request fields, and which don't.

use super::*;

/// A nested future that logs after yielding, as the verifier or the forwarder do.
async fn nested_warning() {
    tokio::task::yield_now().await;
    tracing::warn!(target: "tokengate::proxy", error = "timed out", "forwarding failed");
}

#[test]
fn every_line_inside_a_request_future_carries_its_fields_and_no_line_outside_does() {
    let settings = LogSettings {
        loggers: [("tokengate::proxy".to_owned(), "debug".to_owned())].into(),
        ..LogSettings::default()
    };
    let at = local((2021, 1, 7), 8, 52, 38, 540);
    let request = Request {
        session: Some("kpe4a4"),
        ..sample_request("@A6X2OXx532x2669x0")
    };
    let out = capture(&settings, at, Some("worker-1"), None, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let handled = in_request(request.context(), async {
                tracing::debug!(target: "tokengate::proxy", "deciding");
                nested_warning().await;
                // Work spawned onto another task is not the request's.
                tokio::spawn(async { tracing::info!(target: "tokengate::usage", "spawned") })
                    .await
                    .unwrap();
                "answer"
            });
            assert_eq!(handled.await, "answer");
            tracing::info!(target: "tokengate::proxy", "after the request");
        });
    });
    let inside = "2021-01-07 08:52:38,540 {} [worker-1] @A6X2OXx532x2669x0 kpe4a4 79.209.73.23,100.120.0.11 \"GET /rest/ssh/1.0/keys HTTP/1.1\" t.proxy ";
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{}deciding", inside.replace("{}", "DEBUG")),
            format!(
                "{}forwarding failed error=\"timed out\"",
                inside.replace("{}", "WARN")
            ),
            "2021-01-07 08:52:38,540 INFO [worker-1] t.usage spawned".to_owned(),
            "2021-01-07 08:52:38,540 INFO [worker-1] t.proxy after the request".to_owned(),
        ]
    );
}

#[test]
fn json_lines_inside_a_request_future_carry_its_fields() {
    let settings = LogSettings {
        format: LogFormat::Json,
        ..LogSettings::default()
    };
    let at = local((2021, 1, 7), 8, 52, 38, 540);
    let request = sample_request("@A6X2OXx532x2669x0");
    let out = capture(&settings, at, Some("worker-1"), None, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(in_request(request.context(), nested_warning()));
    });
    let line: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(line["request_id"], "@A6X2OXx532x2669x0");
    assert_eq!(line["addresses"], SAMPLE_ADDRESSES);
    assert_eq!(line["request_line"], SAMPLE_GET);
    assert_eq!(line["message"], "forwarding failed");
    assert!(line.get("session_id").is_none(), "{line}");
}
