//! The workspace hub: the one task that owns a workspace's live state — who is connected,
//! which conversations are open and who holds them, agents' presence, skill groups, and
//! the routing core — and turns committed writes into acknowledgements and deliveries.
//!
//! Connection tasks reach it through a [`HubHandle`]; the journal reports commits to it in
//! commit order. The hub never awaits I/O: it writes through the journal (without waiting)
//! and sends to connections with `try_send` on their bounded queues. A connection whose
//! queue is full is a slow consumer and is disconnected (it resumes on reconnect) so it
//! cannot hold anyone else up.
//!
//! Two views of each conversation are kept apart. The *decided* lifecycle moves as soon
//! as the hub decides (so capacity is counted at once and nothing is assigned twice); the
//! *announced* lifecycle moves only when the journal reports the change committed, and it
//! alone decides who receives live messages. Because announcements and messages come out
//! of the journal in one order, a client sees a conversation change and its messages in
//! the order they were made durable. Routing decisions are written (with their reasons)
//! in the same transaction as the change they make, so they too are durable before anyone
//! hears of them.
//!
//! ## Layout
//! - this file: the handle, commands, the run loop, decisions and deliveries;
//! - [`explain`]: routing decisions in words;
//! - [`bot_worker`]: the bot's lookups, off the hub's task;
//! - [`supervision`]: the live monitor, observers, take-overs and alerts.

pub mod bot_worker;
pub mod explain;
pub mod supervision;

pub use supervision::{AlertNotice, SupervisionStart};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use axum::extract::ws::Utf8Bytes;
use kefu_proto::frame::{
    Ack, AgentRef, AgentView, Author, AuthorKind, ChannelKind, ContactView, ConversationChange, ConversationFrame,
    ConversationState, ConversationView, ErrorFrame, MessageFrame, Presence, PresenceFrame, QueueFrame, QueueListFrame,
    ReadFrame, Role, ServerFrame, SkillLevel, TicketChange, TicketFrame, TicketView, TransferInfo, TransferTarget,
    TypingFrame, close_code,
};
use kefu_proto::{AgentId, ContactId, ConversationId, ErrorCode, ProtocolError, Seq, UnixMillis, WorkspaceId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::bot;
use crate::clock::Clock;
use crate::config::RoutingConfig;
use crate::conversation::{Lifecycle, Transition};
use crate::journal::{Committed, EventRecord, FirstMessage, JournalHandle, JournalOp, RouteFields, StoredMessage};
use crate::knowledge::Knowledge;
use crate::routing::{
    self, Availability, Decision, Event, GroupId, GroupRules, Level, PRIORITY_RETURNED, Priority, Routable, Router,
    Rule, Timing,
};
use crate::store::{AgentRecord, GroupRecord, OpenConversationRecord};

/// Identifies one WebSocket connection for the life of the process.
pub type ConnId = u64;

/// Conversations listed per queue in a `queue_list` frame.
const QUEUE_LIST_LIMIT: usize = 50;

/// What the hub sends a connection task.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A frame to forward (the connection task also reads acks and conversation changes
    /// to keep its own view current). Boxed: every connection's queue allocates its first
    /// block of slots up front, so the size of `Outbound` is memory per idle connection.
    Frame(Box<ServerFrame>),
    /// A stored message, serialised once for every recipient.
    Message {
        /// Its conversation.
        conversation: ConversationId,
        /// Its sequence number, so the connection can skip what it already sent.
        seq: Seq,
        /// The `message` frame as JSON text.
        text: Utf8Bytes,
    },
    /// Close the connection with this code and reason.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Why.
        reason: String,
    },
}

impl Outbound {
    /// A frame to forward.
    pub fn frame(frame: ServerFrame) -> Outbound {
        Outbound::Frame(Box::new(frame))
    }
}

/// An agent's identity on a connection.
#[derive(Debug, Clone)]
pub struct AgentSession {
    /// The agent.
    pub view: AgentView,
    /// Their skills by group id.
    pub skill_ids: Vec<(GroupId, SkillLevel)>,
    /// SHA-256 of the token the connection authenticated with.
    pub token_hash: Vec<u8>,
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub enum Party {
    /// A customer, as a contact, with the group they chose (if any).
    Customer(ContactView),
    /// An agent.
    Agent(Box<AgentSession>),
}

/// The hub's answer to a registration.
#[derive(Debug)]
pub struct Registered {
    /// Agents: the conversations they hold. Customers: their open conversation, if any.
    pub conversations: Vec<ConversationView>,
    /// Agents: their presence now.
    pub presence: Presence,
}

/// The answer to [`HubCommand::Open`].
#[derive(Debug)]
pub struct Opened {
    /// The conversation, opened now or open already.
    pub view: ConversationView,
    /// The message the command carried, when it was not stored with the opening (the
    /// conversation was open already, or another request was opening it): the caller
    /// stores it as any other.
    pub first: Option<FirstMessage>,
}

/// Where the answer to [`HubCommand::Open`] goes.
pub type OpenReply = oneshot::Sender<Result<Opened, ProtocolError>>;

/// How a new conversation comes in: its channel and where the customer or the channel
/// wants it routed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The channel's kind.
    pub channel: ChannelKind,
    /// The channel, when not the built-in widget.
    pub channel_id: Option<i64>,
    /// The group chosen (by the customer, else the channel), by slug.
    pub group: Option<String>,
    /// The channel's queue priority, overriding the kind's default.
    pub priority: Option<u16>,
}

impl Entry {
    /// The built-in widget, to the group the customer chose.
    pub fn widget(group: Option<String>) -> Entry {
        Entry { channel: ChannelKind::Web, channel_id: None, group, priority: None }
    }
}

/// Requests from connection tasks and the HTTP API.
#[derive(Debug)]
pub enum HubCommand {
    /// A connection finished its hello.
    Register {
        /// The connection.
        conn: ConnId,
        /// Who it is.
        party: Party,
        /// Its outbound queue.
        outbound: mpsc::Sender<Outbound>,
        /// Cancelled to disconnect it (slow consumer).
        kick: CancellationToken,
        /// The client's address (for the audit log).
        peer: std::net::IpAddr,
        /// Where to answer.
        reply: oneshot::Sender<Registered>,
    },
    /// A connection ended.
    Unregister {
        /// The connection.
        conn: ConnId,
    },
    /// A token was revoked: close the connections that authenticated with it.
    Revoked {
        /// SHA-256 of the token.
        token_hash: Vec<u8>,
    },
    /// A customer's first message needs a conversation: open one (or return the open one).
    Open {
        /// The customer.
        contact: ContactView,
        /// Through which channel, to which group.
        entry: Entry,
        /// The message that needs it: stored in the same transaction as a conversation
        /// opened for it, so the conversation is routed (and can be closed) only once it
        /// holds that message. Handed back in the answer when it was not stored.
        first: Option<FirstMessage>,
        /// The answer.
        reply: OpenReply,
    },
    /// Typing started or stopped.
    Typing {
        /// Who.
        conn: ConnId,
        /// Where.
        conversation: ConversationId,
        /// Started or stopped.
        active: bool,
    },
    /// An agent sets their presence.
    Presence {
        /// Which connection asked.
        conn: ConnId,
        /// Online or away.
        status: Presence,
    },
    /// An agent resolves or closes a conversation.
    Settle {
        /// Which connection asked.
        conn: ConnId,
        /// The conversation.
        conversation: ConversationId,
        /// `Resolve` or `Close`.
        transition: Transition,
        /// The resolution code.
        resolution: Option<String>,
    },
    /// An agent hands a conversation on.
    Transfer {
        /// Which connection asked.
        conn: ConnId,
        /// The conversation.
        conversation: ConversationId,
        /// To whom.
        to: TransferTarget,
        /// A note for the receiver.
        note: Option<String>,
    },
    /// An agent takes a queued conversation.
    Pick {
        /// Which connection asked.
        conn: ConnId,
        /// The conversation.
        conversation: ConversationId,
    },
    /// An agent's capacity or skills were changed through the API.
    AgentChanged {
        /// The agent as stored now.
        agent: Box<AgentRecord>,
    },
    /// A group was created or changed through the API.
    GroupChanged {
        /// The group as stored now.
        group: GroupRecord,
    },
    /// A group was removed through the API (no open conversation used it).
    GroupRemoved {
        /// The group.
        group: GroupId,
    },
    /// A ticket was made (or changed): its assignee hears of it; a ticket made from a
    /// customer's left message settles their waiting conversation.
    TicketMade {
        /// The ticket as stored.
        ticket: TicketView,
        /// The conversation the customer left the message in, when they did.
        conversation: Option<ConversationId>,
    },
    /// A ticket changed through the API; `assigned` when its assignee is new.
    TicketChanged {
        /// The ticket as stored.
        ticket: TicketView,
        /// Its assignee before the change, who hears when it is taken away.
        previous: Option<AgentId>,
        /// Whether it was given to a new assignee.
        assigned: bool,
    },
    /// The bot decided what to do with a customer's message.
    BotDone(Box<bot_worker::BotOutcome>),
    /// A supervisor starts or stops the live monitor.
    Supervise {
        /// The supervisor's connection.
        conn: ConnId,
        /// Start or stop.
        active: bool,
    },
    /// A supervisor starts or stops following a conversation read-only.
    Observe {
        /// The supervisor's connection.
        conn: ConnId,
        /// The conversation.
        conversation: ConversationId,
        /// Start or stop.
        active: bool,
    },
    /// A supervisor takes a conversation over.
    TakeOver {
        /// The supervisor's connection.
        conn: ConnId,
        /// The conversation.
        conversation: ConversationId,
    },
    /// A supervisor sets an agent's presence (API).
    SetAgentPresence {
        /// The agent.
        agent: AgentId,
        /// Online or away.
        status: Presence,
        /// The supervisor.
        by: AgentId,
        /// Where the request came from (for the audit log).
        origin: Option<String>,
        /// Done, or why not.
        reply: oneshot::Sender<Result<(), ProtocolError>>,
    },
    /// A customer rated a conversation (for the CSAT alerts).
    Rated {
        /// The conversation (a second rating replaces the first).
        conversation: ConversationId,
        /// 1 to 5.
        score: u8,
    },
    /// `/metrics` is being scraped: the workspace's queues and agents.
    Gauges {
        /// Where the answer goes.
        reply: oneshot::Sender<crate::telemetry::HubGauges>,
    },
    /// A contact's VIP mark changed.
    ContactChanged {
        /// The contact.
        contact: ContactId,
        /// VIP or not.
        vip: bool,
    },
    /// A contact was folded into another (it had no conversation open).
    ContactsMerged {
        /// The contact that is gone.
        from: ContactId,
        /// The one it became.
        into: ContactId,
        /// The merged contact's VIP mark.
        vip: bool,
    },
}

