//! The message load: customers writing to agents through the relay, or pairs through the
//! forwarder, open-loop at a fixed rate or flat out with a bounded number in flight.
//!
//! Shape of a run:
//! 1. Connect the receivers (agents, or the `b` end of each pair) and the senders
//!    (customers, or the `a` ends), a bounded number at a time.
//! 2. Warm-up: every sender writes message 0 and the run waits until each has arrived
//!    (on the relay: acknowledged, its conversation opened and assigned to an agent).
//! 3. Measurement from `t0`: open-loop, one pacer releases message *i* at
//!    `t0 + i / rate`, round-robin over the conversations, and wakes its sender; the
//!    message carries that intended time, so a late sender or a slow relay shows up as
//!    latency instead of hiding it (no coordinated omission). Flat out, each conversation
//!    keeps `in_flight` messages sent but not yet both acknowledged and delivered.
//! 4. Drain: stop sending, wait until everything sent is acknowledged and delivered (or
//!    the drain guard passes, and what is missing is reported as lost).
//!
//! Each sender is one task owning its socket and driven by one `poll_fn`: it reads what
//! arrived (acks), sends what is due, and flushes once, so a burst costs one write. The
//! receivers record end-to-end latency from the probe in the body and check that every
//! conversation's messages arrive once and in order. Through an MQTT broker the same
//! frames travel as publish payloads ([`crate::mqtt`]), and a PUBACK is the ack.
//!
//! With an `interval`, the run also closes a window at every interval from `t0`: the
//! window's latency histograms are swapped out, the server sampled, and a row
//! ([`IntervalRow`]) handed to the caller at once (the soak run prints it).

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::task::AtomicWaker;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use kefu_proto::PROTOCOL_VERSION;
use kefu_proto::frame::{ClientFrame, Hello, HelloAuth, ServerFrame, Welcome};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::report::{self, LatencySummary, ProcSample, ServerCost};
use crate::wire::{self, Probe};

/// A client WebSocket over plain TCP.
pub type Ws = WebSocketStream<TcpStream>;

/// What the load is aimed at.
#[derive(Debug, Clone)]
pub enum Target {
    /// The bare forwarder (`kefu-bench forwarder`).
    Forwarder {
        /// Where it listens.
        addr: SocketAddr,
    },
    /// A kefu relay.
    Relay {
        /// Where it listens.
        addr: SocketAddr,
        /// The workspace's widget key, for customers.
        widget_key: String,
        /// One bearer token per agent to connect; their capacity must hold every
        /// conversation of the run.
        agent_tokens: Vec<String>,
    },
    /// An MQTT broker: pair `c` is a publisher and a subscriber on the topics of
    /// [`crate::mqtt`], messages at QoS 1 (the PUBACK is the ack), typing at QoS 0.
    Mqtt {
        /// Where it listens.
        addr: SocketAddr,
    },
}

impl Target {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Target::Forwarder { addr } | Target::Relay { addr, .. } | Target::Mqtt { addr } => *addr,
        }
    }

    fn acks(&self) -> bool {
        matches!(self, Target::Relay { .. } | Target::Mqtt { .. })
    }
}

/// How to load the target.
#[derive(Debug, Clone)]
pub struct MessageLoad {
    /// Conversations (customer–agent, or pairs), each with its own sender connection.
    pub conversations: usize,
    /// Messages per second over all conversations (open loop); `None`: flat out.
    pub rate: Option<f64>,
    /// Flat out: messages per conversation sent but not yet acknowledged and delivered.
    pub in_flight: usize,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many measured messages in all.
    pub max_messages: Option<u64>,
    /// Size of each message body, bytes (at least the probe, ~40 bytes).
    pub body_bytes: usize,
    /// Typing indicators per second over all conversations (open loop), sent beside the
    /// messages; `None`: none.
    pub typing_rate: Option<f64>,
    /// How long to wait, after sending stops, for what is still on its way.
    pub drain: Duration,
    /// Connections opened at once while setting up.
    pub connect_concurrency: usize,
    /// Close a window and report an [`IntervalRow`] this often from `t0`; `None`: one
    /// summary at the end only.
    pub interval: Option<Duration>,
}

impl Default for MessageLoad {
    fn default() -> Self {
        MessageLoad {
            conversations: 100,
            rate: None,
            in_flight: 32,
            duration: Duration::from_secs(10),
            max_messages: None,
            body_bytes: 64,
            typing_rate: None,
            drain: Duration::from_secs(30),
            connect_concurrency: 64,
            interval: None,
        }
    }
}

