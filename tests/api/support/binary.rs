//! Running the `tokengate` binary: its config file, its environment (a fixed time zone, none
//! of the test's own `TOKENGATE_*` variables), its captured output, and its memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use chrono::FixedOffset;

use super::PATIENCE;

/// The time zone every gateway runs in: UTC+05:30 as a POSIX TZ string, so a line written in
/// UTC instead of local time shows.
pub(crate) const TEST_TZ: &str = "TGT-05:30";

/// [`TEST_TZ`] as an offset, to compute expected local times.
pub(crate) fn test_offset() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("a valid offset")
}

/// The node id every gateway is configured with.
pub(crate) const NODE_ID: &str = "TGTEST";

/// Writes `config.toml` in `dir`: both listeners on port 0, the log file and spill file in
/// `dir`, then the overrides.
pub(crate) fn write_config(
    dir: &Path,
    database_url: &str,
    upstream_url: &str,
    overrides: &[(String, toml::Value)],
) -> PathBuf {
    let mut doc: toml::Table = format!(
        r#"
        node_id = "{NODE_ID}"
        [proxy]
        listen = "127.0.0.1:0"
        worker_threads = 2
        [upstream]
        url = "{upstream_url}"
        [database]
        url = "{database_url}"
        max_connections = 4
        [admin]
        listen = "127.0.0.1:0"
        [audit]
        spill_file = "{spill}"
        [log]
        file = "{log}"
        "#,
        spill = dir.join("audit-spill.ndjson").display(),
        log = dir.join("tokengate.log").display(),
    )
    .parse()
    .expect("the base config is TOML");
    for (key, value) in overrides {
        let (table, key) = match key.split_once('.') {
            Some((section, key)) => {
                let section = doc
                    .entry(section)
                    .or_insert_with(|| toml::Table::new().into());
                (section.as_table_mut().expect("a section"), key)
            }
            None => (&mut doc, key.as_str()),
        };
        table.insert(key.to_owned(), value.clone());
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, doc.to_string()).expect("writing the config");
    path
}

/// The `tokengate` binary the tests run: `TG_TEST_BIN` when set (a copy taken right after the
/// build, where several worktrees share one target directory and its `debug/tokengate`), else
/// the one cargo built with the tests.
pub(crate) fn binary() -> PathBuf {
    std::env::var_os("TG_TEST_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_tokengate")),
        PathBuf::from,
    )
}

/// Starts the binary in `dir` with `args`, stdout and stderr captured in files there, in
/// [`TEST_TZ`], without any `TOKENGATE_*` variable of the test's own environment but with the
/// variables of `env`.
pub(crate) fn start(dir: &Path, args: &[&str], env: &[(String, String)]) -> Child {
    let mut command = Command::new(binary());
    command
        .args(args)
        .current_dir(dir)
        .env("TZ", TEST_TZ)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout.txt")).expect("creating stdout.txt"))
        .stderr(std::fs::File::create(dir.join("stderr.txt")).expect("creating stderr.txt"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TOKENGATE_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(name, value)| (name, value)));
    command.spawn().expect("starting the tokengate binary")
}

/// What a run of the binary that exits by itself left behind.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs the binary with a config file holding `config_text` and `args` (such as
/// `check-config`), waiting for it to exit.
pub(crate) fn run_binary(config_text: &str, args: &[&str]) -> Finished {
    run_binary_with_env(config_text, args, &[])
}

/// As [`run_binary`], with the variables of `env` set.
pub(crate) fn run_binary_with_env(
    config_text: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Finished {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text).expect("writing the config");
    let mut all: Vec<&str> = args.to_vec();
    let config = config.display().to_string();
    all.extend(["--config", &config]);
    let mut child = start(dir.path(), &all, &env);
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the binary") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("tokengate {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |name| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    Finished {
        status,
        stdout: read("stdout.txt"),
        stderr: read("stderr.txt"),
    }
}

/// `VmRSS` of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
