//! `kefu demo`: a relay in this process on a temporary data dir, a demo agent, and a few
//! simulated customers asking the questions an online shop hears every day, so a
//! newcomer sees the workstation working with one command.
//!
//! The shop has two skill groups (presales, aftersales), a colleague to transfer to
//! (offline, so the relay refuses a transfer to her by name; her group takes one), shared
//! canned replies (`/hi`, `/hello`, `/return`, `/invoice`), and five customers for a
//! demo agent who holds three at once: two wait in the queue, a VIP first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kefu_proto::PROTOCOL_VERSION;
use kefu_proto::api::{CannedScope, NewCannedReply, NewGroup};
use kefu_proto::frame::{BodyFormat, ClientFrame, Role, SendMessage, ServerFrame, Session, Skill, SkillLevel, Typing};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::config::Credentials;
use crate::error::{Error, Result};

/// The demo agent's e-mail.
pub const DEMO_EMAIL: &str = "demo@kefu.example";
/// How many conversations the demo agent holds at once: fewer than the customers, so
/// the queue pane has something in it.
const DEMO_CAPACITY: u32 = 3;

/// Shared canned replies: (shortcut, title, body).
const CANNED: &[(&str, &str, &str)] = &[
    ("hi", "问候 Greeting", "{customer.name}，您好！我是{agent.name}，很高兴为您服务。"),
    ("hello", "Greeting (English)", "Hi {customer.name}, this is {agent.name}. How can I help you today?"),
    (
        "return",
        "退货 Returns",
        "Hi {customer.name}, returns are free within 30 days of delivery: start one under My orders → Return, and we send a prepaid label.",
    ),
    ("invoice", "发票 Invoice", "您好，电子发票会在订单完成后 3 个工作日内开具，请提供公司抬头和税号。"),
];

/// One simulated customer: a name and what they say, one line per turn. Each line after
/// the first waits for an answer from the agent.
struct Script {
    name: &'static str,
    lines: &'static [&'static str],
    /// Seconds before the customer writes first.
    start_after: u64,
    /// The skill group the customer chose in the widget.
    group: &'static str,
    /// Marked VIP before writing.
    vip: bool,
}