/// What a message run measured.
#[derive(Debug, Clone, Serialize)]
pub struct MessageOutcome {
    /// Measured messages sent.
    pub sent: u64,
    /// Of them, acknowledged (relay only; equals `sent` when every one was).
    pub acked: u64,
    /// Of them, delivered to the other side, each counted once.
    pub delivered: u64,
    /// Sent but never delivered before the drain guard passed.
    pub lost: u64,
    /// Sent but never acknowledged before the drain guard passed (relay only).
    pub unacked: u64,
    /// Acks that said `duplicate: true` (none expected).
    pub duplicate_acks: u64,
    /// Messages delivered a second time (none expected).
    pub duplicate_deliveries: u64,
    /// Deliveries that skipped ahead of the next expected message (none expected).
    pub out_of_order: u64,
    /// Error frames received.
    pub errors: u64,
    /// The first error frame or failure, if any.
    pub first_error: Option<String>,
    /// Typing indicators sent and received.
    pub typing_sent: u64,
    /// Typing indicators received by the other side.
    pub typing_received: u64,
    /// Offered rate (open loop), messages per second.
    pub offered_per_sec: Option<f64>,
    /// Delivered messages per second, from `t0` to the last delivery.
    pub delivered_per_sec: f64,
    /// Seconds from `t0` to the last delivery.
    pub elapsed_secs: f64,
    /// Customer send (intended time) → agent receive.
    pub e2e: LatencySummary,
    /// Send (intended time) → ack (relay only).
    pub ack: LatencySummary,
    /// Typing sent (intended time) → received.
    pub typing: LatencySummary,
    /// How late the generator sent, behind the intended time (open loop): if this is
    /// large the tool, not the target, was the bottleneck.
    pub send_lag: LatencySummary,
    /// The server's CPU and memory over the measured interval, when its pid is known.
    pub server: Option<ServerCost>,
    /// One row per interval, when the load asked for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<IntervalRow>,
}

/// One interval of a run: what was delivered in it and how the server stood at its end.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalRow {
    /// Seconds from `t0` to the end of the window.
    pub elapsed_secs: f64,
    /// The window's length in seconds (the last one runs on to the end of the drain).
    pub window_secs: f64,
    /// Messages delivered in the window; `e2e.count` as well.
    pub delivered: u64,
    /// Intended send time → delivery, for the messages delivered in the window.
    pub e2e: LatencySummary,
    /// Typing indicators received in the window.
    pub typing: LatencySummary,
    /// The server's CPU over the window (per message delivered in it) and its resident
    /// memory at the window's end, when its pid is known.
    pub server: Option<ServerCost>,
    /// Open loop: messages due at least one interval before the window's end and still
    /// not both acknowledged and delivered. A healthy run keeps this at 0; anything here
    /// is lost or more than an interval late.
    pub late: u64,
    /// So far: duplicate acks, duplicate deliveries and deliveries out of order.
    pub duplicates: u64,
    /// So far: error frames and failures.
    pub errors: u64,
}

impl MessageOutcome {
    /// Whether every measured message was acknowledged (if acks apply) and delivered
    /// exactly once, in order, with no error.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.unacked == 0
            && self.duplicate_acks == 0
            && self.duplicate_deliveries == 0
            && self.out_of_order == 0
            && self.errors == 0
            && self.typing_received == self.typing_sent
    }
}

/// One conversation's shared counters.
#[derive(Default)]
pub(crate) struct Slot {
    /// Measured messages sent (the next is `sent + 1`).
    sent: AtomicU64,
    /// Measured messages acknowledged.
    acked: AtomicU64,
    /// Measured messages delivered (each once).
    delivered: AtomicU64,
    /// The receiver's next expected message number.
    next_k: AtomicU64,
    warm_sent: AtomicBool,
    warm_acked: AtomicBool,
    warm_delivered: AtomicBool,
    /// The relay's id for the conversation, from the warm-up ack.
    conversation_id: AtomicI64,
    typing_sent: AtomicU64,
    /// Intended times of typing indicators sent and not yet received, oldest first.
    typing_times: Mutex<VecDeque<u64>>,
    /// The sender's task, woken when it may send more.
    pub(crate) waker: AtomicWaker,
}

/// An open-loop schedule: event *i* is due at `t0 + offset + i × interval`.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    interval_ns: f64,
    offset_ns: u64,
    total: u64,
}

impl Schedule {
    fn new(rate: f64, duration: Duration, cap: Option<u64>, offset_ns: u64) -> Schedule {
        let total = (rate * duration.as_secs_f64()).floor() as u64;
        Schedule { interval_ns: 1e9 / rate, offset_ns, total: cap.map_or(total, |c| c.min(total)) }
    }

