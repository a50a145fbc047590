//! What the agent workstation (and the widget, for files) asks over HTTP: history pages,
//! the customer panel, canned replies, and attachments.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kefu_proto::api::{CannedReply, CannedScope, ContactDetails, MessagesPage, NewCannedReply};
use kefu_proto::frame::{AttachmentRef, AuthorKind};
use kefu_proto::limits::{MAX_BODY_BYTES, check_body, check_slug};
use kefu_proto::{ContactId, ConversationId, ErrorCode, WorkspaceId};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::{ApiJson, ApiPath, AuthedAgent};
use crate::error::{Error, Result};
use crate::hub::HubCommand;
use crate::permissions::Permission;
use crate::store::{AttachmentRecord, MessageRange};
use crate::{RelayState, attachments, auth};

/// Messages per history page at most.
const MAX_PAGE: u32 = 500;

/// `?before=SEQ&after=SEQ&limit=N`.
#[derive(Deserialize)]
pub struct PageQuery {
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<u32>,
}

/// `GET /api/v1/conversations/{id}/messages`: any agent of the workspace may read its
/// conversations, private notes included.
pub async fn messages(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
    Query(page): Query<PageQuery>,
) -> Result<Json<MessagesPage>> {
    let conversation = ConversationId(id);
    match relay.store.conversation_owner(conversation).await? {
        Some((workspace, _)) if workspace == authed.agent.workspace_id => {}
        _ => return Err(Error::refused(ErrorCode::NotFound, format!("no conversation {id}"))),
    }
    let limit = page.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let range = match (page.before, page.after) {
        (Some(_), Some(_)) => return Err(Error::refused(ErrorCode::BadRequest, "give before or after, not both")),
        (Some(before), None) => MessageRange::Before(before),
        (None, after) => MessageRange::After(after.unwrap_or(0)),
    };
    // One more than asked says whether there are more.
    let mut messages = relay.store.messages(conversation, range, limit + 1, true).await?;
    let more = messages.len() > limit as usize;
    if more {
        match range {
            MessageRange::After(_) => messages.truncate(limit as usize),
            MessageRange::Before(_) => {
                messages.remove(0);
            }
        }
    }
    if relay.config.privacy.masks(authed.agent.view.role) {
        messages = messages.into_iter().map(crate::privacy::mask_message).collect();
    }
    Ok(Json(MessagesPage { messages, more }))
}

/// Most messages one reveal returns (the newest).
const MAX_REVEAL: u32 = 500;

