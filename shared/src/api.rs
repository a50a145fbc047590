//! Bodies of the HTTP API. Every error answer has the shape [`ApiErrorBody`].

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::frame::{AgentView, Skill};
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