const CUSTOMERS: &[Script] = &[
    Script {
        name: "李女士",
        start_after: 1,
        group: "aftersales",
        vip: false,
        lines: &["你好，我的快递到哪了？订单号 20251120-8841", "昨天就显示到上海了，今天能送到吗？", "好的，谢谢！"],
    },
    Script {
        name: "Tom Becker",
        start_after: 4,
        group: "aftersales",
        vip: false,
        lines: &[
            "Hi! Can I return these shoes? They are half a size too small.",
            "I bought them 12 days ago. Do I pay for the return shipping?",
            "Great, thanks for the quick help.",
        ],
    },
    Script {
        name: "王先生",
        start_after: 9,
        group: "presales",
        vip: false,
        lines: &[
            "可以开发票吗？公司抬头的那种。",
            "税号是 91310000MA1FL8XX3C，抬头：上海某某科技有限公司",
            "多久能开好？",
        ],
    },
    Script {
        name: "陈小姐",
        start_after: 12,
        group: "presales",
        vip: true,
        lines: &["这款耳环有现货吗？想买两对送人", "可以帮我包装成礼物吗？"],
    },
    Script {
        name: "Anna Schmidt",
        start_after: 15,
        group: "presales",
        vip: false,
        lines: &["Do you ship to Germany? How long does delivery take?", "And are customs fees included?"],
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
        let workspace = kefu_relay::admin::show_workspace(&store, "default").await.map_err(relay_err)?;
        for (slug, name, is_default) in [("presales", "售前 Presales", true), ("aftersales", "售后 Aftersales", false)]
        {
            let group = NewGroup { slug: slug.into(), name: Some(name.into()), is_default, ..NewGroup::default() };
            kefu_relay::admin::add_group(&store, workspace.id, &group).await.map_err(relay_err)?;
        }
        let skill = |group: &str, level| Skill { group: group.into(), level };
        let (agent, password) =
            kefu_relay::admin::add_agent(&store, "default", DEMO_EMAIL, "演示坐席", Role::Agent, None)
                .await
                .map_err(relay_err)?;
        let skills = [skill("presales", SkillLevel::Senior), skill("aftersales", SkillLevel::Junior)];
        kefu_relay::admin::update_agent(&store, workspace.id, agent, Some(DEMO_CAPACITY), Some(&skills))
            .await
            .map_err(relay_err)?;
        // A colleague to transfer to (offline: her group takes a transfer, she does not).
        let (colleague, _) =
            kefu_relay::admin::add_agent(&store, "default", "lina@kefu.example", "李娜", Role::Agent, None)
                .await
                .map_err(relay_err)?;
        let skills = [skill("aftersales", SkillLevel::Senior)];
        kefu_relay::admin::update_agent(&store, workspace.id, colleague, None, Some(&skills))
            .await
            .map_err(relay_err)?;
        for (shortcut, title, body) in CANNED {
            let reply = NewCannedReply {
                shortcut: (*shortcut).into(),
                title: (*title).into(),
                body: (*body).into(),
                scope: CannedScope::Workspace,
            };
            store.add_canned_reply(workspace.id, None, &reply).await.map_err(relay_err)?;
        }
        let widget_key = workspace.widget_key;
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
        let customers = CUSTOMERS
            .iter()
            .map(|script| {
                let data_dir = data_dir.path().to_path_buf();
                tokio::spawn(customer(addr, widget_key.clone(), data_dir, script))
            })
            .collect();
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
async fn customer(addr: SocketAddr, widget_key: String, data_dir: PathBuf, script: &'static Script) {
    if let Err(e) = run_customer(addr, widget_key, &data_dir, script).await {
        tracing::info!(customer = script.name, error = %e, "demo customer stopped");
    }
}

/// Says hello as a customer (continuing as `token`'s contact, if given).
async fn customer_hello(
    addr: SocketAddr,
    widget_key: &str,
    token: Option<&str>,
    script: &Script,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/customer")).await?;
    // Written as JSON, not with the struct, so optional fields a newer protocol adds to
    // the customer hello need no change here.
    let mut auth =
        serde_json::json!({"kind": "customer", "widget_key": widget_key, "name": script.name, "group": script.group});
    if let Some(token) = token {
        auth["customer_token"] = token.into();
    }
    let hello = serde_json::json!({"type": "hello", "protocol": PROTOCOL_VERSION, "auth": auth});
    ws.send(Message::Text(hello.to_string().into())).await?;
    Ok(ws)
}

/// A VIP is marked before writing, as a shop's CRM would: the first hello makes the
/// contact, the mark goes into the database, and the second hello carries it.
async fn vip_token(addr: SocketAddr, widget_key: &str, data_dir: &Path, script: &Script) -> anyhow::Result<String> {
    let mut ws = customer_hello(addr, widget_key, None, script).await?;
    let (token, contact) = loop {
        let Some(message) = ws.next().await else { anyhow::bail!("the relay closed before its welcome") };
        if let Message::Text(text) = message?
            && let Ok(ServerFrame::Welcome(welcome)) = serde_json::from_str::<ServerFrame>(text.as_str())
            && let Session::Customer { customer_token, contact_id, .. } = welcome.session
        {
            break (customer_token, contact_id);
        }
    };
    ws.close(None).await.ok();
    let store = kefu_relay::Store::open(data_dir).await?;
    let workspace = kefu_relay::admin::show_workspace(&store, "default").await?;
    store.set_contact_vip(workspace.id, contact, true).await?;
    store.close().await;
    Ok(token)
}

async fn run_customer(
    addr: SocketAddr,
    widget_key: String,
    data_dir: &Path,
    script: &'static Script,
) -> anyhow::Result<()> {
    let token = if script.vip { Some(vip_token(addr, &widget_key, data_dir, script).await?) } else { None };
    let ws = customer_hello(addr, &widget_key, token.as_deref(), script).await?;
    let (mut sink, mut stream) = ws.split();
    let send =
        |frame: ClientFrame| -> anyhow::Result<Message> { Ok(Message::Text(serde_json::to_string(&frame)?.into())) };
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
