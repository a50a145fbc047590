//! Channels besides the built-in widget key: more widget keys (`web`), the HTTP API for a
//! shop's backend and apps (`app`), and platforms' webhooks (`social`); and one contact
//! across all of them.
//!
//! This file holds the pure parts (reading a platform's JSON through a mapping, checking
//! inbound signatures, the retry schedule) and the channel, identity, outbox and merge
//! queries on the [`Store`]. The HTTP handlers are in `http/channels.rs`; the task that
//! pushes replies is [`crate::outbox`].
//!
//! Identities: a contact is known by `(channel_kind, external_id)` rows. The web widget
//! adds `web` visitor ids; the shop's own customer id (from app channels, or signed for the
//! widget) is the `shop` identity, the link between channels; a social platform's user is
//! `social` with `<channel id>:<user id>`, since two platforms' ids may collide.

use kefu_proto::api::{
    ChannelPatch, ChannelView, DeliveryState, DeliveryView, NewChannel, OutboundMessage, OutboxCounts, ReplyTo,
    SocialKind, SocialMapping,
};
use kefu_proto::frame::{AttachmentRef, Author, AuthorKind, BodyFormat, ChannelKind, ContactView};
use kefu_proto::limits::{check_external_id, check_name};
use kefu_proto::{ContactId, ConversationId, ErrorCode, ProtocolError, Seq, UnixMillis, WorkspaceId};
use serde_json::Value;
use sqlx::Row;

use crate::crypto::{Field, Keyring};
use crate::error::{Error, Result};
use crate::routing::GroupId;
use crate::store::Store;

/// The identity kind of the shop's own customer id.
pub const SHOP_IDENTITY: &str = "shop";

/// A channel as the relay uses it.
#[derive(Debug, Clone)]
pub struct ChannelRecord {
    /// Its id.
    pub id: i64,
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// Web, app or social.
    pub kind: ChannelKind,
    /// Unique in the workspace.
    pub name: String,
    /// Web: its widget key.
    pub widget_key: Option<String>,
    /// App and social: the shared secret.
    pub secret: Option<String>,
    /// Where replies are pushed.
    pub webhook_url: Option<String>,
    /// Its new conversations' group, by id and slug.
    pub group: Option<(GroupId, String)>,
    /// Its new conversations' queue priority.
    pub priority: Option<u16>,
    /// Social: how to read the platform's JSON.
    pub mapping: Option<SocialMapping>,
    /// When it was added.
    pub created_at: UnixMillis,
    /// Disabled channels take nothing in and push nothing out.
    pub disabled: bool,
}

impl ChannelRecord {
    /// What the API shows; the secret only when `with_secret` (admins).
    pub fn view(&self, outbox: OutboxCounts, with_secret: bool) -> ChannelView {
        ChannelView {
            id: self.id,
            kind: self.kind,
            name: self.name.clone(),
            group: self.group.as_ref().map(|(_, slug)| slug.clone()),
            priority: self.priority,
            widget_key: self.widget_key.clone(),
            secret: if with_secret { self.secret.clone() } else { None },
            webhook_url: self.webhook_url.clone(),
            mapping: self.mapping.clone(),
            outbox,
            created_at: self.created_at,
            disabled: self.disabled,
        }
    }

    /// The message's `via` for clients.
    pub fn via(&self, source: Option<SocialKind>) -> crate::journal::Via {
        crate::journal::Via {
            channel_id: self.id,
            view: kefu_proto::frame::MessageVia { channel: self.kind, name: self.name.clone(), source },
        }
    }
}

// ---- pure: checks, mappings, signatures, retries --------------------------------------------

/// A channel name: like a display name.
pub fn check_channel_name(name: &str) -> std::result::Result<(), ProtocolError> {
    check_name(name)
}

/// A webhook URL: absolute `http` or `https`, bounded.
pub fn check_webhook_url(url: &str) -> std::result::Result<(), ProtocolError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && reqwest::Url::parse(url).is_ok_and(|u| u.host_str().is_some());
    if ok { Ok(()) } else { Err(ProtocolError::bad_request("webhook_url must be an absolute http(s) URL")) }
}

/// A mapping must name the fields it needs with well-formed paths.
pub fn check_mapping(mapping: &SocialMapping) -> std::result::Result<(), ProtocolError> {
    let paths = [Some(&mapping.user_id), Some(&mapping.text), mapping.display_name.as_ref(), mapping.kind.as_ref()];
    for path in paths.into_iter().flatten().chain(mapping.event_id.as_ref()) {
        if path.is_empty() || path.len() > 256 || path.split('.').any(str::is_empty) {
            return Err(ProtocolError::bad_request(format!("mapping path '{path}' must be dotted field names")));
        }
    }
    Ok(())
}

