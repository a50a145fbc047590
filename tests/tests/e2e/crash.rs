//! Crash safety and slow consumers.
//!
//! **Crash**: the real `kefu-relay` binary is put under load by several customers (each
//! keeping a window of messages in flight) and one agent, killed with SIGKILL mid-stream,
//! restarted on the same data dir, and every client reconnects with resume and re-sends
//! what it has no ack for, with the same ids — three times, at different points. Then:
//! every acknowledged message is stored exactly once, in the order it was sent, with the
//! seq its ack named; the agent saw each conversation's messages exactly once and in
//! order, and everything it saw is stored as it saw it (nothing was delivered that was not
//! durable); the conversations that were queued are assigned in their original order.
//!
//! How the binary is found: next to this test's executable (`target/debug/kefu-relay`),
//! built with the same cargo when missing (see `tui.rs`). The relay is started on
//! `127.0.0.1:0` and says where it listens on stderr; nothing polls for readiness.
//!
//! **Slow consumer**: an agent that stops reading (with a small socket receive buffer) is
//! cut off with close 4008 once its outbound queue (`limits.outbound_queue`, 64 here) fills,
//! while the other conversation goes on; it resumes on reconnect with nothing lost.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use kefu_proto::frame::{
    BodyFormat, ClientFrame, ConversationChange, Hello, HelloAuth, ResumePoint, ServerFrame, Session, Welcome,
    close_code,
};
use kefu_proto::{ConversationId, PROTOCOL_VERSION, Seq};
use kefu_tests::{FRAME_WAIT, TestRelay, http_client};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// The whole crash test; a guard against a hang, not a speed requirement.
const CRASH_GUARD: Duration = Duration::from_secs(600);

/// Customers, and how many of them the agent can hold (the rest wait in the queue).
const CUSTOMERS: usize = 6;
const CAPACITY: usize = 3;

/// Messages each customer keeps sent but unacknowledged.
const WINDOW: usize = 16;

/// Where each round kills the relay.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// After this many acks in the round, with every customer's window in flight.
    AfterAcks(u64),
    /// The first customer sends this many messages and reads nothing; once the agent has
    /// received them all (so they are committed), the relay is killed with their acks
    /// unread, while the other customers keep their windows in flight. After restart the
    /// re-sent messages must be recognised as stored: acked as duplicates, stored once.
    DeliveredButNotAcked(usize),
}

const KILL_POINTS: [KillPoint; 3] =
    [KillPoint::AfterAcks(120), KillPoint::AfterAcks(400), KillPoint::DeliveredButNotAcked(WINDOW)];

const PASSWORD: &str = "correct horse battery staple";

// ---------------------------------------------------------------------------------------
// A minimal protocol client (the harness's `Client` is bound to an in-process relay).
// ---------------------------------------------------------------------------------------

struct Peer {
    ws: WebSocketStream<TcpStream>,
}

/// How a connection ended, or the next frame.
enum Next {
    Frame(Box<ServerFrame>),
    Closed(Option<u16>),
}

impl Peer {
    /// Connects to `path` and says hello; `recv_buffer` sets a small socket receive
    /// buffer (a client that reads slowly).
    async fn hello(
        addr: SocketAddr,
        path: &str,
        auth: HelloAuth,
        resume: Vec<ResumePoint>,
        recv_buffer: Option<u32>,
    ) -> Result<(Peer, Welcome)> {
        let socket = TcpSocket::new_v4()?;
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let stream = socket.connect(addr).await?;
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(recv_buffer.map_or(64 * 1024, |s| s as usize));
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(format!("ws://{addr}{path}"), stream, Some(config)).await?;
        let mut peer = Peer { ws };
        peer.send(&ClientFrame::Hello(Hello { protocol: PROTOCOL_VERSION, auth, resume })).await?;
        match peer.next().await? {
            Next::Frame(frame) => match *frame {
                ServerFrame::Welcome(welcome) => Ok((peer, welcome)),
                other => bail!("expected welcome, got {other:?}"),
            },
            Next::Closed(code) => bail!("closed during hello: {code:?}"),
        }
    }

