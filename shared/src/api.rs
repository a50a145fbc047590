//! Bodies of the HTTP API. Every error answer has the shape [`ApiErrorBody`].

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::frame::{AgentView, Presence, Skill};
use crate::ids::UnixMillis;

/// `POST /api/v1/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    /// The agent's e-mail.
    pub email: String,
    /// The agent's password.
    pub password: String,
    /// The workspace slug; needed only when the e-mail exists in several workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// The answer to a successful login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The bearer token: `Authorization: Bearer <token>` on HTTP, `auth.token` in `hello`.
    pub token: String,
    /// When the token stops working.
    pub expires_at: UnixMillis,
    /// Who logged in.
    pub agent: AgentView,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` when the relay can serve.
    pub status: String,
    /// The relay's version.
    pub version: String,
    /// `ok` when the database answered a query just now.
    pub database: String,
}

/// The body of every HTTP error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// The error.
    pub error: ApiError,
}

/// An HTTP error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// What was wrong, for people.
    pub message: String,
}

/// A skill group, as `GET /api/v1/groups` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    /// Its id.
    pub id: i64,
    /// Short unique name (`presales`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Where its conversations escalate after waiting `escalate_after_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// How long a conversation may wait here before escalating; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after_secs: Option<u32>,
    /// With no fallback, escalate to any online agent.
    #[serde(default)]
    pub widen: bool,
    /// New conversations with no chosen group go here.
    #[serde(default)]
    pub is_default: bool,
}

/// `POST /api/v1/groups`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGroup {
    /// Short unique name: a-z, 0-9, `-`, `_`.
    pub slug: String,
    /// Display name (defaults to the slug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The fallback group's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Seconds before escalating (default 120 when a fallback or widen is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after_secs: Option<u32>,
    /// Escalate to any online agent.
    #[serde(default)]
    pub widen: bool,
    /// Make it the default group.
    #[serde(default)]
    pub is_default: bool,
}

/// `PATCH /api/v1/agents/{id}`: what to change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPatch {
    /// New capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// New skills (replacing the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<Skill>>,
    /// Set the agent's presence while they are connected (`online` or `away`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Presence>,
}

/// `PATCH /api/v1/contacts/{id}`: what to change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPatch {
    /// Served first, by senior agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<bool>,
}

/// `GET /api/v1/conversations/{id}/routing`: every routing decision, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingHistory {
    /// The conversation.
    pub conversation_id: crate::ConversationId,
    /// The decisions.
    pub decisions: Vec<RoutingDecisionView>,
}

/// One routing decision and its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingDecisionView {
    /// When.
    pub at: UnixMillis,
    /// What: `routing.assigned`, `routing.queued`, `routing.returned`, `routing.escalated`.
    pub kind: String,
    /// One sentence saying why.
    pub explanation: String,
    /// The details: rule, candidates considered with their load, group, …
    pub details: serde_json::Value,
}

/// `GET /api/v1/events`: the event log (audit trail), oldest first after a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// Its id (the cursor for `after`).
    pub id: i64,
    /// When.
    pub at: UnixMillis,
    /// What: `alert.fired`, `supervisor.observed`, `routing.assigned`, `agent.changed`, …
    pub kind: String,
    /// Who: `agent`, `customer`, `system`, …
    pub actor_kind: String,
    /// Which one, when a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<i64>,
    /// The conversation it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<crate::ConversationId>,
    /// The details.
    pub data: serde_json::Value,
    /// Where it came from: the client's address, for what arrived over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// Who a canned reply is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CannedScope {
    /// Every agent of the workspace.
    Workspace,
    /// Only the agent who made it.
    Personal,
}

/// A canned reply: text an agent inserts by shortcut or search. Variables such as
/// `{customer.name}` and `{agent.name}` are expanded by the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CannedReply {
    /// Its id.
    pub id: i64,
    /// Typed as `/shortcut` in the composer.
    pub shortcut: String,
    /// What it is about.
    pub title: String,
    /// The text.
    pub body: String,
    /// Shared or personal.
    pub scope: CannedScope,
}

