//! New conversations per second: open-loop, customer *i* starts at `t0 + i / rate`. Each
//! connects, says hello as a new contact, writes its first message, and waits for its
//! conversation to be `assigned`; then it leaves. Agents close every conversation as soon
//! as it is assigned to them, so capacity frees up as fast as the relay allows. Times are
//! measured from the intended start, so a backlog shows up as latency.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::load;
use crate::report::{self, LatencySummary, ServerCost};
use crate::wire::{self, Probe};

/// How many new conversations to open.
#[derive(Debug, Clone)]
pub struct ConversationLoad {
    /// New customers per second.
    pub rate: f64,
    /// For how long.
    pub duration: Duration,
    /// Customers still waiting at once before new ones count as failed (bounds the
    /// tool's and the relay's open files).
    pub max_waiting: usize,
    /// How long one customer waits for its assignment.
    pub timeout: Duration,
}

/// What a new-conversation run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationOutcome {
    /// Customers started.
    pub started: u64,
    /// Conversations assigned to an agent.
    pub assigned: u64,
    /// Customers that failed (connect, hello, refused, timed out, or too many waiting).
    pub failed: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Conversations the agents closed.
    pub closed_by_agents: u64,
    /// Offered rate.
    pub offered_per_sec: f64,
    /// Assigned conversations per second over the run.
    pub assigned_per_sec: f64,
    /// Intended start → welcome.
    pub to_welcome: LatencySummary,
    /// Intended start → first message acknowledged.
    pub to_ack: LatencySummary,
    /// Intended start → `conversation` `assigned`.
    pub to_assigned: LatencySummary,
    /// The relay's CPU (per assigned conversation) and memory.
    pub server: Option<ServerCost>,
}

struct Shared {
    origin: Instant,
    to_welcome: Mutex<Histogram<u64>>,
    to_ack: Mutex<Histogram<u64>>,
    to_assigned: Mutex<Histogram<u64>>,
    assigned: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
    waiting: AtomicU64,
    last_assigned_ns: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn fail(&self, e: String) {
        if self.failed.fetch_add(1, Relaxed) == 0 {
            *self.first_error.lock().expect("lock") = Some(e);
        }
    }
}

/// An agent that closes every conversation assigned to it.
async fn closing_agent(ws: load::Ws, shared: Arc<Shared>) -> Result<()> {
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<i64>();
    let writer = tokio::spawn(async move {
        while let Some(id) = rx.recv().await {
            sink.feed(Message::Text(wire::close_frame(id).into())).await?;
            while let Ok(id) = rx.try_recv() {
                sink.feed(Message::Text(wire::close_frame(id).into())).await?;
            }
            sink.flush().await?;
        }
        anyhow::Ok(())
    });
    while let Some(message) = stream.next().await {
        let Message::Text(text) = message? else { continue };
        let text = text.as_str();
        match wire::frame_type(text) {
            "conversation" => match wire::conversation_change(text) {
                Some(("assigned", id)) => {
                    let _ = tx.send(id);
                }
                Some(("closed", _)) => {
                    shared.closed.fetch_add(1, Relaxed);
                }
                _ => {}
            },
            "error" => shared.fail(format!("agent got {text}")),
            _ => {}
        }
    }
    writer.abort();
    bail!("agent connection ended")
}

/// One new customer, from its intended start to its assignment.
async fn customer(addr: SocketAddr, widget_key: String, i: u64, intended: u64, shared: Arc<Shared>) -> Result<()> {
    let mut ws = load::customer(addr, &widget_key).await?;
    let record = |h: &Mutex<Histogram<u64>>| {
        h.lock().expect("lock").saturating_record(shared.now_ns().saturating_sub(intended).max(1));
    };
    record(&shared.to_welcome);
    let mut buf = String::new();
    wire::write_send(&mut buf, Probe { t_ns: intended, conv: i as usize, k: 0 }, 48);
    ws.send(Message::Text(buf.into())).await?;
    // The assignment may be announced before the message's ack: wait for both.
    let (mut acked, mut assigned) = (false, false);
    while !(acked && assigned) {
        let Some(message) = ws.next().await else { bail!("connection ended before assignment") };
        let Message::Text(text) = message? else { continue };
        let text = text.as_str();
        match wire::frame_type(text) {
            "ack" if !acked => {
                acked = true;
                record(&shared.to_ack);
            }
            "conversation" if !assigned && wire::conversation_change(text).is_some_and(|(c, _)| c == "assigned") => {
                assigned = true;
                record(&shared.to_assigned);
                shared.assigned.fetch_add(1, Relaxed);
                shared.last_assigned_ns.fetch_max(shared.now_ns(), Relaxed);
            }
            "error" => bail!("customer got {text}"),
            _ => {}
        }
    }
    // Leave politely: the relay answers the close and closes the socket first.
    let _ = ws.close(None).await;
    while let Some(Ok(_)) = ws.next().await {}
    Ok(())
}

