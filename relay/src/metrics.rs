//! Service metrics from plain facts: first response, reply, handle and resolution times,
//! resolution and abandonment, transfers, reopens, CSAT, service level, arrivals by
//! weekday × hour, overall and broken down by group, agent and channel.
//!
//! Pure: no I/O, no clock. [`crate::reports`] gathers the facts of a workspace's
//! conversations from the database; [`report`] turns them into a [`Report`], which the
//! API serves as JSON or, with `Report::to_csv`, as CSV (the report types are
//! `kefu_proto::report`, shared with the workstation). Every figure is defined in
//! `docs/metrics.md`; the definitions there and the code here change together.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kefu_proto::frame::{ChannelKind, ConversationState};
pub use kefu_proto::report::*;
use kefu_proto::{AgentId, ConversationId, UnixMillis};

/// A first response within this long counts towards the 15-second service level.
pub const SERVICE_LEVEL_SHORT_MS: i64 = 15_000;
/// A first response within this long counts towards the 60-second service level.
pub const SERVICE_LEVEL_LONG_MS: i64 = 60_000;

/// Who wrote a message that counts for reply times (bots, the system and private notes
/// do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The customer.
    Customer,
    /// An agent, in a message the customer sees.
    Agent(AgentId),
}

/// One message of a conversation, in `seq` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageFact {
    /// When it was stored.
    pub at: UnixMillis,
    /// Who wrote it.
    pub speaker: Speaker,
}

/// An agent's message that ended a customer's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// When it was stored.
    pub at: UnixMillis,
    /// Who wrote it: the figure is theirs in the agent breakdown.
    pub agent: AgentId,
}

/// How long a customer waited for an agent's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyGap {
    /// The agent whose message ended the wait.
    pub agent: AgentId,
    /// From the first unanswered customer message (not before the conversation first
    /// entered the queue) to that reply.
    pub ms: i64,
}

/// A customer's rating of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatingFact {
    /// 1 to 5.
    pub score: u8,
    /// The agent who served the conversation when it was rated.
    pub agent: Option<AgentId>,
}

/// What the metrics need to know about one conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationFacts {
    /// Its id (for tracing a figure back).
    pub id: ConversationId,
    /// When it was opened: the report's range selects conversations by this.
    pub created_at: UnixMillis,
    /// The channel it arrived through.
    pub channel: ChannelKind,
    /// The slug of its group as it stands (after transfers and escalations); `None`:
    /// the any-agent queue.
    pub group: Option<String>,
    /// Where it stands when the report is made.
    pub state: ConversationState,
    /// The agent who held it last; conversation-level figures are theirs.
    pub agent: Option<AgentId>,
    /// When it first entered the queue: at opening when it opened queued, else when the
    /// bot handed it over (or, for a conversation the bot resolved, when the customer's
    /// return reopened it). `None`: people were never asked.
    pub entered_queue_at: Option<UnixMillis>,
    /// When it was first assigned to an agent.
    pub first_assigned_at: Option<UnixMillis>,
    /// When it was last resolved.
    pub resolved_at: Option<UnixMillis>,
    /// When it was closed.
    pub closed_at: Option<UnixMillis>,
    /// When the customer last reopened it.
    pub last_reopened_at: Option<UnixMillis>,
    /// Transfers by agents, to an agent or to a group.
    pub transfers: u32,
    /// Times the customer reopened it.
    pub reopens: u32,
    /// The first agent message the customer saw.
    pub first_reply: Option<Reply>,
    /// Every wait that an agent's reply ended, the first response included.
    pub reply_gaps: Vec<ReplyGap>,
    /// The customer's rating, if any.
    pub rating: Option<RatingFact>,
}

impl ConversationFacts {
    /// Whether people or the bot still work on it.
    pub fn is_open(&self) -> bool {
        matches!(self.state, ConversationState::Bot | ConversationState::Queued | ConversationState::Assigned)
    }

