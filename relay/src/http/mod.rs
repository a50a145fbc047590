//! The HTTP surface: health, the agent API, and the two WebSocket endpoints.
//!
//! ## Layout
//! - this file: routes, extractors (JSON body, path, bearer agent), health, login,
//!   agents, groups, contacts' VIP mark, routing history, WebSocket upgrades;
//! - [`workstation`]: history pages, the customer panel, canned replies, attachments;
//! - [`kb`]: knowledge-base articles and search;
//! - [`tickets`]: tickets, their notes and history;
//! - [`reports`]: the supervisors' reports (JSON or CSV);
//! - [`channels`]: channels, inbound app messages and social webhooks, the replies feed,
//!   deliveries and dead letters, contact merges.

pub mod channels;
pub mod kb;
pub mod reports;
pub mod telemetry;
pub mod tickets;
pub mod workstation;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use kefu_proto::api::{
    AgentPatch, ContactPatch, GroupView, Health, LoginRequest, LoginResponse, NewGroup, RoutingDecisionView,
    RoutingHistory,
};
use kefu_proto::frame::AgentView;
use kefu_proto::limits::{MAX_ATTACHMENT_BYTES, MAX_FRAME_BYTES};
use kefu_proto::{AgentId, ContactId, ConversationId};
use kefu_proto::{ErrorCode, ProtocolError};

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::hub::HubCommand;
use crate::permissions::{self, Permission};
use crate::session::{self, Side};
use crate::store::AgentRecord;
use crate::{RelayState, admin, auth};

/// Largest JSON body the API accepts.
pub const MAX_API_BODY_BYTES: usize = 64 * 1024;

/// Socket buffer sizes for WebSockets: small, because the defaults (128 KiB read buffer
/// each) would cost gigabytes across many idle customers.
const WS_BUFFER_BYTES: usize = 4 * 1024;

