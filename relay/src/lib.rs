//! # kefu-relay — the kefu relay
//!
//! Takes customers in over WebSocket, routes each conversation to an agent, stores every
//! message durably before acknowledging it, and lets any client resume exactly where it
//! left off. `main.rs` is a thin CLI over this library; tests call [`run`] directly on a
//! listener bound to `127.0.0.1:0`.
//!
//! ## Layout
//! - [`config`]: settings (defaults, TOML file, flags and environment).
//! - [`http`]: routes — `/healthz`, `/api/v1/*`, `/ws/customer`, `/ws/agent`.
//! - [`session`]: one WebSocket connection: hello, catch-up, frames in and out.
//! - [`hub`]: one task per workspace owning live state (connections, open conversations,
//!   presence, routing) and turning commits into acks and deliveries.
//! - [`journal`]: the single writer with group commit; assigns sequence numbers.
//! - [`routing`]: the pure routing core (no I/O, no clock).
//! - [`conversation`]: the pure conversation lifecycle state machine.
//! - [`store`]: the SQLite database, its migrations and non-hot-path queries.
//! - [`auth`]: passwords, tokens, widget keys, login rate limiting.
//! - [`admin`]: operations behind the `agent`, `group` and `workspace` CLI commands.
//! - [`kb`], [`knowledge`]: the knowledge-base search index and the articles it is built
//!   from; [`intent`]: the intent classifier; [`evaluation`]: measuring both.
//! - [`bot`]: the bot's pure decisions (its I/O shell is `hub::bot_worker`);
//!   [`outside`]: the optional language model and the shops' automations.
//! - [`tickets`]: tickets; [`attachments`]: files; [`widget`]: the web widget's assets.
//! - [`channels`]: app and social channels, identities across channels, the outbox's
//!   queries; [`outbox`]: the task that pushes replies to channels' webhooks.
//! - [`metrics`]: the pure report figures; [`reports`]: the facts they are computed from.
//! - [`clock`]: the system clock or a manual one for tests.
//! - [`tls`]: built-in TLS: the reloadable certificate and the listener that serves it.
//! - [`crypto`]: encryption at rest: the keyring, sealed values and files;
//!   [`rotation`]: re-sealing under a new key while the relay serves, and key status.
//! - [`error`]: the crate's error type.
//!
//! ## Data flow of a message
//! session (validate) → journal (batch, fsync, seq) → hub (ack to sender, deliver to the
//! other side) → sessions (skip what the client already holds) → socket.

pub mod abuse;
pub mod admin;
pub mod alert_hook;
pub mod alerts;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod bot;
pub mod channels;
pub mod client_ids;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod crypto;
pub mod erasure;
pub mod error;
pub mod evaluation;
pub mod http;
pub mod hub;
pub mod intent;
pub mod journal;
pub mod kb;
pub mod knowledge;
pub mod metrics;
pub mod msglog;
pub mod outbox;
pub mod outside;
pub mod permissions;
pub mod privacy;
pub mod reports;
pub mod retention;
pub mod rotation;
pub mod routing;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod tickets;
pub mod tls;
pub mod widget;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::serve::ListenerExt;
use kefu_proto::WorkspaceId;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use clock::{Clock, ManualClock};
pub use config::Config;
pub use error::{Error, Result};
pub use store::Store;

/// Commands a hub may have queued before connection tasks wait.
const HUB_COMMAND_QUEUE: usize = 4096;

/// State shared by every request and connection.
pub struct RelayState {
    /// The settings the relay started with.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// The single writer.
    pub journal: journal::JournalHandle,
    /// One hub per workspace.
    pub hubs: Arc<hub::Hubs>,
    /// Widget key → workspace (and web channel, for a channel's own key), for customer
    /// hellos.
    widget_keys: RwLock<HashMap<String, (WorkspaceId, Option<i64>)>>,
    /// Web origins allowed per workspace (empty: any), refreshed from the database.
    origins: RwLock<HashMap<WorkspaceId, Vec<String>>>,
    /// Login attempts per IP and per e-mail.
    pub login_limiter: auth::LoginLimiter,
    /// Failed logins per e-mail, locking out with a back-off.
    pub lockout: auth::Lockout,
    /// Customers' connections per address and messages per workspace.
    pub customer_limits: abuse::CustomerLimits,
    /// One permit per WebSocket connection (`limits.max_connections`).
    pub connections: Arc<Semaphore>,
    /// Cancelled when the relay begins to shut down.
    pub shutdown: CancellationToken,
    /// Connection tasks, awaited at shutdown.
    pub tasks: TaskTracker,
    /// Source of connection ids.
    next_conn: AtomicU64,
    /// The clock conversations run on.
    pub clock: Clock,
    /// Articles, their search index and the intent classifier.
    pub knowledge: Arc<knowledge::Knowledge>,
    /// Operators' metrics.
    pub telemetry: Arc<telemetry::Telemetry>,
}