    /// When it was settled for good: the last resolution, unless the customer reopened
    /// it after that and it was then closed (without resolving again); `None` while open.
    pub fn settled_at(&self) -> Option<UnixMillis> {
        if self.is_open() {
            return None;
        }
        let resolved = self.resolved_at.filter(|r| self.last_reopened_at.is_none_or(|reopened| *r >= reopened));
        resolved.or(self.closed_at)
    }

    /// Entered the queue and was settled without ever being assigned.
    pub fn is_abandoned(&self) -> bool {
        self.entered_queue_at.is_some() && self.first_assigned_at.is_none() && !self.is_open()
    }

    /// Settled by the bot alone: people were never asked.
    pub fn is_bot_resolved(&self) -> bool {
        self.entered_queue_at.is_none() && !self.is_open()
    }

    /// The first response time, if an agent has replied.
    pub fn first_response_ms(&self) -> Option<i64> {
        Some((self.first_reply?.at - self.entered_queue_at?).max(0))
    }

    /// Every agent some figure of this conversation is attributed to.
    fn agents(&self) -> BTreeSet<AgentId> {
        let mut agents: BTreeSet<AgentId> = self.agent.into_iter().collect();
        agents.extend(self.first_reply.map(|r| r.agent));
        agents.extend(self.reply_gaps.iter().map(|g| g.agent));
        agents.extend(self.rating.and_then(|r| r.agent));
        agents
    }
}

/// The first reply and the reply gaps of a conversation, from its customer and agent
/// messages in `seq` order (bot and system messages and private notes left out).
///
/// A wait starts at the first customer message after the last agent reply and ends at the
/// next agent message. Customer messages written before the conversation first entered
/// the queue (to the bot) count from that entry: nobody was asked to answer before it.
pub fn replies(messages: &[MessageFact], entered_queue_at: Option<UnixMillis>) -> (Option<Reply>, Vec<ReplyGap>) {
    let Some(entered) = entered_queue_at else { return (None, Vec::new()) };
    let mut first = None;
    let mut gaps = Vec::new();
    let mut waiting_since: Option<UnixMillis> = None;
    for message in messages {
        match message.speaker {
            Speaker::Customer => {
                waiting_since.get_or_insert(message.at.max(entered));
            }
            Speaker::Agent(agent) => {
                first.get_or_insert(Reply { at: message.at, agent });
                if let Some(since) = waiting_since.take() {
                    gaps.push(ReplyGap { agent, ms: (message.at - since).max(0) });
                }
            }
        }
    }
    (first, gaps)
}

/// The count, mean and percentiles of `values`.
fn durations(mut values: Vec<i64>) -> Durations {
    values.sort_unstable();
    let count = values.len() as u64;
    let sum: i128 = values.iter().map(|v| *v as i128).sum();
    Durations {
        count,
        mean_ms: (count > 0).then(|| sum as f64 / count as f64),
        p50_ms: percentile(&values, 50),
        p90_ms: percentile(&values, 90),
    }
}

/// The `p`th percentile of sorted `values` by nearest rank: the smallest value with at
/// least `p`% of the values at or below it.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// Figures being added up.
#[derive(Default)]
struct Tally {
    conversations: u64,
    queued: u64,
    resolved: u64,
    bot_resolved: u64,
    abandoned: u64,
    still_open: u64,
    first_responses: Vec<i64>,
    reply_gaps: Vec<i64>,
    handle_times: Vec<i64>,
    resolution_times: Vec<i64>,
    transfers: u64,
    transferred: u64,
    reopens: u64,
    reopened: u64,
    scores: [u64; 5],
}

