//! The routing core: which agent gets which conversation, and why. Pure: it is fed events
//! with the time and answers with decisions; it never awaits, reads a clock or touches a
//! socket. The workspace hub owns one, persists each decision, then announces it.
//!
//! # Rules
//! - A conversation targets a skill group (or none: any agent). It goes to an *available*
//!   agent (online, not away) who has the group's skill and room under their capacity:
//!   the fewest open conversations first, ties to the agent idle longest, then the lower
//!   id. A VIP conversation goes to a senior agent of the group when one has room.
//! - Sticky: a conversation may name a preferred agent (the one who last served the
//!   contact); it goes to them when they are available with room.
//! - Otherwise it waits in its group's queue, ordered by priority (lower first: returned
//!   conversations, then VIP, then by channel), then by the time it was queued (FIFO).
//!   Whenever an agent gains room, the best waiting conversation among the agent's groups
//!   (and the any-agent queue) goes to them at once.
//! - Escalation: a conversation queued past its group's deadline moves to the group's
//!   fallback group, or to the any-agent queue when the group widens; targets chain.
//! - Re-routing: an assigned conversation with no agent reply within the configured time
//!   goes to another eligible agent with room (if there is none, it stays and is retried).
//! - Grace: an agent who disconnects gets no new conversations; if they are not back
//!   within the grace period, their conversations return to the front of their queues.
//! - Capacity is never exceeded by the router, and no conversation is held twice.
//!
//! # Cost
//! Per group, available agents with room are kept in ordered sets keyed by
//! (load, idle since, id), and waiting conversations in ordered sets keyed by
//! (priority, queued at, id), so a decision costs a few O(log n) set operations whatever
//! the number of agents or waiting conversations. Decisions are written into a caller's
//! buffer so the hot path does not allocate.

use std::collections::BTreeSet;

// Keys are the relay's own ids, never chosen by clients, so a fast non-keyed hash is
// safe here, and it is a good part of what makes a decision cost about a microsecond.
use foldhash::HashMap;

use kefu_proto::{AgentId, ConversationId, UnixMillis};

/// A skill group, by id. `None` where a group is optional means "any agent".
pub type GroupId = i64;

/// Queue order: lower is served first.
pub type Priority = u16;

/// Priority of a conversation returned to the queue (agent gone, transferred to a group):
/// before everyone, because its customer has already waited once.
pub const PRIORITY_RETURNED: Priority = 0;

/// An agent's level in a skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Preferred for VIP conversations.
    Senior,
    /// Everyone else.
    Junior,
}

/// An agent's presence as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Takes new conversations.
    Online,
    /// Connected, takes no new conversations, keeps what they hold.
    Away,
    /// Disconnected: keeps what they hold until the grace period ends.
    Gone,
}

/// Escalation rules of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupRules {
    /// How long a conversation may wait in this group before it escalates.
    pub escalate_after_ms: Option<i64>,
    /// Where it escalates to.
    pub fallback: Option<GroupId>,
    /// With no fallback: escalate to the any-agent queue.
    pub widen: bool,
}

/// Workspace-wide timing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a disconnected agent keeps their conversations.
    pub grace_ms: i64,
    /// How long an assigned conversation may go without an agent reply before it moves
    /// to another agent; `None` never.
    pub reroute_unanswered_ms: Option<i64>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { grace_ms: 60_000, reroute_unanswered_ms: None }
    }
}

/// A conversation to route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routable {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its target group; `None` for any agent.
    pub group: Option<GroupId>,
    /// Its queue priority (lower first).
    pub priority: Priority,
    /// VIP conversations prefer senior agents.
    pub vip: bool,
    /// When it entered the queue: its place in line within its priority.
    pub queued_at: UnixMillis,
    /// The agent who last served the contact, to return to if they have room.
    pub preferred: Option<AgentId>,
}

