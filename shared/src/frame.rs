//! WebSocket frames. Every frame is one JSON text message whose `"type"` field names its
//! kind. The first frame a client sends must be [`Hello`]; the relay answers with
//! [`Welcome`] and then streams what the client missed.
//!
//! Unknown fields are ignored, so a newer client can talk to an older relay of the same
//! protocol version; an unknown `"type"` is refused with `bad_request`.

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::ids::{AgentId, ContactId, ConversationId, Seq, UnixMillis};

/// Gives a unit enum its wire name (`as_str`, the same as serde's) and a `FromStr` that
/// names the accepted values, for the database and the command line.
macro_rules! wire_names {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The name as stored and sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!(
                        concat!("unknown ", $what, " '{}' (expected one of: ", $($name, " ",)+ ")"),
                        other
                    )),
                }
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// Client → relay
// ---------------------------------------------------------------------------------------

/// A frame sent by a client (customer or agent) to the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Authenticate and resume. Must be the first frame, and only the first.
    Hello(Hello),
    /// Send a message into a conversation.
    Send(SendMessage),
    /// Start or stop the typing indicator (not stored).
    Typing(Typing),
    /// Mark a conversation read up to a sequence number (stored).
    Read(MarkRead),
    /// Agents only: set my presence.
    Presence(SetPresence),
    /// Agents only: mark a conversation resolved.
    Resolve(ResolveConversation),
    /// Agents only: close a conversation for good.
    Close(CloseConversation),
    /// Agents only: hand a conversation to another agent or to a group.
    Transfer(TransferConversation),
    /// Agents only: take a specific queued conversation.
    Pick(PickConversation),
    /// Customers only: leave a message for later (nobody is online, or they will not
    /// wait); it becomes a ticket.
    LeaveMessage(LeaveMessage),
    /// Customers only: rate a resolved or closed conversation (1 to 5, and a comment).
    Rate(RateConversation),
    /// Supervisors and admins: start or stop the live monitor (`monitor` and `alert`
    /// frames).
    Supervise(Supervise),
    /// Supervisors and admins: follow any open conversation read-only (its messages,
    /// notes included, arrive live), or stop.
    Observe(ObserveConversation),
    /// Supervisors and admins: become the conversation's agent, from its agent or from
    /// the queue, whatever their capacity.
    TakeOver(TakeOverConversation),
    /// Liveness check; answered with `pong`.
    Ping(Ping),
}

impl ClientFrame {
    /// The frame's `"type"` as it appears on the wire, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Hello(_) => "hello",
            ClientFrame::Send(_) => "send",
            ClientFrame::Typing(_) => "typing",
            ClientFrame::Read(_) => "read",
            ClientFrame::Presence(_) => "presence",
            ClientFrame::Resolve(_) => "resolve",
            ClientFrame::Close(_) => "close",
            ClientFrame::Transfer(_) => "transfer",
            ClientFrame::Pick(_) => "pick",
            ClientFrame::LeaveMessage(_) => "leave_message",
            ClientFrame::Rate(_) => "rate",
            ClientFrame::Supervise(_) => "supervise",
            ClientFrame::Observe(_) => "observe",
            ClientFrame::TakeOver(_) => "take_over",
            ClientFrame::Ping(_) => "ping",
        }
    }
    /// The conversation the frame names, when it names one; a refusal echoes it so a
    /// client with many conversations knows which one the error is about.
    pub fn conversation_id(&self) -> Option<ConversationId> {
        match self {
            ClientFrame::Send(f) => f.conversation_id,
            ClientFrame::Typing(f) => f.conversation_id,
            ClientFrame::Read(f) => f.conversation_id,
            ClientFrame::Rate(f) => f.conversation_id,
            ClientFrame::Resolve(f) => Some(f.conversation_id),
            ClientFrame::Close(f) => Some(f.conversation_id),
            ClientFrame::Transfer(f) => Some(f.conversation_id),
            ClientFrame::Pick(f) => Some(f.conversation_id),
            ClientFrame::Observe(f) => Some(f.conversation_id),
            ClientFrame::TakeOver(f) => Some(f.conversation_id),
            ClientFrame::Hello(_)
            | ClientFrame::Presence(_)
            | ClientFrame::LeaveMessage(_)
            | ClientFrame::Supervise(_)
            | ClientFrame::Ping(_) => None,
        }
    }
}

