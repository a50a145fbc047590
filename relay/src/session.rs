//! One WebSocket connection, customer or agent: hello, catch-up, then a loop over inbound
//! frames, the hub's outbound queue, and shutdown. The task speaks WebSocket and nothing
//! else: state lives in the hub, writes go through the journal.
//!
//! Exactly-once delivery on resume rests on one rule: the connection registers with the
//! hub *before* it reads history from the database, and it remembers the highest sequence
//! number it has sent per conversation and skips anything at or below it. Whatever was
//! committed before the history read is in the history; whatever is committed after is
//! delivered live; the overlap is skipped.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kefu_proto::frame::{AttachmentRef, AuthorKind, ClientFrame, ContactView};
use kefu_proto::frame::{
    ChannelKind, ConnectionLimits, ConversationChange, Hello, HelloAuth, Presence, ServerFrame, Session, Welcome,
    close_code,
};
use kefu_proto::limits::{MAX_BODY_BYTES, MAX_FRAME_BYTES, decode_client_frame};
use kefu_proto::{ConversationId, ErrorCode, PROTOCOL_VERSION, ProtocolError, Seq, WorkspaceId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::RelayState;
use crate::auth;
use crate::channels::SHOP_IDENTITY;
use crate::conversation::Transition;
use crate::hub::{AgentSession, ConnId, Entry, HubCommand, HubHandle, Outbound, Party, error_frame};
use crate::journal::{FirstMessage, JournalOp, NewContact, NewMessage};
use crate::permissions::{self, Permission};
use crate::store::MessageRange;
use crate::tickets::{Actor, TicketDraft, subject_from};

/// Which endpoint the connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `/ws/customer`.
    Customer,
    /// `/ws/agent`.
    Agent,
}

/// Messages read from the database per query while catching up.
const CATCH_UP_PAGE: u32 = 500;

/// Outbound frames written before one flush, so a burst costs one syscall, not many.
const WRITE_BATCH: usize = 64;

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// Why a connection ends, and what to tell the client.
struct Closing {
    code: u16,
    reason: String,
}

impl Closing {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Closing { code, reason: reason.into() }
    }
}

/// Who the connection is, once authenticated.
enum Identity {
    Customer {
        contact: ContactView,
        customer_token: String,
        /// The channel and group for the conversation this connection opens.
        entry: Entry,
    },
    Agent(Box<AgentSession>),
}

/// The state of one authenticated connection.
struct Connection {
    conn: ConnId,
    relay: Arc<RelayState>,
    workspace: WorkspaceId,
    hub: HubHandle,
    identity: Identity,
    /// The highest sequence number sent to this client, per conversation.
    delivered: HashMap<ConversationId, Seq>,
    /// Agents: the conversations they hold, as announced to this connection.
    held: HashSet<ConversationId>,
    /// Supervisors: the conversations they follow read-only (they may whisper in them).
    observing: HashSet<ConversationId>,
    /// Customers: their open conversation.
    open: Option<ConversationId>,
    /// Frames per second allowed from this client.
    limiter: DefaultDirectRateLimiter,
    /// Frames refused in a row for exceeding the rate.
    rate_violations: u32,
}

/// Serves one upgraded WebSocket until it closes, the client misbehaves past recovery, or
/// the relay shuts down.
///
/// `origin` is the `Origin` header of the upgrade (browsers send it): a customer's page
/// must be one its workspace allows.
///
/// Not an `async fn`: the socket is split before the future is made, so the future (kept
/// for the connection's whole life) holds the two halves and not also the spent socket.
pub fn serve(
    socket: WebSocket,
    side: Side,
    relay: Arc<RelayState>,
    peer: SocketAddr,
    origin: Option<String>,
) -> impl std::future::Future<Output = ()> + Send {
    let (sink, stream) = socket.split();
    serve_split(sink, stream, side, relay, peer, origin)
}

async fn serve_split(
    mut sink: Sink,
    mut stream: Stream,
    side: Side,
    relay: Arc<RelayState>,
    peer: SocketAddr,
    origin: Option<String>,
) {
    let conn = relay.next_conn_id();
    let _counted = relay.telemetry.connection(match side {
        Side::Customer => "customer",
        Side::Agent => "agent",
    });
    let span = tracing::debug_span!("conn", conn, ?side, %peer);
    async {
        let result = run(conn, side, origin.as_deref(), peer, &relay, &mut sink, &mut stream).await;
        if let Err(closing) = result {
            tracing::debug!(code = closing.code, reason = %closing.reason, "closing connection");
            let frame = CloseFrame { code: closing.code, reason: Utf8Bytes::from(closing.reason) };
            // A peer that is not reading may never take the close frame; give up on it
            // rather than keep the task alive.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
        }
    }
    .instrument(span)
    .await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

/// How long one batch of outbound frames may take to reach the socket before the client
/// is treated as a slow consumer.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the close handshake may take on the way out.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn slow_consumer() -> Closing {
    Closing::new(close_code::SLOW_CONSUMER, "outbound queue full; reconnect and resume")
}

