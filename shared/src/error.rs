//! Stable error codes and the protocol error type.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code. Clients branch on the code; the message that
/// travels with it is for people and may change between releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request or frame is malformed or violates the protocol.
    BadRequest,
    /// Missing, wrong, expired or revoked credentials.
    Unauthorized,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    /// The thing named does not exist (or is not visible to the caller).
    NotFound,
    /// A frame, body or upload exceeds a documented limit.
    TooLarge,
    /// Too many requests or frames; slow down and retry.
    RateLimited,
    /// The request conflicts with the current state (e.g. the conversation is closed).
    Conflict,
    /// The relay failed; the request may be retried. Details are in the relay's log.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status the API answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Conflict => 409,
            ErrorCode::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an inbound frame or request was refused: a code for the client and a message
/// naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// A human-readable explanation naming the offending field or limit.
    pub message: String,
}

impl ProtocolError {
    /// An error with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError { code, message: message.into() }
    }

    /// A `bad_request` error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// A `too_large` error.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }
}