/// Something the router must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An agent's capacity or skills (new agent, or edited).
    Agent {
        /// The agent.
        agent: AgentId,
        /// Most conversations they may hold.
        capacity: u32,
        /// Their skills.
        skills: Vec<(GroupId, Level)>,
    },
    /// An agent's presence changed.
    Presence {
        /// The agent.
        agent: AgentId,
        /// Now.
        availability: Availability,
    },
    /// A group's escalation rules (new or edited).
    Group {
        /// The group.
        group: GroupId,
        /// Its rules.
        rules: GroupRules,
    },
    /// A conversation needs an agent.
    Enqueue(Routable),
    /// A conversation is held by an agent already (rebuilt at start).
    Held {
        /// The conversation.
        conversation: ConversationId,
        /// Its agent.
        agent: AgentId,
        /// Its group.
        group: Option<GroupId>,
        /// Whether its contact is a VIP.
        vip: bool,
        /// Whether an agent has replied since it was assigned.
        answered: bool,
    },
    /// An agent replied in a conversation (stops its re-routing clock).
    Replied {
        /// The conversation.
        conversation: ConversationId,
    },
    /// A conversation needs routing no more (resolved, closed): frees its slot or leaves
    /// the queue.
    Released {
        /// The conversation.
        conversation: ConversationId,
    },
    /// An agent hands a conversation to another agent.
    TransferToAgent {
        /// The conversation.
        conversation: ConversationId,
        /// The receiving agent.
        to: AgentId,
    },
    /// An agent hands a conversation to a group (or any agent).
    TransferToGroup {
        /// The conversation.
        conversation: ConversationId,
        /// The receiving group.
        group: Option<GroupId>,
    },
    /// An agent takes a specific queued conversation.
    Pick {
        /// The conversation.
        conversation: ConversationId,
        /// The agent taking it.
        agent: AgentId,
    },
    /// A supervisor takes a conversation over, from its agent or from the queue, beyond
    /// their capacity if need be (they asked for it by hand).
    TakeOver {
        /// The conversation.
        conversation: ConversationId,
        /// The supervisor.
        agent: AgentId,
        /// The conversation's routing facts when the router has not seen it yet (the bot
        /// was answering it): it goes straight to the supervisor, never through the queue,
        /// so no other agent is offered it first.
        arriving: Option<Routable>,
    },
    /// Time passed: escalations, re-routing and grace periods fall due.
    Tick,
}

/// An agent as they stood when a decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The agent.
    pub agent: AgentId,
    /// Conversations held (before this decision).
    pub load: u32,
    /// Most they may hold.
    pub capacity: u32,
    /// Idle since.
    pub idle_since: UnixMillis,
    /// Senior in the conversation's group.
    pub senior: bool,
}

/// The rule that chose the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The contact's previous agent had room.
    Sticky,
    /// The least loaded eligible agent (ties: idle longest).
    LeastLoaded,
    /// A VIP conversation went to the least loaded senior agent.
    SeniorForVip,
    /// The agent gained room and this was the best waiting conversation.
    Drained,
    /// Transferred by an agent.
    Transferred,
    /// Taken by hand.
    Picked,
    /// Taken over by a supervisor.
    TakenOver,
    /// Moved because nobody replied in time.
    Rerouted,
}

/// Why an agent got a conversation: the rule, how many were eligible, and the best
/// candidates at the moment of the decision (the winner first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Why {
    /// The rule.
    pub rule: Rule,
    /// Agents eligible with room at that moment.
    pub eligible: u32,
    /// The winner and up to two runners-up, in rank order.
    pub ranked: [Option<Candidate>; 3],
}

/// Why a conversation waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Nobody with the group's skill is online.
    NobodyOnline,
    /// Everyone online with the skill is at capacity.
    AllBusy {
        /// How many are online with the skill.
        online: u32,
    },
}

/// Why a conversation went back to a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// Its agent disconnected and did not return within the grace period.
    AgentGone,
    /// Its agent transferred it to a group.
    Transferred,
}

/// A refused request (transfer, pick).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The conversation is not where the request assumed (not assigned, not queued).
    NotRoutable,
    /// The receiving agent is unknown.
    UnknownAgent,
    /// The receiving agent is not online.
    NotAvailable,
    /// The receiving agent has no room.
    AtCapacity,
    /// The receiving agent already holds it.
    AlreadyHolds,
}

