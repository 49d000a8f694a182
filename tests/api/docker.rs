//! The README's Docker example against the repository: it mounts a file the repository has,
//! at the path the image reads, and a volume at the image's `VOLUME`, where the shipped config
//! keeps every file the gateway writes (the SQLite store, the audit spill file), so recreating
//! the container loses nothing. (No Docker daemon is needed: this reads the files.)

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret as _;
use tokengate::config::Config;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The argument of the Dockerfile's last `instruction` line: the runtime stage's.
fn instruction(dockerfile: &str, instruction: &str) -> String {
    dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("the Dockerfile has no {instruction}"))
        .trim()
        .to_owned()
}

/// `SOURCE:TARGET` of every `-v` of the README's `docker run`.
fn mounts(readme: &str) -> Vec<(String, String)> {
    let example = readme
        .split("```sh")
        .map(|block| block.split("```").next().unwrap_or_default())
        .find(|block| block.contains("docker run"))
        .expect("a docker run example in the README");
    let words: Vec<&str> = example.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "-v" || w[0] == "--volume")
        .map(|w| {
            let spec = w[1].trim_matches('"');
            let mut parts = spec.split(':');
            let source = parts.next().unwrap_or_default().to_owned();
            let target = parts.next().unwrap_or_default().to_owned();
            (source, target)
        })
        .collect()
}

#[test]
fn the_docker_example_keeps_the_store_and_the_spill_file_on_the_image_volume() {
    let readme = read("README.md");
    let dockerfile = read("Dockerfile");
    let mounts = mounts(&readme);
    let workdir = PathBuf::from(instruction(&dockerfile, "WORKDIR"));
    let volume = PathBuf::from(instruction(&dockerfile, "VOLUME"));

    // The config: a file of the repository, mounted where the image reads it.
    let config_target = "/etc/tokengate/tokengate.toml";
    let (source, _) = mounts
        .iter()
        .find(|(_, target)| target == config_target)
        .expect("the example mounts a config file");
    let in_repo = source
        .strip_prefix("$PWD/")
        .unwrap_or_else(|| panic!("{source} is not a path in the repository"));
    assert!(
        root().join(in_repo).is_file(),
        "the repository has no {in_repo}"
    );
    assert!(
        dockerfile.contains(&format!("COPY {in_repo} {config_target}")),
        "the image ships another config than the example mounts"
    );

    // A named volume at the image's volume.
    assert!(
        mounts
            .iter()
            .any(|(source, target)| Path::new(target) == volume && !source.contains('/')),
        "no named volume at {} in {mounts:?}",
        volume.display()
    );

    // The shipped config keeps the store and the spill file on that volume.
    let config = Config::load_with_env(Some(&root().join(in_repo)), Vec::new()).unwrap();
    let url = config.database.url.expose_secret().to_owned();
    let store = url
        .strip_prefix("sqlite://")
        .unwrap_or_else(|| panic!("the shipped config's store is not SQLite: {url}"));
    for (what, file) in [
        ("the SQLite store", PathBuf::from(store)),
        ("the audit spill file", config.audit.spill_file.clone()),
    ] {
        let at = workdir.join(&file);
        assert!(
            at.starts_with(&volume),
            "{what} is at {}, outside the volume {}",
            at.display(),
            volume.display()
        );
    }
}
