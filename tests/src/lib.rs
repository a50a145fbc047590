//! # kefu-tests — the end-to-end harness
//!
//! [`TestRelay`] starts the real relay (`kefu_relay::run`) on `127.0.0.1:0` with a
//! temporary data dir; [`Client`] speaks the real protocol over a real WebSocket. Tests
//! live in `tests/e2e.rs`, one binary.
//!
//! ## Layout
//! - [`TestRelay`]: start, stop, restart on the same data dir, add agents, log in.
//! - [`Client`]: a WebSocket client with typed send/receive and helpers that wait for a
//!   particular frame (with a generous guard against hanging, never a speed assertion).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use kefu_proto::frame::{
    Ack, BodyFormat, ClientFrame, ConversationChange, ConversationFrame, Hello, HelloAuth, MessageFrame, ResumePoint,
    Role, SendMessage, ServerFrame, Session, Welcome,
};
use kefu_proto::{ConversationId, PROTOCOL_VERSION, Seq};
use kefu_relay::{Clock, Config, ManualClock, Store, admin};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame before failing instead of hanging. Generous: it
/// guards against a hang, it does not measure speed.
pub const FRAME_WAIT: Duration = Duration::from_secs(30);

/// A password that passes the policy, for test agents.
pub const PASSWORD: &str = "correct horse battery staple";

/// A relay running in this process.
pub struct TestRelay {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data dir (kept across restarts).
    pub data_dir: PathBuf,
    /// The default workspace's widget key.
    pub widget_key: String,
    /// The clock conversations run on, when the test moves time itself.
    pub clock: Option<Arc<ManualClock>>,
    /// Keeps the temporary data dir alive.
    _temp: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<kefu_relay::Result<()>>>,
}

impl TestRelay {
    /// Starts a relay on a fresh temporary data dir with default settings.
    pub async fn start() -> Result<TestRelay> {
        Self::start_with(|_| {}).await
    }