/// The first frame of every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks; must be [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Who the client is.
    pub auth: HelloAuth,
    /// The last sequence number the client holds, per conversation. The relay sends every
    /// message after it, in order, before any live message. A conversation not listed is
    /// sent from its beginning.
    #[serde(default)]
    pub resume: Vec<ResumePoint>,
}

/// Credentials in a [`Hello`]: a customer on `/ws/customer`, an agent on `/ws/agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HelloAuth {
    /// A customer, through the workspace's public widget key.
    Customer {
        /// The workspace's public widget key (`wk_...`).
        widget_key: String,
        /// The token from an earlier `welcome`, to continue as the same contact. Absent or
        /// unknown: a new contact is created and a new token issued.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_token: Option<String>,
        /// A display name the customer gave, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The skill group the customer chose (e.g. `presales`), for conversations opened
        /// on this connection; absent or unknown: the workspace's default group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// The shop's own id for a signed-in customer, so their conversations on every
        /// channel are one contact's. Needs `customer_signature`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_id: Option<String>,
        /// Hex HMAC-SHA256 of `customer_id` under the workspace's identity secret, made by
        /// the shop's backend (never in the page's own code).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_signature: Option<String>,
    },
    /// An agent, with the bearer token from `POST /api/v1/login`.
    Agent {
        /// The bearer token.
        token: String,
    },
}

/// Where a client stands in one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The last sequence number the client holds (0: none).
    pub after_seq: Seq,
}

/// How a message body is to be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// Plain text.
    #[default]
    Text,
    /// CommonMark; clients render it.
    Markdown,
}

impl BodyFormat {
    /// The format as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Text => "text",
            BodyFormat::Markdown => "markdown",
        }
    }

    /// Parses the stored form; unknown values read as plain text.
    pub fn from_stored(s: &str) -> Self {
        match s {
            "markdown" => BodyFormat::Markdown,
            _ => BodyFormat::Text,
        }
    }
}

/// A message to store and deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    /// The client's own id for this message, unique per author. Re-sending the same id
    /// stores nothing new and is acknowledged again with the original `seq`.
    pub client_msg_id: String,
    /// Required for agents. Customers omit it: they write into their open conversation,
    /// which the relay opens on their first message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// The text (may be empty when `attachments` carries the content).
    #[serde(default)]
    pub body: String,
    /// How to read `body`.
    #[serde(default)]
    pub format: BodyFormat,
    /// Agents only: a private note, shown to agents and never to the customer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Files uploaded beforehand (`POST /api/v1/conversations/{id}/attachments`), by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

/// A typing indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    /// Required for agents; customers omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// True while typing, false when stopped.
    pub active: bool,
}

/// A read receipt: the reader has seen everything up to `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRead {
    /// Required for agents; customers omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// The last sequence number read.
    pub seq: Seq,
}

/// An agent's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Takes new conversations.
    Online,
    /// Connected, but takes no new conversations.
    Away,
    /// Not connected.
    Offline,
}

/// Sets the sending agent's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPresence {
    /// `online` or `away` (`offline` is what disconnecting means).
    pub status: Presence,
}

/// Marks a conversation resolved; the customer writing again reopens it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolveConversation {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// An optional resolution code (e.g. `answered`, `refund_issued`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// Closes a conversation for good; the customer's next message opens a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseConversation {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// An optional resolution code, as with `resolve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// Hands a conversation on, with its whole history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferConversation {
    /// The conversation (one the sender holds).
    pub conversation_id: ConversationId,
    /// Who receives it.
    pub to: TransferTarget,
    /// A note for the receiver (agents only ever see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The receiver of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransferTarget {
    /// An agent, who must be online with room.
    Agent {
        /// The agent.
        agent_id: AgentId,
    },
    /// A skill group's queue (at its front), or any agent when `group` is absent.
    Group {
        /// The group's slug.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
}