/// Every route of [`router`] (besides the widget's static files) as (method, path): the
/// cross-workspace test walks this list, and a test here keeps it equal to the router.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/login"),
    ("POST", "/api/v1/logout"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/agents"),
    ("PATCH", "/api/v1/agents/{id}"),
    ("GET", "/api/v1/groups"),
    ("POST", "/api/v1/groups"),
    ("DELETE", "/api/v1/groups/{slug}"),
    ("GET", "/api/v1/conversations/{id}/routing"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/conversations/{id}/messages"),
    ("POST", "/api/v1/conversations/{id}/reveal"),
    ("POST", "/api/v1/conversations/{id}/attachments"),
    ("POST", "/api/v1/attachments"),
    ("GET", "/api/v1/attachments/{id}"),
    ("GET", "/api/v1/contacts/{id}"),
    ("PATCH", "/api/v1/contacts/{id}"),
    ("POST", "/api/v1/contacts/{id}/merge"),
    ("GET", "/api/v1/channels"),
    ("POST", "/api/v1/channels"),
    ("GET", "/api/v1/channels/{id}"),
    ("PATCH", "/api/v1/channels/{id}"),
    ("GET", "/api/v1/channels/{id}/messages"),
    ("POST", "/api/v1/channels/{id}/messages"),
    ("GET", "/api/v1/channels/{id}/deliveries"),
    ("POST", "/api/v1/channels/{id}/deliveries/{delivery}/retry"),
    ("POST", "/hooks/{id}"),
    ("GET", "/api/v1/canned"),
    ("POST", "/api/v1/canned"),
    ("DELETE", "/api/v1/canned/{id}"),
    ("GET", "/api/v1/kb/articles"),
    ("POST", "/api/v1/kb/articles"),
    ("GET", "/api/v1/kb/articles/{id}"),
    ("PUT", "/api/v1/kb/articles/{id}"),
    ("DELETE", "/api/v1/kb/articles/{id}"),
    ("GET", "/api/v1/kb/search"),
    ("GET", "/api/v1/tickets"),
    ("POST", "/api/v1/tickets"),
    ("GET", "/api/v1/tickets/{id}"),
    ("PATCH", "/api/v1/tickets/{id}"),
    ("POST", "/api/v1/tickets/{id}/notes"),
    ("GET", "/api/v1/reports/summary"),
    ("GET", "/api/v1/reports/agents"),
    ("GET", "/api/v1/reports/arrivals"),
    ("GET", "/ws/customer"),
    ("GET", "/ws/agent"),
];

/// The relay's routes.
pub fn router(relay: Arc<RelayState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(telemetry::scrape))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/agents/{id}", patch(patch_agent))
        .route("/api/v1/groups", get(list_groups).post(create_group))
        .route("/api/v1/groups/{slug}", delete(delete_group))
        .route("/api/v1/conversations/{id}/routing", get(routing_history))
        .route("/api/v1/events", get(events))
        .route("/api/v1/conversations/{id}/messages", get(workstation::messages))
        .route("/api/v1/conversations/{id}/reveal", post(workstation::reveal))
        .route(
            "/api/v1/conversations/{id}/attachments",
            post(workstation::upload_as_agent).layer(DefaultBodyLimit::max(MAX_ATTACHMENT_BYTES)),
        )
        .route(
            "/api/v1/attachments",
            post(workstation::upload_as_customer)
                .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(MAX_ATTACHMENT_BYTES))
                .layer::<_, std::convert::Infallible>(customer_cors()),
        )
        .route(
            "/api/v1/attachments/{id}",
            get(workstation::download).layer::<_, std::convert::Infallible>(customer_cors()),
        )
        .route("/api/v1/contacts/{id}", get(workstation::contact).patch(patch_contact))
        .route("/api/v1/contacts/{id}/merge", post(channels::merge))
        .route("/api/v1/channels", get(channels::list).post(channels::create))
        .route("/api/v1/channels/{id}", get(channels::get).patch(channels::update))
        .route("/api/v1/channels/{id}/messages", get(channels::feed).post(channels::inbound))
        .route("/api/v1/channels/{id}/deliveries", get(channels::deliveries))
        .route("/api/v1/channels/{id}/deliveries/{delivery}/retry", post(channels::retry))
        .route("/hooks/{id}", post(channels::hook))
        .route("/api/v1/canned", get(workstation::list_canned).post(workstation::create_canned))
        .route("/api/v1/canned/{id}", delete(workstation::delete_canned))
        .route("/api/v1/kb/articles", get(kb::list).post(kb::create))
        .route("/api/v1/kb/articles/{id}", get(kb::get).put(kb::replace).delete(kb::delete))
        .route("/api/v1/kb/search", get(kb::search))
        .route("/api/v1/tickets", get(tickets::list).post(tickets::create))
        .route("/api/v1/tickets/{id}", get(tickets::get).patch(tickets::update))
        .route("/api/v1/tickets/{id}/notes", post(tickets::add_note))
        .route("/api/v1/reports/summary", get(reports::summary))
        .route("/api/v1/reports/agents", get(reports::agents))
        .route("/api/v1/reports/arrivals", get(reports::arrivals))
        .route("/ws/customer", get(ws_customer))
        .route("/ws/agent", get(ws_agent))
        .merge(crate::widget::routes())
        .fallback(|| async { Error::refused(ErrorCode::NotFound, "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_API_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(relay.clone(), client_address))
        .with_state(relay)
}

/// Behind a reverse proxy listed in `limits.trusted_proxies`, the client is the address
/// the proxy names in `X-Forwarded-For` (the nearest one it did not add itself), and every
/// handler (the login limiter, the customers' limits, logs) sees that address. From any
/// other peer the header is ignored: a client cannot pick its own address.
async fn client_address(
    State(relay): State<Arc<RelayState>>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    let trusted = &relay.config.limits.trusted_proxies;
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    if !trusted.is_empty()
        && let Some(peer) = peer
        && trusted.contains(&peer.ip())
    {
        let forwarded: Vec<&str> = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        if let Some(client) = forwarded_client(&forwarded, trusted) {
            request.extensions_mut().insert(ConnectInfo(SocketAddr::new(client, peer.port())));
        }
    }
    // What this request writes to the event log says where it came from.
    match request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) {
        Some(client) => crate::audit::CLIENT.scope(client, next.run(request)).await,
        None => next.run(request).await,
    }
}

/// The client in an `X-Forwarded-For` chain: from the right, the first address that is
/// not one of our proxies. `None` when the chain is empty or unreadable.
fn forwarded_client(chain: &[&str], trusted: &[std::net::IpAddr]) -> Option<std::net::IpAddr> {
    let mut client = None;
    for entry in chain.iter().rev() {
        let ip: std::net::IpAddr = entry.trim().parse().ok()?;
        client = Some(ip);
        if !trusted.contains(&ip) {
            break;
        }
    }
    client
}

/// Cross-origin access for what a customer's browser calls from the shop's page (the
/// widget): tokens travel in the Authorization header, never in cookies, so the relay
/// lets any page ask and then checks the page's origin against the token's workspace.
fn customer_cors() -> tower_http::cors::CorsLayer {
    use axum::http::{Method, header};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

async fn healthz(State(relay): State<Arc<RelayState>>) -> Response {
    let database_ok = relay.store.ping().await;
    let health = Health {
        status: if database_ok { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: if database_ok { "ok" } else { "unavailable" }.into(),
    };
    let status = if database_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(health)).into_response()
}

/// JSON body extractor whose rejections use the API's error shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::BytesRejection(_)) => {
                Err(Error::refused(ErrorCode::TooLarge, format!("body exceeds {MAX_API_BODY_BYTES} bytes")))
            }
            Err(e) => Err(Error::refused(ErrorCode::BadRequest, e.body_text())),
        }
    }
}