/// Cloneable handle to a workspace hub.
#[derive(Clone)]
pub struct HubHandle {
    /// Commands from connections (bounded: senders wait when the hub is busy).
    commands: mpsc::Sender<HubCommand>,
    /// Commit reports from the journal (unbounded: the journal must never wait on a hub).
    commits: mpsc::UnboundedSender<Vec<Committed>>,
    /// Stops the hub.
    stop: CancellationToken,
}

impl HubHandle {
    /// Sends a command; fails only when the hub has stopped.
    pub async fn send(&self, command: HubCommand) -> Result<(), ProtocolError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ProtocolError::new(ErrorCode::Internal, "the relay is shutting down"))
    }

    /// Stops the hub.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Every workspace's hub, for the journal to report to and connections to find.
#[derive(Default)]
pub struct Hubs {
    map: RwLock<HashMap<WorkspaceId, HubHandle>>,
}

impl Hubs {
    /// The hub of a workspace.
    pub fn get(&self, workspace: WorkspaceId) -> Option<HubHandle> {
        self.map.read().expect("hubs lock").get(&workspace).cloned()
    }

    /// Adds a workspace's hub.
    pub fn insert(&self, workspace: WorkspaceId, hub: HubHandle) {
        self.map.write().expect("hubs lock").insert(workspace, hub);
    }

    /// Reports committed writes to the workspace's hub.
    pub fn committed(&self, workspace: WorkspaceId, list: Vec<Committed>) {
        if let Some(hub) = self.get(workspace) {
            let _ = hub.commits.send(list);
        }
    }

    /// Every hub.
    pub fn all(&self) -> Vec<HubHandle> {
        self.map.read().expect("hubs lock").values().cloned().collect()
    }

    /// Stops every hub.
    pub fn stop_all(&self) {
        for hub in self.map.read().expect("hubs lock").values() {
            hub.stop();
        }
    }
}

/// What a hub starts from: the workspace's state in the database.
pub struct HubStart {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// Its slug (to name it in metrics).
    pub workspace_slug: String,
    /// Its agents.
    pub agents: Vec<AgentRecord>,
    /// Its skill groups.
    pub groups: Vec<GroupRecord>,
    /// Its conversations that are not closed.
    pub open: Vec<OpenConversationRecord>,
    /// Who last served each recent contact (for sticky routing).
    pub last_agents: Vec<(ContactId, AgentId, UnixMillis)>,
}

/// A live connection as the hub sees it.
struct Conn {
    /// Customer's contact or agent.
    who: Who,
    /// Its outbound queue.
    outbound: mpsc::Sender<Outbound>,
    /// Cancelled to disconnect it.
    kick: CancellationToken,
    /// Agents: SHA-256 of the token the connection authenticated with.
    token_hash: Option<Vec<u8>>,
    /// The client's address, for the audit log.
    peer: std::net::IpAddr,
}

/// The identity of a connection, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Customer(ContactId),
    Agent(AgentId),
}

/// What the hub knows of an agent.
struct AgentEntry {
    view: AgentView,
    skill_ids: Vec<(GroupId, SkillLevel)>,
    /// Online or away while connected; offline when no connection is left.
    presence: Presence,
    /// The agent's connections.
    conns: Vec<ConnId>,
    /// When they last replied to a customer (since the relay started).
    last_reply_at: Option<UnixMillis>,
}

impl AgentEntry {
    /// Whether the agent sees a queue: supervisors see all; agents those of their skills.
    fn serves(&self, group: Option<GroupId>) -> bool {
        matches!(self.view.role, Role::Supervisor | Role::Admin)
            || group.is_none()
            || self.skill_ids.iter().any(|(g, _)| Some(*g) == group)
    }

    fn routing_skills(&self) -> Vec<(GroupId, Level)> {
        self.skill_ids
            .iter()
            .map(|(g, l)| (*g, if *l == SkillLevel::Senior { Level::Senior } else { Level::Junior }))
            .collect()
    }
}

/// A skill group as the hub knows it.
struct GroupEntry {
    slug: String,
}

/// The bot's seat in a conversation it is answering.
#[derive(Default)]
struct BotSeat {
    /// What the bot remembers.
    memory: bot::Memory,
    /// A message is with the bot now; the next ones wait their turn.
    busy: bool,
    /// Messages waiting for the bot, oldest first.
    waiting: std::collections::VecDeque<String>,
}

/// A conversation that is not closed.
struct OpenConversation {
    contact: ContactView,
    channel: ChannelKind,
    /// Its channel's own queue priority, if it has one.
    channel_priority: Option<u16>,
    /// What the bot found it to be about.
    intent: Option<String>,
    /// The bot, while the conversation is with it.
    bot: Option<BotSeat>,
    /// Where it is routed.
    route: RouteFields,
    /// Moves as soon as the hub decides.
    decided: Lifecycle,
    /// Moves when the journal reports the change durable; decides delivery.
    announced: Lifecycle,
    last_seq: Seq,
    /// Since when the customer's latest message waits for an agent's reply.
    awaiting_reply_since: Option<UnixMillis>,
}

/// A conversation being opened for a contact, waiting for the journal.
struct PendingOpen {
    contact: ContactView,
    /// Where it is routed (the group chosen when it was asked for).
    route: RouteFields,
    /// Its channel's own queue priority, if it has one.
    channel_priority: Option<u16>,
    /// Who waits for it, each with the message to hand back (`None` for the request that
    /// carried its message into the opening).
    waiters: Vec<(OpenReply, Option<FirstMessage>)>,
}

/// A running average of handle times, for estimated waits.
#[derive(Default, Clone, Copy)]
struct HandleTime {
    average_ms: Option<f64>,
}

impl HandleTime {
    /// Weight of the newest observation.
    const WEIGHT: f64 = 0.2;

    fn observe(&mut self, ms: i64) {
        let ms = ms.max(0) as f64;
        self.average_ms = Some(match self.average_ms {
            None => ms,
            Some(avg) => avg + Self::WEIGHT * (ms - avg),
        });
    }
}

/// What the hub needs of the bot.
pub struct BotLink {
    /// Whether new conversations start with the bot.
    pub enabled: bool,
    /// Where the bot takes messages.
    pub requests: mpsc::UnboundedSender<bot_worker::BotRequest>,
    /// The knowledge base (to know whether there is anything to answer from, and which
    /// group an intent goes to).
    pub knowledge: Arc<Knowledge>,
}

/// The hub's state.
struct Hub {
    workspace: WorkspaceId,
    workspace_slug: String,
    journal: JournalHandle,
    bot: BotLink,
    clock: Clock,
    settings: RoutingConfig,
    router: Router,
    /// Reused buffer for the router's decisions.
    decisions: Vec<Decision>,
    conns: HashMap<ConnId, Conn>,
    contact_conns: HashMap<ContactId, Vec<ConnId>>,
    agents: HashMap<AgentId, AgentEntry>,
    groups: HashMap<GroupId, GroupEntry>,
    default_group: Option<GroupId>,
    conversations: HashMap<ConversationId, OpenConversation>,
    /// Each contact's conversation that is not closed.
    contact_open: HashMap<ContactId, ConversationId>,
    /// Opens in flight, by request number.
    pending_opens: HashMap<u64, PendingOpen>,
    /// Request number of the open in flight for a contact.
    pending_by_contact: HashMap<ContactId, u64>,
    next_request: u64,
    /// Who last served each contact, and when (sticky routing).
    last_served: HashMap<ContactId, (AgentId, UnixMillis)>,
    /// Transfer notes waiting for their conversation's next assignment.
    pending_transfers: HashMap<ConversationId, TransferInfo>,
    /// The conversation a supervisor is taking from the bot while the router decides on
    /// it, so that its assignment reads "from the bot" (the router only sees it arrive).
    taking_from_bot: Option<ConversationId>,
    /// Handle times per group, for estimated waits.
    handle_times: HashMap<Option<GroupId>, HandleTime>,
    /// Queues whose order or membership changed since they were last published.
    dirty_queues: HashSet<Option<GroupId>>,
    /// The queue position last told to each waiting customer.
    told_positions: HashMap<ConversationId, QueueFrame>,
    /// The agent a transfer being routed is meant for, to name in a refusal.
    refusal_target: Option<AgentId>,
    /// VIP marks changed while the hub runs (connections keep the contact as it was at
    /// their hello; the hub's word is the current one).
    vip_marks: HashMap<ContactId, bool>,
    /// The monitor, observers and alerts.
    supervision: supervision::Supervision,
}