    async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        self.ws.send(Message::Text(serde_json::to_string(frame)?.into())).await?;
        Ok(())
    }

    /// Queues a frame without flushing.
    async fn feed(&mut self, frame: &ClientFrame) -> Result<()> {
        self.ws.feed(Message::Text(serde_json::to_string(frame)?.into())).await?;
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.ws.flush().await?;
        Ok(())
    }

    /// The next frame, or how the connection ended (a killed relay ends it abruptly).
    async fn next(&mut self) -> Result<Next> {
        loop {
            let message = tokio::time::timeout(FRAME_WAIT, self.ws.next()).await.context("no frame arrived")?;
            match message {
                None | Some(Err(_)) => return Ok(Next::Closed(None)),
                Some(Ok(Message::Text(text))) => {
                    let frame = serde_json::from_str(text.as_str()).with_context(|| format!("bad frame: {text}"))?;
                    return Ok(Next::Frame(Box::new(frame)));
                }
                Some(Ok(Message::Close(frame))) => return Ok(Next::Closed(frame.map(|f| u16::from(f.code)))),
                Some(Ok(_)) => continue,
            }
        }
    }
}

fn send_frame(conversation: Option<ConversationId>, id: String, body: String) -> ClientFrame {
    let frame = serde_json::json!({
        "type": "send", "client_msg_id": id, "conversation_id": conversation, "body": body, "format": BodyFormat::Text,
    });
    serde_json::from_value(frame).expect("a valid send frame")
}

fn customer_auth(widget_key: &str, token: Option<String>) -> HelloAuth {
    HelloAuth::Customer {
        widget_key: widget_key.into(),
        customer_token: token,
        name: None,
        group: None,
        customer_id: None,
        customer_signature: None,
    }
}

// ---------------------------------------------------------------------------------------
// The relay as a process of its own.
// ---------------------------------------------------------------------------------------

/// The `kefu-relay` binary, built if needed.
async fn relay_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("test executable has no profile dir")?;
    let bin = profile_dir.join(format!("kefu-relay{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "kefu-relay", "--bin", "kefu-relay"])
            .status()
            .await
            .context("cannot run cargo to build kefu-relay")?;
        if !status.success() || !bin.exists() {
            bail!("kefu-relay is not built at {}: run `cargo build -p kefu-relay` first", bin.display());
        }
    }
    Ok(bin)
}

struct RelayProcess {
    child: Child,
    addr: SocketAddr,
    widget_key: String,
}