/// Runs the connection; `Err` carries the close to send.
async fn run(
    conn: ConnId,
    side: Side,
    origin: Option<&str>,
    peer: SocketAddr,
    relay: &Arc<RelayState>,
    sink: &mut Sink,
    stream: &mut Stream,
) -> Result<(), Closing> {
    // The hello, the sign-in and the handling of each frame are boxed: their state would
    // otherwise be laid out inside this future, which every idle connection keeps for
    // its whole life (several KiB of it, for code that runs once or briefly).
    let hello = Box::pin(read_hello(relay, sink, stream)).await?;
    let (workspace, identity) = Box::pin(authenticate(side, origin, &hello, relay, sink)).await?;
    let hub = relay.hubs.get(workspace).ok_or_else(|| Closing::new(close_code::GOING_AWAY, "workspace unavailable"))?;
    let limits = &relay.config.limits;
    let (outbound_tx, mut outbound) = mpsc::channel(limits.outbound_queue);
    let kick = CancellationToken::new();
    let party = match &identity {
        Identity::Customer { contact, .. } => Party::Customer(contact.clone()),
        Identity::Agent(session) => Party::Agent(session.clone()),
    };
    let (reply_tx, reply) = oneshot::channel();
    let peer = peer.ip();
    hub.send(HubCommand::Register { conn, party, outbound: outbound_tx, kick: kick.clone(), peer, reply: reply_tx })
        .await
        .map_err(|_| Closing::new(close_code::GOING_AWAY, "relay shutting down"))?;
    let registered = reply.await.map_err(|_| Closing::new(close_code::GOING_AWAY, "relay shutting down"))?;

    let quota = Quota::per_second(NonZeroU32::new(limits.frames_per_second).expect("checked positive"))
        .allow_burst(NonZeroU32::new(limits.frame_burst.max(1)).expect("positive"));
    let mut connection = Connection {
        conn,
        relay: relay.clone(),
        workspace,
        hub: hub.clone(),
        identity,
        delivered: HashMap::new(),
        held: HashSet::new(),
        observing: HashSet::new(),
        open: None,
        limiter: RateLimiter::direct(quota),
        rate_violations: 0,
    };
    let result = connection.session(hello, registered, sink, stream, &mut outbound, &kick).await;
    let _ = hub.send(HubCommand::Unregister { conn }).await;
    result
}

/// Waits for the first frame, which must be a valid `hello`.
async fn read_hello(relay: &RelayState, sink: &mut Sink, stream: &mut Stream) -> Result<Hello, Closing> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(relay.config.limits.hello_timeout_secs);
    let text = loop {
        let next = tokio::select! {
            _ = relay.shutdown.cancelled() => return Err(Closing::new(close_code::GOING_AWAY, "relay shutting down")),
            next = tokio::time::timeout_at(deadline, stream.next()) => next,
        };
        match next {
            Err(_) => return Err(Closing::new(close_code::BAD_HELLO, "no hello in time")),
            Ok(None) => return Err(Closing::new(close_code::BAD_HELLO, "closed before hello")),
            Ok(Some(Err(e))) => return Err(read_error_close(e)),
            Ok(Some(Ok(Message::Text(text)))) => break text,
            // Keep-alive pings may come first; tungstenite answers them.
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(_))) => {
                return Err(refuse_hello(
                    sink,
                    ProtocolError::bad_request("the first frame must be a JSON text hello"),
                )
                .await);
            }
        }
    };
    match decode_client_frame(text.as_str()) {
        Ok(ClientFrame::Hello(hello)) => Ok(hello),
        Ok(other) => Err(refuse_hello(
            sink,
            ProtocolError::bad_request(format!("the first frame must be hello, not {}", other.kind())),
        )
        .await),
        Err(e) => Err(refuse_hello(sink, e).await),
    }
}

/// Sends the error frame for a refused hello and returns the close that follows it.
async fn refuse_hello(sink: &mut Sink, error: ProtocolError) -> Closing {
    let code = match error.code {
        ErrorCode::Unauthorized => close_code::UNAUTHORIZED,
        ErrorCode::Forbidden => close_code::FORBIDDEN,
        ErrorCode::Internal => close_code::INTERNAL,
        _ => close_code::BAD_HELLO,
    };
    let _ = send_frame(sink, &error_frame(error.code, &error.message, None, None)).await;
    Closing::new(code, error.message)
}

