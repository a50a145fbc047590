//! `kefu demo`: a relay in this process on a temporary data dir, a demo agent, and a few
//! simulated customers asking the questions an online shop hears every day, so a
//! newcomer sees the workstation working with one command.
//!
//! The shop has two skill groups (presales, aftersales), a colleague to transfer to
//! (offline, so the relay refuses a transfer to her by name; her group takes one), shared
//! canned replies (`/hi`, `/hello`, `/return`, `/invoice`), the sample knowledge base
//! (Chinese and English articles, searched with `s`), three tickets (two of them the demo
//! agent's), and six customers for a demo agent who holds three at once.
//!
//! The bot is on, as in a real shop with a knowledge base: each customer first hears from
//! it. Most then ask for a person ("转人工", "a real person, please") or ask for one
//! straight away, and reach the agent with the intent the bot found; one is helped by the
//! bot's answer and never needs the agent. So the queue still fills, a VIP first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kefu_proto::PROTOCOL_VERSION;
use kefu_proto::api::{CannedScope, NewArticle, NewCannedReply, NewGroup, TicketPatch};
use kefu_proto::frame::{
    AuthorKind, BodyFormat, ClientFrame, ConversationState, Role, SendMessage, ServerFrame, Session, Skill, SkillLevel,
    TicketPriority, TicketStatus, Typing,
};
use kefu_relay::tickets::{Actor, TicketDraft};
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
/// the first waits for an answer from the agent; while the bot has the conversation, the
/// customer answers the bot with `to_bot`.
struct Script {
    name: &'static str,
    lines: &'static [&'static str],
    /// What the customer says after the bot answered, while it still has them: asking for a
    /// person, or saying the answer helped.
    to_bot: &'static str,
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
        to_bot: "没用，我要转人工",
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
        to_bot: "Can I talk to a real person, please?",
    },
    Script {
        name: "王先生",
        start_after: 9,
        group: "presales",
        vip: false,
        // Asks for a person before anything else, as many do.
        lines: &[
            "人工客服在吗？",
            "可以开发票吗？公司抬头的那种。",
            "税号是 91310000MA1FL8XX3C，抬头：上海某某科技有限公司",
            "多久能开好？",
        ],
        to_bot: "转人工",
    },
    Script {
        name: "陈小姐",
        start_after: 12,
        group: "presales",
        vip: true,
        lines: &["这款耳环有现货吗？想买两对送人", "可以帮我包装成礼物吗？"],
        to_bot: "找人工客服",
    },
    Script {
        name: "Anna Schmidt",
        start_after: 15,
        group: "presales",
        vip: false,
        lines: &["Do you ship to Germany? How long does delivery take?", "And are customs fees included?"],
        to_bot: "I'd like to speak to someone, please.",
    },
    Script {
        name: "赵先生",
        start_after: 18,
        group: "aftersales",
        vip: false,
        // The bot's answer is enough: it resolves the conversation.
        lines: &["退款多久能到账？"],
        to_bot: "明白了，谢谢",
    },
];