/// A customer's rating of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateConversation {
    /// The conversation; absent: the customer's open one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// 1 (very unhappy) to 5 (very happy).
    pub score: u8,
    /// What they want to say about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A message left for later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveMessage {
    /// What the customer needs (the message body limits apply).
    pub body: String,
    /// How to reach them (phone or e-mail), if they gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_info: Option<String>,
}

/// Takes a queued conversation by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickConversation {
    /// The queued conversation.
    pub conversation_id: ConversationId,
}

/// Starts or stops the live monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervise {
    /// True to start (a `monitor` frame follows at once, then one whenever it changes).
    pub active: bool,
}

/// Starts or stops following a conversation read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveConversation {
    /// The open conversation.
    pub conversation_id: ConversationId,
    /// True to start (a `conversation` frame with change `observed` follows, then its
    /// history and live messages), false to stop.
    pub active: bool,
}

/// Takes a conversation over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeOverConversation {
    /// The open conversation, assigned or queued.
    pub conversation_id: ConversationId,
}

/// A liveness check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed in the `pong`.
    #[serde(default)]
    pub nonce: u64,
}

// ---------------------------------------------------------------------------------------
// Relay → client
// ---------------------------------------------------------------------------------------

/// A frame sent by the relay to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The answer to a good `hello`.
    Welcome(Welcome),
    /// A message the client sent is stored (durably) under `seq`.
    Ack(Ack),
    /// A stored message, live or caught up on resume.
    Message(MessageFrame),
    /// A conversation the client can see changed (opened, assigned, resolved, …).
    Conversation(ConversationFrame),
    /// Someone else in a conversation started or stopped typing.
    Typing(TypingFrame),
    /// Someone else in a conversation read up to a sequence number.
    Read(ReadFrame),
    /// The agent's presence as the relay now holds it.
    Presence(PresenceFrame),
    /// Customers: where their waiting conversation stands in the queue.
    Queue(QueueFrame),
    /// Agents: the waiting conversations of a queue they serve.
    QueueList(QueueListFrame),
    /// A ticket was made or changed: agents hear of tickets assigned to them, customers
    /// of the ticket their message became.
    Ticket(TicketFrame),
    /// Supervisors and admins who sent `supervise`: queues, agents and alerts as they
    /// stand, sent when they change (at most once a second).
    Monitor(MonitorFrame),
    /// Supervisors and admins: an alert fired or resolved.
    Alert(AlertFrame),
    /// A frame was refused. The connection stays open unless a close follows.
    Error(ErrorFrame),
    /// The answer to `ping`.
    Pong(Ping),
}

/// The relay's answer to a good `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the relay speaks on this connection.
    pub protocol: u32,
    /// Who the relay takes the client to be.
    pub session: Session,
    /// The limits this connection is held to.
    pub limits: ConnectionLimits,
}

/// The identity and starting state of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Session {
    /// A customer.
    Customer {
        /// Keep it (e.g. in localStorage) and send it in the next `hello` to continue as
        /// the same contact.
        customer_token: String,
        /// The contact the customer is.
        contact_id: ContactId,
        /// The customer's open conversation, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationView>,
    },
    /// An agent.
    Agent {
        /// The agent.
        agent: AgentView,
        /// The agent's presence after this hello.
        presence: Presence,
        /// The conversations assigned to the agent.
        conversations: Vec<ConversationView>,
    },
}

/// The limits a connection is held to, so that clients need not guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionLimits {
    /// Largest accepted frame, in bytes.
    pub max_frame_bytes: usize,
    /// Largest accepted message body, in bytes of UTF-8.
    pub max_body_bytes: usize,
    /// Sustained frames per second allowed on this connection.
    pub frames_per_second: u32,
    /// Frames allowed in a burst above the sustained rate.
    pub frame_burst: u32,
}

