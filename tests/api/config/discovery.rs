//! Which config file a command reads, and what it says about it: `--config`, else
//! `TOKENGATE_CONFIG`, else `config/tokengate.toml`, else `/etc/tokengate/tokengate.toml`, else
//! none, on the built-in defaults. `check-config` names the file; `serve` says at INFO when it
//! runs on defaults; a command that only uses the store never creates one.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::PATIENCE;

/// A credential key, for `credential set` to get as far as the store.
const KEY: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `tokengate ARGS` in `dir`, with `vars` as its only `TOKENGATE_*` variables.
fn command(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut tokengate = Command::new(env!("CARGO_BIN_EXE_tokengate"));
    tokengate.args(args).current_dir(dir).stdin(Stdio::null());
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TOKENGATE_")) {
        tokengate.env_remove(name);
    }
    tokengate.envs(vars.iter().copied());
    tokengate
}

fn run(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    command(dir, args, vars)
        .output()
        .expect("running tokengate")
}

/// Every file and directory under `dir`, relative.
fn contents(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn check_config_names_the_file_it_read() {
    let dir = tempfile::tempdir().unwrap();
    // None: the defaults, said so.
    let none = run(dir.path(), &["check-config"], &[]);
    assert_eq!(none.status.code(), Some(0), "{none:?}");
    let out = text(&none.stdout);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("# no config file") && first.contains("built-in defaults"),
        "{out}"
    );

    // config/tokengate.toml in the working directory.
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/tokengate.toml"),
        "node_id = \"FOUND1\"\n",
    )
    .unwrap();
    let found = run(dir.path(), &["check-config"], &[]);
    let out = text(&found.stdout);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("# config file ")
            && first.ends_with("config/tokengate.toml")
            && out.contains("node_id = \"FOUND1\""),
        "{out}"
    );

    // TOKENGATE_CONFIG wins over the file found; --config wins over both.
    let named = dir.path().join("named.toml");
    std::fs::write(&named, "node_id = \"NAMED1\"\n").unwrap();
    let named = named.display().to_string();
    let by_var = run(
        dir.path(),
        &["check-config"],
        &[("TOKENGATE_CONFIG", &named)],
    );
    let out = text(&by_var.stdout);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.contains(&named)
            && first.contains("TOKENGATE_CONFIG")
            && out.contains("node_id = \"NAMED1\""),
        "{out}"
    );
    assert!(
        !text(&by_var.stderr).contains("TOKENGATE_CONFIG"),
        "the variable naming the file is no unknown key: {by_var:?}"
    );
    let flag = dir.path().join("flag.toml");
    std::fs::write(&flag, "node_id = \"FLAG01\"\n").unwrap();
    let flag = flag.display().to_string();
    let by_flag = run(
        dir.path(),
        &["check-config", "--config", &flag],
        &[("TOKENGATE_CONFIG", &named)],
    );
    assert!(
        text(&by_flag.stdout).contains("node_id = \"FLAG01\""),
        "{by_flag:?}"
    );

    // A file named but missing is an error naming what named it.
    let missing = run(
        dir.path(),
        &["check-config"],
        &[("TOKENGATE_CONFIG", "/nonexistent/tokengate.toml")],
    );
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    let err = text(&missing.stderr);
    assert!(
        err.contains("TOKENGATE_CONFIG") && err.contains("/nonexistent/tokengate.toml"),
        "{err}"
    );
}