/// What the router decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The conversation goes to `agent` (from `from`, when it moves between agents).
    Assigned {
        /// The conversation.
        conversation: ConversationId,
        /// Its new agent.
        agent: AgentId,
        /// Its previous agent, if it moved.
        from: Option<AgentId>,
        /// Why.
        why: Why,
    },
    /// The conversation waits in `group`'s queue.
    Queued {
        /// The conversation.
        conversation: ConversationId,
        /// The queue.
        group: Option<GroupId>,
        /// Why.
        why: Waiting,
    },
    /// The conversation left its agent for the queue of `group`.
    Returned {
        /// The conversation.
        conversation: ConversationId,
        /// The agent it left.
        from: AgentId,
        /// The queue it joined.
        group: Option<GroupId>,
        /// Why.
        why: Returned,
    },
    /// The conversation waited too long and moved from one queue to another.
    Escalated {
        /// The conversation.
        conversation: ConversationId,
        /// The queue it left.
        from: Option<GroupId>,
        /// The queue it joined (`None`: any agent).
        to: Option<GroupId>,
    },
    /// A transfer or pick was refused; nothing changed.
    Refused {
        /// The conversation.
        conversation: ConversationId,
        /// Why.
        why: Refusal,
    },
}

/// Rank of an available agent with room: fewest held, then idle longest, then lower id.
type AgentKey = (u32, UnixMillis, AgentId);

/// Rank of a waiting conversation: priority, then age, then id.
type QueueKey = (Priority, UnixMillis, ConversationId);

/// What the router knows of one agent.
#[derive(Debug, Clone)]
struct AgentState {
    capacity: u32,
    skills: Vec<(GroupId, Level)>,
    availability: Availability,
    /// When the agent last received a conversation or became available.
    idle_since: UnixMillis,
    /// Conversations held (a handful: a vector beats a set here).
    held: Vec<ConversationId>,
    /// When a gone agent's grace period ends.
    grace_until: Option<UnixMillis>,
}

impl AgentState {
    fn load(&self) -> u32 {
        self.held.len() as u32
    }

    fn has_room(&self) -> bool {
        self.availability == Availability::Online && self.load() < self.capacity
    }

    fn key(&self, id: AgentId) -> AgentKey {
        (self.load(), self.idle_since, id)
    }

    fn level_in(&self, group: Option<GroupId>) -> Option<Level> {
        match group {
            None => Some(Level::Junior),
            Some(g) => self.skills.iter().find(|(s, _)| *s == g).map(|(_, l)| *l),
        }
    }
}

/// Available agents with room for one group (or for any-agent conversations).
#[derive(Debug, Default)]
struct Pool {
    all: BTreeSet<AgentKey>,
    senior: BTreeSet<AgentKey>,
    /// Agents online with this skill, with or without room.
    online: u32,
}

/// A waiting conversation.
#[derive(Debug, Clone, Copy)]
struct Waiter {
    routable: Routable,
    /// When it escalates, if its group escalates.
    escalates_at: Option<UnixMillis>,
    /// An agent it must not go to (the one it is being moved away from).
    excluded: Option<AgentId>,
}

/// A held conversation.
#[derive(Debug, Clone, Copy)]
struct Holding {
    agent: AgentId,
    group: Option<GroupId>,
    vip: bool,
    /// When it is re-routed if still unanswered.
    reroute_at: Option<UnixMillis>,
}

/// The routing state of one workspace.
#[derive(Debug, Default)]
pub struct Router {
    timing: Timing,
    agents: HashMap<AgentId, AgentState>,
    groups: HashMap<GroupId, GroupRules>,
    /// Per group (`None`: any agent), the available agents with room.
    pools: HashMap<Option<GroupId>, Pool>,
    /// Per group, the waiting conversations in line order.
    queues: HashMap<Option<GroupId>, BTreeSet<QueueKey>>,
    waiting: HashMap<ConversationId, Waiter>,
    holdings: HashMap<ConversationId, Holding>,
    escalations: BTreeSet<(UnixMillis, ConversationId)>,
    reroutes: BTreeSet<(UnixMillis, ConversationId)>,
    graces: BTreeSet<(UnixMillis, AgentId)>,
}

impl Router {
    /// An empty router with these timing rules.
    pub fn new(timing: Timing) -> Self {
        Router { timing, ..Default::default() }
    }