/// An agent as clients see one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    /// The agent's id.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Login e-mail.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Most conversations the agent holds at once.
    pub max_concurrent: u32,
    /// The skill groups the agent serves.
    #[serde(default)]
    pub skills: Vec<Skill>,
}

/// A skill: a group an agent serves, at a level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skill {
    /// The group's slug.
    pub group: String,
    /// Senior agents are preferred for VIP customers.
    #[serde(default)]
    pub level: SkillLevel,
}

/// An agent's level in a skill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillLevel {
    /// The default.
    #[default]
    Junior,
    /// Preferred for VIP customers.
    Senior,
}

/// What an agent may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Answers conversations.
    Agent,
    /// An agent who also watches queues and agents.
    Supervisor,
    /// Manages the workspace.
    Admin,
}

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// The bot is answering.
    Bot,
    /// Waiting for an agent.
    Queued,
    /// An agent holds it.
    Assigned,
    /// The agent marked it resolved; the customer writing again reopens it.
    Resolved,
    /// Finished for good.
    Closed,
}

/// The kind of channel a conversation arrived through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// The web chat widget.
    Web,
    /// The HTTP API (apps, mini-programs).
    App,
    /// A social platform's webhooks.
    Social,
}

/// A conversation as clients see one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    /// The conversation's id.
    pub id: ConversationId,
    /// Where it stands.
    pub state: ConversationState,
    /// The channel it arrived through.
    pub channel: ChannelKind,
    /// The customer.
    pub contact: ContactView,
    /// The agent holding it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<AgentRef>,
    /// The sequence number of its latest message (0: none yet).
    pub last_seq: Seq,
    /// When it was opened.
    pub created_at: UnixMillis,
    /// When it last entered the queue, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<UnixMillis>,
    /// The skill group it is routed to; absent: any agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Its place in queue order: lower is served first: 0 returned to the queue, 100 + the
    /// channel's priority (0 to 99) for VIPs, 200 + the channel's priority otherwise.
    #[serde(default)]
    pub priority: u16,
    /// What the bot found the conversation to be about (`order_status`, …), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

/// A contact as clients see one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    /// The contact's id.
    pub id: ContactId,
    /// Display name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Served first.
    #[serde(default)]
    pub vip: bool,
}

/// An agent named in a frame: enough to show who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRef {
    /// The agent's id.
    pub id: AgentId,
    /// Display name.
    pub name: String,
}

/// Acknowledges a `send`: the message is durable under `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The id the client gave the message.
    pub client_msg_id: String,
    /// The conversation it was stored in.
    pub conversation_id: ConversationId,
    /// Its sequence number in that conversation.
    pub seq: Seq,
    /// When it was stored.
    pub at: UnixMillis,
    /// True when this id was stored before: nothing new was stored now.
    #[serde(default)]
    pub duplicate: bool,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    /// The contact.
    Customer,
    /// An agent.
    Agent,
    /// The bot.
    Bot,
    /// The relay itself (e.g. "transferred to …").
    System,
}

/// The author of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// Customer, agent, bot or system.
    pub kind: AuthorKind,
    /// The contact id or agent id; absent for bot and system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// A display name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFrame {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Its position in the conversation.
    pub seq: Seq,
    /// Who wrote it.
    pub author: Author,
    /// The text.
    pub body: String,
    /// How to read `body`.
    pub format: BodyFormat,
    /// The author's client id for it, so an author's other devices can match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// When it was stored.
    pub at: UnixMillis,
    /// A private note between agents; customers never receive these.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Files attached to the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
    /// The channel a customer's message came in by, when not the built-in widget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<MessageVia>,
    /// Personal data in `body` (phone, ID-card, bank-card numbers, e-mails) is masked for
    /// this reader (`privacy.masked_roles`); `POST /api/v1/conversations/{id}/reveal`
    /// shows it, and is audited.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
}