/// How many times a customer answers the bot before giving up on it (the bot hands over
/// by itself after three unhelpful answers anyway).
const BOT_TURNS: u32 = 2;

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
        let mut groups = Vec::new();
        for (slug, name, is_default) in [("presales", "售前 Presales", true), ("aftersales", "售后 Aftersales", false)]
        {
            let group = NewGroup { slug: slug.into(), name: Some(name.into()), is_default, ..NewGroup::default() };
            groups.push(kefu_relay::admin::add_group(&store, workspace.id, &group).await.map_err(relay_err)?.id);
        }
        let [presales, aftersales] = groups[..] else {
            return Err(Error::Relay("the demo groups were not made".into()));
        };
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
        // The sample knowledge base: the agent searches it, the bot answers from it.
        let articles: Vec<NewArticle> = serde_json::from_str(kefu_relay::evaluation::SAMPLE_ARTICLES)
            .map_err(|e| Error::Relay(format!("the sample knowledge base: {e}")))?;
        for article in &articles {
            let slug = kefu_relay::knowledge::check_article(article).map_err(relay_err)?;
            store.save_article(workspace.id, &slug, article).await.map_err(relay_err)?;
        }
        // Tickets from before today: two of the demo agent's, one of the colleague's.
        let ticket = |subject: &str, description: &str, priority, group, assignee| TicketDraft {
            subject: subject.into(),
            description: description.into(),
            priority,
            group: Some(group),
            contact: None,
            conversation: None,
            assignee: Some(assignee),
        };
        let drafts = [
            ticket(
                "补开发票：上海某某科技有限公司",
                "客户要公司抬头的增值税普通发票。\n税号 91310000MA1FL8XX3C，订单 20251118-5520。",
                TicketPriority::High,
                presales,
                agent,
            ),
            ticket(
                "换货 42 → 43（订单 20251117-3391）",
                "跑鞋偏小，客户要换大半码。已确认 43 码有货，等客户寄回。",
                TicketPriority::Normal,
                aftersales,
                agent,
            ),
            ticket(
                "Parcel damaged in transit",
                "The customer sent photos of a crushed box; the mug inside is broken. Send a replacement.",
                TicketPriority::Urgent,
                aftersales,
                colleague,
            ),
        ];
        let mut made = Vec::new();
        for draft in drafts {
            made.push(store.create_ticket(workspace.id, draft, Actor::System).await.map_err(relay_err)?.id);
        }
        let waiting = TicketPatch { status: Some(TicketStatus::Pending), ..TicketPatch::default() };
        store.update_ticket(workspace.id, made[1], &waiting, Actor::Agent(agent)).await.map_err(relay_err)?;
        store
            .add_ticket_note(workspace.id, made[1], "已发退货地址，等客户寄回旧鞋。", Actor::Agent(agent))
            .await
            .map_err(relay_err)?;
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
        let login = crate::login::login(&relay_url, &crate::tls::Trust::default(), DEMO_EMAIL, &password, None).await?;
        let credentials = Credentials {
            relay: relay_url,
            token: login.token,
            email: DEMO_EMAIL.into(),
            expires_at: login.expires_at,
            ca_file: None,
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
    let mut sent = 0;
    let mut say = async move |sink: &mut Sink, line: &str| -> anyhow::Result<()> {
        // Type for a moment, as people do.
        let typing = ClientFrame::Typing(Typing { conversation_id: None, active: true });
        sink.send(Message::Text(serde_json::to_string(&typing)?.into())).await.ok();
        tokio::time::sleep(Duration::from_millis(1500 + 40 * line.chars().count() as u64)).await;
        sent += 1;
        let message = ClientFrame::Send(SendMessage {
            client_msg_id: format!("demo-{}-{sent}", script.start_after),
            conversation_id: None,
            body: line.to_string(),
            format: BodyFormat::Text,
            internal: false,
            attachments: Vec::new(),
        });
        sink.send(Message::Text(serde_json::to_string(&message)?.into())).await?;
        Ok(())
    };
    tokio::time::sleep(Duration::from_secs(script.start_after)).await;
    say(&mut sink, script.lines[0]).await?;
    let mut next_line = 1;
    // Whether the bot has the conversation, as the relay last said.
    let mut with_bot = false;
    // When to answer the bot's last message (a pause to read it first).
    let mut answer_bot_at: Option<tokio::time::Instant> = None;
    let mut bot_turns = 0;
    // Stay connected (reading) afterwards, so receipts and replies have somewhere to go.
    loop {
        let bot_wait = async {
            match answer_bot_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return Ok(()) };
                let Message::Text(text) = message? else { continue };
                match serde_json::from_str::<ServerFrame>(text.as_str()) {
                    Ok(ServerFrame::Conversation(change)) => {
                        with_bot = change.conversation.state == ConversationState::Bot;
                    }
                    Ok(ServerFrame::Message(m)) if m.author.kind == AuthorKind::Bot => {
                        answer_bot_at = Some(tokio::time::Instant::now() + Duration::from_secs(3));
                    }
                    // The agent answered: the next question, after a moment.
                    Ok(ServerFrame::Message(m)) if m.author.kind == AuthorKind::Agent && next_line < script.lines.len() => {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        say(&mut sink, script.lines[next_line]).await?;
                        next_line += 1;
                    }
                    _ => {}
                }
            }
            () = bot_wait => {
                answer_bot_at = None;
                // The bot may have handed over meanwhile: then the agent is next.
                if with_bot && bot_turns < BOT_TURNS {
                    bot_turns += 1;
                    say(&mut sink, script.to_bot).await?;
                }
            }
        }
    }
}

/// The customer's half of the WebSocket.
type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_ask_the_bot_for_a_person_in_words_it_understands() {
        let intents = kefu_relay::config::BotConfig::default().intents().unwrap();
        let classifier = kefu_relay::intent::Classifier::new(intents);
        let intent = |text: &str| classifier.classify(text, &[]).intent;
        for script in CUSTOMERS {
            let asks = intent(script.to_bot).as_deref() == Some("human");
            let thanks = kefu_relay::bot::feedback_of(script.to_bot) == kefu_relay::bot::Feedback::Helpful;
            assert!(
                asks || thanks,
                "{}: {:?} is neither a request for a person nor thanks",
                script.name,
                script.to_bot
            );
            assert!(!asks || !thanks, "{}: {:?} is ambiguous", script.name, script.to_bot);
        }
        let reach_the_agent = CUSTOMERS.iter().filter(|s| intent(s.to_bot).as_deref() == Some("human")).count();
        assert!(reach_the_agent as u32 > DEMO_CAPACITY, "the queue fills");
        assert_eq!(intent(CUSTOMERS[2].lines[0]).as_deref(), Some("human"), "one asks for a person at once");
    }

    #[test]
    fn the_sample_knowledge_base_imports() {
        let articles: Vec<NewArticle> = serde_json::from_str(kefu_relay::evaluation::SAMPLE_ARTICLES).unwrap();
        assert!(articles.len() > 10);
        for article in &articles {
            kefu_relay::knowledge::check_article(article).unwrap();
        }
    }
}