    /// Takes in one event at `now` and appends the decisions it leads to.
    pub fn handle(&mut self, event: Event, now: UnixMillis, out: &mut Vec<Decision>) {
        match event {
            Event::Agent { agent, capacity, skills } => {
                self.unpool(agent);
                let state = self.agents.entry(agent).or_insert_with(|| AgentState {
                    capacity,
                    skills: Vec::new(),
                    availability: Availability::Gone,
                    idle_since: now,
                    held: Vec::new(),
                    grace_until: None,
                });
                state.capacity = capacity;
                state.skills = skills;
                self.pool(agent);
                self.fill(agent, now, out);
            }
            Event::Presence { agent, availability } => self.presence(agent, availability, now, out),
            Event::Group { group, rules } => {
                self.groups.insert(group, rules);
            }
            Event::Enqueue(routable) => {
                let freed = self.forget(routable.conversation);
                self.route(routable, None, now, out);
                if let Some(agent) = freed {
                    self.fill(agent, now, out);
                }
            }
            Event::Held { conversation, agent, group, vip, answered } => {
                let freed = self.forget(conversation);
                let reroute_at = if answered { None } else { self.reroute_deadline(now) };
                self.hold(conversation, agent, group, vip, reroute_at, now);
                if let Some(previous) = freed.filter(|p| *p != agent) {
                    self.fill(previous, now, out);
                }
            }
            Event::Replied { conversation } => {
                if let Some(h) = self.holdings.get_mut(&conversation)
                    && let Some(at) = h.reroute_at.take()
                {
                    self.reroutes.remove(&(at, conversation));
                }
            }
            Event::Released { conversation } => {
                if let Some(agent) = self.forget(conversation) {
                    self.fill(agent, now, out);
                }
            }
            Event::TransferToAgent { conversation, to } => self.transfer_to_agent(conversation, to, now, out),
            Event::TransferToGroup { conversation, group } => {
                let Some(holding) = self.holdings.get(&conversation).copied() else {
                    out.push(Decision::Refused { conversation, why: Refusal::NotRoutable });
                    return;
                };
                self.forget(conversation);
                out.push(Decision::Returned { conversation, from: holding.agent, group, why: Returned::Transferred });
                let routable = Routable { group, ..returned(conversation, &holding, now) };
                self.route(routable, Some(holding.agent), now, out);
                self.fill(holding.agent, now, out);
            }
            Event::Pick { conversation, agent } => self.pick(conversation, agent, now, out),
            Event::TakeOver { conversation, agent, arriving } => {
                self.take_over(conversation, agent, arriving, now, out)
            }
            Event::Tick => self.tick(now, out),
        }
    }

    fn presence(&mut self, agent: AgentId, availability: Availability, now: UnixMillis, out: &mut Vec<Decision>) {
        self.unpool(agent);
        let grace_ms = self.timing.grace_ms;
        let Some(state) = self.agents.get_mut(&agent) else { return };
        let was = state.availability;
        state.availability = availability;
        if let Some(until) = state.grace_until.take() {
            self.graces.remove(&(until, agent));
        }
        if availability == Availability::Online && was != Availability::Online {
            state.idle_since = now;
        }
        if availability == Availability::Gone && !state.held.is_empty() {
            let until = now + grace_ms;
            state.grace_until = Some(until);
            self.graces.insert((until, agent));
        }
        self.pool(agent);
        self.fill(agent, now, out);
    }

    /// Routes a conversation that needs an agent: to an agent now, or into its queue.
    fn route(&mut self, routable: Routable, excluded: Option<AgentId>, now: UnixMillis, out: &mut Vec<Decision>) {
        if let Some(preferred) = routable.preferred
            && excluded != Some(preferred)
            && self.agents.get(&preferred).is_some_and(AgentState::has_room)
        {
            let why = self.why(Rule::Sticky, routable.group, preferred);
            self.assign(routable, preferred, None, why, now, out);
            return;
        }
        if let Some((agent, rule)) = self.best_agent(routable.group, routable.vip, excluded) {
            let why = self.why(rule, routable.group, agent);
            self.assign(routable, agent, None, why, now, out);
            return;
        }
        let online = self.pools.get(&routable.group).map_or(0, |p| p.online);
        let why = if online == 0 { Waiting::NobodyOnline } else { Waiting::AllBusy { online } };
        self.enqueue(routable, excluded, now);
        out.push(Decision::Queued { conversation: routable.conversation, group: routable.group, why });
    }

