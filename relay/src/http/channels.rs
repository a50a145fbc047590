//! Channels over HTTP: managing them (admins), customers' messages coming in through an app
//! channel (`POST /api/v1/channels/{id}/messages`, with the channel's secret) or a social
//! platform's signed webhook (`POST /hooks/{id}`), fetching replies
//! (`GET /api/v1/channels/{id}/messages?after=ID`), the deliveries of replies pushed to a
//! channel's webhook and their dead letters, and merging two contacts.
//!
//! An inbound message takes the path a widget customer's does: the contact (found or
//! created by its identity), the hub opens or finds their conversation, the journal makes
//! the message durable, and only then does the caller get its answer.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use kefu_proto::api::{
    ChannelPatch, ChannelView, ContactMerge, DeliveryState, DeliveryView, InboundMessage, InboundReceipt, NewChannel,
    OutboundPage, SocialKind,
};
use kefu_proto::frame::{AuthorKind, BodyFormat, ChannelKind, ContactView, Role};
use kefu_proto::limits::{check_body, check_client_msg_id, check_external_id, check_name};
use kefu_proto::{ContactId, ConversationId, ErrorCode};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::{ApiJson, ApiPath, AuthedAgent, MAX_API_BODY_BYTES, tell_hub};
use crate::RelayState;
use crate::channels::{self, ChannelRecord, SHOP_IDENTITY};
use crate::error::{Error, Result};
use crate::hub::{Entry, HubCommand};
use crate::journal::{FirstMessage, JournalOp, NewMessage};
use crate::permissions::Permission;

/// The header that makes a retried inbound message be stored once.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Most replies one fetch returns.
const MAX_FEED_PAGE: u32 = 500;

/// A raw request body (for signature checks), refused with the API's error shape when it
/// is larger than the API's limit.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|_| Error::refused(ErrorCode::TooLarge, format!("body exceeds {MAX_API_BODY_BYTES} bytes")))
    }
}

// ---- managing channels ------------------------------------------------------------------------

/// `GET /api/v1/channels` (supervisors and admins; secrets to admins only).
pub async fn list(State(relay): State<Arc<RelayState>>, authed: AuthedAgent) -> Result<Json<Vec<ChannelView>>> {
    authed.require(Permission::ReadChannels)?;
    let admin = authed.agent.view.role == Role::Admin;
    let mut views = Vec::new();
    for channel in relay.store.channels(authed.workspace()).await? {
        let counts = relay.store.outbox_counts(channel.id).await?;
        views.push(channel.view(counts, admin));
    }
    Ok(Json(views))
}

/// `POST /api/v1/channels` (admins): answers with the new channel and its secret.
pub async fn create(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiJson(new): ApiJson<NewChannel>,
) -> Result<(StatusCode, Json<ChannelView>)> {
    authed.require(Permission::ManageChannels)?;
    let workspace = authed.workspace();
    let group = check_new_channel(&relay.store, workspace, &new).await?;
    let channel = relay.store.add_channel(workspace, &new, group, Some(authed.agent.view.id.0)).await?;
    if channel.kind == ChannelKind::Web {
        relay.refresh_customer_access().await?;
    }
    Ok((StatusCode::CREATED, Json(channel.view(Default::default(), true))))
}

/// Checks a new channel's settings; returns its group's id.
pub async fn check_new_channel(
    store: &crate::Store,
    workspace: kefu_proto::WorkspaceId,
    new: &NewChannel,
) -> Result<Option<crate::routing::GroupId>> {
    channels::check_channel_name(&new.name)?;
    if new.priority.is_some_and(|p| p > 99) {
        return Err(Error::refused(ErrorCode::BadRequest, "priority must be 0 to 99"));
    }
    match (new.kind, &new.webhook_url, &new.mapping) {
        (ChannelKind::Web, Some(_), _) => {
            return Err(Error::refused(
                ErrorCode::BadRequest,
                "web channels have no webhook; replies go to the widget",
            ));
        }
        (ChannelKind::Social, _, None) => {
            return Err(Error::refused(ErrorCode::BadRequest, "a social channel needs a mapping"));
        }
        (ChannelKind::Web | ChannelKind::App, _, Some(_)) => {
            return Err(Error::refused(ErrorCode::BadRequest, "only social channels have a mapping"));
        }
        _ => {}
    }
    if let Some(url) = &new.webhook_url {
        channels::check_webhook_url(url)?;
    }
    if let Some(mapping) = &new.mapping {
        channels::check_mapping(mapping)?;
    }
    match &new.group {
        Some(slug) => Ok(Some(store.group_id(workspace, slug).await?)),
        None => Ok(None),
    }
}

