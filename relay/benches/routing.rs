//! The routing core, measured: the cost of one assign+release decision and the rate at
//! which a queue drains, with 100, 1,000 and 10,000 agents and 100,000 conversations
//! waiting, side by side with a naive baseline that scans every agent for each decision
//! (how a first version of routing usually looks).
//!
//! Run: `cargo bench -p kefu-relay --bench routing` (add `-- --quick` for a short run).
//! Figures are recorded in docs/BENCHMARKS.md.

use std::collections::VecDeque;
use std::time::Instant;

use hdrhistogram::Histogram;
use kefu_proto::{AgentId, ConversationId};
use kefu_relay::routing::{Availability, Decision, Event, Routable, Router, Timing};

/// Conversations waiting while decisions are measured.
const QUEUED: usize = 100_000;
/// Each agent's capacity in the steady-state measurement.
const CAPACITY: u32 = 5;

/// A small, fast, deterministic random source for picking conversations.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn routable(id: i64, at: i64) -> Routable {
    Routable {
        conversation: ConversationId(id),
        group: None,
        priority: 200,
        vip: false,
        queued_at: at,
        preferred: None,
    }
}

struct Figures {
    p50_ns: u64,
    p99_ns: u64,
    max_ns: u64,
    drain_per_sec: f64,
}

/// The real router: agents full, `QUEUED` waiting; each measured step releases a random
/// held conversation (its agent then takes the head of the queue) and enqueues a new one.
fn measure_router(agents: usize, decisions: usize) -> Figures {
    let mut router = Router::new(Timing { grace_ms: 60_000, reroute_unanswered_ms: None });
    let mut out = Vec::new();
    for a in 0..agents {
        router.handle(Event::Agent { agent: AgentId(a as i64), capacity: CAPACITY, skills: vec![] }, 0, &mut out);
        router.handle(Event::Presence { agent: AgentId(a as i64), availability: Availability::Online }, 0, &mut out);
    }
    let mut next = 0i64;
    let mut held = Vec::new();
    let total = agents * CAPACITY as usize + QUEUED;
    for _ in 0..total {
        out.clear();
        router.handle(Event::Enqueue(routable(next, next)), next, &mut out);
        if let Some(Decision::Assigned { conversation, .. }) = out.first() {
            held.push(*conversation);
        }
        next += 1;
    }
    assert_eq!(router.waiting_len(), QUEUED);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..decisions {
        let i = rng.below(held.len());
        let released = held.swap_remove(i);
        out.clear();
        let started = Instant::now();
        router.handle(Event::Released { conversation: released }, next, &mut out);
        let elapsed = started.elapsed().as_nanos() as u64;
        histogram.record(elapsed.max(1)).expect("record");
        match out.first() {
            Some(Decision::Assigned { conversation, .. }) => held.push(*conversation),
            other => panic!("a release must drain the queue, got {other:?}"),
        }
        out.clear();
        router.handle(Event::Enqueue(routable(next, next)), next, &mut out);
        next += 1;
    }
    // Drain: QUEUED conversations waiting, agents coming online with room for all of them.
    let mut router = Router::new(Timing::default());
    let capacity = (QUEUED / agents + 1) as u32;
    for a in 0..agents {
        router.handle(Event::Agent { agent: AgentId(a as i64), capacity, skills: vec![] }, 0, &mut out);
    }
    for c in 0..QUEUED as i64 {
        router.handle(Event::Enqueue(routable(c, c)), c, &mut out);
    }
    out.clear();
    let started = Instant::now();
    for a in 0..agents {
        router.handle(Event::Presence { agent: AgentId(a as i64), availability: Availability::Online }, 1, &mut out);
    }
    let elapsed = started.elapsed();
    let assigned = out.iter().filter(|d| matches!(d, Decision::Assigned { .. })).count();
    assert_eq!(assigned, QUEUED);
    Figures {
        p50_ns: histogram.value_at_quantile(0.5),
        p99_ns: histogram.value_at_quantile(0.99),
        max_ns: histogram.max(),
        drain_per_sec: assigned as f64 / elapsed.as_secs_f64(),
    }
}

