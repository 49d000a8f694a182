//! What `check-config` and `serve` make of a config at start, as an operator meets it:
//! `TOKENGATE_*` variables that Kubernetes sets or that look like numbers, duration maxima, and
//! how a config error reads (exit 2, the key or variable named, each cause once, no secret).

use crate::support::app::{Backend, Options, run_binary_with_env, spawn_app};

/// The service links Kubernetes injects into every pod of a namespace holding a Service named
/// `tokengate`.
const SERVICE_LINKS: [(&str, &str); 4] = [
    ("TOKENGATE_SERVICE_HOST", "10.96.0.12"),
    ("TOKENGATE_SERVICE_PORT", "8080"),
    ("TOKENGATE_PORT", "tcp://10.96.0.12:8080"),
    ("TOKENGATE_PORT_8080_TCP_ADDR", "10.96.0.12"),
];

#[test]
fn kubernetes_service_links_are_ignored_with_one_warning_each() {
    let run = run_binary_with_env("", &["check-config"], &SERVICE_LINKS);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert!(run.stdout.contains("[proxy]"), "{run:?}");
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(warnings.len(), SERVICE_LINKS.len(), "{run:?}");
    for (var, _) in SERVICE_LINKS {
        let about = format!("variable {var}:");
        let naming: Vec<&&str> = warnings.iter().filter(|l| l.contains(&about)).collect();
        assert_eq!(naming.len(), 1, "{var}: {run:?}");
        assert!(
            naming[0].starts_with("tokengate: warning: ignoring"),
            "{run:?}"
        );
    }
}

#[tokio::test]
async fn serve_starts_despite_service_links_and_logs_one_warning_each() {
    let mut options = Options::new(Backend::Sqlite);
    for (var, value) in SERVICE_LINKS {
        options = options.env(var, value);
    }
    let app = spawn_app(options).await;
    for (var, _) in SERVICE_LINKS {
        let about = format!("variable {var}:");
        let line = app
            .wait_for_line(&format!("the warning about {var}"), |l| {
                l.message.contains(&about)
            })
            .await;
        assert_eq!(line.level, "WARN", "{line:?}");
    }
    let lines = app.log_lines();
    for (var, _) in SERVICE_LINKS {
        let about = format!("variable {var}:");
        let count = lines.iter().filter(|l| l.contains(&about)).count();
        assert_eq!(count, 1, "{var}: {lines:#?}");
    }
    app.finish().await;
}

#[test]
fn values_of_text_keys_stay_text_even_when_they_look_like_numbers() {
    let secret = "1234567890123456789";
    let run = run_binary_with_env(
        "",
        &["check-config"],
        &[
            ("TOKENGATE_NODE_ID", "123456"),
            ("TOKENGATE_ADMIN__TOKEN", secret),
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert!(run.stdout.contains("node_id = \"123456\""), "{run:?}");
    assert!(run.stdout.contains("token = \"[redacted]\""), "{run:?}");
    assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
}

#[test]
fn errors_from_the_environment_name_the_variable_and_never_a_secret() {
    // (variable, value, text the message must hold, text it must not)
    let cases = [
        (
            "TOKENGATE_PROXY__LISTN",
            "0.0.0.0:1",
            "no key listn",
            "0.0.0.0:1",
        ),
        (
            "TOKENGATE_PROXY",
            "x",
            "names the section [proxy]",
            "config file",
        ),
        (
            "TOKENGATE_PROXY__MAX_HEADER_BYTES",
            "-5",
            "proxy.max_header_bytes",
            "config file",
        ),
        (
            "TOKENGATE_AUTH__CACHE_TTL",
            "soon",
            "auth.cache_ttl",
            "config file",
        ),
        ("TOKENGATE_NODE_ID", "A6X-2OX", "node_id", "config file"),
        (
            "TOKENGATE_ADMIN__TOKEN",
            "987654321",
            "admin.token",
            "987654321",
        ),
        (
            "TOKENGATE_DATABASE__URL",
            "mysql://root:4242424242@db/x",
            "database.url",
            "4242424242",
        ),
    ];
    for (var, value, says, hides) in cases {
        for command in ["check-config", "serve"] {
            let run = run_binary_with_env("", &[command], &[(var, value)]);
            let case = format!("{command} with {var}={value}: {run:?}");
            assert_eq!(run.status.code(), Some(2), "{case}");
            assert!(
                run.stderr.contains(&format!("environment variable {var}:"))
                    && run.stderr.contains(says),
                "{case}"
            );
            assert!(
                !run.stderr.contains(hides) && !run.stdout.contains(hides),
                "shows {hides}: {case}"
            );
        }
    }
}

#[test]
fn durations_beyond_a_day_exit_2_naming_the_key() {
    let keys = [
        ("proxy", "header_read_timeout"),
        ("proxy", "shutdown_grace"),
        ("upstream", "connect_timeout"),
        ("upstream", "response_timeout"),
        ("upstream", "pool_idle_timeout"),
        ("auth", "cache_ttl"),
    ];
    for (section, key) in keys {
        let accepted = run_binary_with_env(
            &format!("[{section}]\n{key} = \"1d\"\n"),
            &["check-config"],
            &[],
        );
        assert_eq!(accepted.status.code(), Some(0), "{key}: {accepted:?}");
        let var = format!("TOKENGATE_{section}__{key}").to_ascii_uppercase();
        for value in ["25h", "400000d", "110000000000000d"] {
            let file = format!("[{section}]\n{key} = \"{value}\"\n");
            for command in ["check-config", "serve"] {
                let runs = [
                    run_binary_with_env(&file, &[command], &[]),
                    run_binary_with_env("", &[command], &[(&var, value)]),
                ];
                for run in runs {
                    let case = format!("{command} with {key} = {value}: {run:?}");
                    assert_eq!(run.status.code(), Some(2), "{case}");
                    assert!(
                        run.stderr.contains(&format!("{section}.{key}"))
                            && run.stderr.contains("at most 1d"),
                        "{case}"
                    );
                    assert!(!run.stderr.contains("panicked"), "{case}");
                    assert_eq!(run.stdout, "", "{case}");
                }
            }
        }
    }
}

#[test]
fn an_unopenable_log_file_exits_2_naming_the_key_and_its_cause_once() {
    let not_a_dir = tempfile::NamedTempFile::new().expect("a temp file");
    let log_file = not_a_dir.path().join("tokengate.log");
    let config = format!("[log]\nfile = \"{}\"\n", log_file.display());
    let run = run_binary_with_env(&config, &["serve"], &[]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(run.stderr.contains("log.file"), "{run:?}");
    assert_eq!(run.stderr.matches("(os error").count(), 1, "{run:?}");
}

#[test]
fn a_rate_limit_period_beyond_its_maximum_states_the_bounds() {
    let run = run_binary_with_env(
        "[rate_limit]\ndefault = \"5/400d\"\n",
        &["check-config"],
        &[],
    );
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.contains("rate_limit.default") && run.stderr.contains("from 1s to 366d"),
        "{run:?}"
    );
}