/// Checks the hello's credentials against the endpoint and the database.
async fn authenticate(
    side: Side,
    origin: Option<&str>,
    hello: &Hello,
    relay: &Arc<RelayState>,
    sink: &mut Sink,
) -> Result<(WorkspaceId, Identity), Closing> {
    let unauthorized = |m: &str| ProtocolError::new(ErrorCode::Unauthorized, m);
    let internal = |e: crate::Error| {
        tracing::error!(error = %e, "hello failed");
        ProtocolError::new(ErrorCode::Internal, "internal error; retry later")
    };
    let result = match (&hello.auth, side) {
        (
            HelloAuth::Customer { widget_key, customer_token, name, group, customer_id, customer_signature },
            Side::Customer,
        ) => match relay.widget_key(widget_key) {
            None => Err(unauthorized("unknown widget key")),
            Some((workspace, _)) if !relay.origin_allowed(workspace, origin) => {
                Err(ProtocolError::new(ErrorCode::Forbidden, "this page's origin may not use the widget key"))
            }
            Some((workspace, channel)) => {
                let signed = customer_id.as_deref().zip(customer_signature.as_deref());
                let hello = CustomerHello { token: customer_token.as_deref(), name: name.clone(), signed };
                match widget_entry(relay, channel, group.clone()).await {
                    Err(e) => Err(e.to_client()),
                    Ok(entry) => customer_identity(relay, workspace, hello, entry)
                        .await
                        .map(|identity| (workspace, identity))
                        .map_err(|e| match e {
                            crate::Error::Refused(refusal) => refusal,
                            other => internal(other),
                        }),
                }
            }
        },
        (HelloAuth::Agent { token }, Side::Agent) => {
            let token_hash = auth::token_hash(token);
            match relay.store.agent_by_token(&token_hash).await {
                Ok(Some(agent)) => {
                    let session = AgentSession { view: agent.view, skill_ids: agent.skill_ids, token_hash };
                    Ok((agent.workspace_id, Identity::Agent(Box::new(session))))
                }
                Ok(None) => Err(unauthorized("invalid, expired or revoked token")),
                Err(e) => Err(internal(e)),
            }
        }
        (HelloAuth::Customer { .. }, Side::Agent) => {
            Err(ProtocolError::bad_request("this is the agent endpoint; customers use /ws/customer"))
        }
        (HelloAuth::Agent { .. }, Side::Customer) => {
            Err(ProtocolError::bad_request("this is the customer endpoint; agents use /ws/agent"))
        }
    };
    match result {
        Ok(ok) => Ok(ok),
        Err(e) => Err(refuse_hello(sink, e).await),
    }
}

/// Where a widget connection's conversations come in: the built-in key's widget, or a web
/// channel with its own default group and priority (the customer's choice comes first).
async fn widget_entry(relay: &RelayState, channel: Option<i64>, group: Option<String>) -> crate::Result<Entry> {
    let Some(id) = channel else { return Ok(Entry::widget(group)) };
    match relay.store.channel(id).await? {
        Some(channel) if !channel.disabled => Ok(Entry {
            channel: ChannelKind::Web,
            channel_id: Some(channel.id),
            group: group.or(channel.group.map(|(_, slug)| slug)),
            priority: channel.priority,
        }),
        _ => Err(crate::Error::refused(ErrorCode::Unauthorized, "this widget key's channel is disabled")),
    }
}

/// What a customer's hello says about who they are.
struct CustomerHello<'a> {
    /// The token from an earlier welcome.
    token: Option<&'a str>,
    /// A display name.
    name: Option<String>,
    /// The shop's customer id and its signature.
    signed: Option<(&'a str, &'a str)>,
}

/// The contact behind a customer token, or a new contact with a new token. A signed shop
/// customer id decides the contact: the same id on any channel is the same contact.
async fn customer_identity(
    relay: &RelayState,
    workspace: WorkspaceId,
    hello: CustomerHello<'_>,
    entry: Entry,
) -> crate::Result<Identity> {
    let CustomerHello { token, name, signed } = hello;
    let by_token = match token {
        Some(token) => relay.store.contact_by_token(workspace, &auth::token_hash(token)).await?,
        None => None,
    };
    if let Some((customer_id, signature)) = signed {
        let secret = relay.store.identity_secret(workspace).await?;
        if !crate::channels::identity_signature_valid(&secret, customer_id, signature) {
            return Err(crate::Error::refused(
                ErrorCode::Unauthorized,
                "customer_signature does not match customer_id",
            ));
        }
        return signed_customer(relay, workspace, customer_id, by_token.zip(token), name, entry).await;
    }
    if let (Some(contact), Some(token)) = (by_token, token) {
        return Ok(Identity::Customer { contact, customer_token: token.to_string(), entry });
    }
    let customer_token = auth::new_customer_token();
    let token_hash = auth::token_hash(&customer_token);
    // The visitor id on the web channel: derived from the token, so it is stable for the
    // contact and reveals nothing of the token itself.
    let external_id = format!("visitor-{}", &hex::encode(&token_hash)[..24]);
    let id = relay
        .journal
        .create_contact(NewContact {
            workspace,
            name: name.clone(),
            channel: ChannelKind::Web,
            external_id,
            token_hash,
        })
        .await?;
    Ok(Identity::Customer { contact: ContactView { id, name, vip: false }, customer_token, entry })
}

