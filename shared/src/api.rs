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
