//! Redis for the tests: the server `scripts/test.sh` starts (`TG_TEST_REDIS_URL`), each test on
//! keys of its own prefix, or a server of a test's own that it can stop and start again.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use super::wait::eventually;

/// The variable naming the Redis server the tests share.
const REDIS_URL_VAR: &str = "TG_TEST_REDIS_URL";

/// The shared test Redis.
pub(crate) fn redis_url() -> String {
    std::env::var(REDIS_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{REDIS_URL_VAR} is not set: run the tests with scripts/test.sh, which starts a \
             throwaway Redis and sets it"
        )
    })
}

/// A key prefix no other test (in this or another process) uses.
pub(crate) fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "tg_test_{}_{}_{nanos}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// True when Redis at `url` answers a PING.
pub(crate) async fn answers(url: &str) -> bool {
    let Ok(client) = ::redis::Client::open(url) else {
        return false;
    };
    let config = ::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    let Ok(mut connection) = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    else {
        return false;
    };
    ::redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await
        .is_ok_and(|pong| pong == "PONG")
}

/// The keys under `prefix` in Redis at `url`.
pub(crate) async fn keys(url: &str, prefix: &str) -> Vec<String> {
    let client = ::redis::Client::open(url).expect("a Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis");
    ::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .expect("KEYS")
}

/// A `redis-server` of the test's own on a free port, with nothing saved to disk; killed on
/// drop.
pub(crate) struct RedisServer {
    port: u16,
    /// `requirepass`, when set.
    password: Option<String>,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers.
    pub(crate) async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts one that requires `password`.
    pub(crate) async fn start_with_password(password: &str) -> Self {
        Self::start_with(Some(password.to_owned())).await
    }

    async fn start_with(password: Option<String>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            port,
            password,
            dir: tempfile::tempdir().expect("creating a temp dir"),
            child: None,
        };
        server.resume().await;
        server
    }

    /// `redis://[:password@]127.0.0.1:PORT/0`.
    pub(crate) fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Kills the server and waits until nothing answers on its port.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let url = self.url();
        eventually("Redis to stop answering", async || {
            (!answers(&url).await).then_some(())
        })
        .await;
    }

    /// Starts the server again on the same port and waits until it answers.
    pub(crate) async fn resume(&mut self) {
        let mut command = Command::new("redis-server");
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (scripts/test.sh installs it)");
        self.child = Some(child);
        let url = self.url();
        eventually("Redis to answer", async || {
            answers(&url).await.then_some(())
        })
        .await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