/// The channel with this id in the caller's workspace.
async fn own_channel(relay: &RelayState, authed: &AuthedAgent, id: i64) -> Result<ChannelRecord> {
    match relay.store.channel(id).await? {
        Some(channel) if channel.workspace == authed.workspace() => Ok(channel),
        _ => Err(Error::refused(ErrorCode::NotFound, format!("no channel {id}"))),
    }
}

/// `GET /api/v1/channels/{id}` (supervisors and admins).
pub async fn get(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ChannelView>> {
    authed.require(Permission::ReadChannels)?;
    let channel = own_channel(&relay, &authed, id).await?;
    let counts = relay.store.outbox_counts(id).await?;
    Ok(Json(channel.view(counts, authed.agent.view.role == Role::Admin)))
}

/// `PATCH /api/v1/channels/{id}` (admins).
pub async fn update(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<ChannelPatch>,
) -> Result<Json<ChannelView>> {
    authed.require(Permission::ManageChannels)?;
    let channel = own_channel(&relay, &authed, id).await?;
    if patch.priority.flatten().is_some_and(|p| p > 99) {
        return Err(Error::refused(ErrorCode::BadRequest, "priority must be 0 to 99"));
    }
    if let Some(Some(url)) = &patch.webhook_url {
        if channel.kind == ChannelKind::Web {
            return Err(Error::refused(ErrorCode::BadRequest, "web channels have no webhook"));
        }
        channels::check_webhook_url(url)?;
    }
    if let Some(mapping) = &patch.mapping {
        if channel.kind != ChannelKind::Social {
            return Err(Error::refused(ErrorCode::BadRequest, "only social channels have a mapping"));
        }
        channels::check_mapping(mapping)?;
    }
    let group = match &patch.group {
        None => None,
        Some(None) => Some(None),
        Some(Some(slug)) => Some(Some(relay.store.group_id(authed.workspace(), slug).await?)),
    };
    let updated = relay.store.update_channel(&channel, &patch, group, Some(authed.agent.view.id.0)).await?;
    if channel.kind == ChannelKind::Web {
        relay.refresh_customer_access().await?;
    }
    let counts = relay.store.outbox_counts(id).await?;
    Ok(Json(updated.view(counts, true)))
}

/// `?state=&limit=` of the deliveries list.
#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    state: Option<DeliveryState>,
    limit: Option<u32>,
}

/// `GET /api/v1/channels/{id}/deliveries?state=dead` (supervisors and admins): newest
/// first; dead letters with `state=dead`.
pub async fn deliveries(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
    query: std::result::Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<Vec<DeliveryView>>> {
    authed.require(Permission::ReadChannels)?;
    let Query(query) = query.map_err(|e| Error::refused(ErrorCode::BadRequest, e.body_text()))?;
    let channel = own_channel(&relay, &authed, id).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_FEED_PAGE);
    Ok(Json(relay.store.deliveries(channel.id, query.state, limit).await?))
}

