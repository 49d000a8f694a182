//! Expiry notices: every `notify.check_interval`, each active token that has entered one of
//! the `notify.expiry_warnings` windows before its expiry is POSTed to `notify.webhook_url`,
//! once per token, expiry and window.
//!
//! Once means once across restarts and replicas: a notice is claimed in the store with one
//! atomic write before it is sent, and marked sent when the webhook took it. A failed delivery
//! is retried with backoff under the same claim (renewed at each attempt). A gateway that
//! stops releases its unsent claims, so the next check of any replica sends them; one that
//! died leaves a claim that is taken over once it is stale. Only a webhook that took a notice
//! but whose answer was lost can see it twice.

mod webhook;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng as _;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

pub use webhook::{DeliveryError, Webhook};

use crate::audit::{AuditEvent, AuditKind, AuditOutcome, AuditSink};
use crate::config::NotifyConfig;
use crate::shutdown::Shutdown;
use crate::store::{NoticeKey, NoticeStep, TokenStore};
use crate::token::TokenRecord;

/// A claim not renewed for this long is taken to belong to a gateway that died.
const STALE_CLAIM: TimeDelta = TimeDelta::minutes(15);
/// Bounds of the wait between delivery attempts; the longest stays well under
/// [`STALE_CLAIM`], since each attempt renews the claim.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Tokens looked at per check (the soonest expiring first).
const CHECK_LIMIT: u32 = 1_000;
/// Notices are kept this long after the expiry they warned of, then deleted.
const KEEP_AFTER_EXPIRY: TimeDelta = TimeDelta::days(30);

/// Sends expiry notices; one per gateway.
pub struct Notifier {
    store: Arc<dyn TokenStore>,
    webhook: Webhook,
    /// `notify.expiry_warnings`, shortest first.
    windows: Vec<Duration>,
    audit: AuditSink,
    node_id: String,
    /// This gateway's claim id, random per process.
    claim: String,
    /// Deliveries in progress.
    deliveries: Mutex<JoinSet<()>>,
}

impl Notifier {
    /// A notifier for `config`; `None` when no webhook is configured (or no window is).
    ///
    /// # Errors
    ///
    /// An `https://` webhook on a system without CA certificates.
    pub fn new(
        config: &NotifyConfig,
        store: Arc<dyn TokenStore>,
        audit: AuditSink,
        node_id: String,
    ) -> Result<Option<Arc<Self>>, String> {
        let Some(url) = config.webhook_url.clone() else {
            return Ok(None);
        };
        if config.expiry_warnings.is_empty() {
            return Ok(None);
        }
        let bytes: [u8; 8] = rand::rngs::OsRng.r#gen();
        Ok(Some(Arc::new(Self {
            store,
            webhook: Webhook::new(url)?,
            windows: config.expiry_warnings.clone(),
            audit,
            node_id,
            claim: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            deliveries: Mutex::new(JoinSet::new()),
        })))
    }

    /// Runs the check now and every `interval` until `shutdown`; then waits for deliveries in
    /// progress to release their claims. Returns the tasks to await at shutdown.
    pub fn spawn(
        self: &Arc<Self>,
        interval: Duration,
        shutdown: &Shutdown,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let checks = {
            let (notifier, shutdown) = (Arc::clone(self), shutdown.clone());
            shutdown.clone().every(interval, move || {
                let (notifier, shutdown) = (Arc::clone(&notifier), shutdown.clone());
                async move { notifier.check(Utc::now(), &shutdown).await }
            })
        };
        let drain = {
            let (notifier, mut shutdown) = (Arc::clone(self), shutdown.clone());
            tokio::spawn(async move {
                shutdown.stopped().await;
                let mut deliveries = notifier.deliveries.lock().await;
                while deliveries.join_next().await.is_some() {}
            })
        };
        vec![checks, drain]
    }

