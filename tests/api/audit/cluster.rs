//! A PostgreSQL cluster of a test's own, made as `scripts/test.sh` makes the suite's: `initdb`
//! in a temp dir, trust auth, a free port on 127.0.0.1, run as `tokengate-test` when the test
//! runs as root (PostgreSQL refuses root). A test can stop and start it without disturbing the
//! shared cluster. Stopped (immediately) and removed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use tempfile::TempDir;
use tokio::process::Command;

/// The OS user that runs the cluster when the test runs as root (as in `scripts/test.sh`).
const PG_OS_USER: &str = "tokengate-test";
/// The database superuser.
const DB_USER: &str = "tokengate";

pub(super) struct Cluster {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    /// Who runs the server, when not this process's user.
    os_user: Option<String>,
    running: bool,
}

/// The directory of `initdb` and `pg_ctl`: on `PATH`, or Debian's newest server version.
fn pg_bin() -> PathBuf {
    if let Ok(out) = StdCommand::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        && out.status.success()
    {
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        return path
            .parent()
            .expect("initdb is in a directory")
            .to_path_buf();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
    });
    versions
        .pop()
        .expect("PostgreSQL's server binaries (initdb, pg_ctl): run the tests with scripts/test.sh")
}

fn is_root() -> bool {
    StdCommand::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `uid:gid` of `user`, creating it (as `scripts/test.sh` does) when it does not exist.
fn os_user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let out = StdCommand::new("id").args([flag, user]).output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .ok()
    };
    if id("-u").is_none() {
        // Another test may create it at the same time: only the outcome matters.
        let _ = StdCommand::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ])
            .status();
    }
    (
        id("-u").expect("the cluster's OS user exists"),
        id("-g").expect("the cluster's OS user has a group"),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binding port 0")
        .local_addr()
        .expect("an address")
        .port()
}

impl Cluster {
    /// Creates and starts a cluster.
    pub(super) async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let os_user = is_root().then(|| PG_OS_USER.to_owned());
        if let Some(user) = &os_user {
            let (uid, gid) = os_user_ids(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("handing the temp dir to the cluster's user");
        }
        let mut cluster = Self {
            bin: pg_bin(),
            dir,
            port: 0,
            os_user,
            running: false,
        };
        let data = cluster.data().display().to_string();
        let initdb = cluster
            .command(
                "initdb",
                &[
                    "-D",
                    &data,
                    "--username",
                    DB_USER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
            )
            .output()
            .await
            .expect("running initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        // The port may be taken between choosing and binding it: try a few.
        for _ in 0..5 {
            cluster.port = free_port();
            if cluster.try_start().await {
                return cluster;
            }
        }
        panic!(
            "the test's PostgreSQL did not start:\n{}",
            cluster.server_log()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut command = match &self.os_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        command.args(args).kill_on_drop(true);
        command
    }

    async fn try_start(&mut self) -> bool {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c fsync=off -c synchronous_commit=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data().display().to_string();
        let log = self.dir.path().join("postgres.log").display().to_string();
        let status = self
            .command(
                "pg_ctl",
                &[
                    "start", "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options,
                ],
            )
            .output()
            .await
            .expect("running pg_ctl start")
            .status;
        self.running = status.success();
        self.running
    }

    /// The URL of the cluster's `postgres` database.
    pub(super) fn url(&self) -> String {
        format!("postgres://{DB_USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub(super) async fn stop(&mut self) {
        let data = self.data().display().to_string();
        let stop = self
            .command("pg_ctl", &["stop", "-D", &data, "-m", "fast", "-w"])
            .output()
            .await;
        let status = stop.expect("running pg_ctl stop").status;
        assert!(
            status.success(),
            "pg_ctl stop failed:\n{}",
            self.server_log()
        );
        self.running = false;
    }

    /// Starts the stopped server again, on the same port.
    pub(super) async fn restart(&mut self) {
        assert!(
            self.try_start().await,
            "PostgreSQL did not start again:\n{}",
            self.server_log()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let mut command = match &self.os_user {
                Some(user) => {
                    let mut c = StdCommand::new("runuser");
                    c.args(["-u", user, "--"]).arg(self.bin.join("pg_ctl"));
                    c
                }
                None => StdCommand::new(self.bin.join("pg_ctl")),
            };
            let _ = command
                .args(["stop", "-D"])
                .arg(Path::new(&data))
                .args(["-m", "immediate", "-w"])
                .output();
        }
    }
}