/// Runs the new-conversation load against a relay with these agents.
pub async fn run_conversations(
    addr: SocketAddr,
    widget_key: &str,
    agent_tokens: &[String],
    load: &ConversationLoad,
    server_pid: Option<u32>,
) -> Result<ConversationOutcome> {
    let shared = Arc::new(Shared {
        origin: Instant::now(),
        to_welcome: Mutex::new(report::histogram()),
        to_ack: Mutex::new(report::histogram()),
        to_assigned: Mutex::new(report::histogram()),
        assigned: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        closed: AtomicU64::new(0),
        waiting: AtomicU64::new(0),
        last_assigned_ns: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let mut agents = JoinSet::new();
    for token in agent_tokens {
        let ws = load::agent(addr, token).await?;
        agents.spawn(closing_agent(ws, shared.clone()));
    }
    let before = server_pid.and_then(report::sample);
    let total = (load.rate * load.duration.as_secs_f64()).floor() as u64;
    let interval = 1e9 / load.rate;
    let t0 = shared.now_ns() + 5_000_000;
    let mut customers = JoinSet::new();
    for i in 0..total {
        let intended = t0 + (i as f64 * interval) as u64;
        loop {
            let now = shared.now_ns();
            if now >= intended {
                break;
            }
            let gap = intended - now;
            if gap > 2_000_000 {
                tokio::time::sleep(Duration::from_nanos(gap - 1_000_000)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
        while let Some(done) = customers.try_join_next() {
            let _ = done;
        }
        if shared.waiting.load(Relaxed) >= load.max_waiting as u64 {
            shared.fail(format!("more than {} customers waiting at once", load.max_waiting));
            continue;
        }
        shared.waiting.fetch_add(1, Relaxed);
        let (shared, key, timeout) = (shared.clone(), widget_key.to_string(), load.timeout);
        customers.spawn(async move {
            let result = tokio::time::timeout(timeout, customer(addr, key, i, intended, shared.clone())).await;
            shared.waiting.fetch_sub(1, Relaxed);
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => shared.fail(format!("{e:#}")),
                Err(_) => shared.fail(format!("no assignment within {timeout:?}")),
            }
        });
    }
    while customers.join_next().await.is_some() {}
    // Let the last closes land before reading the relay's figures.
    let closing_guard = Instant::now() + Duration::from_secs(10);
    while shared.closed.load(Relaxed) < shared.assigned.load(Relaxed) && Instant::now() < closing_guard {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = server_pid.and_then(report::sample);
    agents.abort_all();
    let assigned = shared.assigned.load(Relaxed);
    let elapsed = shared.last_assigned_ns.load(Relaxed).saturating_sub(t0).max(1);
    let summary = |h: &Mutex<Histogram<u64>>| LatencySummary::of(&h.lock().expect("lock"));
    let server = match (server_pid, before, after) {
        (Some(pid), Some(b), Some(a)) => Some(report::cost(pid, &b, &a, assigned)),
        _ => None,
    };
    if total == 0 {
        return Err(anyhow!("rate × duration is less than one conversation"));
    }
    Ok(ConversationOutcome {
        started: total,
        assigned,
        failed: shared.failed.load(Relaxed),
        first_error: shared.first_error.lock().expect("lock").clone(),
        closed_by_agents: shared.closed.load(Relaxed),
        offered_per_sec: load.rate,
        assigned_per_sec: assigned as f64 * 1e9 / elapsed as f64,
        to_welcome: summary(&shared.to_welcome),
        to_ack: summary(&shared.to_ack),
        to_assigned: summary(&shared.to_assigned),
        server,
    })
}