/// The baseline: agents in a vector, scanned in full for the least loaded one.
struct NaiveRouter {
    /// (load, capacity, idle since) per agent.
    agents: Vec<(u32, u32, i64)>,
    queue: VecDeque<i64>,
    holder: std::collections::HashMap<i64, usize>,
}

impl NaiveRouter {
    fn pick(&self) -> Option<usize> {
        self.agents
            .iter()
            .enumerate()
            .filter(|(_, (load, cap, _))| load < cap)
            .min_by_key(|(i, (load, _, idle))| (*load, *idle, *i))
            .map(|(i, _)| i)
    }

    fn enqueue(&mut self, c: i64, now: i64) -> bool {
        self.queue.push_back(c);
        self.drain(now) > 0
    }

    fn release(&mut self, c: i64, now: i64) -> usize {
        if let Some(a) = self.holder.remove(&c) {
            self.agents[a].0 -= 1;
        }
        self.drain(now)
    }

    fn drain(&mut self, now: i64) -> usize {
        let mut made = 0;
        while !self.queue.is_empty() {
            let Some(a) = self.pick() else { break };
            let c = self.queue.pop_front().expect("not empty");
            self.agents[a].0 += 1;
            self.agents[a].2 = now;
            self.holder.insert(c, a);
            made += 1;
        }
        made
    }
}

fn measure_naive(agents: usize, decisions: usize) -> Figures {
    let mut router =
        NaiveRouter { agents: vec![(0, CAPACITY, 0); agents], queue: VecDeque::new(), holder: Default::default() };
    let mut next = 0i64;
    let total = agents * CAPACITY as usize + QUEUED;
    for _ in 0..total {
        router.enqueue(next, next);
        next += 1;
    }
    let mut held: Vec<i64> = router.holder.keys().copied().collect();
    held.sort();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..decisions {
        let i = rng.below(held.len());
        let released = held.swap_remove(i);
        let head = *router.queue.front().expect("queue");
        let started = Instant::now();
        let made = router.release(released, next);
        histogram.record((started.elapsed().as_nanos() as u64).max(1)).expect("record");
        assert_eq!(made, 1);
        held.push(head);
        router.enqueue(next, next);
        next += 1;
    }
    let capacity = (QUEUED / agents + 1) as u32;
    let mut router = NaiveRouter {
        agents: vec![(0, 0, 0); agents],
        queue: (0..QUEUED as i64).collect(),
        holder: Default::default(),
    };
    let started = Instant::now();
    let mut assigned = 0;
    for a in 0..agents {
        router.agents[a].1 = capacity;
        assigned += router.drain(1);
    }
    let elapsed = started.elapsed();
    assert_eq!(assigned, QUEUED);
    Figures {
        p50_ns: histogram.value_at_quantile(0.5),
        p99_ns: histogram.value_at_quantile(0.99),
        max_ns: histogram.max(),
        drain_per_sec: assigned as f64 / elapsed.as_secs_f64(),
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let decisions = if quick { 20_000 } else { 200_000 };
    println!(
        "routing core: {QUEUED} conversations waiting, agents of capacity {CAPACITY}, {decisions} assign+release decisions"
    );
    println!("(a decision: a held conversation is released and its agent takes the head of the queue)\n");
    println!(
        "{:>7} | {:>9} {:>9} {:>9} {:>14} | {:>11} {:>11} {:>11} {:>14}",
        "agents", "p50", "p99", "max", "drain/s", "naive p50", "naive p99", "naive max", "naive drain/s"
    );
    for agents in [100, 1_000, 10_000] {
        let ours = measure_router(agents, decisions);
        // The baseline scans every agent per decision; fewer decisions keep the run short.
        let naive = measure_naive(agents, decisions / 10);
        println!(
            "{agents:>7} | {:>7.2}µs {:>7.2}µs {:>7.1}µs {:>14.0} | {:>9.2}µs {:>9.2}µs {:>9.1}µs {:>14.0}",
            ours.p50_ns as f64 / 1000.0,
            ours.p99_ns as f64 / 1000.0,
            ours.max_ns as f64 / 1000.0,
            ours.drain_per_sec,
            naive.p50_ns as f64 / 1000.0,
            naive.p99_ns as f64 / 1000.0,
            naive.max_ns as f64 / 1000.0,
            naive.drain_per_sec,
        );
    }
}