    /// The smallest window `token` is in at `now`, in seconds.
    fn window_of(&self, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<Duration> {
        let left = (expires_at - now).to_std().ok()?;
        self.windows.iter().copied().find(|w| left <= *w)
    }

    /// One check: claims the notices now due and starts their deliveries.
    async fn check(self: &Arc<Self>, now: DateTime<Utc>, shutdown: &Shutdown) {
        let Some(longest) = self.windows.last().copied() else {
            return;
        };
        let until = now + TimeDelta::from_std(longest).unwrap_or(TimeDelta::MAX);
        let tokens = match self.store.expiring_tokens(now, until, CHECK_LIMIT).await {
            Ok(tokens) => tokens,
            Err(e) => {
                tracing::warn!(target: "tokengate::notify", error = %e, "cannot look for expiring tokens; trying again at the next check");
                return;
            }
        };
        for token in tokens {
            let Some(expires_at) = token.expires_at else {
                continue;
            };
            let Some(window) = self.window_of(expires_at, now) else {
                continue;
            };
            let key = NoticeKey {
                token_id: token.id.clone(),
                expires_at,
                window_seconds: window.as_secs(),
            };
            match self
                .store
                .claim_notice(&key, &self.claim, now, now - STALE_CLAIM)
                .await
            {
                Ok(true) => {
                    let (notifier, shutdown) = (Arc::clone(self), shutdown.clone());
                    self.deliveries
                        .lock()
                        .await
                        .spawn(async move { notifier.deliver(token, key, shutdown).await });
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(target: "tokengate::notify", error = %e, token_id = %key.token_id, "cannot claim an expiry notice; trying again at the next check");
                }
            }
        }
        let mut deliveries = self.deliveries.lock().await;
        while deliveries.try_join_next().is_some() {}
        drop(deliveries);
        if let Err(e) = self.store.purge_notices(now - KEEP_AFTER_EXPIRY).await {
            tracing::debug!(target: "tokengate::notify", error = %e, "deleting old expiry notices failed");
        }
    }

    /// Delivers one claimed notice, retrying with backoff until it is taken, the claim is lost,
    /// or the gateway stops (which releases the claim).
    async fn deliver(&self, token: TokenRecord, key: NoticeKey, mut shutdown: Shutdown) {
        let mut wait = RETRY_MIN;
        let mut attempts = 0u32;
        loop {
            let now = Utc::now();
            match self
                .store
                .settle_notice(&key, &self.claim, NoticeStep::Attempt, now)
                .await
            {
                Ok(true) => {
                    attempts += 1;
                    let days_left = days_left(key.expires_at, now);
                    match self.webhook.post(body(&token, &key, days_left)).await {
                        Ok(()) => {
                            self.delivered(&token, &key, days_left, attempts).await;
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(target: "tokengate::notify", error = %e, token_id = %key.token_id, attempt = attempts, retry_in = ?wait, "an expiry notice was not delivered");
                        }
                    }
                }
                // Taken over (this gateway looked dead) or sent meanwhile: not ours any more.
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(target: "tokengate::notify", error = %e, token_id = %key.token_id, retry_in = ?wait, "cannot renew the claim of an expiry notice");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.stopped() => {
                    let _ = self
                        .store
                        .settle_notice(&key, &self.claim, NoticeStep::Release, Utc::now())
                        .await;
                    return;
                }
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    async fn delivered(&self, token: &TokenRecord, key: &NoticeKey, days_left: i64, attempts: u32) {
        let now = Utc::now();
        if let Err(e) = self
            .store
            .settle_notice(key, &self.claim, NoticeStep::Sent, now)
            .await
        {
            tracing::warn!(target: "tokengate::notify", error = %e, token_id = %key.token_id, "an expiry notice was delivered, but could not be marked sent: it may be sent again");
        }
        tracing::info!(target: "tokengate::notify", token_id = %key.token_id, days_left = days_left, "expiry notice delivered");
        self.audit.record(AuditEvent {
            time: now,
            kind: AuditKind::TokenExpiryNotified,
            outcome: AuditOutcome::Allowed,
            user: Some(token.user.as_str().into()),
            token_id: Some(key.token_id.as_str().into()),
            client_ip: None,
            method: None,
            path: None,
            request_id: None,
            node_id: self.node_id.clone().into(),
            actor: Some("notifier".to_owned()),
            attributes: json!({
                "expires_at": key.expires_at,
                "window": window_name(key.window_seconds),
                "days_left": days_left,
                "attempts": attempts,
            })
            .into(),
        });
    }
}

/// Whole days left until `expires_at`, rounded up: a token with 36 hours left has 2.
fn days_left(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let seconds = (expires_at - now).num_seconds().max(0);
    (seconds + 86_399) / 86_400
}

/// A window as written in the config: `7d`, `36h`, `90m`.
fn window_name(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The notice: the event, the token, the whole days left, and a sentence for chat tools
/// (Slack's and Teams' incoming webhooks show `text`).
fn body(token: &TokenRecord, key: &NoticeKey, days_left: i64) -> Vec<u8> {
    let days = if days_left == 1 { "day" } else { "days" };
    let text = format!(
        "The API token \u{201c}{}\u{201d} ({}) of {} expires in {days_left} {days} ({}). \
         Rotate it: tokengate token rotate {}",
        token.description,
        key.token_id,
        token.user,
        key.expires_at.format("%Y-%m-%d %H:%M UTC"),
        key.token_id,
    );
    serde_json::to_vec(&json!({
        "event": "token_expiring",
        "token": {
            "id": key.token_id.as_str(),
            "user": token.user,
            "description": token.description,
            "expires_at": key.expires_at,
        },
        "days_left": days_left,
        "text": text,
    }))
    .expect("a notice serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_rounded_up_and_windows_named_as_written() {
        let now = Utc::now();
        assert_eq!(days_left(now + TimeDelta::days(7), now), 7);
        assert_eq!(days_left(now + TimeDelta::hours(36), now), 2);
        assert_eq!(days_left(now + TimeDelta::minutes(1), now), 1);
        assert_eq!(days_left(now - TimeDelta::minutes(1), now), 0);
        assert_eq!(window_name(7 * 86_400), "7d");
        assert_eq!(window_name(36 * 3_600), "36h");
        assert_eq!(window_name(90 * 60), "90m");
    }
}
