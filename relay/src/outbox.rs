//! The task that pushes replies to app and social channels' webhooks.
//!
//! The database writes an outbox row in the same transaction as each reply (a trigger, see
//! `migrations/0009_channels.sql`), so this task only reads what is due and records what
//! happened: a 2xx answer marks the delivery done; anything else (an error status, a
//! refused connection, a timeout) schedules the next attempt with a doubling wait, and the
//! last allowed attempt dead-letters it. Deliveries of one conversation go out one at a
//! time and in order; different conversations go out concurrently.
//!
//! Every push is signed like the relay's other outbound calls (`x-kefu-timestamp`,
//! `x-kefu-signature: sha256=HMAC(secret, "<timestamp>.<body>")`) and carries its delivery
//! id (`x-kefu-delivery`), which receivers use to drop repeats: delivery is at least once,
//! since a relay stopped between the receiver's answer and its own record sends again.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::channels::{DueDelivery, next_attempt};
use crate::clock::Clock;
use crate::config::ChannelsConfig;
use crate::store::Store;

/// Deliveries read per query.
const BATCH: u32 = 64;

/// The header with the delivery's id.
pub const DELIVERY_HEADER: &str = "x-kefu-delivery";

/// What the pusher needs.
pub struct Outbox {
    /// The database.
    pub store: Store,
    /// Retry schedule and limits.
    pub config: ChannelsConfig,
    /// The relay's clock (retries are due on it).
    pub clock: Clock,
    /// Poked when the journal commits a reply that may have an outbox row.
    pub wake: Arc<Notify>,
}

impl Outbox {
    /// Pushes until `shutdown`; a batch in flight is finished first (each push is bounded
    /// by the request timeout), so that an acknowledged delivery is also recorded.
    pub async fn run(self, shutdown: CancellationToken) {
        let http = crate::tls::http_client()
            .no_proxy()
            .timeout(Duration::from_secs(self.config.request_timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kefu-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client builds");
        let mut ticker = self.clock.ticker();
        let mut prune_at = 0;
        loop {
            if let Err(e) = self.push_due(&http, &shutdown).await {
                tracing::warn!(error = %e, "outbox: reading due deliveries failed");
            }
            let now = self.clock.now_ms();
            if now >= prune_at {
                let window = self.config.signature_tolerance_secs as i64 * 1000;
                if let Err(e) = self.store.prune_hook_receipts(now - 2 * window).await {
                    tracing::warn!(error = %e, "outbox: pruning webhook receipts failed");
                }
                prune_at = now + window;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = ticker.tick() => {}
            }
        }
    }

    /// Pushes everything due now, batch after batch.
    async fn push_due(&self, http: &reqwest::Client, shutdown: &CancellationToken) -> crate::Result<()> {
        while !shutdown.is_cancelled() {
            let due = self.store.due_deliveries(self.clock.now_ms(), BATCH).await?;
            if due.is_empty() {
                break;
            }
            futures_util::stream::iter(due)
                .for_each_concurrent(self.config.concurrency, |delivery| self.push(http, delivery))
                .await;
        }
        Ok(())
    }

    /// One attempt at one delivery, and its record.
    async fn push(&self, http: &reqwest::Client, delivery: DueDelivery) {
        let id = delivery.message.id;
        let body = serde_json::to_vec(&delivery.message).expect("serialises");
        let timestamp = self.clock.now_ms() / 1000;
        let signature = crate::outside::sign(&delivery.secret, timestamp, &body);
        let attempt = delivery.attempts + 1;
        let result = http
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header(crate::outside::TIMESTAMP_HEADER, timestamp.to_string())
            .header(crate::outside::SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, id.to_string())
            .header("x-kefu-attempt", attempt.to_string())
            .body(body)
            .send()
            .await;
        let failure = match result {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("HTTP {}", response.status().as_u16())),
            Err(e) if e.is_timeout() => Some("timed out".to_string()),
            Err(e) if e.is_connect() => Some("connection failed".to_string()),
            Err(e) => Some(format!("request failed: {e}")),
        };
        let now = self.clock.now_ms();
        let recorded = match &failure {
            None => self.store.delivery_done(id, now).await,
            Some(error) => {
                let c = &self.config;
                let next = next_attempt(
                    attempt,
                    c.max_attempts,
                    c.retry_first_secs as i64 * 1000,
                    c.retry_max_secs as i64 * 1000,
                    now,
                );
                if next.is_none() {
                    tracing::warn!(delivery = id, attempts = attempt, %error, "outbox: delivery dead-lettered");
                } else {
                    tracing::debug!(delivery = id, attempts = attempt, %error, "outbox: delivery failed; will retry");
                }
                self.store.delivery_failed(id, next, error).await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(delivery = id, error = %e, "outbox: recording a delivery failed");
        }
    }
}