    /// How many events are due by `since_t0` ns after `t0`.
    fn due(&self, since_t0: u64) -> u64 {
        if since_t0 < self.offset_ns {
            return 0;
        }
        let n = ((since_t0 - self.offset_ns) as f64 / self.interval_ns).floor() as u64 + 1;
        n.min(self.total)
    }

    /// When event `i` is due, ns after `t0`.
    fn at(&self, i: u64) -> u64 {
        self.offset_ns + (i as f64 * self.interval_ns) as u64
    }
}

/// Events of conversation `c` among the first `released`, round-robin over `n`.
fn due_for(released: u64, c: u64, n: u64) -> u64 {
    if released > c { (released - c - 1) / n + 1 } else { 0 }
}

/// What a sender wrote into its buffer to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// A `send` frame carrying this probe.
    Message(Probe),
    /// A `typing` frame.
    Typing,
}

/// State shared by every task of a run.
pub(crate) struct Run {
    origin: Instant,
    pub(crate) slots: Vec<Slot>,
    acks: bool,
    in_flight: u64,
    body_bytes: usize,
    messages: Option<Schedule>,
    typing: Option<Schedule>,
    /// Measurement started; `t0` is set.
    go: AtomicBool,
    /// No more flat-out sends.
    stop: AtomicBool,
    t0_ns: AtomicU64,
    released: AtomicU64,
    typing_released: AtomicU64,
    /// Flat out with a message cap: how many may still be sent.
    budget: AtomicU64,
    last_delivery_ns: AtomicU64,
    typing_received: AtomicU64,
    duplicate_acks: AtomicU64,
    duplicate_deliveries: AtomicU64,
    out_of_order: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Relay conversation id → slot, once warm-up is over.
    conv_index: OnceLock<HashMap<i64, usize>>,
    e2e: Mutex<Histogram<u64>>,
    ack: Mutex<Histogram<u64>>,
    typing_latency: Mutex<Histogram<u64>>,
    send_lag: Mutex<Histogram<u64>>,
}

impl Run {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    pub(crate) fn error(&self, what: impl FnOnce() -> String) {
        if self.errors.fetch_add(1, Relaxed) == 0 {
            *self.first_error.lock().expect("lock") = Some(what());
        }
    }

    fn record(h: &Mutex<Histogram<u64>>, ns: u64) {
        h.lock().expect("histogram lock").saturating_record(ns.max(1));
    }

    /// A frame that reached a customer (or the sending end of a pair).
    fn on_sender_frame(&self, c: usize, text: &str) {
        match wire::frame_type(text) {
            "ack" => {
                let Some(probe) = wire::id_probe(text) else {
                    return self.error(|| format!("ack without a probe: {text}"));
                };
                if probe.k == 0
                    && let Some(id) = wire::int_field(text, "conversation_id")
                {
                    self.slots[c].conversation_id.store(id, Relaxed);
                }
                self.acked(c, probe, wire::is_duplicate_ack(text));
            }
            "error" => self.error(|| text.to_string()),
            _ => {}
        }
    }

    /// Sender `c`'s message `probe` was acknowledged (a relay's `ack`, a broker's PUBACK).
    pub(crate) fn acked(&self, c: usize, probe: Probe, duplicate: bool) {
        let now = self.now_ns();
        if duplicate {
            self.duplicate_acks.fetch_add(1, Relaxed);
        }
        let slot = &self.slots[c];
        if probe.k == 0 {
            slot.warm_acked.store(true, Relaxed);
            return;
        }
        slot.acked.fetch_add(1, Relaxed);
        Self::record(&self.ack, now.saturating_sub(probe.t_ns));
        slot.waker.wake();
    }

    /// A frame that reached an agent (or the receiving end of pair `fixed`).
    pub(crate) fn on_receiver_frame(&self, fixed: Option<usize>, text: &str) {
        match wire::frame_type(text) {
            "message" | "send" => match wire::body_probe(text) {
                Some(probe) => self.delivered(probe),
                None => self.error(|| format!("message without a probe: {}", &text[..text.len().min(200)])),
            },
            "typing" => {
                let now = self.now_ns();
                let c = fixed.or_else(|| {
                    let id = wire::int_field(text, "conversation_id")?;
                    self.conv_index.get()?.get(&id).copied()
                });
                let Some(c) = c else { return self.error(|| format!("typing for an unknown conversation: {text}")) };
                let sent_at = self.slots[c].typing_times.lock().expect("lock").pop_front();
                match sent_at {
                    Some(t) => {
                        self.typing_received.fetch_add(1, Relaxed);
                        Self::record(&self.typing_latency, now.saturating_sub(t));
                    }
                    None => self.error(|| format!("typing indicator never sent: {text}")),
                }
            }
            "error" => self.error(|| text.to_string()),
            _ => {}
        }
    }

