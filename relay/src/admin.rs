//! Administrative operations shared by the CLI (`agent`, `group`, `workspace`) and the
//! HTTP API. They work on the database directly and may run while the relay serves:
//! SQLite serialises the writes. (Changes made by the CLI reach a running relay's routing
//! when the agent next connects, or at restart; the API tells the running hub at once.)

use kefu_proto::api::{GroupView, NewGroup};
use kefu_proto::frame::{Role, Skill, SkillLevel};
use kefu_proto::limits::check_slug;
use kefu_proto::{AgentId, ErrorCode, WorkspaceId};

use crate::auth;
use crate::error::{Error, Result};
use crate::routing::GroupId;
use crate::store::{AgentRecord, GroupRecord, Store, Workspace};

/// Escalation delay of a group that escalates without saying when.
pub const DEFAULT_ESCALATE_AFTER_SECS: u32 = 120;

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

/// Creates a workspace: its slug is checked like a group's.
pub async fn add_workspace(store: &Store, slug: &str, name: &str) -> Result<Workspace> {
    kefu_proto::limits::check_slug(slug).map_err(Error::from)?;
    store.add_workspace(slug, name.trim()).await?;
    store.workspace_by_slug(slug).await
}

/// A workspace, for `workspace show`.
pub async fn show_workspace(store: &Store, workspace_slug: &str) -> Result<Workspace> {
    store.workspace_by_slug(workspace_slug).await
}

/// Creates a skill group.
pub async fn add_group(store: &Store, workspace: WorkspaceId, new: &NewGroup) -> Result<GroupRecord> {
    check_slug(&new.slug)?;
    let name = new.name.clone().unwrap_or_else(|| new.slug.clone());
    kefu_proto::limits::check_name(&name)?;
    let groups = store.groups(workspace).await?;
    let fallback = match &new.fallback {
        None => None,
        Some(slug) if *slug == new.slug => {
            return Err(Error::refused(ErrorCode::BadRequest, "a group cannot fall back to itself"));
        }
        Some(slug) => Some(
            groups
                .iter()
                .find(|g| g.slug == *slug)
                .map(|g| g.id)
                .ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no fallback group '{slug}'")))?,
        ),
    };
    if new.escalate_after_secs == Some(0) {
        return Err(Error::refused(ErrorCode::BadRequest, "escalate_after_secs must be positive"));
    }
    let escalates = fallback.is_some() || new.widen;
    let escalate_after_secs = escalates.then(|| new.escalate_after_secs.unwrap_or(DEFAULT_ESCALATE_AFTER_SECS));
    let mut record = GroupRecord {
        id: 0,
        slug: new.slug.clone(),
        name,
        fallback,
        escalate_after_secs,
        widen: new.widen,
        is_default: new.is_default,
    };
    record.id = store.add_group(workspace, &record).await?;
    Ok(record)
}

/// A group as the API shows it.
pub fn group_view(group: &GroupRecord, all: &[GroupRecord]) -> GroupView {
    GroupView {
        id: group.id,
        slug: group.slug.clone(),
        name: group.name.clone(),
        fallback: group.fallback.and_then(|f| all.iter().find(|g| g.id == f)).map(|g| g.slug.clone()),
        escalate_after_secs: group.escalate_after_secs,
        widen: group.widen,
        is_default: group.is_default,
    }
}

/// Parses `presales:senior,english` into skills.
pub fn parse_skills(text: &str) -> Result<Vec<Skill>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (group, level) = item.split_once(':').unwrap_or((item, "junior"));
            let level: SkillLevel = level.parse().map_err(|e: String| Error::refused(ErrorCode::BadRequest, e))?;
            check_slug(group)?;
            Ok(Skill { group: group.to_string(), level })
        })
        .collect()
}

/// Sets an agent's capacity and/or skills (by group slug); returns the agent as stored.
pub async fn update_agent(
    store: &Store,
    workspace: WorkspaceId,
    agent: AgentId,
    max_concurrent: Option<u32>,
    skills: Option<&[Skill]>,
) -> Result<AgentRecord> {
    if max_concurrent.is_some_and(|c| c > MAX_CAPACITY) {
        return Err(Error::refused(ErrorCode::BadRequest, format!("capacity must be 0 to {MAX_CAPACITY}")));
    }
    let skill_ids = match skills {
        None => None,
        Some(skills) => {
            let groups = store.groups(workspace).await?;
            let mut ids: Vec<(GroupId, SkillLevel)> = Vec::with_capacity(skills.len());
            for skill in skills {
                let group = groups
                    .iter()
                    .find(|g| g.slug == skill.group)
                    .ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no group '{}'", skill.group)))?;
                if ids.iter().any(|(g, _)| *g == group.id) {
                    return Err(Error::refused(ErrorCode::BadRequest, format!("group '{}' listed twice", skill.group)));
                }
                ids.push((group.id, skill.level));
            }
            Some(ids)
        }
    };
    if store.agent(workspace, agent).await?.is_none() {
        return Err(Error::refused(ErrorCode::NotFound, format!("no agent {agent}")));
    }
    store.update_agent(workspace, agent, max_concurrent, skill_ids.as_deref()).await?;
    store.agent(workspace, agent).await?.ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no agent {agent}")))
}

/// Most conversations one agent may be given at once.
pub const MAX_CAPACITY: u32 = 100;

/// The agent with this e-mail in a workspace.
pub async fn agent_by_email(store: &Store, workspace: WorkspaceId, email: &str) -> Result<AgentRecord> {
    let email = email.trim().to_lowercase();
    store
        .agents(workspace)
        .await?
        .into_iter()
        .find(|a| a.view.email == email)
        .ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no agent with e-mail {email}")))
}