/// The channel a customer's message came in by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageVia {
    /// Its kind.
    pub channel: ChannelKind,
    /// Its name.
    pub name: String,
    /// Social: comment, direct message or live chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::api::SocialKind>,
}

/// A file attached to a message. Fetch it with `GET /api/v1/attachments/{id}` and the
/// same credentials that can see the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// Its id.
    pub id: String,
    /// The file name as uploaded.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type, as detected from the content.
    pub content_type: String,
}

/// What happened to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationChange {
    /// It was opened (customers see this for their own new conversation).
    Opened,
    /// It entered the queue.
    Queued,
    /// An agent took it (agents: it is now yours).
    Assigned,
    /// It left the receiving agent (transferred or re-queued).
    Unassigned,
    /// It was resolved.
    Resolved,
    /// It was reopened by the customer.
    Reopened,
    /// It was closed.
    Closed,
    /// Supervisors: it is now followed read-only (its history follows).
    Observed,
}

/// A conversation changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationFrame {
    /// What happened.
    pub change: ConversationChange,
    /// The conversation as it now stands.
    pub conversation: ConversationView,
    /// For the receiving agent of a transfer: who sent it and their note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferInfo>,
}

/// Who handed a conversation on, and what they said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferInfo {
    /// The sending agent; absent when the relay moved it (re-routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<AgentRef>,
    /// The sender's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What happened to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketChange {
    /// It was made.
    Created,
    /// It was given to the receiving agent.
    Assigned,
    /// Its status, priority or subject changed.
    Updated,
}

/// A ticket changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFrame {
    /// What happened.
    pub change: TicketChange,
    /// The ticket as it now stands.
    pub ticket: TicketView,
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Waiting for work.
    Open,
    /// Waiting for the customer or someone else.
    Pending,
    /// Done; may be reopened.
    Solved,
    /// Finished for good.
    Closed,
}

/// How urgent a ticket is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketPriority {
    /// Whenever there is time.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Soon.
    High,
    /// Now.
    Urgent,
}

/// A ticket as agents see one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketView {
    /// Its id.
    pub id: i64,
    /// One line.
    pub subject: String,
    /// What is needed.
    pub description: String,
    /// Where it stands.
    pub status: TicketStatus,
    /// How urgent.
    pub priority: TicketPriority,
    /// Who works on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<AgentRef>,
    /// The skill group it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<ContactId>,
    /// The conversation it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// Who made it: `customer`, `agent` or `system`.
    pub created_by: String,
    /// When.
    pub created_at: UnixMillis,
    /// When it last changed.
    pub updated_at: UnixMillis,
}

/// A customer's place in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueFrame {
    /// The waiting conversation.
    pub conversation_id: ConversationId,
    /// 1 for first in line.
    pub position: u32,
    /// Expected wait from recent handle times; absent until there is history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_wait_secs: Option<u32>,
    /// Agents online who serve this queue; 0 means nobody is there now (the customer may
    /// leave a message, which is kept).
    pub agents_online: u32,
}

/// The head of a queue, for agents who serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueListFrame {
    /// The queue's group; absent: the any-agent queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// How many wait in it.
    pub total: u32,
    /// The first of them (at most 50), in line order.
    pub conversations: Vec<ConversationView>,
}

/// Someone else is typing, or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingFrame {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Who is typing: customer or agent.
    pub author: AuthorKind,
    /// True while typing.
    pub active: bool,
}

/// Someone else read up to a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFrame {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Who read: customer or agent.
    pub reader: AuthorKind,
    /// The last sequence number they read.
    pub seq: Seq,
}

/// The agent's presence as the relay holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceFrame {
    /// The presence.
    pub status: Presence,
}

/// A refused frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The stable code.
    pub code: ErrorCode,
    /// What was wrong, for people.
    pub message: String,
    /// The `client_msg_id` of the refused `send`, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// The conversation the refused frame named, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
}

