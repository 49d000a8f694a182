//! The JSON layout and the file writer.

use super::*;

#[test]
fn json_lines_carry_the_same_fields() {
    let settings = LogSettings {
        format: LogFormat::Json,
        ..LogSettings::default()
    };
    let out = rate_limited_line(&settings);
    assert_eq!(out.matches('\n').count(), 1);
    let line: serde_json::Value = serde_json::from_str(&out).unwrap();
    let at = local((2022, 2, 8), 13, 42, 51, 24);
    assert_eq!(
        line["time"],
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
    );
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["thread"], "http-nio-8080-exec-8");
    assert_eq!(line["request_id"], "@MKNCWMx822x1697x0");
    assert_eq!(line["session_id"], "kpe4a4");
    assert_eq!(line["addresses"], "79.209.73.23,100.100.0.45");
    assert_eq!(line["request_line"], SAMPLE_GET);
    assert_eq!(line["logger"], DEFAULT_RATE_LIMIT_LOGGER);
    assert_eq!(
        line["message"],
        "User admin has been rate limited. The API token allows executing 5 requests within 5 minutes."
    );

    let out = capture(&settings, at, Some("t"), None, || {
        tracing::warn!(target: "tokengate::proxy", status = 502u16, retry = true, level = "x", peer = %"1.2.3.4", "bad \"gateway\"\n");
    });
    let line: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(line["logger"], "t.proxy");
    assert_eq!(line["message"], "bad \"gateway\"\n");
    assert_eq!(line["status"], 502);
    assert_eq!(line["retry"], true);
    assert_eq!(line["peer"], "1.2.3.4");
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["field.level"], "x");
    for absent in ["request_id", "session_id", "addresses", "request_line"] {
        assert!(line.get(absent).is_none(), "{absent} in {line}");
    }
}

#[test]
fn the_file_writer_appends_creates_directories_and_flushes_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/nested/tokengate.log");
    drop(writer::open(Some(&path)).expect("parent directories are created"));
    std::fs::write(&path, "earlier line\n").unwrap();

    let settings = LogSettings {
        file: Some(path.clone()),
        ..LogSettings::default()
    };
    let (writer, guard) = writer::open(Some(&path)).unwrap();
    let at = local((2021, 1, 7), 8, 0, 0, 0);
    run(
        &settings,
        at,
        Some("http-nio-8080-exec-1"),
        None,
        writer,
        || {
            tracing::info!(target: AUTH_TARGET, "written");
        },
    );
    assert_eq!(guard.dropped_lines(), 0);
    drop(guard);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "earlier line\n2021-01-07 08:00:00,000 INFO [http-nio-8080-exec-1] d.r.a.p.auth.ApiTokenAuthSharedBase written\n"
    );
}

#[test]
fn an_unwritable_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let err = writer::open(Some(&blocker.join("tokengate.log")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("log.file") && err.contains("tokengate.log"),
        "{err}"
    );
}
