//! Every file of the fuzz targets' corpora (`fuzz/corpus/TARGET`), run through its target's
//! function on the stable toolchain: the seeds, and every crash input added there once fixed,
//! so a crash found by `scripts/fuzz.sh` stays fixed.

use std::path::Path;

/// A fuzz target's function.
type Target = fn(&[u8]);

/// Each fuzz target and the function it runs.
const TARGETS: [(&str, Target); 5] = [
    ("route", tokengate::fuzzing::route),
    ("credential", tokengate::fuzzing::credential),
    ("token", tokengate::fuzzing::token),
    ("config", tokengate::fuzzing::config),
    ("segment", tokengate::fuzzing::segment),
];

#[test]
fn every_corpus_file_runs_through_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut listed: Vec<String> = std::fs::read_dir(&corpus)
        .expect("fuzz/corpus")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    let mut targets: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    targets.sort_unstable();
    assert_eq!(
        listed, targets,
        "a corpus without a target here, or the reverse"
    );
    let fuzz_targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for (target, run) in TARGETS {
        assert!(
            fuzz_targets.join(format!("{target}.rs")).is_file(),
            "no fuzz target {target}"
        );
        let mut files = 0;
        for entry in std::fs::read_dir(corpus.join(target)).unwrap() {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let ran = std::panic::catch_unwind(|| run(&input));
            assert!(ran.is_ok(), "{target} panicked on {}", path.display());
            files += 1;
        }
        assert!(files > 0, "the corpus of {target} is empty");
    }
}