/// The value at a dotted path (`sender.id`, `entry.0.text`): object fields by name, array
/// items by index.
pub fn read_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |value, part| match value {
        Value::Object(map) => map.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A path's value as text: strings as they are, numbers written out (platforms send ids
/// as either).
fn read_text(doc: &Value, path: &str) -> Option<String> {
    match read_path(doc, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One platform event, read through a channel's mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialEvent {
    /// The platform's user id.
    pub user_id: String,
    /// Their display name.
    pub display_name: Option<String>,
    /// The text.
    pub text: String,
    /// Comment, direct message or live chat.
    pub kind: SocialKind,
    /// The platform's id of the event.
    pub event_id: Option<String>,
}

/// Reads an event out of a platform's JSON; a missing or malformed required field is a
/// `bad_request` that names the field and its path.
pub fn map_event(mapping: &SocialMapping, doc: &Value) -> std::result::Result<SocialEvent, ProtocolError> {
    let required = |what: &str, path: &str| {
        read_text(doc, path)
            .ok_or_else(|| ProtocolError::bad_request(format!("{what} not found at '{path}' (a string or number)")))
    };
    let user_id = required("user_id", &mapping.user_id)?;
    check_external_id("user_id", &user_id)?;
    let text = required("text", &mapping.text)?;
    kefu_proto::limits::check_body(&text)?;
    let display_name =
        mapping.display_name.as_deref().and_then(|path| read_text(doc, path)).filter(|name| check_name(name).is_ok());
    let kind = mapping
        .kind
        .as_deref()
        .and_then(|path| read_text(doc, path))
        .and_then(|value| mapping.kinds.get(&value).copied())
        .unwrap_or(mapping.default_kind);
    let event_id = match mapping.event_id.as_deref().and_then(|path| read_text(doc, path)) {
        Some(id) => {
            check_external_id("event_id", &id)?;
            Some(id)
        }
        None => None,
    };
    Ok(SocialEvent { user_id, display_name, text, kind, event_id })
}

/// The client message id a platform event is stored under, so a re-delivered event is
/// stored once: the event id itself when it is a valid client id, else a digest of it.
pub fn client_msg_id_of_event(event_id: &str) -> String {
    if kefu_proto::limits::check_client_msg_id(event_id).is_ok() {
        event_id.to_string()
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(event_id.as_bytes());
        format!("ev-{}", hex::encode(&digest[..24]))
    }
}

/// Why an inbound webhook's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureRefusal {
    /// No signature or timestamp header.
    Missing,
    /// The timestamp is not a number, or too far from now.
    Stale,
    /// The signature does not match the body.
    Mismatch,
}

impl SignatureRefusal {
    /// What the sender is told (401).
    pub fn to_error(self, tolerance_secs: u64) -> ProtocolError {
        let message = match self {
            SignatureRefusal::Missing => "x-kefu-timestamp and x-kefu-signature headers are required".to_string(),
            SignatureRefusal::Stale => {
                format!("x-kefu-timestamp is not within {tolerance_secs} s of the relay's clock")
            }
            SignatureRefusal::Mismatch => "x-kefu-signature does not match the body".to_string(),
        };
        ProtocolError::new(ErrorCode::Unauthorized, message)
    }
}

/// Checks a signed body: the timestamp (Unix seconds) within `tolerance_secs` of
/// `now_secs`, and `sha256=HMAC(secret, "<timestamp>.<body>")`.
pub fn check_signature(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: u64,
) -> std::result::Result<(), SignatureRefusal> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureRefusal::Missing);
    };
    // The signature covers the header's text, so only a number written plainly is taken:
    // `+1800000000` or `01800000000` would be checked against a text nobody signed.
    let text = timestamp.trim();
    let timestamp: i64 = text.parse().ok().filter(|t: &i64| t.to_string() == text).ok_or(SignatureRefusal::Stale)?;
    if now_secs.abs_diff(timestamp) > tolerance_secs {
        return Err(SignatureRefusal::Stale);
    }
    if crate::outside::verify(secret, timestamp, body, signature.trim()) {
        Ok(())
    } else {
        Err(SignatureRefusal::Mismatch)
    }
}

