//! Typed identifiers. Each is a transparent integer on the wire; the newtypes exist so
//! that a conversation id can never be passed where an agent id is expected.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A workspace (tenant): one shop. Every row in the relay belongs to exactly one.
    WorkspaceId
);
id_type!(
    /// An agent (a person answering customers), unique across the relay.
    AgentId
);
id_type!(
    /// A contact: one customer, however many channels they write from.
    ContactId
);
id_type!(
    /// A conversation between one contact and the workspace.
    ConversationId
);

/// The position of a message inside its conversation: 1 for the first message, then
/// consecutive. A client resumes by saying the last `Seq` it holds.
pub type Seq = u64;

/// Milliseconds since the Unix epoch, UTC. Every timestamp on the wire uses it.
pub type UnixMillis = i64;
