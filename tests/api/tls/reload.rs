//! Reloading a listener's pair without a restart, watched through the serial a new
//! connection's handshake gets while a connection opened before keeps working: renewals that
//! rename new files into place, Kubernetes' symbolic-link swap, SIGHUP, and bad pairs that are
//! refused while the old one keeps serving.

use std::os::unix::fs::symlink;
use std::path::Path;

use tokengate::token::Scope;

use super::Fixture;
use crate::support::app::{Backend, TestApp, TokenOpts, spawn_app};
use crate::support::certs::{replace, tls_table};
use crate::support::log::LogLine;
use crate::support::tls_client::TlsConnection;

/// The serial a new connection to the proxy listener is given.
async fn served_serial(app: &TestApp, fx: &Fixture) -> String {
    TlsConnection::open(app.proxy_addr(), fx.ca.pem())
        .await
        .serial
        .clone()
}

/// Waits for the line that reports serving the certificate with `serial` (as logged).
async fn wait_for_serving(app: &TestApp, serial: &str) -> LogLine {
    let line = app
        .wait_for_line(&format!("serving serial {serial}"), |l| {
            l.message.contains("serving the new certificate") && l.message.contains(serial)
        })
        .await;
    assert_eq!(line.level, "INFO", "{line:?}");
    line
}

/// The ERROR lines written so far.
fn errors(app: &TestApp) -> Vec<String> {
    app.log_lines()
        .into_iter()
        .filter(|l| LogLine::parse(l).is_some_and(|l| l.level == "ERROR"))
        .collect()
}

