//! Git over HTTPS through the gateway, as a developer or a CI job runs it: `git ls-remote` and
//! `git clone` with a read-only token as the password of the URL, and a push refused.

use tokengate::token::Scope;

use super::Fixture;
use crate::support::app::{Backend, TokenOpts, spawn_app};
use crate::support::git::{git, make_repo};

// curl and git block a worker thread while the upstream, on this runtime, answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_ls_remote_and_clone_over_https_with_a_read_only_token_and_no_push() {
    let fx = Fixture::new();
    let repos = tempfile::tempdir().expect("a repository root");
    let commit = make_repo(repos.path());
    let app = spawn_app(fx.proxy_options(Backend::Sqlite).git_root(repos.path())).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let url = format!(
        "https://alice:{token}@127.0.0.1:{}/scm/p/r.git",
        app.proxy_addr().port()
    );
    let ca = fx.ca_file.display().to_string();
    let work = tempfile::tempdir().expect("a work dir");
    let env = [("GIT_SSL_CAINFO", ca.as_str())];

    let listed = git(work.path(), &["ls-remote", &url], &env);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{listed:?}");
    assert!(
        stdout.contains(&format!("{commit}\trefs/heads/main")),
        "{stdout}"
    );

    let cloned = git(work.path(), &["clone", "-q", &url, "r"], &env);
    assert!(cloned.status.success(), "{cloned:?}");
    let readme = std::fs::read_to_string(work.path().join("r/README.md")).expect("README.md");
    assert_eq!(readme, "hello\n");

    std::fs::write(work.path().join("r/README.md"), "changed\n").expect("a change");
    let clone = work.path().join("r");
    let committed = git(
        &clone,
        &[
            "-c",
            "user.name=Alice",
            "-c",
            "user.email=alice@example.com",
            "commit",
            "-qam",
            "change",
        ],
        &env,
    );
    assert!(committed.status.success(), "{committed:?}");
    let pushed = git(&clone, &["push", "-q", "origin", "main"], &env);
    assert!(
        !pushed.status.success(),
        "a read-only token pushed: {pushed:?}"
    );
    assert!(
        String::from_utf8_lossy(&pushed.stderr).contains("403"),
        "{pushed:?}"
    );
    // git's libcurl speaks HTTP/2 where ALPN offers it: the fetch's POST went that way, and
    // on to Bitbucket as HTTP/1.1.
    let fetch = app
        .wait_for_line("an HTTP/2 fetch", |l| {
            l.request_line.as_deref() == Some("POST /scm/p/r.git/git-upload-pack HTTP/2.0")
        })
        .await;
    assert!(
        fetch.message.starts_with("Found a matching token"),
        "{fetch:?}"
    );
    // The token reached the gateway only: every fetch went upstream as alice.
    let fetches: Vec<_> = app
        .upstream
        .requests()
        .into_iter()
        .filter(|s| s.header("x-forwarded-user").is_some())
        .collect();
    assert!(!fetches.is_empty());
    assert!(
        fetches
            .iter()
            .all(|s| s.header("x-forwarded-user").as_deref() == Some("alice")
                && s.header("x-forwarded-proto").as_deref() == Some("https")
                && s.version == http::Version::HTTP_11)
    );
    // git asks without credentials first (forwarded untouched, and refused upstream); with
    // the token, a push never got past the gateway.
    assert!(
        fetches
            .iter()
            .all(|s| !s.target.contains("git-receive-pack"))
    );
    app.finish().await;
}