/// The contact of a signed-in shop customer. A visitor's token on this browser is kept
/// when it can be: linked to the customer id when that id is new, or folded into the
/// customer's contact when the visitor is anonymous and not mid-conversation. Otherwise
/// (another customer's token, or a visitor in a live conversation) the customer's own
/// contact is used with a new token.
async fn signed_customer(
    relay: &RelayState,
    workspace: WorkspaceId,
    customer_id: &str,
    by_token: Option<(ContactView, &str)>,
    name: Option<String>,
    entry: Entry,
) -> crate::Result<Identity> {
    let store = &relay.store;
    let known = store.contact_by_identity(workspace, SHOP_IDENTITY, customer_id).await?;
    if let Some((visitor, token)) = by_token {
        let anonymous = store.identity_of(visitor.id, SHOP_IDENTITY).await?.is_none();
        let keep = match &known {
            Some(customer) if customer.id == visitor.id => true,
            None if anonymous => store.link_identity(workspace, visitor.id, SHOP_IDENTITY, customer_id).await?,
            Some(customer) if anonymous && !store.has_open_conversation(visitor.id).await? => {
                let vip =
                    store.merge_contacts(workspace, customer.id, visitor.id, "customer", Some(visitor.id.0)).await?;
                if let Some(hub) = relay.hubs.get(workspace) {
                    let _ = hub.send(HubCommand::ContactsMerged { from: visitor.id, into: customer.id, vip }).await;
                }
                let contact = ContactView { vip, ..customer.clone() };
                return Ok(Identity::Customer { contact, customer_token: token.to_string(), entry });
            }
            _ => false,
        };
        if keep {
            return Ok(Identity::Customer { contact: visitor, customer_token: token.to_string(), entry });
        }
    }
    let contact = match known {
        Some(contact) => contact,
        None => store.contact_for_identity(workspace, SHOP_IDENTITY, customer_id, name.as_deref()).await?,
    };
    let customer_token = store.issue_customer_token(workspace, contact.id).await?;
    Ok(Identity::Customer { contact, customer_token, entry })
}

