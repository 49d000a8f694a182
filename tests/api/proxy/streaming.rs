//! 200 MiB down and up through the gateway: intact (length and SHA-256, computed while
//! streaming on both sides) while the gateway's resident memory stays bounded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use sha2::{Digest, Sha256};
use tokengate::token::Scope;

use super::{request_id, sqlite};
use crate::support::app::{TokenOpts, rss_kib, spawn_app};
use crate::support::upstream::hex;

/// The size of the large transfers.
const BIG: u64 = 200 * 1024 * 1024;
/// The gateway's resident memory must stay below this during a large transfer.
const RSS_LIMIT_KIB: u64 = 100 * 1024;

/// Samples a process's `VmRSS` every few milliseconds on its own thread.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u32)>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut peak, mut samples) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    peak = peak.max(kib);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (peak, samples)
        });
        Self { stop, thread }
    }

    /// The peak in KiB and the number of samples.
    fn stop(self) -> (u64, u32) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the sampler thread")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_download_streams_through_intact_in_bounded_memory() {
    let app = spawn_app(sqlite()).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadOnly, TokenOpts::default())
        .await;
    let idle = app.rss_kib();
    let sampler = RssSampler::start(app.pid());

    let response = app
        .client
        .get(format!(
            "{}/rest/api/1.0/projects/P/repos/r/archive/download/{BIG}",
            app.proxy_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sending the download request");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let (mut len, mut hasher) = (0u64, Sha256::new());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("reading the download");
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let (peak, samples) = sampler.stop();

    let sent = app.upstream.wait_for_sent(BIG).await;
    assert_eq!(len, BIG);
    assert_eq!(
        hex(&hasher.finalize()),
        sent.sha256,
        "the download changed on the way"
    );
    assert!(
        samples >= 10,
        "only {samples} memory samples during the transfer"
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "the gateway's VmRSS peaked at {peak} KiB (idle: {idle} KiB)"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_chunked_upload_streams_through_intact_in_bounded_memory() {
    let app = spawn_app(sqlite()).await;
    let (_, token) = app
        .create_token("alice", Scope::ReadWrite, TokenOpts::default())
        .await;
    let idle = app.rss_kib();
    let sampler = RssSampler::start(app.pid());

    // An odd chunk size over a position-dependent pattern: a lost, repeated or reordered
    // chunk changes the digest.
    const CHUNK: u64 = 50_000;
    let base: Bytes = (0..CHUNK + 251)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let digest = Arc::new(Mutex::new(None::<String>));
    let out = Arc::clone(&digest);
    let stream = futures_util::stream::unfold((0u64, Sha256::new()), move |(sent, mut hasher)| {
        let (base, out) = (base.clone(), Arc::clone(&out));
        async move {
            if sent >= BIG {
                *out.lock().expect("digest") = Some(hex(&hasher.finalize()));
                return None;
            }
            let n = (BIG - sent).min(CHUNK);
            let start = usize::try_from(sent % 251).expect("small");
            let chunk = base.slice(start..start + usize::try_from(n).expect("small"));
            hasher.update(&chunk);
            Some((Ok::<_, std::io::Error>(chunk), (sent + n, hasher)))
        }
    });
    let response = app
        .client
        .post(format!("{}/scm/p/r.git/git-receive-pack", app.proxy_url()))
        .bearer_auth(&token)
        .header("content-type", "application/x-git-receive-pack-request")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("sending the upload");
    let (peak, samples) = sampler.stop();
    assert_eq!(response.status(), 200);

    let id = request_id(&response);
    let seen = app
        .upstream
        .request_with_id(&id)
        .expect("the upload reached the upstream");
    let sent = digest
        .lock()
        .expect("digest")
        .clone()
        .expect("the whole body was sent");
    assert_eq!(seen.body_len, BIG);
    assert_eq!(seen.body_sha256, sent, "the upload changed on the way");
    assert_eq!(seen.header("transfer-encoding").as_deref(), Some("chunked"));
    assert!(
        samples >= 10,
        "only {samples} memory samples during the transfer"
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "the gateway's VmRSS peaked at {peak} KiB (idle: {idle} KiB)"
    );
    app.finish().await;
}