    /// The best agent for a conversation of `group`: a senior one first for VIPs.
    fn best_agent(&self, group: Option<GroupId>, vip: bool, excluded: Option<AgentId>) -> Option<(AgentId, Rule)> {
        let pool = self.pools.get(&group)?;
        let first = |set: &BTreeSet<AgentKey>| set.iter().map(|k| k.2).find(|a| Some(*a) != excluded);
        if vip && let Some(agent) = first(&pool.senior) {
            return Some((agent, Rule::SeniorForVip));
        }
        first(&pool.all).map(|agent| (agent, Rule::LeastLoaded))
    }

    /// Explains a choice of `winner` in `group`: eligible count and the best candidates.
    fn why(&self, rule: Rule, group: Option<GroupId>, winner: AgentId) -> Why {
        let mut ranked = [None; 3];
        let mut eligible = 0;
        if let Some(pool) = self.pools.get(&group) {
            eligible = pool.all.len() as u32;
            ranked[0] = self.candidate(winner, group);
            let others = pool.all.iter().map(|k| k.2).filter(|a| *a != winner).take(2);
            for (slot, agent) in ranked[1..].iter_mut().zip(others) {
                *slot = self.candidate(agent, group);
            }
        } else {
            ranked[0] = self.candidate(winner, group);
        }
        Why { rule, eligible, ranked }
    }

    fn candidate(&self, agent: AgentId, group: Option<GroupId>) -> Option<Candidate> {
        let state = self.agents.get(&agent)?;
        Some(Candidate {
            agent,
            load: state.load(),
            capacity: state.capacity,
            idle_since: state.idle_since,
            senior: group.is_some() && state.level_in(group) == Some(Level::Senior),
        })
    }

    fn assign(
        &mut self,
        r: Routable,
        agent: AgentId,
        from: Option<AgentId>,
        why: Why,
        now: UnixMillis,
        out: &mut Vec<Decision>,
    ) {
        let reroute_at = self.reroute_deadline(now);
        self.hold(r.conversation, agent, r.group, r.vip, reroute_at, now);
        out.push(Decision::Assigned { conversation: r.conversation, agent, from, why });
    }

    fn reroute_deadline(&self, now: UnixMillis) -> Option<UnixMillis> {
        self.timing.reroute_unanswered_ms.map(|ms| now + ms.max(1))
    }

    /// Records that `agent` holds a conversation, updating the agent's place in the pools.
    fn hold(
        &mut self,
        conversation: ConversationId,
        agent: AgentId,
        group: Option<GroupId>,
        vip: bool,
        reroute_at: Option<UnixMillis>,
        now: UnixMillis,
    ) {
        self.unpool(agent);
        let state = self.agents.entry(agent).or_insert_with(|| AgentState {
            capacity: 0,
            skills: Vec::new(),
            availability: Availability::Gone,
            idle_since: now,
            held: Vec::new(),
            grace_until: None,
        });
        if !state.held.contains(&conversation) {
            state.held.push(conversation);
        }
        state.idle_since = now;
        self.pool(agent);
        if let Some(at) = reroute_at {
            self.reroutes.insert((at, conversation));
        }
        self.holdings.insert(conversation, Holding { agent, group, vip, reroute_at });
    }

    fn enqueue(&mut self, r: Routable, excluded: Option<AgentId>, now: UnixMillis) {
        let escalates_at = r
            .group
            .and_then(|g| self.groups.get(&g))
            .and_then(|rules| rules.escalate_after_ms)
            // At least 1 ms, so that a chain of escalations always moves forward in time.
            .map(|ms| now.max(r.queued_at) + ms.max(1));
        if let Some(at) = escalates_at {
            self.escalations.insert((at, r.conversation));
        }
        self.queues.entry(r.group).or_default().insert((r.priority, r.queued_at, r.conversation));
        self.waiting.insert(r.conversation, Waiter { routable: r, escalates_at, excluded });
    }

