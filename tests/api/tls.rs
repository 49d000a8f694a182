//! TLS as an operator meets it: both listeners over TLS 1.2, 1.3 and HTTP/2 with real clients
//! (curl, openssl, git, a rustls client holding a connection open), certificates reloaded in
//! place, an `https://` Bitbucket verified, and the start-up checks of the files.

mod config;
mod framing;
mod git;
mod listeners;
mod reload;
mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::support::app::{Backend, Options};
use crate::support::certs::{Leaf, TestCa, tls_table};

/// A test CA, a first server certificate it issued (serial `11:01`), and the files the
/// gateway reads, in a directory of the test's own.
struct Fixture {
    ca: TestCa,
    leaf: Leaf,
    dir: TempDir,
    cert: PathBuf,
    key: PathBuf,
    /// The CA certificate as a file, for curl, openssl and git.
    ca_file: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let ca = TestCa::new("tokengate test CA");
        let leaf = ca.issue(1, 2099);
        let dir = tempfile::tempdir().expect("a temp dir");
        let (cert, key) = leaf.write(dir.path());
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("writing ca.pem");
        Self {
            ca,
            leaf,
            dir,
            cert,
            key,
            ca_file,
        }
    }

    /// A gateway on `backend` whose proxy listener serves this pair, and whose client trusts
    /// the CA.
    fn proxy_options(&self, backend: Backend) -> Options {
        Options::new(backend)
            .set("proxy.tls", tls_table(&self.cert, &self.key))
            .trust(self.ca.pem())
    }
}

/// Runs `curl` against the gateway with the CA trusted and no proxy; `-v` output on stderr.
fn curl(ca_file: &Path, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "-v", "--noproxy", "*", "--cacert"])
        .arg(ca_file)
        .args(args)
        .output()
        .expect("running curl")
}

/// The value of header `name` in curl's `-D -` output.
fn header_of(out: &str, name: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}
