//! Pushes alerts to the webhook configured in `[alerts]`: one JSON POST per change,
//! signed like the channels' webhooks when a secret is set, retried a few times. Alerts
//! are in the event log and on supervisors' screens whatever becomes of the push, so a
//! push that keeps failing is logged and dropped rather than queued on disk, and while the
//! endpoint is down at most [`QUEUE`] alerts wait; later ones are dropped (and logged).

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::hub::AlertNotice;

/// Attempts at one push.
const ATTEMPTS: u32 = 3;
/// Wait before the second attempt; the third waits twice as long.
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// Alert changes waiting for the webhook, at most.
pub const QUEUE: usize = 1024;

/// The body of a push.
#[derive(Serialize)]
struct Body<'a> {
    workspace_id: i64,
    #[serde(flatten)]
    frame: &'a kefu_proto::frame::AlertFrame,
}

/// Starts the pusher; alerts sent to the returned channel are pushed in order.
pub fn spawn(url: String, secret: Option<String>, clock: Clock) -> mpsc::Sender<AlertNotice> {
    let (tx, mut rx) = mpsc::channel::<AlertNotice>(QUEUE);
    let http =
        crate::tls::http_client().no_proxy().timeout(Duration::from_secs(10)).build().expect("an HTTP client builds");
    tokio::spawn(async move {
        while let Some(notice) = rx.recv().await {
            let body = Body { workspace_id: notice.workspace.0, frame: &notice.frame };
            let body = serde_json::to_vec(&body).expect("serialises");
            let mut wait = FIRST_RETRY;
            for attempt in 1..=ATTEMPTS {
                let timestamp = clock.now_ms() / 1000;
                let mut request = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header(crate::outside::TIMESTAMP_HEADER, timestamp.to_string());
                if let Some(secret) = &secret {
                    request = request
                        .header(crate::outside::SIGNATURE_HEADER, crate::outside::sign(secret, timestamp, &body));
                }
                match request.body(body.clone()).send().await {
                    Ok(response) if response.status().is_success() => break,
                    outcome => {
                        let error = match outcome {
                            Ok(response) => format!("HTTP {}", response.status().as_u16()),
                            Err(e) => e.to_string(),
                        };
                        tracing::warn!(alert = %notice.frame.alert.id, attempt, %error, "alert webhook failed");
                        if attempt < ATTEMPTS {
                            tokio::time::sleep(wait).await;
                            wait *= 2;
                        }
                    }
                }
            }
        }
    });
    tx
}