/// `POST /api/v1/canned`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCannedReply {
    /// Typed as `/shortcut`: 1 to 32 of a-z, 0-9, `-`, `_`.
    pub shortcut: String,
    /// What it is about.
    pub title: String,
    /// The text (at most the message body limit).
    pub body: String,
    /// Shared (supervisors and admins) or personal (anyone); personal by default.
    #[serde(default = "personal")]
    pub scope: CannedScope,
}

fn personal() -> CannedScope {
    CannedScope::Personal
}

/// `GET /api/v1/conversations/{id}/messages`: a page of history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesPage {
    /// The messages, in sequence order.
    pub messages: Vec<crate::frame::MessageFrame>,
    /// Whether there are more in the direction asked.
    pub more: bool,
}

/// `GET /api/v1/contacts/{id}`: what an agent sees of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactDetails {
    /// The contact.
    pub id: crate::ContactId,
    /// Display name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Served first.
    pub vip: bool,
    /// The shop's own id for the customer, which links their channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Where the contact is known: channel kind and the id there.
    pub channels: Vec<ContactChannel>,
    /// Their conversations on every channel, newest first (at most 50).
    pub conversations: Vec<ConversationSummary>,
}

/// A channel identity of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactChannel {
    /// The channel kind.
    pub kind: crate::frame::ChannelKind,
    /// The contact's id on it.
    pub external_id: String,
}

/// One conversation in a contact's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// The conversation.
    pub id: crate::ConversationId,
    /// Its channel.
    pub channel: crate::frame::ChannelKind,
    /// Where it stands.
    pub state: crate::frame::ConversationState,
    /// When it was opened.
    pub created_at: UnixMillis,
    /// When it was resolved, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<UnixMillis>,
    /// The resolution code, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// The agent who held it last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Messages in it.
    pub messages: u64,
}

/// A knowledge-base article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    /// Its id.
    pub id: i64,
    /// A stable name for imports and links (e.g. `return-policy-zh`).
    pub slug: String,
    /// The title.
    pub title: String,
    /// The text, in Markdown.
    pub body: String,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The intents it answers (e.g. `return_policy`).
    #[serde(default)]
    pub intents: Vec<String>,
    /// Its language (`zh`, `en`, …).
    pub language: String,
    /// When it last changed.
    pub updated_at: UnixMillis,
}

/// An article to create or replace (`POST /api/v1/kb/articles`, `PUT .../{id}`,
/// `kefu-relay kb import`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewArticle {
    /// A stable name; made from the title when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// The title.
    pub title: String,
    /// The text, in Markdown.
    pub body: String,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The intents it answers.
    #[serde(default)]
    pub intents: Vec<String>,
    /// Its language (default `zh`).
    #[serde(default = "default_language")]
    pub language: String,
}

fn default_language() -> String {
    "zh".into()
}

/// One result of `GET /api/v1/kb/search?q=…`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The article.
    pub id: i64,
    /// Its slug.
    pub slug: String,
    /// Its title.
    pub title: String,
    /// The line of the body that best matches, as plain text.
    pub snippet: String,
    /// Relevance: BM25 scaled to the best hit, plus the weight of the intents the query
    /// shows that the article answers. Higher is better; comparable within one search.
    pub score: f32,
    /// Its language.
    pub language: String,
}

/// `POST /api/v1/tickets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTicket {
    /// One line.
    pub subject: String,
    /// What is needed.
    pub description: String,
    /// How urgent (default normal).
    #[serde(default)]
    pub priority: crate::frame::TicketPriority,
    /// The conversation it comes from (its contact is taken from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<crate::ConversationId>,
    /// Who works on it; absent: assigned automatically within the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_id: Option<crate::AgentId>,
    /// The group, by slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `PATCH /api/v1/tickets/{id}`: what to change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketPatch {
    /// New status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::frame::TicketStatus>,
    /// New priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<crate::frame::TicketPriority>,
    /// New assignee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_id: Option<crate::AgentId>,
    /// New subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// `POST /api/v1/tickets/{id}/notes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTicketNote {
    /// The note.
    pub body: String,
}

