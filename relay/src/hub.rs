//! The workspace hub: the one task that owns a workspace's live state — who is connected,
//! which conversations are open and who holds them, agents' presence, and the routing
//! core — and turns committed writes into acknowledgements and deliveries.
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
//! the order they were made durable.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::ws::Utf8Bytes;
use kefu_proto::frame::{
    Ack, AgentRef, AgentView, Author, AuthorKind, ChannelKind, ContactView, ConversationChange, ConversationFrame,
    ConversationState, ConversationView, ErrorFrame, MessageFrame, Presence, PresenceFrame, ReadFrame, ServerFrame,
    TypingFrame, close_code,
};
use kefu_proto::{AgentId, ContactId, ConversationId, ErrorCode, ProtocolError, Seq, WorkspaceId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::conversation::{Lifecycle, Transition};
use crate::journal::{Committed, EventRecord, JournalHandle, JournalOp, StoredMessage};
use crate::routing::{Assignment, Router, RoutingEvent};
use crate::store::{AgentRecord, OpenConversationRecord};

/// Identifies one WebSocket connection for the life of the process.
pub type ConnId = u64;

/// What the hub sends a connection task.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A frame to forward (the connection task also reads acks and conversation changes
    /// to keep its own view current).
    Frame(ServerFrame),
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

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub enum Party {
    /// A customer, as a contact.
    Customer(ContactView),
    /// An agent, with the SHA-256 of the token it authenticated with.
    Agent(AgentView, Vec<u8>),
}

/// The hub's answer to a registration.
#[derive(Debug)]
pub struct Registered {
    /// Agents: the conversations they hold. Customers: their open conversation, if any.
    pub conversations: Vec<ConversationView>,
    /// Agents: their presence now.
    pub presence: Presence,
}

/// Requests from connection tasks.
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
        /// Where to answer.
        reply: oneshot::Sender<Registered>,
    },
    /// A connection ended.
    Unregister {
        /// The connection.
        conn: ConnId,
    },
    /// A customer's first message needs a conversation: open one (or return the open one).
    Open {
        /// The customer.
        contact: ContactView,
        /// Through which channel.
        channel: ChannelKind,
        /// The answer.
        reply: oneshot::Sender<Result<ConversationView, ProtocolError>>,
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
    /// A token was revoked: close the connections that authenticated with it.
    Revoked {
        /// SHA-256 of the token.
        token_hash: Vec<u8>,
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

    /// Stops every hub.
    pub fn stop_all(&self) {
        for hub in self.map.read().expect("hubs lock").values() {
            hub.stop();
        }
    }
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
    /// Online or away while connected; offline when no connection is left.
    presence: Presence,
    /// The agent's connections.
    conns: Vec<ConnId>,
}

/// A conversation that is not closed.
struct OpenConversation {
    contact: ContactView,
    channel: ChannelKind,
    /// Moves as soon as the hub decides.
    decided: Lifecycle,
    /// Moves when the journal reports the change durable; decides delivery.
    announced: Lifecycle,
    last_seq: Seq,
}

/// A conversation being opened for a contact, waiting for the journal.
struct PendingOpen {
    contact: ContactView,
    waiters: Vec<oneshot::Sender<Result<ConversationView, ProtocolError>>>,
}

/// The hub's state.
struct Hub {
    workspace: WorkspaceId,
    journal: JournalHandle,
    router: Router,
    conns: HashMap<ConnId, Conn>,
    contact_conns: HashMap<ContactId, Vec<ConnId>>,
    agents: HashMap<AgentId, AgentEntry>,
    conversations: HashMap<ConversationId, OpenConversation>,
    /// Each contact's conversation that is not closed.
    contact_open: HashMap<ContactId, ConversationId>,
    /// Opens in flight, by request number.
    pending_opens: HashMap<u64, PendingOpen>,
    /// Request number of the open in flight for a contact.
    pending_by_contact: HashMap<ContactId, u64>,
    next_request: u64,
}

/// Starts a workspace hub from the state in the database.
pub fn spawn(
    workspace: WorkspaceId,
    journal: JournalHandle,
    agents: Vec<AgentRecord>,
    open: Vec<OpenConversationRecord>,
    command_queue: usize,
) -> HubHandle {
    let (commands_tx, commands) = mpsc::channel(command_queue);
    let (commits_tx, commits) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let mut hub = Hub {
        workspace,
        journal,
        router: Router::new(),
        conns: HashMap::new(),
        contact_conns: HashMap::new(),
        agents: HashMap::new(),
        conversations: HashMap::new(),
        contact_open: HashMap::new(),
        pending_opens: HashMap::new(),
        pending_by_contact: HashMap::new(),
        next_request: 1,
    };
    hub.rebuild(agents, open);
    tokio::spawn(hub.run(commands, commits, stop.clone()));
    HubHandle { commands: commands_tx, commits: commits_tx, stop }
}

impl Hub {
    /// Loads agents and open conversations; nobody is online yet, so nothing is assigned.
    fn rebuild(&mut self, agents: Vec<AgentRecord>, open: Vec<OpenConversationRecord>) {
        let now = now_ms();
        for agent in agents {
            self.router.handle(
                RoutingEvent::Agent { agent: agent.view.id, available: false, capacity: agent.view.max_concurrent },
                now,
            );
            self.agents
                .insert(agent.view.id, AgentEntry { view: agent.view, presence: Presence::Offline, conns: Vec::new() });
        }
        for record in open {
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
            match (life.state, life.assignee) {
                (ConversationState::Queued, _) => {
                    let queued_at = life.queued_at.unwrap_or(life.created_at);
                    self.router.handle(RoutingEvent::Enqueued { conversation: view.id, queued_at }, now);
                }
                (ConversationState::Assigned, Some(agent)) => {
                    self.router.handle(RoutingEvent::Held { conversation: view.id, agent }, now);
                }
                _ => {}
            }
            self.contact_open.insert(view.contact.id, view.id);
            self.conversations.insert(
                view.id,
                OpenConversation {
                    contact: view.contact,
                    channel: view.channel,
                    decided: life.clone(),
                    announced: life,
                    last_seq: view.last_seq,
                },
            );
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<HubCommand>,
        mut commits: mpsc::UnboundedReceiver<Vec<Committed>>,
        stop: CancellationToken,
    ) {
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
                else => break,
            }
        }
        tracing::debug!(workspace = %self.workspace, "hub stopped");
    }

    // ---- commands -----------------------------------------------------------------------

    fn on_command(&mut self, command: HubCommand) {
        match command {
            HubCommand::Register { conn, party, outbound, kick, reply } => {
                let registered = self.register(conn, party, outbound, kick);
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
                    let close = Outbound::Close { code: close_code::SUPERSEDED, reason: "logged out".into() };
                    self.send(conn, close);
                }
            }
            HubCommand::Open { contact, channel, reply } => self.open(contact, channel, reply),
            HubCommand::Typing { conn, conversation, active } => self.typing(conn, conversation, active),
            HubCommand::Presence { conn, status } => self.set_presence(conn, status),
            HubCommand::Settle { conn, conversation, transition, resolution } => {
                self.settle(conn, conversation, transition, resolution)
            }
        }
    }

    fn register(
        &mut self,
        conn: ConnId,
        party: Party,
        outbound: mpsc::Sender<Outbound>,
        kick: CancellationToken,
    ) -> Registered {
        match party {
            Party::Customer(contact) => {
                let id = contact.id;
                self.conns.insert(conn, Conn { who: Who::Customer(id), outbound, kick, token_hash: None });
                self.contact_conns.entry(id).or_default().push(conn);
                let conversations = self.contact_open.get(&id).map(|c| self.view(*c)).into_iter().flatten().collect();
                Registered { conversations, presence: Presence::Offline }
            }
            Party::Agent(view, token_hash) => {
                let id = view.id;
                self.conns.insert(conn, Conn { who: Who::Agent(id), outbound, kick, token_hash: Some(token_hash) });
                let entry = self.agents.entry(id).or_insert_with(|| AgentEntry {
                    view: view.clone(),
                    presence: Presence::Offline,
                    conns: Vec::new(),
                });
                entry.view = view;
                entry.conns.push(conn);
                if entry.presence == Presence::Offline {
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
                self.route_agent(id);
                Registered { conversations, presence }
            }
        }
    }

    fn unregister(&mut self, conn: ConnId) {
        let Some(entry) = self.conns.remove(&conn) else { return };
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
                        // Conversations stay with the agent: they are delivered on reconnect.
                        entry.presence = Presence::Offline;
                        self.route_agent(agent);
                    }
                }
            }
        }
    }

    fn open(
        &mut self,
        contact: ContactView,
        channel: ChannelKind,
        reply: oneshot::Sender<Result<ConversationView, ProtocolError>>,
    ) {
        if let Some(view) = self.contact_open.get(&contact.id).and_then(|c| self.view(*c)) {
            let _ = reply.send(Ok(view));
            return;
        }
        if let Some(request) = self.pending_by_contact.get(&contact.id) {
            self.pending_opens.get_mut(request).expect("pending open").waiters.push(reply);
            return;
        }
        let request = self.next_request;
        self.next_request += 1;
        self.pending_by_contact.insert(contact.id, request);
        self.journal.submit_from_hub(JournalOp::OpenConversation {
            workspace: self.workspace,
            contact: contact.id,
            channel,
            lifecycle: Lifecycle::open(now_ms(), false),
            request,
        });
        self.pending_opens.insert(request, PendingOpen { contact, waiters: vec![reply] });
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
        self.deliver_to_other_side(conversation, author, Outbound::Frame(frame));
    }

    fn set_presence(&mut self, conn: ConnId, status: Presence) {
        let Some(Who::Agent(agent)) = self.conns.get(&conn).map(|c| c.who) else { return };
        let Some(entry) = self.agents.get_mut(&agent) else { return };
        entry.presence = status;
        let conns = entry.conns.clone();
        for c in conns {
            self.send(c, Outbound::Frame(ServerFrame::Presence(PresenceFrame { status })));
        }
        self.route_agent(agent);
    }

    fn settle(
        &mut self,
        conn: ConnId,
        conversation: ConversationId,
        transition: Transition,
        resolution: Option<String>,
    ) {
        let Some(Who::Agent(agent)) = self.conns.get(&conn).map(|c| c.who) else { return };
        let refuse = |hub: &mut Hub, code, message: &str| {
            hub.send(conn, Outbound::Frame(error_frame(code, message, None)));
        };
        let Some(conv) = self.conversations.get(&conversation) else {
            return refuse(self, ErrorCode::NotFound, "no such open conversation");
        };
        if conv.decided.assignee != Some(agent) {
            return refuse(self, ErrorCode::Forbidden, "the conversation is not assigned to you");
        }
        let next = match conv.decided.apply(transition, now_ms()) {
            Ok(next) => next,
            Err(e) => return refuse(self, ErrorCode::Conflict, &e.to_string()),
        };
        let kind = if transition == Transition::Close { "conversation.closed" } else { "conversation.resolved" };
        let event = EventRecord {
            kind,
            actor_kind: "agent",
            actor_id: Some(agent.0),
            data: serde_json::json!({ "resolution": resolution }),
        };
        self.decide(conversation, next, resolution, event);
    }

    // ---- decisions ----------------------------------------------------------------------

    /// Records a decided lifecycle, tells the router what it frees, and writes it.
    fn decide(
        &mut self,
        conversation: ConversationId,
        next: Lifecycle,
        resolution: Option<String>,
        event: EventRecord,
    ) {
        let Some(conv) = self.conversations.get_mut(&conversation) else { return };
        conv.decided = next.clone();
        // Written before the router runs: an assignment the router makes next builds on
        // this lifecycle and must be committed after it.
        self.journal.submit_from_hub(JournalOp::Transition {
            workspace: self.workspace,
            conversation,
            lifecycle: next.clone(),
            resolution,
            event,
        });
        let made = self.router.handle(routing_event(conversation, &next), now_ms());
        self.apply_assignments(made);
    }

    /// Tells the router an agent's availability and carries out what it decides.
    fn route_agent(&mut self, agent: AgentId) {
        let Some(entry) = self.agents.get(&agent) else { return };
        let event = RoutingEvent::Agent {
            agent,
            available: entry.presence == Presence::Online,
            capacity: entry.view.max_concurrent,
        };
        let made = self.router.handle(event, now_ms());
        self.apply_assignments(made);
    }

    fn apply_assignments(&mut self, made: Vec<Assignment>) {
        let now = now_ms();
        for Assignment { conversation, agent } in made {
            let Some(conv) = self.conversations.get_mut(&conversation) else { continue };
            match conv.decided.apply(Transition::Assign(agent), now) {
                Ok(next) => {
                    conv.decided = next.clone();
                    let load = self.router.load(agent);
                    self.journal.submit_from_hub(JournalOp::Transition {
                        workspace: self.workspace,
                        conversation,
                        lifecycle: next,
                        resolution: None,
                        event: EventRecord {
                            kind: "conversation.assigned",
                            actor_kind: "system",
                            actor_id: None,
                            data: serde_json::json!({
                                "agent_id": agent,
                                "reason": "least loaded available agent",
                                "agent_load_after": load,
                            }),
                        },
                    });
                }
                Err(e) => {
                    tracing::error!(%conversation, error = %e, "router assigned a conversation that cannot be assigned")
                }
            }
        }
    }

    // ---- commits ------------------------------------------------------------------------

    fn on_committed(&mut self, committed: Committed) {
        match committed {
            Committed::Opened { request, conversation, contact, channel, lifecycle } => {
                let Some(pending) = self.pending_opens.remove(&request) else { return };
                self.pending_by_contact.remove(&contact);
                self.contact_open.insert(contact, conversation);
                self.conversations.insert(
                    conversation,
                    OpenConversation {
                        contact: pending.contact,
                        channel,
                        decided: lifecycle.clone(),
                        announced: lifecycle.clone(),
                        last_seq: 0,
                    },
                );
                let view = self.view(conversation).expect("just inserted");
                for waiter in pending.waiters {
                    let _ = waiter.send(Ok(view.clone()));
                }
                let frame = conversation_frame(ConversationChange::Opened, view);
                self.deliver_to_contact(contact, Outbound::Frame(frame));
                if lifecycle.state == ConversationState::Queued {
                    let queued_at = lifecycle.queued_at.unwrap_or(lifecycle.created_at);
                    let made = self.router.handle(RoutingEvent::Enqueued { conversation, queued_at }, now_ms());
                    self.apply_assignments(made);
                }
            }
            Committed::OpenFailed { request } => {
                if let Some(pending) = self.pending_opens.remove(&request) {
                    self.pending_by_contact.remove(&pending.contact.id);
                    for waiter in pending.waiters {
                        let _ = waiter
                            .send(Err(ProtocolError::new(ErrorCode::Internal, "could not open a conversation; retry")));
                    }
                }
            }
            Committed::Appended(stored) => self.on_appended(stored),
            Committed::Duplicate { origin, client_msg_id, conversation, seq, at } => {
                if let Some(origin) = origin {
                    let ack = Ack { client_msg_id, conversation_id: conversation, seq, at, duplicate: true };
                    self.send(origin, Outbound::Frame(ServerFrame::Ack(ack)));
                }
            }
            Committed::Rejected { origin, client_msg_id, error } => {
                if let Some(origin) = origin {
                    self.send(origin, Outbound::Frame(error_frame(error.code, &error.message, client_msg_id)));
                }
            }
            Committed::Transitioned { conversation, lifecycle } => self.on_transitioned(conversation, lifecycle),
            Committed::TransitionFailed { conversation } => {
                // Undo the decision: the database still holds the announced lifecycle.
                if let Some(conv) = self.conversations.get_mut(&conversation) {
                    conv.decided = conv.announced.clone();
                    let event = routing_event(conversation, &conv.announced);
                    let made = self.router.handle(event, now_ms());
                    self.apply_assignments(made);
                }
            }
            Committed::Read { conversation, reader, seq } => {
                let frame = ServerFrame::Read(ReadFrame { conversation_id: conversation, reader, seq });
                self.deliver_to_other_side(conversation, reader, Outbound::Frame(frame));
            }
        }
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
            self.send(origin, Outbound::Frame(ServerFrame::Ack(ack)));
        }
        let Some(conv) = self.conversations.get_mut(&m.conversation) else { return };
        conv.last_seq = conv.last_seq.max(stored.seq);
        let contact = conv.contact.id;
        let assignee = conv.announced.assignee;
        let reopen = m.author == AuthorKind::Customer && conv.decided.state == ConversationState::Resolved;
        let mut recipients: Vec<ConnId> = self.contact_conns.get(&contact).cloned().unwrap_or_default();
        if let Some(agent) = assignee.and_then(|a| self.agents.get(&a)) {
            recipients.extend(agent.conns.iter().copied());
        }
        for conn in recipients {
            if Some(conn) != m.origin {
                self.send(conn, message.clone());
            }
        }
        if reopen {
            let conversation = m.conversation;
            if let Some(next) =
                self.conversations.get(&conversation).and_then(|c| c.decided.apply(Transition::Reopen, now_ms()).ok())
            {
                let event = EventRecord {
                    kind: "conversation.reopened",
                    actor_kind: "customer",
                    actor_id: Some(contact.0),
                    data: serde_json::json!({}),
                };
                self.decide(conversation, next, None, event);
            }
        }
    }

    fn on_transitioned(&mut self, conversation: ConversationId, lifecycle: Lifecycle) {
        let Some(conv) = self.conversations.get_mut(&conversation) else { return };
        let before = std::mem::replace(&mut conv.announced, lifecycle.clone());
        let contact = conv.contact.id;
        let view = self.view(conversation).expect("present");
        let change = match (before.state, lifecycle.state) {
            (_, ConversationState::Closed) => ConversationChange::Closed,
            (_, ConversationState::Resolved) => ConversationChange::Resolved,
            (ConversationState::Resolved, ConversationState::Queued) => ConversationChange::Reopened,
            (_, ConversationState::Queued) => ConversationChange::Queued,
            (_, ConversationState::Assigned) => ConversationChange::Assigned,
            (_, ConversationState::Bot) => ConversationChange::Opened,
        };
        // The agent who lost it hears so; the agent who gained it hears so (and catches up);
        // an agent who keeps it hears of the change.
        if before.assignee != lifecycle.assignee {
            if let Some(old) = before.assignee {
                // Closing also takes the conversation from its agent: say "closed", which
                // is what happened, rather than "unassigned".
                let lost = if change == ConversationChange::Closed { change } else { ConversationChange::Unassigned };
                self.deliver_to_agent(old, Outbound::Frame(conversation_frame(lost, view.clone())));
            }
            if let Some(new) = lifecycle.assignee {
                self.deliver_to_agent(
                    new,
                    Outbound::Frame(conversation_frame(ConversationChange::Assigned, view.clone())),
                );
            }
        } else if let Some(agent) = lifecycle.assignee {
            self.deliver_to_agent(agent, Outbound::Frame(conversation_frame(change, view.clone())));
        }
        self.deliver_to_contact(contact, Outbound::Frame(conversation_frame(change, view)));
        if lifecycle.state == ConversationState::Closed {
            self.conversations.remove(&conversation);
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
            assignee: life
                .assignee
                .map(|id| AgentRef { id, name: self.agents.get(&id).map(|a| a.view.name.clone()).unwrap_or_default() }),
            last_seq: conv.last_seq,
            created_at: life.created_at,
            queued_at: life.queued_at,
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

/// What the router must be told about a conversation in this lifecycle.
fn routing_event(conversation: ConversationId, life: &Lifecycle) -> RoutingEvent {
    match (life.state, life.assignee) {
        (ConversationState::Queued, _) => {
            RoutingEvent::Enqueued { conversation, queued_at: life.queued_at.unwrap_or(life.created_at) }
        }
        (ConversationState::Assigned, Some(agent)) => RoutingEvent::Held { conversation, agent },
        _ => RoutingEvent::Released { conversation },
    }
}

fn conversation_frame(change: ConversationChange, conversation: ConversationView) -> ServerFrame {
    ServerFrame::Conversation(ConversationFrame { change, conversation })
}

/// An error frame.
pub fn error_frame(code: ErrorCode, message: &str, client_msg_id: Option<String>) -> ServerFrame {
    ServerFrame::Error(ErrorFrame { code, message: message.to_string(), client_msg_id })
}