impl Connection {
    /// Welcome, catch-up, then the main loop.
    async fn session(
        &mut self,
        hello: Hello,
        registered: crate::hub::Registered,
        sink: &mut Sink,
        stream: &mut Stream,
        outbound: &mut mpsc::Receiver<Outbound>,
        kick: &CancellationToken,
    ) -> Result<(), Closing> {
        let limits = &self.relay.config.limits;
        let session = match &self.identity {
            Identity::Customer { contact, customer_token, .. } => {
                self.open = registered.conversations.first().map(|c| c.id);
                Session::Customer {
                    customer_token: customer_token.clone(),
                    contact_id: contact.id,
                    conversation: registered.conversations.first().cloned(),
                }
            }
            Identity::Agent(session) => {
                let agent = &session.view;
                self.held = registered.conversations.iter().map(|c| c.id).collect();
                Session::Agent {
                    agent: agent.clone(),
                    presence: registered.presence,
                    conversations: registered.conversations.clone(),
                }
            }
        };
        let welcome = ServerFrame::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            session,
            limits: ConnectionLimits {
                max_frame_bytes: MAX_FRAME_BYTES,
                max_body_bytes: MAX_BODY_BYTES,
                frames_per_second: limits.frames_per_second,
                frame_burst: limits.frame_burst,
            },
        });
        send_frame(sink, &welcome).await?;
        let resume: HashMap<ConversationId, Seq> =
            hello.resume.iter().map(|p| (p.conversation_id, p.after_seq)).collect();
        for conversation in &registered.conversations {
            // A client cannot hold more than the hub has announced; a larger claim would
            // otherwise suppress live messages up to it.
            let after = resume.get(&conversation.id).copied().unwrap_or(0).min(conversation.last_seq);
            Box::pin(self.catch_up(sink, conversation.id, after)).await?;
        }
        sink.flush().await.map_err(|_| Closing::new(close_code::GOING_AWAY, "write failed"))?;

        let shutdown = self.relay.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(Closing::new(close_code::GOING_AWAY, "relay shutting down")),
                _ = kick.cancelled() => return Err(slow_consumer()),
                out = outbound.recv() => {
                    let Some(out) = out else { return Err(Closing::new(close_code::GOING_AWAY, "relay shutting down")) };
                    let write = async {
                        self.forward(sink, out).await?;
                        // Write what else is ready, then flush once.
                        for _ in 1..WRITE_BATCH {
                            match outbound.try_recv() {
                                Ok(out) => self.forward(sink, out).await?,
                                Err(_) => break,
                            }
                        }
                        sink.flush().await.map_err(|_| Closing::new(close_code::GOING_AWAY, "write failed"))
                    };
                    // A client that stops reading fills its TCP window and the write above
                    // blocks; without these arms the connection would sit pinned there,
                    // deaf to the hub's kick and to shutdown.
                    // Boxed (see `run`): idle, the connection keeps none of this.
                    let write = Box::pin(tokio::time::timeout(WRITE_TIMEOUT, write));
                    tokio::select! {
                        biased;
                        _ = kick.cancelled() => return Err(slow_consumer()),
                        _ = shutdown.cancelled() => return Err(Closing::new(close_code::GOING_AWAY, "relay shutting down")),
                        written = write => match written {
                            Ok(result) => result?,
                            Err(_) => return Err(slow_consumer()),
                        },
                    }
                }
                inbound = stream.next() => match inbound {
                    None | Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Err(e)) => return Err(read_error_close(e)),
                    // Boxed (see `run`): one small allocation per frame.
                    Some(Ok(Message::Text(text))) => Box::pin(self.inbound(sink, Some(text.as_str()))).await?,
                    Some(Ok(Message::Binary(_))) => Box::pin(self.inbound(sink, None)).await?,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                },
            }
        }
    }

    /// Sends the messages of `conversation` after `after` from the database.
    async fn catch_up(&mut self, sink: &mut Sink, conversation: ConversationId, after: Seq) -> Result<(), Closing> {
        let mut after = after.max(self.delivered.get(&conversation).copied().unwrap_or(0));
        self.delivered.insert(conversation, after);
        loop {
            // Private notes go to agents only.
            let with_notes = matches!(self.identity, Identity::Agent(_));
            let range = MessageRange::After(after);
            let page =
                self.relay.store.messages(conversation, range, CATCH_UP_PAGE, with_notes).await.map_err(|e| {
                    tracing::error!(error = %e, "catch-up failed");
                    Closing::new(close_code::INTERNAL, "internal error; reconnect and resume")
                })?;
            let full = page.len() == CATCH_UP_PAGE as usize;
            let masked = match &self.identity {
                Identity::Agent(session) => self.relay.config.privacy.masks(session.view.role),
                Identity::Customer { .. } => false,
            };
            for message in page {
                after = message.seq;
                let message = if masked { crate::privacy::mask_message(message) } else { message };
                feed_frame(sink, &ServerFrame::Message(message)).await?;
            }
            self.delivered.insert(conversation, after);
            if !full {
                return Ok(());
            }
        }
    }

    /// Writes one outbound item, keeping this connection's view current.
    async fn forward(&mut self, sink: &mut Sink, out: Outbound) -> Result<(), Closing> {
        match out {
            Outbound::Close { code, reason } => Err(Closing::new(code, reason)),
            Outbound::Message { conversation, seq, text } => {
                let delivered = self.delivered.entry(conversation).or_insert(0);
                if seq <= *delivered {
                    return Ok(());
                }
                *delivered = seq;
                sink.feed(Message::Text(text)).await.map_err(|_| Closing::new(close_code::GOING_AWAY, "write failed"))
            }
            Outbound::Frame(frame) => {
                let mut catch_up = None;
                match frame.as_ref() {
                    ServerFrame::Ack(ack) => {
                        let delivered = self.delivered.entry(ack.conversation_id).or_insert(0);
                        *delivered = (*delivered).max(ack.seq);
                    }
                    ServerFrame::Conversation(c) => {
                        let id = c.conversation.id;
                        match (&self.identity, c.change) {
                            // A conversation the client already follows (held or observed)
                            // needs no second catch-up.
                            (Identity::Agent(_), ConversationChange::Assigned) => {
                                let new = self.held.insert(id);
                                if new && !self.observing.contains(&id) {
                                    catch_up = Some(id);
                                }
                            }
                            (Identity::Agent(_), ConversationChange::Observed) => {
                                let new = self.observing.insert(id);
                                if new && !self.held.contains(&id) {
                                    catch_up = Some(id);
                                }
                            }
                            (Identity::Agent(_), ConversationChange::Unassigned) => {
                                // `delivered` is kept: if the conversation comes back to this
                                // agent, the client already holds what was sent.
                                self.held.remove(&id);
                            }
                            (Identity::Agent(_), ConversationChange::Closed) => {
                                self.held.remove(&id);
                                self.observing.remove(&id);
                            }
                            (Identity::Customer { .. }, ConversationChange::Closed) if self.open == Some(id) => {
                                self.open = None;
                            }
                            (Identity::Customer { .. }, change)
                                if self.open.is_none() && change != ConversationChange::Closed =>
                            {
                                self.open = Some(id);
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
                feed_frame(sink, &frame).await?;
                if let Some(conversation) = catch_up {
                    Box::pin(self.catch_up(sink, conversation, 0)).await?;
                }
                Ok(())
            }
        }
    }

    /// Handles one data frame from the client: `None` for a binary frame, which counts
    /// against the rate like any other and is refused.
    async fn inbound(&mut self, sink: &mut Sink, text: Option<&str>) -> Result<(), Closing> {
        if self.limiter.check().is_err() {
            self.rate_violations += 1;
            if self.rate_violations > self.relay.config.limits.frame_burst {
                return Err(Closing::new(close_code::RATE_LIMITED, "frame rate exceeded repeatedly"));
            }
            let limit = self.relay.config.limits.frames_per_second;
            let error = ProtocolError::new(
                ErrorCode::RateLimited,
                format!("more than {limit} frames per second; frame dropped"),
            );
            return self.refuse(sink, error, text.and_then(client_msg_id_of), None).await;
        }
        self.rate_violations = 0;
        let Some(text) = text else {
            let error = ProtocolError::bad_request("binary frames are not accepted; send JSON text");
            return self.refuse(sink, error, None, None).await;
        };
        let frame = match decode_client_frame(text) {
            Ok(frame) => frame,
            Err(e) => return self.refuse(sink, e, client_msg_id_of(text), None).await,
        };
        let about = frame.conversation_id();
        match self.handle(frame).await {
            Ok(Some(reply)) => send_frame(sink, &reply).await,
            Ok(None) => Ok(()),
            Err((e, client_msg_id)) => self.refuse(sink, e, client_msg_id, about).await,
        }
    }

    /// Acts on a valid frame. Returns a direct reply, if any; refusals carry the
    /// `client_msg_id` they concern.
    async fn handle(&mut self, frame: ClientFrame) -> Result<Option<ServerFrame>, (ProtocolError, Option<String>)> {
        let internal = |_| (ProtocolError::new(ErrorCode::Internal, "the relay is shutting down"), None);
        match frame {
            ClientFrame::Hello(_) => Err((ProtocolError::bad_request("hello was already received"), None)),
            ClientFrame::Ping(ping) => Ok(Some(ServerFrame::Pong(ping))),
            ClientFrame::Send(send) => {
                let id = Some(send.client_msg_id.clone());
                if send.internal {
                    self.agent_only("a private note").map_err(|e| (e, id.clone()))?;
                }
                if let Identity::Customer { .. } = self.identity {
                    self.relay.customer_limits.message(self.workspace).map_err(|e| (e, id.clone()))?;
                }
                let (author, author_id) = self.author();
                let message = NewMessage {
                    workspace: self.workspace,
                    // Set once the conversation is known (below, or by the journal when
                    // the message opens it).
                    conversation: ConversationId(0),
                    origin: Some(self.conn),
                    author,
                    author_id: Some(author_id),
                    client_msg_id: Some(send.client_msg_id),
                    body: send.body,
                    format: send.format,
                    internal: send.internal,
                    attachments: Vec::new(),
                    via: None,
                };
                // A message with files needs its conversation first (the files are checked
                // against it), so only a plain one can be stored with the opening.
                let (conversation, first) = match send.conversation_id {
                    // A supervisor whispers: a note in a conversation they follow.
                    Some(c) if send.internal && self.observing.contains(&c) => (c, Some(message)),
                    named if send.attachments.is_empty() => {
                        self.target_with(named, true, Some(message)).await.map_err(|e| (e, id.clone()))?
                    }
                    named => (self.target(named, true).await.map_err(|e| (e, id.clone()))?, Some(message)),
                };
                // Stored with the conversation it opened: acknowledged from there.
                let Some(message) = first else { return Ok(None) };
                let attachments =
                    self.attachments(conversation, &send.attachments).await.map_err(|e| (e, id.clone()))?;
                let message = NewMessage { conversation, attachments, ..message };
                self.relay
                    .journal
                    .submit(JournalOp::Append(message))
                    .await
                    .map_err(|_| (ProtocolError::new(ErrorCode::Internal, "the relay is shutting down"), id))?;
                Ok(None)
            }
            ClientFrame::Typing(typing) => {
                let conversation = self.target(typing.conversation_id, false).await.map_err(|e| (e, None))?;
                self.hub
                    .send(HubCommand::Typing { conn: self.conn, conversation, active: typing.active })
                    .await
                    .map_err(internal)?;
                Ok(None)
            }
            ClientFrame::Read(read) => {
                let conversation = self.target(read.conversation_id, false).await.map_err(|e| (e, None))?;
                let (reader, reader_id) = self.author();
                let op = JournalOp::Read { workspace: self.workspace, conversation, reader, reader_id, seq: read.seq };
                self.relay
                    .journal
                    .submit(op)
                    .await
                    .map_err(|_| (ProtocolError::new(ErrorCode::Internal, "the relay is shutting down"), None))?;
                Ok(None)
            }
            ClientFrame::Presence(presence) => {
                self.agent_only("presence").map_err(|e| (e, None))?;
                if presence.status == Presence::Offline {
                    return Err((ProtocolError::bad_request("set online or away; disconnect to go offline"), None));
                }
                self.hub
                    .send(HubCommand::Presence { conn: self.conn, status: presence.status })
                    .await
                    .map_err(internal)?;
                Ok(None)
            }
            ClientFrame::Resolve(resolve) => {
                self.agent_only("resolve").map_err(|e| (e, None))?;
                let command = HubCommand::Settle {
                    conn: self.conn,
                    conversation: resolve.conversation_id,
                    transition: Transition::Resolve,
                    resolution: resolve.resolution,
                };
                self.hub.send(command).await.map_err(internal)?;
                Ok(None)
            }
            ClientFrame::Close(close) => {
                self.agent_only("close").map_err(|e| (e, None))?;
                let command = HubCommand::Settle {
                    conn: self.conn,
                    conversation: close.conversation_id,
                    transition: Transition::Close,
                    resolution: close.resolution,
                };
                self.hub.send(command).await.map_err(internal)?;
                Ok(None)
            }
            ClientFrame::Transfer(transfer) => {
                self.agent_only("transfer").map_err(|e| (e, None))?;
                let command = HubCommand::Transfer {
                    conn: self.conn,
                    conversation: transfer.conversation_id,
                    to: transfer.to,
                    note: transfer.note,
                };
                self.hub.send(command).await.map_err(internal)?;
                Ok(None)
            }
            ClientFrame::LeaveMessage(leave) => {
                let Identity::Customer { contact, entry, .. } = &self.identity else {
                    return Err((ProtocolError::new(ErrorCode::Forbidden, "leave_message is for customers"), None));
                };
                let (contact, group) = (contact.id, entry.group.clone());
                // The ticket links the customer's conversation (opened now if there is none).
                let conversation = self.target(None, true).await.map_err(|e| (e, None))?;
                let ticket =
                    self.leave_message(contact, group, conversation, leave).await.map_err(|e| (e.to_client(), None))?;
                let command = HubCommand::TicketMade { ticket, conversation: Some(conversation) };
                self.hub.send(command).await.map_err(internal)?;
                Ok(None)
            }
            ClientFrame::Rate(rate) => {
                let Identity::Customer { contact, .. } = &self.identity else {
                    return Err((ProtocolError::new(ErrorCode::Forbidden, "rate is for customers"), None));
                };
                let contact = contact.id;
                let conversation = match rate.conversation_id.or(self.open) {
                    Some(c) => c,
                    None => return Err((ProtocolError::new(ErrorCode::NotFound, "no conversation to rate"), None)),
                };
                self.relay
                    .store
                    .rate(self.workspace, contact, conversation, rate.score, rate.comment.as_deref())
                    .await
                    .map_err(|e| (e.to_client(), None))?;
                self.hub.send(HubCommand::Rated { conversation, score: rate.score }).await.map_err(internal)?;
                Ok(None)
            }
            ClientFrame::Supervise(supervise) => {
                self.require(Permission::Supervise).map_err(|e| (e, None))?;
                let command = HubCommand::Supervise { conn: self.conn, active: supervise.active };
                self.hub.send(command).await.map_err(internal)?;
                Ok(None)
            }
            ClientFrame::Observe(observe) => {
                self.require(Permission::Supervise).map_err(|e| (e, None))?;
                let conversation = observe.conversation_id;
                if !observe.active {
                    // Notes may no longer be whispered there from now on; live messages
                    // stop once the hub hears of it. Observing again sends the history
                    // again (the client let go of it).
                    self.observing.remove(&conversation);
                    if !self.held.contains(&conversation) {
                        self.delivered.remove(&conversation);
                    }
                }
                let command = HubCommand::Observe { conn: self.conn, conversation, active: observe.active };
                self.hub.send(command).await.map_err(internal)?;
                Ok(None)
            }
            ClientFrame::TakeOver(take) => {
                self.require(Permission::Supervise).map_err(|e| (e, None))?;
                let command = HubCommand::TakeOver { conn: self.conn, conversation: take.conversation_id };
                self.hub.send(command).await.map_err(internal)?;
                Ok(None)
            }
            ClientFrame::Pick(pick) => {
                self.agent_only("pick").map_err(|e| (e, None))?;
                self.hub
                    .send(HubCommand::Pick { conn: self.conn, conversation: pick.conversation_id })
                    .await
                    .map_err(internal)?;
                Ok(None)
            }
        }
    }

    /// The uploaded files a message names, checked: each was uploaded into this
    /// conversation, and a customer may attach only their own uploads.
    async fn attachments(
        &self,
        conversation: ConversationId,
        ids: &[String],
    ) -> Result<Vec<AttachmentRef>, ProtocolError> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let record = self.relay.store.attachment(id).await.map_err(|e| e.to_client())?;
            let (author, author_id) = self.author();
            let allowed = record.as_ref().is_some_and(|r| {
                r.workspace == self.workspace
                    && r.conversation == conversation
                    && (author == AuthorKind::Agent || (r.uploader == author && r.uploader_id == author_id))
            });
            match record {
                Some(record) if allowed => found.push(record.reference),
                _ => {
                    return Err(ProtocolError::new(
                        ErrorCode::NotFound,
                        format!("no attachment {id} in this conversation"),
                    ));
                }
            }
        }
        Ok(found)
    }

    /// Makes a ticket of a customer's message, assigned within their group.
    async fn leave_message(
        &self,
        contact: kefu_proto::ContactId,
        group: Option<String>,
        conversation: ConversationId,
        leave: kefu_proto::frame::LeaveMessage,
    ) -> crate::Result<kefu_proto::frame::TicketView> {
        let groups = self.relay.store.groups(self.workspace).await?;
        let group = group
            .and_then(|slug| groups.iter().find(|g| g.slug == slug).map(|g| g.id))
            .or_else(|| groups.iter().find(|g| g.is_default).map(|g| g.id));
        let description = match &leave.contact_info {
            Some(info) => format!("{}\n\n联系方式 / contact: {info}", leave.body),
            None => leave.body.clone(),
        };
        let draft = TicketDraft {
            subject: subject_from(&leave.body),
            description,
            priority: Default::default(),
            group,
            contact: Some(contact),
            conversation: Some(conversation),
            assignee: None,
        };
        self.relay.store.create_ticket(self.workspace, draft, Actor::Customer(contact)).await
    }

    fn author(&self) -> (AuthorKind, i64) {
        match &self.identity {
            Identity::Customer { contact, .. } => (AuthorKind::Customer, contact.id.0),
            Identity::Agent(session) => (AuthorKind::Agent, session.view.id.0),
        }
    }

    /// Refuses unless the connection is staff whose role has `permission`.
    fn require(&self, permission: Permission) -> Result<(), ProtocolError> {
        match &self.identity {
            Identity::Agent(session) => permissions::check(session.view.role, permission),
            Identity::Customer { .. } => Err(ProtocolError::new(ErrorCode::Forbidden, "that is for staff")),
        }
    }

    fn agent_only(&self, what: &str) -> Result<(), ProtocolError> {
        match self.identity {
            Identity::Agent(_) => Ok(()),
            Identity::Customer { .. } => Err(ProtocolError::new(ErrorCode::Forbidden, format!("{what} is for agents"))),
        }
    }

    /// The conversation a frame is about. Agents must name one they hold. Customers write
    /// into their open conversation; when `open_if_missing`, their first message opens one.
    async fn target(
        &mut self,
        named: Option<ConversationId>,
        open_if_missing: bool,
    ) -> Result<ConversationId, ProtocolError> {
        self.target_with(named, open_if_missing, None).await.map(|(conversation, _)| conversation)
    }

    /// `target`, for a message, `first`: when the message opens the customer's
    /// conversation it is stored in the same transaction and does not come back; otherwise
    /// it comes back, to be stored as usual.
    async fn target_with(
        &mut self,
        named: Option<ConversationId>,
        open_if_missing: bool,
        first: Option<NewMessage>,
    ) -> Result<(ConversationId, Option<NewMessage>), ProtocolError> {
        match &self.identity {
            Identity::Agent(_) => {
                let conversation =
                    named.ok_or_else(|| ProtocolError::bad_request("conversation_id is required for agents"))?;
                if self.held.contains(&conversation) {
                    Ok((conversation, first))
                } else {
                    Err(ProtocolError::new(
                        ErrorCode::NotFound,
                        format!("conversation {conversation} is not assigned to you"),
                    ))
                }
            }
            Identity::Customer { contact, entry, .. } => {
                match (named, self.open) {
                    (Some(named), open) if open != Some(named) => {
                        return Err(ProtocolError::new(
                            ErrorCode::NotFound,
                            format!("conversation {named} is not your open conversation"),
                        ));
                    }
                    (_, Some(open)) => return Ok((open, first)),
                    (_, None) => {}
                }
                if !open_if_missing {
                    return Err(ProtocolError::new(
                        ErrorCode::Conflict,
                        "no open conversation yet; send a message first",
                    ));
                }
                let (reply_tx, reply) = oneshot::channel();
                let first = first.map(|message| FirstMessage { message, receipt: None });
                let command =
                    HubCommand::Open { contact: contact.clone(), entry: entry.clone(), first, reply: reply_tx };
                let shutting = || ProtocolError::new(ErrorCode::Internal, "the relay is shutting down");
                self.hub.send(command).await.map_err(|_| shutting())?;
                let opened = reply.await.map_err(|_| shutting())??;
                self.open = Some(opened.view.id);
                self.delivered.entry(opened.view.id).or_insert(0);
                Ok((opened.view.id, opened.first.map(|first| first.message)))
            }
        }
    }

    async fn refuse(
        &self,
        sink: &mut Sink,
        error: ProtocolError,
        client_msg_id: Option<String>,
        conversation: Option<ConversationId>,
    ) -> Result<(), Closing> {
        send_frame(sink, &error_frame(error.code, &error.message, client_msg_id, conversation)).await
    }
}

/// The `client_msg_id` of a frame that failed validation, when one can be read, so the
/// client can tell which of its messages was refused.
fn client_msg_id_of(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        client_msg_id: Option<String>,
    }
    serde_json::from_str::<Id>(text)
        .ok()
        .and_then(|id| id.client_msg_id)
        .filter(|id| kefu_proto::limits::check_client_msg_id(id).is_ok())
}

/// The close for a read error: an oversized frame gets 1009 and a reason that names the
/// limit; anything else means the socket is gone.
fn read_error_close(e: axum::Error) -> Closing {
    let text = e.to_string();
    if text.contains("too long")
        || text.contains("too big")
        || text.contains("Space limit")
        || text.contains("capacity")
    {
        Closing::new(close_code::TOO_LARGE, format!("frame exceeds {MAX_FRAME_BYTES} bytes"))
    } else {
        Closing::new(close_code::GOING_AWAY, format!("read failed: {text}"))
    }
}

async fn feed_frame(sink: &mut Sink, frame: &ServerFrame) -> Result<(), Closing> {
    let text = serde_json::to_string(frame).expect("frames serialise");
    sink.feed(Message::Text(text.into())).await.map_err(|_| Closing::new(close_code::GOING_AWAY, "write failed"))
}

async fn send_frame(sink: &mut Sink, frame: &ServerFrame) -> Result<(), Closing> {
    feed_frame(sink, frame).await?;
    sink.flush().await.map_err(|_| Closing::new(close_code::GOING_AWAY, "write failed"))
}
