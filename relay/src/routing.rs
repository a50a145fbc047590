//! The routing core: which agent gets which queued conversation. Pure: fed events with the
//! time, it answers with assignments; it never awaits, reads a clock or touches a socket.
//! The workspace hub owns one and carries out what it decides.
//!
//! Rules: a conversation waits in a FIFO queue; whenever an available agent (online, not
//! away) has room under their capacity, the oldest waiting conversation goes to the
//! available agent with the fewest open conversations, ties to the one idle longest.
//! Capacity is never exceeded, and the queue never waits while an eligible agent has room.

use std::collections::{BTreeSet, HashMap};

use kefu_proto::{AgentId, ConversationId, UnixMillis};

/// What the router knows of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentSlot {
    /// Most conversations the agent may hold.
    capacity: u32,
    /// Conversations the agent holds now.
    load: u32,
    /// Online and not away: may receive new conversations.
    available: bool,
    /// When the agent last received a conversation or became available; the longest idle
    /// wins ties.
    idle_since: UnixMillis,
}

/// Something the router must know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingEvent {
    /// An agent's availability or capacity changed (connected, away, gone, capacity edited).
    Agent {
        /// The agent.
        agent: AgentId,
        /// Whether the agent takes new conversations.
        available: bool,
        /// Most conversations the agent may hold.
        capacity: u32,
    },
    /// A conversation waits for an agent since `queued_at`.
    Enqueued {
        /// The conversation.
        conversation: ConversationId,
        /// When it entered the queue (its place in line).
        queued_at: UnixMillis,
    },
    /// A conversation is held by an agent already (rebuilt at start).
    Held {
        /// The conversation.
        conversation: ConversationId,
        /// Its agent.
        agent: AgentId,
    },
    /// A conversation no longer needs routing or frees its agent's slot (resolved, closed,
    /// or about to be re-queued).
    Released {
        /// The conversation.
        conversation: ConversationId,
    },
}

/// A decision: this conversation goes to this agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    /// The conversation.
    pub conversation: ConversationId,
    /// The agent who gets it.
    pub agent: AgentId,
}

/// The routing state of one workspace.
#[derive(Debug, Default)]
pub struct Router {
    /// Every agent the router has heard of.
    agents: HashMap<AgentId, AgentSlot>,
    /// Waiting conversations in line order.
    queue: BTreeSet<(UnixMillis, ConversationId)>,
    /// Place in line of each waiting conversation, to find it in `queue`.
    queued_at: HashMap<ConversationId, UnixMillis>,
    /// Which agent holds each assigned conversation.
    holders: HashMap<ConversationId, AgentId>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in one event at `now` and returns the assignments it makes possible.
    pub fn handle(&mut self, event: RoutingEvent, now: UnixMillis) -> Vec<Assignment> {
        match event {
            RoutingEvent::Agent { agent, available, capacity } => {
                let slot = self.agents.entry(agent).or_insert(AgentSlot {
                    capacity,
                    load: 0,
                    available: false,
                    idle_since: now,
                });
                if available && !slot.available {
                    slot.idle_since = now;
                }
                slot.available = available;
                slot.capacity = capacity;
            }
            RoutingEvent::Enqueued { conversation, queued_at } => {
                self.release(conversation);
                self.queue.insert((queued_at, conversation));
                self.queued_at.insert(conversation, queued_at);
            }
            RoutingEvent::Held { conversation, agent } => {
                self.release(conversation);
                let slot = self.agents.entry(agent).or_insert(AgentSlot {
                    capacity: 0,
                    load: 0,
                    available: false,
                    idle_since: now,
                });
                slot.load += 1;
                self.holders.insert(conversation, agent);
            }
            RoutingEvent::Released { conversation } => self.release(conversation),
        }
        self.drain(now)
    }

    /// Forgets a conversation wherever it is: out of the queue, or off its agent's load.
    fn release(&mut self, conversation: ConversationId) {
        if let Some(at) = self.queued_at.remove(&conversation) {
            self.queue.remove(&(at, conversation));
        }
        if let Some(slot) = self.holders.remove(&conversation).and_then(|agent| self.agents.get_mut(&agent)) {
            slot.load = slot.load.saturating_sub(1);
        }
    }

    /// Assigns waiting conversations, oldest first, while an agent has room.
    fn drain(&mut self, now: UnixMillis) -> Vec<Assignment> {
        let mut made = Vec::new();
        while let Some(&(at, conversation)) = self.queue.first() {
            let Some(agent) = self.pick_agent() else { break };
            self.queue.remove(&(at, conversation));
            self.queued_at.remove(&conversation);
            let slot = self.agents.get_mut(&agent).expect("picked agent exists");
            slot.load += 1;
            slot.idle_since = now;
            self.holders.insert(conversation, agent);
            made.push(Assignment { conversation, agent });
        }
        made
    }

    /// The available agent with room and the fewest open conversations, ties to the one
    /// idle longest, then the lower id (so decisions are deterministic).
    fn pick_agent(&self) -> Option<AgentId> {
        self.agents
            .iter()
            .filter(|(_, s)| s.available && s.load < s.capacity)
            .min_by_key(|(id, s)| (s.load, s.idle_since, **id))
            .map(|(id, _)| *id)
    }

