//! Git over HTTP for the stand-in Bitbucket: `git http-backend` run as CGI for each `/scm/…`
//! request, over bare repositories the test makes, and the real `git` client that talks to
//! the gateway.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use tokio::io::AsyncWriteExt as _;

/// Answers one git request: 401 as Bitbucket answers when the gateway named no user (so the
/// git client sends its credentials), otherwise what `git http-backend` writes.
pub(crate) async fn serve(root: &Path, parts: &Parts, body: Vec<u8>) -> Response {
    let user = parts
        .headers
        .get("x-forwarded-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(user) = user else {
        return Response::builder()
            .status(401)
            .header("www-authenticate", "Basic realm=\"Bitbucket\"")
            .body(Body::empty())
            .expect("a valid response");
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env(
            "PATH_INFO",
            parts.uri.path().strip_prefix("/scm").unwrap_or_default(),
        )
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("starting git http-backend");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&body).await.expect("writing the CGI input");
    drop(stdin);
    let output = child.wait_with_output().await.expect("git http-backend");
    cgi_response(&output.stdout)
}

/// A CGI program's output as a response: its header lines (`Status:` for the status), a blank
/// line, the body.
fn cgi_response(out: &[u8]) -> Response {
    let (head, body) = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&out[..at], &out[at + 4..]),
        None => match out.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (&out[..at], &out[at + 2..]),
            None => (out, &[][..]),
        },
    };
    let mut response = Response::builder();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value
                .split(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response
        .body(Body::from(body.to_vec()))
        .expect("a valid CGI response")
}

/// Runs `git ARGS` in `dir` with no user or system config of the machine's, no proxy and no
/// prompt, plus `env`.
pub(crate) fn git(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .envs(env.iter().copied());
    command.output().expect("running git")
}

/// Makes the bare repository `root/p/r.git` with one commit; returns the commit id.
pub(crate) fn make_repo(root: &Path) -> String {
    let work: PathBuf = root.join("work");
    std::fs::create_dir_all(&work).expect("a work tree");
    let ok = |out: Output| {
        assert!(out.status.success(), "git failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    ok(git(&work, &["init", "-q", "-b", "main", "."], &[]));
    std::fs::write(work.join("README.md"), "hello\n").expect("a file");
    ok(git(&work, &["add", "README.md"], &[]));
    ok(git(
        &work,
        &[
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "commit",
            "-q",
            "-m",
            "first",
        ],
        &[],
    ));
    let commit = ok(git(&work, &["rev-parse", "HEAD"], &[]));
    std::fs::create_dir_all(root.join("p")).expect("the project");
    ok(git(
        root,
        &["clone", "-q", "--bare", "work", "p/r.git"],
        &[],
    ));
    commit
}