    fn delivered(&self, probe: Probe) {
        let now = self.now_ns();
        let Some(slot) = self.slots.get(probe.conv) else {
            return self.error(|| format!("probe names conversation {} of {}", probe.conv, self.slots.len()));
        };
        if probe.k == 0 {
            slot.warm_delivered.store(true, Relaxed);
            return;
        }
        let expected = slot.next_k.load(Relaxed).max(1);
        if probe.k < expected {
            self.duplicate_deliveries.fetch_add(1, Relaxed);
            return;
        }
        if probe.k > expected {
            self.out_of_order.fetch_add(1, Relaxed);
        }
        slot.next_k.store(probe.k + 1, Relaxed);
        slot.delivered.fetch_add(1, Relaxed);
        self.last_delivery_ns.fetch_max(now, Relaxed);
        Self::record(&self.e2e, now.saturating_sub(probe.t_ns));
        slot.waker.wake();
    }

    /// What sender `c` should send next, if anything. Commits the counters.
    pub(crate) fn next_send(&self, c: usize, buf: &mut String) -> Option<Next> {
        let slot = &self.slots[c];
        if !slot.warm_sent.load(Relaxed) {
            slot.warm_sent.store(true, Relaxed);
            let probe = Probe { t_ns: self.now_ns(), conv: c, k: 0 };
            wire::write_send(buf, probe, self.body_bytes);
            return Some(Next::Message(probe));
        }
        if !self.go.load(Relaxed) {
            return None;
        }
        let t0 = self.t0_ns.load(Relaxed);
        let n = self.slots.len() as u64;
        if let Some(typing) = &self.typing {
            let due = due_for(self.typing_released.load(Relaxed), c as u64, n);
            let j = slot.typing_sent.load(Relaxed);
            if j < due {
                let intended = t0 + typing.at(j * n + c as u64);
                slot.typing_times.lock().expect("lock").push_back(intended);
                slot.typing_sent.store(j + 1, Relaxed);
                buf.clear();
                buf.push_str(wire::typing_frame(j.is_multiple_of(2)));
                return Some(Next::Typing);
            }
        }
        let sent = slot.sent.load(Relaxed);
        let k = sent + 1;
        let t_ns = match &self.messages {
            Some(schedule) => {
                if sent >= due_for(self.released.load(Relaxed), c as u64, n) {
                    return None;
                }
                let intended = t0 + schedule.at(sent * n + c as u64);
                Self::record(&self.send_lag, self.now_ns().saturating_sub(intended));
                intended
            }
            None => {
                if self.stop.load(Relaxed) {
                    return None;
                }
                let done = slot.delivered.load(Relaxed);
                let done = if self.acks { done.min(slot.acked.load(Relaxed)) } else { done };
                if sent - done >= self.in_flight || !self.take_budget() {
                    return None;
                }
                self.now_ns()
            }
        };
        slot.sent.store(k, Relaxed);
        let probe = Probe { t_ns, conv: c, k };
        wire::write_send(buf, probe, self.body_bytes);
        Some(Next::Message(probe))
    }

    /// Open loop: messages due by `by_ns` after `t0` and sent, but not yet both
    /// acknowledged (where acks apply) and delivered.
    fn late(&self, by_ns: u64) -> u64 {
        let Some(schedule) = &self.messages else { return 0 };
        let released = schedule.due(by_ns);
        let n = self.slots.len() as u64;
        let late = |(c, s): (usize, &Slot)| {
            let due = due_for(released, c as u64, n).min(s.sent.load(Relaxed));
            let done = s.delivered.load(Relaxed);
            let done = if self.acks { done.min(s.acked.load(Relaxed)) } else { done };
            due.saturating_sub(done)
        };
        self.slots.iter().enumerate().map(late).sum()
    }

    fn take_budget(&self) -> bool {
        self.budget.fetch_update(Relaxed, Relaxed, |b| b.checked_sub(1)).is_ok()
    }

    fn totals(&self) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for s in &self.slots {
            t.0 += s.sent.load(Relaxed);
            t.1 += s.acked.load(Relaxed);
            t.2 += s.delivered.load(Relaxed);
            t.3 += s.typing_sent.load(Relaxed);
        }
        t
    }

    fn wake_all(&self) {
        for s in &self.slots {
            s.waker.wake();
        }
    }
}

