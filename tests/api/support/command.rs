//! One run of a `tokengate` command (not `serve`): the binary with its arguments and stdin, in
//! a directory, outside the test's own `TOKENGATE_*` variables, and what it left.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// What one run of the binary left.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Asserts success; its output.
    #[track_caller]
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:?}");
        &self.stdout
    }

    /// Asserts success; its output read as JSON.
    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts a failure with `code` whose message mentions `text`.
    #[track_caller]
    pub(crate) fn fails(&self, code: i32, text: &str) {
        assert_eq!(self.code, Some(code), "{self:?}");
        assert!(
            self.stderr.contains(text),
            "stderr does not mention {text}: {self:?}"
        );
    }
}

/// Runs `tokengate ARGS` in `dir` with `stdin`.
pub(crate) fn run_tokengate(dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut command = Command::new(super::app::binary());
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TOKENGATE_")) {
        command.env_remove(name);
    }
    let mut child = command.spawn().expect("starting tokengate");
    // A command that exits before reading (a refused argument) closes the pipe early.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().expect("running tokengate");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
