//! The ceiling: a bare tokio-tungstenite forwarder with small buffers and nothing else —
//! no persistence, no routing, no parsing. A client connects to `/pair/<n>/a` or
//! `/pair/<n>/b`; every message from one side of pair `n` is written to the other side.
//!
//! Each connection has the shape the relay's connections have (a reader, a writer task
//! behind a bounded queue, writes batched between flushes), so the difference between the
//! two is the relay's own work: validation, the journal, the hub.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Read and write buffer size per connection, as the relay uses.
pub const BUFFER_BYTES: usize = 4 * 1024;

/// Frames queued for one connection's writer before its partner's reader waits.
const QUEUE: usize = 1024;

/// Frames written between flushes.
const WRITE_BATCH: usize = 64;

/// The two ends of a pair, filled in as they connect.
#[derive(Default)]
struct Pair {
    ends: Mutex<[Option<mpsc::Sender<Message>>; 2]>,
    joined: Notify,
}

type Pairs = Arc<Mutex<HashMap<u64, Arc<Pair>>>>;

/// The WebSocket settings of the forwarder: small buffers, as the relay's.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(BUFFER_BYTES)
        .write_buffer_size(BUFFER_BYTES)
        .max_write_buffer_size(64 * 1024 * 4)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

/// Serves pairs on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) -> Result<()> {
    let pairs: Pairs = Arc::default();
    loop {
        let (stream, _) = listener.accept().await.context("accept")?;
        let pairs = pairs.clone();
        tokio::spawn(async move {
            let _ = connection(stream, pairs).await;
        });
    }
}

/// `/pair/<n>/<a|b>` → (n, 0 or 1).
fn parse_path(path: &str) -> Option<(u64, usize)> {
    let rest = path.strip_prefix("/pair/")?;
    let (n, side) = rest.split_once('/')?;
    let side = match side {
        "a" => 0,
        "b" => 1,
        _ => return None,
    };
    Some((n.parse().ok()?, side))
}

// The handshake callback's error type is tungstenite's, large by its choice.
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, pairs: Pairs) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut path = String::new();
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_string();
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config())).await?;
    let (pair_id, side) = parse_path(&path).context("path must be /pair/<n>/<a|b>")?;
    let pair = pairs.lock().expect("pairs lock").entry(pair_id).or_default().clone();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    pair.ends.lock().expect("pair lock")[side] = Some(tx);
    pair.joined.notify_waiters();
    let (mut sink, mut stream) = ws.split();

    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            sink.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                match rx.try_recv() {
                    Ok(next) => sink.feed(next).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await?;
        }
        anyhow::Ok(())
    });

    let mut partner: Option<mpsc::Sender<Message>> = None;
    while let Some(message) = stream.next().await {
        let message = message?;
        match message {
            Message::Text(_) | Message::Binary(_) => {}
            Message::Close(_) => break,
            _ => continue,
        }
        let to = match &partner {
            Some(to) => to,
            None => {
                // The other end may still be finishing its handshake.
                loop {
                    let joined = pair.joined.notified();
                    tokio::pin!(joined);
                    joined.as_mut().enable();
                    if let Some(to) = pair.ends.lock().expect("pair lock")[1 - side].clone() {
                        break partner.insert(to);
                    }
                    joined.await;
                }
            }
        };
        if to.send(message).await.is_err() {
            break;
        }
    }
    pair.ends.lock().expect("pair lock")[side] = None;
    pairs.lock().expect("pairs lock").remove(&pair_id);
    writer.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_path;

    #[test]
    fn paths_name_a_pair_and_a_side() {
        assert_eq!(parse_path("/pair/12/a"), Some((12, 0)));
        assert_eq!(parse_path("/pair/0/b"), Some((0, 1)));
        assert_eq!(parse_path("/pair/x/a"), None);
        assert_eq!(parse_path("/pair/1/c"), None);
        assert_eq!(parse_path("/ws/customer"), None);
    }
}
