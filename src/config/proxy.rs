//! The `[proxy]` section, validated: the listener, the proxies it trusts, its limits and TLS.

use super::raw::RawProxy;
use super::validate::{cidrs, count, duration, positive_duration, socket, tls_files};
use super::{ConfigError, ProxyConfig};

/// `[proxy]` as written, checked and converted; an error names the key and the value.
pub(super) fn validate(p: RawProxy) -> Result<ProxyConfig, ConfigError> {
    Ok(ProxyConfig {
        listen: socket("proxy.listen", &p.listen)?,
        trusted_proxies: cidrs("proxy.trusted_proxies", &p.trusted_proxies)?,
        header_read_timeout: positive_duration(
            "proxy.header_read_timeout",
            &p.header_read_timeout,
        )?,
        max_header_bytes: usize::try_from(count(
            "proxy.max_header_bytes",
            p.max_header_bytes,
            8 * 1024,
            1024 * 1024,
        )?)
        .expect("bounded above"),
        shutdown_grace: duration("proxy.shutdown_grace", &p.shutdown_grace)?,
        worker_threads: usize::try_from(count("proxy.worker_threads", p.worker_threads, 0, 1024)?)
            .expect("bounded above"),
        tls: tls_files(("proxy.tls.cert", "proxy.tls.key"), p.tls)?,
    })
}
