//! Operators' metrics, `GET /metrics` in the Prometheus (OpenMetrics) text format.
//!
//! Counters and histograms are bumped where things happen (atomics, no locks on the hot
//! path: label lookups are done once, at start). What is a matter of state — queue lengths
//! and ages, agents online, the channel outbox — is read when scraped: each hub answers
//! for its workspace, the database for the outbox. Every metric is listed in
//! `docs/metrics.md`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use kefu_proto::frame::AuthorKind;

/// Label pairs.
type Labels = Vec<(&'static str, String)>;

/// One workspace's state at a scrape, as its hub tells it.
#[derive(Debug, Clone, Default)]
pub struct HubGauges {
    /// The workspace's slug.
    pub workspace: String,
    /// Per queue (group slug, `any` for the any-agent queue): waiting, and the longest wait
    /// in seconds.
    pub queues: Vec<(String, u32, f64)>,
    /// Agents online (not away).
    pub agents_online: u32,
    /// Agents away.
    pub agents_away: u32,
}

/// The relay's metrics.
pub struct Telemetry {
    registry: Registry,
    connections: Family<Labels, Gauge>,
    /// Messages stored, by author kind (customer, agent, bot, system).
    stored: [Counter; 4],
    /// Message frames queued to connections.
    delivered: Counter,
    /// Journal transactions: how long each took to commit, and how many operations it held.
    commit_seconds: Histogram,
    batch_ops: Histogram,
    routing: Family<Labels, Counter>,
    queue_waiting: Family<Labels, Gauge>,
    queue_oldest: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    agents: Family<Labels, Gauge>,
    outbox: Family<Labels, Gauge>,
    /// One scrape at a time: a scrape clears and refills the state gauges.
    scrape: tokio::sync::Mutex<()>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// Every metric registered, at zero.
    pub fn new() -> Telemetry {
        let mut registry = Registry::with_prefix("kefu");
        let connections = Family::<Labels, Gauge>::default();
        registry.register("connections", "Open WebSocket connections, by side", connections.clone());
        let messages = Family::<Labels, Counter>::default();
        registry.register("messages_stored", "Messages made durable, by author kind", messages.clone());
        let stored = ["customer", "agent", "bot", "system"]
            .map(|a| messages.get_or_create(&vec![("author", a.to_string())]).clone());
        let delivered = Counter::default();
        registry.register("messages_delivered", "Message frames queued to connections", delivered.clone());
        let commit_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "journal_commit_seconds",
            "Time to write and fsync one journal transaction (group commit)",
            commit_seconds.clone(),
        );
        let batch_ops = Histogram::new(exponential_buckets(1.0, 2.0, 13));
        registry.register("journal_batch_operations", "Operations per journal transaction", batch_ops.clone());
        let routing = Family::<Labels, Counter>::default();
        registry.register("routing_decisions", "Routing decisions, by outcome and rule", routing.clone());
        let queue_waiting = Family::<Labels, Gauge>::default();
        registry.register("queue_waiting", "Conversations waiting, per workspace and queue", queue_waiting.clone());
        let queue_oldest = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "queue_oldest_wait_seconds",
            "How long the longest-waiting conversation of each queue has waited",
            queue_oldest.clone(),
        );
        let agents = Family::<Labels, Gauge>::default();
        registry.register("agents", "Agents connected, per workspace and presence", agents.clone());
        let outbox = Family::<Labels, Gauge>::default();
        registry.register("outbox_deliveries", "Channel webhook deliveries, by state", outbox.clone());
        Telemetry {
            registry,
            connections,
            stored,
            delivered,
            commit_seconds,
            batch_ops,
            routing,
            queue_waiting,
            queue_oldest,
            agents,
            outbox,
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    /// A connection opened on `side` (`customer`, `agent`); the guard counts it closed.
    pub fn connection(&self, side: &'static str) -> ConnectionGuard {
        let gauge = self.connections.get_or_create(&vec![("side", side.to_string())]).clone();
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// A message was stored.
    pub fn stored(&self, author: AuthorKind) {
        let index = match author {
            AuthorKind::Customer => 0,
            AuthorKind::Agent => 1,
            AuthorKind::Bot => 2,
            AuthorKind::System => 3,
        };
        self.stored[index].inc();
    }

    /// Message frames were queued to `n` connections.
    pub fn delivered(&self, n: u64) {
        self.delivered.inc_by(n);
    }

    /// A journal transaction committed.
    pub fn committed(&self, seconds: f64, operations: usize) {
        self.commit_seconds.observe(seconds);
        self.batch_ops.observe(operations as f64);
    }

    /// A routing decision (`assigned`, `queued`, …) by a rule (or the reason).
    pub fn routed(&self, outcome: &'static str, rule: &'static str) {
        self.routing.get_or_create(&vec![("outcome", outcome.to_string()), ("rule", rule.to_string())]).inc();
    }

    /// The text exposition, with the state gauges filled from `hubs` and `outbox`
    /// (pending and dead deliveries).
    pub async fn render(&self, hubs: &[HubGauges], outbox: (u64, u64)) -> String {
        let _one = self.scrape.lock().await;
        self.queue_waiting.clear();
        self.queue_oldest.clear();
        self.agents.clear();
        for hub in hubs {
            for (queue, waiting, oldest) in &hub.queues {
                let labels = vec![("workspace", hub.workspace.clone()), ("queue", queue.clone())];
                self.queue_waiting.get_or_create(&labels).set(*waiting as i64);
                self.queue_oldest.get_or_create(&labels).set(*oldest);
            }
            for (presence, n) in [("online", hub.agents_online), ("away", hub.agents_away)] {
                let labels = vec![("workspace", hub.workspace.clone()), ("presence", presence.to_string())];
                self.agents.get_or_create(&labels).set(n as i64);
            }
        }
        self.outbox.get_or_create(&vec![("state", "pending".to_string())]).set(outbox.0 as i64);
        self.outbox.get_or_create(&vec![("state", "dead".to_string())]).set(outbox.1 as i64);
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Counts a connection until dropped.
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
