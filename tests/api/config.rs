//! `tokengate check-config` through the real binary: the effective config is printed with every
//! secret in the database URL redacted (user info and `password=` parameters alike), and an
//! `upstream.url` carrying a user name or password is refused, naming the key, never showing
//! the password.

mod discovery;

use std::process::{Command, Output};

/// Runs `tokengate COMMAND` in an empty directory (so only defaults and `vars` apply), with
/// `vars` as its only `TOKENGATE_*` variables.
fn run(command: &str, vars: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut tokengate = Command::new(crate::support::app::binary());
    tokengate.arg(command).current_dir(dir.path());
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TOKENGATE_")) {
        tokengate.env_remove(name);
    }
    tokengate.envs(vars.iter().copied());
    tokengate.output().expect("running tokengate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_redacts_every_password_of_the_database_url() {
    for (url, shown) in [
        (
            "postgres://tg@host/db?password=hunter2",
            "postgres://tg@host/db?password=[redacted]",
        ),
        (
            "postgres://tg:hunter2@host/db?sslmode=require&sslpassword=hunter2",
            "postgres://tg:[redacted]@host/db?sslmode=require&sslpassword=[redacted]",
        ),
    ] {
        let output = run("check-config", &[("TOKENGATE_DATABASE__URL", url)]);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert_eq!(output.status.code(), Some(0), "{url}: {stderr}");
        assert!(stdout.contains(shown), "{url}:\n{stdout}");
        assert!(
            !stdout.contains("hunter2") && !stderr.contains("hunter2"),
            "{url}:\n{stdout}{stderr}"
        );
    }
}

#[test]
fn a_user_or_password_in_upstream_url_is_refused() {
    for url in [
        "http://svc:s3cretpw@bitbucket:7990",
        "http://svc@bitbucket:7990",
    ] {
        for command in ["check-config", "serve"] {
            let output = run(command, &[("TOKENGATE_UPSTREAM__URL", url)]);
            let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
            assert_eq!(output.status.code(), Some(2), "{command} {url}: {stderr}");
            assert!(
                stderr.contains("upstream.url") && stderr.contains("user name or password"),
                "{command} {url}: {stderr}"
            );
            assert!(
                !stdout.contains("s3cretpw") && !stderr.contains("s3cretpw"),
                "{command} {url}:\n{stdout}{stderr}"
            );
        }
    }
}