/// `POST /api/v1/channels/{id}/deliveries/{delivery}/retry` (supervisors and admins): a
/// dead letter goes back in line.
pub async fn retry(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath((id, delivery)): ApiPath<(i64, i64)>,
) -> Result<StatusCode> {
    authed.require(Permission::ReadChannels)?;
    let channel = own_channel(&relay, &authed, id).await?;
    relay.store.retry_delivery(&channel, delivery, relay.clock.now_ms(), authed.agent.view.id.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- customers' messages in, replies out --------------------------------------------------------

/// The channel a request names, checked against the channel secret it carries (`Bearer`).
async fn channel_by_secret(
    relay: &RelayState,
    id: i64,
    headers: &HeaderMap,
    kinds: &[ChannelKind],
) -> Result<ChannelRecord> {
    let channel = relay
        .store
        .channel(id)
        .await?
        .ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no channel {id}")))?;
    if !kinds.contains(&channel.kind) {
        return Err(Error::refused(
            ErrorCode::BadRequest,
            format!("channel {id} is a {} channel; this endpoint serves {}", channel.kind.as_str(), kind_names(kinds)),
        ));
    }
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(kefu_proto::limits::bearer_credential)
        .ok_or_else(|| Error::refused(ErrorCode::Unauthorized, "missing Authorization: Bearer <channel secret>"))?;
    // Compared as digests: equal-length values whose comparison time says nothing useful.
    let expected = channel.secret.as_deref().map(crate::auth::token_hash);
    if expected.is_none_or(|expected| expected != crate::auth::token_hash(given)) {
        return Err(Error::refused(ErrorCode::Unauthorized, "wrong channel secret"));
    }
    if channel.disabled {
        return Err(Error::refused(ErrorCode::Forbidden, format!("channel {id} is disabled")));
    }
    Ok(channel)
}

fn kind_names(kinds: &[ChannelKind]) -> String {
    kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" and ")
}

/// `POST /api/v1/channels/{id}/messages` (app channels, with the channel's secret): a
/// customer's message under the shop's customer id. 201 when stored, 200 with
/// `duplicate: true` when the `Idempotency-Key` was seen before.
pub async fn inbound(
    State(relay): State<Arc<RelayState>>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    ApiJson(message): ApiJson<InboundMessage>,
) -> Result<(StatusCode, Json<InboundReceipt>)> {
    let channel = channel_by_secret(&relay, id, &headers, &[ChannelKind::App]).await?;
    check_external_id("customer_id", &message.customer_id)?;
    check_body(&message.body)?;
    if let Some(name) = &message.name {
        check_name(name)?;
    }
    let key = match headers.get(IDEMPOTENCY_HEADER) {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .map_err(|_| Error::refused(ErrorCode::BadRequest, "Idempotency-Key must be printable ASCII"))?;
            check_client_msg_id(key)
                .map_err(|e| Error::refused(e.code, e.message.replace("client_msg_id", "Idempotency-Key")))?;
            Some(key.to_string())
        }
    };
    let contact = relay
        .store
        .contact_for_identity(channel.workspace, SHOP_IDENTITY, &message.customer_id, message.name.as_deref())
        .await?;
    let arrival = Arrival { body: message.body, format: message.format, client_msg_id: key, source: None };
    let receipt = receive(&relay, &channel, contact, arrival).await?;
    Ok((if receipt.duplicate { StatusCode::OK } else { StatusCode::CREATED }, Json(receipt)))
}

/// `POST /hooks/{id}` (social channels): a platform's event, signed with the channel's
/// secret (`x-kefu-timestamp`, `x-kefu-signature`). Bad or missing signatures, stale
/// timestamps and replays get 401 and store nothing.
pub async fn hook(
    State(relay): State<Arc<RelayState>>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<InboundReceipt>)> {
    let channel = relay
        .store
        .channel(id)
        .await?
        .ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no channel {id}")))?;
    if channel.kind != ChannelKind::Social {
        return Err(Error::refused(ErrorCode::BadRequest, format!("channel {id} is not a social channel")));
    }
    let (Some(secret), Some(mapping)) = (&channel.secret, &channel.mapping) else {
        return Err(Error::Internal(format!("social channel {id} lacks a secret or mapping")));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header(crate::outside::SIGNATURE_HEADER);
    let tolerance = relay.config.channels.signature_tolerance_secs;
    channels::check_signature(
        secret,
        header(crate::outside::TIMESTAMP_HEADER),
        signature,
        &body,
        crate::clock::now_ms() / 1000,
        tolerance,
    )
    .map_err(|refusal| Error::Refused(refusal.to_error(tolerance)))?;
    if channel.disabled {
        return Err(Error::refused(ErrorCode::Forbidden, format!("channel {id} is disabled")));
    }
    let signature = signature.expect("checked").trim();
    if !relay.store.remember_hook_signature(id, signature, crate::clock::now_ms()).await? {
        return Err(Error::refused(ErrorCode::Unauthorized, "replayed: this signature was already accepted"));
    }
    let doc: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| Error::refused(ErrorCode::BadRequest, format!("the body is not JSON: {e}")))?;
    let event = channels::map_event(mapping, &doc)?;
    let identity = format!("{id}:{}", event.user_id);
    let contact =
        relay.store.contact_for_identity(channel.workspace, "social", &identity, event.display_name.as_deref()).await?;
    let arrival = Arrival {
        body: event.text,
        format: BodyFormat::Text,
        client_msg_id: event.event_id.as_deref().map(channels::client_msg_id_of_event),
        source: Some(event.kind),
    };
    let receipt = receive(&relay, &channel, contact, arrival).await?;
    Ok((if receipt.duplicate { StatusCode::OK } else { StatusCode::CREATED }, Json(receipt)))
}

/// `?after=&limit=` of the replies feed.
#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    #[serde(default)]
    after: i64,
    limit: Option<u32>,
}

