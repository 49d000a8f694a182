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

/// Every file the crate reads while it compiles, outside `src/`: the `include_bytes!` and
/// `include_str!` targets and the migrations. Paths relative to the repository.
fn compile_time_inputs() -> Vec<PathBuf> {
    let mut inputs = vec![PathBuf::from("migrations")];
    let mut pending = vec![root().join("src")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for marker in ["include_bytes!(\"", "include_str!(\""] {
                for (at, _) in text.match_indices(marker) {
                    let rest = &text[at + marker.len()..];
                    let target = &rest[..rest.find('"').unwrap_or(0)];
                    let file = path.parent().unwrap().join(target);
                    let file = std::path::absolute(&file).unwrap();
                    // Normalised by hand: `..` segments, without touching the file system.
                    let mut parts: Vec<std::ffi::OsString> = Vec::new();
                    for part in file.components() {
                        match part {
                            std::path::Component::ParentDir => {
                                parts.pop();
                            }
                            other => parts.push(other.as_os_str().to_owned()),
                        }
                    }
                    let file: PathBuf = parts.iter().collect();
                    if let Ok(relative) = file.strip_prefix(root()) {
                        inputs.push(relative.to_path_buf());
                    }
                }
            }
        }
    }
    inputs
}

#[test]
fn the_image_build_copies_every_file_the_crate_compiles_from() {
    let dockerfile = read("Dockerfile");
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len().saturating_sub(1)].to_vec()
        })
        .collect();
    for input in compile_time_inputs() {
        if input.starts_with("src") {
            continue;
        }
        let top = input
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        assert!(
            copied.contains(&top.as_str()),
            "the build stage compiles from {} but does not COPY {top}",
            input.display()
        );
    }
}