impl RelayProcess {
    /// Starts `serve` on a free loopback port and reads where it listens from stderr.
    async fn start(bin: &Path, dir: &Path) -> Result<RelayProcess> {
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--config")
            .arg(dir.join("relay.toml"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("KEFU_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting kefu-relay serve")?;
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let (mut addr, mut widget_key) = (None, None);
        while addr.is_none() || widget_key.is_none() {
            let line = tokio::time::timeout(FRAME_WAIT, lines.next_line())
                .await
                .context("the relay did not say where it listens")??
                .context("the relay exited before serving")?;
            if let Some(rest) = line.split("kefu relay on http://").nth(1) {
                addr = Some(rest.split_whitespace().next().unwrap_or_default().parse::<SocketAddr>()?);
            }
            if let Some(rest) = line.split("widget key of workspace 'default': ").nth(1) {
                widget_key = Some(rest.trim().to_string());
            }
        }
        // Keep draining stderr so the relay never blocks on it.
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                eprintln!("RELAY: {l}");
            }
        });
        Ok(RelayProcess { child, addr: addr.expect("set"), widget_key: widget_key.expect("set") })
    }

    /// SIGKILL: no shutdown path runs.
    async fn kill(mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// SIGTERM and wait for a clean exit.
    async fn stop(mut self) -> Result<()> {
        let pid = self.child.id().context("already exited")?;
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        let status = tokio::time::timeout(FRAME_WAIT, self.child.wait()).await??;
        ensure!(status.success(), "the relay exited with {status}");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Clients' memories across kills.
// ---------------------------------------------------------------------------------------

/// What one customer knows, kept across kills.
#[derive(Debug)]
struct CustomerBook {
    index: usize,
    token: String,
    conversation: ConversationId,
    /// The next new message number.
    next_k: u64,
    /// Acknowledged: message number → seq.
    acked: BTreeMap<u64, Seq>,
    /// Sent without an ack yet.
    unacked: BTreeSet<u64>,
    /// Re-sent messages the relay had already stored (acked as duplicates).
    found_stored: u64,
}

impl CustomerBook {
    fn id(&self, k: u64) -> String {
        format!("c{}-{k}", self.index)
    }

    fn k_of(&self, id: &str) -> Option<u64> {
        id.strip_prefix(&format!("c{}-", self.index))?.parse().ok()
    }

    fn frame(&self, k: u64) -> ClientFrame {
        send_frame(None, self.id(k), format!("customer {} message {k}", self.index))
    }

    /// Records that message `k` is stored under `seq` (from an ack or from history).
    fn stored(&mut self, k: u64, seq: Seq, duplicate: bool) -> Result<()> {
        self.unacked.remove(&k);
        self.found_stored += u64::from(duplicate);
        match self.acked.insert(k, seq) {
            Some(before) if before != seq => bail!("{} was acked as seq {before} and now as {seq}", self.id(k)),
            _ => Ok(()),
        }
    }

    fn last_seq(&self) -> Seq {
        self.acked.values().copied().max().unwrap_or(0)
    }

    /// Handles a frame from the relay; returns whether it was an ack or stored message.
    fn on_frame(&mut self, frame: &ServerFrame) -> Result<bool> {
        match frame {
            ServerFrame::Ack(ack) => {
                let k = self.k_of(&ack.client_msg_id).context("ack for an id never sent")?;
                ensure!(ack.conversation_id == self.conversation, "ack names another conversation");
                self.stored(k, ack.seq, ack.duplicate)?;
                Ok(true)
            }
            // Resume brings back our own messages stored after the last ack we saw.
            ServerFrame::Message(m) => {
                if let Some(k) = m.client_msg_id.as_deref().and_then(|id| self.k_of(id)) {
                    self.stored(k, m.seq, false)?;
                }
                Ok(false)
            }
            ServerFrame::Error(e) => bail!("customer {} refused: {e:?}", self.index),
            _ => Ok(false),
        }
    }
}

/// What the agent has received, kept across kills.
#[derive(Debug, Default)]
struct AgentBook {
    /// Per conversation, every message received: seq → client_msg_id.
    received: HashMap<ConversationId, BTreeMap<Seq, String>>,
    /// Conversations assigned to the agent, in the order it was told.
    assigned: Vec<ConversationId>,
}

impl AgentBook {
    fn resume(&self) -> Vec<ResumePoint> {
        self.received
            .iter()
            .map(|(c, m)| ResumePoint { conversation_id: *c, after_seq: m.keys().last().copied().unwrap_or(0) })
            .collect()
    }

    fn on_frame(&mut self, frame: &ServerFrame) -> Result<()> {
        match frame {
            ServerFrame::Message(m) => {
                let seen = self.received.entry(m.conversation_id).or_default();
                let expected = seen.keys().last().copied().unwrap_or(0) + 1;
                ensure!(
                    m.seq == expected,
                    "agent got seq {} of conversation {} after {}: each message once and in order",
                    m.seq,
                    m.conversation_id,
                    expected - 1
                );
                seen.insert(m.seq, m.client_msg_id.clone().unwrap_or_default());
            }
            ServerFrame::Conversation(c) if c.change == ConversationChange::Assigned => {
                self.assigned.push(c.conversation.id);
            }
            ServerFrame::Error(e) => bail!("agent refused: {e:?}"),
            _ => {}
        }
        Ok(())
    }
}

/// Sends with a window and records acks until the connection ends (the relay is killed).
async fn pump(
    mut peer: Peer,
    mut book: CustomerBook,
    acks: Arc<AtomicU64>,
    acked: Arc<Notify>,
) -> Result<CustomerBook> {
    loop {
        let mut fed = false;
        while book.unacked.len() < WINDOW {
            let k = book.next_k;
            book.next_k += 1;
            book.unacked.insert(k);
            if peer.feed(&book.frame(k)).await.is_err() {
                return Ok(book);
            }
            fed = true;
        }
        if fed && peer.flush().await.is_err() {
            return Ok(book);
        }
        match peer.next().await? {
            Next::Closed(_) => return Ok(book),
            Next::Frame(frame) => {
                if book.on_frame(&frame)? {
                    acks.fetch_add(1, Ordering::Relaxed);
                    acked.notify_waiters();
                }
            }
        }
    }
}

/// Reconnects a customer with resume and re-sends everything unacknowledged (same ids),
/// waiting until each is acknowledged.
async fn reconnect_customer(relay: &RelayProcess, book: &mut CustomerBook) -> Result<Peer> {
    let resume = vec![ResumePoint { conversation_id: book.conversation, after_seq: book.last_seq() }];
    let (mut peer, _) = Peer::hello(
        relay.addr,
        "/ws/customer",
        customer_auth(&relay.widget_key, Some(book.token.clone())),
        resume,
        None,
    )
    .await?;
    let pending: Vec<u64> = book.unacked.iter().copied().collect();
    for k in &pending {
        peer.feed(&book.frame(*k)).await?;
    }
    peer.flush().await?;
    // Each re-sent message is answered with an ack: new, or a duplicate naming the seq it
    // was stored under before the kill (which resume may already have shown).
    let mut waiting: BTreeSet<u64> = pending.into_iter().collect();
    while !waiting.is_empty() {
        match peer.next().await? {
            Next::Frame(frame) => {
                if let ServerFrame::Ack(ack) = &*frame
                    && let Some(k) = book.k_of(&ack.client_msg_id)
                {
                    waiting.remove(&k);
                }
                book.on_frame(&frame)?;
            }
            Next::Closed(code) => bail!("customer {} closed while re-sending: {code:?}", book.index),
        }
    }
    Ok(peer)
}

/// The agent's book, shared with the test, and a signal for each message it records.
type SharedAgentBook = Arc<(std::sync::Mutex<AgentBook>, Notify)>;

/// The agent, reading until the connection ends.
async fn agent_reader(mut peer: Peer, book: SharedAgentBook) -> Result<()> {
    loop {
        match peer.next().await? {
            Next::Closed(_) => return Ok(()),
            Next::Frame(frame) => {
                book.0.lock().expect("agent book").on_frame(&frame)?;
                book.1.notify_waiters();
            }
        }
    }
}

/// Waits until the agent has received conversation `c` up to `seq`.
async fn agent_reaches(book: &SharedAgentBook, c: ConversationId, seq: Seq) {
    loop {
        let notified = book.1.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let got = book.0.lock().expect("agent book").received.get(&c).and_then(|m| m.keys().last().copied());
        if got.unwrap_or(0) >= seq {
            return;
        }
        notified.await;
    }
}

async fn login(addr: SocketAddr, email: &str) -> Result<String> {
    let response = http_client()
        .post(format!("http://{addr}/api/v1/login"))
        .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
        .send()
        .await?;
    ensure!(response.status().is_success(), "login failed: {}", response.status());
    Ok(response.json::<kefu_proto::api::LoginResponse>().await?.token)
}

#[tokio::test]
async fn sigkill_mid_stream_loses_no_acknowledged_message_and_delivers_nothing_twice() -> Result<()> {
    tokio::time::timeout(CRASH_GUARD, crash_rounds()).await.context("the crash test hung")?
}

async fn crash_rounds() -> Result<()> {
    let bin = relay_binary().await?;
    let dir = tempfile::tempdir()?;
    // Frames per connection are limited to 50/s by default; a customer here sends as fast
    // as acks come back. Re-routing and grace are long enough not to move anything.
    std::fs::write(
        dir.path().join("relay.toml"),
        "[limits]\nframes_per_second = 100000\nframe_burst = 100000\n\n[routing]\nreroute_unanswered_secs = 0\ngrace_secs = 600\n",
    )?;
    let email = "agent@crash.example";
    let mut add = Command::new(&bin)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["agent", "add", "--email", email, "--name", "Crash Agent", "--password-stdin"])
        .args(["--capacity", &CAPACITY.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    add.stdin.take().expect("piped").write_all(format!("{PASSWORD}\n").as_bytes()).await?;
    ensure!(add.wait().await?.success(), "agent add failed");

    let mut relay = RelayProcess::start(&bin, dir.path()).await?;
    let token = login(relay.addr, email).await?;
    let agent_auth = || HelloAuth::Agent { token: token.clone() };
    let (agent, _) = Peer::hello(relay.addr, "/ws/agent", agent_auth(), vec![], None).await?;
    let agent_book: SharedAgentBook = Arc::default();
    let mut agent_task = tokio::spawn(agent_reader(agent, agent_book.clone()));

    // Customers open their conversations one after another, so the queue order is known:
    // the first CAPACITY go to the agent, the rest wait in this order.
    let mut books = Vec::new();
    let mut peers = Vec::new();
    for index in 0..CUSTOMERS {
        let (mut peer, welcome) =
            Peer::hello(relay.addr, "/ws/customer", customer_auth(&relay.widget_key, None), vec![], None).await?;
        let Session::Customer { customer_token, .. } = welcome.session else { bail!("not a customer session") };
        let mut book = CustomerBook {
            index,
            token: customer_token,
            conversation: ConversationId(0),
            next_k: 1,
            acked: BTreeMap::new(),
            unacked: BTreeSet::from([0]),
            found_stored: 0,
        };
        peer.send(&book.frame(0)).await?;
        loop {
            let Next::Frame(frame) = peer.next().await? else { bail!("customer {index} closed") };
            if let ServerFrame::Ack(ack) = &*frame {
                book.conversation = ack.conversation_id;
            }
            book.on_frame(&frame)?;
            if book.unacked.is_empty() {
                break;
            }
        }
        books.push(book);
        peers.push(peer);
    }
    let queued: Vec<ConversationId> = books[CAPACITY..].iter().map(|b| b.conversation).collect();

    for (round, point) in KILL_POINTS.iter().enumerate() {
        // Load, and the kill point.
        let acks = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(Notify::new());
        let mut pumps = Vec::new();
        let mut deaf = None;
        for (peer, book) in peers.drain(..).zip(books.drain(..)) {
            if matches!(point, KillPoint::DeliveredButNotAcked(_)) && deaf.is_none() {
                deaf = Some((peer, book));
                continue;
            }
            pumps.push(tokio::spawn(pump(peer, book, acks.clone(), acked.clone())));
        }
        match *point {
            KillPoint::AfterAcks(kill_after) => loop {
                let notified = acked.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if acks.load(Ordering::Relaxed) >= kill_after {
                    break;
                }
                notified.await;
            },
            KillPoint::DeliveredButNotAcked(burst) => {
                let (peer, book) = deaf.as_mut().expect("set aside");
                let target = book.last_seq() + burst as Seq;
                for _ in 0..burst {
                    let k = book.next_k;
                    book.next_k += 1;
                    book.unacked.insert(k);
                    peer.feed(&book.frame(k)).await?;
                }
                peer.flush().await?;
                agent_reaches(&agent_book, book.conversation, target).await;
            }
        }
        relay.kill().await?;
        // The deaf customer never reads its acks: its connection is dropped unread.
        books.extend(deaf.take().map(|(_, book)| book));
        for pump in pumps {
            books.push(pump.await??);
        }
        agent_task.await??;
        let in_flight: usize = books.iter().map(|b| b.unacked.len()).sum();
        eprintln!(
            "round {round} ({point:?}): killed after {} acks with {in_flight} messages unacknowledged",
            acks.load(Ordering::Relaxed)
        );

        // Restart on the same data dir; everyone comes back with resume.
        relay = RelayProcess::start(&bin, dir.path()).await?;
        let resume = agent_book.0.lock().expect("agent book").resume();
        let (agent, welcome) = Peer::hello(relay.addr, "/ws/agent", agent_auth(), resume, None).await?;
        let Session::Agent { conversations, .. } = &welcome.session else { bail!("not an agent session") };
        let held: BTreeSet<ConversationId> = conversations.iter().map(|c| c.id).collect();
        let first: BTreeSet<ConversationId> = books[..CAPACITY].iter().map(|b| b.conversation).collect();
        ensure!(held == first, "after restart {round} the agent holds {held:?}, not {first:?}");
        agent_task = tokio::spawn(agent_reader(agent, agent_book.clone()));
        let found_before: u64 = books.iter().map(|b| b.found_stored).sum();
        for book in &mut books {
            peers.push(reconnect_customer(&relay, book).await?);
        }
        let found: u64 = books.iter().map(|b| b.found_stored).sum::<u64>() - found_before;
        eprintln!("round {round}: of those, {found} had been stored before the kill (acked as duplicates)");
        if let KillPoint::DeliveredButNotAcked(burst) = *point {
            ensure!(found >= burst as u64, "only {found} of the {burst} delivered messages were acked as duplicates");
        }
    }

    // Every customer's history, read from the beginning on a fresh connection.
    for book in &books {
        let resume = vec![ResumePoint { conversation_id: book.conversation, after_seq: 0 }];
        let auth = customer_auth(&relay.widget_key, Some(book.token.clone()));
        let (mut reader, welcome) = Peer::hello(relay.addr, "/ws/customer", auth, resume, None).await?;
        let Session::Customer { conversation: Some(view), .. } = welcome.session else { bail!("no open conversation") };
        let mut history: Vec<(Seq, String)> = Vec::new();
        while history.len() < view.last_seq as usize {
            match reader.next().await? {
                Next::Frame(frame) => {
                    if let ServerFrame::Message(m) = *frame {
                        history.push((m.seq, m.client_msg_id.unwrap_or_default()));
                    }
                }
                Next::Closed(code) => bail!("history reader closed: {code:?}"),
            }
        }
        let seqs: Vec<Seq> = history.iter().map(|(s, _)| *s).collect();
        ensure!(seqs == (1..=view.last_seq).collect::<Vec<_>>(), "customer {}: seqs {seqs:?}", book.index);
        let ks: Vec<u64> = history.iter().map(|(_, id)| book.k_of(id).expect("our id")).collect();
        ensure!(
            ks == book.acked.keys().copied().collect::<Vec<_>>(),
            "customer {}: stored {ks:?}, acknowledged {:?}: each acknowledged message once, in order",
            book.index,
            book.acked.keys().collect::<Vec<_>>()
        );
        for (seq, id) in &history {
            let k = book.k_of(id).expect("our id");
            ensure!(
                book.acked[&k] == *seq,
                "customer {}: {id} acked as seq {} but stored as {seq}",
                book.index,
                book.acked[&k]
            );
        }
        ensure!(book.unacked.is_empty(), "customer {} still has unacknowledged messages", book.index);
        reader.ws.close(None).await.ok();
    }

    // The agent receives every message of its conversations, through every restart.
    for book in &books[..CAPACITY] {
        agent_reaches(&agent_book, book.conversation, book.last_seq()).await;
    }

    // The queued conversations come to the agent in their queue order as it closes its own.
    let (mut closer, _) = Peer::hello(relay.addr, "/ws/agent", agent_auth(), vec![], None).await?;
    let mut next_assigned = Vec::new();
    for book in &books[..CAPACITY] {
        closer
            .send(&ClientFrame::Close(serde_json::from_value(
                serde_json::json!({ "conversation_id": book.conversation }),
            )?))
            .await?;
        loop {
            let Next::Frame(frame) = closer.next().await? else { bail!("agent closed") };
            if let ServerFrame::Conversation(c) = &*frame
                && c.change == ConversationChange::Assigned
            {
                next_assigned.push(c.conversation.id);
                break;
            }
        }
    }
    ensure!(next_assigned == queued, "queued conversations were assigned as {next_assigned:?}, queued as {queued:?}");

    // What the agent saw is what is stored (delivered only once durable), and for the
    // conversations it held throughout, it saw all of it.
    drop(peers);
    relay.stop().await?;
    agent_task.await??;
    let agent_book = agent_book.0.lock().expect("agent book");
    for book in &books {
        let seen = agent_book.received.get(&book.conversation).cloned().unwrap_or_default();
        for (seq, id) in &seen {
            let k = book.k_of(id).with_context(|| format!("agent saw {id}"))?;
            ensure!(book.acked.get(&k) == Some(seq), "agent saw {id} as seq {seq}; stored as {:?}", book.acked.get(&k));
        }
        if book.index < CAPACITY {
            ensure!(seen.len() as u64 == book.last_seq(), "agent missed messages of customer {}", book.index);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Slow consumer.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_agent_that_stops_reading_is_cut_off_with_4008_and_resumes_with_nothing_lost() -> Result<()> {
    tokio::time::timeout(CRASH_GUARD, slow_consumer()).await.context("the slow-consumer test hung")?
}

async fn slow_consumer() -> Result<()> {
    let relay = TestRelay::start_with(|config| {
        config.limits.outbound_queue = 64;
        config.limits.frames_per_second = 100_000;
        config.limits.frame_burst = 100_000;
    })
    .await?;
    let slow_token = relay.agent_token("slow@shop.example", "Slow").await?;
    let quick_token = relay.agent_token("quick@shop.example", "Quick").await?;
    let addr = relay.addr;
    let customer = |token: Option<String>| customer_auth(&relay.widget_key, token);

    // The slow agent takes the first conversation (it is the only one online), with a
    // small socket receive buffer so that the relay's writes to it back up soon.
    let (mut slow, _) =
        Peer::hello(addr, "/ws/agent", HelloAuth::Agent { token: slow_token.clone() }, vec![], Some(4096)).await?;
    let (mut first, _) = Peer::hello(addr, "/ws/customer", customer(None), vec![], None).await?;
    first.send(&send_frame(None, "f-0".into(), "first customer".into())).await?;
    let slow_conversation = loop {
        let Next::Frame(frame) = slow.next().await? else { bail!("slow agent closed early") };
        if let ServerFrame::Message(m) = *frame {
            break m.conversation_id;
        }
    };
    let (mut quick, _) = Peer::hello(addr, "/ws/agent", HelloAuth::Agent { token: quick_token }, vec![], None).await?;
    let (mut second, _) = Peer::hello(addr, "/ws/customer", customer(None), vec![], None).await?;
    second.send(&send_frame(None, "s-0".into(), "second customer".into())).await?;
    let quick_conversation = loop {
        let Next::Frame(frame) = quick.next().await? else { bail!("quick agent closed early") };
        if let ServerFrame::Message(m) = *frame {
            break m.conversation_id;
        }
    };
    ensure!(slow_conversation != quick_conversation);

    // The slow agent stops reading. Its customer writes far more than the socket buffers
    // and the 64-frame queue hold (16 KiB bodies, about 13 MiB), and is not slowed: every
    // message is acknowledged. (It keeps 32 in flight: its own acks come in batches, and
    // its queue must hold them.)
    const FLOOD: usize = 800;
    let body = "慢".repeat(16 * 1024 / 3);
    let (mut next, mut acked) = (1, 0);
    while acked < FLOOD {
        while next <= FLOOD && next - 1 - acked < 32 {
            first.feed(&send_frame(None, format!("f-{next}"), format!("{next} {body}"))).await?;
            next += 1;
        }
        first.flush().await?;
        match first.next().await? {
            Next::Frame(frame) => match *frame {
                ServerFrame::Ack(_) => acked += 1,
                ServerFrame::Error(e) => bail!("first customer refused: {e:?}"),
                _ => {}
            },
            Next::Closed(code) => bail!("first customer closed: {code:?}"),
        }
    }

    // Meanwhile the other conversation goes on, message by message.
    for i in 1..=50 {
        second.send(&send_frame(None, format!("s-{i}"), format!("second {i}"))).await?;
        loop {
            let Next::Frame(frame) = quick.next().await? else { bail!("quick agent closed") };
            if let ServerFrame::Message(m) = *frame {
                ensure!((m.conversation_id, m.seq) == (quick_conversation, i + 1));
                break;
            }
        }
    }

    // The slow agent reads again: what was already on its way, then close 4008.
    let mut last_seq: Seq = 1;
    let code = loop {
        match slow.next().await? {
            Next::Frame(frame) => {
                if let ServerFrame::Message(m) = *frame {
                    ensure!(m.seq == last_seq + 1, "slow agent got seq {} after {last_seq}", m.seq);
                    last_seq = m.seq;
                }
            }
            Next::Closed(code) => break code,
        }
    };
    ensure!(code == Some(close_code::SLOW_CONSUMER), "the slow agent was closed with {code:?}, not 4008");
    ensure!(
        (last_seq as usize) < FLOOD + 1,
        "the slow agent got all {last_seq} messages: its queue never filled, so nothing was tested"
    );

    // It comes back with resume and gets the rest, once each, in order.
    let resume = vec![ResumePoint { conversation_id: slow_conversation, after_seq: last_seq }];
    let (mut slow, _) = Peer::hello(addr, "/ws/agent", HelloAuth::Agent { token: slow_token }, resume, None).await?;
    let cut_at = last_seq;
    while (last_seq as usize) < FLOOD + 1 {
        let Next::Frame(frame) = slow.next().await? else { bail!("resumed slow agent closed") };
        if let ServerFrame::Message(m) = *frame {
            ensure!(m.seq == last_seq + 1, "resumed agent got seq {} after {last_seq}", m.seq);
            last_seq = m.seq;
        }
    }
    eprintln!("slow agent cut off after seq {cut_at} of {}; resumed to {last_seq}", FLOOD + 1);
    drop((first, second, quick, slow));
    relay.stop().await.map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