/// `GET /api/v1/channels/{id}/messages?after=ID&limit=N` (app and social channels, with the
/// channel's secret): replies after the cursor, oldest first.
pub async fn feed(
    State(relay): State<Arc<RelayState>>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    query: std::result::Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Json<OutboundPage>> {
    let Query(query) = query.map_err(|e| Error::refused(ErrorCode::BadRequest, e.body_text()))?;
    let channel = channel_by_secret(&relay, id, &headers, &[ChannelKind::App, ChannelKind::Social]).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_FEED_PAGE);
    let messages = relay.store.outbound_page(channel.id, query.after.max(0), limit).await?;
    let next_after = messages.last().map_or(query.after.max(0), |m| m.id);
    Ok(Json(OutboundPage { messages, next_after }))
}

/// A customer's message arriving through a channel.
struct Arrival {
    body: String,
    format: BodyFormat,
    client_msg_id: Option<String>,
    source: Option<SocialKind>,
}

/// Files a customer's message: finds or opens their conversation and waits until the
/// message is durable.
async fn receive(
    relay: &RelayState,
    channel: &ChannelRecord,
    contact: ContactView,
    arrival: Arrival,
) -> Result<InboundReceipt> {
    let workspace = channel.workspace;
    // A repeat is answered from what was stored, without opening anything.
    if let Some(key) = &arrival.client_msg_id
        && let Some((conversation, seq)) = relay.store.message_by_client_id(workspace, contact.id, key).await?
    {
        return Ok(InboundReceipt { contact_id: contact.id, conversation_id: conversation, seq, duplicate: true });
    }
    let hub = relay.hubs.get(workspace).ok_or_else(|| Error::Internal("workspace has no hub".into()))?;
    let shutting = || Error::refused(ErrorCode::Internal, "the relay is shutting down; retry");
    // A conversation opened for the message is stored with it. One that was open already
    // may close between finding it and writing to it; then a new one opens.
    let entry = Entry {
        channel: channel.kind,
        channel_id: Some(channel.id),
        group: channel.group.as_ref().map(|(_, slug)| slug.clone()),
        priority: channel.priority,
    };
    for _ in 0..3 {
        let message = NewMessage {
            workspace,
            // Set by the opening, or below when the message comes back.
            conversation: ConversationId(0),
            origin: None,
            author: AuthorKind::Customer,
            author_id: Some(contact.id.0),
            client_msg_id: arrival.client_msg_id.clone(),
            body: arrival.body.clone(),
            format: arrival.format,
            internal: false,
            attachments: Vec::new(),
            via: Some(channel.via(arrival.source)),
        };
        let (receipt_tx, receipt) = oneshot::channel();
        let first = FirstMessage { message, receipt: Some(receipt_tx) };
        let (reply_tx, reply) = oneshot::channel();
        hub.send(HubCommand::Open {
            contact: contact.clone(),
            entry: entry.clone(),
            first: Some(first),
            reply: reply_tx,
        })
        .await
        .map_err(|_| shutting())?;
        let opened = reply.await.map_err(|_| shutting())?.map_err(Error::Refused)?;
        // Not stored with an opening: the conversation was open already.
        if let Some(FirstMessage { message, receipt: Some(receipt_tx) }) = opened.first {
            let message = NewMessage { conversation: opened.view.id, ..message };
            relay.journal.submit(JournalOp::AppendAwaited(message, receipt_tx)).await.map_err(|_| shutting())?;
        }
        match receipt.await.map_err(|_| shutting())? {
            Ok(receipt) => {
                return Ok(InboundReceipt {
                    contact_id: contact.id,
                    conversation_id: receipt.conversation,
                    seq: receipt.seq,
                    duplicate: receipt.duplicate,
                });
            }
            Err(e) if e.code == ErrorCode::Conflict => continue,
            Err(e) => return Err(Error::Refused(e)),
        }
    }
    Err(Error::refused(ErrorCode::Conflict, "the conversation kept closing; retry"))
}

// ---- contacts ----------------------------------------------------------------------------------

/// `POST /api/v1/contacts/{id}/merge` (supervisors and admins): folds `from` into this
/// contact — identities, tokens, conversations, tickets and ratings — and records who did.
pub async fn merge(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
    ApiJson(merge): ApiJson<ContactMerge>,
) -> Result<StatusCode> {
    authed.require(Permission::MergeContacts)?;
    let workspace = authed.workspace();
    let into = ContactId(id);
    let vip = relay.store.merge_contacts(workspace, into, merge.from, "agent", Some(authed.agent.view.id.0)).await?;
    tell_hub(&relay, workspace, HubCommand::ContactsMerged { from: merge.from, into, vip }).await;
    Ok(StatusCode::NO_CONTENT)
}