#[test]
fn store_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let key = [("TOKENGATE_UPSTREAM__CREDENTIAL_KEY", KEY)];
    for args in [
        &["token", "list"][..],
        &["token", "show", "abcdefghijkl"],
        &["token", "create", "--user", "a", "--description", "d"],
        &["credential", "set", "--user", "alice"],
    ] {
        let run = command(dir.path(), args, &key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                let _ = child.stdin.take().unwrap().write_all(b"BBDC-credential\n");
                child.wait_with_output()
            })
            .expect("running tokengate");
        let (out, err) = (text(&run.stdout), text(&run.stderr));
        assert_eq!(run.status.code(), Some(2), "{args:?}: {out}{err}");
        assert!(
            err.contains("no database file at data/tokengate.db")
                && err.contains("tokengate migrate")
                && err.contains("no config file"),
            "{args:?}: {err}"
        );
        assert!(
            !out.to_ascii_lowercase().contains("no tokens"),
            "{args:?}: {out}"
        );
        assert_eq!(
            contents(dir.path()),
            Vec::<String>::new(),
            "{args:?} created files"
        );
    }
    // `migrate` is the command that creates it.
    let migrated = run(dir.path(), &["migrate"], &[]);
    assert_eq!(migrated.status.code(), Some(0), "{migrated:?}");
    assert!(dir.path().join("data/tokengate.db").is_file());
    let listed = run(dir.path(), &["token", "list"], &[]);
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    assert_eq!(text(&listed.stdout), "no tokens\n");
}

#[test]
fn serve_on_the_defaults_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(
        dir.path(),
        &["serve"],
        &[
            ("TOKENGATE_PROXY__LISTEN", "127.0.0.1:0"),
            ("TOKENGATE_ADMIN__LISTEN", "127.0.0.1:0"),
        ],
    )
    .stdout(std::fs::File::create(dir.path().join("stdout.txt")).unwrap())
    .stderr(Stdio::null())
    .spawn()
    .expect("starting tokengate");
    let deadline = Instant::now() + PATIENCE;
    let line = loop {
        let out = std::fs::read_to_string(dir.path().join("stdout.txt")).unwrap_or_default();
        if let Some(line) = out.lines().find(|l| l.contains("no config file")) {
            break line.to_owned();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("serve exited with {status}: {out}");
        }
        assert!(
            Instant::now() < deadline,
            "no line about the config file: {out}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains(" INFO ") && line.contains("built-in defaults"),
        "{line}"
    );
}

#[test]
fn check_config_refuses_a_log_file_serve_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("a-file");
    std::fs::write(&not_a_dir, "").unwrap();
    for log_file in [not_a_dir.join("tokengate.log"), dir.path().to_path_buf()] {
        let config = dir.path().join("c.toml");
        std::fs::write(
            &config,
            format!("[log]\nfile = \"{}\"\n", log_file.display()),
        )
        .unwrap();
        let config = config.display().to_string();
        let checked = run(dir.path(), &["check-config", "--config", &config], &[]);
        let err = text(&checked.stderr);
        assert_eq!(
            checked.status.code(),
            Some(2),
            "{}: {checked:?}",
            log_file.display()
        );
        assert!(
            err.contains("log.file") && err.contains(&log_file.display().to_string()),
            "{err}"
        );
        assert_eq!(text(&checked.stdout), "");
    }
    // A file that can be created, in a directory that does not exist yet, is fine, and
    // checking it creates nothing.
    let later = dir.path().join("logs/later/tokengate.log");
    let checked = run(
        dir.path(),
        &["check-config"],
        &[("TOKENGATE_LOG__FILE", &later.display().to_string())],
    );
    assert_eq!(checked.status.code(), Some(0), "{checked:?}");
    assert!(!dir.path().join("logs").exists());
    assert!(
        !contents(dir.path())
            .iter()
            .any(|f| f.contains("tokengate-check")),
        "the probe was left behind"
    );
}

#[test]
fn a_single_underscore_before_a_key_is_warned_about_naming_the_variable_meant() {
    let dir = tempfile::tempdir().unwrap();
    let checked = run(
        dir.path(),
        &["check-config"],
        &[("TOKENGATE_AUTH_CACHE_TTL", "5s")],
    );
    assert_eq!(checked.status.code(), Some(0), "{checked:?}");
    let err = text(&checked.stderr);
    assert!(
        err.contains("warning: ignoring environment variable TOKENGATE_AUTH_CACHE_TTL")
            && err.contains("did you mean TOKENGATE_AUTH__CACHE_TTL?"),
        "{err}"
    );
    // The value is not taken: the default stands.
    assert!(
        text(&checked.stdout).contains("cache_ttl = \"60s\""),
        "{checked:?}"
    );
}