impl Tally {
    /// Adds a conversation; with `only`, just the parts attributed to that agent: the
    /// conversation itself to its last agent, the first response and each reply gap to
    /// the agent who wrote it, the rating to the agent it names.
    fn add(&mut self, c: &ConversationFacts, only: Option<AgentId>) {
        let mine = |agent: Option<AgentId>| only.is_none() || agent == only;
        if mine(c.agent) {
            self.conversations += 1;
            self.queued += c.entered_queue_at.is_some() as u64;
            self.still_open += c.is_open() as u64;
            if c.is_abandoned() {
                self.abandoned += 1;
            } else if !c.is_open() {
                self.resolved += 1;
                self.bot_resolved += c.is_bot_resolved() as u64;
            }
            if let Some(settled) = c.settled_at().filter(|_| !c.is_abandoned()) {
                self.resolution_times.push((settled - c.created_at).max(0));
                if let Some(assigned) = c.first_assigned_at {
                    self.handle_times.push((settled - assigned).max(0));
                }
            }
            self.transfers += c.transfers as u64;
            self.transferred += (c.transfers > 0) as u64;
            self.reopens += c.reopens as u64;
            self.reopened += (c.reopens > 0) as u64;
        }
        if let (Some(ms), Some(reply)) = (c.first_response_ms(), c.first_reply)
            && mine(Some(reply.agent))
        {
            self.first_responses.push(ms);
        }
        self.reply_gaps.extend(c.reply_gaps.iter().filter(|g| mine(Some(g.agent))).map(|g| g.ms));
        if let Some(rating) = c.rating
            && mine(rating.agent)
            && (1..=5).contains(&rating.score)
        {
            self.scores[rating.score as usize - 1] += 1;
        }
    }

    fn figures(self) -> Figures {
        let share = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        let answered = self.first_responses.len() as u64;
        let within = |limit: i64| self.first_responses.iter().filter(|ms| **ms <= limit).count() as u64;
        let (within_15s, within_60s) = (within(SERVICE_LEVEL_SHORT_MS), within(SERVICE_LEVEL_LONG_MS));
        let ratings: u64 = self.scores.iter().sum();
        let points: u64 = self.scores.iter().zip(1..).map(|(n, score)| n * score).sum();
        Figures {
            conversations: self.conversations,
            queued: self.queued,
            resolved: self.resolved,
            bot_resolved: self.bot_resolved,
            abandoned: self.abandoned,
            still_open: self.still_open,
            resolution_rate: share(self.resolved, self.conversations),
            abandonment_rate: share(self.abandoned, self.queued),
            service_level: ServiceLevel {
                answered,
                within_15s,
                within_60s,
                share_15s: share(within_15s, answered),
                share_60s: share(within_60s, answered),
            },
            first_response: durations(self.first_responses),
            reply_time: durations(self.reply_gaps),
            handle_time: durations(self.handle_times),
            resolution_time: durations(self.resolution_times),
            transfers: self.transfers,
            transferred_conversations: self.transferred,
            reopens: self.reopens,
            reopened_conversations: self.reopened,
            csat: Csat {
                ratings,
                average: (ratings > 0).then(|| points as f64 / ratings as f64),
                distribution: self.scores,
            },
        }
    }
}