    /// Removes a conversation from wherever it is; returns the agent it freed, if held.
    /// Whether the conversation is held or waiting here.
    fn knows(&self, conversation: ConversationId) -> bool {
        self.holdings.contains_key(&conversation) || self.waiting.contains_key(&conversation)
    }

    fn forget(&mut self, conversation: ConversationId) -> Option<AgentId> {
        if let Some(w) = self.waiting.remove(&conversation) {
            let r = w.routable;
            if let Some(queue) = self.queues.get_mut(&r.group) {
                queue.remove(&(r.priority, r.queued_at, conversation));
            }
            if let Some(at) = w.escalates_at {
                self.escalations.remove(&(at, conversation));
            }
        }
        let holding = self.holdings.remove(&conversation)?;
        if let Some(at) = holding.reroute_at {
            self.reroutes.remove(&(at, conversation));
        }
        self.unpool(holding.agent);
        if let Some(state) = self.agents.get_mut(&holding.agent)
            && let Some(i) = state.held.iter().position(|c| *c == conversation)
        {
            state.held.swap_remove(i);
        }
        self.pool(holding.agent);
        Some(holding.agent)
    }

    /// Takes an agent out of every pool (before their key changes).
    fn unpool(&mut self, agent: AgentId) {
        let Some(state) = self.agents.get(&agent) else { return };
        let key = state.key(agent);
        let online = state.availability == Availability::Online;
        for group in groups_of(state) {
            if let Some(pool) = self.pools.get_mut(&group) {
                pool.all.remove(&key);
                pool.senior.remove(&key);
                if online {
                    pool.online -= 1;
                }
            }
        }
    }

    /// Puts an agent into the pools they belong in now.
    fn pool(&mut self, agent: AgentId) {
        let Some(state) = self.agents.get(&agent) else { return };
        let key = state.key(agent);
        let online = state.availability == Availability::Online;
        let room = state.has_room();
        for group in groups_of(state) {
            let pool = self.pools.entry(group).or_default();
            if online {
                pool.online += 1;
            }
            if room {
                pool.all.insert(key);
                if state.level_in(group) == Some(Level::Senior) && group.is_some() {
                    pool.senior.insert(key);
                }
            }
        }
    }

    /// Gives an agent who may have room the best waiting conversations they can take.
    fn fill(&mut self, agent: AgentId, now: UnixMillis, out: &mut Vec<Decision>) {
        while self.agents.get(&agent).is_some_and(AgentState::has_room) {
            let Some(conversation) = self.best_waiting_for(agent) else { return };
            let waiter = self.waiting[&conversation];
            self.forget(conversation);
            let why = self.why(Rule::Drained, waiter.routable.group, agent);
            self.assign(waiter.routable, agent, None, why, now, out);
        }
    }

    /// The first conversation in line among the queues an agent serves.
    fn best_waiting_for(&self, agent: AgentId) -> Option<ConversationId> {
        let state = self.agents.get(&agent)?;
        groups_of(state)
            .filter_map(|group| {
                self.queues.get(&group)?.iter().find(|k| self.waiting[&k.2].excluded != Some(agent)).copied()
            })
            .min()
            .map(|k| k.2)
    }

    fn transfer_to_agent(
        &mut self,
        conversation: ConversationId,
        to: AgentId,
        now: UnixMillis,
        out: &mut Vec<Decision>,
    ) {
        let refuse = |out: &mut Vec<Decision>, why| out.push(Decision::Refused { conversation, why });
        let waiter = self.waiting.get(&conversation).copied();
        let Some(holding) = self.holdings.get(&conversation).copied() else {
            // A supervisor may send a waiting conversation straight to an agent.
            let Some(waiter) = waiter else { return refuse(out, Refusal::NotRoutable) };
            let Some(target) = self.agents.get(&to) else { return refuse(out, Refusal::UnknownAgent) };
            if target.availability != Availability::Online {
                return refuse(out, Refusal::NotAvailable);
            }
            if target.load() >= target.capacity {
                return refuse(out, Refusal::AtCapacity);
            }
            self.forget(conversation);
            let why = self.why(Rule::Transferred, waiter.routable.group, to);
            return self.assign(waiter.routable, to, None, why, now, out);
        };
        let Some(target) = self.agents.get(&to) else { return refuse(out, Refusal::UnknownAgent) };
        if holding.agent == to {
            return refuse(out, Refusal::AlreadyHolds);
        }
        if target.availability != Availability::Online {
            return refuse(out, Refusal::NotAvailable);
        }
        if target.load() >= target.capacity {
            return refuse(out, Refusal::AtCapacity);
        }
        self.forget(conversation);
        let routable = returned(conversation, &holding, now);
        let why = self.why(Rule::Transferred, holding.group, to);
        self.assign(routable, to, Some(holding.agent), why, now, out);
        self.fill(holding.agent, now, out);
    }

