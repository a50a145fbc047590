//! `kefu demo`: a relay in this process on a temporary data dir, a demo agent, and a few
//! simulated customers asking the questions an online shop hears every day, so a
//! newcomer sees the workstation working with one command.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kefu_proto::PROTOCOL_VERSION;
use kefu_proto::frame::{BodyFormat, ClientFrame, Role, SendMessage, ServerFrame, Typing};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::config::Credentials;
use crate::error::{Error, Result};

/// The demo agent's e-mail.
pub const DEMO_EMAIL: &str = "demo@kefu.example";

/// One simulated customer: a name and what they say, one line per turn. Each line after
/// the first waits for an answer from the agent.
struct Script {
    name: &'static str,
    lines: &'static [&'static str],
    /// Seconds before the customer writes first.
    start_after: u64,
}

const CUSTOMERS: &[Script] = &[
    Script {
        name: "李女士",
        start_after: 1,
        lines: &["你好，我的快递到哪了？订单号 20251120-8841", "昨天就显示到上海了，今天能送到吗？", "好的，谢谢！"],
    },
    Script {
        name: "Tom Becker",
        start_after: 4,
        lines: &[
            "Hi! Can I return these shoes? They are half a size too small.",
            "I bought them 12 days ago. Do I pay for the return shipping?",
            "Great, thanks for the quick help.",
        ],
    },
    Script {
        name: "王先生",
        start_after: 9,
        lines: &[
            "可以开发票吗？公司抬头的那种。",
            "税号是 91310000MA1FL8XX3C，抬头：上海某某科技有限公司",
            "多久能开好？",
        ],
    },
    Script {
        name: "陈小姐", start_after: 15, lines: &["这款耳环有现货吗？想买两对送人", "可以帮我包装成礼物吗？"]
    },
];

/// A running demo: the relay and its customers. Dropping it stops them.
pub struct Demo {
    /// Credentials of the logged-in demo agent (not written to disk).
    pub credentials: Credentials,
    /// Keeps the data dir until the demo ends.
    _data_dir: tempfile::TempDir,
    /// Stops the relay.
    stop: Option<oneshot::Sender<()>>,
    /// The relay.
    relay: Option<JoinHandle<kefu_relay::Result<()>>>,
    /// The customers.
    customers: Vec<JoinHandle<()>>,
}

impl Demo {
    /// Starts the relay, the agent and the customers.
    pub async fn start() -> Result<Demo> {
        let data_dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let relay_err = |e: kefu_relay::Error| Error::Relay(format!("demo relay: {e}"));
        let store = kefu_relay::Store::open(data_dir.path()).await.map_err(relay_err)?;
        let (_, password) = kefu_relay::admin::add_agent(&store, "default", DEMO_EMAIL, "演示坐席", Role::Agent, None)
            .await
            .map_err(relay_err)?;
        let widget_key = kefu_relay::admin::show_workspace(&store, "default").await.map_err(relay_err)?.widget_key;
        store.close().await;
        let password = password.ok_or_else(|| Error::Relay("the demo agent got no password".into()))?;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Relay(format!("cannot listen on loopback: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::Relay(e.to_string()))?;
        let config = kefu_relay::Config { data_dir: data_dir.path().to_path_buf(), ..kefu_relay::Config::default() };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let relay = tokio::spawn(kefu_relay::run(listener, config, async move {
            let _ = stop_rx.await;
        }));

        let relay_url = format!("http://{addr}");
        let login = crate::login::login(&relay_url, DEMO_EMAIL, &password, None).await?;
        let credentials = Credentials {
            relay: relay_url,
            token: login.token,
            email: DEMO_EMAIL.into(),
            expires_at: login.expires_at,
        };
        let customers =
            CUSTOMERS.iter().map(|script| tokio::spawn(customer(addr, widget_key.clone(), script))).collect();
        Ok(Demo { credentials, _data_dir: data_dir, stop: Some(stop_tx), relay: Some(relay), customers })
    }

    /// Stops the customers and the relay, and waits for the relay to finish.
    pub async fn stop(mut self) {
        for customer in &self.customers {
            customer.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(relay) = self.relay.take()
            && let Ok(Err(e)) = relay.await
        {
            tracing::warn!(error = %e, "the demo relay stopped with an error");
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        for customer in &self.customers {
            customer.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One simulated customer; errors end it quietly (it is a demo), after logging.
async fn customer(addr: SocketAddr, widget_key: String, script: &'static Script) {
    if let Err(e) = run_customer(addr, widget_key, script).await {
        tracing::info!(customer = script.name, error = %e, "demo customer stopped");
    }
}

async fn run_customer(addr: SocketAddr, widget_key: String, script: &'static Script) -> anyhow::Result<()> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/customer")).await?;
    let (mut sink, mut stream) = ws.split();
    let send =
        |frame: ClientFrame| -> anyhow::Result<Message> { Ok(Message::Text(serde_json::to_string(&frame)?.into())) };
    // Written as JSON, not with the struct, so optional fields a newer protocol adds to
    // the customer hello need no change here.
    let hello = serde_json::json!({
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "auth": {"kind": "customer", "widget_key": widget_key, "name": script.name},
    });
    sink.send(Message::Text(hello.to_string().into())).await?;
    tokio::time::sleep(Duration::from_secs(script.start_after)).await;
    for (turn, line) in script.lines.iter().enumerate() {
        if turn > 0 {
            // Wait for the agent to answer before the next question.
            loop {
                match stream.next().await {
                    None => return Ok(()),
                    Some(message) => {
                        if let Message::Text(text) = message?
                            && let Ok(ServerFrame::Message(_)) = serde_json::from_str::<ServerFrame>(text.as_str())
                        {
                            break;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        // Type for a moment, as people do.
        sink.send(send(ClientFrame::Typing(Typing { conversation_id: None, active: true }))?).await.ok();
        tokio::time::sleep(Duration::from_millis(1500 + 40 * line.chars().count() as u64)).await;
        let message = SendMessage {
            client_msg_id: format!("demo-{}-{turn}", script.start_after),
            conversation_id: None,
            body: (*line).to_string(),
            format: BodyFormat::Text,
            internal: false,
            attachments: Vec::new(),
        };
        sink.send(send(ClientFrame::Send(message))?).await?;
    }
    // Stay connected (reading) so receipts and replies have somewhere to go.
    while let Some(message) = stream.next().await {
        message?;
    }
    Ok(())
}