/// `GET /api/v1/tickets/{id}`: a ticket with its notes and its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketDetails {
    /// The ticket.
    pub ticket: crate::frame::TicketView,
    /// Notes, oldest first.
    pub notes: Vec<TicketNote>,
    /// Every change, oldest first (the audit trail).
    pub history: Vec<TicketEvent>,
}

/// A note on a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketNote {
    /// Who wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The text.
    pub body: String,
    /// When.
    pub at: UnixMillis,
}

/// A change in a ticket's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketEvent {
    /// When.
    pub at: UnixMillis,
    /// What (`ticket.created`, `ticket.updated`, `ticket.note`).
    pub kind: String,
    /// Who: `agent`, `customer` or `system`.
    pub actor_kind: String,
    /// The agent's or contact's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<i64>,
    /// What changed.
    pub data: serde_json::Value,
}

// ---- channels ------------------------------------------------------------------------------

/// What a social platform calls a message, in our terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocialKind {
    /// A public comment (under a post or a product).
    Comment,
    /// A direct (private) message.
    Dm,
    /// A message in a live stream's chat.
    Live,
}

impl SocialKind {
    /// The kind as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            SocialKind::Comment => "comment",
            SocialKind::Dm => "dm",
            SocialKind::Live => "live",
        }
    }
}

impl std::str::FromStr for SocialKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "comment" => Ok(SocialKind::Comment),
            "dm" => Ok(SocialKind::Dm),
            "live" => Ok(SocialKind::Live),
            other => Err(format!("unknown social kind '{other}' (comment, dm, live)")),
        }
    }
}

fn dm() -> SocialKind {
    SocialKind::Dm
}

/// How a social channel reads a platform's webhook JSON: dotted field paths
/// (`sender.id`, `entry.0.text`) into the posted document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocialMapping {
    /// The platform's user id (required in every event).
    pub user_id: String,
    /// The user's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The message text (required in every event).
    pub text: String,
    /// What kind of message it is, as the platform says it; read through `kinds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The platform's id of the event: a re-delivered event is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The platform's kind values and what they mean (`{"direct_message": "dm"}`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub kinds: std::collections::BTreeMap<String, SocialKind>,
    /// The kind when the event names none, or one not in `kinds`.
    #[serde(default = "dm")]
    pub default_kind: SocialKind,
}

/// A channel, as `GET /api/v1/channels` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelView {
    /// Its id: the `{channel_id}` of its URLs.
    pub id: i64,
    /// Web, app or social.
    pub kind: crate::frame::ChannelKind,
    /// A name unique in the workspace.
    pub name: String,
    /// The skill group its new conversations go to; absent: the workspace's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Queue priority of its new conversations (lower first); absent: the kind's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// Web: the widget key pages embed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_key: Option<String>,
    /// App and social: the shared secret (shown to admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// App and social: where replies are pushed; absent: fetched with `GET .../messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Social: how the platform's JSON is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<SocialMapping>,
    /// Deliveries waiting to be pushed, and dead-lettered ones.
    #[serde(default)]
    pub outbox: OutboxCounts,
    /// When it was added.
    pub created_at: UnixMillis,
    /// Disabled channels refuse inbound messages and push nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// How many of a channel's deliveries are in each state that needs attention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxCounts {
    /// Waiting for their (next) attempt.
    pub pending: u64,
    /// Given up after the last attempt.
    pub dead: u64,
}

/// `POST /api/v1/channels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// Web, app or social.
    pub kind: crate::frame::ChannelKind,
    /// A name unique in the workspace.
    pub name: String,
    /// The skill group for its new conversations, by slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Queue priority of its new conversations, 0 to 99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// App and social: an `http://` or `https://` URL replies are pushed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Social: required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<SocialMapping>,
}

/// `PATCH /api/v1/channels/{id}`: only the fields given change; `null` clears.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    /// New group (`null`: the workspace's default).
    #[serde(default, with = "double_option", skip_serializing_if = "Option::is_none")]
    pub group: Option<Option<String>>,
    /// New priority (`null`: the kind's default).
    #[serde(default, with = "double_option", skip_serializing_if = "Option::is_none")]
    pub priority: Option<Option<u16>>,
    /// New webhook URL (`null`: replies are only fetched).
    #[serde(default, with = "double_option", skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<Option<String>>,
    /// New mapping (social).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<SocialMapping>,
    /// Disable or enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Issue a new secret (the old one stops working at once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotate_secret: bool,
}