    fn pick(&mut self, conversation: ConversationId, agent: AgentId, now: UnixMillis, out: &mut Vec<Decision>) {
        let refuse = |out: &mut Vec<Decision>, why| out.push(Decision::Refused { conversation, why });
        let Some(waiter) = self.waiting.get(&conversation).copied() else { return refuse(out, Refusal::NotRoutable) };
        let Some(state) = self.agents.get(&agent) else { return refuse(out, Refusal::UnknownAgent) };
        if state.availability == Availability::Gone {
            return refuse(out, Refusal::NotAvailable);
        }
        if state.load() >= state.capacity {
            return refuse(out, Refusal::AtCapacity);
        }
        self.forget(conversation);
        let why = self.why(Rule::Picked, waiter.routable.group, agent);
        self.assign(waiter.routable, agent, None, why, now, out);
    }

    fn take_over(
        &mut self,
        conversation: ConversationId,
        agent: AgentId,
        arriving: Option<Routable>,
        now: UnixMillis,
        out: &mut Vec<Decision>,
    ) {
        let refuse = |out: &mut Vec<Decision>, why| out.push(Decision::Refused { conversation, why });
        if !self.agents.contains_key(&agent) {
            refuse(out, Refusal::UnknownAgent);
            // A conversation handed over for this take-over is routed like any other
            // rather than dropped: it has left the bot either way.
            if let Some(routable) = arriving.filter(|r| r.conversation == conversation && !self.knows(conversation)) {
                self.route(routable, None, now, out);
            }
            return;
        }
        let (routable, from) = if let Some(holding) = self.holdings.get(&conversation).copied() {
            if holding.agent == agent {
                return refuse(out, Refusal::AlreadyHolds);
            }
            (returned(conversation, &holding, now), Some(holding.agent))
        } else if let Some(waiter) = self.waiting.get(&conversation).copied() {
            (waiter.routable, None)
        } else if let Some(routable) = arriving.filter(|r| r.conversation == conversation) {
            (routable, None)
        } else {
            return refuse(out, Refusal::NotRoutable);
        };
        self.forget(conversation);
        let why = self.why(Rule::TakenOver, routable.group, agent);
        // Held without a re-routing deadline: a supervisor who took it over keeps it.
        self.hold(conversation, agent, routable.group, routable.vip, None, now);
        out.push(Decision::Assigned { conversation, agent, from, why });
        if let Some(previous) = from {
            self.fill(previous, now, out);
        }
    }