/// WebSocket close codes the relay uses, beyond the standard ones.
pub mod close_code {
    /// The relay is shutting down (standard "going away").
    pub const GOING_AWAY: u16 = 1001;
    /// A frame exceeded `max_frame_bytes` (standard "message too big").
    pub const TOO_LARGE: u16 = 1009;
    /// The relay failed (e.g. its database did not answer); reconnect later.
    pub const INTERNAL: u16 = 1011;
    /// The first frame was not a valid `hello`, or none came in time.
    pub const BAD_HELLO: u16 = 4000;
    /// The credentials in `hello` were refused.
    pub const UNAUTHORIZED: u16 = 4001;
    /// The page the widget runs on is not an origin the workspace allows.
    pub const FORBIDDEN: u16 = 4003;
    /// The client kept exceeding the frame rate.
    pub const RATE_LIMITED: u16 = 4029;
    /// The client read too slowly and its outbound queue filled; resume to continue.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The session's credentials were revoked (the agent logged out).
    pub const SUPERSEDED: u16 = 4009;
}

wire_names!(Role, "role", { Agent => "agent", Supervisor => "supervisor", Admin => "admin" });
wire_names!(ConversationState, "conversation state", { Bot => "bot", Queued => "queued", Assigned => "assigned", Resolved => "resolved", Closed => "closed" });
wire_names!(ChannelKind, "channel kind", { Web => "web", App => "app", Social => "social" });
wire_names!(SkillLevel, "skill level", { Junior => "junior", Senior => "senior" });
wire_names!(TicketStatus, "ticket status", { Open => "open", Pending => "pending", Solved => "solved", Closed => "closed" });
wire_names!(TicketPriority, "ticket priority", { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" });
wire_names!(AuthorKind, "author kind", { Customer => "customer", Agent => "agent", Bot => "bot", System => "system" });

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored and CLI names must be the wire names, and parse back.
    macro_rules! check_names {
        ($($value:expr),+ $(,)?) => {$(
            let name = $value.as_str();
            assert_eq!(serde_json::to_string(&$value).unwrap(), format!("\"{name}\""));
            assert_eq!(name.parse(), Ok($value));
        )+};
    }

    #[test]
    fn wire_names_match_serde() {
        use ConversationState::*;
        check_names!(Role::Agent, Role::Supervisor, Role::Admin);
        check_names!(SkillLevel::Junior, SkillLevel::Senior);
        check_names!(Bot, Queued, Assigned, Resolved, Closed);
        check_names!(ChannelKind::Web, ChannelKind::App, ChannelKind::Social);
        check_names!(AuthorKind::Customer, AuthorKind::Agent, AuthorKind::Bot, AuthorKind::System);
        assert!("boss".parse::<Role>().unwrap_err().contains("boss"));
    }

    #[test]
    fn client_frame_types_are_all_listed() {
        let samples = [
            r#"{"type":"hello","protocol":1,"auth":{"kind":"agent","token":"t"}}"#,
            r#"{"type":"send","client_msg_id":"c","body":"b"}"#,
            r#"{"type":"typing","active":true}"#,
            r#"{"type":"read","seq":1}"#,
            r#"{"type":"presence","status":"online"}"#,
            r#"{"type":"resolve","conversation_id":1}"#,
            r#"{"type":"close","conversation_id":1}"#,
            r#"{"type":"transfer","conversation_id":1,"to":{"kind":"group"}}"#,
            r#"{"type":"pick","conversation_id":1}"#,
            r#"{"type":"leave_message","body":"b"}"#,
            r#"{"type":"rate","score":5}"#,
            r#"{"type":"supervise","active":true}"#,
            r#"{"type":"observe","conversation_id":1,"active":true}"#,
            r#"{"type":"take_over","conversation_id":1}"#,
            r#"{"type":"ping"}"#,
        ];
        let kinds: Vec<&str> = samples.iter().map(|s| serde_json::from_str::<ClientFrame>(s).unwrap().kind()).collect();
        assert_eq!(kinds, crate::limits::CLIENT_FRAME_TYPES);
    }
}

/// The live monitor: every queue and agent of the workspace, and the alerts that are on.
/// Ages are computed by the client from `at` (the relay's clock) and the timestamps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorFrame {
    /// The relay's time when the frame was made.
    pub at: UnixMillis,
    /// A customer waiting this long raises an alert: the queue's SLA limit (a client
    /// colours a queue by its longest wait against it).
    pub wait_alert_ms: i64,
    /// Every group (the any-agent queue first, when someone waits in it).
    pub groups: Vec<GroupMonitor>,
    /// Every agent, online first, then by name.
    pub agents: Vec<AgentMonitor>,
    /// The alerts that are on, oldest first.
    pub alerts: Vec<AlertView>,
    /// Conversations the bot is answering, longest with it first; the relay lists at most
    /// 100 (`with_bot_total` counts them all).
    #[serde(default)]
    pub with_bot: Vec<BotConversationMonitor>,
    /// How many conversations the bot is answering in all (`with_bot` may list fewer).
    #[serde(default)]
    pub with_bot_total: u32,
}

