//! The network worker: one task owns the WebSocket to the relay. It dials, reports
//! [`NetEvent`]s, forwards every server frame as an [`Action`], sends what the app asks
//! through a [`WorkerHandle`], and reconnects with exponential backoff when the connection
//! drops. It keeps no conversation state: the app says what to resume from (its hello),
//! and the app keeps unsent messages, so frames asked for while offline are dropped here.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kefu_proto::frame::{ClientFrame, Hello, HelloAuth, Ping, ResumePoint, ServerFrame, close_code};
use kefu_proto::{PROTOCOL_VERSION, UnixMillis};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::app::{Action, NetEvent};

/// How often the worker pings an idle connection.
const PING_EVERY: Duration = Duration::from_secs(15);
/// Silence after which a connection counts as dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// First retry delay; doubles per failure.
const BACKOFF_BASE_MS: u64 = 500;
/// Longest retry delay.
const BACKOFF_MAX_MS: u64 = 30_000;

/// What the app asks the worker to do.
#[derive(Debug)]
enum Request {
    /// Say hello on the open connection.
    Hello(Vec<ResumePoint>),
    /// Send a frame (dropped while disconnected).
    Frame(ClientFrame),
}

/// The app's way to reach the worker. Dropping every handle stops the worker.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    requests: mpsc::UnboundedSender<Request>,
}

impl WorkerHandle {
    /// Says hello, resuming from `resume`.
    pub fn hello(&self, resume: Vec<ResumePoint>) {
        let _ = self.requests.send(Request::Hello(resume));
    }

    /// Sends a frame if connected.
    pub fn send(&self, frame: ClientFrame) {
        let _ = self.requests.send(Request::Frame(frame));
    }
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> UnixMillis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as UnixMillis).unwrap_or(0)
}

/// The delay before retry number `attempt` (0-based), before jitter.
pub fn backoff_ms(attempt: u32) -> u64 {
    BACKOFF_BASE_MS.saturating_mul(1u64 << attempt.min(16)).min(BACKOFF_MAX_MS)
}

/// Starts the worker for the agent WebSocket at `url` with `token`; a `wss://` URL is
/// dialled through `tls` (see [`crate::tls::Trust::ws_connector`]).
pub fn spawn(
    url: String,
    token: String,
    tls: Option<tokio_tungstenite::Connector>,
    actions: mpsc::UnboundedSender<Action>,
) -> (WorkerHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(url, token, tls, rx, actions));
    (WorkerHandle { requests: tx }, task)
}

/// How a session ended.
enum Ended {
    /// The app is gone: stop.
    Quit,
    /// The relay refused the token: stop retrying.
    LoggedOut(String),
    /// The connection dropped: retry.
    Lost(String),
}

async fn run(
    url: String,
    token: String,
    tls: Option<tokio_tungstenite::Connector>,
    mut requests: mpsc::UnboundedReceiver<Request>,
    actions: mpsc::UnboundedSender<Action>,
) {
    let mut attempt: u32 = 0;
    loop {
        if actions.send(Action::Net(NetEvent::Connecting { attempt })).is_err() {
            return;
        }
        let connected = tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, false, tls.clone()).await;
        let reason = match connected {
            Err(e) => {
                let e = crate::tls::describe(&e);
                tracing::info!(%url, error = %e, attempt, "cannot connect to the relay");
                format!("cannot connect: {e}")
            }
            Ok((ws, _)) => {
                tracing::info!(%url, "connected to the relay");
                let _ = actions.send(Action::Net(NetEvent::Opened));
                match session(ws, &token, &mut requests, &actions, &mut attempt).await {
                    Ended::Quit => return,
                    Ended::LoggedOut(reason) => {
                        tracing::warn!(%reason, "the relay refused the token");
                        let _ = actions.send(Action::Net(NetEvent::LoggedOut(reason)));
                        // Wait for the app to go; nothing more to do without a token.
                        while requests.recv().await.is_some() {}
                        return;
                    }
                    Ended::Lost(reason) => {
                        tracing::info!(%reason, "connection to the relay lost");
                        reason
                    }
                }
            }
        };
        // Jitter spreads the reconnects of many agents after a relay restart.
        let delay = backoff_ms(attempt) + rand::random_range(0..=BACKOFF_BASE_MS / 2);
        attempt = attempt.saturating_add(1);
        let retry_at = now_ms() + delay as i64;
        if actions.send(Action::Net(NetEvent::Lost { reason, retry_at, attempt })).is_err() {
            return;
        }
        let sleep = tokio::time::sleep(Duration::from_millis(delay));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                request = requests.recv() => if request.is_none() { return },
            }
        }
    }
}

async fn session<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    token: &str,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    actions: &mpsc::UnboundedSender<Action>,
    attempt: &mut u32,
) -> Ended
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut nonce = 0u64;
    loop {
        tokio::select! {
            request = requests.recv() => {
                let frame = match request {
                    None => {
                        let _ = sink.send(Message::Close(None)).await;
                        return Ended::Quit;
                    }
                    Some(Request::Hello(resume)) => ClientFrame::Hello(Hello {
                        protocol: PROTOCOL_VERSION,
                        auth: HelloAuth::Agent { token: token.to_string() },
                        resume,
                    }),
                    Some(Request::Frame(frame)) => frame,
                };
                let text = match serde_json::to_string(&frame) {
                    Ok(text) => text,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot encode a frame");
                        continue;
                    }
                };
                if let Err(e) = sink.send(Message::Text(text.into())).await {
                    return Ended::Lost(format!("send failed: {e}"));
                }
            }
            message = stream.next() => match message {
                None => return Ended::Lost("the relay closed the connection".into()),
                Some(Err(e)) => return Ended::Lost(e.to_string()),
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    match serde_json::from_str::<ServerFrame>(text.as_str()) {
                        Ok(frame) => {
                            if matches!(frame, ServerFrame::Welcome(_)) {
                                *attempt = 0;
                            }
                            if actions.send(Action::Server(frame)).is_err() {
                                return Ended::Quit;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, frame = %text.as_str(), "a frame this client does not understand"),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                    if code == close_code::UNAUTHORIZED || code == close_code::SUPERSEDED {
                        return Ended::LoggedOut(if reason.is_empty() { format!("closed {code}") } else { reason });
                    }
                    return Ended::Lost(format!("closed {code} {reason}").trim().to_string());
                }
                Some(Ok(_)) => last_heard = Instant::now(),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    return Ended::Lost("no answer from the relay".into());
                }
                nonce += 1;
                let text = serde_json::to_string(&ClientFrame::Ping(Ping { nonce })).unwrap_or_default();
                if let Err(e) = sink.send(Message::Text(text.into())).await {
                    return Ended::Lost(format!("send failed: {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_limit() {
        let delays: Vec<u64> = (0..8).map(backoff_ms).collect();
        assert_eq!(delays, vec![500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
        assert_eq!(backoff_ms(u32::MAX), 30_000);
    }
}