/// Starts a workspace hub from the state in the database.
pub fn spawn(
    start: HubStart,
    journal: JournalHandle,
    bot: BotLink,
    clock: Clock,
    settings: RoutingConfig,
    supervision: SupervisionStart,
    command_queue: usize,
) -> HubHandle {
    let (commands_tx, commands) = mpsc::channel(command_queue);
    let (commits_tx, commits) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let timing = Timing { grace_ms: settings.grace_secs as i64 * 1000, reroute_unanswered_ms: settings.reroute_ms() };
    let mut hub = Hub {
        workspace: start.workspace,
        workspace_slug: start.workspace_slug.clone(),
        journal,
        bot,
        clock,
        settings,
        router: Router::new(timing),
        decisions: Vec::new(),
        conns: HashMap::new(),
        contact_conns: HashMap::new(),
        agents: HashMap::new(),
        groups: HashMap::new(),
        default_group: None,
        conversations: HashMap::new(),
        contact_open: HashMap::new(),
        pending_opens: HashMap::new(),
        pending_by_contact: HashMap::new(),
        next_request: 1,
        last_served: HashMap::new(),
        pending_transfers: HashMap::new(),
        taking_from_bot: None,
        handle_times: HashMap::new(),
        dirty_queues: HashSet::new(),
        told_positions: HashMap::new(),
        vip_marks: HashMap::new(),
        refusal_target: None,
        supervision: supervision::Supervision::new(supervision),
    };
    hub.rebuild(start);
    tokio::spawn(hub.run(commands, commits, stop.clone()));
    HubHandle { commands: commands_tx, commits: commits_tx, stop }
}