async fn login(
    State(relay): State<Arc<RelayState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>> {
    if request.email.len() > 254 || request.password.len() > 1024 {
        return Err(Error::refused(ErrorCode::TooLarge, "e-mail or password too long"));
    }
    let email = request.email.trim().to_lowercase();
    relay.login_limiter.check(peer.ip(), &email)?;
    if let Err(secs) = relay.lockout.check(&email, now_ms()) {
        return Err(Error::refused(
            ErrorCode::RateLimited,
            format!("too many failed logins for this e-mail; try again in {secs} s"),
        ));
    }
    let wrong = || Error::refused(ErrorCode::Unauthorized, "wrong e-mail or password");
    let mut candidates = relay.store.agents_by_email(&email).await?;
    if let Some(slug) = &request.workspace {
        candidates.retain(|(_, s)| s == slug);
    }
    // The password is checked against every candidate (almost always one), so that
    // nothing about an e-mail is revealed without its password.
    let password = request.password;
    let hashes: Vec<String> = candidates.iter().map(|(a, _)| a.password_hash.clone()).collect();
    let matched: Vec<bool> = tokio::task::spawn_blocking(move || {
        if hashes.is_empty() {
            // Spend the same effort as a real check so timing does not reveal which
            // e-mails exist.
            auth::verify_password(&password, &dummy_hash());
        }
        hashes.iter().map(|hash| auth::verify_password(&password, hash)).collect()
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    let mut matching = candidates.into_iter().zip(matched).filter(|(_, ok)| *ok).map(|((agent, _), _)| agent);
    let agent = match (matching.next(), matching.next()) {
        (Some(agent), None) => agent,
        (None, _) => {
            tracing::info!(%email, %peer, "login refused");
            if let Some(secs) = relay.lockout.failed(&email, now_ms()) {
                tracing::warn!(%email, %peer, secs, "login locked after repeated failures");
            }
            return Err(wrong());
        }
        (Some(_), Some(_)) => {
            return Err(Error::refused(
                ErrorCode::Conflict,
                "this e-mail and password match in several workspaces; add \"workspace\" to the request",
            ));
        }
    };
    relay.lockout.succeeded(&email);
    let token = auth::new_agent_token();
    let expires_at = now_ms() + relay.config.auth.token_ttl_hours as i64 * 3_600_000;
    relay.store.add_agent_token(&agent, &auth::token_hash(&token), expires_at, &peer.ip().to_string()).await?;
    tracing::info!(agent = %agent.view.id, %peer, "agent logged in");
    Ok(Json(LoginResponse { token, expires_at, agent: agent.view }))
}

/// A fixed Argon2id hash, computed once, to verify against when the e-mail is unknown.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| auth::hash_password("kefu-dummy-password").expect("hashing works")).clone()
}

/// An agent authenticated by `Authorization: Bearer <token>`.
pub struct AuthedAgent {
    /// The agent.
    pub agent: AgentRecord,
    /// The token's hash, for logout.
    pub token_hash: Vec<u8>,
}

impl FromRequestParts<Arc<RelayState>> for AuthedAgent {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, relay: &Arc<RelayState>) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::refused(ErrorCode::Unauthorized, "missing Authorization: Bearer token"))?;
        let token = kefu_proto::limits::bearer_credential(header)
            .ok_or_else(|| Error::refused(ErrorCode::Unauthorized, "Authorization must be: Bearer <token>"))?;
        let token_hash = auth::token_hash(token);
        match relay.store.agent_by_token(&token_hash).await? {
            Some(agent) => Ok(AuthedAgent { agent, token_hash }),
            None => Err(Error::refused(ErrorCode::Unauthorized, "invalid, expired or revoked token")),
        }
    }
}

