//! The relay's one error type.
//!
//! Errors a client caused carry a [`ProtocolError`] (code + message) and reach the client
//! as an error frame or a JSON error; everything else is the relay's own failure, logged in
//! full and shown to clients only as `internal`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kefu_proto::api::{ApiError, ApiErrorBody};
use kefu_proto::{ErrorCode, ProtocolError};

/// Everything that can go wrong in the relay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client asked for something it may not have, or sent something invalid.
    #[error(transparent)]
    Refused(#[from] ProtocolError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The journal's own connection to the database failed.
    #[error("database (journal): {0}")]
    Journal(#[from] rusqlite::Error),
    /// A migration failed at start.
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A file or socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A stored value or file did not decrypt: its key is missing from the keyring, or it
    /// was damaged or moved.
    #[error("encryption: {0}")]
    Encryption(String),
    /// An internal invariant broke (a task stopped, a channel closed).
    #[error("internal: {0}")]
    Internal(String),
}

/// The relay's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A refusal with the given code.
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Refused(ProtocolError::new(code, message))
    }

    /// What a client is told: the refusal itself, or a bare `internal` for the relay's own
    /// failures (whose details belong in the log, not on the wire).
    pub fn to_client(&self) -> ProtocolError {
        match self {
            Error::Refused(e) => e.clone(),
            _ => ProtocolError::new(ErrorCode::Internal, "internal error; retry later"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if !matches!(self, Error::Refused(_)) {
            tracing::error!(error = %self, "request failed");
        }
        let e = self.to_client();
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ApiErrorBody { error: ApiError { code: e.code, message: e.message } };
        (status, axum::Json(body)).into_response()
    }
}