/// The signature a shop's backend makes for a signed-in customer of the widget: hex
/// HMAC-SHA256 of the customer id under the workspace's identity secret.
pub fn identity_signature(identity_secret: &str, customer_id: &str) -> String {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(identity_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(customer_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature` is the identity signature of `customer_id` (constant time).
pub fn identity_signature_valid(identity_secret: &str, customer_id: &str, signature: &str) -> bool {
    use hmac::Mac;
    let Ok(given) = hex::decode(signature) else { return false };
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(identity_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(customer_id.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// When a delivery that failed its `attempts`-th attempt is tried again, or `None` when it
/// is dead-lettered: waits double from `first_ms` up to `max_ms`.
pub fn next_attempt(
    attempts: u32,
    max_attempts: u32,
    first_ms: i64,
    max_ms: i64,
    now: UnixMillis,
) -> Option<UnixMillis> {
    if attempts >= max_attempts {
        return None;
    }
    let doublings = attempts.saturating_sub(1).min(30);
    Some(now + first_ms.saturating_mul(1i64 << doublings).min(max_ms))
}

// ---- the store ---------------------------------------------------------------------------------

/// A delivery due for a push: the message as it leaves, and where to.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The body pushed.
    pub message: OutboundMessage,
    /// Attempts made so far.
    pub attempts: u32,
    /// The channel's webhook.
    pub url: String,
    /// The channel's secret, which signs the push.
    pub secret: String,
}

/// A contact's conversation that is not closed, if any (its id).
const OPEN_CONVERSATION_OF: &str = "SELECT id FROM conversations WHERE contact_id = ? AND state <> 'closed' LIMIT 1";

/// `SELECT` of a channel with its group's slug, followed by the given conditions.
macro_rules! select_channel {
    ($rest:literal) => {
        concat!(
            "SELECT ch.id, ch.workspace_id, ch.kind, ch.name, ch.widget_key, ch.secret, ch.webhook_url,
                    ch.group_id, g.slug AS group_slug, ch.priority, ch.mapping, ch.created_at, ch.disabled_at
             FROM channels ch LEFT JOIN groups g ON g.id = ch.group_id ",
            $rest
        )
    };
}

/// `SELECT` of outbound messages (over `channel_outbox o` and its joins), followed by the
/// given conditions.
macro_rules! select_outbound {
    ($rest:literal) => {
        concat!(
            "SELECT o.id, o.channel_id, o.conversation_id, o.seq, o.attempts, ch.kind, ch.webhook_url, ch.secret,
        m.author_kind, m.author_id, a.name AS agent_name, m.body, m.format, m.attachments, m.created_at,
        (SELECT i.external_id FROM contact_identities i
          WHERE i.contact_id = v.contact_id
            AND ((ch.kind = 'app' AND i.channel_kind = 'shop')
              OR (ch.kind = 'social' AND i.channel_kind = 'social' AND i.external_id LIKE ch.id || ':%'))
          ORDER BY i.id LIMIT 1) AS customer_external,
        (SELECT c.source || ' ' || COALESCE(c.client_msg_id, '') FROM messages c
          WHERE c.conversation_id = o.conversation_id AND c.author_kind = 'customer' AND c.seq < o.seq
            AND c.channel_id = o.channel_id
          ORDER BY c.seq DESC LIMIT 1) AS reply_to
     FROM channel_outbox o
     JOIN channels ch ON ch.id = o.channel_id
     JOIN messages m ON m.conversation_id = o.conversation_id AND m.seq = o.seq
     JOIN conversations v ON v.id = o.conversation_id
     LEFT JOIN agents a ON m.author_kind = 'agent' AND a.id = m.author_id ",
            $rest
        )
    };
}

fn channel_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<ChannelRecord> {
    let mapping = r
        .get::<Option<&str>, _>("mapping")
        .map(serde_json::from_str::<SocialMapping>)
        .transpose()
        .map_err(|e| Error::Internal(format!("channel mapping: {e}")))?;
    Ok(ChannelRecord {
        id: r.get("id"),
        workspace: WorkspaceId(r.get("workspace_id")),
        kind: r.get::<&str, _>("kind").parse().map_err(|e: String| Error::Internal(e))?,
        name: r.get("name"),
        widget_key: r.get("widget_key"),
        secret: r.get("secret"),
        webhook_url: r.get("webhook_url"),
        group: r.get::<Option<i64>, _>("group_id").zip(r.get::<Option<String>, _>("group_slug")),
        priority: r.get::<Option<i64>, _>("priority").map(|p| p.clamp(0, 99) as u16),
        mapping,
        created_at: r.get("created_at"),
        disabled: r.get::<Option<i64>, _>("disabled_at").is_some(),
    })
}

fn outbound_from_row(
    r: &sqlx::sqlite::SqliteRow,
    keyring: &Keyring,
) -> Result<(OutboundMessage, u32, Option<String>, Option<String>)> {
    let channel_id: i64 = r.get("channel_id");
    let kind: &str = r.get("kind");
    let external: Option<String> = r.get("customer_external");
    // Social identities carry their channel as a prefix.
    let customer_id = match external {
        Some(id) if kind == "social" => id.split_once(':').map(|(_, user)| user.to_string()).unwrap_or(id),
        Some(id) => id,
        None => String::new(),
    };
    let reply_to = match (kind, r.get::<Option<String>, _>("reply_to")) {
        ("social", Some(text)) => {
            let (source, event) = text.split_once(' ').unwrap_or((text.as_str(), ""));
            source
                .parse::<SocialKind>()
                .ok()
                .map(|kind| ReplyTo { kind, event_id: (!event.is_empty()).then(|| event.to_string()) })
        }
        _ => None,
    };
    let attachments = r
        .get::<Option<&str>, _>("attachments")
        .map(serde_json::from_str::<Vec<AttachmentRef>>)
        .transpose()
        .map_err(|e| Error::Internal(format!("attachments column: {e}")))?
        .unwrap_or_default();
    let author_kind: AuthorKind = r.get::<&str, _>("author_kind").parse().map_err(|e: String| Error::Internal(e))?;
    let message = OutboundMessage {
        id: r.get("id"),
        channel_id,
        customer_id,
        conversation_id: ConversationId(r.get("conversation_id")),
        seq: r.get::<i64, _>("seq") as Seq,
        author: Author { kind: author_kind, id: r.get("author_id"), name: r.get("agent_name") },
        body: keyring.open(Field::MessageBody, r.get("body"))?,
        format: BodyFormat::from_stored(r.get::<&str, _>("format")),
        attachments,
        at: r.get("created_at"),
        reply_to,
    };
    Ok((message, r.get::<i64, _>("attempts").max(0) as u32, r.get("webhook_url"), r.get("secret")))
}

impl Store {
    // ---- channels ------------------------------------------------------------------------

    /// Adds a channel, with a new secret (app, social) or widget key (web).
    pub async fn add_channel(
        &self,
        workspace: WorkspaceId,
        new: &NewChannel,
        group: Option<GroupId>,
        actor: Option<i64>,
    ) -> Result<ChannelRecord> {
        let (widget_key, secret) = match new.kind {
            ChannelKind::Web => (Some(crate::auth::new_widget_key()), None),
            ChannelKind::App | ChannelKind::Social => (None, Some(crate::auth::new_channel_secret())),
        };
        let mapping = new.mapping.as_ref().map(|m| serde_json::to_string(m).expect("serialises"));
        let result = sqlx::query(
            "INSERT INTO channels (workspace_id, kind, name, widget_key, secret, webhook_url, group_id, priority, mapping, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(workspace.0)
        .bind(new.kind.as_str())
        .bind(&new.name)
        .bind(&widget_key)
        .bind(&secret)
        .bind(&new.webhook_url)
        .bind(group)
        .bind(new.priority.map(i64::from))
        .bind(mapping)
        .bind(crate::clock::now_ms())
        .execute(&self.writer)
        .await;
        let id = match result {
            Ok(done) => done.last_insert_rowid(),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(Error::refused(ErrorCode::Conflict, format!("a channel named '{}' exists", new.name)));
            }
            Err(e) => return Err(e.into()),
        };
        let data = serde_json::json!({"channel_id": id, "kind": new.kind.as_str(), "name": new.name});
        self.append_event(workspace, "channel.created", actor_kind(actor), actor, None, &data).await?;
        self.channel(id).await?.ok_or_else(|| Error::Internal("channel vanished".into()))
    }

    /// A channel by id, in whichever workspace it is.
    pub async fn channel(&self, id: i64) -> Result<Option<ChannelRecord>> {
        let row = sqlx::query(select_channel!("WHERE ch.id = ?")).bind(id).fetch_optional(&self.reader).await?;
        row.as_ref().map(channel_from_row).transpose()
    }

    /// A workspace's channels, oldest first.
    pub async fn channels(&self, workspace: WorkspaceId) -> Result<Vec<ChannelRecord>> {
        let rows = sqlx::query(select_channel!("WHERE ch.workspace_id = ? ORDER BY ch.id"))
            .bind(workspace.0)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(channel_from_row).collect()
    }

    /// Every enabled web channel's widget key, with its workspace and channel.
    pub async fn web_channel_keys(&self) -> Result<Vec<(String, WorkspaceId, i64)>> {
        let rows = sqlx::query(
            "SELECT widget_key, workspace_id, id FROM channels
             WHERE kind = 'web' AND widget_key IS NOT NULL AND disabled_at IS NULL",
        )
        .fetch_all(&self.writer)
        .await?;
        Ok(rows.iter().map(|r| (r.get("widget_key"), WorkspaceId(r.get("workspace_id")), r.get("id"))).collect())
    }

    /// Pending and dead deliveries of a channel.
    pub async fn outbox_counts(&self, channel: i64) -> Result<OutboxCounts> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(state = 'pending'), 0) AS pending, COALESCE(SUM(state = 'dead'), 0) AS dead
             FROM channel_outbox WHERE channel_id = ? AND state IN ('pending', 'dead')",
        )
        .bind(channel)
        .fetch_one(&self.reader)
        .await?;
        Ok(OutboxCounts {
            pending: row.get::<i64, _>("pending").max(0) as u64,
            dead: row.get::<i64, _>("dead").max(0) as u64,
        })
    }

    /// Pending and dead deliveries across every channel (for `/metrics`).
    pub async fn outbox_totals(&self) -> Result<OutboxCounts> {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM channel_outbox WHERE state = 'pending'")
            .fetch_one(&self.reader)
            .await?;
        let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM channel_outbox WHERE state = 'dead'")
            .fetch_one(&self.reader)
            .await?;
        Ok(OutboxCounts { pending: pending.max(0) as u64, dead: dead.max(0) as u64 })
    }

    /// Changes a channel; `group` is the resolved group when the patch names one.
    pub async fn update_channel(
        &self,
        channel: &ChannelRecord,
        patch: &ChannelPatch,
        group: Option<Option<GroupId>>,
        actor: Option<i64>,
    ) -> Result<ChannelRecord> {
        let mut tx = crate::store::begin_write(&self.writer).await?;
        if let Some(group) = group {
            sqlx::query("UPDATE channels SET group_id = ? WHERE id = ?")
                .bind(group)
                .bind(channel.id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(priority) = patch.priority {
            sqlx::query("UPDATE channels SET priority = ? WHERE id = ?")
                .bind(priority.map(i64::from))
                .bind(channel.id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(url) = &patch.webhook_url {
            sqlx::query("UPDATE channels SET webhook_url = ? WHERE id = ?")
                .bind(url)
                .bind(channel.id)
                .execute(&mut *tx)
                .await?;
            // Without a webhook, what waited to be pushed is kept for fetching instead.
            if url.is_none() {
                sqlx::query("UPDATE channel_outbox SET state = 'stored' WHERE channel_id = ? AND state = 'pending'")
                    .bind(channel.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Some(mapping) = &patch.mapping {
            sqlx::query("UPDATE channels SET mapping = ? WHERE id = ?")
                .bind(serde_json::to_string(mapping).expect("serialises"))
                .bind(channel.id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(disabled) = patch.disabled {
            sqlx::query("UPDATE channels SET disabled_at = CASE WHEN ? THEN COALESCE(disabled_at, ?) END WHERE id = ?")
                .bind(disabled)
                .bind(crate::clock::now_ms())
                .bind(channel.id)
                .execute(&mut *tx)
                .await?;
        }
        if patch.rotate_secret && channel.secret.is_some() {
            sqlx::query("UPDATE channels SET secret = ? WHERE id = ?")
                .bind(crate::auth::new_channel_secret())
                .bind(channel.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let data = serde_json::json!({
            "channel_id": channel.id,
            "group": group.map(|g| g.is_some()),
            "priority": patch.priority,
            "webhook_url": patch.webhook_url,
            "mapping": patch.mapping.is_some(),
            "disabled": patch.disabled,
            "rotate_secret": patch.rotate_secret,
        });
        self.append_event(channel.workspace, "channel.updated", actor_kind(actor), actor, None, &data).await?;
        self.channel(channel.id).await?.ok_or_else(|| Error::Internal("channel vanished".into()))
    }

    // ---- identities ------------------------------------------------------------------------

    /// The contact known by this identity, if any.
    pub async fn contact_by_identity(
        &self,
        workspace: WorkspaceId,
        kind: &str,
        external_id: &str,
    ) -> Result<Option<ContactView>> {
        let row = sqlx::query(
            "SELECT c.id, c.name, c.vip FROM contact_identities i JOIN contacts c ON c.id = i.contact_id
             WHERE i.workspace_id = ? AND i.channel_kind = ? AND i.external_id = ?",
        )
        .bind(workspace.0)
        .bind(kind)
        .bind(external_id)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| self.contact_from_row(&r)).transpose()
    }

    /// The contact known by this identity, created (with a name, if given) when there is
    /// none. Two requests racing for a new identity end with one contact.
    pub async fn contact_for_identity(
        &self,
        workspace: WorkspaceId,
        kind: &str,
        external_id: &str,
        name: Option<&str>,
    ) -> Result<ContactView> {
        if let Some(contact) = self.contact_by_identity(workspace, kind, external_id).await? {
            if let (Some(name), None) = (name, &contact.name) {
                sqlx::query("UPDATE contacts SET name = ? WHERE id = ? AND name IS NULL")
                    .bind(self.keys.current().seal(Field::ContactName, name))
                    .bind(contact.id.0)
                    .execute(&self.writer)
                    .await?;
                return Ok(ContactView { name: Some(name.to_string()), ..contact });
            }
            return Ok(contact);
        }
        let now = crate::clock::now_ms();
        let mut tx = crate::store::begin_write(&self.writer).await?;
        let id = sqlx::query("INSERT INTO contacts (workspace_id, name, created_at) VALUES (?, ?, ?)")
            .bind(workspace.0)
            .bind(self.keys.current().seal_opt(Field::ContactName, name))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        let linked = sqlx::query(
            "INSERT INTO contact_identities (workspace_id, contact_id, channel_kind, external_id, created_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(workspace.0)
        .bind(id)
        .bind(kind)
        .bind(external_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if linked == 0 {
            // Someone else created it first: use theirs.
            tx.rollback().await?;
            return self
                .contact_by_identity(workspace, kind, external_id)
                .await?
                .ok_or_else(|| Error::Internal("identity vanished".into()));
        }
        tx.commit().await?;
        Ok(ContactView { id: ContactId(id), name: name.map(str::to_string), vip: false })
    }

    /// Adds an identity to a contact; false when another contact already has it.
    pub async fn link_identity(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        kind: &str,
        external_id: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO contact_identities (workspace_id, contact_id, channel_kind, external_id, created_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(workspace.0)
        .bind(contact.0)
        .bind(kind)
        .bind(external_id)
        .bind(crate::clock::now_ms())
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 1 {
            let data = serde_json::json!({"contact_id": contact, "kind": kind});
            self.append_event(workspace, "contact.linked", "customer", Some(contact.0), None, &data).await?;
        }
        Ok(done.rows_affected() == 1)
    }

    /// The contact's identity of this kind, if it has one.
    pub async fn identity_of(&self, contact: ContactId, kind: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT external_id FROM contact_identities WHERE contact_id = ? AND channel_kind = ? ORDER BY id LIMIT 1",
        )
        .bind(contact.0)
        .bind(kind)
        .fetch_optional(&self.writer)
        .await?)
    }

    /// A new customer token for an existing contact.
    pub async fn issue_customer_token(&self, workspace: WorkspaceId, contact: ContactId) -> Result<String> {
        let token = crate::auth::new_customer_token();
        sqlx::query(
            "INSERT INTO customer_tokens (token_hash, workspace_id, contact_id, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(crate::auth::token_hash(&token))
        .bind(workspace.0)
        .bind(contact.0)
        .bind(crate::clock::now_ms())
        .execute(&self.writer)
        .await?;
        Ok(token)
    }

    /// The workspace's secret for signing customer ids for the widget.
    pub async fn identity_secret(&self, workspace: WorkspaceId) -> Result<String> {
        let secret: Option<String> = sqlx::query_scalar("SELECT identity_secret FROM workspaces WHERE id = ?")
            .bind(workspace.0)
            .fetch_optional(&self.writer)
            .await?
            .flatten();
        secret.ok_or_else(|| Error::Internal("workspace has no identity secret".into()))
    }

    /// Whether the contact has a conversation that is not closed.
    pub async fn has_open_conversation(&self, contact: ContactId) -> Result<bool> {
        let open: Option<i64> =
            sqlx::query_scalar(OPEN_CONVERSATION_OF).bind(contact.0).fetch_optional(&self.writer).await?;
        Ok(open.is_some())
    }

    /// Folds contact `from` into `into`: identities, tokens, conversations, tickets and
    /// ratings move; `from` is marked merged; the event log says who did it. Refused while
    /// `from` has a conversation that is not closed (it belongs to a live exchange).
    /// Returns the merged contact's VIP mark.
    pub async fn merge_contacts(
        &self,
        workspace: WorkspaceId,
        into: ContactId,
        from: ContactId,
        actor_kind: &str,
        actor: Option<i64>,
    ) -> Result<bool> {
        if into == from {
            return Err(Error::refused(ErrorCode::BadRequest, "a contact cannot be merged into itself"));
        }
        let mut tx = crate::store::begin_write(&self.writer).await?;
        let found: Vec<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, merged_into FROM contacts WHERE workspace_id = ? AND id IN (?, ?)")
                .bind(workspace.0)
                .bind(into.0)
                .bind(from.0)
                .fetch_all(&mut *tx)
                .await?;
        if found.len() != 2 {
            return Err(Error::refused(ErrorCode::NotFound, "no such contact in this workspace"));
        }
        if found.iter().any(|(_, merged)| merged.is_some()) {
            return Err(Error::refused(ErrorCode::Conflict, "that contact was already merged into another"));
        }
        let open: Option<i64> = sqlx::query_scalar(OPEN_CONVERSATION_OF).bind(from.0).fetch_optional(&mut *tx).await?;
        if let Some(open) = open {
            return Err(Error::refused(
                ErrorCode::Conflict,
                format!("contact {from} has conversation {open} open; close it before merging"),
            ));
        }
        for sql in [
            "UPDATE contact_identities SET contact_id = ? WHERE contact_id = ?",
            "UPDATE customer_tokens SET contact_id = ? WHERE contact_id = ?",
            "UPDATE conversations SET contact_id = ? WHERE contact_id = ?",
            "UPDATE tickets SET contact_id = ? WHERE contact_id = ?",
            "UPDATE ratings SET contact_id = ? WHERE contact_id = ?",
        ] {
            sqlx::query(sql).bind(into.0).bind(from.0).execute(&mut *tx).await?;
        }
        let vip: i64 = sqlx::query_scalar(
            "UPDATE contacts SET vip = max(vip, (SELECT vip FROM contacts WHERE id = ?)),
                    name = COALESCE(name, (SELECT name FROM contacts WHERE id = ?))
             WHERE id = ? RETURNING vip",
        )
        .bind(from.0)
        .bind(from.0)
        .bind(into.0)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE contacts SET merged_into = ? WHERE id = ?")
            .bind(into.0)
            .bind(from.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let data = serde_json::json!({"into": into, "from": from});
        self.append_event(workspace, "contact.merged", actor_kind, actor, None, &data).await?;
        Ok(vip != 0)
    }

    /// Where a customer's message with this client id was stored, if it was.
    pub async fn message_by_client_id(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        client_msg_id: &str,
    ) -> Result<Option<(ConversationId, Seq)>> {
        self.settle().await?;
        let row = sqlx::query(
            "SELECT conversation_id, seq FROM messages
             WHERE workspace_id = ? AND author_kind = 'customer' AND author_id = ? AND client_msg_id = ?",
        )
        .bind(workspace.0)
        .bind(contact.0)
        .bind(client_msg_id)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|r| (ConversationId(r.get("conversation_id")), r.get::<i64, _>("seq") as Seq)))
    }

    // ---- the outbox --------------------------------------------------------------------------

    /// Deliveries due now, oldest first, at most `limit`; none that waits behind an
    /// earlier pending delivery of the same conversation, so replies arrive in order.
    pub async fn due_deliveries(&self, now: UnixMillis, limit: u32) -> Result<Vec<DueDelivery>> {
        let sql = select_outbound!(
            "WHERE o.state = 'pending' AND o.next_attempt_at <= ? AND ch.disabled_at IS NULL AND ch.webhook_url IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM channel_outbox p
                               WHERE p.conversation_id = o.conversation_id AND p.state = 'pending' AND p.id < o.id)
             ORDER BY o.id LIMIT ?"
        );
        let rows = sqlx::query(sql).bind(now).bind(limit as i64).fetch_all(&self.reader).await?;
        let keyring = self.keys.current();
        let mut due = Vec::with_capacity(rows.len());
        for r in &rows {
            let (message, attempts, url, secret) = outbound_from_row(r, &keyring)?;
            if let (Some(url), Some(secret)) = (url, secret) {
                due.push(DueDelivery { message, attempts, url, secret });
            }
        }
        Ok(due)
    }

    /// Records that the receiver acknowledged a delivery.
    pub async fn delivery_done(&self, id: i64, now: UnixMillis) -> Result<()> {
        sqlx::query(
            "UPDATE channel_outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL
             WHERE id = ?",
        )
        .bind(now)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Records a failed attempt: retried at `next`, or dead-lettered when `None`.
    pub async fn delivery_failed(&self, id: i64, next: Option<UnixMillis>, error: &str) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        sqlx::query(
            "UPDATE channel_outbox SET attempts = attempts + 1, last_error = ?,
                    state = CASE WHEN ? IS NULL THEN 'dead' ELSE 'pending' END,
                    next_attempt_at = COALESCE(?, next_attempt_at)
             WHERE id = ?",
        )
        .bind(error)
        .bind(next)
        .bind(next)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The earliest time a pending delivery falls due, if any.
    pub async fn next_delivery_due(&self) -> Result<Option<UnixMillis>> {
        Ok(sqlx::query_scalar("SELECT min(next_attempt_at) FROM channel_outbox WHERE state = 'pending'")
            .fetch_one(&self.reader)
            .await?)
    }

    /// A channel's replies after the cursor `after`, oldest first (the fetch API).
    pub async fn outbound_page(&self, channel: i64, after: i64, limit: u32) -> Result<Vec<OutboundMessage>> {
        let sql = select_outbound!("WHERE o.channel_id = ? AND o.id > ? ORDER BY o.id LIMIT ?");
        let rows = sqlx::query(sql).bind(channel).bind(after).bind(limit as i64).fetch_all(&self.reader).await?;
        let keyring = self.keys.current();
        rows.iter().map(|r| outbound_from_row(r, &keyring).map(|(m, ..)| m)).collect()
    }

    /// A channel's deliveries, newest first, optionally in one state.
    pub async fn deliveries(
        &self,
        channel: i64,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<DeliveryView>> {
        let rows = sqlx::query(
            "SELECT id, conversation_id, seq, state, attempts, next_attempt_at, last_error, created_at, delivered_at
             FROM channel_outbox WHERE channel_id = ? AND (? IS NULL OR state = ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(channel)
        .bind(state.map(DeliveryState::as_str))
        .bind(state.map(DeliveryState::as_str))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryView {
                    id: r.get("id"),
                    conversation_id: ConversationId(r.get("conversation_id")),
                    seq: r.get::<i64, _>("seq") as Seq,
                    state: r.get::<&str, _>("state").parse().map_err(|e: String| Error::Internal(e))?,
                    attempts: r.get::<i64, _>("attempts").max(0) as u32,
                    next_attempt_at: r.get("next_attempt_at"),
                    last_error: r.get("last_error"),
                    created_at: r.get("created_at"),
                    delivered_at: r.get("delivered_at"),
                })
            })
            .collect()
    }

    /// Puts a dead-lettered delivery back in line, due now, with its attempts reset.
    pub async fn retry_delivery(&self, channel: &ChannelRecord, id: i64, now: UnixMillis, actor: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE channel_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?
             WHERE id = ? AND channel_id = ? AND state = 'dead'",
        )
        .bind(now)
        .bind(id)
        .bind(channel.id)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::refused(ErrorCode::NotFound, format!("no dead delivery {id} on this channel")));
        }
        let data = serde_json::json!({"channel_id": channel.id, "delivery": id});
        self.append_event(channel.workspace, "channel.delivery_retried", "agent", Some(actor), None, &data).await
    }

    /// Remembers an inbound webhook's signature; false when it was seen before (a replay).
    pub async fn remember_hook_signature(&self, channel: i64, signature: &str, now: UnixMillis) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO hook_receipts (channel_id, signature, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(channel)
        .bind(signature)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets signatures older than `before` (their timestamps are refused anyway).
    pub async fn prune_hook_receipts(&self, before: UnixMillis) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM hook_receipts WHERE received_at < ?").bind(before).execute(&self.writer).await?;
        Ok(done.rows_affected())
    }
}

fn actor_kind(actor: Option<i64>) -> &'static str {
    if actor.is_some() { "agent" } else { "admin" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> SocialMapping {
        serde_json::from_value(json!({
            "user_id": "sender.id",
            "display_name": "sender.name",
            "text": "message.text",
            "kind": "type",
            "event_id": "id",
            "kinds": {"comment": "comment", "direct_message": "dm", "live_chat": "live"}
        }))
        .unwrap()
    }

    #[test]
    fn an_event_is_read_through_its_mapping() {
        let doc = json!({
            "id": "evt-9", "type": "live_chat",
            "sender": {"id": 12345, "name": "小王"},
            "message": {"text": "这个有现货吗？"}
        });
        let event = map_event(&mapping(), &doc).unwrap();
        assert_eq!(
            event,
            SocialEvent {
                user_id: "12345".into(),
                display_name: Some("小王".into()),
                text: "这个有现货吗？".into(),
                kind: SocialKind::Live,
                event_id: Some("evt-9".into()),
            }
        );
    }

    #[test]
    fn unknown_kinds_fall_back_and_arrays_are_indexed() {
        let mut m = mapping();
        m.text = "entries.1.text".into();
        m.default_kind = SocialKind::Comment;
        let doc = json!({"type": "story_reply", "sender": {"id": "u1"}, "entries": [{"text": "a"}, {"text": "b"}]});
        let event = map_event(&m, &doc).unwrap();
        assert_eq!((event.text.as_str(), event.kind, event.display_name), ("b", SocialKind::Comment, None));
    }

    #[test]
    fn a_missing_required_field_names_its_path() {
        let doc = json!({"sender": {"id": "u1"}, "message": {}});
        let err = map_event(&mapping(), &doc).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(err.message.contains("message.text"), "{}", err.message);
        let doc = json!({"sender": {"id": {"nested": 1}}, "message": {"text": "hi"}});
        assert!(map_event(&mapping(), &doc).unwrap_err().message.contains("sender.id"));
    }

    #[test]
    fn signatures_need_the_right_secret_body_and_a_fresh_timestamp() {
        let body = br#"{"a":1}"#;
        let now = 1_800_000_000;
        let signature = crate::outside::sign("s3cret", now - 10, body);
        let ts = (now - 10).to_string();
        assert_eq!(check_signature("s3cret", Some(&ts), Some(&signature), body, now, 300), Ok(()));
        assert_eq!(
            check_signature("other", Some(&ts), Some(&signature), body, now, 300),
            Err(SignatureRefusal::Mismatch)
        );
        assert_eq!(
            check_signature("s3cret", Some(&ts), Some(&signature), br#"{"a":2}"#, now, 300),
            Err(SignatureRefusal::Mismatch)
        );
        assert_eq!(
            check_signature("s3cret", Some(&ts), Some(&signature), body, now + 400, 300),
            Err(SignatureRefusal::Stale)
        );
        assert_eq!(check_signature("s3cret", None, Some(&signature), body, now, 300), Err(SignatureRefusal::Missing));
        assert_eq!(
            check_signature("s3cret", Some("soon"), Some(&signature), body, now, 300),
            Err(SignatureRefusal::Stale)
        );
    }

    #[test]
    fn a_signature_is_taken_only_as_its_signer_wrote_it() {
        // Found by the webhook_signature fuzz target: a padded or signed timestamp was read
        // as the plain number (whose text is what was signed), and upper-case hex as the
        // same signature; the replay check remembers accepted signatures by their text.
        let body = br#"{"customer_id": "u-42", "body": "hi"}"#;
        let now = 409_454_036_303_062;
        let signature = crate::outside::sign("s3cret", now, body);
        let check = |timestamp: &str, signature: &str| {
            check_signature("s3cret", Some(timestamp), Some(signature), body, now, 300)
        };
        assert_eq!(check("409454036303062", &signature), Ok(()));
        assert_eq!(check(" 409454036303062 ", &signature), Ok(()));
        for timestamp in ["00409454036303062", "+409454036303062"] {
            assert_eq!(check(timestamp, &signature), Err(SignatureRefusal::Stale), "{timestamp}");
        }
        let digits = signature.strip_prefix("sha256=").unwrap();
        let letter = digits.find(|c: char| c.is_ascii_alphabetic()).unwrap();
        let mut shouted = digits.to_string();
        shouted[letter..=letter].make_ascii_uppercase();
        assert_eq!(check("409454036303062", &format!("sha256={shouted}")), Err(SignatureRefusal::Mismatch));
        let shouted = format!("sha256={}", digits.to_uppercase());
        assert_eq!(check("409454036303062", &shouted), Err(SignatureRefusal::Mismatch));
    }

    #[test]
    fn identity_signatures_verify_only_for_their_customer() {
        let signature = identity_signature("ws-secret", "cust-42");
        assert!(identity_signature_valid("ws-secret", "cust-42", &signature));
        assert!(!identity_signature_valid("ws-secret", "cust-43", &signature));
        assert!(!identity_signature_valid("other", "cust-42", &signature));
        assert!(!identity_signature_valid("ws-secret", "cust-42", "zz"));
    }

    #[test]
    fn retries_back_off_doubling_up_to_the_cap_then_stop() {
        let at = |attempts| next_attempt(attempts, 5, 1_000, 5_000, 0);
        assert_eq!([at(1), at(2), at(3), at(4), at(5)], [Some(1_000), Some(2_000), Some(4_000), Some(5_000), None]);
    }

    #[test]
    fn long_event_ids_become_short_stable_client_ids() {
        assert_eq!(client_msg_id_of_event("evt-9"), "evt-9");
        let long = "x".repeat(100);
        let id = client_msg_id_of_event(&long);
        assert_eq!(id, client_msg_id_of_event(&long));
        assert!(kefu_proto::limits::check_client_msg_id(&id).is_ok());
        assert_ne!(id, client_msg_id_of_event("evt with spaces"));
    }
}