/// The measured part of a run cut into windows. `Run`'s e2e and typing histograms hold
/// the open window; closing it moves them into the run's totals and, when the load has an
/// interval, makes a row of it. Without an interval there is one window, closed at the end.
struct Windows {
    interval_ns: Option<u64>,
    t0_ns: u64,
    /// Since the origin: where the open window started, and where it is due to end.
    start_ns: u64,
    end_ns: u64,
    server_pid: Option<u32>,
    /// The server at the open window's start.
    sample: Option<ProcSample>,
    e2e: Histogram<u64>,
    typing: Histogram<u64>,
    rows: Vec<IntervalRow>,
}

impl Windows {
    fn new(interval: Option<Duration>, t0_ns: u64, server_pid: Option<u32>, sample: Option<ProcSample>) -> Self {
        let interval_ns = interval.map(|i| (i.as_nanos() as u64).max(1));
        Windows {
            interval_ns,
            t0_ns,
            start_ns: t0_ns,
            end_ns: t0_ns + interval_ns.unwrap_or(u64::MAX - t0_ns),
            server_pid,
            sample,
            e2e: report::histogram(),
            typing: report::histogram(),
            rows: Vec::new(),
        }
    }

    /// Whether the open window's interval has passed.
    fn due(&self, now_ns: u64) -> bool {
        self.interval_ns.is_some() && now_ns >= self.end_ns
    }

    /// Closes the open window at `now_ns`; its row, when the load has an interval.
    fn close(&mut self, run: &Run, now_ns: u64) -> Option<&IntervalRow> {
        let take = |h: &Mutex<Histogram<u64>>| std::mem::replace(&mut *h.lock().expect("lock"), report::histogram());
        let (e2e, typing) = (take(&run.e2e), take(&run.typing_latency));
        self.e2e.add(&e2e).expect("histograms of the same bounds");
        self.typing.add(&typing).expect("histograms of the same bounds");
        let interval_ns = self.interval_ns?;
        let after = self.server_pid.and_then(report::sample);
        let server = match (self.server_pid, &self.sample, &after) {
            (Some(pid), Some(before), Some(after)) => Some(report::cost(pid, before, after, e2e.len())),
            _ => None,
        };
        let since_t0 = now_ns.saturating_sub(self.t0_ns);
        self.rows.push(IntervalRow {
            elapsed_secs: since_t0 as f64 / 1e9,
            window_secs: now_ns.saturating_sub(self.start_ns) as f64 / 1e9,
            delivered: e2e.len(),
            e2e: LatencySummary::of(&e2e),
            typing: LatencySummary::of(&typing),
            server,
            late: run.late(since_t0.saturating_sub(interval_ns)),
            duplicates: run.duplicate_acks.load(Relaxed)
                + run.duplicate_deliveries.load(Relaxed)
                + run.out_of_order.load(Relaxed),
            errors: run.errors.load(Relaxed),
        });
        self.sample = after;
        self.start_ns = now_ns;
        // Boundaries stay on t0 + k × interval, so rows do not drift by the polling step.
        while self.end_ns <= now_ns {
            self.end_ns += interval_ns;
        }
        self.rows.last()
    }
}

/// WebSocket settings for the tool's clients: small buffers, a larger read buffer for
/// connections that receive a lot.
pub fn client_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(4096)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens a WebSocket to `path` on `addr`.
pub async fn connect(addr: SocketAddr, path: &str, read_buffer: usize) -> Result<Ws> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(client_config(read_buffer)))
        .await
        .with_context(|| format!("WebSocket handshake on {path}"))?;
    Ok(ws)
}

/// Says hello and waits for the welcome.
pub async fn hello(ws: &mut Ws, auth: HelloAuth) -> Result<Welcome> {
    let hello = ClientFrame::Hello(Hello { protocol: PROTOCOL_VERSION, auth, resume: vec![] });
    ws.send(Message::Text(serde_json::to_string(&hello)?.into())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerFrame>(text.as_str()) {
                Ok(ServerFrame::Welcome(welcome)) => return Ok(welcome),
                Ok(ServerFrame::Error(e)) => bail!("hello refused: {:?} {}", e.code, e.message),
                _ => continue,
            },
            Some(Ok(Message::Close(frame))) => bail!("closed during hello: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended during hello"),
        }
    }
}

