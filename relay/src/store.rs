//! The database: opening it, migrations, and the queries that are not on the message hot
//! path (that one is [`crate::journal`]'s).
//!
//! Two pools over one SQLite file in WAL mode: a single-connection *writer* pool, so that
//! writes never contend for SQLite's one write lock inside the process, and a *reader* pool
//! for history, logins and lookups, which WAL lets run beside the writer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use kefu_proto::frame::{
    AgentRef, AgentView, Author, AuthorKind, BodyFormat, ContactView, ConversationView, MessageFrame, Role,
};
use kefu_proto::{AgentId, ContactId, ConversationId, Seq, UnixMillis, WorkspaceId};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::clock::now_ms;
use crate::error::{Error, Result};

/// Migrations, embedded in the binary at build time and applied at start.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The slug of the workspace created on first start.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// One connection: the only one that writes.
    pub(crate) writer: SqlitePool,
    /// Several connections for reads.
    pub(crate) reader: SqlitePool,
}

/// A workspace as the relay needs it.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Its id.
    pub id: WorkspaceId,
    /// Short unique name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Public key for customer clients.
    pub widget_key: String,
}

/// An agent row, with its password hash (never sent anywhere).
#[derive(Debug, Clone)]
pub struct AgentRecord {
    /// Which workspace the agent works in.
    pub workspace_id: WorkspaceId,
    /// What clients see.
    pub view: AgentView,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A non-closed conversation, as loaded at start to rebuild in-memory state.
#[derive(Debug, Clone)]
pub struct OpenConversationRecord {
    /// The conversation as clients see it (assignee name filled in).
    pub view: ConversationView,
    /// When it was assigned, if it is.
    pub assigned_at: Option<UnixMillis>,
    /// When it was resolved, if it is.
    pub resolved_at: Option<UnixMillis>,
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir`, applies migrations and makes
    /// sure the default workspace exists.
    pub async fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Config(format!("cannot create data dir {}: {e}", data_dir.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("kefu.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk (fsync'd) before it returns, so an ack never
            // precedes durability. Group commit amortises the cost.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer =
            SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(options.clone()).await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        let store = Store { writer, reader };
        store.ensure_default_workspace().await?;
        Ok(store)
    }

    /// Closes both pools; the WAL is checkpointed when the last connection closes.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.reader).await.is_ok()
    }

    async fn ensure_default_workspace(&self) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO workspaces (slug, name, widget_key, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (slug) DO NOTHING",
        )
        .bind(DEFAULT_WORKSPACE)
        .bind("Default workspace")
        .bind(crate::auth::new_widget_key())
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Every workspace.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>> {
        let rows = sqlx::query("SELECT id, slug, name, widget_key FROM workspaces ORDER BY id")
            .fetch_all(&self.writer)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Workspace {
                id: WorkspaceId(r.get("id")),
                slug: r.get("slug"),
                name: r.get("name"),
                widget_key: r.get("widget_key"),
            })
            .collect())
    }

    /// The workspace with this slug.
    pub async fn workspace_by_slug(&self, slug: &str) -> Result<Workspace> {
        self.workspaces()
            .await?
            .into_iter()
            .find(|w| w.slug == slug)
            .ok_or_else(|| Error::Config(format!("no workspace '{slug}'")))
    }

    // ---- agents -----------------------------------------------------------------------

    /// Creates an agent. Fails with `conflict` if the e-mail is taken in the workspace.
    pub async fn add_agent(
        &self,
        workspace: WorkspaceId,
        email: &str,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> Result<AgentId> {
        let result = sqlx::query(
            "INSERT INTO agents (workspace_id, email, name, role, password_hash, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(workspace.0)
        .bind(email)
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_ms())
        .execute(&self.writer)
        .await;
        match result {
            Ok(done) => {
                let id = AgentId(done.last_insert_rowid());
                self.append_event(
                    workspace,
                    "agent.created",
                    "admin",
                    None,
                    None,
                    &serde_json::json!({"agent_id": id, "email": email, "role": role.as_str()}),
                )
                .await?;
                Ok(id)
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(Error::refused(
                kefu_proto::ErrorCode::Conflict,
                format!("an agent with e-mail {email} already exists"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Agents of a workspace, by id.
    pub async fn agents(&self, workspace: WorkspaceId) -> Result<Vec<AgentRecord>> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, email, name, role, password_hash, max_concurrent
             FROM agents WHERE workspace_id = ? AND disabled_at IS NULL ORDER BY id",
        )
        .bind(workspace.0)
        .fetch_all(&self.writer)
        .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// Agents with this e-mail, in every workspace (login finds the one meant).
    pub async fn agents_by_email(&self, email: &str) -> Result<Vec<(AgentRecord, String)>> {
        let rows = sqlx::query(
            "SELECT a.id, a.workspace_id, a.email, a.name, a.role, a.password_hash, a.max_concurrent, w.slug
             FROM agents a JOIN workspaces w ON w.id = a.workspace_id
             WHERE a.email = ? AND a.disabled_at IS NULL",
        )
        .bind(email)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok((agent_from_row(r)?, r.get::<String, _>("slug")))).collect()
    }

    // ---- agent tokens -----------------------------------------------------------------

    /// Stores a new token's hash.
    pub async fn add_agent_token(
        &self,
        agent: &AgentRecord,
        token_hash: &[u8],
        expires_at: UnixMillis,
        from: &str,
    ) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO agent_tokens (token_hash, agent_id, workspace_id, created_at, expires_at, created_from)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(agent.view.id.0)
        .bind(agent.workspace_id.0)
        .bind(now)
        .bind(expires_at)
        .bind(from)
        .execute(&self.writer)
        .await?;
        self.append_event(
            agent.workspace_id,
            "agent.login",
            "agent",
            Some(agent.view.id.0),
            None,
            &serde_json::json!({"from": from}),
        )
        .await
    }

    /// The agent a token belongs to, when it is neither expired nor revoked.
    pub async fn agent_by_token(&self, token_hash: &[u8]) -> Result<Option<AgentRecord>> {
        let row = sqlx::query(
            "SELECT a.id, a.workspace_id, a.email, a.name, a.role, a.password_hash, a.max_concurrent
             FROM agent_tokens t JOIN agents a ON a.id = t.agent_id
             WHERE t.token_hash = ? AND t.revoked_at IS NULL AND t.expires_at > ? AND a.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    /// Revokes a token. Returns whether it was live.
    pub async fn revoke_agent_token(&self, token_hash: &[u8]) -> Result<bool> {
        let done = sqlx::query("UPDATE agent_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- customers --------------------------------------------------------------------

    /// The contact a customer token belongs to, within the workspace.
    pub async fn contact_by_token(&self, workspace: WorkspaceId, token_hash: &[u8]) -> Result<Option<ContactView>> {
        let row = sqlx::query(
            "SELECT c.id, c.name, c.vip FROM customer_tokens t JOIN contacts c ON c.id = t.contact_id
             WHERE t.token_hash = ? AND t.workspace_id = ?",
        )
        .bind(token_hash)
        .bind(workspace.0)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| ContactView {
            id: ContactId(r.get("id")),
            name: r.get("name"),
            vip: r.get::<i64, _>("vip") != 0,
        }))
    }

    // ---- conversations and messages ----------------------------------------------------

    /// Every conversation that is not closed, to rebuild routing and delivery state.
    pub async fn open_conversations(&self, workspace: WorkspaceId) -> Result<Vec<OpenConversationRecord>> {
        let rows = sqlx::query(
            "SELECT v.id, v.state, v.channel_kind, v.assignee_agent_id, v.last_seq, v.created_at,
                    v.queued_at, v.assigned_at, v.resolved_at, c.id AS contact_id, c.name AS contact_name, c.vip,
                    a.name AS agent_name
             FROM conversations v JOIN contacts c ON c.id = v.contact_id
             LEFT JOIN agents a ON a.id = v.assignee_agent_id
             WHERE v.workspace_id = ? AND v.state <> 'closed' ORDER BY v.id",
        )
        .bind(workspace.0)
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| {
                let assignee = r.get::<Option<i64>, _>("assignee_agent_id").map(|id| AgentRef {
                    id: AgentId(id),
                    name: r.get::<Option<String>, _>("agent_name").unwrap_or_default(),
                });
                Ok(OpenConversationRecord {
                    view: ConversationView {
                        id: ConversationId(r.get("id")),
                        state: parse_column(r, "state")?,
                        channel: parse_column(r, "channel_kind")?,
                        contact: ContactView {
                            id: ContactId(r.get("contact_id")),
                            name: r.get("contact_name"),
                            vip: r.get::<i64, _>("vip") != 0,
                        },
                        assignee,
                        last_seq: r.get::<i64, _>("last_seq") as Seq,
                        created_at: r.get("created_at"),
                        queued_at: r.get("queued_at"),
                    },
                    assigned_at: r.get("assigned_at"),
                    resolved_at: r.get("resolved_at"),
                })
            })
            .collect()
    }

    /// Up to `limit` messages of a conversation after `after_seq`, in order.
    pub async fn messages_after(
        &self,
        conversation: ConversationId,
        after_seq: Seq,
        limit: u32,
    ) -> Result<Vec<MessageFrame>> {
        let rows = sqlx::query(
            "SELECT m.seq, m.author_kind, m.author_id, m.client_msg_id, m.body, m.format, m.created_at,
                    CASE m.author_kind WHEN 'agent' THEN a.name WHEN 'customer' THEN c.name END AS author_name
             FROM messages m
             LEFT JOIN agents a ON m.author_kind = 'agent' AND a.id = m.author_id
             LEFT JOIN contacts c ON m.author_kind = 'customer' AND c.id = m.author_id
             WHERE m.conversation_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?",
        )
        .bind(conversation.0)
        .bind(after_seq as i64)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MessageFrame {
                    conversation_id: conversation,
                    seq: r.get::<i64, _>("seq") as Seq,
                    author: Author {
                        kind: parse_column::<AuthorKind>(r, "author_kind")?,
                        id: r.get("author_id"),
                        name: r.get("author_name"),
                    },
                    body: r.get("body"),
                    format: BodyFormat::from_stored(r.get::<&str, _>("format")),
                    client_msg_id: r.get("client_msg_id"),
                    at: r.get("created_at"),
                })
            })
            .collect()
    }

    /// Appends to the audit/event log outside the journal (logins, admin operations).
    pub async fn append_event(
        &self,
        workspace: WorkspaceId,
        kind: &str,
        actor_kind: &str,
        actor_id: Option<i64>,
        conversation: Option<ConversationId>,
        data: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO events (workspace_id, at, kind, actor_kind, actor_id, conversation_id, data)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(workspace.0)
        .bind(now_ms())
        .bind(kind)
        .bind(actor_kind)
        .bind(actor_id)
        .bind(conversation.map(|c| c.0))
        .bind(data.to_string())
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}

fn agent_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<AgentRecord> {
    Ok(AgentRecord {
        workspace_id: WorkspaceId(r.get("workspace_id")),
        view: AgentView {
            id: AgentId(r.get("id")),
            name: r.get("name"),
            email: r.get("email"),
            role: parse_column(r, "role")?,
            max_concurrent: r.get::<i64, _>("max_concurrent").max(0) as u32,
        },
        password_hash: r.get("password_hash"),
    })
}

/// Reads a text column into one of the protocol's string enums.
fn parse_column<T: FromStr<Err = String>>(r: &sqlx::sqlite::SqliteRow, column: &str) -> Result<T> {
    r.get::<&str, _>(column).parse().map_err(|e| Error::Internal(format!("column {column}: {e}")))
}
