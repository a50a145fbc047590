//! The database: opening it, migrations, and the queries that are not on the message hot
//! path (that one is [`crate::journal`]'s).
//!
//! Over one SQLite file in WAL mode: a single-connection *writer* pool for the writes off
//! the hot path, a *reader* pool for history, logins and lookups, which WAL lets run beside
//! the writers, and the journal's own connection (`Store::journal_connection`). The two
//! writer connections take turns on SQLite's one write lock: each write transaction takes
//! it at its start (`begin_write`, the journal's `BEGIN IMMEDIATE`), so neither fails
//! for having read a snapshot the other then changed.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use kefu_proto::api::{
    Article, CannedReply, CannedScope, ContactChannel, ContactDetails, ConversationSummary, NewArticle, NewCannedReply,
};
use kefu_proto::frame::{
    AgentRef, AgentView, AttachmentRef, Author, AuthorKind, BodyFormat, ContactView, ConversationView, MessageFrame,
    MessageVia, Role, Skill, SkillLevel,
};
use kefu_proto::{AgentId, ContactId, ConversationId, Seq, UnixMillis, WorkspaceId};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::clock::now_ms;
use crate::crypto::{Field, Keys};
use crate::error::{Error, Result};
use crate::routing::GroupId;

/// Migrations, embedded in the binary at build time and applied at start.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The journal connection's page cache, as SQLite's `cache_size` (negative: KiB): 64 MiB.
/// It holds the pages every open conversation writes to (its messages and its index
/// entries): 2 MiB (SQLite's default) is outgrown by a few hundred busy conversations, and
/// every miss is read back from the WAL. Memory is taken only as pages are used.
const JOURNAL_CACHE_KIB: i64 = -65536;

/// How many pages the WAL may hold before a writer folds it back into the database
/// (SQLite's `wal_autocheckpoint`): 65,536 pages, 256 MiB. Messages spread over many
/// conversations rewrite the same few thousand pages (each conversation's last leaf, its
/// index entries) commit after commit; a checkpoint copies each page once however often
/// it was rewritten, so a long interval copies far less than SQLite's default of 1,000
/// pages, which at 10,000 msg/s copied nearly every page it wrote and kept the disk busy
/// enough to slow every fsync (docs/BENCHMARKS.md, finding 14).
const WAL_CHECKPOINT_PAGES: i64 = 65536;

/// How long a writer waits for the other one's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The fold thread's page cache ([`crate::msglog`]), as `cache_size`: 16 MiB. It folds
/// each second's messages sorted by conversation, so each conversation's pages are
/// touched once per fold, not kept hot between folds; and every page a cache holds stays
/// resident until the cache is full, so a cache larger than the pages one fold touches
/// only makes the process grow for longer (docs/BENCHMARKS.md, Soak).
const FOLD_CACHE_KIB: i64 = -16384;

/// The slug of the workspace created on first start.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Begins a write transaction on the pool's writer that takes SQLite's write lock at once
/// (`BEGIN IMMEDIATE`). The journal writes on a connection of its own, so a transaction
/// that read first and wrote later would fail (`SQLITE_BUSY`, no retry) whenever the
/// journal committed in between; waiting for the lock up front cannot.
pub(crate) async fn begin_write(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The database file.
    path: PathBuf,
    /// One connection for writes other than the journal's (administration, tickets,
    /// channels, retention): the journal has a connection of its own
    /// ([`Store::journal_connection`]), and the two take turns on SQLite's write lock.
    pub(crate) writer: SqlitePool,
    /// Several connections for reads.
    pub(crate) reader: SqlitePool,
    /// What seals and opens customers' words and files ([`crate::crypto`]).
    pub(crate) keys: Keys,
    /// The message log's lock, held while a store opened to serve is open
    /// ([`Store::replay_message_log`]).
    message_log_lock: Option<std::sync::Arc<std::fs::File>>,
    /// The journal, once it runs: queries over `messages` first wait until what it
    /// acknowledged is folded into the table ([`crate::journal::JournalHandle::settle`]).
    journal: std::sync::Arc<std::sync::OnceLock<crate::journal::JournalHandle>>,
}

/// The message log's directory in a data dir ([`crate::msglog`]).
pub fn message_log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("messages.log")
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
    /// Web origins allowed to embed the widget; empty allows every origin.
    pub allowed_origins: Vec<String>,
}

/// An agent row, with its password hash (never sent anywhere).
#[derive(Debug, Clone)]
pub struct AgentRecord {
    /// Which workspace the agent works in.
    pub workspace_id: WorkspaceId,
    /// What clients see (skills by slug).
    pub view: AgentView,
    /// The agent's skills by group id, for routing.
    pub skill_ids: Vec<(GroupId, SkillLevel)>,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A skill group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Its id.
    pub id: GroupId,
    /// Short unique name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Where its conversations escalate.
    pub fallback: Option<GroupId>,
    /// After how long.
    pub escalate_after_secs: Option<u32>,
    /// Escalate to any agent when there is no fallback.
    pub widen: bool,
    /// New conversations without a chosen group go here.
    pub is_default: bool,
}

/// Which side of a sequence number to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRange {
    /// Messages after this seq, oldest first.
    After(Seq),
    /// Messages before this seq (the latest of them), oldest first.
    Before(Seq),
}

/// An uploaded file.
#[derive(Debug, Clone)]
pub struct AttachmentRecord {
    /// What messages carry.
    pub reference: AttachmentRef,
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// The conversation it was uploaded into.
    pub conversation: ConversationId,
    /// Customer or agent.
    pub uploader: AuthorKind,
    /// Contact id or agent id.
    pub uploader_id: i64,
    /// SHA-256 of the content.
    pub sha256: Vec<u8>,
}