/// A conversation the bot is answering, in the monitor: a supervisor may observe it or take
/// it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotConversationMonitor {
    /// The conversation.
    pub id: ConversationId,
    /// Its customer (fields of this object on the wire).
    #[serde(flatten)]
    pub customer: MonitoredCustomer,
    /// The group it would go to if handed over; absent: any agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// What the bot found it to be about, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// When it was opened (the bot has had it since).
    pub since: UnixMillis,
}

/// One queue in the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMonitor {
    /// The group's slug; absent: the any-agent queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Conversations waiting.
    pub waiting: u32,
    /// When the longest-waiting one entered the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_queued_at: Option<UnixMillis>,
    /// Agents online with the group's skill.
    pub agents_online: u32,
    /// Their capacity, in total.
    pub capacity: u32,
}

/// One agent in the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMonitor {
    /// The agent.
    pub agent: AgentRef,
    /// Their role.
    pub role: Role,
    /// Their presence.
    pub presence: Presence,
    /// Conversations they hold.
    pub load: u32,
    /// The most they take.
    pub capacity: u32,
    /// When they last replied to a customer (since the relay started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply_at: Option<UnixMillis>,
    /// The conversations they hold.
    pub conversations: Vec<MonitoredConversation>,
}

/// The customer of a conversation in the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoredCustomer {
    /// The customer.
    pub contact_id: ContactId,
    /// Their name, when they gave one (a client shows its own label otherwise, as for a
    /// conversation it holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// A VIP customer.
    pub vip: bool,
}

/// A conversation an agent holds, in the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoredConversation {
    /// The conversation.
    pub id: ConversationId,
    /// Its customer (fields of this object on the wire).
    #[serde(flatten)]
    pub customer: MonitoredCustomer,
    /// Since when the customer's latest message waits for a reply, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_reply_since: Option<UnixMillis>,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A customer has waited in a queue longer than the limit.
    LongWait,
    /// A group has no agent online during business hours.
    NoAgentOnline,
    /// The average of the latest ratings fell below the threshold.
    CsatLow,
    /// Bad ratings (1 or 2) rose sharply among the latest ones.
    BadRatingsRising,
    /// An agent has not answered a customer in a conversation they hold for too long.
    AgentNotReplying,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    /// Stable while the alert is on: its kind and subject (`long_wait:42`).
    pub id: String,
    /// What it is about.
    pub kind: AlertKind,
    /// In words, for people.
    pub message: String,
    /// When it fired.
    pub since: UnixMillis,
    /// The conversation it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// The group it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The agent it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
}

/// Whether an alert went on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertChange {
    /// Its condition began.
    Fired,
    /// Its condition cleared.
    Resolved,
}

/// An alert fired or resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFrame {
    /// On or off.
    pub change: AlertChange,
    /// The alert.
    pub alert: AlertView,
    /// When it changed (the relay's clock).
    pub at: UnixMillis,
}