/// The report of `facts` (conversations of one workspace opened in the range) for
/// `query`; `names` gives agents' display names.
pub fn report(facts: &[ConversationFacts], names: &HashMap<AgentId, String>, query: &ReportQuery) -> Report {
    let only = query.agent;
    let selected = facts.iter().filter(|c| {
        (query.from..query.to).contains(&c.created_at)
            && query.group.as_ref().is_none_or(|g| c.group.as_ref() == Some(g))
            && query.channel.is_none_or(|ch| c.channel == ch)
            && only.is_none_or(|a| c.agents().contains(&a))
    });
    let mut overall = Tally::default();
    let mut groups: BTreeMap<Option<&str>, Tally> = BTreeMap::new();
    let mut agents: BTreeMap<AgentId, Tally> = BTreeMap::new();
    let mut channels: BTreeMap<&str, (ChannelKind, Tally)> = BTreeMap::new();
    let mut arrivals = Arrivals::new(query.tz_offset_minutes);
    for c in selected {
        overall.add(c, only);
        groups.entry(c.group.as_deref()).or_default().add(c, only);
        channels.entry(c.channel.as_str()).or_insert_with(|| (c.channel, Tally::default())).1.add(c, only);
        for agent in c.agents() {
            if only.is_none_or(|a| a == agent) {
                agents.entry(agent).or_default().add(c, Some(agent));
            }
        }
        if only.is_none_or(|a| c.agent == Some(a)) {
            let (weekday, hour) = Arrivals::slot(c.created_at, query.tz_offset_minutes);
            arrivals.counts[weekday][hour] += 1;
        }
    }
    Report {
        query: query.clone(),
        overall: overall.figures(),
        by_group: groups
            .into_iter()
            .map(|(group, t)| GroupFigures { group: group.map(str::to_string), figures: t.figures() })
            .collect(),
        by_agent: agents
            .into_iter()
            .map(|(agent, t)| AgentFigures {
                agent_id: agent,
                name: names.get(&agent).cloned().unwrap_or_else(|| format!("agent {agent}")),
                figures: t.figures(),
            })
            .collect(),
        by_channel: channels
            .into_values()
            .map(|(channel, t)| ChannelFigures { channel, figures: t.figures() })
            .collect(),
        arrivals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;
    const DAY_MS: i64 = 24 * HOUR_MS;
    use serde_json::{Value, json};

    /// Monday 2024-01-01 09:00 UTC.
    const T0: UnixMillis = 1_704_099_600_000;
    const AMY: i64 = 1;
    const BEN: i64 = 2;

    /// One thing that happens to a conversation, `t` in seconds after [`T0`].
    #[derive(Clone, Copy)]
    enum Step {
        /// The customer writes.
        Customer(i64),
        /// An agent writes (a message the customer sees).
        Agent(i64, i64),
        /// The bot hands over to people.
        HandOver(i64),
        /// The router assigns it to an agent.
        Assign(i64, i64),
        /// Its agent transfers it to another agent.
        Transfer(i64),
        /// Its agent transfers it to a group: back in the queue.
        ToGroup,
        /// Resolved (by an agent, the bot, or a left message).
        Resolve(i64),
        /// The customer wrote again after it was resolved.
        Reopen(i64),
        /// Closed.
        Close(i64),
        /// The customer rates it.
        Rate(u8),
    }
    use Step::*;

    /// How a conversation opens.
    #[derive(Clone, Copy)]
    enum Opens {
        Queued,
        WithBot,
    }

    /// The facts the store would gather for a conversation opened at `at` (seconds after
    /// [`T0`]) that went through `steps`, folded the way the relay's lifecycle moves.
    fn script(
        id: i64,
        at: i64,
        channel: ChannelKind,
        group: Option<&str>,
        opens: Opens,
        steps: &[Step],
    ) -> ConversationFacts {
        let ms = |s: i64| T0 + s * 1000;
        let mut c = ConversationFacts {
            id: ConversationId(id),
            created_at: ms(at),
            channel,
            group: group.map(str::to_string),
            state: ConversationState::Queued,
            agent: None,
            entered_queue_at: None,
            first_assigned_at: None,
            resolved_at: None,
            closed_at: None,
            last_reopened_at: None,
            transfers: 0,
            reopens: 0,
            first_reply: None,
            reply_gaps: Vec::new(),
            rating: None,
        };
        match opens {
            Opens::Queued => c.entered_queue_at = Some(ms(at)),
            Opens::WithBot => c.state = ConversationState::Bot,
        }
        let mut messages = Vec::new();
        for step in steps {
            match *step {
                Customer(t) => messages.push(MessageFact { at: ms(t), speaker: Speaker::Customer }),
                Agent(t, a) => messages.push(MessageFact { at: ms(t), speaker: Speaker::Agent(AgentId(a)) }),
                HandOver(t) => {
                    c.state = ConversationState::Queued;
                    c.entered_queue_at.get_or_insert(ms(t));
                }
                Assign(t, a) => {
                    c.state = ConversationState::Assigned;
                    c.agent = Some(AgentId(a));
                    c.first_assigned_at.get_or_insert(ms(t));
                }
                Transfer(a) => {
                    c.agent = Some(AgentId(a));
                    c.transfers += 1;
                }
                ToGroup => {
                    c.state = ConversationState::Queued;
                    c.agent = None;
                    c.transfers += 1;
                }
                Resolve(t) => {
                    c.state = ConversationState::Resolved;
                    c.resolved_at = Some(ms(t));
                }
                Reopen(t) => {
                    c.state = ConversationState::Queued;
                    c.agent = None;
                    c.reopens += 1;
                    c.last_reopened_at = Some(ms(t));
                    c.entered_queue_at.get_or_insert(ms(t));
                }
                Close(t) => {
                    c.state = ConversationState::Closed;
                    c.closed_at = Some(ms(t));
                }
                Rate(score) => c.rating = Some(RatingFact { score, agent: c.agent }),
            }
        }
        (c.first_reply, c.reply_gaps) = replies(&messages, c.entered_queue_at);
        c
    }

    /// The scripted day: every case the definitions name. Hand-computed figures are in
    /// the comments (seconds).
    fn day() -> Vec<ConversationFacts> {
        use ChannelKind::*;
        vec![
            // A: answered in 10 s, a second wait of 30 s; handled and resolved in 100 s; rated 5 (Amy).
            script(
                1,
                0,
                Web,
                Some("sales"),
                Opens::Queued,
                &[Customer(0), Assign(0, AMY), Agent(10, AMY), Customer(20), Agent(50, AMY), Resolve(100), Rate(5)],
            ),
            // B: transferred Amy → Ben. First response 30 s (Amy), then a 60 s wait ended by
            // Ben; handle and resolution 140 s; rated 3 (Ben).
            script(
                2,
                60,
                Web,
                Some("sales"),
                Opens::Queued,
                &[
                    Customer(60),
                    Assign(60, AMY),
                    Agent(90, AMY),
                    Customer(100),
                    Transfer(BEN),
                    Agent(160, BEN),
                    Resolve(200),
                    Rate(3),
                ],
            ),
            // C: the bot, then a hand-over at 155; first response 20 s from the hand-over,
            // not from the first message; handle 130 s, resolution 180 s.
            script(
                3,
                120,
                App,
                Some("support"),
                Opens::WithBot,
                &[Customer(120), Customer(150), HandOver(155), Assign(170, BEN), Agent(175, BEN), Resolve(300)],
            ),
            // D: abandoned: queued, never assigned, settled by a left message.
            script(4, 200, Web, Some("sales"), Opens::Queued, &[Customer(200), Resolve(260)]),
            // E: resolved by the bot in 40 s: no first response, in the resolution time.
            script(5, 300, Web, None, Opens::WithBot, &[Customer(300), Resolve(340)]),
            // F: reopened. First response 5 s; the reopening customer waits 90 s; resolved
            // again at 700 (resolution and handle 300 s), closed later.
            script(
                6,
                400,
                Social,
                Some("support"),
                Opens::Queued,
                &[
                    Customer(400),
                    Assign(400, AMY),
                    Agent(405, AMY),
                    Resolve(500),
                    Customer(600),
                    Reopen(600),
                    Assign(600, AMY),
                    Agent(690, AMY),
                    Resolve(700),
                    Close(800),
                ],
            ),
            // G: still waiting when the report is made.
            script(7, 900, Web, Some("sales"), Opens::Queued, &[Customer(900)]),
            // H: transferred to a group; first response 70 s (Amy), then Ben answers a
            // 27 s wait and closes it without resolving (settled at 1200: 200 s); rated 1.
            script(
                8,
                1000,
                Web,
                Some("sales"),
                Opens::Queued,
                &[
                    Customer(1000),
                    Assign(1000, AMY),
                    Agent(1070, AMY),
                    ToGroup,
                    Assign(1110, BEN),
                    Customer(1120),
                    Agent(1147, BEN),
                    Close(1200),
                    Rate(1),
                ],
            ),
        ]
    }

    fn query() -> ReportQuery {
        ReportQuery { from: T0, to: T0 + DAY_MS, tz_offset_minutes: 0, group: None, agent: None, channel: None }
    }

    /// Runs a report over the scripted day and checks each JSON pointer's value.
    fn check(query: ReportQuery, expected: &[(&str, Value)]) {
        let names = HashMap::from([(AgentId(AMY), "Amy".to_string()), (AgentId(BEN), "Ben".to_string())]);
        let report = serde_json::to_value(report(&day(), &names, &query)).unwrap();
        for (pointer, value) in expected {
            // Absent reads as null.
            assert_eq!(report.pointer(pointer).unwrap_or(&Value::Null), value, "{pointer} in {report:#}");
        }
    }

    #[test]
    fn the_whole_day() {
        check(
            query(),
            &[
                ("/overall/conversations", json!(8)),
                ("/overall/queued", json!(7)),
                ("/overall/resolved", json!(6)),
                ("/overall/bot_resolved", json!(1)),
                ("/overall/abandoned", json!(1)),
                ("/overall/still_open", json!(1)),
                ("/overall/resolution_rate", json!(0.75)),
                ("/overall/abandonment_rate", json!(1.0 / 7.0)),
                // First responses: 5, 10, 20, 30, 70.
                ("/overall/first_response", json!({"count": 5, "mean_ms": 27000.0, "p50_ms": 20000, "p90_ms": 70000})),
                (
                    "/overall/service_level",
                    json!({"answered": 5, "within_15s": 2, "within_60s": 4, "share_15s": 0.4, "share_60s": 0.8}),
                ),
                // Reply gaps: 5, 10, 20, 27, 30, 30, 60, 70, 90.
                ("/overall/reply_time", json!({"count": 9, "mean_ms": 38000.0, "p50_ms": 30000, "p90_ms": 90000})),
                // Handle: 100, 130, 140, 200, 300.
                ("/overall/handle_time", json!({"count": 5, "mean_ms": 174000.0, "p50_ms": 140000, "p90_ms": 300000})),
                // Resolution: 40, 100, 140, 180, 200, 300 (not the abandoned D).
                (
                    "/overall/resolution_time",
                    json!({"count": 6, "mean_ms": 160000.0, "p50_ms": 140000, "p90_ms": 300000}),
                ),
                ("/overall/transfers", json!(2)),
                ("/overall/transferred_conversations", json!(2)),
                ("/overall/reopens", json!(1)),
                ("/overall/reopened_conversations", json!(1)),
                ("/overall/csat", json!({"ratings": 3, "average": 3.0, "distribution": [1, 0, 1, 0, 1]})),
                ("/arrivals/counts/0/9", json!(8)),
            ],
        );
    }

    #[test]
    fn breakdowns_attribute_each_figure_to_its_agent() {
        check(
            query(),
            &[
                // The any-agent queue first, then by slug.
                ("/by_group/0/group", Value::Null),
                ("/by_group/0/figures/bot_resolved", json!(1)),
                ("/by_group/1/group", json!("sales")),
                ("/by_group/1/figures/conversations", json!(5)),
                ("/by_group/1/figures/abandonment_rate", json!(0.2)),
                ("/by_group/2/group", json!("support")),
                ("/by_group/2/figures/first_response/mean_ms", json!(12500.0)),
                ("/by_channel/0/channel", json!("app")),
                ("/by_channel/1/channel", json!("social")),
                ("/by_channel/1/figures/reopens", json!(1)),
                ("/by_channel/2/channel", json!("web")),
                ("/by_channel/2/figures/conversations", json!(6)),
                // Amy last held A and F; she wrote the first responses of A, B, F and H.
                ("/by_agent/0/name", json!("Amy")),
                ("/by_agent/0/figures/conversations", json!(2)),
                ("/by_agent/0/figures/first_response/count", json!(4)),
                ("/by_agent/0/figures/reply_time/count", json!(6)),
                ("/by_agent/0/figures/csat/average", json!(5.0)),
                // Ben last held B, C and H (so their transfers count for him).
                ("/by_agent/1/name", json!("Ben")),
                ("/by_agent/1/figures/conversations", json!(3)),
                ("/by_agent/1/figures/transfers", json!(2)),
                (
                    "/by_agent/1/figures/first_response",
                    json!({"count": 1, "mean_ms": 20000.0, "p50_ms": 20000, "p90_ms": 20000}),
                ),
                ("/by_agent/1/figures/reply_time/mean_ms", json!(107000.0 / 3.0)),
                ("/by_agent/1/figures/csat", json!({"ratings": 2, "average": 2.0, "distribution": [1, 0, 1, 0, 0]})),
            ],
        );
    }

    #[test]
    fn filters_narrow_every_figure() {
        let only = |f: fn(&mut ReportQuery)| {
            let mut q = query();
            f(&mut q);
            q
        };
        check(
            only(|q| q.group = Some("support".into())),
            &[
                ("/overall/conversations", json!(2)),
                ("/overall/first_response/p90_ms", json!(20000)),
                ("/by_group/0/group", json!("support")),
                ("/by_group/1", Value::Null),
            ],
        );
        check(
            only(|q| q.channel = Some(ChannelKind::Social)),
            &[("/overall/conversations", json!(1)), ("/overall/reply_time/count", json!(2))],
        );
        // Ben: his conversations (B, C, H), his first response (C), his replies and ratings.
        check(
            only(|q| q.agent = Some(AgentId(BEN))),
            &[
                ("/overall/conversations", json!(3)),
                ("/overall/first_response/count", json!(1)),
                ("/overall/reply_time/count", json!(3)),
                ("/overall/csat/ratings", json!(2)),
                ("/by_agent/0/name", json!("Ben")),
                ("/by_agent/1", Value::Null),
                ("/arrivals/counts/0/9", json!(3)),
            ],
        );
        // A range that starts after A and B were opened.
        check(only(|q| q.from = T0 + 61_000), &[("/overall/conversations", json!(6))]);
        check(only(|q| q.tz_offset_minutes = 480), &[("/arrivals/counts/0/17", json!(8))]);
    }

    #[test]
    fn nothing_in_range_gives_counts_of_zero_and_no_averages() {
        check(
            ReportQuery { from: 0, to: 1, ..query() },
            &[
                ("/overall/conversations", json!(0)),
                ("/overall/resolution_rate", Value::Null),
                ("/overall/first_response", json!({"count": 0, "mean_ms": null, "p50_ms": null, "p90_ms": null})),
                ("/overall/csat/average", Value::Null),
                ("/by_agent", json!([])),
            ],
        );
    }

    #[test]
    fn reply_gaps_start_at_the_first_unanswered_message_and_not_before_the_queue() {
        let msg = |s: i64, who: Option<i64>| MessageFact {
            at: s * 1000,
            speaker: who.map_or(Speaker::Customer, |a| Speaker::Agent(AgentId(a))),
        };
        let gaps = |g: &[(i64, i64)]| g.iter().map(|(a, s)| ReplyGap { agent: AgentId(*a), ms: s * 1000 }).collect();
        /// Messages, queue entry, the first reply (s, agent) and the gaps expected.
        type Case<'a> = (&'a [MessageFact], Option<i64>, Option<(i64, i64)>, Vec<ReplyGap>);
        let table: &[Case] = &[
            // Never queued: nobody's replies to count.
            (&[msg(0, None), msg(5, Some(1))], None, None, vec![]),
            // Two customer messages, one answer: from the first.
            (&[msg(0, None), msg(4, None), msg(9, Some(1)), msg(12, Some(1))], Some(0), Some((9, 1)), gaps(&[(1, 9)])),
            // Written to the bot before the hand-over at 30: the wait counts from 30.
            (&[msg(0, None), msg(20, None), msg(45, Some(2))], Some(30), Some((45, 2)), gaps(&[(2, 15)])),
            // Two waits, ended by different agents.
            (
                &[msg(0, None), msg(3, Some(1)), msg(10, None), msg(30, Some(2))],
                Some(0),
                Some((3, 1)),
                gaps(&[(1, 3), (2, 20)]),
            ),
            // A customer still waiting: no gap yet.
            (&[msg(0, None), msg(2, Some(1)), msg(5, None)], Some(0), Some((2, 1)), gaps(&[(1, 2)])),
        ];
        for (messages, entered, first, expected) in table {
            let entered = entered.map(|s| s * 1000);
            let (got_first, got_gaps) = replies(messages, entered);
            assert_eq!(got_first.map(|r| (r.at / 1000, r.agent.0)), *first, "{messages:?}");
            assert_eq!(&got_gaps, expected, "{messages:?}");
        }
    }

    #[test]
    fn settled_is_the_last_resolution_unless_reopened_and_closed() {
        use ConversationState::*;
        let base = script(1, 0, ChannelKind::Web, None, Opens::Queued, &[]);
        /// State, resolved, reopened, closed, and when it counts as settled.
        type Case = (ConversationState, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
        let table: &[Case] = &[
            (Resolved, Some(10), None, None, Some(10)),
            (Closed, Some(10), None, Some(50), Some(10)),
            (Closed, Some(10), Some(20), Some(30), Some(30)),
            (Closed, Some(40), Some(20), Some(50), Some(40)),
            (Closed, None, None, Some(5), Some(5)),
            (Assigned, Some(10), Some(20), None, None),
        ];
        for (state, resolved, reopened, closed, settled) in table {
            let c = ConversationFacts {
                state: *state,
                resolved_at: *resolved,
                last_reopened_at: *reopened,
                closed_at: *closed,
                ..base.clone()
            };
            assert_eq!(c.settled_at(), *settled, "{state:?} {resolved:?} {reopened:?} {closed:?}");
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let table: &[(&[i64], u32, Option<i64>)] = &[
            (&[], 50, None),
            (&[7], 50, Some(7)),
            (&[7], 90, Some(7)),
            (&[1, 2], 50, Some(1)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, Some(5)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, Some(9)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 90, Some(10)),
        ];
        for (values, p, expected) in table {
            assert_eq!(percentile(values, *p), *expected, "p{p} of {values:?}");
        }
    }

    #[test]
    fn arrivals_fall_in_the_shop_s_weekday_and_hour() {
        const MONDAY_MIDNIGHT: i64 = T0 - 9 * HOUR_MS;
        let table: &[(i64, i32, (usize, usize))] = &[
            (0, 0, (3, 0)),
            (MONDAY_MIDNIGHT, 0, (0, 0)),
            (MONDAY_MIDNIGHT - 1, 0, (6, 23)),
            (MONDAY_MIDNIGHT - 4 * HOUR_MS, 480, (0, 4)),
            (MONDAY_MIDNIGHT + 3 * HOUR_MS, -300, (6, 22)),
            (MONDAY_MIDNIGHT + 30 * 60_000, 330, (0, 6)),
        ];
        for (at, offset, slot) in table {
            assert_eq!(Arrivals::slot(*at, *offset), *slot, "{at} {offset}");
        }
    }

    #[test]
    fn csv_has_one_row_per_scope_and_a_column_per_header() {
        let mut names = HashMap::new();
        names.insert(AgentId(AMY), "=Lee, \"Amy\"".to_string());
        let report = report(&day(), &names, &query());
        let csv = report.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("scope,key,name,conversations,queued,"), "{}", lines[0]);
        let columns = lines[0].split(',').count();
        // overall, 3 groups, 2 agents, 3 channels.
        assert_eq!(lines.len(), 1 + 1 + 3 + 2 + 3);
        assert!(lines[1].starts_with("overall,,,8,7,6,1,1,1,0.75,"), "{}", lines[1]);
        assert!(csv.contains("agent,1,\"'=Lee, \"\"Amy\"\"\",2,"), "{csv}");
        assert!(csv.contains("agent,2,agent 2,3,"), "{csv}");
        for line in lines.iter().filter(|l| !l.contains('"')) {
            assert_eq!(line.split(',').count(), columns, "{line}");
        }
        assert_eq!(report.agents_csv().lines().count(), 3);
        let arrivals = report.arrivals.to_csv();
        assert!(arrivals.starts_with("weekday,h00,h01,"));
        assert!(arrivals.lines().nth(1).unwrap().starts_with("mon,0,0,0,0,0,0,0,0,0,8,0,"), "{arrivals}");
    }
}