/// One routing decision as recorded.
#[derive(Debug, Clone)]
pub struct RoutingRecord {
    /// When.
    pub at: UnixMillis,
    /// What kind of decision.
    pub kind: String,
    /// The recorded reasons.
    pub data: serde_json::Value,
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
    /// Its target group.
    pub group_id: Option<GroupId>,
    /// Whether an agent replied since it was last assigned.
    pub answered: bool,
    /// Its channel's own queue priority, if it has one.
    pub channel_priority: Option<u16>,
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir`, applies migrations and makes
    /// sure the default workspace exists. Nothing is sealed; sealed values do not open
    /// (see [`Store::open_with_keys`]).
    pub async fn open(data_dir: &Path) -> Result<Store> {
        Store::open_with_keys(data_dir, Keys::off()).await
    }

    /// [`Store::open`], sealing what it writes and opening what it reads with `keys`.
    /// A message log another process holds (a relay serving this data dir) is left to it.
    pub async fn open_with_keys(data_dir: &Path, keys: Keys) -> Result<Store> {
        Store::open_inner(data_dir, keys, None).await
    }

    /// [`Store::open_with_keys`] for the relay that will serve the data dir: it must hold
    /// the message log, so it waits up to `wait` for a process that holds it (a relay
    /// stopping) to let go, and fails if none does (another relay serves the data dir).
    pub async fn open_to_serve(data_dir: &Path, keys: Keys, wait: Duration) -> Result<Store> {
        Store::open_inner(data_dir, keys, Some(wait)).await
    }

    async fn open_inner(data_dir: &Path, keys: Keys, wait_for_log: Option<Duration>) -> Result<Store> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Config(format!("cannot create data dir {}: {e}", data_dir.display())))?;
        let path = data_dir.join("kefu.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk (fsync'd) before it returns, so an ack never
            // precedes durability. Group commit amortises the cost.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Statement and savepoint journals (the original of every page a statement
            // that may fail halfway touches) in memory: as files they cost a temporary
            // file per transaction and two writes per page changed.
            .pragma("temp_store", "memory");
        let writer_options = options.clone().pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string());
        let writer =
            SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(writer_options).await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        let mut store = Store { path, writer, reader, keys, message_log_lock: None, journal: Default::default() };
        store.replay_message_log(&message_log_dir(data_dir), wait_for_log).await?;
        store.ensure_default_workspace().await?;
        Ok(store)
    }

    /// Replays a message log left in `dir` into the `messages` table and clears it, so
    /// that nothing reads the tables before every message the log holds is in them.
    ///
    /// Only one process may do this, and not while a relay writes the log: the store
    /// takes the log's lock (`dir/lock`) while it replays. When another process holds it
    /// (a relay serving this data dir, seen by a command-line tool), the log is that
    /// process's to fold and is left alone. A store for serving (`wait_for_log`) waits
    /// that long for the lock instead, fails after, and keeps it while open.
    ///
    /// A record whose conversation is not in the database (the log outlived a database
    /// restored from an older backup) is left out: messages belong to a conversation.
    /// Records go in with `INSERT OR IGNORE`, so a message already folded stays as it is.
    async fn replay_message_log(&mut self, dir: &Path, wait_for_log: Option<Duration>) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
        let deadline = wait_for_log.map(|wait| std::time::Instant::now() + wait);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => match deadline {
                    None => return Ok(()),
                    Some(deadline) if std::time::Instant::now() >= deadline => {
                        return Err(Error::Config(format!(
                            "another process holds the message log in {}: is another relay serving this data dir?",
                            dir.display()
                        )));
                    }
                    Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                },
                Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
            }
        }
        let records = crate::msglog::read_log(dir)?;
        if !records.is_empty() {
            let replayed = crate::msglog::fold_file(&self.path, &records)?;
            tracing::info!(records = records.len(), replayed, "replayed the message log");
        }
        crate::msglog::clear(dir)?;
        // The serving relay keeps the log; a tool lets go once the log is replayed, so that
        // a relay starting beside it does not wait for it.
        if wait_for_log.is_some() {
            self.message_log_lock = Some(std::sync::Arc::new(lock));
        }
        Ok(())
    }

    /// Opens the journal's own connection: synchronous, for the journal's thread, which
    /// writes a whole batch without handing each statement to another thread (sqlx runs
    /// every statement on a worker thread of its own, two thread switches per statement).
    /// The pool's settings, with the larger page cache the journal's spread-out writes need
    /// and without foreign-key enforcement (below).
    pub(crate) fn journal_connection(&self) -> Result<rusqlite::Connection> {
        self.synchronous_writer(JOURNAL_CACHE_KIB)
    }

    /// Opens the fold thread's connection ([`crate::msglog`]): the journal's settings with
    /// a smaller page cache ([`FOLD_CACHE_KIB`]).
    pub(crate) fn fold_connection(&self) -> Result<rusqlite::Connection> {
        self.synchronous_writer(FOLD_CACHE_KIB)
    }

    /// A synchronous connection for a writer thread, with a page cache of `cache_kib`
    /// (SQLite's `cache_size`, negative: KiB).
    fn synchronous_writer(&self, cache_kib: i64) -> Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // As on the pool (`open_with_keys`): a commit is fsync'd before it returns.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // No foreign-key enforcement on this connection. Every reference the journal
        // writes is one it has just looked up or written itself (a message's conversation
        // through its cursor, checked against the workspace; contacts, agents and channels
        // from the hubs' and sessions' lookups), and enforcement would make every insert a
        // statement that may fail halfway, which SQLite guards with a statement journal
        // copying each page first: a fifth of the journal's instructions per message
        // (docs/BENCHMARKS.md, finding 16). The pool's connections keep enforcing them.
        conn.pragma_update(None, "foreign_keys", false)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "cache_size", cache_kib)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        // Every statement the journal runs, prepared once.
        conn.set_prepared_statement_cache_capacity(64);
        let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Internal(format!("the database is in {mode} mode, not WAL")));
        }
        Ok(conn)
    }

    /// Makes the queries over `messages` wait for `journal` to have folded what it
    /// acknowledged (set once, when the relay starts it).
    pub(crate) fn settle_with(&self, journal: crate::journal::JournalHandle) {
        let _ = self.journal.set(journal);
    }

    /// Waits until every message acknowledged so far is in the `messages` table.
    pub(crate) async fn settle(&self) -> Result<()> {
        match self.journal.get() {
            Some(journal) => journal.settle().await,
            None => Ok(()),
        }
    }

    /// Overwrites what the message log holds once it is folded, wherever the log is
    /// written: by this process's journal, or by a relay serving the same data dir (asked
    /// through the log's directory, waiting up to 30 s). Nothing to do when no segment
    /// exists (this process replayed and removed them, or the relay runs without a log).
    pub(crate) async fn scrub_message_log(&self) -> Result<()> {
        if let Some(journal) = self.journal.get() {
            return journal.scrub().await;
        }
        let dir = message_log_dir(self.data_dir());
        if self.message_log_lock.is_some() || !crate::msglog::has_segments(&dir)? {
            return Ok(());
        }
        crate::msglog::request_scrub(&dir, Duration::from_secs(30)).await
    }

    /// The data dir the database is in.
    pub fn data_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The keys values are sealed and opened with.
    pub fn keys(&self) -> &Keys {
        &self.keys
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
        // Every workspace has a secret for signing customer ids (see `channels`).
        sqlx::query("UPDATE workspaces SET identity_secret = lower(hex(randomblob(32))) WHERE identity_secret IS NULL")
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Creates a workspace (a tenant) with its own widget key and identity secret.
    pub async fn add_workspace(&self, slug: &str, name: &str) -> Result<WorkspaceId> {
        let id = sqlx::query(
            "INSERT INTO workspaces (slug, name, widget_key, created_at, identity_secret)
             VALUES (?, ?, ?, ?, lower(hex(randomblob(32)))) ON CONFLICT (slug) DO NOTHING RETURNING id",
        )
        .bind(slug)
        .bind(name)
        .bind(crate::auth::new_widget_key())
        .bind(now_ms())
        .fetch_optional(&self.writer)
        .await?;
        let id: i64 = id.map(|r| r.get("id")).ok_or_else(|| {
            Error::refused(kefu_proto::ErrorCode::Conflict, format!("workspace '{slug}' already exists"))
        })?;
        Ok(WorkspaceId(id))
    }

    /// Every workspace.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>> {
        let rows = sqlx::query("SELECT id, slug, name, widget_key, allowed_origins FROM workspaces ORDER BY id")
            .fetch_all(&self.writer)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Workspace {
                id: WorkspaceId(r.get("id")),
                slug: r.get("slug"),
                name: r.get("name"),
                widget_key: r.get("widget_key"),
                allowed_origins: serde_json::from_str(r.get::<&str, _>("allowed_origins")).unwrap_or_default(),
            })
            .collect())
    }

    /// Sets the web origins allowed to embed a workspace's widget.
    pub async fn set_allowed_origins(&self, workspace: WorkspaceId, origins: &[String]) -> Result<()> {
        sqlx::query("UPDATE workspaces SET allowed_origins = ? WHERE id = ?")
            .bind(serde_json::to_string(origins).expect("serialises"))
            .bind(workspace.0)
            .execute(&self.writer)
            .await?;
        self.append_event(
            workspace,
            "workspace.origins",
            "admin",
            None,
            None,
            &serde_json::json!({"allowed_origins": origins}),
        )
        .await
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
        let id = AgentId(inserted_id(result, || format!("an agent with e-mail {email} already exists"))?);
        let data = serde_json::json!({"agent_id": id, "email": email, "role": role.as_str()});
        self.append_event(workspace, "agent.created", "admin", None, None, &data).await?;
        Ok(id)
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
        let mut agents: Vec<AgentRecord> = rows.iter().map(agent_from_row).collect::<Result<_>>()?;
        self.fill_skills(&mut agents).await?;
        Ok(agents)
    }

    /// Loads the skills of these agents.
    async fn fill_skills(&self, agents: &mut [AgentRecord]) -> Result<()> {
        for agent in agents.iter_mut() {
            let rows = sqlx::query(
                "SELECT s.group_id, g.slug, s.level FROM agent_skills s JOIN groups g ON g.id = s.group_id
                 WHERE s.agent_id = ? ORDER BY g.slug",
            )
            .bind(agent.view.id.0)
            .fetch_all(&self.reader)
            .await?;
            agent.skill_ids.clear();
            agent.view.skills.clear();
            for r in rows {
                let level: SkillLevel = parse_column(&r, "level")?;
                agent.skill_ids.push((r.get("group_id"), level));
                agent.view.skills.push(Skill { group: r.get("slug"), level });
            }
        }
        Ok(())
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
        let mut found = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut agent = [agent_from_row(r)?];
            self.fill_skills(&mut agent).await?;
            let [agent] = agent;
            found.push((agent, r.get::<String, _>("slug")));
        }
        Ok(found)
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
        let Some(row) = row else { return Ok(None) };
        let mut agent = [agent_from_row(&row)?];
        self.fill_skills(&mut agent).await?;
        let [agent] = agent;
        Ok(Some(agent))
    }

    /// An agent of a workspace, by id.
    pub async fn agent(&self, workspace: WorkspaceId, id: AgentId) -> Result<Option<AgentRecord>> {
        Ok(self.agents(workspace).await?.into_iter().find(|a| a.view.id == id))
    }

    /// Sets an agent's capacity and/or skills.
    pub async fn update_agent(
        &self,
        workspace: WorkspaceId,
        agent: AgentId,
        max_concurrent: Option<u32>,
        skills: Option<&[(GroupId, SkillLevel)]>,
    ) -> Result<()> {
        let mut tx = begin_write(&self.writer).await?;
        if let Some(capacity) = max_concurrent {
            sqlx::query("UPDATE agents SET max_concurrent = ? WHERE id = ? AND workspace_id = ?")
                .bind(capacity as i64)
                .bind(agent.0)
                .bind(workspace.0)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(skills) = skills {
            sqlx::query("DELETE FROM agent_skills WHERE agent_id = ? AND workspace_id = ?")
                .bind(agent.0)
                .bind(workspace.0)
                .execute(&mut *tx)
                .await?;
            for (group, level) in skills {
                sqlx::query("INSERT INTO agent_skills (agent_id, group_id, workspace_id, level) VALUES (?, ?, ?, ?)")
                    .bind(agent.0)
                    .bind(group)
                    .bind(workspace.0)
                    .bind(level.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let data = serde_json::json!({
            "agent_id": agent,
            "max_concurrent": max_concurrent,
            "skills": skills.map(|s| s.iter().map(|(g, l)| serde_json::json!({"group_id": g, "level": l.as_str()})).collect::<Vec<_>>()),
        });
        insert_event(&mut tx, workspace, "agent.updated", "admin", None, None, &data).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- groups -------------------------------------------------------------------------

    /// Every group of a workspace.
    pub async fn groups(&self, workspace: WorkspaceId) -> Result<Vec<GroupRecord>> {
        let rows = sqlx::query(
            "SELECT id, slug, name, fallback_group_id, escalate_after_secs, widen, is_default
             FROM groups WHERE workspace_id = ? ORDER BY slug",
        )
        .bind(workspace.0)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| GroupRecord {
                id: r.get("id"),
                slug: r.get("slug"),
                name: r.get("name"),
                fallback: r.get("fallback_group_id"),
                escalate_after_secs: r
                    .get::<Option<i64>, _>("escalate_after_secs")
                    .map(|s| s.clamp(1, u32::MAX as i64) as u32),
                widen: r.get::<i64, _>("widen") != 0,
                is_default: r.get::<i64, _>("is_default") != 0,
            })
            .collect())
    }

    /// A group of a workspace by slug, or `not_found`.
    pub async fn group_id(&self, workspace: WorkspaceId, slug: &str) -> Result<GroupId> {
        self.groups(workspace)
            .await?
            .into_iter()
            .find(|g| g.slug == slug)
            .map(|g| g.id)
            .ok_or_else(|| Error::refused(kefu_proto::ErrorCode::NotFound, format!("no group '{slug}'")))
    }

    /// Creates a group (and makes it the default if asked, un-defaulting the previous one).
    pub async fn add_group(&self, workspace: WorkspaceId, group: &GroupRecord) -> Result<GroupId> {
        let mut tx = begin_write(&self.writer).await?;
        if group.is_default {
            sqlx::query("UPDATE groups SET is_default = 0 WHERE workspace_id = ?")
                .bind(workspace.0)
                .execute(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(
            "INSERT INTO groups (workspace_id, slug, name, fallback_group_id, escalate_after_secs, widen, is_default, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(workspace.0)
        .bind(&group.slug)
        .bind(&group.name)
        .bind(group.fallback)
        .bind(group.escalate_after_secs.map(i64::from))
        .bind(group.widen)
        .bind(group.is_default)
        .bind(now_ms())
        .execute(&mut *tx)
        .await;
        let id = inserted_id(inserted, || format!("a group '{}' already exists", group.slug))?;
        let data = serde_json::json!({"group_id": id, "slug": group.slug});
        insert_event(&mut tx, workspace, "group.created", "admin", None, None, &data).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Removes a group no open conversation uses and no group falls back to; returns its
    /// id.
    pub async fn remove_group(&self, workspace: WorkspaceId, slug: &str) -> Result<GroupId> {
        let mut tx = begin_write(&self.writer).await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM groups WHERE workspace_id = ? AND slug = ?")
            .bind(workspace.0)
            .bind(slug)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            return Err(Error::refused(kefu_proto::ErrorCode::NotFound, format!("no group '{slug}'")));
        };
        let in_use: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM conversations WHERE group_id = ?1 AND state <> 'closed')
                  + (SELECT count(*) FROM groups WHERE fallback_group_id = ?1)",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if in_use > 0 {
            return Err(Error::refused(
                kefu_proto::ErrorCode::Conflict,
                format!("group '{slug}' still has open conversations or is another group's fallback"),
            ));
        }
        sqlx::query("DELETE FROM agent_skills WHERE group_id = ?").bind(id).execute(&mut *tx).await?;
        sqlx::query("UPDATE conversations SET group_id = NULL WHERE group_id = ?").bind(id).execute(&mut *tx).await?;
        sqlx::query("UPDATE tickets SET group_id = NULL WHERE group_id = ?").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM groups WHERE id = ?").bind(id).execute(&mut *tx).await?;
        insert_event(&mut tx, workspace, "group.removed", "admin", None, None, &serde_json::json!({"slug": slug}))
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    // ---- routing ------------------------------------------------------------------------

    /// The agent who last held each contact's conversations, resolved or closed since
    /// `since`: for sticky routing.
    pub async fn last_agents(
        &self,
        workspace: WorkspaceId,
        since: UnixMillis,
    ) -> Result<Vec<(ContactId, AgentId, UnixMillis)>> {
        let rows = sqlx::query(
            "SELECT contact_id, assignee_agent_id, max(COALESCE(closed_at, resolved_at)) AS at FROM conversations
             WHERE workspace_id = ? AND assignee_agent_id IS NOT NULL AND COALESCE(closed_at, resolved_at) >= ?
             GROUP BY contact_id",
        )
        .bind(workspace.0)
        .bind(since)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (ContactId(r.get("contact_id")), AgentId(r.get("assignee_agent_id")), r.get("at")))
            .collect())
    }

    /// Entries of the event log after `after` (by id), oldest first, optionally of one kind
    /// (or kind prefix ending in `.`, like `alert.`) or one conversation.
    pub async fn events(
        &self,
        workspace: WorkspaceId,
        after: i64,
        kind: Option<&str>,
        conversation: Option<ConversationId>,
        limit: u32,
    ) -> Result<Vec<kefu_proto::api::EventView>> {
        let rows = sqlx::query(
            "SELECT id, at, kind, actor_kind, actor_id, conversation_id, data, origin FROM events
             WHERE workspace_id = ? AND id > ?
               AND (?3 IS NULL OR kind = ?3 OR (substr(?3, -1) = '.' AND substr(kind, 1, length(?3)) = ?3))
               AND (?4 IS NULL OR conversation_id = ?4)
             ORDER BY id LIMIT ?5",
        )
        .bind(workspace.0)
        .bind(after)
        .bind(kind)
        .bind(conversation.map(|c| c.0))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(kefu_proto::api::EventView {
                    id: r.get("id"),
                    at: r.get("at"),
                    kind: r.get("kind"),
                    actor_kind: r.get("actor_kind"),
                    actor_id: r.get("actor_id"),
                    conversation_id: r.get::<Option<i64>, _>("conversation_id").map(ConversationId),
                    data: serde_json::from_str(r.get::<&str, _>("data"))
                        .map_err(|e| Error::Internal(format!("event data: {e}")))?,
                    origin: r.get("origin"),
                })
            })
            .collect()
    }

    /// The workspace's latest `limit` ratings (conversation, score), oldest first (for the
    /// CSAT alerts).
    pub async fn recent_ratings(&self, workspace: WorkspaceId, limit: usize) -> Result<Vec<(ConversationId, u8)>> {
        let rows = sqlx::query(
            "SELECT conversation_id, score FROM ratings WHERE workspace_id = ? ORDER BY created_at DESC LIMIT ?",
        )
        .bind(workspace.0)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .rev()
            .map(|r| (ConversationId(r.get("conversation_id")), r.get::<i64, _>("score").clamp(1, 5) as u8))
            .collect())
    }

    /// The routing decisions recorded for a conversation of `workspace`, oldest first;
    /// `None` when the conversation is not in the workspace.
    pub async fn routing_history(
        &self,
        workspace: WorkspaceId,
        conversation: ConversationId,
    ) -> Result<Option<Vec<RoutingRecord>>> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM conversations WHERE id = ? AND workspace_id = ?")
            .bind(conversation.0)
            .bind(workspace.0)
            .fetch_optional(&self.reader)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT at, kind, data FROM events WHERE conversation_id = ? AND workspace_id = ? AND kind LIKE 'routing.%' ORDER BY id",
        )
        .bind(conversation.0)
        .bind(workspace.0)
        .fetch_all(&self.reader)
        .await?;
        Ok(Some(
            rows.iter()
                .map(|r| RoutingRecord {
                    at: r.get("at"),
                    kind: r.get("kind"),
                    data: serde_json::from_str(r.get::<&str, _>("data")).unwrap_or(serde_json::Value::Null),
                })
                .collect(),
        ))
    }

    /// Marks a contact VIP or not; returns whether the contact exists in the workspace.
    pub async fn set_contact_vip(&self, workspace: WorkspaceId, contact: ContactId, vip: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE contacts SET vip = ? WHERE id = ? AND workspace_id = ?")
            .bind(vip)
            .bind(contact.0)
            .bind(workspace.0)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() > 0 {
            let data = serde_json::json!({"vip": vip});
            self.append_event(workspace, "contact.updated", "agent", None, None, &data).await?;
        }
        Ok(done.rows_affected() > 0)
    }

    /// Revokes a token. Returns whether it was live.
    /// Revokes every live token of an agent (logged with `actor`); returns how many.
    pub async fn revoke_agent_tokens(&self, workspace: WorkspaceId, agent: AgentId, actor: &str) -> Result<u64> {
        let mut tx = begin_write(&self.writer).await?;
        let revoked = sqlx::query(
            "UPDATE agent_tokens SET revoked_at = ? WHERE workspace_id = ? AND agent_id = ? AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(workspace.0)
        .bind(agent.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let data = serde_json::json!({ "agent_id": agent, "tokens": revoked });
        insert_event(&mut tx, workspace, "agent.revoked", actor, None, None, &data).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Tokens revoked at or after `since` (ms) that had not expired: (workspace, token
    /// hash, when), oldest first, so that a running relay closes their connections.
    pub async fn revoked_since(&self, since: UnixMillis) -> Result<Vec<(WorkspaceId, Vec<u8>, UnixMillis)>> {
        let rows = sqlx::query(
            "SELECT workspace_id, token_hash, revoked_at FROM agent_tokens
             WHERE revoked_at >= ? AND expires_at > revoked_at ORDER BY revoked_at",
        )
        .bind(since)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (WorkspaceId(r.get("workspace_id")), r.get("token_hash"), r.get("revoked_at")))
            .collect())
    }

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
        row.map(|r| self.contact_from_row(&r)).transpose()
    }

    /// A contact from a row with its `id`, `name` (as stored: sealed when keys are set)
    /// and `vip`.
    pub(crate) fn contact_from_row(&self, r: &sqlx::sqlite::SqliteRow) -> Result<ContactView> {
        Ok(ContactView {
            id: ContactId(r.get("id")),
            name: self.keys.current().open_opt(Field::ContactName, r.get("name"))?,
            vip: r.get::<i64, _>("vip") != 0,
        })
    }

    // ---- conversations and messages ----------------------------------------------------

    /// Every conversation that is not closed, to rebuild routing and delivery state.
    pub async fn open_conversations(&self, workspace: WorkspaceId) -> Result<Vec<OpenConversationRecord>> {
        let rows = sqlx::query(
            "SELECT v.id, v.state, v.channel_kind, v.assignee_agent_id, v.created_at,
                    COALESCE((SELECT max(m.seq) FROM messages m WHERE m.conversation_id = v.id), 0) AS last_seq,
                    v.queued_at, v.assigned_at, v.resolved_at, v.group_id, v.priority, v.answered, v.intent,
                    c.id AS contact_id, c.name AS contact_name, c.vip, a.name AS agent_name, g.slug AS group_slug,
                    ch.priority AS channel_priority
             FROM conversations v JOIN contacts c ON c.id = v.contact_id
             LEFT JOIN agents a ON a.id = v.assignee_agent_id
             LEFT JOIN channels ch ON ch.id = v.channel_id
             LEFT JOIN groups g ON g.id = v.group_id
             WHERE v.workspace_id = ? AND v.state <> 'closed' ORDER BY v.id",
        )
        .bind(workspace.0)
        .fetch_all(&self.writer)
        .await?;
        let keys = self.keys.current();
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
                            name: keys.open_opt(Field::ContactName, r.get("contact_name"))?,
                            vip: r.get::<i64, _>("vip") != 0,
                        },
                        assignee,
                        last_seq: r.get::<i64, _>("last_seq") as Seq,
                        created_at: r.get("created_at"),
                        queued_at: r.get("queued_at"),
                        group: r.get("group_slug"),
                        priority: r.get::<i64, _>("priority").clamp(0, u16::MAX as i64) as u16,
                        intent: r.get("intent"),
                    },
                    assigned_at: r.get("assigned_at"),
                    resolved_at: r.get("resolved_at"),
                    group_id: r.get("group_id"),
                    answered: r.get::<i64, _>("answered") != 0,
                    channel_priority: r.get::<Option<i64>, _>("channel_priority").map(|p| p.clamp(0, 99) as u16),
                })
            })
            .collect()
    }

    /// Up to `limit` messages of a conversation on one side of a sequence number, in
    /// order. Private notes are left out unless `with_notes` (agents see them; customers
    /// never do).
    pub async fn messages(
        &self,
        conversation: ConversationId,
        range: MessageRange,
        limit: u32,
        with_notes: bool,
    ) -> Result<Vec<MessageFrame>> {
        self.settle().await?;
        // One fixed statement per case: a flag bound as a parameter ("? OR internal = 0")
        // made SQLite re-prepare the statement on every call.
        macro_rules! select {
            ($condition:literal, $order:literal) => {
                concat!(
                    "SELECT m.seq, m.author_kind, m.author_id, m.client_msg_id, m.body, m.format, m.created_at, m.internal,
                            m.attachments, a.name AS agent_name, c.name AS contact_name,
                            m.source, ch.kind AS via_kind, ch.name AS via_name
                     FROM messages m
                     LEFT JOIN agents a ON m.author_kind = 'agent' AND a.id = m.author_id
                     LEFT JOIN contacts c ON m.author_kind = 'customer' AND c.id = m.author_id
                     LEFT JOIN channels ch ON ch.id = m.channel_id
                     WHERE m.conversation_id = ? AND ",
                    $condition,
                    " ORDER BY m.seq ",
                    $order,
                    " LIMIT ?"
                )
            };
        }
        let sql: &'static str = match (range, with_notes) {
            (MessageRange::After(_), true) => select!("m.seq > ?", "ASC"),
            (MessageRange::After(_), false) => select!("m.seq > ? AND m.internal = 0", "ASC"),
            (MessageRange::Before(_), true) => select!("m.seq < ?", "DESC"),
            (MessageRange::Before(_), false) => select!("m.seq < ? AND m.internal = 0", "DESC"),
        };
        let bound = match range {
            MessageRange::After(seq) | MessageRange::Before(seq) => seq.min(i64::MAX as u64) as i64,
        };
        let rows = sqlx::query(sql).bind(conversation.0).bind(bound).bind(limit as i64).fetch_all(&self.reader).await?;
        let keys = self.keys.current();
        let mut messages = rows
            .iter()
            .map(|r| {
                let attachments = r
                    .get::<Option<&str>, _>("attachments")
                    .map(serde_json::from_str::<Vec<AttachmentRef>>)
                    .transpose()
                    .map_err(|e| Error::Internal(format!("attachments column: {e}")))?
                    .unwrap_or_default();
                Ok(MessageFrame {
                    conversation_id: conversation,
                    seq: r.get::<i64, _>("seq") as Seq,
                    author: Author {
                        kind: parse_column::<AuthorKind>(r, "author_kind")?,
                        id: r.get("author_id"),
                        // The joins match one of the two, by the author's kind.
                        name: match r.get::<Option<String>, _>("agent_name") {
                            Some(agent) => Some(agent),
                            None => keys.open_opt(Field::ContactName, r.get("contact_name"))?,
                        },
                    },
                    body: keys.open(Field::MessageBody, r.get("body"))?,
                    format: BodyFormat::from_stored(r.get::<&str, _>("format")),
                    client_msg_id: r.get("client_msg_id"),
                    at: r.get("created_at"),
                    internal: r.get::<i64, _>("internal") != 0,
                    attachments,
                    via: match r.get::<Option<&str>, _>("via_kind") {
                        None => None,
                        Some(kind) => Some(MessageVia {
                            channel: kind.parse().map_err(|e| Error::Internal(format!("column kind: {e}")))?,
                            name: r.get("via_name"),
                            source: r.get::<Option<&str>, _>("source").and_then(|s| s.parse().ok()),
                        }),
                    },
                    masked: false,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if matches!(range, MessageRange::Before(_)) {
            messages.reverse();
        }
        Ok(messages)
    }

    /// A conversation's target group.
    pub async fn conversation_group(&self, conversation: ConversationId) -> Result<Option<GroupId>> {
        let group: Option<Option<i64>> = sqlx::query_scalar("SELECT group_id FROM conversations WHERE id = ?")
            .bind(conversation.0)
            .fetch_optional(&self.reader)
            .await?;
        Ok(group.flatten())
    }

    /// A conversation's workspace and contact, if it exists.
    pub async fn conversation_owner(&self, conversation: ConversationId) -> Result<Option<(WorkspaceId, ContactId)>> {
        let row = sqlx::query("SELECT workspace_id, contact_id FROM conversations WHERE id = ?")
            .bind(conversation.0)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| (WorkspaceId(r.get("workspace_id")), ContactId(r.get("contact_id")))))
    }

    /// What an agent sees of a contact: identities and conversations, newest first.
    pub async fn contact_details(&self, workspace: WorkspaceId, contact: ContactId) -> Result<Option<ContactDetails>> {
        self.settle().await?;
        let row = sqlx::query("SELECT id, name, vip FROM contacts WHERE id = ? AND workspace_id = ?")
            .bind(contact.0)
            .bind(workspace.0)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let identities =
            sqlx::query("SELECT channel_kind, external_id FROM contact_identities WHERE contact_id = ? ORDER BY id")
                .bind(contact.0)
                .fetch_all(&self.reader)
                .await?;
        // The shop's own customer id is the link between channels, not a channel itself;
        // it is the customer's id on the app channels.
        let mut customer_id = None;
        let mut channels = Vec::new();
        for r in &identities {
            let kind: &str = r.get("channel_kind");
            if kind == crate::channels::SHOP_IDENTITY {
                customer_id = Some(r.get::<String, _>("external_id"));
            } else {
                channels
                    .push(ContactChannel { kind: parse_column(r, "channel_kind")?, external_id: r.get("external_id") });
            }
        }
        let conversations = sqlx::query(
            "SELECT v.id, v.channel_kind, v.state, v.created_at, v.resolved_at, v.resolution, a.name AS agent,
                    COALESCE((SELECT max(m.seq) FROM messages m WHERE m.conversation_id = v.id), 0) AS last_seq
             FROM conversations v LEFT JOIN agents a ON a.id = v.assignee_agent_id
             WHERE v.contact_id = ? ORDER BY v.id DESC LIMIT 50",
        )
        .bind(contact.0)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            Ok(ConversationSummary {
                id: ConversationId(r.get("id")),
                channel: parse_column(r, "channel_kind")?,
                state: parse_column(r, "state")?,
                created_at: r.get("created_at"),
                resolved_at: r.get("resolved_at"),
                resolution: r.get("resolution"),
                agent: r.get("agent"),
                messages: r.get::<i64, _>("last_seq").max(0) as u64,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        if let Some(id) = &customer_id
            && conversations.iter().any(|c| c.channel == kefu_proto::frame::ChannelKind::App)
        {
            channels.push(ContactChannel { kind: kefu_proto::frame::ChannelKind::App, external_id: id.clone() });
        }
        Ok(Some(ContactDetails {
            id: contact,
            name: self.keys.current().open_opt(Field::ContactName, row.get("name"))?,
            vip: row.get::<i64, _>("vip") != 0,
            customer_id,
            channels,
            conversations,
        }))
    }

    /// The contact (and its workspace) a customer token belongs to.
    pub async fn contact_by_token_anywhere(&self, token_hash: &[u8]) -> Result<Option<(WorkspaceId, ContactId)>> {
        let row = sqlx::query("SELECT workspace_id, contact_id FROM customer_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| (WorkspaceId(r.get("workspace_id")), ContactId(r.get("contact_id")))))
    }

    // ---- canned replies --------------------------------------------------------------------

    /// The workspace's shared canned replies and the agent's own, by shortcut.
    pub async fn canned_replies(&self, workspace: WorkspaceId, agent: AgentId) -> Result<Vec<CannedReply>> {
        let rows = sqlx::query(
            "SELECT id, owner_agent_id, shortcut, title, body FROM canned_replies
             WHERE workspace_id = ? AND (owner_agent_id IS NULL OR owner_agent_id = ?) ORDER BY shortcut, id",
        )
        .bind(workspace.0)
        .bind(agent.0)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(canned_from_row).collect())
    }

    /// Every canned reply of a workspace (for the CLI).
    pub async fn all_canned_replies(&self, workspace: WorkspaceId) -> Result<Vec<(CannedReply, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT r.id, r.owner_agent_id, r.shortcut, r.title, r.body, a.email FROM canned_replies r
             LEFT JOIN agents a ON a.id = r.owner_agent_id WHERE r.workspace_id = ? ORDER BY r.shortcut, r.id",
        )
        .bind(workspace.0)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|r| (canned_from_row(r), r.get("email"))).collect())
    }

    /// Stores a canned reply (`owner` None: shared).
    pub async fn add_canned_reply(
        &self,
        workspace: WorkspaceId,
        owner: Option<AgentId>,
        new: &NewCannedReply,
    ) -> Result<CannedReply> {
        let done = sqlx::query(
            "INSERT INTO canned_replies (workspace_id, owner_agent_id, shortcut, title, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(workspace.0)
        .bind(owner.map(|a| a.0))
        .bind(&new.shortcut)
        .bind(&new.title)
        .bind(&new.body)
        .bind(now_ms())
        .execute(&self.writer)
        .await;
        let id = inserted_id(done, || format!("a canned reply /{} already exists", new.shortcut))?;
        let data = serde_json::json!({"canned_reply_id": id, "shortcut": new.shortcut, "shared": owner.is_none()});
        self.append_event(workspace, "canned.created", "agent", owner.map(|a| a.0), None, &data).await?;
        Ok(CannedReply {
            id,
            shortcut: new.shortcut.clone(),
            title: new.title.clone(),
            body: new.body.clone(),
            scope: if owner.is_some() { CannedScope::Personal } else { CannedScope::Workspace },
        })
    }

    /// A canned reply's owner (`Some(None)`: shared), if it exists in the workspace.
    pub async fn canned_owner(&self, workspace: WorkspaceId, id: i64) -> Result<Option<Option<AgentId>>> {
        let row = sqlx::query("SELECT owner_agent_id FROM canned_replies WHERE id = ? AND workspace_id = ?")
            .bind(id)
            .bind(workspace.0)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.get::<Option<i64>, _>("owner_agent_id").map(AgentId)))
    }

    /// Removes a canned reply.
    pub async fn remove_canned_reply(&self, workspace: WorkspaceId, id: i64, actor: Option<AgentId>) -> Result<bool> {
        let done = sqlx::query("DELETE FROM canned_replies WHERE id = ? AND workspace_id = ?")
            .bind(id)
            .bind(workspace.0)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() > 0 {
            let data = serde_json::json!({"canned_reply_id": id});
            self.append_event(workspace, "canned.removed", "agent", actor.map(|a| a.0), None, &data).await?;
        }
        Ok(done.rows_affected() > 0)
    }

    // ---- knowledge base --------------------------------------------------------------------

    /// Every article of a workspace, by slug.
    pub async fn articles(&self, workspace: WorkspaceId) -> Result<Vec<Article>> {
        let rows = sqlx::query(
            "SELECT id, slug, title, body, tags, intents, language, updated_at FROM kb_articles
             WHERE workspace_id = ? ORDER BY slug",
        )
        .bind(workspace.0)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(article_from_row).collect()
    }

    /// Every article of every workspace, to build the search index.
    pub async fn all_articles(&self) -> Result<Vec<(WorkspaceId, Article)>> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, slug, title, body, tags, intents, language, updated_at FROM kb_articles ORDER BY id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok((WorkspaceId(r.get("workspace_id")), article_from_row(r)?))).collect()
    }

    /// A fingerprint of the knowledge base (count and latest change), to notice changes
    /// made by another process (the CLI).
    pub async fn articles_fingerprint(&self) -> Result<(i64, i64)> {
        let row = sqlx::query("SELECT count(*) AS n, COALESCE(max(updated_at), 0) AS at FROM kb_articles")
            .fetch_one(&self.reader)
            .await?;
        Ok((row.get("n"), row.get("at")))
    }

    /// An article of a workspace, by id.
    pub async fn article(&self, workspace: WorkspaceId, id: i64) -> Result<Option<Article>> {
        let row = sqlx::query(
            "SELECT id, slug, title, body, tags, intents, language, updated_at FROM kb_articles WHERE id = ? AND workspace_id = ?",
        )
        .bind(id)
        .bind(workspace.0)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(article_from_row).transpose()
    }

    /// Creates the article with this slug, or replaces it when it exists.
    pub async fn save_article(&self, workspace: WorkspaceId, slug: &str, new: &NewArticle) -> Result<Article> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO kb_articles (workspace_id, slug, title, body, tags, intents, language, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (workspace_id, slug) DO UPDATE SET title = excluded.title, body = excluded.body,
                 tags = excluded.tags, intents = excluded.intents, language = excluded.language,
                 updated_at = max(excluded.updated_at, kb_articles.updated_at + 1)
             RETURNING id, slug, title, body, tags, intents, language, updated_at",
        )
        .bind(workspace.0)
        .bind(slug)
        .bind(&new.title)
        .bind(&new.body)
        .bind(serde_json::to_string(&new.tags).expect("serialises"))
        .bind(serde_json::to_string(&new.intents).expect("serialises"))
        .bind(&new.language)
        .bind(now)
        .bind(now)
        .fetch_one(&self.writer)
        .await?;
        let article = article_from_row(&row)?;
        let data = serde_json::json!({"article_id": article.id, "slug": slug});
        self.append_event(workspace, "kb.saved", "admin", None, None, &data).await?;
        Ok(article)
    }

    /// Removes an article; returns whether it existed.
    pub async fn delete_article(&self, workspace: WorkspaceId, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM kb_articles WHERE id = ? AND workspace_id = ?")
            .bind(id)
            .bind(workspace.0)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() > 0 {
            self.append_event(workspace, "kb.deleted", "admin", None, None, &serde_json::json!({"article_id": id}))
                .await?;
        }
        Ok(done.rows_affected() > 0)
    }

    // ---- attachments -----------------------------------------------------------------------

    /// Records an uploaded file (already written to disk).
    pub async fn add_attachment(&self, record: &AttachmentRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO attachments (id, workspace_id, conversation_id, uploader_kind, uploader_id, name, content_type, size, sha256, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&record.reference.id)
        .bind(record.workspace.0)
        .bind(record.conversation.0)
        .bind(record.uploader.as_str())
        .bind(record.uploader_id)
        .bind(&record.reference.name)
        .bind(&record.reference.content_type)
        .bind(record.reference.size as i64)
        .bind(&record.sha256)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Whether a file was attached to a message the customer saw (not a private note).
    pub async fn attachment_shown_to_customer(&self, conversation: ConversationId, id: &str) -> Result<bool> {
        let shown: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM messages m, json_each(m.attachments) j
             WHERE m.conversation_id = ? AND m.internal = 0 AND m.attachments IS NOT NULL
               AND json_extract(j.value, '$.id') = ? LIMIT 1",
        )
        .bind(conversation.0)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(shown.is_some())
    }

    /// Stores a customer's rating of their resolved or closed conversation (replacing an
    /// earlier one), with the agent who served it.
    pub async fn rate(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        conversation: ConversationId,
        score: u8,
        comment: Option<&str>,
    ) -> Result<()> {
        let row = sqlx::query(
            "SELECT state, assignee_agent_id FROM conversations WHERE id = ? AND workspace_id = ? AND contact_id = ?",
        )
        .bind(conversation.0)
        .bind(workspace.0)
        .bind(contact.0)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else {
            return Err(Error::refused(
                kefu_proto::ErrorCode::NotFound,
                format!("conversation {conversation} is not yours"),
            ));
        };
        if !matches!(row.get::<&str, _>("state"), "resolved" | "closed") {
            return Err(Error::refused(
                kefu_proto::ErrorCode::Conflict,
                "a conversation is rated once it is resolved or closed",
            ));
        }
        let agent: Option<i64> = row.get("assignee_agent_id");
        let mut tx = begin_write(&self.writer).await?;
        sqlx::query(
            "INSERT INTO ratings (conversation_id, workspace_id, contact_id, agent_id, score, comment, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (conversation_id) DO UPDATE SET score = excluded.score, comment = excluded.comment,
                 created_at = excluded.created_at",
        )
        .bind(conversation.0)
        .bind(workspace.0)
        .bind(contact.0)
        .bind(agent)
        .bind(score as i64)
        .bind(self.keys.current().seal_opt(Field::RatingComment, comment))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        // The comment stays in `ratings` (erasable); the append-only log holds no customer text.
        let data = serde_json::json!({"score": score, "commented": comment.is_some(), "agent_id": agent});
        insert_event(&mut tx, workspace, "conversation.rated", "customer", Some(contact.0), Some(conversation), &data)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A conversation's rating (score, comment), if it has one.
    pub async fn rating(&self, conversation: ConversationId) -> Result<Option<(u8, Option<String>)>> {
        let row = sqlx::query("SELECT score, comment FROM ratings WHERE conversation_id = ?")
            .bind(conversation.0)
            .fetch_optional(&self.reader)
            .await?;
        let keys = self.keys.current();
        row.map(|r| {
            Ok((r.get::<i64, _>("score").clamp(1, 5) as u8, keys.open_opt(Field::RatingComment, r.get("comment"))?))
        })
        .transpose()
    }

    /// An uploaded file, by id.
    pub async fn attachment(&self, id: &str) -> Result<Option<AttachmentRecord>> {
        let row = sqlx::query(
            "SELECT id, workspace_id, conversation_id, uploader_kind, uploader_id, name, content_type, size, sha256
             FROM attachments WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(AttachmentRecord {
                reference: AttachmentRef {
                    id: r.get("id"),
                    name: r.get("name"),
                    size: r.get::<i64, _>("size").max(0) as u64,
                    content_type: r.get("content_type"),
                },
                workspace: WorkspaceId(r.get("workspace_id")),
                conversation: ConversationId(r.get("conversation_id")),
                uploader: parse_column(&r, "uploader_kind")?,
                uploader_id: r.get("uploader_id"),
                sha256: r.get("sha256"),
            })
        })
        .transpose()
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
        // In a write transaction of its own: the chain's head is read, then extended, and
        // the journal appends too, from its own connection.
        let mut tx = begin_write(&self.writer).await?;
        insert_event(&mut tx, workspace, kind, actor_kind, actor_id, conversation, data).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Appends to the event log on the given connection (inside the caller's transaction).
pub(crate) async fn insert_event(
    conn: &mut sqlx::SqliteConnection,
    workspace: WorkspaceId,
    kind: &str,
    actor_kind: &str,
    actor_id: Option<i64>,
    conversation: Option<ConversationId>,
    data: &serde_json::Value,
) -> Result<()> {
    let data = data.to_string();
    let origin = crate::audit::client_origin();
    let entry = crate::audit::Entry {
        workspace,
        at: now_ms(),
        kind,
        actor_kind,
        actor_id,
        conversation,
        data: &data,
        origin: origin.as_deref(),
    };
    crate::audit::Chain::default().append(conn, entry).await
}

fn article_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Article> {
    let list = |column: &str| -> Result<Vec<String>> {
        serde_json::from_str(r.get::<&str, _>(column)).map_err(|e| Error::Internal(format!("column {column}: {e}")))
    };
    Ok(Article {
        id: r.get("id"),
        slug: r.get("slug"),
        title: r.get("title"),
        body: r.get("body"),
        tags: list("tags")?,
        intents: list("intents")?,
        language: r.get("language"),
        updated_at: r.get("updated_at"),
    })
}

/// The id of an inserted row, or `conflict` with `taken()` as the message when a unique
/// constraint refused it.
fn inserted_id(
    result: std::result::Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>,
    taken: impl FnOnce() -> String,
) -> Result<i64> {
    match result {
        Ok(done) => Ok(done.last_insert_rowid()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(Error::refused(kefu_proto::ErrorCode::Conflict, taken()))
        }
        Err(e) => Err(e.into()),
    }
}

fn canned_from_row(r: &sqlx::sqlite::SqliteRow) -> CannedReply {
    CannedReply {
        id: r.get("id"),
        shortcut: r.get("shortcut"),
        title: r.get("title"),
        body: r.get("body"),
        scope: if r.get::<Option<i64>, _>("owner_agent_id").is_some() {
            CannedScope::Personal
        } else {
            CannedScope::Workspace
        },
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
            skills: Vec::new(),
        },
        skill_ids: Vec::new(),
        password_hash: r.get("password_hash"),
    })
}

/// Reads a text column into one of the protocol's string enums.
fn parse_column<T: FromStr<Err = String>>(r: &sqlx::sqlite::SqliteRow, column: &str) -> Result<T> {
    r.get::<&str, _>(column).parse().map_err(|e| Error::Internal(format!("column {column}: {e}")))
}