impl RelayState {
    /// The workspace a widget key belongs to, and its web channel when it is a channel's
    /// own key rather than the workspace's built-in one.
    pub fn widget_key(&self, key: &str) -> Option<(WorkspaceId, Option<i64>)> {
        self.widget_keys.read().expect("widget keys lock").get(key).copied()
    }

    /// Reloads what customer hellos are checked against: widget keys (the workspaces' and
    /// their web channels') and allowed origins. Channels and origins may change through
    /// the API or the CLI.
    pub async fn refresh_customer_access(&self) -> Result<()> {
        let mut keys: HashMap<String, (WorkspaceId, Option<i64>)> = HashMap::new();
        let mut origins: HashMap<WorkspaceId, Vec<String>> = HashMap::new();
        for workspace in self.store.workspaces().await? {
            keys.insert(workspace.widget_key, (workspace.id, None));
            origins.insert(workspace.id, workspace.allowed_origins);
        }
        for (key, workspace, channel) in self.store.web_channel_keys().await? {
            keys.insert(key, (workspace, Some(channel)));
        }
        *self.widget_keys.write().expect("widget keys lock") = keys;
        *self.origins.write().expect("origins lock") = origins;
        Ok(())
    }

    /// Whether a browser page from `origin` may act for a customer of `workspace`.
    /// Clients that send no `Origin` (apps, servers) are not browsers and pass.
    pub fn origin_allowed(&self, workspace: WorkspaceId, origin: Option<&str>) -> bool {
        let origins = self.origins.read().expect("origins lock");
        match (origins.get(&workspace), origin) {
            (Some(allowed), Some(origin)) if !allowed.is_empty() => {
                allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin.trim_end_matches('/')))
            }
            _ => true,
        }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> hub::ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Turns off Nagle's algorithm on an accepted connection. Frames are small and written
/// as they are ready; with Nagle on, a second small write waits for the peer's
/// acknowledgement of the first, which a peer delaying its acknowledgements holds back
/// for 40 ms (what a new conversation's assignment took at any load before this).
pub(crate) fn no_delay(stream: &tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not turn off Nagle's algorithm on a connection");
    }
}

/// Serves on `listener` until `shutdown` completes, then stops accepting, closes every
/// connection with "going away", commits everything the journal holds, and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_with_clock(listener, config, Clock::System, shutdown).await
}