/// A customer of the relay: says hello as a new contact.
pub async fn customer(addr: SocketAddr, widget_key: &str) -> Result<Ws> {
    let mut ws = connect(addr, "/ws/customer", 4096).await?;
    let auth = HelloAuth::Customer {
        widget_key: widget_key.into(),
        customer_token: None,
        name: None,
        group: None,
        customer_id: None,
        customer_signature: None,
    };
    hello(&mut ws, auth).await?;
    Ok(ws)
}

/// An agent of the relay.
pub async fn agent(addr: SocketAddr, token: &str) -> Result<Ws> {
    let mut ws = connect(addr, "/ws/agent", 64 * 1024).await?;
    hello(&mut ws, HelloAuth::Agent { token: token.into() }).await?;
    Ok(ws)
}

/// Drives one sender until it fails or is aborted.
async fn drive_sender(mut ws: Ws, run: Arc<Run>, c: usize) -> Result<()> {
    let mut buf = String::with_capacity(run.body_bytes + 128);
    let mut unflushed = false;
    poll_fn(|cx| {
        run.slots[c].waker.register(cx.waker());
        loop {
            match ws.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(Message::Text(text)))) => run.on_sender_frame(c, text.as_str()),
                Poll::Ready(Some(Ok(Message::Close(frame)))) => {
                    return Poll::Ready(Err(anyhow!("sender {c}: closed by the server: {frame:?}")));
                }
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(anyhow!("sender {c}: {e}"))),
                Poll::Ready(None) => return Poll::Ready(Err(anyhow!("sender {c}: connection ended"))),
                Poll::Pending => break,
            }
        }
        loop {
            match ws.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(anyhow!("sender {c}: {e}"))),
                Poll::Pending => break,
            }
            if run.next_send(c, &mut buf).is_none() {
                break;
            }
            // One allocation per message: the frame owns its text until written.
            if let Err(e) = ws.start_send_unpin(Message::Text(buf.clone().into())) {
                return Poll::Ready(Err(anyhow!("sender {c}: {e}")));
            }
            unflushed = true;
        }
        if unflushed {
            match ws.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(anyhow!("sender {c}: {e}"))),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

/// Reads everything a receiver gets until it fails or is aborted.
async fn drive_receiver(mut ws: Ws, run: Arc<Run>, fixed: Option<usize>) -> Result<()> {
    while let Some(message) = ws.next().await {
        match message? {
            Message::Text(text) => run.on_receiver_frame(fixed, text.as_str()),
            Message::Close(frame) => bail!("receiver closed by the server: {frame:?}"),
            _ => {}
        }
    }
    bail!("receiver connection ended")
}

/// Releases open-loop messages and typing indicators on time.
async fn pace(run: Arc<Run>) {
    let n = run.slots.len() as u64;
    let t0 = run.t0_ns.load(Relaxed);
    loop {
        let since = run.now_ns().saturating_sub(t0);
        let mut next: Option<u64> = None;
        for (schedule, released) in [(&run.messages, &run.released), (&run.typing, &run.typing_released)] {
            let Some(schedule) = schedule else { continue };
            let old = released.load(Relaxed);
            let due = schedule.due(since);
            if due > old {
                released.store(due, Relaxed);
                if due - old >= n {
                    run.wake_all();
                } else {
                    for i in old..due {
                        run.slots[(i % n) as usize].waker.wake();
                    }
                }
            }
            if due < schedule.total {
                let at = schedule.at(due);
                next = Some(next.map_or(at, |x: u64| x.min(at)));
            }
        }
        let Some(next) = next else { return };
        let gap = next.saturating_sub(run.now_ns().saturating_sub(t0));
        if gap > 2_000_000 {
            tokio::time::sleep(Duration::from_nanos(gap - 1_000_000)).await;
        } else {
            // Timers tick in milliseconds; closer than that, poll (this lets I/O run).
            tokio::task::yield_now().await;
        }
    }
}

/// Runs a message load against `target`. `server_pid`, when given, is sampled for CPU
/// and memory at `t0` and when the drain ends.
pub async fn run_messages(target: &Target, load: &MessageLoad, server_pid: Option<u32>) -> Result<MessageOutcome> {
    run_messages_observed(target, load, server_pid, &mut |_| {}).await
}