    fn tick(&mut self, now: UnixMillis, out: &mut Vec<Decision>) {
        // Agents whose grace period ended: their conversations go back, to the front.
        while let Some(&(until, agent)) = self.graces.first() {
            if until > now {
                break;
            }
            self.graces.remove(&(until, agent));
            let Some(state) = self.agents.get_mut(&agent) else { continue };
            state.grace_until = None;
            let mut held = state.held.clone();
            held.sort();
            for conversation in held {
                let holding = self.holdings[&conversation];
                self.forget(conversation);
                out.push(Decision::Returned {
                    conversation,
                    from: agent,
                    group: holding.group,
                    why: Returned::AgentGone,
                });
                let routable = returned(conversation, &holding, now);
                self.route(routable, Some(agent), now, out);
            }
        }
        // Conversations that waited too long in their group.
        while let Some(&(at, conversation)) = self.escalations.first() {
            if at > now {
                break;
            }
            let waiter = self.waiting[&conversation];
            let from = waiter.routable.group;
            let rules = from.and_then(|g| self.groups.get(&g)).copied().unwrap_or_default();
            let to = match (rules.fallback, rules.widen) {
                (Some(fallback), _) => Some(fallback),
                (None, true) => None,
                (None, false) => {
                    // Nowhere to go: it keeps waiting where it is.
                    self.escalations.remove(&(at, conversation));
                    if let Some(w) = self.waiting.get_mut(&conversation) {
                        w.escalates_at = None;
                    }
                    continue;
                }
            };
            self.forget(conversation);
            out.push(Decision::Escalated { conversation, from, to });
            let routable = Routable { group: to, ..waiter.routable };
            // A new group, a new deadline (counted from now): targets chain.
            self.route(routable, waiter.excluded, now, out);
        }
        // Assigned conversations nobody answered in time.
        while let Some(&(at, conversation)) = self.reroutes.first() {
            if at > now {
                break;
            }
            let holding = self.holdings[&conversation];
            match self.best_agent(holding.group, holding.vip, Some(holding.agent)) {
                Some((to, _)) => {
                    self.forget(conversation);
                    let routable = returned(conversation, &holding, now);
                    let why = self.why(Rule::Rerouted, holding.group, to);
                    self.assign(routable, to, Some(holding.agent), why, now, out);
                    self.fill(holding.agent, now, out);
                }
                None => {
                    // Nobody else has room: it stays, and is tried again later.
                    self.reroutes.remove(&(at, conversation));
                    let next = self.reroute_deadline(now).unwrap_or(now);
                    self.reroutes.insert((next, conversation));
                    if let Some(h) = self.holdings.get_mut(&conversation) {
                        h.reroute_at = Some(next);
                    }
                }
            }
        }
    }

    // ---- questions the hub asks -------------------------------------------------------

    /// The agent holding a conversation.
    pub fn holder(&self, conversation: ConversationId) -> Option<AgentId> {
        self.holdings.get(&conversation).map(|h| h.agent)
    }

    /// Conversations an agent holds.
    pub fn load(&self, agent: AgentId) -> u32 {
        self.agents.get(&agent).map_or(0, AgentState::load)
    }

    /// The queue a waiting conversation is in.
    pub fn queue_of(&self, conversation: ConversationId) -> Option<Option<GroupId>> {
        self.waiting.get(&conversation).map(|w| w.routable.group)
    }

    /// Since when a waiting conversation has waited in its queue.
    pub fn waiting_since(&self, conversation: ConversationId) -> Option<UnixMillis> {
        self.waiting.get(&conversation).map(|w| w.routable.queued_at)
    }

    /// The waiting conversations of a queue, in line order.
    pub fn queue(&self, group: Option<GroupId>) -> impl Iterator<Item = ConversationId> + '_ {
        self.queues.get(&group).into_iter().flatten().map(|k| k.2)
    }

    /// Agents online with the skill of `group`.
    pub fn online_count(&self, group: Option<GroupId>) -> u32 {
        self.pools.get(&group).map_or(0, |p| p.online)
    }

    /// Agents online with the skill of `group`, and their total capacity.
    pub fn online(&self, group: Option<GroupId>) -> (u32, u32) {
        let online = self.pools.get(&group).map_or(0, |p| p.online);
        let capacity = self
            .agents
            .values()
            .filter(|a| a.availability == Availability::Online && groups_of(a).any(|g| g == group))
            .map(|a| a.capacity)
            .sum();
        (online, capacity)
    }

    /// Every queue that has someone waiting.
    pub fn queued_groups(&self) -> impl Iterator<Item = Option<GroupId>> + '_ {
        self.queues.iter().filter(|(_, q)| !q.is_empty()).map(|(g, _)| *g)
    }

    /// Conversations waiting, across queues.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }
}

/// A conversation taken from its agent, to route again at the front of its group's queue.
fn returned(conversation: ConversationId, holding: &Holding, now: UnixMillis) -> Routable {
    Routable {
        conversation,
        group: holding.group,
        priority: PRIORITY_RETURNED,
        vip: holding.vip,
        queued_at: now,
        preferred: None,
    }
}

/// The queues an agent serves: each of their groups, and the any-agent queue.
fn groups_of(state: &AgentState) -> impl Iterator<Item = Option<GroupId>> + '_ {
    state.skills.iter().map(|(g, _)| Some(*g)).chain(std::iter::once(None))
}

#[cfg(test)]
mod tests;