    /// The agent holding a conversation, if assigned.
    pub fn holder(&self, conversation: ConversationId) -> Option<AgentId> {
        self.holders.get(&conversation).copied()
    }

    /// How many conversations an agent holds.
    pub fn load(&self, agent: AgentId) -> u32 {
        self.agents.get(&agent).map_or(0, |s| s.load)
    }

    /// 1-based place in line of a waiting conversation.
    pub fn queue_position(&self, conversation: ConversationId) -> Option<usize> {
        let at = *self.queued_at.get(&conversation)?;
        Some(self.queue.range(..(at, conversation)).count() + 1)
    }

    /// Conversations waiting.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agent(id: i64, available: bool, capacity: u32) -> RoutingEvent {
        RoutingEvent::Agent { agent: AgentId(id), available, capacity }
    }
    fn enqueue(id: i64, at: i64) -> RoutingEvent {
        RoutingEvent::Enqueued { conversation: ConversationId(id), queued_at: at }
    }
    fn release(id: i64) -> RoutingEvent {
        RoutingEvent::Released { conversation: ConversationId(id) }
    }

    /// Feeds `events` (at times 1, 2, …) and returns every assignment as (conversation, agent).
    fn check(events: &[RoutingEvent]) -> Vec<(i64, i64)> {
        let mut router = Router::new();
        let mut out = Vec::new();
        for (t, e) in events.iter().enumerate() {
            for a in router.handle(*e, t as i64 + 1) {
                out.push((a.conversation.0, a.agent.0));
            }
        }
        out
    }

    #[test]
    fn rules() {
        /// A rule's name, the events fed, and the (conversation, agent) assignments expected.
        type Case = (&'static str, Vec<RoutingEvent>, Vec<(i64, i64)>);
        let table: Vec<Case> = vec![
            ("no agent: stays queued", vec![enqueue(1, 1)], vec![]),
            ("agent online drains the queue", vec![enqueue(1, 1), agent(7, true, 5)], vec![(1, 7)]),
            ("away agent gets nothing", vec![agent(7, false, 5), enqueue(1, 1)], vec![]),
            (
                "capacity holds; release frees a slot for the next in line",
                vec![agent(7, true, 1), enqueue(1, 1), enqueue(2, 2), release(1)],
                vec![(1, 7), (2, 7)],
            ),
            (
                "fewest open conversations first",
                vec![agent(1, true, 5), agent(2, true, 5), enqueue(10, 1), enqueue(11, 2), enqueue(12, 3)],
                vec![(10, 1), (11, 2), (12, 1)],
            ),
            (
                "FIFO: the older conversation goes first",
                vec![enqueue(2, 5), enqueue(1, 9), agent(7, true, 1)],
                vec![(2, 7)],
            ),
            (
                "capacity raised drains at once",
                vec![agent(7, true, 1), enqueue(1, 1), enqueue(2, 2), agent(7, true, 2)],
                vec![(1, 7), (2, 7)],
            ),
            ("released while queued never gets assigned", vec![enqueue(1, 1), release(1), agent(7, true, 5)], vec![]),
        ];
        for (name, events, expected) in table {
            assert_eq!(check(&events), expected, "{name}");
        }
    }

    #[test]
    fn queue_position_counts_from_one() {
        let mut router = Router::new();
        router.handle(enqueue(1, 10), 10);
        router.handle(enqueue(2, 20), 20);
        router.handle(enqueue(3, 15), 20);
        assert_eq!(router.queue_position(ConversationId(1)), Some(1));
        assert_eq!(router.queue_position(ConversationId(3)), Some(2));
        assert_eq!(router.queue_position(ConversationId(2)), Some(3));
        assert_eq!(router.queue_len(), 3);
    }

    fn arb_event() -> impl Strategy<Value = RoutingEvent> {
        prop_oneof![
            (0i64..4, any::<bool>(), 0u32..4).prop_map(|(a, on, c)| agent(a, on, c)),
            (0i64..20, 0i64..50).prop_map(|(c, at)| enqueue(c, at)),
            (0i64..20).prop_map(release),
        ]
    }

    proptest! {
        /// Whatever happens: capacity holds, nothing is held twice, and nobody waits while
        /// an available agent has room.
        #[test]
        fn invariants_hold_under_any_event_sequence(events in proptest::collection::vec(arb_event(), 0..200)) {
            let mut router = Router::new();
            for (t, e) in events.iter().enumerate() {
                let made = router.handle(*e, t as i64);
                for a in &made {
                    let slot = &router.agents[&a.agent];
                    prop_assert!(slot.available, "assigned to an unavailable agent");
                    prop_assert!(slot.load <= slot.capacity, "capacity exceeded");
                }
                let mut loads: HashMap<AgentId, u32> = HashMap::new();
                for agent in router.holders.values() {
                    *loads.entry(*agent).or_default() += 1;
                }
                for (id, slot) in &router.agents {
                    prop_assert_eq!(slot.load, loads.get(id).copied().unwrap_or(0));
                }
                for c in router.holders.keys() {
                    prop_assert!(!router.queued_at.contains_key(c), "held and queued at once");
                }
                if !router.queue.is_empty() {
                    prop_assert!(router.pick_agent().is_none(), "queue waits while an agent has room");
                }
            }
        }
    }
}
