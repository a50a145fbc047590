//! Operations behind the administrative CLI commands (`agent add`, `agent list`,
//! `workspace show`). They work on the database directly and may run while the relay
//! serves: SQLite serialises the writes.

use kefu_proto::AgentId;
use kefu_proto::frame::Role;

use crate::auth;
use crate::error::Result;
use crate::store::{AgentRecord, Store, Workspace};

/// Creates an agent in the workspace `workspace_slug`. With no password, one is generated
/// and returned so it can be shown once.
pub async fn add_agent(
    store: &Store,
    workspace_slug: &str,
    email: &str,
    name: &str,
    role: Role,
    password: Option<String>,
) -> Result<(AgentId, Option<String>)> {
    let workspace = store.workspace_by_slug(workspace_slug).await?;
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(crate::Error::refused(
            kefu_proto::ErrorCode::BadRequest,
            format!("'{email}' is not an e-mail address"),
        ));
    }
    kefu_proto::limits::check_name(name)?;
    let generated = password.is_none();
    let password = password.unwrap_or_else(auth::new_password);
    auth::check_password_policy(&password)?;
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || auth::hash_password(&password))
            .await
            .map_err(|e| crate::Error::Internal(e.to_string()))??
    };
    let id = store.add_agent(workspace.id, &email, name, role, &hash).await?;
    Ok((id, generated.then_some(password)))
}

/// Agents of a workspace.
pub async fn list_agents(store: &Store, workspace_slug: &str) -> Result<Vec<AgentRecord>> {
    let workspace = store.workspace_by_slug(workspace_slug).await?;
    store.agents(workspace.id).await
}

/// A workspace, for `workspace show`.
pub async fn show_workspace(store: &Store, workspace_slug: &str) -> Result<Workspace> {
    store.workspace_by_slug(workspace_slug).await
}