async fn logout(State(relay): State<Arc<RelayState>>, authed: AuthedAgent) -> Result<StatusCode> {
    relay.store.revoke_agent_token(&authed.token_hash).await?;
    // Sessions opened with this token end now, not at their next reconnect.
    if let Some(hub) = relay.hubs.get(authed.agent.workspace_id) {
        let _ = hub.send(HubCommand::Revoked { token_hash: authed.token_hash.clone() }).await;
    }
    relay
        .store
        .append_event(
            authed.agent.workspace_id,
            "agent.logout",
            "agent",
            Some(authed.agent.view.id.0),
            None,
            &serde_json::json!({}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(authed: AuthedAgent) -> Json<AgentView> {
    Json(authed.agent.view)
}

impl AuthedAgent {
    /// Refuses with `forbidden` unless the agent's role has `permission`
    /// ([`crate::permissions`], the one table).
    pub(crate) fn require(&self, permission: Permission) -> Result<()> {
        Ok(permissions::check(self.agent.view.role, permission)?)
    }

    fn workspace(&self) -> kefu_proto::WorkspaceId {
        self.agent.workspace_id
    }
}

/// A path parameter whose rejection uses the API's error shape.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(e) => Err(Error::refused(ErrorCode::BadRequest, e.body_text())),
        }
    }
}

/// Tells the workspace's hub, if it runs.
async fn tell_hub(relay: &RelayState, workspace: kefu_proto::WorkspaceId, command: HubCommand) {
    if let Some(hub) = relay.hubs.get(workspace) {
        let _ = hub.send(command).await;
    }
}

async fn list_agents(State(relay): State<Arc<RelayState>>, authed: AuthedAgent) -> Result<Json<Vec<AgentView>>> {
    let agents = relay.store.agents(authed.workspace()).await?;
    Ok(Json(agents.into_iter().map(|a| a.view).collect()))
}

