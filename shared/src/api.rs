//! Bodies of the HTTP API. Every error answer has the shape [`ApiErrorBody`].

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::frame::AgentView;
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
