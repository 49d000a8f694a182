//! A TCP forwarder in front of the test PostgreSQL, standing in for the network between a
//! gateway and its database: it can be told to stop forwarding on the connections it has
//! without closing them (a NAT or firewall that forgot them), to close them (a database that
//! went down), and to turn new connections away (a database that cannot be reached).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the forwarder does with connections; shared with its accepting task.
#[derive(Default)]
struct Rules {
    /// How many more connections are let through; `None` for any number.
    admit: Option<usize>,
    /// Per connection let through: set to stop forwarding on it.
    stalls: Vec<watch::Sender<bool>>,
    /// Per connection let through: set to close it.
    cuts: Vec<watch::Sender<bool>>,
}

/// Forwards connections to one server until dropped, which closes them all.
pub(crate) struct Forwarder {
    addr: SocketAddr,
    rules: Arc<Mutex<Rules>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Forwards to the host and port of the database URL `url`.
    pub(crate) async fn start(url: &str) -> Self {
        let parsed = reqwest::Url::parse(url).expect("a database URL");
        let host = parsed.host_str().expect("a host").to_owned();
        let port = parsed.port().unwrap_or(5432);
        let target = tokio::net::lookup_host((host.as_str(), port))
            .await
            .expect("resolving the database host")
            .next()
            .expect("an address of the database host");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the forwarder");
        let addr = listener.local_addr().expect("the forwarder's address");
        let rules = Arc::new(Mutex::new(Rules::default()));
        let accepting = tokio::spawn(accept(listener, target, Arc::clone(&rules)));
        Self {
            addr,
            rules,
            accepting,
        }
    }

    /// `url` with its host and port replaced by the forwarder's.
    pub(crate) fn url(&self, url: &str) -> String {
        let mut parsed = reqwest::Url::parse(url).expect("a database URL");
        parsed
            .set_host(Some(&self.addr.ip().to_string()))
            .expect("setting the host");
        parsed
            .set_port(Some(self.addr.port()))
            .expect("setting the port");
        parsed.to_string()
    }

    /// Lets only `n` more connections through; later ones are closed at once.
    pub(crate) fn admit(&self, n: usize) {
        self.rules.lock().expect("rules").admit = Some(n);
    }

    /// Lets every new connection through again.
    pub(crate) fn admit_all(&self) {
        self.rules.lock().expect("rules").admit = None;
    }

    /// Closes every connection open now, both ways, as a database going down does; with
    /// [`Forwarder::admit`]`(0)` first, the database is then unreachable.
    pub(crate) fn cut(&self) {
        for cut in self.rules.lock().expect("rules").cuts.drain(..) {
            cut.send_replace(true);
        }
    }

    /// Stops forwarding on every connection open now, in both directions, without closing
    /// any: what either side sends is dropped. New connections are forwarded as before.
    pub(crate) fn stall(&self) {
        for stall in &self.rules.lock().expect("rules").stalls {
            stall.send_replace(true);
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, rules: Arc<Mutex<Rules>>) {
    // Dropped with the accepting task, which closes every forwarded connection.
    let mut pumps = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let stalled = {
            let mut rules = rules.lock().expect("rules");
            let admitted = match &mut rules.admit {
                Some(0) => false,
                Some(n) => {
                    *n -= 1;
                    true
                }
                None => true,
            };
            admitted.then(|| {
                let (stall, stalled) = watch::channel(false);
                rules.stalls.push(stall);
                let (cut, cut_off) = watch::channel(false);
                rules.cuts.push(cut);
                (stalled, cut_off)
            })
        };
        let Some((stalled, cut_off)) = stalled else {
            drop(client);
            continue;
        };
        let Ok(server) = TcpStream::connect(target).await else {
            continue;
        };
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        pumps.spawn(pump(
            client_read,
            server_write,
            stalled.clone(),
            cut_off.clone(),
        ));
        pumps.spawn(pump(server_read, client_write, stalled, cut_off));
    }
}

/// Copies one direction until either side closes it; once stalled, reads and drops; once cut,
/// closes both.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    stalled: watch::Receiver<bool>,
    mut cut_off: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            _ = cut_off.wait_for(|cut| *cut) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if *stalled.borrow() {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    if *stalled.borrow() {
        // A forgotten connection tells the other side nothing, not even that it ended.
        std::future::pending::<()>().await;
    }
    let _ = to.shutdown().await;
}