async fn patch_agent(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<AgentPatch>,
) -> Result<Json<AgentView>> {
    if patch.max_concurrent.is_some() || patch.presence.is_some() {
        authed.require(Permission::ChangeAgentLoad)?;
    }
    if patch.skills.is_some() {
        authed.require(Permission::ChangeAgentSkills)?;
    }
    let workspace = authed.workspace();
    let by = authed.agent.view.id;
    if patch.presence == Some(kefu_proto::frame::Presence::Offline) {
        return Err(Error::refused(
            ErrorCode::BadRequest,
            "presence is online or away; offline is not being connected",
        ));
    }
    let agent =
        admin::update_agent(&relay.store, workspace, AgentId(id), patch.max_concurrent, patch.skills.as_deref())
            .await?;
    let view = agent.view.clone();
    if patch.max_concurrent.is_some() || patch.skills.is_some() {
        let data =
            serde_json::json!({ "agent_id": id, "max_concurrent": patch.max_concurrent, "skills": patch.skills });
        relay.store.append_event(workspace, "agent.changed", "agent", Some(by.0), None, &data).await?;
        tell_hub(&relay, workspace, HubCommand::AgentChanged { agent: Box::new(agent) }).await;
    }
    if let Some(status) = patch.presence {
        // Presence lives in the hub (it is about connections); the hub records the change.
        let hub =
            relay.hubs.get(workspace).ok_or_else(|| Error::refused(ErrorCode::Internal, "workspace unavailable"))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let origin = crate::audit::client_origin();
        hub.send(HubCommand::SetAgentPresence { agent: AgentId(id), status, by, origin, reply }).await?;
        answer.await.map_err(|_| Error::refused(ErrorCode::Internal, "the relay is shutting down"))??;
    }
    Ok(Json(view))
}

async fn list_groups(State(relay): State<Arc<RelayState>>, authed: AuthedAgent) -> Result<Json<Vec<GroupView>>> {
    let groups = relay.store.groups(authed.workspace()).await?;
    Ok(Json(groups.iter().map(|g| admin::group_view(g, &groups)).collect()))
}

async fn create_group(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiJson(new): ApiJson<NewGroup>,
) -> Result<(StatusCode, Json<GroupView>)> {
    authed.require(Permission::ManageGroups)?;
    let workspace = authed.workspace();
    let group = admin::add_group(&relay.store, workspace, &new).await?;
    let groups = relay.store.groups(workspace).await?;
    // A new default un-defaults the old one: tell the hub about every group.
    for g in &groups {
        tell_hub(&relay, workspace, HubCommand::GroupChanged { group: g.clone() }).await;
    }
    Ok((StatusCode::CREATED, Json(admin::group_view(&group, &groups))))
}

