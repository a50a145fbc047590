//! # kefu-proto — the wire protocol of kefu
//!
//! Everything the relay and its clients (the `kefu` workstation, the web widget, tests)
//! say to each other, as serde types, plus their validation. This crate does no I/O and
//! knows nothing of tokio, sockets or terminals: it is the contract, and
//! `docs/protocol.md` is its prose twin.
//!
//! ## Layout
//! - [`ids`]: typed identifiers and timestamps shared by every frame.
//! - [`frame`]: WebSocket frames, [`ClientFrame`] (client → relay) and [`ServerFrame`]
//!   (relay → client), JSON text frames tagged by `"type"`.
//! - [`api`]: bodies of the HTTP API (`/api/v1/...`, `/healthz`).
//! - [`error`]: the stable error codes ([`ErrorCode`]) and the protocol error type.
//! - [`limits`]: the documented limits and the validation every inbound frame passes.
//! - [`report`]: the service metrics of a range, as the reports API serves them.

pub mod api;
pub mod error;
pub mod frame;
pub mod ids;
pub mod limits;
pub mod report;

pub use error::{ErrorCode, ProtocolError};
pub use frame::{ClientFrame, ServerFrame};
pub use ids::{AgentId, ContactId, ConversationId, Seq, UnixMillis, WorkspaceId};

/// The protocol version this crate speaks. A client's `hello` names the version it
/// speaks; the relay refuses versions it does not know with `bad_request`.
pub const PROTOCOL_VERSION: u32 = 1;
