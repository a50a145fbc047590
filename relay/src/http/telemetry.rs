//! `GET /metrics`: the operators' metrics in the Prometheus text format. On the main
//! address it answers only requests bearing `[metrics] token`; on `[metrics] listen` it
//! answers anyone who can reach that (private) address. With neither set it is not served.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::RelayState;
use crate::hub::HubCommand;

/// How long a scrape waits for a busy hub before leaving its workspace out.
const HUB_ANSWER: Duration = Duration::from_secs(2);

/// The content type of the exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics` on the main address: with the token, or not found.
pub async fn scrape(State(relay): State<Arc<RelayState>>, headers: HeaderMap) -> Response {
    let Some(token) = relay.config.metrics.token.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(kefu_proto::limits::bearer_credential)
        .unwrap_or("");
    // Digests compared, so the time taken says nothing about the token.
    if Sha256::digest(given.as_bytes()) != Sha256::digest(token.as_bytes()) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "a metrics token is required\n")
            .into_response();
    }
    exposition(&relay).await
}

/// The router of the separate metrics address.
pub fn router(relay: Arc<RelayState>) -> Router {
    Router::new()
        .route("/metrics", get(|State(relay): State<Arc<RelayState>>| async move { exposition(&relay).await }))
        .with_state(relay)
}

async fn exposition(relay: &RelayState) -> Response {
    // Every hub at once, each within the limit (a busy hub's queue may be full).
    let asks = relay.hubs.all().into_iter().map(|hub| async move {
        let ask = async {
            let (reply, answer) = tokio::sync::oneshot::channel();
            hub.send(HubCommand::Gauges { reply }).await.ok()?;
            answer.await.ok()
        };
        tokio::time::timeout(HUB_ANSWER, ask).await.ok().flatten()
    });
    let gauges: Vec<_> = futures_util::future::join_all(asks).await.into_iter().flatten().collect();
    let outbox = match relay.store.outbox_totals().await {
        Ok(counts) => (counts.pending, counts.dead),
        Err(e) => {
            tracing::error!(error = %e, "metrics: counting the outbox failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let text = relay.telemetry.render(&gauges, outbox).await;
    ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
}