async fn delete_group(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(slug): ApiPath<String>,
) -> Result<StatusCode> {
    authed.require(Permission::ManageGroups)?;
    let group = relay.store.remove_group(authed.workspace(), &slug).await?;
    tell_hub(&relay, authed.workspace(), HubCommand::GroupRemoved { group }).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn patch_contact(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<ContactPatch>,
) -> Result<StatusCode> {
    authed.require(Permission::MarkVip)?;
    let workspace = authed.workspace();
    if let Some(vip) = patch.vip {
        if !relay.store.set_contact_vip(workspace, ContactId(id), vip).await? {
            return Err(Error::refused(ErrorCode::NotFound, format!("no contact {id}")));
        }
        tell_hub(&relay, workspace, HubCommand::ContactChanged { contact: ContactId(id), vip }).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn routing_history(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RoutingHistory>> {
    let conversation = ConversationId(id);
    let records = relay
        .store
        .routing_history(authed.workspace(), conversation)
        .await?
        .ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no conversation {id}")))?;
    let decisions = records
        .into_iter()
        .map(|r| RoutingDecisionView {
            at: r.at,
            kind: r.kind,
            explanation: r.data["explanation"].as_str().unwrap_or_default().to_string(),
            details: r.data.get("details").cloned().unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(Json(RoutingHistory { conversation_id: conversation, decisions }))
}

/// `GET /api/v1/events` parameters.
#[derive(serde::Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: i64,
    kind: Option<String>,
    conversation: Option<i64>,
    limit: Option<u32>,
}

/// Most entries in one page of the event log.
const EVENTS_PAGE_MAX: u32 = 1000;

/// The event log, for admins: oldest first after a cursor, by kind or conversation.
async fn events(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    query: std::result::Result<axum::extract::Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<kefu_proto::api::EventView>>> {
    authed.require(Permission::ReadEventLog)?;
    let axum::extract::Query(q) = query.map_err(|e| Error::refused(ErrorCode::BadRequest, e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > EVENTS_PAGE_MAX {
        return Err(Error::refused(ErrorCode::BadRequest, format!("limit is 1 to {EVENTS_PAGE_MAX}")));
    }
    let conversation = q.conversation.map(ConversationId);
    let page = relay.store.events(authed.workspace(), q.after, q.kind.as_deref(), conversation, limit).await?;
    Ok(Json(page))
}

async fn ws_customer(
    State(relay): State<Arc<RelayState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = headers.get(axum::http::header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_string);
    // One address may not hold or open customer connections without bound.
    let admitted = match relay.customer_limits.connect(peer.ip()) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let mut response = Error::Refused(refusal).into_response();
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            return response;
        }
    };
    upgrade_socket(relay, peer, upgrade, Side::Customer, origin, Some(admitted))
}

async fn ws_agent(
    State(relay): State<Arc<RelayState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade_socket(relay, peer, upgrade, Side::Agent, None, None)
}

/// Upgrades to a WebSocket if a connection slot is free; the slot (and a customer's place
/// in their address's count) is held until the connection ends.
fn upgrade_socket(
    relay: Arc<RelayState>,
    peer: SocketAddr,
    upgrade: WebSocketUpgrade,
    side: Side,
    origin: Option<String>,
    admitted: Option<crate::abuse::OpenConnection>,
) -> Response {
    if relay.shutdown.is_cancelled() {
        return Error::Refused(ProtocolError::new(ErrorCode::Internal, "the relay is shutting down")).into_response();
    }
    let Ok(permit) = relay.connections.clone().try_acquire_owned() else {
        let max = relay.config.limits.max_connections;
        let mut response =
            Error::refused(ErrorCode::RateLimited, format!("the relay holds its maximum of {max} connections"))
                .into_response();
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return response;
    };
    let tracker = relay.tasks.clone();
    upgrade
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .max_write_buffer_size(MAX_FRAME_BYTES * 4)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| {
            // A combinator, not an `async` block around `serve(…).await`: the block would
            // keep the socket, or the session future twice, in the state every connection
            // holds for its life.
            let session = session::serve(socket, side, relay, peer, origin);
            tracker.track_future(futures_util::FutureExt::map(session, move |()| {
                drop(permit);
                drop(admitted);
            }))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_nearest_address_our_proxies_did_not_add() {
        let proxies: Vec<std::net::IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        assert_eq!(forwarded_client(&["203.0.113.5"], &proxies), ip("203.0.113.5"));
        // A client that sends its own header: only the address our proxy added counts.
        assert_eq!(forwarded_client(&["1.2.3.4", " 203.0.113.5"], &proxies), ip("203.0.113.5"));
        assert_eq!(forwarded_client(&["203.0.113.5", "10.0.0.2"], &proxies), ip("203.0.113.5"));
        assert_eq!(forwarded_client(&[], &proxies), None);
        assert_eq!(forwarded_client(&["not an address"], &proxies), None);
    }

    /// `ROUTES` lists exactly the routes `router` declares, with their methods (read from
    /// this file's source, so a new route cannot be left out of the cross-workspace test).
    #[test]
    fn the_route_list_is_the_router() {
        let source = include_str!("mod.rs");
        let body = source.split("pub fn router(").nth(1).unwrap().split(".merge(").next().unwrap();
        let mut declared: Vec<(String, String)> = Vec::new();
        for part in body.split(".route(").skip(1) {
            let path = part.split('"').nth(1).unwrap().to_string();
            let chain = part.split_once(',').map_or("", |(_, rest)| rest);
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = chain.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0 || !chain.as_bytes()[i - 1].is_ascii_alphanumeric() && chain.as_bytes()[i - 1] != b'_'
                });
                if called {
                    declared.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        declared.sort();
        let mut listed: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        listed.sort();
        assert_eq!(declared, listed);
    }
}
