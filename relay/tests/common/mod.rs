//! What the relay's process tests check the same way.

use futures_util::{Stream, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};

/// After SIGTERM: the client is told the relay is going away (close code 1001, as the
/// protocol says), and the process exits with success.
pub async fn closes_going_away_and_exits_cleanly<S>(ws: &mut S, child: &mut tokio::process::Child)
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let closing = loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(closing, Some(1001));
    let status = child.wait().await.unwrap();
    assert!(status.success(), "exit status {status:?}");
}