/// [`run_messages`], handing each [`IntervalRow`] to `on_row` as its window closes (the
/// load's `interval`); the rows are in the outcome too.
pub async fn run_messages_observed(
    target: &Target,
    load: &MessageLoad,
    server_pid: Option<u32>,
    on_row: &mut (dyn FnMut(&IntervalRow) + Send),
) -> Result<MessageOutcome> {
    let n = load.conversations;
    if n == 0 {
        bail!("no conversations");
    }
    let run = Arc::new(Run {
        origin: Instant::now(),
        slots: (0..n).map(|_| Slot::default()).collect(),
        acks: target.acks(),
        in_flight: load.in_flight.max(1) as u64,
        body_bytes: load.body_bytes,
        messages: load.rate.map(|r| Schedule::new(r, load.duration, load.max_messages, 0)),
        typing: load.typing_rate.map(|r| Schedule::new(r, load.duration, None, (5e8 / r) as u64)),
        go: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        t0_ns: AtomicU64::new(0),
        released: AtomicU64::new(0),
        typing_released: AtomicU64::new(0),
        budget: AtomicU64::new(load.max_messages.unwrap_or(u64::MAX)),
        last_delivery_ns: AtomicU64::new(0),
        typing_received: AtomicU64::new(0),
        duplicate_acks: AtomicU64::new(0),
        duplicate_deliveries: AtomicU64::new(0),
        out_of_order: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        conv_index: OnceLock::new(),
        e2e: Mutex::new(report::histogram()),
        ack: Mutex::new(report::histogram()),
        typing_latency: Mutex::new(report::histogram()),
        send_lag: Mutex::new(report::histogram()),
    });
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    let result = measure(target, load, server_pid, &run, &mut tasks, on_row).await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    result
}

