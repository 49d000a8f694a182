//! What `check-config` and `serve` make of a config at start, as an operator meets it: how a
//! config error reads (exit 2, the key named, each cause once).

use crate::support::app::run_binary;

#[test]
fn an_unopenable_log_file_exits_2_naming_the_key_and_its_cause_once() {
    let not_a_dir = tempfile::NamedTempFile::new().expect("a temp file");
    let log_file = not_a_dir.path().join("tokengate.log");
    let config = format!("[log]\nfile = \"{}\"\n", log_file.display());
    let run = run_binary(&config, &["serve"]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(run.stderr.contains("log.file"), "{run:?}");
    assert_eq!(run.stderr.matches("(os error").count(), 1, "{run:?}");
}