#[tokio::test]
async fn a_renewal_renamed_into_place_reaches_new_connections_while_open_ones_keep_theirs() {
    let fx = Fixture::new();
    let app = spawn_app(fx.proxy_options(Backend::Sqlite)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let mut open = TlsConnection::open(app.proxy_addr(), fx.ca.pem()).await;
    assert_eq!(open.serial, fx.leaf.serial);
    assert_eq!(open.get("/rest/api/1.0/projects", &token).await, 200);

    // A renewal that replaces the certificate, then the key, each by a rename.
    let renewed = fx.ca.issue(2, 2098);
    replace(&fx.cert, &renewed.chain_pem);
    replace(&fx.key, &renewed.key_pem);
    wait_for_serving(&app, &renewed.serial_logged).await;
    assert_eq!(served_serial(&app, &fx).await, renewed.serial);
    // The connection opened before keeps its session and keeps working.
    assert_eq!(open.get("/rest/api/1.0/projects", &token).await, 200);
    assert_eq!(open.serial, fx.leaf.serial);
    assert!(errors(&app).is_empty(), "{:#?}", errors(&app));
    let expiry = "tokengate_tls_certificate_expiry_seconds{listener=\"proxy\"}";
    assert_eq!(app.metric(expiry).await, renewed.not_after as f64);
    app.finish().await;
}

/// Kubernetes' layout of a mounted Secret: `tls.crt -> ..data/tls.crt`, `..data ->
/// ..<timestamp>`, with `pem` files of `leaf` written into `..<name>`.
fn kubernetes_version(dir: &Path, name: &str, chain: &str, key: &str) {
    let version = dir.join(name);
    std::fs::create_dir(&version).expect("a version dir");
    std::fs::write(version.join("tls.crt"), chain).expect("tls.crt");
    std::fs::write(version.join("tls.key"), key).expect("tls.key");
}

#[tokio::test]
async fn a_kubernetes_secret_update_is_followed_through_its_symbolic_links() {
    let fx = Fixture::new();
    let mount = fx.dir.path().join("secret");
    std::fs::create_dir(&mount).expect("the mount");
    kubernetes_version(
        &mount,
        "..2026_01_01_a",
        &fx.leaf.chain_pem,
        &fx.leaf.key_pem,
    );
    symlink("..2026_01_01_a", mount.join("..data")).expect("..data");
    symlink("..data/tls.crt", mount.join("tls.crt")).expect("tls.crt");
    symlink("..data/tls.key", mount.join("tls.key")).expect("tls.key");
    let app = spawn_app(
        crate::support::app::Options::new(Backend::Sqlite)
            .set(
                "proxy.tls",
                tls_table(&mount.join("tls.crt"), &mount.join("tls.key")),
            )
            .trust(fx.ca.pem()),
    )
    .await;
    assert_eq!(served_serial(&app, &fx).await, fx.leaf.serial);

    // The kubelet's update: a new version dir, `..data` swapped by a rename, the old removed.
    let renewed = fx.ca.issue(3, 2098);
    kubernetes_version(
        &mount,
        "..2026_02_01_b",
        &renewed.chain_pem,
        &renewed.key_pem,
    );
    symlink("..2026_02_01_b", mount.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).expect("the swap");
    std::fs::remove_dir_all(mount.join("..2026_01_01_a")).expect("the old version");
    wait_for_serving(&app, &renewed.serial_logged).await;
    assert_eq!(served_serial(&app, &fx).await, renewed.serial);
    assert!(errors(&app).is_empty(), "{:#?}", errors(&app));
    app.finish().await;
}

#[tokio::test]
async fn sighup_reloads_a_pair_no_watched_directory_saw_change() {
    // `live` is a link to a directory; swapping it changes nothing in a directory the gateway
    // watches (it watches where the files are), so only SIGHUP can pick the change up.
    let fx = Fixture::new();
    let (first, second) = (fx.dir.path().join("a"), fx.dir.path().join("b"));
    std::fs::create_dir(&first).expect("a");
    std::fs::create_dir(&second).expect("b");
    fx.leaf.write(&first);
    let renewed = fx.ca.issue(4, 2098);
    renewed.write(&second);
    let live = fx.dir.path().join("live");
    symlink(&first, &live).expect("live");
    let app = spawn_app(
        crate::support::app::Options::new(Backend::Sqlite)
            .set(
                "proxy.tls",
                tls_table(&live.join("cert.pem"), &live.join("key.pem")),
            )
            .trust(fx.ca.pem()),
    )
    .await;
    assert_eq!(served_serial(&app, &fx).await, fx.leaf.serial);
    let swap = fx.dir.path().join("live.new");
    symlink(&second, &swap).expect("live.new");
    std::fs::rename(&swap, &live).expect("the swap");

    app.sighup();
    let line = wait_for_serving(&app, &renewed.serial_logged).await;
    let lines: Vec<LogLine> = app
        .log_lines()
        .iter()
        .filter_map(|l| LogLine::parse(l))
        .collect();
    let signal = lines
        .iter()
        .position(|l| l.message.starts_with("SIGHUP received"))
        .expect("the SIGHUP line");
    assert_eq!(lines.get(signal + 1), Some(&line), "{lines:#?}");
    assert_eq!(served_serial(&app, &fx).await, renewed.serial);

    // A second SIGHUP finds nothing new, and says so.
    app.sighup();
    app.wait_for_line("the unchanged line", |l| {
        l.message.contains("unchanged") && l.message.contains(&renewed.serial_logged)
    })
    .await;
    app.finish().await;
}

#[tokio::test]
async fn a_pair_that_does_not_load_or_match_is_refused_and_the_old_one_keeps_serving() {
    let fx = Fixture::new();
    let app = spawn_app(fx.proxy_options(Backend::Sqlite)).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let mut open = TlsConnection::open(app.proxy_addr(), fx.ca.pem()).await;
    let cert = fx.cert.display().to_string();
    let key = fx.key.display().to_string();

    // A certificate file that is not one.
    replace(&fx.cert, "not a certificate\n");
    let refused = app
        .wait_for_line("the refusal of the broken certificate", |l| {
            l.level == "ERROR" && l.message.contains(&cert)
        })
        .await;
    assert!(
        refused.message.starts_with("proxy.tls: refused"),
        "{refused:?}"
    );
    assert!(
        refused.message.contains("holds no PEM certificate"),
        "{refused:?}"
    );
    assert!(
        refused.message.contains(&fx.leaf.serial_logged),
        "{refused:?}"
    );
    assert_eq!(served_serial(&app, &fx).await, fx.leaf.serial);

    // A certificate of another key.
    let other = fx.ca.issue(5, 2098);
    replace(&fx.cert, &other.chain_pem);
    let mismatch = app
        .wait_for_line("the refusal of the mismatched pair", |l| {
            l.level == "ERROR" && l.message.contains("does not hold the private key")
        })
        .await;
    assert!(mismatch.message.contains(&key), "{mismatch:?}");
    assert_eq!(served_serial(&app, &fx).await, fx.leaf.serial);
    assert_eq!(open.get("/rest/api/1.0/projects", &token).await, 200);

    // SIGHUP reports the refusal again; the file watcher reported it once.
    app.sighup();
    let all = app
        .poll("SIGHUP's refusal", || {
            let all = errors(&app);
            (all.len() >= 3).then_some(all)
        })
        .await;
    assert_eq!(all.len(), 3, "{all:#?}");
    assert!(all[2].contains("does not hold the private key"), "{all:#?}");

    // The matching key arrives: the pair loads.
    replace(&fx.key, &other.key_pem);
    wait_for_serving(&app, &other.serial_logged).await;
    assert_eq!(served_serial(&app, &fx).await, other.serial);
    assert_eq!(open.get("/rest/api/1.0/projects", &token).await, 200);
    app.finish().await;
}