async fn measure(
    target: &Target,
    load: &MessageLoad,
    server_pid: Option<u32>,
    run: &Arc<Run>,
    tasks: &mut JoinSet<Result<()>>,
    on_row: &mut (dyn FnMut(&IntervalRow) + Send),
) -> Result<MessageOutcome> {
    let n = load.conversations;
    let addr = target.addr();
    let gate = Arc::new(Semaphore::new(load.connect_concurrency.max(1)));
    // Receivers first, so that nothing waits for them (and, through a broker, nothing is
    // published before its subscription exists).
    let mqtt_run = crate::mqtt::run_name();
    match target {
        Target::Relay { agent_tokens, .. } => {
            if agent_tokens.is_empty() {
                bail!("the relay load needs at least one agent");
            }
            for token in agent_tokens {
                let ws = agent(addr, token).await.context("agent hello")?;
                tasks.spawn(drive_receiver(ws, run.clone(), None));
            }
        }
        Target::Forwarder { .. } => {
            for c in 0..n {
                let ws = connect(addr, &format!("/pair/{c}/b"), 16 * 1024).await?;
                tasks.spawn(drive_receiver(ws, run.clone(), Some(c)));
            }
        }
        Target::Mqtt { .. } => {
            for c in 0..n {
                let connection = crate::mqtt::subscriber(addr, &mqtt_run, c).await?;
                tasks.spawn(crate::mqtt::drive_subscriber(connection, run.clone(), c));
            }
        }
    }
    for c in 0..n {
        let (gate, run, target, mqtt_run) = (gate.clone(), run.clone(), target.clone(), mqtt_run.clone());
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await?;
            let ws = match &target {
                Target::Relay { widget_key, .. } => customer(addr, widget_key).await?,
                Target::Forwarder { .. } => connect(addr, &format!("/pair/{c}/a"), 4096).await?,
                Target::Mqtt { .. } => {
                    let connection = crate::mqtt::publisher(addr, &mqtt_run, c).await?;
                    drop(permit);
                    return crate::mqtt::drive_publisher(connection, run, &mqtt_run, c).await;
                }
            };
            drop(permit);
            drive_sender(ws, run, c).await
        });
    }

    // Warm-up: every conversation open, assigned and carrying message 0.
    let setup_guard = Instant::now() + Duration::from_secs(60) + Duration::from_millis(20 * n as u64);
    loop {
        let ready =
            run.slots.iter().all(|s| s.warm_delivered.load(Relaxed) && (!run.acks || s.warm_acked.load(Relaxed)));
        if ready {
            break;
        }
        if let Some(Ok(Err(e))) = tasks.try_join_next() {
            return Err(e.context("during setup"));
        }
        if Instant::now() > setup_guard {
            let warm = run.slots.iter().filter(|s| s.warm_delivered.load(Relaxed)).count();
            bail!("setup did not finish: {warm} of {n} conversations warmed up (agents' capacity too small?)");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if run.acks {
        let index = run.slots.iter().enumerate().map(|(c, s)| (s.conversation_id.load(Relaxed), c)).collect();
        let _ = run.conv_index.set(index);
    }

    // Measurement.
    let before = server_pid.and_then(report::sample);
    let t0 = run.now_ns() + 5_000_000;
    run.t0_ns.store(t0, Relaxed);
    run.go.store(true, Relaxed);
    if run.messages.is_some() || run.typing.is_some() {
        tokio::spawn(pace(run.clone()));
    }
    run.wake_all();
    let send_until = Instant::now() + Duration::from_millis(5) + load.duration;
    let mut drain_until: Option<Instant> = None;
    let mut windows = Windows::new(load.interval, t0, server_pid, before.clone());
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        while let Some(joined) = tasks.try_join_next() {
            if let Ok(Err(e)) = joined {
                run.error(|| format!("{e:#}"));
            }
        }
        let now = Instant::now();
        let (sent, acked, delivered, typing_sent) = run.totals();
        let released = run.messages.map(|s| s.total);
        let sending_over = match released {
            Some(total) => run.released.load(Relaxed) >= total && sent >= total,
            None => now >= send_until || run.budget.load(Relaxed) == 0,
        };
        let typing_over = run.typing.is_none_or(|t| run.typing_released.load(Relaxed) >= t.total);
        if sending_over && typing_over {
            run.stop.store(true, Relaxed);
            let drain_until = *drain_until.get_or_insert(now + load.drain);
            let complete =
                delivered >= sent && (!run.acks || acked >= sent) && run.typing_received.load(Relaxed) >= typing_sent;
            if complete || now >= drain_until {
                break;
            }
            // The last window stays open through the drain: what arrives now was sent in it.
        } else if windows.due(run.now_ns()) {
            if let Some(row) = windows.close(run, run.now_ns()) {
                on_row(row);
            }
        } else if now > send_until + load.drain + Duration::from_secs(30) {
            // The generator could not send what it was asked to: give up on the rest.
            run.stop.store(true, Relaxed);
            run.error(|| "the load did not finish sending in time".into());
            break;
        }
    }
    let after = server_pid.and_then(report::sample);
    if let Some(row) = windows.close(run, run.now_ns()) {
        on_row(row);
    }
    let (sent, acked, delivered, typing_sent) = run.totals();
    let elapsed_ns = run.last_delivery_ns.load(Relaxed).saturating_sub(t0).max(1);
    let server = match (server_pid, before, after) {
        (Some(pid), Some(b), Some(a)) => Some(report::cost(pid, &b, &a, delivered)),
        _ => None,
    };
    let summary = |h: &Mutex<Histogram<u64>>| LatencySummary::of(&h.lock().expect("lock"));
    Ok(MessageOutcome {
        sent,
        acked: if run.acks { acked } else { 0 },
        delivered,
        lost: sent.saturating_sub(delivered),
        unacked: if run.acks { sent.saturating_sub(acked) } else { 0 },
        duplicate_acks: run.duplicate_acks.load(Relaxed),
        duplicate_deliveries: run.duplicate_deliveries.load(Relaxed),
        out_of_order: run.out_of_order.load(Relaxed),
        errors: run.errors.load(Relaxed),
        first_error: run.first_error.lock().expect("lock").clone(),
        typing_sent,
        typing_received: run.typing_received.load(Relaxed),
        offered_per_sec: load.rate,
        delivered_per_sec: delivered as f64 * 1e9 / elapsed_ns as f64,
        elapsed_secs: elapsed_ns as f64 / 1e9,
        e2e: LatencySummary::of(&windows.e2e),
        ack: summary(&run.ack),
        typing: LatencySummary::of(&windows.typing),
        send_lag: summary(&run.send_lag),
        server,
        intervals: windows.rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_counts_each_conversations_share() {
        // 10 released over 4 conversations: 0,1,2,3,0,1,2,3,0,1.
        assert_eq!((0..4).map(|c| due_for(10, c, 4)).collect::<Vec<_>>(), vec![3, 3, 2, 2]);
        assert_eq!(due_for(0, 0, 4), 0);
        assert_eq!(due_for(1, 0, 4), 1);
    }

    #[test]
    fn a_schedule_spreads_events_evenly_and_stops_at_its_total() {
        let s = Schedule::new(1000.0, Duration::from_secs(2), None, 0);
        assert_eq!(s.total, 2000);
        assert_eq!(s.due(0), 1);
        assert_eq!(s.due(999_999), 1);
        assert_eq!(s.due(1_000_000), 2);
        assert_eq!(s.due(10_000_000_000), 2000);
        assert_eq!(s.at(3), 3_000_000);
        assert_eq!(Schedule::new(1000.0, Duration::from_secs(2), Some(5), 0).total, 5);
    }
}