/// [`run`], with conversations and routing on `clock` (tests pass a manual clock to move
/// time forward without waiting).
pub async fn run_with_clock(
    listener: TcpListener,
    config: Config,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    config.check()?;
    tls::install_crypto_provider();
    // A certificate that does not load stops the relay before it opens anything.
    let certificate = match config.tls.files() {
        Some((cert_file, key_file)) => Some(tls::ServerCertificate::load(cert_file, key_file)?),
        None => None,
    };
    let keys = crypto::Keys::load(config.encryption.key_file.as_deref(), config.encryption.keys.as_ref())?;
    match keys.current().active_id() {
        Some(active) => tracing::info!(
            active_key = active,
            keys = keys.current().ids().count(),
            source = ?keys.source(),
            "encryption at rest on: messages, names, tickets, rating comments and files are sealed"
        ),
        None => tracing::warn!(
            "encryption at rest is off: messages, names and files are stored in plaintext (see [encryption] in README.md)"
        ),
    }
    // A relay stopping on the same data dir lets go of the message log within moments.
    let store = Store::open_to_serve(&config.data_dir, keys, std::time::Duration::from_secs(10)).await?;
    let knowledge = Arc::new(knowledge::Knowledge::load(&store, config.bot.intents()?).await?);
    let hubs = Arc::new(hub::Hubs::default());
    let outbox_wake = Arc::new(tokio::sync::Notify::new());
    let telemetry = Arc::new(telemetry::Telemetry::new());
    let mut writer = journal::Journal::new(
        &store,
        clock.clone(),
        hubs.clone(),
        outbox_wake.clone(),
        telemetry.clone(),
        config.journal.max_batch,
    )?;
    if config.journal.message_log {
        writer = writer.with_message_log(&store)?;
    }
    let journal = journal::spawn(writer, config.journal.queue)?;
    store.settle_with(journal.clone());
    let rules =
        bot::Rules { min_confidence: config.bot.min_confidence, max_unresolved_turns: config.bot.max_unresolved_turns };
    let outside = Arc::new(outside::Outside::new(config.bot.llm.clone(), config.bot.automations.clone()));
    let services = hub::bot_worker::BotServices {
        store: store.clone(),
        knowledge: knowledge.clone(),
        outside,
        clock: clock.clone(),
        rules,
    };
    let bot_requests = hub::bot_worker::spawn(Arc::new(services), hubs.clone());
    let alert_rules = config.alerts.rules()?;
    let alert_webhook = config
        .alerts
        .webhook_url
        .clone()
        .map(|url| alert_hook::spawn(url, config.alerts.webhook_secret.clone(), clock.clone()));
    for workspace in store.workspaces().await? {
        let sticky_since = clock.now_ms() - config.routing.sticky_window_ms();
        let start = hub::HubStart {
            workspace: workspace.id,
            workspace_slug: workspace.slug.clone(),
            agents: store.agents(workspace.id).await?,
            groups: store.groups(workspace.id).await?,
            open: store.open_conversations(workspace.id).await?,
            last_agents: store.last_agents(workspace.id, sticky_since).await?,
        };
        tracing::info!(
            workspace = %workspace.slug,
            agents = start.agents.len(),
            groups = start.groups.len(),
            open_conversations = start.open.len(),
            "workspace loaded"
        );
        let bot =
            hub::BotLink { enabled: config.bot.enabled, requests: bot_requests.clone(), knowledge: knowledge.clone() };
        let supervision = hub::SupervisionStart {
            rules: alert_rules,
            ratings: store.recent_ratings(workspace.id, 2 * alert_rules.csat_window).await?,
            webhook: alert_webhook.clone(),
            telemetry: telemetry.clone(),
            masked_roles: config.privacy.masked_roles.clone(),
        };
        let hub = hub::spawn(
            start,
            journal.clone(),
            bot,
            clock.clone(),
            config.routing.clone(),
            supervision,
            HUB_COMMAND_QUEUE,
        );
        hubs.insert(workspace.id, hub);
    }
    let relay = Arc::new(RelayState {
        login_limiter: auth::LoginLimiter::new(
            config.auth.logins_per_minute_per_ip,
            config.auth.logins_per_minute_per_email,
        ),
        lockout: auth::Lockout::new(
            config.auth.lockout_after_failures,
            config.auth.lockout_first_secs as i64 * 1000,
            config.auth.lockout_max_secs as i64 * 1000,
        ),
        customer_limits: abuse::CustomerLimits::new(&config.limits),
        connections: Arc::new(Semaphore::new(config.limits.max_connections)),
        config,
        store: store.clone(),
        journal: journal.clone(),
        hubs: hubs.clone(),
        widget_keys: RwLock::new(HashMap::new()),
        origins: RwLock::new(HashMap::new()),
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
        next_conn: AtomicU64::new(1),
        clock,
        knowledge,
        telemetry,
    });
    relay.refresh_customer_access().await?;
    let upkeep = tokio::spawn(upkeep(relay.clone()));
    let key_reloads = match store.keys().source() {
        crypto::KeySource::File(_) => Some(tokio::spawn(crypto::reload_on_hangup(store.keys().clone()))),
        _ => None,
    };
    let outbox = outbox::Outbox {
        store: store.clone(),
        config: relay.config.channels.clone(),
        clock: relay.clock.clone(),
        wake: outbox_wake,
    };
    let outbox_stop = CancellationToken::new();
    let outbox = tokio::spawn(outbox.run(outbox_stop.clone()));
    tracing::info!(
        listen = %listener.local_addr()?,
        tls = certificate.is_some(),
        data_dir = %relay.config.data_dir.display(),
        "relay serving"
    );

    // The metrics address, when set, serves `/metrics` alone, without a token, and always
    // over plain HTTP: it must be a private address (loopback, or a network only the
    // scraper reaches).
    let metrics_server = match relay.config.metrics.listen {
        Some(address) => {
            let metrics_listener = TcpListener::bind(address).await?;
            tracing::info!(listen = %metrics_listener.local_addr()?, "metrics serving");
            let stop = relay.shutdown.clone();
            let app = http::telemetry::router(relay.clone());
            Some(tokio::spawn(async move {
                axum::serve(metrics_listener, app).with_graceful_shutdown(stop.cancelled_owned()).await
            }))
        }
        None => None,
    };
    let cancel = relay.shutdown.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: closing connections");
        cancel.cancel();
    };
    let app = http::router(relay.clone()).into_make_service_with_connect_info::<SocketAddr>();
    match &certificate {
        None => axum::serve(listener.tap_io(|tcp| no_delay(tcp)), app).with_graceful_shutdown(shutdown).await?,
        Some(certificate) => {
            let reloads = tokio::spawn(tls::reload_on_hangup(certificate.clone()));
            // `tap_io` does nothing to the stream; it makes axum hand handlers the peer's
            // address (`ConnectInfo<SocketAddr>`) from this listener as it does from TCP.
            let listener = tls::TlsListener::new(listener, certificate)?.tap_io(|_| {});
            let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
            reloads.abort();
            served?
        }
    }
    // Connections see the cancellation and close with "going away"; wait for them so that
    // no frame is half-handled when the journal stops.
    relay.shutdown.cancel();
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    relay.tasks.close();
    relay.tasks.wait().await;
    upkeep.abort();
    if let Some(reloads) = key_reloads {
        reloads.abort();
    }
    // Pushes in flight finish (each within its timeout) so an acknowledged delivery is
    // recorded as such.
    outbox_stop.cancel();
    let _ = outbox.await;
    journal.shutdown().await;
    hubs.stop_all();
    store.close().await;
    tracing::info!("relay stopped");
    Ok(())
}

