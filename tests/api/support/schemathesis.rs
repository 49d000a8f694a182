//! Running Schemathesis against an OpenAPI document a running gateway serves: every check,
//! positive and negative data, in all four phases (examples, coverage, fuzzing and stateful
//! sequences of calls). Settings and hooks are in `tests/schemathesis/`.
//!
//! `scripts/test.sh` makes the Python environment (`scripts/schemathesis-venv.sh`) and names its
//! `st` in `TG_TEST_SCHEMATHESIS`; without it a test says so and skips.
//! `TG_TEST_SCHEMATHESIS_SEED` replays a run's seed.

use std::path::{Path, PathBuf};

/// Examples per operation and phase: enough to exercise every constraint, few enough for
/// the suite.
const MAX_EXAMPLES: &str = "60";

/// Schemathesis's `st`, or `None` after saying why there is none.
pub(crate) fn schemathesis() -> Option<PathBuf> {
    let st = std::env::var_os("TG_TEST_SCHEMATHESIS").map(PathBuf::from);
    if st.is_none() {
        eprintln!(
            "SKIPPED: TG_TEST_SCHEMATHESIS is not set, so there is no Schemathesis to run: run \
             the suite with scripts/test.sh, which makes its Python environment \
             (scripts/schemathesis-venv.sh)"
        );
    }
    st
}

/// Runs `st` against the document at `document_url`, every request carrying `authorization`,
/// and asserts it found nothing and tested every one of the document's operations.
pub(crate) async fn finds_nothing(
    st: &Path,
    document_url: &str,
    authorization: &str,
    document: &serde_json::Value,
) {
    let settings = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    // Schemathesis writes its own files where it runs: a directory of the test's.
    let work = tempfile::tempdir().expect("a temp dir");
    let seed = std::env::var("TG_TEST_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".to_owned());
    let output = tokio::process::Command::new(st)
        .current_dir(work.path())
        .env("PYTHONPATH", &settings)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg("--config-file")
        .arg(settings.join("schemathesis.toml"))
        .args([
            "--no-color",
            "run",
            document_url,
            "--header",
            &format!("Authorization: {authorization}"),
            "--mode",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            &seed,
            "--generation-database",
            "none",
            // One worker: Python 3.11's `ast.parse`, which Hypothesis calls to describe a
            // filter, keeps its recursion count in shared state, and two threads parsing at once
            // fail with "AST constructor recursion depth mismatch" (a fault of the tool's
            // runtime, not of the API under test).
            "--workers",
            "1",
        ])
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", st.display()));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "Schemathesis found failures (seed {seed}):\n{report}"
    );
    let operations = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, serde_json::Map::len))
        .sum::<usize>();
    assert!(
        report.contains(&format!("Tested: {operations}")),
        "not every one of the {operations} operations was tested:\n{report}"
    );
    assert!(report.contains("No issues found"), "{report}");
}