impl Hub {
    /// Loads groups, agents and open conversations; nobody is online yet, so nothing new
    /// is decided (the queue keeps its order from the database).
    fn rebuild(&mut self, start: HubStart) {
        let now = self.clock.now_ms();
        let mut ignored = Vec::new();
        for group in start.groups {
            self.learn_group(&group);
        }
        for agent in start.agents {
            let entry = AgentEntry {
                view: agent.view,
                skill_ids: agent.skill_ids,
                presence: Presence::Offline,
                conns: Vec::new(),
                last_reply_at: None,
            };
            let event = Event::Agent {
                agent: entry.view.id,
                capacity: entry.view.max_concurrent,
                skills: entry.routing_skills(),
            };
            self.router.handle(event, now, &mut ignored);
            self.agents.insert(entry.view.id, entry);
        }
        for (contact, agent, at) in start.last_agents {
            self.last_served.insert(contact, (agent, at));
        }
        for record in start.open {
            let view = record.view;
            let life = Lifecycle {
                state: view.state,
                assignee: view.assignee.as_ref().map(|a| a.id),
                created_at: view.created_at,
                queued_at: view.queued_at,
                assigned_at: record.assigned_at,
                resolved_at: record.resolved_at,
                closed_at: None,
            };
            let route = RouteFields { group: record.group_id, priority: view.priority };
            match (life.state, life.assignee) {
                (ConversationState::Queued, _) => {
                    let routable = Routable {
                        conversation: view.id,
                        group: route.group,
                        priority: route.priority,
                        vip: view.contact.vip,
                        queued_at: life.queued_at.unwrap_or(life.created_at),
                        preferred: None,
                    };
                    self.router.handle(Event::Enqueue(routable), now, &mut ignored);
                    self.dirty_queues.insert(route.group);
                }
                (ConversationState::Assigned, Some(agent)) => {
                    let event = Event::Held {
                        conversation: view.id,
                        agent,
                        group: route.group,
                        vip: view.contact.vip,
                        answered: record.answered,
                    };
                    self.router.handle(event, now, &mut ignored);
                }
                _ => {}
            }
            self.contact_open.insert(view.contact.id, view.id);
            self.conversations.insert(
                view.id,
                OpenConversation {
                    contact: view.contact,
                    channel: view.channel,
                    channel_priority: record.channel_priority,
                    intent: view.intent,
                    // After a restart the bot starts its memory afresh.
                    bot: (life.state == ConversationState::Bot).then(BotSeat::default),
                    route,
                    // After a restart an unanswered conversation counts from its assignment.
                    awaiting_reply_since: (!record.answered).then_some(life.assigned_at).flatten(),
                    decided: life.clone(),
                    announced: life,
                    last_seq: view.last_seq,
                },
            );
        }
        // Nobody is online at start: an agent who holds conversations gets the grace
        // period from now, as if they had just disconnected, so that conversations of an
        // agent who never comes back return to the queue.
        let holders: HashSet<AgentId> = self
            .conversations
            .values()
            .filter(|c| c.decided.state == ConversationState::Assigned)
            .filter_map(|c| c.decided.assignee)
            .collect();
        for agent in holders {
            self.router.handle(Event::Presence { agent, availability: Availability::Gone }, now, &mut ignored);
        }
        debug_assert!(ignored.iter().all(|d| matches!(d, Decision::Queued { .. })), "nobody is online at start");
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<HubCommand>,
        mut commits: mpsc::UnboundedReceiver<Vec<Committed>>,
        stop: CancellationToken,
    ) {
        let mut ticker = self.clock.ticker();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(list) = commits.recv() => {
                    for committed in list {
                        self.on_committed(committed);
                    }
                }
                Some(command) = commands.recv() => self.on_command(command),
                _ = ticker.tick() => self.on_tick(),
                else => break,
            }
        }
        tracing::debug!(workspace = %self.workspace, "hub stopped");
    }

    fn now(&self) -> UnixMillis {
        self.clock.now_ms()
    }

    fn learn_group(&mut self, group: &GroupRecord) {
        let rules = GroupRules {
            escalate_after_ms: group.escalate_after_secs.map(|s| s as i64 * 1000),
            fallback: group.fallback,
            widen: group.widen,
        };
        self.router.handle(Event::Group { group: group.id, rules }, self.clock.now_ms(), &mut Vec::new());
        if group.is_default {
            self.default_group = Some(group.id);
        } else if self.default_group == Some(group.id) {
            self.default_group = None;
        }
        self.groups.insert(group.id, GroupEntry { slug: group.slug.clone() });
    }

    /// A removed group: no longer a default, a skill, or a name to route to.
    fn forget_group(&mut self, group: GroupId) {
        self.groups.remove(&group);
        if self.default_group == Some(group) {
            self.default_group = None;
        }
        let skilled: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, a)| a.skill_ids.iter().any(|(g, _)| *g == group))
            .map(|(id, _)| *id)
            .collect();
        for agent in skilled {
            let entry = self.agents.get_mut(&agent).expect("listed");
            entry.skill_ids.retain(|(g, _)| *g != group);
            entry.view.skills.retain(|s| self.groups.values().any(|g| g.slug == s.group));
            let event = Event::Agent { agent, capacity: entry.view.max_concurrent, skills: entry.routing_skills() };
            self.route(event, None);
        }
    }

    fn group_by_slug(&self, slug: &str) -> Option<GroupId> {
        self.groups.iter().find(|(_, g)| g.slug == slug).map(|(id, _)| *id)
    }

    fn group_slug(&self, group: Option<GroupId>) -> Option<String> {
        group.and_then(|g| self.groups.get(&g)).map(|g| g.slug.clone())
    }

    /// Queue priority: VIPs before everyone else, then by channel.
    /// Queue priority: VIPs first, then by the channel (its own setting, else its kind's).
    fn priority(&self, vip: bool, channel: ChannelKind, channel_priority: Option<u16>) -> Priority {
        let by_channel = channel_priority.unwrap_or_else(|| self.settings.channel_priority.of(channel)).min(99);
        if vip { 100 + by_channel } else { 200 + by_channel }
    }

    // ---- commands -----------------------------------------------------------------------

    fn on_command(&mut self, command: HubCommand) {
        match command {
            HubCommand::Register { conn, party, outbound, kick, peer, reply } => {
                let registered = self.register(conn, party, outbound, kick, peer);
                let _ = reply.send(registered);
            }
            HubCommand::Unregister { conn } => self.unregister(conn),
            HubCommand::Revoked { token_hash } => {
                let revoked: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.token_hash.as_deref() == Some(token_hash.as_slice()))
                    .map(|(id, _)| *id)
                    .collect();
                for conn in revoked {
                    self.send(conn, Outbound::Close { code: close_code::SUPERSEDED, reason: "logged out".into() });
                }
            }
            HubCommand::Open { contact, entry, first, reply } => self.open(contact, entry, first, reply),
            HubCommand::Typing { conn, conversation, active } => self.typing(conn, conversation, active),
            HubCommand::Presence { conn, status } => self.set_presence(conn, status),
            HubCommand::Settle { conn, conversation, transition, resolution } => {
                self.settle(conn, conversation, transition, resolution)
            }
            HubCommand::Transfer { conn, conversation, to, note } => self.transfer(conn, conversation, to, note),
            HubCommand::Pick { conn, conversation } => self.pick(conn, conversation),
            HubCommand::AgentChanged { agent } => {
                let agent = *agent;
                let entry = self.agents.entry(agent.view.id).or_insert_with(|| AgentEntry {
                    view: agent.view.clone(),
                    skill_ids: Vec::new(),
                    presence: Presence::Offline,
                    conns: Vec::new(),
                    last_reply_at: None,
                });
                entry.view = agent.view;
                entry.skill_ids = agent.skill_ids;
                let event = Event::Agent {
                    agent: entry.view.id,
                    capacity: entry.view.max_concurrent,
                    skills: entry.routing_skills(),
                };
                self.route(event, None);
            }
            HubCommand::GroupChanged { group } => self.learn_group(&group),
            HubCommand::GroupRemoved { group } => self.forget_group(group),
            HubCommand::ContactChanged { contact, vip } => self.contact_changed(contact, vip),
            HubCommand::ContactsMerged { from, into, vip } => self.contacts_merged(from, into, vip),
            HubCommand::BotDone(outcome) => self.bot_done(*outcome),
            HubCommand::Supervise { conn, active } => self.supervise(conn, active),
            HubCommand::Observe { conn, conversation, active } => self.observe(conn, conversation, active),
            HubCommand::TakeOver { conn, conversation } => self.take_over(conn, conversation),
            HubCommand::SetAgentPresence { agent, status, by, origin, reply } => {
                self.set_agent_presence(agent, status, by, origin, reply)
            }
            HubCommand::Rated { conversation, score } => self.rated(conversation, score),
            HubCommand::Gauges { reply } => self.gauges(reply),
            HubCommand::TicketMade { ticket, conversation } => self.ticket_made(ticket, conversation),
            HubCommand::TicketChanged { ticket, previous, assigned } => {
                let change = if assigned { TicketChange::Assigned } else { TicketChange::Updated };
                if let Some(previous) = previous.filter(|p| ticket.assignee.as_ref().map(|a| a.id) != Some(*p)) {
                    let frame =
                        ServerFrame::Ticket(TicketFrame { change: TicketChange::Updated, ticket: ticket.clone() });
                    self.deliver_to_agent(previous, Outbound::frame(frame));
                }
                if let Some(agent) = ticket.assignee.as_ref().map(|a| a.id) {
                    let frame = ServerFrame::Ticket(TicketFrame { change, ticket });
                    self.deliver_to_agent(agent, Outbound::frame(frame));
                }
            }
        }
    }

    fn register(
        &mut self,
        conn: ConnId,
        party: Party,
        outbound: mpsc::Sender<Outbound>,
        kick: CancellationToken,
        peer: std::net::IpAddr,
    ) -> Registered {
        match party {
            Party::Customer(contact) => {
                let id = contact.id;
                self.conns.insert(conn, Conn { who: Who::Customer(id), outbound, kick, token_hash: None, peer });
                self.contact_conns.entry(id).or_default().push(conn);
                let conversations: Vec<ConversationView> =
                    self.contact_open.get(&id).and_then(|c| self.view(*c)).into_iter().collect();
                // A waiting customer hears their place in line again.
                if let Some(c) = conversations.first() {
                    self.told_positions.remove(&c.id);
                    self.dirty_queues.insert(self.conversations[&c.id].route.group);
                    self.publish_position(c.id);
                }
                Registered { conversations, presence: Presence::Offline }
            }
            Party::Agent(session) => {
                let session = *session;
                let id = session.view.id;
                self.conns.insert(
                    conn,
                    Conn { who: Who::Agent(id), outbound, kick, token_hash: Some(session.token_hash), peer },
                );
                for ((group, _), skill) in session.skill_ids.iter().zip(&session.view.skills) {
                    // A group created since the hub started (e.g. by the CLI) is learned
                    // here, with default rules until it is edited through the API.
                    if !self.groups.contains_key(group) {
                        self.groups.insert(*group, GroupEntry { slug: skill.group.clone() });
                    }
                }
                let entry = self.agents.entry(id).or_insert_with(|| AgentEntry {
                    view: session.view.clone(),
                    skill_ids: Vec::new(),
                    presence: Presence::Offline,
                    conns: Vec::new(),
                    last_reply_at: None,
                });
                entry.view = session.view;
                entry.skill_ids = session.skill_ids;
                entry.conns.push(conn);
                let first = entry.presence == Presence::Offline;
                if first {
                    entry.presence = Presence::Online;
                }
                let presence = entry.presence;
                let mut conversations: Vec<ConversationView> = self
                    .conversations
                    .iter()
                    .filter(|(_, c)| {
                        // Resolved ones too: the agent keeps them (and their live messages)
                        // until they are closed or reopened.
                        matches!(c.announced.state, ConversationState::Assigned | ConversationState::Resolved)
                            && c.announced.assignee == Some(id)
                    })
                    .filter_map(|(cid, _)| self.view(*cid))
                    .collect();
                conversations.sort_by_key(|c| c.id);
                let entry = &self.agents[&id];
                let skills = entry.routing_skills();
                let capacity = entry.view.max_concurrent;
                self.route(Event::Agent { agent: id, capacity, skills }, None);
                if first {
                    self.route(Event::Presence { agent: id, availability: Availability::Online }, None);
                }
                // The new connection sees the queues it serves at once.
                let queues: Vec<Option<GroupId>> = self.router.queued_groups().collect();
                for group in queues {
                    if self.agents[&id].serves(group) {
                        let frame = self.queue_list(group);
                        self.send(conn, Outbound::frame(frame));
                    }
                }
                Registered { conversations, presence }
            }
        }
    }

    fn unregister(&mut self, conn: ConnId) {
        let Some(entry) = self.conns.remove(&conn) else { return };
        self.forget_watcher(conn);
        match entry.who {
            Who::Customer(contact) => {
                if let Some(list) = self.contact_conns.get_mut(&contact) {
                    list.retain(|c| *c != conn);
                    if list.is_empty() {
                        self.contact_conns.remove(&contact);
                    }
                }
            }
            Who::Agent(agent) => {
                if let Some(entry) = self.agents.get_mut(&agent) {
                    entry.conns.retain(|c| *c != conn);
                    if entry.conns.is_empty() {
                        // The grace period starts: their conversations wait for them.
                        entry.presence = Presence::Offline;
                        self.route(Event::Presence { agent, availability: Availability::Gone }, None);
                    }
                }
            }
        }
    }

    fn open(&mut self, mut contact: ContactView, entry: Entry, first: Option<FirstMessage>, reply: OpenReply) {
        let Entry { channel, channel_id, group, priority } = entry;
        if let Some(vip) = self.vip_marks.get(&contact.id) {
            contact.vip = *vip;
        }
        if let Some(view) = self.contact_open.get(&contact.id).and_then(|c| self.view(*c)) {
            let _ = reply.send(Ok(Opened { view, first }));
            return;
        }
        if let Some(request) = self.pending_by_contact.get(&contact.id) {
            self.pending_opens.get_mut(request).expect("pending open").waiters.push((reply, first));
            return;
        }
        let group = group.and_then(|slug| self.group_by_slug(&slug)).or(self.default_group);
        let route = RouteFields { group, priority: self.priority(contact.vip, channel, priority) };
        let request = self.next_request;
        self.next_request += 1;
        self.pending_by_contact.insert(contact.id, request);
        self.journal.submit_from_hub(JournalOp::OpenConversation {
            workspace: self.workspace,
            contact: contact.id,
            channel,
            channel_id,
            lifecycle: Lifecycle::open(self.now(), self.bot_answers()),
            route,
            request,
            first,
        });
        self.pending_opens
            .insert(request, PendingOpen { contact, route, channel_priority: priority, waiters: vec![(reply, None)] });
    }

    fn typing(&mut self, conn: ConnId, conversation: ConversationId, active: bool) {
        let Some(who) = self.conns.get(&conn).map(|c| c.who) else { return };
        let Some(conv) = self.conversations.get(&conversation) else { return };
        let author = match who {
            Who::Customer(contact) if conv.contact.id == contact => AuthorKind::Customer,
            Who::Agent(agent) if conv.announced.assignee == Some(agent) => AuthorKind::Agent,
            _ => return,
        };
        let frame = ServerFrame::Typing(TypingFrame { conversation_id: conversation, author, active });
        self.deliver_to_other_side(conversation, author, Outbound::frame(frame));
    }

    fn set_presence(&mut self, conn: ConnId, status: Presence) {
        let Some(Who::Agent(agent)) = self.conns.get(&conn).map(|c| c.who) else { return };
        let Some(entry) = self.agents.get_mut(&agent) else { return };
        entry.presence = status;
        let conns = entry.conns.clone();
        for c in conns {
            self.send(c, Outbound::frame(ServerFrame::Presence(PresenceFrame { status })));
        }
        let availability = if status == Presence::Online { Availability::Online } else { Availability::Away };
        self.route(Event::Presence { agent, availability }, None);
    }

    /// The agent behind a connection, if it is an agent's.
    fn requesting_agent(&mut self, conn: ConnId) -> Option<AgentId> {
        match self.conns.get(&conn).map(|c| c.who) {
            Some(Who::Agent(agent)) => Some(agent),
            _ => None,
        }
    }

    /// Refuses a request about `conversation` to the connection that made it.
    fn refuse(&mut self, conn: ConnId, conversation: ConversationId, code: ErrorCode, message: &str) {
        self.send(conn, Outbound::frame(error_frame(code, message, None, Some(conversation))));
    }

    /// Checks that `agent` holds `conversation` (as decided); refuses to `conn` otherwise.
    fn held_by(&mut self, conn: ConnId, agent: AgentId, conversation: ConversationId) -> bool {
        match self.conversations.get(&conversation) {
            None => {
                self.refuse(conn, conversation, ErrorCode::NotFound, "no such open conversation");
                false
            }
            Some(conv) if conv.decided.assignee != Some(agent) => {
                self.refuse(conn, conversation, ErrorCode::Forbidden, "the conversation is not assigned to you");
                false
            }
            Some(_) => true,
        }
    }

    fn settle(
        &mut self,
        conn: ConnId,
        conversation: ConversationId,
        transition: Transition,
        resolution: Option<String>,
    ) {
        let Some(agent) = self.requesting_agent(conn) else { return };
        if !self.held_by(conn, agent, conversation) {
            return;
        }
        let now = self.now();
        let conv = &self.conversations[&conversation];
        let next = match conv.decided.apply(transition, now) {
            Ok(next) => next,
            Err(e) => return self.refuse(conn, conversation, ErrorCode::Conflict, &e.to_string()),
        };
        let kind = if transition == Transition::Close { "conversation.closed" } else { "conversation.resolved" };
        let event = EventRecord {
            kind,
            actor_kind: "agent",
            actor_id: Some(agent.0),
            origin: self.origin_of(conn),
            // The resolution's words stay on the conversation (erasable); the
            // append-only log holds no free text.
            data: serde_json::json!({ "with_resolution": resolution.is_some() }),
        };
        self.commit_transition(conversation, next, resolution, None, None, event);
        self.route(Event::Released { conversation }, Some(conn));
    }

    fn transfer(&mut self, conn: ConnId, conversation: ConversationId, to: TransferTarget, note: Option<String>) {
        let Some(agent) = self.requesting_agent(conn) else {
            return self.refuse(conn, conversation, ErrorCode::Forbidden, "transfer is for agents");
        };
        // Supervisors reassign any open conversation; agents hand on what they hold.
        let reassigning = self.is_supervisor(conn)
            && self.conversations.get(&conversation).is_some_and(|c| c.decided.assignee != Some(agent));
        if !reassigning && !self.held_by(conn, agent, conversation) {
            return;
        }
        let before = (self.router.holder(conversation), self.router.queue_of(conversation));
        let target = to.clone();
        let from = Some(AgentRef { id: agent, name: self.agent_name(agent) });
        let event = match to {
            TransferTarget::Agent { agent_id } => Event::TransferToAgent { conversation, to: agent_id },
            TransferTarget::Group { group: None } => Event::TransferToGroup { conversation, group: None },
            TransferTarget::Group { group: Some(slug) } => match self.group_by_slug(&slug) {
                Some(group) => Event::TransferToGroup { conversation, group: Some(group) },
                None => return self.refuse(conn, conversation, ErrorCode::NotFound, &format!("no group '{slug}'")),
            },
        };
        self.pending_transfers.insert(conversation, TransferInfo { from, note });
        self.refusal_target = match event {
            Event::TransferToAgent { to, .. } => Some(to),
            _ => None,
        };
        self.route(event, Some(conn));
        self.refusal_target = None;
        let moved = (self.router.holder(conversation), self.router.queue_of(conversation)) != before;
        // Refused: the note goes nowhere, and a supervisor's attempt is no reassignment.
        if !moved {
            self.pending_transfers.remove(&conversation);
        } else if reassigning {
            let data = serde_json::json!({ "to": target });
            self.audit(agent, self.origin_of(conn), "supervisor.reassigned", Some(conversation), data);
        }
    }

    fn pick(&mut self, conn: ConnId, conversation: ConversationId) {
        let Some(agent) = self.requesting_agent(conn) else {
            return self.refuse(conn, conversation, ErrorCode::Forbidden, "pick is for agents");
        };
        let role = self.agents.get(&agent).map(|a| a.view.role);
        if role == Some(Role::Agent) && !self.settings.agents_may_pick {
            return self.refuse(
                conn,
                conversation,
                ErrorCode::Forbidden,
                "in this workspace only supervisors take conversations by hand",
            );
        }
        if let Some(group) = self.router.queue_of(conversation)
            && !self.agents.get(&agent).is_some_and(|a| a.serves(group))
        {
            return self.refuse(
                conn,
                conversation,
                ErrorCode::Forbidden,
                "that conversation waits in a queue you do not serve",
            );
        }
        self.route(Event::Pick { conversation, agent }, Some(conn));
    }

    /// The customer's connections as the old contact end (they reconnect with their token,
    /// which now names the merged contact); sticky routing carries over.
    fn contacts_merged(&mut self, from: ContactId, into: ContactId, vip: bool) {
        for conn in self.contact_conns.remove(&from).unwrap_or_default() {
            self.send(
                conn,
                Outbound::Close { code: close_code::SUPERSEDED, reason: "contact merged; reconnect".into() },
            );
        }
        if let Some(served) = self.last_served.remove(&from) {
            let newer = self.last_served.get(&into).is_none_or(|(_, at)| *at < served.1);
            if newer {
                self.last_served.insert(into, served);
            }
        }
        self.vip_marks.remove(&from);
        self.contact_changed(into, vip);
    }

    fn contact_changed(&mut self, contact: ContactId, vip: bool) {
        self.vip_marks.insert(contact, vip);
        let Some(conversation) = self.contact_open.get(&contact).copied() else { return };
        let now = self.now();
        let Some(conv) = self.conversations.get_mut(&conversation) else { return };
        conv.contact.vip = vip;
        let (channel, channel_priority) = (conv.channel, conv.channel_priority);
        let priority = self.priority(vip, channel, channel_priority);
        let conv = self.conversations.get_mut(&conversation).expect("present");
        if conv.route.priority != PRIORITY_RETURNED {
            conv.route.priority = priority;
        }
        // A waiting conversation takes its new place in line now.
        if conv.decided.state == ConversationState::Queued && self.router.queue_of(conversation).is_some() {
            let routable = Routable {
                conversation,
                group: conv.route.group,
                priority: conv.route.priority,
                vip,
                queued_at: conv.decided.queued_at.unwrap_or(now),
                preferred: None,
            };
            let route = conv.route;
            self.journal.submit_from_hub(JournalOp::Record {
                workspace: self.workspace,
                conversation,
                route: Some(route),
                intent: None,
                event: EventRecord {
                    kind: "conversation.priority",
                    actor_kind: "agent",
                    actor_id: None,
                    origin: None,
                    data: serde_json::json!({"vip": vip, "priority": route.priority}),
                },
            });
            self.route(Event::Enqueue(routable), None);
        }
    }

    // ---- tickets ------------------------------------------------------------------------

    fn ticket_made(&mut self, ticket: TicketView, conversation: Option<ConversationId>) {
        if let Some(agent) = ticket.assignee.as_ref().map(|a| a.id) {
            let frame = ServerFrame::Ticket(TicketFrame { change: TicketChange::Assigned, ticket: ticket.clone() });
            self.deliver_to_agent(agent, Outbound::frame(frame));
        }
        let Some(conversation) = conversation else { return };
        let Some(conv) = self.conversations.get(&conversation) else { return };
        let contact = conv.contact.id;
        let decided = conv.decided.clone();
        let frame = ServerFrame::Ticket(TicketFrame { change: TicketChange::Created, ticket });
        self.deliver_to_contact(contact, Outbound::frame(frame));
        // Nobody has it yet: it is settled by the ticket, not left in the queue or with
        // the bot (the customer writing again reopens it).
        if matches!(decided.state, ConversationState::Queued | ConversationState::Bot) {
            let Ok(next) = decided.apply(Transition::Resolve, self.now()) else { return };
            if let Some(conv) = self.conversations.get_mut(&conversation) {
                conv.bot = None;
            }
            let event = EventRecord {
                kind: "conversation.resolved",
                actor_kind: "customer",
                actor_id: Some(contact.0),
                origin: None,
                data: serde_json::json!({ "resolution": "ticket" }),
            };
            self.commit_transition(conversation, next, Some("ticket".into()), None, None, event);
            // Agents watching the queue see it leave.
            if let Some(group) = self.router.queue_of(conversation) {
                self.dirty_queues.insert(group);
            }
            self.route(Event::Released { conversation }, None);
        }
    }

    // ---- the bot ------------------------------------------------------------------------

    /// Whether new conversations start with the bot: it is on, and there is a knowledge
    /// base to answer from.
    fn bot_answers(&self) -> bool {
        self.bot.enabled && self.bot.knowledge.index.has_articles(self.workspace.0)
    }

    /// Gives a customer's message to the bot, or queues it behind the one the bot has.
    fn bot_turn(&mut self, conversation: ConversationId, message: String) {
        let workspace = self.workspace;
        let Some(seat) = self.conversations.get_mut(&conversation).and_then(|c| c.bot.as_mut()) else { return };
        if seat.busy {
            seat.waiting.push_back(message);
            return;
        }
        seat.busy = true;
        let contact = self.conversations[&conversation].contact.id;
        let seat = self.conversations.get_mut(&conversation).and_then(|c| c.bot.as_mut()).expect("checked above");
        let request = bot_worker::BotRequest { workspace, conversation, contact, message, memory: seat.memory.clone() };
        if self.bot.requests.send(request).is_err() {
            tracing::error!(%conversation, "bot stopped; the conversation waits for a person");
        }
    }

    /// Carries out what the bot decided: its message, then resolving or handing over.
    fn bot_done(&mut self, outcome: bot_worker::BotOutcome) {
        let conversation = outcome.conversation;
        let now = self.now();
        let Some(conv) = self.conversations.get_mut(&conversation) else { return };
        if conv.decided.state != ConversationState::Bot {
            return;
        }
        if outcome.memory.intent.is_some() {
            conv.intent.clone_from(&outcome.memory.intent);
        }
        let (text, kind) = match &outcome.action {
            bot::Action::Reply { text, article: Some(_) } => (text.clone(), "bot.answered"),
            bot::Action::Reply { text, article: None } => (text.clone(), "bot.replied"),
            bot::Action::Resolve { text } => (text.clone(), "bot.resolved"),
            bot::Action::HandOver { text, .. } => (text.clone(), "bot.handover"),
        };
        let reason = match &outcome.action {
            bot::Action::HandOver { why, .. } => Some(why.as_str()),
            _ => None,
        };
        self.journal.submit_from_hub(JournalOp::Append(crate::journal::NewMessage {
            workspace: self.workspace,
            conversation,
            origin: None,
            author: AuthorKind::Bot,
            author_id: None,
            client_msg_id: None,
            body: text,
            format: kefu_proto::frame::BodyFormat::Markdown,
            internal: false,
            attachments: Vec::new(),
            via: None,
        }));
        self.journal.submit_from_hub(JournalOp::Record {
            workspace: self.workspace,
            conversation,
            route: None,
            intent: outcome.memory.intent.clone(),
            event: EventRecord {
                kind,
                actor_kind: "bot",
                actor_id: None,
                origin: None,
                data: serde_json::json!({
                    "intent": outcome.classification.intent,
                    "confidence": outcome.classification.confidence,
                    "evidence": outcome.classification.reason,
                    "article_id": outcome.article,
                    "source": outcome.source,
                    "reason": reason,
                }),
            },
        });
        let conv = self.conversations.get_mut(&conversation).expect("present");
        match outcome.action {
            bot::Action::Reply { .. } => {
                let seat = conv.bot.as_mut().expect("with the bot");
                seat.memory = outcome.memory;
                seat.busy = false;
                if let Some(next) = seat.waiting.pop_front() {
                    self.bot_turn(conversation, next);
                }
            }
            bot::Action::Resolve { .. } => {
                conv.bot = None;
                if let Ok(next) = conv.decided.apply(Transition::Resolve, now) {
                    let event = EventRecord {
                        kind: "conversation.resolved",
                        actor_kind: "bot",
                        actor_id: None,
                        origin: None,
                        data: serde_json::json!({ "resolution": "bot" }),
                    };
                    self.commit_transition(conversation, next, Some("bot".into()), None, None, event);
                }
            }
            bot::Action::HandOver { why, .. } => {
                conv.bot = None;
                let intent_group = outcome
                    .memory
                    .intent
                    .as_deref()
                    .and_then(|i| self.bot.knowledge.classifier.intent(i))
                    .and_then(|def| def.group.clone())
                    .and_then(|slug| self.group_by_slug(&slug));
                let conv = self.conversations.get_mut(&conversation).expect("present");
                let Ok(next) = conv.decided.apply(Transition::HandOver, now) else { return };
                let route = RouteFields { group: intent_group.or(conv.route.group), priority: conv.route.priority };
                let vip = conv.contact.vip;
                let contact = conv.contact.id;
                let event = EventRecord {
                    kind: "conversation.handed_over",
                    actor_kind: "bot",
                    actor_id: None,
                    origin: None,
                    data: serde_json::json!({ "reason": why.as_str(), "intent": outcome.memory.intent }),
                };
                self.commit_transition(conversation, next.clone(), None, Some(route), None, event);
                let routable = Routable {
                    conversation,
                    group: route.group,
                    priority: route.priority,
                    vip,
                    queued_at: next.queued_at.unwrap_or(now),
                    preferred: self.sticky_agent(contact),
                };
                self.route(Event::Enqueue(routable), None);
            }
        }
    }

    // ---- routing ------------------------------------------------------------------------

    /// Records a decided lifecycle and writes it. Written before the router runs: an
    /// assignment the router makes next builds on this lifecycle and must be committed
    /// after it.
    fn commit_transition(
        &mut self,
        conversation: ConversationId,
        next: Lifecycle,
        resolution: Option<String>,
        route: Option<RouteFields>,
        transfer: Option<TransferInfo>,
        event: EventRecord,
    ) {
        let Some(conv) = self.conversations.get_mut(&conversation) else { return };
        conv.decided = next.clone();
        if let Some(route) = route {
            conv.route = route;
        }
        self.journal.submit_from_hub(JournalOp::Transition {
            workspace: self.workspace,
            conversation,
            lifecycle: next,
            resolution,
            route,
            transfer,
            event,
        });
    }

    /// Feeds the router one event and carries out its decisions. `requester` is told of
    /// refusals.
    fn route(&mut self, event: Event, requester: Option<ConnId>) {
        let now = self.now();
        if matches!(event, Event::Presence { .. } | Event::Agent { .. }) {
            // Who is online changed: every waiting customer's "agents online" may have.
            let waiting: Vec<Option<GroupId>> = self.router.queued_groups().collect();
            self.dirty_queues.extend(waiting);
        }
        let mut decisions = std::mem::take(&mut self.decisions);
        self.router.handle(event, now, &mut decisions);
        for decision in decisions.drain(..) {
            self.apply(decision, requester, now);
        }
        self.decisions = decisions;
    }

    fn apply(&mut self, decision: Decision, requester: Option<ConnId>, now: UnixMillis) {
        let (outcome, rule) = explain::outcome_and_rule(&decision);
        self.supervision.telemetry.routed(outcome, rule);
        match decision {
            Decision::Assigned { conversation, agent, from, why } => {
                let Some(conv) = self.conversations.get(&conversation) else { return };
                let transition = if conv.decided.state == ConversationState::Assigned {
                    Transition::Transfer(agent)
                } else {
                    Transition::Assign(agent)
                };
                let next = match conv.decided.apply(transition, now) {
                    Ok(next) => next,
                    Err(e) => {
                        return tracing::error!(%conversation, error = %e, "router decision does not fit the lifecycle");
                    }
                };
                let group = conv.route.group;
                let (explanation, details) = {
                    let agent_name = |a: AgentId| self.agent_name(a);
                    let group_name = |g: Option<GroupId>| self.group_label(g);
                    let names = explain::Names { agent: &agent_name, group: &group_name };
                    let before = match from {
                        Some(from) => explain::Before::Agent(from),
                        None if self.taking_from_bot == Some(conversation) => explain::Before::Bot,
                        None => explain::Before::Queue,
                    };
                    explain::assigned(&names, agent, before, group, &why, self.settings.reroute_ms())
                };
                let transfer = match why.rule {
                    Rule::Rerouted => Some(TransferInfo { from: None, note: Some(explanation.clone()) }),
                    _ => self.pending_transfers.remove(&conversation),
                };
                let (actor_kind, actor_id) = match (why.rule, requester.and_then(|c| self.conns.get(&c)).map(|c| c.who))
                {
                    (Rule::Transferred | Rule::Picked | Rule::TakenOver, Some(Who::Agent(a))) => ("agent", Some(a.0)),
                    _ => ("system", None),
                };
                let mut data = serde_json::json!({ "explanation": explanation, "details": details });
                if let Some(note) = transfer.as_ref().and_then(|t| t.note.clone()) {
                    data["note"] = note.into();
                }
                let origin = if actor_kind == "agent" { requester.and_then(|c| self.origin_of(c)) } else { None };
                let event = EventRecord { kind: "routing.assigned", actor_kind, actor_id, data, origin };
                let route = Some(self.conversations[&conversation].route);
                self.commit_transition(conversation, next, None, route, transfer, event);
                self.dirty_queues.insert(group);
            }
            Decision::Queued { conversation, group, why } => {
                let (explanation, details) = {
                    let agent_name = |a: AgentId| self.agent_name(a);
                    let group_name = |g: Option<GroupId>| self.group_label(g);
                    let names = explain::Names { agent: &agent_name, group: &group_name };
                    explain::queued(&names, group, why)
                };
                self.journal.submit_from_hub(JournalOp::Record {
                    workspace: self.workspace,
                    conversation,
                    route: None,
                    intent: None,
                    event: EventRecord {
                        kind: "routing.queued",
                        actor_kind: "system",
                        actor_id: None,
                        origin: None,
                        data: serde_json::json!({ "explanation": explanation, "details": details }),
                    },
                });
                self.dirty_queues.insert(group);
            }
            Decision::Returned { conversation, from, group, why } => {
                let Some(conv) = self.conversations.get(&conversation) else { return };
                let next = match conv.decided.apply(Transition::Requeue, now) {
                    Ok(next) => next,
                    Err(e) => {
                        return tracing::error!(%conversation, error = %e, "router decision does not fit the lifecycle");
                    }
                };
                let (explanation, details) = {
                    let agent_name = |a: AgentId| self.agent_name(a);
                    let group_name = |g: Option<GroupId>| self.group_label(g);
                    let names = explain::Names { agent: &agent_name, group: &group_name };
                    explain::returned(&names, from, group, why, self.settings.grace_secs as i64 * 1000)
                };
                let event = EventRecord {
                    kind: "routing.returned",
                    actor_kind: "system",
                    actor_id: None,
                    origin: None,
                    data: serde_json::json!({ "explanation": explanation, "details": details }),
                };
                let route = RouteFields { group, priority: PRIORITY_RETURNED };
                self.commit_transition(conversation, next, None, Some(route), None, event);
                self.dirty_queues.insert(group);
            }
            Decision::Escalated { conversation, from, to } => {
                let Some(conv) = self.conversations.get_mut(&conversation) else { return };
                conv.route.group = to;
                let route = conv.route;
                let waited_since = conv.decided.queued_at.unwrap_or(conv.decided.created_at);
                let (explanation, details) = {
                    let agent_name = |a: AgentId| self.agent_name(a);
                    let group_name = |g: Option<GroupId>| self.group_label(g);
                    let names = explain::Names { agent: &agent_name, group: &group_name };
                    explain::escalated(&names, from, to, waited_since, now)
                };
                self.journal.submit_from_hub(JournalOp::Record {
                    workspace: self.workspace,
                    conversation,
                    route: Some(route),
                    intent: None,
                    event: EventRecord {
                        kind: "routing.escalated",
                        actor_kind: "system",
                        actor_id: None,
                        origin: None,
                        data: serde_json::json!({ "explanation": explanation, "details": details }),
                    },
                });
                self.dirty_queues.insert(from);
                self.dirty_queues.insert(to);
            }
            Decision::Refused { conversation, why } => {
                self.pending_transfers.remove(&conversation);
                if let Some(conn) = requester {
                    let message = {
                        let agent_name = |a: AgentId| self.agent_name(a);
                        let group_name = |g: Option<GroupId>| self.group_label(g);
                        let names = explain::Names { agent: &agent_name, group: &group_name };
                        explain::refusal(&names, self.refusal_target, why)
                    };
                    let code = match why {
                        routing::Refusal::NotRoutable => ErrorCode::Conflict,
                        routing::Refusal::UnknownAgent => ErrorCode::NotFound,
                        _ => ErrorCode::Conflict,
                    };
                    self.refuse(conn, conversation, code, &message);
                }
            }
        }
    }

    fn agent_name(&self, agent: AgentId) -> String {
        self.agents.get(&agent).map(|a| a.view.name.clone()).unwrap_or_else(|| format!("agent {agent}"))
    }

    fn group_label(&self, group: Option<GroupId>) -> String {
        match group {
            None => "the any-agent queue".into(),
            Some(g) => self.groups.get(&g).map(|g| g.slug.clone()).unwrap_or_else(|| format!("group {g}")),
        }
    }

    fn on_tick(&mut self) {
        self.route(Event::Tick, None);
        self.publish_queues();
        self.supervise_tick();
    }

    // ---- queue positions ------------------------------------------------------------------

    /// Tells waiting customers of changed queues where they stand, and the agents who
    /// serve those queues what waits in them.
    fn publish_queues(&mut self) {
        let dirty: Vec<Option<GroupId>> = self.dirty_queues.drain().collect();
        for group in dirty {
            let waiting: Vec<ConversationId> = self.router.queue(group).collect();
            let (online, capacity) = self.router.online(group);
            for (i, conversation) in waiting.iter().enumerate() {
                self.tell_position(*conversation, i as u32 + 1, group, online, capacity);
            }
            let frame = self.queue_list(group);
            let watchers: Vec<ConnId> =
                self.agents.values().filter(|a| a.serves(group)).flat_map(|a| a.conns.iter().copied()).collect();
            for conn in watchers {
                self.send(conn, Outbound::frame(frame.clone()));
            }
        }
        self.told_positions.retain(|c, _| self.router.queue_of(*c).is_some());
    }

    /// Tells one waiting customer where they stand, now.
    fn publish_position(&mut self, conversation: ConversationId) {
        let Some(group) = self.router.queue_of(conversation) else { return };
        let Some(index) = self.router.queue(group).position(|c| c == conversation) else { return };
        let (online, capacity) = self.router.online(group);
        self.tell_position(conversation, index as u32 + 1, group, online, capacity);
    }

    fn tell_position(
        &mut self,
        conversation: ConversationId,
        position: u32,
        group: Option<GroupId>,
        online: u32,
        capacity: u32,
    ) {
        let estimated_wait_secs = self.handle_times.get(&group).and_then(|h| h.average_ms).map(|avg| {
            // Everyone ahead must be served first; the online agents serve `capacity`
            // conversations at a time, each taking the average handle time.
            let per_slot = avg / capacity.max(1) as f64;
            ((position as f64 * per_slot) / 1000.0).ceil() as u32
        });
        let frame = QueueFrame { conversation_id: conversation, position, estimated_wait_secs, agents_online: online };
        if self.told_positions.get(&conversation) == Some(&frame) {
            return;
        }
        self.told_positions.insert(conversation, frame);
        if let Some(contact) = self.conversations.get(&conversation).map(|c| c.contact.id) {
            self.deliver_to_contact(contact, Outbound::frame(ServerFrame::Queue(frame)));
        }
    }

    fn queue_list(&self, group: Option<GroupId>) -> ServerFrame {
        let waiting: Vec<ConversationId> = self.router.queue(group).collect();
        let conversations = waiting.iter().take(QUEUE_LIST_LIMIT).filter_map(|c| self.view(*c)).collect();
        ServerFrame::QueueList(QueueListFrame {
            group: self.group_slug(group),
            total: waiting.len() as u32,
            conversations,
        })
    }

    // ---- commits ------------------------------------------------------------------------

    fn on_committed(&mut self, committed: Committed) {
        match committed {
            Committed::Opened { request, conversation, contact, channel, lifecycle, first } => {
                let Some(pending) = self.pending_opens.remove(&request) else {
                    // An opening nobody waits for: its message is stored all the same, and
                    // its sender still gets the acknowledgement.
                    if let Some(first) = first {
                        self.on_committed(*first);
                    }
                    return;
                };
                self.pending_by_contact.remove(&contact);
                self.contact_open.insert(contact, conversation);
                let vip = pending.contact.vip;
                let route = pending.route;
                let with_bot = lifecycle.state == ConversationState::Bot;
                self.conversations.insert(
                    conversation,
                    OpenConversation {
                        contact: pending.contact,
                        channel,
                        channel_priority: pending.channel_priority,
                        intent: None,
                        bot: with_bot.then(BotSeat::default),
                        route,
                        decided: lifecycle.clone(),
                        announced: lifecycle.clone(),
                        last_seq: 0,
                        awaiting_reply_since: None,
                    },
                );
                let view = self.view(conversation).expect("just inserted");
                for (waiter, handed_back) in pending.waiters {
                    let _ = waiter.send(Ok(Opened { view: view.clone(), first: handed_back }));
                }
                self.deliver_to_contact(
                    contact,
                    Outbound::frame(conversation_frame(ConversationChange::Opened, view, None)),
                );
                // The message it was opened for, stored with it: acknowledged (and shown
                // to the bot) before anyone is offered the conversation.
                if let Some(first) = first {
                    self.on_committed(*first);
                }
                if lifecycle.state == ConversationState::Queued {
                    let routable = Routable {
                        conversation,
                        group: route.group,
                        priority: route.priority,
                        vip,
                        queued_at: lifecycle.queued_at.unwrap_or(lifecycle.created_at),
                        preferred: self.sticky_agent(contact),
                    };
                    self.route(Event::Enqueue(routable), None);
                }
            }
            Committed::OpenFailed { request } => {
                if let Some(pending) = self.pending_opens.remove(&request) {
                    self.pending_by_contact.remove(&pending.contact.id);
                    for (waiter, _) in pending.waiters {
                        let _ = waiter
                            .send(Err(ProtocolError::new(ErrorCode::Internal, "could not open a conversation; retry")));
                    }
                }
            }
            Committed::Appended(stored) => self.on_appended(stored),
            Committed::Duplicate { origin, client_msg_id, conversation, seq, at } => {
                if let Some(origin) = origin {
                    let ack = Ack { client_msg_id, conversation_id: conversation, seq, at, duplicate: true };
                    self.send(origin, Outbound::frame(ServerFrame::Ack(ack)));
                }
            }
            Committed::Rejected { origin, client_msg_id, conversation, error } => {
                if let Some(origin) = origin {
                    let refusal = error_frame(error.code, &error.message, client_msg_id, Some(conversation));
                    self.send(origin, Outbound::frame(refusal));
                }
            }
            Committed::Transitioned { conversation, lifecycle, transfer } => {
                self.on_transitioned(conversation, lifecycle, transfer)
            }
            Committed::TransitionFailed { conversation } => {
                // Undo the decision: the database still holds the announced lifecycle.
                let Some(conv) = self.conversations.get_mut(&conversation) else { return };
                conv.decided = conv.announced.clone();
                let life = conv.announced.clone();
                let route = conv.route;
                let vip = conv.contact.vip;
                let event = match (life.state, life.assignee) {
                    (ConversationState::Queued, _) => Event::Enqueue(Routable {
                        conversation,
                        group: route.group,
                        priority: route.priority,
                        vip,
                        queued_at: life.queued_at.unwrap_or(life.created_at),
                        preferred: None,
                    }),
                    (ConversationState::Assigned, Some(agent)) => {
                        Event::Held { conversation, agent, group: route.group, vip, answered: true }
                    }
                    _ => Event::Released { conversation },
                };
                self.route(event, None);
            }
            Committed::Recorded { conversation, kind } => {
                // Where a customer stands is told once the decision that put them there
                // is durable.
                if kind == "routing.queued" {
                    self.publish_position(conversation);
                }
            }
            Committed::Read { conversation, reader, seq } => {
                let frame = ServerFrame::Read(ReadFrame { conversation_id: conversation, reader, seq });
                self.deliver_to_other_side(conversation, reader, Outbound::frame(frame));
            }
        }
    }

    /// The agent a returning contact goes back to, within the sticky window.
    fn sticky_agent(&self, contact: ContactId) -> Option<AgentId> {
        let (agent, at) = *self.last_served.get(&contact)?;
        (self.now() - at <= self.settings.sticky_window_ms()).then_some(agent)
    }

    fn on_appended(&mut self, stored: Arc<StoredMessage>) {
        let m = &stored.message;
        let author_name = match m.author {
            AuthorKind::Agent => m.author_id.and_then(|id| self.agents.get(&AgentId(id))).map(|a| a.view.name.clone()),
            AuthorKind::Customer => self.conversations.get(&m.conversation).and_then(|c| c.contact.name.clone()),
            _ => None,
        };
        let frame = ServerFrame::Message(MessageFrame {
            conversation_id: m.conversation,
            seq: stored.seq,
            author: Author { kind: m.author, id: m.author_id, name: author_name },
            body: m.body.clone(),
            format: m.format,
            client_msg_id: m.client_msg_id.clone(),
            at: stored.at,
            internal: m.internal,
            attachments: m.attachments.clone(),
            via: m.via.as_ref().map(|v| v.view.clone()),
            masked: false,
        });
        let text: Utf8Bytes = serde_json::to_string(&frame).expect("frames serialise").into();
        let message = Outbound::Message { conversation: m.conversation, seq: stored.seq, text };
        if let Some(origin) = m.origin {
            let ack = Ack {
                client_msg_id: m.client_msg_id.clone().unwrap_or_default(),
                conversation_id: m.conversation,
                seq: stored.seq,
                at: stored.at,
                duplicate: false,
            };
            self.send(origin, Outbound::frame(ServerFrame::Ack(ack)));
        }
        let conversation = m.conversation;
        let author = m.author;
        let origin = m.origin;
        let Some(conv) = self.conversations.get_mut(&conversation) else { return };
        conv.last_seq = conv.last_seq.max(stored.seq);
        let contact = conv.contact.id;
        let assignee = conv.announced.assignee;
        let reopen = author == AuthorKind::Customer && conv.decided.state == ConversationState::Resolved;
        let internal = m.internal;
        // Private notes reach agents only.
        let mut recipients: Vec<ConnId> =
            if internal { Vec::new() } else { self.contact_conns.get(&contact).cloned().unwrap_or_default() };
        if let Some(agent) = assignee.and_then(|a| self.agents.get(&a)) {
            recipients.extend(agent.conns.iter().copied());
        }
        // Supervisors following it see everything, notes included.
        for conn in self.supervision.observers(conversation) {
            if !recipients.contains(conn) {
                recipients.push(*conn);
            }
        }
        let conv = self.conversations.get_mut(&conversation).expect("looked up above");
        match author {
            AuthorKind::Customer => {
                conv.awaiting_reply_since.get_or_insert(stored.at);
            }
            AuthorKind::Agent if !internal => {
                conv.awaiting_reply_since = None;
                if let Some(agent) = m.author_id.and_then(|id| self.agents.get_mut(&AgentId(id))) {
                    agent.last_reply_at = Some(stored.at);
                }
            }
            _ => {}
        }
        let telemetry = &self.supervision.telemetry;
        telemetry.stored(author);
        telemetry.delivered(recipients.iter().filter(|c| Some(**c) != origin).count() as u64);
        // Readers whose role sees personal data masked get their own copy, made once.
        let mut masked: Option<Outbound> = None;
        for conn in recipients {
            if Some(conn) == origin {
                continue;
            }
            if self.sees_masked(conn) {
                let copy = masked.get_or_insert_with(|| {
                    let ServerFrame::Message(m) = &frame else { unreachable!("a message frame") };
                    let text = serde_json::to_string(&ServerFrame::Message(crate::privacy::mask_message(m.clone())))
                        .expect("frames serialise");
                    Outbound::Message { conversation, seq: stored.seq, text: text.into() }
                });
                let copy = copy.clone();
                self.send(conn, copy);
            } else {
                self.send(conn, message.clone());
            }
        }
        if author == AuthorKind::Agent && !internal {
            self.route(Event::Replied { conversation }, None);
        }
        if author == AuthorKind::Customer && self.conversations[&conversation].decided.state == ConversationState::Bot {
            let text = stored.message.body.clone();
            self.bot_turn(conversation, text);
        }
        if reopen {
            self.reopen(conversation, contact);
        }
    }

    /// The customer wrote into a resolved conversation: back to the queue, preferring the
    /// agent who resolved it.
    fn reopen(&mut self, conversation: ConversationId, contact: ContactId) {
        let now = self.now();
        let Some(conv) = self.conversations.get(&conversation) else { return };
        let previous = conv.decided.assignee;
        let Ok(next) = conv.decided.apply(Transition::Reopen, now) else { return };
        let vip = conv.contact.vip;
        // A new start in the queue: its own priority again (not that of a return).
        let route =
            RouteFields { group: conv.route.group, priority: self.priority(vip, conv.channel, conv.channel_priority) };
        let event = EventRecord {
            kind: "conversation.reopened",
            actor_kind: "customer",
            actor_id: Some(contact.0),
            origin: None,
            data: serde_json::json!({}),
        };
        self.commit_transition(conversation, next, None, Some(route), None, event);
        let sticky = self.settings.sticky_window_hours > 0;
        let routable = Routable {
            conversation,
            group: route.group,
            priority: route.priority,
            vip,
            queued_at: now,
            preferred: if sticky { previous.or_else(|| self.sticky_agent(contact)) } else { None },
        };
        self.route(Event::Enqueue(routable), None);
    }

    fn on_transitioned(&mut self, conversation: ConversationId, lifecycle: Lifecycle, transfer: Option<TransferInfo>) {
        let Some(conv) = self.conversations.get_mut(&conversation) else { return };
        let before = std::mem::replace(&mut conv.announced, lifecycle.clone());
        let contact = conv.contact.id;
        let group = conv.route.group;
        let view = self.view(conversation).expect("present");
        let change = match (before.state, lifecycle.state) {
            (_, ConversationState::Closed) => ConversationChange::Closed,
            (_, ConversationState::Resolved) => ConversationChange::Resolved,
            (ConversationState::Resolved, ConversationState::Queued) => ConversationChange::Reopened,
            (_, ConversationState::Queued) => ConversationChange::Queued,
            (_, ConversationState::Assigned) => ConversationChange::Assigned,
            (_, ConversationState::Bot) => ConversationChange::Opened,
        };
        // The agent who lost it hears so; the agent who gained it hears so (with the
        // transfer note, and catches up); an agent who keeps it hears of the change.
        if before.assignee != lifecycle.assignee {
            if let Some(old) = before.assignee {
                self.deliver_to_agent(
                    old,
                    Outbound::frame(conversation_frame(ConversationChange::Unassigned, view.clone(), None)),
                );
            }
            if let Some(new) = lifecycle.assignee {
                let frame = conversation_frame(ConversationChange::Assigned, view.clone(), transfer);
                self.deliver_to_agent(new, Outbound::frame(frame));
            }
        } else if let Some(agent) = lifecycle.assignee {
            self.deliver_to_agent(agent, Outbound::frame(conversation_frame(change, view.clone(), None)));
        }
        // Observers see it move (as `observed`, so they do not take it for theirs), or close.
        let observed = if change == ConversationChange::Closed { change } else { ConversationChange::Observed };
        for conn in self.supervision.observers(conversation).to_vec() {
            self.send(conn, Outbound::frame(conversation_frame(observed, view.clone(), None)));
        }
        self.deliver_to_contact(contact, Outbound::frame(conversation_frame(change, view, None)));
        // Who served the contact, for sticky routing; how long it took, for estimates.
        if matches!(lifecycle.state, ConversationState::Resolved | ConversationState::Closed)
            && let Some(agent) = lifecycle.assignee
        {
            let at = lifecycle.resolved_at.or(lifecycle.closed_at).unwrap_or_else(|| self.now());
            self.last_served.insert(contact, (agent, at));
            if before.state == ConversationState::Assigned
                && let Some(assigned_at) = lifecycle.assigned_at
            {
                self.handle_times.entry(group).or_default().observe(at - assigned_at);
            }
        }
        if lifecycle.state == ConversationState::Closed {
            self.forget_observed(conversation);
            self.conversations.remove(&conversation);
            self.pending_transfers.remove(&conversation);
            self.told_positions.remove(&conversation);
            if self.contact_open.get(&contact) == Some(&conversation) {
                self.contact_open.remove(&contact);
            }
        }
    }

    // ---- delivery -----------------------------------------------------------------------

    /// The conversation as clients see it, from its announced lifecycle.
    fn view(&self, conversation: ConversationId) -> Option<ConversationView> {
        let conv = self.conversations.get(&conversation)?;
        let life = &conv.announced;
        Some(ConversationView {
            id: conversation,
            state: life.state,
            channel: conv.channel,
            contact: conv.contact.clone(),
            assignee: life.assignee.map(|id| AgentRef { id, name: self.agent_name(id) }),
            last_seq: conv.last_seq,
            created_at: life.created_at,
            queued_at: life.queued_at,
            group: self.group_slug(conv.route.group),
            priority: conv.route.priority,
            intent: conv.intent.clone(),
        })
    }

    fn deliver_to_contact(&mut self, contact: ContactId, out: Outbound) {
        for conn in self.contact_conns.get(&contact).cloned().unwrap_or_default() {
            self.send(conn, out.clone());
        }
    }

    fn deliver_to_agent(&mut self, agent: AgentId, out: Outbound) {
        for conn in self.agents.get(&agent).map(|a| a.conns.clone()).unwrap_or_default() {
            self.send(conn, out.clone());
        }
    }

    /// Sends to the side of a conversation that `from` is not on.
    fn deliver_to_other_side(&mut self, conversation: ConversationId, from: AuthorKind, out: Outbound) {
        let Some(conv) = self.conversations.get(&conversation) else { return };
        match from {
            AuthorKind::Customer => {
                if let Some(agent) = conv.announced.assignee {
                    self.deliver_to_agent(agent, out);
                }
            }
            _ => {
                let contact = conv.contact.id;
                self.deliver_to_contact(contact, out);
            }
        }
    }

    /// Queues a frame for a connection without waiting. A full queue means the client is
    /// not reading: it is disconnected rather than allowed to hold memory or the hub.
    fn send(&mut self, conn: ConnId, out: Outbound) {
        let Some(entry) = self.conns.get(&conn) else { return };
        match entry.outbound.try_send(out) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(conn, "slow consumer: outbound queue full; disconnecting");
                entry.kick.cancel();
                self.unregister(conn);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.unregister(conn),
        }
    }
}

fn conversation_frame(
    change: ConversationChange,
    conversation: ConversationView,
    transfer: Option<TransferInfo>,
) -> ServerFrame {
    ServerFrame::Conversation(ConversationFrame { change, conversation, transfer })
}

/// An error frame.
pub fn error_frame(
    code: ErrorCode,
    message: &str,
    client_msg_id: Option<String>,
    conversation_id: Option<ConversationId>,
) -> ServerFrame {
    ServerFrame::Error(ErrorFrame { code, message: message.to_string(), client_msg_id, conversation_id })
}