/// Serde for `Option<Option<T>>`: absent → `None`, `null` → `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(value: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// `POST /api/v1/channels/{id}/messages` (app channels): a customer's message, sent by the
/// shop's backend with the channel's secret. Retries carry the same `Idempotency-Key`
/// header and are stored once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundMessage {
    /// The shop's own id for the customer: the same id on every channel is one contact.
    pub customer_id: String,
    /// The customer's display name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The text.
    pub body: String,
    /// Plain text or Markdown.
    #[serde(default)]
    pub format: crate::frame::BodyFormat,
}

/// The answer to an inbound message: where it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundReceipt {
    /// The contact it was filed under.
    pub contact_id: crate::ContactId,
    /// The conversation.
    pub conversation_id: crate::ConversationId,
    /// Its position there.
    pub seq: crate::Seq,
    /// True when this repeats an earlier request (same idempotency key or event id).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// A reply leaving through a channel: the body of a webhook push, and an item of
/// `GET /api/v1/channels/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The delivery's id: unique, increasing per channel; receivers de-duplicate by it and
    /// fetch with `after` it.
    pub id: i64,
    /// The channel.
    pub channel_id: i64,
    /// The customer it is for: the shop's customer id (app) or the platform's user id
    /// (social).
    pub customer_id: String,
    /// The conversation.
    pub conversation_id: crate::ConversationId,
    /// The message's position in it.
    pub seq: crate::Seq,
    /// Who wrote it (agent or bot).
    pub author: crate::frame::Author,
    /// The text.
    pub body: String,
    /// How to read it.
    pub format: crate::frame::BodyFormat,
    /// Files attached; fetch with the customer's credentials through the widget, or show
    /// their names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::frame::AttachmentRef>,
    /// When it was stored.
    pub at: UnixMillis,
    /// Social: how to answer (as a comment, a direct message or in the live chat) and to
    /// which platform event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyTo>,
}

/// What a social reply answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    /// The kind of the customer's latest message.
    pub kind: SocialKind,
    /// The platform's id of that message, when the mapping reads one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// `GET /api/v1/channels/{id}/messages?after=ID&limit=N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundPage {
    /// Replies after the cursor, oldest first.
    pub messages: Vec<OutboundMessage>,
    /// The cursor to pass as `after` next time.
    pub next_after: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its (next) attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after the last attempt (dead-lettered); can be retried by hand.
    Dead,
    /// Kept for fetching (the channel has no webhook).
    Stored,
}

impl DeliveryState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
            DeliveryState::Stored => "stored",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "dead" => Ok(DeliveryState::Dead),
            "stored" => Ok(DeliveryState::Stored),
            other => Err(format!("unknown delivery state '{other}'")),
        }
    }
}

/// `GET /api/v1/channels/{id}/deliveries`: one push of a reply to the channel's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    /// The delivery's id (the `id` of the pushed message).
    pub id: i64,
    /// The conversation.
    pub conversation_id: crate::ConversationId,
    /// The message's position in it.
    pub seq: crate::Seq,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending).
    pub next_attempt_at: UnixMillis,
    /// What the last failed attempt got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the reply was stored.
    pub created_at: UnixMillis,
    /// When the receiver acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<UnixMillis>,
}

/// `POST /api/v1/contacts/{id}/merge`: fold another contact into this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactMerge {
    /// The contact that disappears into this one.
    pub from: crate::ContactId,
}

/// `POST /api/v1/conversations/{id}/reveal`: the masked messages of a conversation as
/// written (the reveal is recorded in the event log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedMessages {
    /// The conversation.
    pub conversation_id: crate::ConversationId,
    /// The messages whose bodies a masked reader sees masked, as written.
    pub messages: Vec<RevealedMessage>,
}

/// One message as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedMessage {
    /// Its sequence number.
    pub seq: crate::Seq,
    /// Its body, unmasked.
    pub body: String,
}