/// `POST /api/v1/conversations/{id}/reveal`: the messages of a conversation whose personal
/// data a masked reader sees masked, as written; recorded in the event log (who, which
/// conversation, how many messages; never the data).
pub async fn reveal(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<kefu_proto::api::RevealedMessages>> {
    let conversation = ConversationId(id);
    let workspace = authed.agent.workspace_id;
    match relay.store.conversation_owner(conversation).await? {
        Some((owner, _)) if owner == workspace => {}
        _ => return Err(Error::refused(ErrorCode::NotFound, format!("no conversation {id}"))),
    }
    let newest =
        relay.store.messages(conversation, MessageRange::Before(i64::MAX as kefu_proto::Seq), MAX_REVEAL, true).await?;
    let messages: Vec<kefu_proto::api::RevealedMessage> = newest
        .into_iter()
        .filter(|m| crate::privacy::has_pii(&m.body))
        .map(|m| kefu_proto::api::RevealedMessage { seq: m.seq, body: m.body })
        .collect();
    let seqs: Vec<_> = messages.iter().map(|m| m.seq).collect();
    let data = serde_json::json!({ "seqs": seqs });
    relay
        .store
        .append_event(workspace, "pii.revealed", "agent", Some(authed.agent.view.id.0), Some(conversation), &data)
        .await?;
    Ok(Json(kefu_proto::api::RevealedMessages { conversation_id: conversation, messages }))
}

/// `GET /api/v1/contacts/{id}`: the customer panel.
pub async fn contact(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ContactDetails>> {
    relay
        .store
        .contact_details(authed.agent.workspace_id, ContactId(id))
        .await?
        .map(Json)
        .ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no contact {id}")))
}

/// `GET /api/v1/canned`: shared replies and the caller's own.
pub async fn list_canned(State(relay): State<Arc<RelayState>>, authed: AuthedAgent) -> Result<Json<Vec<CannedReply>>> {
    Ok(Json(relay.store.canned_replies(authed.agent.workspace_id, authed.agent.view.id).await?))
}

/// `POST /api/v1/canned`: shared replies need a supervisor or admin.
pub async fn create_canned(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiJson(new): ApiJson<NewCannedReply>,
) -> Result<(StatusCode, Json<CannedReply>)> {
    check_canned(&new)?;
    let owner = match new.scope {
        CannedScope::Personal => Some(authed.agent.view.id),
        CannedScope::Workspace => {
            authed.require(Permission::ManageSharedCanned)?;
            None
        }
    };
    let reply = relay.store.add_canned_reply(authed.agent.workspace_id, owner, &new).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

/// Checks a new canned reply's fields.
pub fn check_canned(new: &NewCannedReply) -> Result<()> {
    check_slug(&new.shortcut)
        .map_err(|e| Error::refused(ErrorCode::BadRequest, e.message.replace("group", "shortcut")))?;
    kefu_proto::limits::check_name(&new.title)?;
    if new.body.len() > MAX_BODY_BYTES {
        return Err(Error::refused(ErrorCode::TooLarge, format!("body exceeds {MAX_BODY_BYTES} bytes")));
    }
    check_body(&new.body)?;
    Ok(())
}

/// `DELETE /api/v1/canned/{id}`: one's own, or a shared one as supervisor or admin.
pub async fn delete_canned(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    let workspace = authed.agent.workspace_id;
    let me = authed.agent.view.id;
    match relay.store.canned_owner(workspace, id).await? {
        None => return Err(Error::refused(ErrorCode::NotFound, format!("no canned reply {id}"))),
        Some(Some(owner)) if owner != me => {
            return Err(Error::refused(ErrorCode::NotFound, format!("no canned reply {id}")));
        }
        Some(None) => authed.require(Permission::ManageSharedCanned)?,
        Some(Some(_)) => {}
    }
    relay.store.remove_canned_reply(workspace, id, Some(me)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whoever presents a bearer token: an agent (`kfa_…`) or a customer (`kfc_…`, the token
/// from their `welcome`).
pub enum Caller {
    /// An agent.
    Agent(Box<AuthedAgent>),
    /// A customer.
    Customer {
        /// Their workspace.
        workspace: WorkspaceId,
        /// The contact.
        contact: ContactId,
        /// The token's hash, to load the contact.
        token_hash: Vec<u8>,
    },
}

impl FromRequestParts<Arc<RelayState>> for Caller {
    type Rejection = Error;

    /// A customer's request from a browser page must come from an origin the workspace
    /// allows.
    async fn from_request_parts(parts: &mut Parts, relay: &Arc<RelayState>) -> Result<Self, Self::Rejection> {
        let origin = parts.headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_string);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(kefu_proto::limits::bearer_credential)
            .filter(|t| t.starts_with("kfc_"));
        let Some(token) = token else {
            return AuthedAgent::from_request_parts(parts, relay).await.map(|a| Caller::Agent(Box::new(a)));
        };
        let token_hash = auth::token_hash(token);
        match relay.store.contact_by_token_anywhere(&token_hash).await? {
            Some((workspace, _)) if !relay.origin_allowed(workspace, origin.as_deref()) => {
                Err(Error::refused(ErrorCode::Forbidden, "this page's origin may not act for customers here"))
            }
            Some((workspace, contact)) => Ok(Caller::Customer { workspace, contact, token_hash }),
            None => Err(Error::refused(ErrorCode::Unauthorized, "invalid customer token")),
        }
    }
}

/// `?name=FILE`.
#[derive(Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
}

/// `POST /api/v1/conversations/{id}/attachments`: an agent uploads into a conversation
/// of the workspace. The body is the file itself.
pub async fn upload_as_agent(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
    Query(query): Query<UploadQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<AttachmentRef>)> {
    let conversation = ConversationId(id);
    let workspace = authed.agent.workspace_id;
    match relay.store.conversation_owner(conversation).await? {
        Some((owner, _)) if owner == workspace => {}
        _ => return Err(Error::refused(ErrorCode::NotFound, format!("no conversation {id}"))),
    }
    let uploader = (AuthorKind::Agent, authed.agent.view.id.0);
    save(&relay, workspace, conversation, uploader, query.name, &body).await
}

/// `POST /api/v1/attachments`: a customer uploads into their open conversation (opening
/// one if they have none yet). The body is the file itself.
pub async fn upload_as_customer(
    State(relay): State<Arc<RelayState>>,
    caller: Caller,
    Query(query): Query<UploadQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<AttachmentRef>)> {
    let Caller::Customer { workspace, contact, token_hash } = caller else {
        return Err(Error::refused(
            ErrorCode::BadRequest,
            "agents upload into a conversation: POST /api/v1/conversations/{id}/attachments",
        ));
    };
    let view = relay
        .store
        .contact_by_token(workspace, &token_hash)
        .await?
        .ok_or_else(|| Error::refused(ErrorCode::Unauthorized, "invalid customer token"))?;
    let hub = relay.hubs.get(workspace).ok_or_else(|| Error::Internal("workspace hub not running".into()))?;
    let (reply_tx, reply) = oneshot::channel();
    let entry = crate::hub::Entry::widget(None);
    hub.send(HubCommand::Open { contact: view, entry, first: None, reply: reply_tx }).await?;
    let conversation = reply.await.map_err(|_| Error::Internal("hub stopped".into()))??.view.id;
    save(&relay, workspace, conversation, (AuthorKind::Customer, contact.0), query.name, &body).await
}

async fn save(
    relay: &RelayState,
    workspace: WorkspaceId,
    conversation: ConversationId,
    (uploader, uploader_id): (AuthorKind, i64),
    name: Option<String>,
    body: &[u8],
) -> Result<(StatusCode, Json<AttachmentRef>)> {
    let Some(content_type) = attachments::sniff_content_type(body) else {
        return Err(Error::refused(
            ErrorCode::BadRequest,
            "unsupported file type: send PNG, JPEG, GIF or WebP images, PDF, or UTF-8 text",
        ));
    };
    let id = attachments::new_id();
    let sha256 = attachments::store(&relay.config.data_dir, &id, body, &relay.store.keys().current()).await?;
    let reference = AttachmentRef {
        id,
        name: attachments::clean_name(name.as_deref().unwrap_or("file")),
        size: body.len() as u64,
        content_type: content_type.to_string(),
    };
    let record =
        AttachmentRecord { reference: reference.clone(), workspace, conversation, uploader, uploader_id, sha256 };
    relay.store.add_attachment(&record).await?;
    Ok((StatusCode::CREATED, Json(reference)))
}

/// `GET /api/v1/attachments/{id}`: for agents of the workspace and the customer of the
/// conversation. Served as the type recognised at upload, never sniffed again by the
/// browser, and as a download unless it is an image.
pub async fn download(
    State(relay): State<Arc<RelayState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let not_found = || Error::refused(ErrorCode::NotFound, "no such attachment");
    if !attachments::is_id(&id) {
        return Err(not_found());
    }
    let record = relay.store.attachment(&id).await?.ok_or_else(not_found)?;
    let allowed = match &caller {
        Caller::Agent(agent) => agent.agent.workspace_id == record.workspace,
        Caller::Customer { workspace, contact, .. } => {
            *workspace == record.workspace
                && relay
                    .store
                    .conversation_owner(record.conversation)
                    .await?
                    .is_some_and(|(_, owner)| owner == *contact)
                && (record.uploader == AuthorKind::Customer && record.uploader_id == contact.0
                    || relay.store.attachment_shown_to_customer(record.conversation, &id).await?)
        }
    };
    if !allowed {
        return Err(not_found());
    }
    let bytes = attachments::read(&relay.config.data_dir, &id, &relay.store.keys().current()).await?;
    let reference = record.reference;
    let disposition = if reference.content_type.starts_with("image/") { "inline" } else { "attachment" };
    let encoded: String = reference
        .name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect();
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    let value = |s: &str| HeaderValue::from_str(s).map_err(|e| Error::Internal(e.to_string()));
    headers.insert(header::CONTENT_TYPE, value(&reference.content_type)?);
    headers.insert(header::CONTENT_DISPOSITION, value(&format!("{disposition}; filename*=UTF-8''{encoded}"))?);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    Ok(response)
}
