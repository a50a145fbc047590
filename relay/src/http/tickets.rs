//! Tickets over HTTP: made and worked by agents; listed and filtered; every change
//! reaches the assignee's workstation.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use kefu_proto::api::{NewTicket, NewTicketNote, TicketDetails, TicketPatch};
use kefu_proto::frame::{TicketStatus, TicketView};
use kefu_proto::{AgentId, ErrorCode};
use serde::Deserialize;

use super::{ApiJson, ApiPath, AuthedAgent};
use crate::RelayState;
use crate::error::{Error, Result};
use crate::hub::HubCommand;
use crate::tickets::{Actor, draft_from};

/// `POST /api/v1/tickets`: any agent may make one (from a conversation or not).
pub async fn create(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiJson(new): ApiJson<NewTicket>,
) -> Result<(StatusCode, Json<TicketView>)> {
    let workspace = authed.agent.workspace_id;
    let draft = draft_from(&relay.store, workspace, &new).await?;
    let ticket = relay.store.create_ticket(workspace, draft, Actor::Agent(authed.agent.view.id)).await?;
    if let Some(hub) = relay.hubs.get(workspace) {
        let _ = hub.send(HubCommand::TicketMade { ticket: ticket.clone(), conversation: None }).await;
    }
    Ok((StatusCode::CREATED, Json(ticket)))
}

/// `?status=open&assignee=me|ID&group=SLUG&limit=N`.
#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    assignee: Option<String>,
    group: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/tickets`.
pub async fn list(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<TicketView>>> {
    let workspace = authed.agent.workspace_id;
    let bad = |m: String| Error::refused(ErrorCode::BadRequest, m);
    let status = query.status.as_deref().map(str::parse::<TicketStatus>).transpose().map_err(bad)?;
    let assignee = match query.assignee.as_deref() {
        None => None,
        Some("me") => Some(authed.agent.view.id),
        Some(id) => Some(AgentId(id.parse().map_err(|_| bad(format!("assignee '{id}' is not me or an agent id")))?)),
    };
    let group = match &query.group {
        None => None,
        Some(slug) => Some(relay.store.group_id(workspace, slug).await?),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    Ok(Json(relay.store.tickets(workspace, status, assignee, group, limit).await?))
}

/// `GET /api/v1/tickets/{id}`: with notes and history.
pub async fn get(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TicketDetails>> {
    relay
        .store
        .ticket_details(authed.agent.workspace_id, id)
        .await?
        .map(Json)
        .ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no ticket {id}")))
}

/// `PATCH /api/v1/tickets/{id}`.
pub async fn update(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<TicketPatch>,
) -> Result<Json<TicketView>> {
    let workspace = authed.agent.workspace_id;
    let previous = relay.store.ticket(workspace, id).await?.and_then(|t| t.assignee).map(|a| a.id);
    let ticket = relay.store.update_ticket(workspace, id, &patch, Actor::Agent(authed.agent.view.id)).await?;
    let assigned = patch.assignee_id.is_some() && previous != patch.assignee_id;
    if let Some(hub) = relay.hubs.get(workspace) {
        let _ = hub.send(HubCommand::TicketChanged { ticket: ticket.clone(), previous, assigned }).await;
    }
    Ok(Json(ticket))
}

/// `POST /api/v1/tickets/{id}/notes`.
pub async fn add_note(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
    ApiJson(note): ApiJson<NewTicketNote>,
) -> Result<StatusCode> {
    relay.store.add_ticket_note(authed.agent.workspace_id, id, &note.body, Actor::Agent(authed.agent.view.id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