/// Periodic housekeeping that no request should pay for.
async fn upkeep(relay: Arc<RelayState>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    let mut ticks: u64 = 0;
    // Tokens revoked from now on (by `kefu-relay agent revoke`, another process) close
    // their connections; logouts through this relay close theirs at once.
    let mut revoked_since = clock::now_ms();
    loop {
        every.tick().await;
        ticks += 1;
        match relay.store.revoked_since(revoked_since).await {
            Ok(revoked) => {
                for (workspace, token_hash, at) in revoked {
                    revoked_since = revoked_since.max(at + 1);
                    if let Some(hub) = relay.hubs.get(workspace) {
                        let _ = hub.send(hub::HubCommand::Revoked { token_hash }).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading revoked tokens failed"),
        }
        if let Err(e) = relay.knowledge.refresh_if_changed(&relay.store).await {
            tracing::warn!(error = %e, "knowledge base refresh failed");
        }
        if let Err(e) = relay.refresh_customer_access().await {
            tracing::warn!(error = %e, "widget keys and allowed origins refresh failed");
        }
        // A key file edited for a rotation takes effect without a signal too.
        crypto::reload_and_log(relay.store.keys(), "the key file changed");
        // Retention: at start, then every hour.
        if ticks % 720 == 1
            && let Some(cutoff) = relay.config.retention.cutoff(relay.clock.now_ms())
        {
            match relay.store.purge_closed_before(cutoff, &relay.config.data_dir).await {
                Ok(purged) if purged.conversations > 0 => {
                    tracing::info!(
                        conversations = purged.conversations,
                        messages = purged.messages,
                        "retention purged"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention purge failed"),
            }
        }
        if ticks.is_multiple_of(12) {
            relay.login_limiter.shrink();
            relay.lockout.shrink(clock::now_ms());
            relay.customer_limits.shrink();
        }
    }
}