    /// Starts a relay on a fresh temporary data dir, with settings adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Result<TestRelay> {
        let temp = tempfile::tempdir()?;
        let mut relay = Self::start_in(temp.path().to_path_buf(), adjust).await?;
        relay._temp = Some(temp);
        Ok(relay)
    }

    /// Starts a relay on an existing data dir.
    pub async fn start_in(data_dir: PathBuf, adjust: impl FnOnce(&mut Config)) -> Result<TestRelay> {
        Self::start_in_with_clock(data_dir, None, adjust).await
    }

    /// Starts a relay on a fresh temporary data dir whose time moves only when the test
    /// moves it ([`TestRelay::advance`]).
    pub async fn start_manual(adjust: impl FnOnce(&mut Config)) -> Result<TestRelay> {
        let temp = tempfile::tempdir()?;
        let clock = ManualClock::new(1_800_000_000_000);
        let mut relay = Self::start_in_with_clock(temp.path().to_path_buf(), Some(clock), adjust).await?;
        relay._temp = Some(temp);
        Ok(relay)
    }

    async fn start_in_with_clock(
        data_dir: PathBuf,
        manual: Option<Arc<ManualClock>>,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<TestRelay> {
        // Open the database first (creating it and the default workspace), so the widget
        // key is known before the relay starts and the two never migrate at once.
        let store = Store::open(&data_dir).await?;
        let widget_key = admin::show_workspace(&store, "default").await?.widget_key;
        store.close().await;
        let mut config = Config { data_dir: data_dir.clone(), ..Config::default() };
        adjust(&mut config);
        // The listener is bound before the relay runs: connections made meanwhile wait in
        // the backlog, so no readiness polling is needed.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let clock = manual.clone().map(Clock::Manual).unwrap_or_default();
        let task = tokio::spawn(kefu_relay::run_with_clock(listener, config, clock, async move {
            let _ = stop_rx.await;
        }));
        Ok(TestRelay { addr, data_dir, widget_key, clock: manual, _temp: None, stop: Some(stop_tx), task: Some(task) })
    }

    /// Stops the relay gracefully and waits for it; returns the data dir's keeper so a
    /// restart can reuse it.
    pub async fn stop(mut self) -> Result<Option<tempfile::TempDir>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.context("relay task panicked")?.map_err(|e| anyhow!("relay failed: {e}"))?;
        }
        Ok(self._temp.take())
    }

    /// Stops the relay and starts a new one on the same data dir.
    pub async fn restart(self) -> Result<TestRelay> {
        self.restart_with(|_| {}).await
    }

    /// Stops the relay and starts a new one on the same data dir with adjusted settings.
    pub async fn restart_with(self, adjust: impl FnOnce(&mut Config)) -> Result<TestRelay> {
        let data_dir = self.data_dir.clone();
        let temp = self.stop().await?;
        let mut relay = Self::start_in(data_dir, adjust).await?;
        relay._temp = temp;
        Ok(relay)
    }

    /// Moves the relay's manual clock forward; the relay looks at its timers at once.
    pub fn advance(&self, by: Duration) {
        self.clock.as_ref().expect("started with start_manual").advance(by);
    }

    /// Creates an agent with a role, capacity and skills, and logs in; returns the token.
    pub async fn agent_with(&self, email: &str, name: &str, role: Role, capacity: u32, skills: &str) -> Result<String> {
        let store = Store::open(&self.data_dir).await?;
        let (id, _) = admin::add_agent(&store, "default", email, name, role, Some(PASSWORD.into())).await?;
        let workspace = admin::show_workspace(&store, "default").await?.id;
        let skills = admin::parse_skills(skills)?;
        admin::update_agent(&store, workspace, id, Some(capacity), Some(&skills)).await?;
        store.close().await;
        self.login(email, PASSWORD).await
    }

    /// Calls the API as `token`; returns the status and the JSON body (Null when empty).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let mut request = http_client().request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let json = if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text)? };
        Ok((status, json))
    }

    /// Base URL for HTTP.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates an agent (password [`PASSWORD`]) and logs in; returns the token.
    pub async fn agent_token(&self, email: &str, name: &str) -> Result<String> {
        let store = Store::open(&self.data_dir).await?;
        admin::add_agent(&store, "default", email, name, Role::Agent, Some(PASSWORD.into())).await?;
        store.close().await;
        self.login(email, PASSWORD).await
    }

    /// Logs in; returns the token.
    pub async fn login(&self, email: &str, password: &str) -> Result<String> {
        let response = http_client()
            .post(self.url("/api/v1/login"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("login failed: {} {}", response.status(), response.text().await?);
        }
        let body: kefu_proto::api::LoginResponse = response.json().await?;
        Ok(body.token)
    }

    /// Opens a raw WebSocket to `path` without saying hello.
    pub async fn connect(&self, path: &str) -> Result<Client> {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", self.addr)).await?;
        Ok(Client { ws, backlog: Default::default(), welcome: None })
    }

    /// A new customer (no token), after a successful hello.
    pub async fn customer(&self) -> Result<Client> {
        self.customer_resuming(None, vec![]).await
    }

    /// A new customer who chose a skill group.
    pub async fn customer_in(&self, group: &str) -> Result<Client> {
        let mut client = self.connect("/ws/customer").await?;
        let auth = HelloAuth::Customer {
            widget_key: self.widget_key.clone(),
            customer_token: None,
            name: None,
            group: Some(group.into()),
            customer_id: None,
            customer_signature: None,
        };
        client.hello(auth, vec![]).await?;
        Ok(client)
    }

    /// A customer with a token from an earlier welcome, resuming from `resume`.
    pub async fn customer_resuming(&self, token: Option<String>, resume: Vec<ResumePoint>) -> Result<Client> {
        let mut client = self.connect("/ws/customer").await?;
        let auth = HelloAuth::Customer {
            widget_key: self.widget_key.clone(),
            customer_token: token,
            name: None,
            group: None,
            customer_id: None,
            customer_signature: None,
        };
        client.hello(auth, resume).await?;
        Ok(client)
    }

    /// An agent with `token`, after a successful hello.
    pub async fn agent(&self, token: &str, resume: Vec<ResumePoint>) -> Result<Client> {
        let mut client = self.connect("/ws/agent").await?;
        client.hello(HelloAuth::Agent { token: token.into() }, resume).await?;
        Ok(client)
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An HTTP client that never goes through a proxy (with the crypto provider reqwest needs
/// installed first).
pub fn http_client() -> reqwest::Client {
    kefu_relay::tls::http_client().no_proxy().build().expect("http client")
}

/// A raw WebSocket to the relay, for tests that need to set handshake headers.
pub type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a client received instead of a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code and reason.
    Closed(u16, String),
    /// The connection ended without a close frame.
    Dropped,
}

/// A WebSocket client speaking the kefu protocol.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames received while waiting for another one, in arrival order; later waits look
    /// here first, so no frame is lost to a test that was waiting for something else.
    backlog: std::collections::VecDeque<ServerFrame>,
    /// The welcome, once hello succeeded.
    pub welcome: Option<Welcome>,
}

impl Client {
    /// Says hello and waits for the welcome.
    pub async fn hello(&mut self, auth: HelloAuth, resume: Vec<ResumePoint>) -> Result<&Welcome> {
        self.send(&ClientFrame::Hello(Hello { protocol: PROTOCOL_VERSION, auth, resume })).await?;
        match self.recv().await? {
            ServerFrame::Welcome(w) => {
                self.welcome = Some(w);
                Ok(self.welcome.as_ref().expect("set"))
            }
            other => bail!("expected welcome, got {other:?}"),
        }
    }

    /// The customer token from the welcome.
    pub fn customer_token(&self) -> String {
        match &self.welcome.as_ref().expect("welcomed").session {
            Session::Customer { customer_token, .. } => customer_token.clone(),
            other => panic!("not a customer session: {other:?}"),
        }
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        self.send_raw(&serde_json::to_string(frame)?).await
    }

    /// Sends raw text.
    pub async fn send_raw(&mut self, text: &str) -> Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// Sends a text message (customers: `conversation` None).
    pub async fn say(&mut self, conversation: Option<ConversationId>, client_msg_id: &str, body: &str) -> Result<()> {
        self.send(&ClientFrame::Send(SendMessage {
            client_msg_id: client_msg_id.into(),
            conversation_id: conversation,
            body: body.into(),
            format: BodyFormat::Text,
            internal: false,
            attachments: vec![],
        }))
        .await
    }

    /// Sends a message and waits for its ack; fails if the relay refuses it.
    pub async fn say_acked(
        &mut self,
        conversation: Option<ConversationId>,
        client_msg_id: &str,
        body: &str,
    ) -> Result<Ack> {
        self.say(conversation, client_msg_id, body).await?;
        // A refusal of this very message fails at once, saying why, rather than after
        // waiting out `FRAME_WAIT` for an ack that cannot come.
        let answer = self
            .expect(|f| match f {
                ServerFrame::Ack(a) if a.client_msg_id == client_msg_id => Some(Ok(a.clone())),
                ServerFrame::Error(e) if e.client_msg_id.as_deref() == Some(client_msg_id) => Some(Err(e.clone())),
                _ => None,
            })
            .await?;
        answer.map_err(|e| anyhow!("message {client_msg_id} refused: {:?}: {}", e.code, e.message))
    }

    /// The next frame; fails on close or after [`FRAME_WAIT`].
    pub async fn recv(&mut self) -> Result<ServerFrame> {
        match self.next().await? {
            Ok(frame) => Ok(frame),
            Err(ending) => bail!("connection ended: {ending:?}"),
        }
    }

    /// The next frame, or how the connection ended.
    pub async fn next(&mut self) -> Result<Result<ServerFrame, Ending>> {
        loop {
            let message = tokio::time::timeout(FRAME_WAIT, self.ws.next()).await.context("no frame arrived")?;
            match message {
                None => return Ok(Err(Ending::Dropped)),
                Some(Err(_)) => return Ok(Err(Ending::Dropped)),
                Some(Ok(Message::Text(text))) => {
                    return Ok(Ok(serde_json::from_str(text.as_str()).with_context(|| format!("bad frame: {text}"))?));
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Ok(Err(Ending::Closed(code, reason)));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The first frame (from the backlog, then the socket) for which `pick` returns
    /// something; every other frame stays in the backlog, in order.
    pub async fn expect<T>(&mut self, mut pick: impl FnMut(&ServerFrame) -> Option<T>) -> Result<T> {
        if let Some(i) = self.backlog.iter().position(|f| pick(f).is_some()) {
            let frame = self.backlog.remove(i).expect("position is valid");
            return Ok(pick(&frame).expect("matched before"));
        }
        loop {
            let frame = self.recv().await?;
            if let Some(found) = pick(&frame) {
                return Ok(found);
            }
            self.backlog.push_back(frame);
        }
    }

    /// Waits for a message frame in any conversation.
    pub async fn expect_message(&mut self) -> Result<MessageFrame> {
        self.expect(|f| match f {
            ServerFrame::Message(m) => Some(m.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for a conversation to be assigned (to this agent, or, seen by a customer, to
    /// someone).
    pub async fn expect_assigned(&mut self) -> Result<ConversationFrame> {
        self.expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Assigned => Some(c.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for `conversation` to be assigned, passing over other conversations' changes.
    pub async fn expect_assignment_of(&mut self, conversation: ConversationId) -> Result<ConversationFrame> {
        self.expect(|f| match f {
            ServerFrame::Conversation(c)
                if c.change == ConversationChange::Assigned && c.conversation.id == conversation =>
            {
                Some(c.clone())
            }
            _ => None,
        })
        .await
    }

    /// Waits for a conversation change.
    pub async fn expect_conversation(&mut self) -> Result<ConversationFrame> {
        self.expect(|f| match f {
            ServerFrame::Conversation(c) => Some(c.clone()),
            _ => None,
        })
        .await
    }

    /// Receives messages until one with `body` arrives; returns all messages received,
    /// that one included.
    pub async fn messages_until(&mut self, body: &str) -> Result<Vec<MessageFrame>> {
        let mut got = Vec::new();
        loop {
            let m = self.expect_message().await?;
            let done = m.body == body;
            got.push(m);
            if done {
                return Ok(got);
            }
        }
    }

    /// Waits for an error frame.
    pub async fn expect_error(&mut self) -> Result<kefu_proto::frame::ErrorFrame> {
        self.expect(|f| match f {
            ServerFrame::Error(e) => Some(e.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for the connection to end; fails if a frame other than an error arrives first.
    pub async fn expect_end(&mut self) -> Result<Ending> {
        loop {
            match self.next().await? {
                Err(ending) => return Ok(ending),
                Ok(ServerFrame::Error(_)) => continue,
                Ok(other) => bail!("expected the connection to end, got {other:?}"),
            }
        }
    }

    /// Closes the connection with a close handshake and waits for the relay's answer: by
    /// then the relay has let go of this connection.
    pub async fn close(mut self) -> Result<()> {
        self.ws.close(None).await?;
        while let Some(Ok(message)) = tokio::time::timeout(FRAME_WAIT, self.ws.next()).await? {
            if let Message::Close(_) = message {
                break;
            }
        }
        Ok(())
    }

    /// Closes the connection abruptly (no close handshake), like a dropped network.
    pub fn drop_connection(self) {
        drop(self.ws);
    }
}

/// Asserts messages are exactly `first..=last` in order.
pub fn assert_contiguous(messages: &[MessageFrame], first: Seq, last: Seq) {
    let seqs: Vec<Seq> = messages.iter().map(|m| m.seq).collect();
    let expected: Vec<Seq> = (first..=last).collect();
    assert_eq!(seqs, expected, "messages must arrive in order, each exactly once");
}

/// Serves `app` on a free loopback port (a fake webhook receiver or outside service);
/// returns its address, and the sender that stops it when dropped.
pub async fn serve_loopback(app: axum::Router) -> Result<(SocketAddr, oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok((addr, stop))
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the signature the relay puts
/// on what it pushes, computed here independently of the relay's code.
pub fn webhook_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
