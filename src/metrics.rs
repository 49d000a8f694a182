//! Prometheus metrics, served as text on the admin listener's `/metrics`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The outcome of a forwarded token request.
const ALLOWED: &str = "allowed";

/// Label of `tokengate_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// Label of `tokengate_admin_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u16,
}

/// Label of `tokengate_tls_certificate_expiry_seconds`: `proxy` or `admin`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Proxied requests by decision outcome.
    pub requests: Family<OutcomeLabel, Counter>,
    /// The series of `requests` for [`ALLOWED`], once it exists.
    allowed: OnceLock<Counter>,
    /// Time from sending a request upstream to its response head.
    pub upstream_latency: Histogram,
    /// Requests being handled now.
    pub in_flight: Gauge,
    /// argon2 verifications run.
    pub hash_verifications: Counter,
    /// Tokens neither revoked nor expired (refreshed periodically).
    pub tokens_active: Gauge,
    pub tokens_created: Counter,
    pub tokens_revoked: Counter,
    /// Admin API calls by status.
    pub admin_requests: Family<StatusLabel, Counter>,
    /// Audit events lost (queue full and spill file unwritable).
    pub audit_dropped: Counter,
    /// Audit events written to the spill file while the store was unavailable.
    pub audit_spilled: Counter,
    /// Audit events stored.
    pub audit_written: Counter,
    /// Audit events of the spill file that the store kept refusing, set aside in a
    /// `.failed-<time>` file beside it.
    pub audit_set_aside: Counter,
    /// Log lines dropped because the log writer could not keep up.
    pub log_lines_dropped: Counter,
    /// 1 while the rate-limit backend answers (always, for the local one), 0 while each
    /// replica counts for itself.
    pub rate_limit_backend_up: Gauge,
    /// When the certificate each TLS listener serves expires, as Unix time.
    pub tls_certificate_expiry: Family<ListenerLabel, Gauge>,
    log_lines_seen: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tokengate");
        let requests = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "requests",
            "Proxied requests by decision outcome",
            requests.clone(),
        );
        let upstream_latency = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]);
        registry.register(
            "upstream_latency_seconds",
            "Time from forwarding a request to Bitbucket's response head",
            upstream_latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight_requests",
            "Requests being handled now",
            in_flight.clone(),
        );
        let hash_verifications = Counter::default();
        registry.register(
            "hash_verifications",
            "argon2 verifications run",
            hash_verifications.clone(),
        );
        let tokens_active = Gauge::default();
        registry.register(
            "tokens_active",
            "Tokens neither revoked nor expired",
            tokens_active.clone(),
        );
        let tokens_created = Counter::default();
        registry.register(
            "tokens_created",
            "Tokens created through this process",
            tokens_created.clone(),
        );
        let tokens_revoked = Counter::default();
        registry.register(
            "tokens_revoked",
            "Tokens revoked through this process",
            tokens_revoked.clone(),
        );
        let admin_requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "admin_requests",
            "Admin API calls by status",
            admin_requests.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_events_dropped",
            "Audit events lost",
            audit_dropped.clone(),
        );
        let audit_spilled = Counter::default();
        registry.register(
            "audit_events_spilled",
            "Audit events written to the spill file",
            audit_spilled.clone(),
        );
        let audit_written = Counter::default();
        registry.register(
            "audit_events_written",
            "Audit events stored",
            audit_written.clone(),
        );
        let audit_set_aside = Counter::default();
        registry.register(
            "audit_events_set_aside",
            "Audit events the store refused at replay, set aside beside the spill file",
            audit_set_aside.clone(),
        );
        let log_lines_dropped = Counter::default();
        registry.register(
            "log_lines_dropped",
            "Log lines dropped by the non-blocking writer",
            log_lines_dropped.clone(),
        );
        let rate_limit_backend_up = Gauge::default();
        rate_limit_backend_up.set(1);
        registry.register(
            "rate_limit_backend_up",
            "1 while the configured rate-limit backend answers (always for local), 0 while this gateway counts limits alone",
            rate_limit_backend_up.clone(),
        );
        let tls_certificate_expiry = Family::<ListenerLabel, Gauge>::default();
        registry.register(
            "tls_certificate_expiry_seconds",
            "When the certificate a TLS listener serves expires (Unix time), by listener",
            tls_certificate_expiry.clone(),
        );
        Self {
            registry,
            requests,
            upstream_latency,
            in_flight,
            hash_verifications,
            tokens_active,
            tokens_created,
            tokens_revoked,
            admin_requests,
            audit_dropped,
            audit_spilled,
            audit_written,
            audit_set_aside,
            log_lines_dropped,
            rate_limit_backend_up,
            tls_certificate_expiry,
            log_lines_seen: AtomicU64::new(0),
            allowed: OnceLock::new(),
        }
    }

    /// Counts one proxied request.
    pub fn count_request(&self, outcome: &'static str) {
        if outcome == ALLOWED {
            // Nearly every request: its series is looked up once (its label hashed, the
            // family's lock taken), on its first request, so it appears only once counted.
            self.allowed
                .get_or_init(|| {
                    self.requests
                        .get_or_create(&OutcomeLabel { outcome: ALLOWED })
                        .clone()
                })
                .inc();
            return;
        }
        self.requests.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The expiry gauge of the TLS listener `listener` (`proxy` or `admin`).
    pub fn tls_expiry(&self, listener: &'static str) -> Gauge {
        self.tls_certificate_expiry
            .get_or_create(&ListenerLabel { listener })
            .clone()
    }

    /// Brings the dropped-log-lines counter up to `total` (read from the log writer).
    pub fn observe_log_drops(&self, total: u64) {
        let seen = self.log_lines_seen.swap(total, Ordering::Relaxed);
        if total > seen {
            self.log_lines_dropped.inc_by(total - seen);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
