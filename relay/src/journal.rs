//! The journal: the one thread that writes conversations, messages and their events, with
//! group commit.
//!
//! Connection tasks and hubs send it operations. It runs on a thread of its own with a
//! synchronous SQLite connection of its own, so a batch goes to SQLite without a hand-off
//! per statement and its fsync blocks nothing else. It takes whatever has queued up (up to
//! `journal.max_batch`), runs it in one transaction and commits (one fsync, as the
//! database runs with `synchronous=FULL`), and only then reports the outcomes to the
//! workspace hubs, in commit order. Hubs acknowledge and deliver from those reports, so
//! nothing is acknowledged or delivered before it is durable, and every recipient sees a
//! conversation's messages in sequence order. While one batch is being fsync'd the next
//! one gathers, so the cost of an fsync is shared by everything that arrived meanwhile.
//!
//! The journal also assigns sequence numbers: it is the only writer of messages, so a
//! per-conversation cursor in memory (loaded on first use) is the truth.

use std::collections::HashMap;
use std::sync::Arc;

use kefu_proto::frame::{
    AttachmentRef, AuthorKind, BodyFormat, ChannelKind, ConversationState, MessageVia, TransferInfo,
};
use kefu_proto::{ContactId, ConversationId, ErrorCode, ProtocolError, Seq, UnixMillis, WorkspaceId};
use rusqlite::{OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::client_ids::{ClientId, ClientIdFilter};
use crate::clock::Clock;
use crate::conversation::Lifecycle;
use crate::crypto::{Field, Keyring, Keys};
use crate::error::{Error, Result};
use crate::hub::{ConnId, Hubs};
use crate::msglog::{FoldProgress, LoggedMessage, MessageLog};
use crate::routing::{GroupId, Priority};

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The workspace it belongs to (checked against the conversation's).
    pub workspace: WorkspaceId,
    /// The conversation.
    pub conversation: ConversationId,
    /// The connection that sent it, to acknowledge; `None` for the relay's own messages.
    pub origin: Option<ConnId>,
    /// Customer, agent, bot or system.
    pub author: AuthorKind,
    /// Contact id or agent id of the author.
    pub author_id: Option<i64>,
    /// The author's id for the message, for de-duplication.
    pub client_msg_id: Option<String>,
    /// The text.
    pub body: String,
    /// How to read it.
    pub format: BodyFormat,
    /// A private note between agents.
    pub internal: bool,
    /// Files attached (already uploaded and checked to belong to the conversation).
    pub attachments: Vec<AttachmentRef>,
    /// The channel a customer's message came in by, when not the built-in widget.
    pub via: Option<Via>,
}

/// A customer's message that opens their conversation, stored in the same transaction
/// as the opening (see [`JournalOp::OpenConversation`]).
#[derive(Debug)]
pub struct FirstMessage {
    /// The message; its `conversation` is the new one's, whatever it says here.
    pub message: NewMessage,
    /// Where a caller that waits (the HTTP channels) is told where it was stored.
    pub receipt: Option<oneshot::Sender<std::result::Result<Receipt, ProtocolError>>>,
}

/// The channel a customer's message came in by.
#[derive(Debug, Clone)]
pub struct Via {
    /// The channel's id (stored with the message; replies leave through it).
    pub channel_id: i64,
    /// What clients are shown.
    pub view: MessageVia,
}

/// Where an awaited message ended up: its conversation, sequence number, and whether it
/// repeated an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its sequence number.
    pub seq: Seq,
    /// True when an earlier message had the same author and client id.
    pub duplicate: bool,
}

/// A message as stored.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// What was asked to be stored.
    pub message: NewMessage,
    /// Its sequence number.
    pub seq: Seq,
    /// When it was stored.
    pub at: UnixMillis,
}

/// An entry for the event log, written in the same transaction as the change it records.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// What happened (`conversation.assigned`, …).
    pub kind: &'static str,
    /// `agent`, `customer`, `system`, …
    pub actor_kind: &'static str,
    /// Who, when a person.
    pub actor_id: Option<i64>,
    /// Details.
    pub data: serde_json::Value,
    /// Where it came from: the address of the connection that asked, when one did.
    pub origin: Option<String>,
}

/// Where a conversation is routed: its group and queue priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteFields {
    /// The target group; `None`: any agent.
    pub group: Option<GroupId>,
    /// Queue priority (lower first).
    pub priority: Priority,
}

/// A new contact reached through a customer token.
#[derive(Debug)]
pub struct NewContact {
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// Display name, if given.
    pub name: Option<String>,
    /// The channel it first came through, and its id there.
    pub channel: ChannelKind,
    /// Id on that channel.
    pub external_id: String,
    /// SHA-256 of its customer token.
    pub token_hash: Vec<u8>,
}

/// Something for the journal to write.
#[derive(Debug)]
pub enum JournalOp {
    /// Create a contact with its identity and token; the id comes back on `reply`.
    CreateContact(NewContact, oneshot::Sender<Result<ContactId>>),
    /// Open a conversation; reported as [`Committed::Opened`] with `request`.
    OpenConversation {
        /// Its workspace.
        workspace: WorkspaceId,
        /// The contact.
        contact: ContactId,
        /// The channel kind.
        channel: ChannelKind,
        /// The channel, when not the built-in widget.
        channel_id: Option<i64>,
        /// Its starting lifecycle.
        lifecycle: Lifecycle,
        /// Its group and priority.
        route: RouteFields,
        /// The hub's number for this request, echoed back.
        request: u64,
        /// The customer's message it is opened for, stored in the same transaction.
        first: Option<FirstMessage>,
    },
    /// Store a message; reported as appended, duplicate or rejected.
    Append(NewMessage),
    /// Store a message for a caller that waits (the HTTP channels): the outcome goes to
    /// `reply` as well as to the hub.
    AppendAwaited(NewMessage, oneshot::Sender<std::result::Result<Receipt, ProtocolError>>),
    /// Record a conversation's new lifecycle and the event that moved it.
    Transition {
        /// Its workspace.
        workspace: WorkspaceId,
        /// The conversation.
        conversation: ConversationId,
        /// The lifecycle after the transition.
        lifecycle: Lifecycle,
        /// The resolution code, when resolving.
        resolution: Option<String>,
        /// New routing fields, when they change with it.
        route: Option<RouteFields>,
        /// For a transfer: who sent it and their note, passed to the announcement.
        transfer: Option<TransferInfo>,
        /// The audit entry.
        event: EventRecord,
    },
    /// Record a routing decision that moves no lifecycle (queued, escalated), with the
    /// routing fields it changes.
    Record {
        /// Its workspace.
        workspace: WorkspaceId,
        /// The conversation.
        conversation: ConversationId,
        /// New routing fields, if they change.
        route: Option<RouteFields>,
        /// What the conversation is about, when the bot has found out.
        intent: Option<String>,
        /// The audit entry.
        event: EventRecord,
    },
    /// Append an entry to the event log alone (alerts, supervisors' actions); nothing is
    /// reported back.
    Log {
        /// Its workspace.
        workspace: WorkspaceId,
        /// The conversation it concerns, if one.
        conversation: Option<ConversationId>,
        /// The entry.
        event: EventRecord,
    },
    /// Record how far a reader has read.
    Read {
        /// Its workspace.
        workspace: WorkspaceId,
        /// The conversation.
        conversation: ConversationId,
        /// Customer or agent.
        reader: AuthorKind,
        /// Contact id or agent id.
        reader_id: i64,
        /// Last sequence number read.
        seq: Seq,
    },
}

impl JournalOp {
    fn workspace(&self) -> WorkspaceId {
        match self {
            JournalOp::CreateContact(c, _) => c.workspace,
            JournalOp::OpenConversation { workspace, .. }
            | JournalOp::Transition { workspace, .. }
            | JournalOp::Record { workspace, .. }
            | JournalOp::Log { workspace, .. }
            | JournalOp::Read { workspace, .. } => *workspace,
            JournalOp::Append(m) | JournalOp::AppendAwaited(m, _) => m.workspace,
        }
    }
}

/// What a committed operation became, reported to the workspace's hub in commit order.
#[derive(Debug, Clone)]
pub enum Committed {
    /// A conversation was opened.
    Opened {
        /// The hub's request number.
        request: u64,
        /// The new conversation's id.
        conversation: ConversationId,
        /// The contact.
        contact: ContactId,
        /// The channel.
        channel: ChannelKind,
        /// Its lifecycle.
        lifecycle: Lifecycle,
        /// What became of the message it was opened for, if one came with it.
        first: Option<Box<Committed>>,
    },
    /// A conversation could not be opened.
    OpenFailed {
        /// The hub's request number.
        request: u64,
    },
    /// A message was stored.
    Appended(Arc<StoredMessage>),
    /// A message with this author and client id was stored before.
    Duplicate {
        /// The connection to acknowledge.
        origin: Option<ConnId>,
        /// The client's id.
        client_msg_id: String,
        /// Where the original is.
        conversation: ConversationId,
        /// Its sequence number.
        seq: Seq,
        /// When it was stored.
        at: UnixMillis,
    },
    /// A message could not be stored.
    Rejected {
        /// The connection to tell.
        origin: Option<ConnId>,
        /// The client's id.
        client_msg_id: Option<String>,
        /// The conversation the message was for.
        conversation: ConversationId,
        /// Why.
        error: ProtocolError,
    },
    /// A conversation moved.
    Transitioned {
        /// The conversation.
        conversation: ConversationId,
        /// Its lifecycle now.
        lifecycle: Lifecycle,
        /// For a transfer: who sent it and their note.
        transfer: Option<TransferInfo>,
    },
    /// A transition could not be written; the hub must reload the conversation.
    TransitionFailed {
        /// The conversation.
        conversation: ConversationId,
    },
    /// A routing decision that moved no lifecycle was recorded.
    Recorded {
        /// The conversation.
        conversation: ConversationId,
        /// The event's kind.
        kind: &'static str,
    },
    /// A read receipt was stored (only ever moving forward).
    Read {
        /// The conversation.
        conversation: ConversationId,
        /// Customer or agent.
        reader: AuthorKind,
        /// Last sequence number read.
        seq: Seq,
    },
}

/// Cloneable handle to the journal (its thread: `spawn`).
#[derive(Clone)]
pub struct JournalHandle {
    /// Operations from connections: bounded, so a flood of messages waits instead of
    /// growing memory.
    ops: mpsc::Sender<JournalOp>,
    /// Operations from hubs, which must never wait on the journal (a hub does no I/O and
    /// never blocks); their volume is bounded by routing decisions and by conversations
    /// opened (each with at most the one message it was opened for).
    hub_ops: mpsc::UnboundedSender<JournalOp>,
    /// Asks the journal to commit what it holds and stop.
    stop: mpsc::Sender<oneshot::Sender<()>>,
    /// Asks the journal to fold what its message log holds into the tables.
    settle: mpsc::UnboundedSender<SettleRequest>,
    /// How far the message log is written and folded, when there is one.
    progress: Option<Arc<FoldProgress>>,
}

impl JournalHandle {
    /// Queues an operation, waiting while the journal is full.
    pub async fn submit(&self, op: JournalOp) -> Result<()> {
        self.ops.send(op).await.map_err(|_| Error::Internal("journal stopped".into()))
    }

    /// Queues an operation from a hub, without waiting.
    pub fn submit_from_hub(&self, op: JournalOp) {
        if self.hub_ops.send(op).is_err() {
            tracing::warn!("journal stopped; a routing decision was not written (it is re-made at start)");
        }
    }

    /// Creates a contact and waits for it to be durable.
    pub async fn create_contact(&self, contact: NewContact) -> Result<ContactId> {
        let (tx, rx) = oneshot::channel();
        self.submit(JournalOp::CreateContact(contact, tx)).await?;
        rx.await.map_err(|_| Error::Internal("journal stopped".into()))?
    }

    /// Returns once every message acknowledged before the call is in the tables, so that
    /// a query over `messages` sees it. With the message log on, messages acknowledged
    /// within about the last second may be only in the log (the fold thread folds it each
    /// second); then the journal folds them itself in its next transaction.
    pub async fn settle(&self) -> Result<()> {
        let Some(progress) = &self.progress else { return Ok(()) };
        if progress.settled() {
            return Ok(());
        }
        self.request_settle(false).await
    }

    /// Folds everything the message log holds, then overwrites its files with zeros, so
    /// that nothing erased from the tables can be read back from the log (erasure).
    pub async fn scrub(&self) -> Result<()> {
        if self.progress.is_none() {
            return Ok(());
        }
        self.request_settle(true).await
    }

    async fn request_settle(&self, scrub: bool) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.settle.send(SettleRequest { reply, scrub }).map_err(|_| Error::Internal("journal stopped".into()))?;
        done.await.map_err(|_| Error::Internal("the message log could not be folded".into()))
    }

    /// Commits everything queued so far and stops the journal.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.stop.send(tx).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Where each conversation's sequence stands, as the journal (its only writer) knows it.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    workspace: WorkspaceId,
    last_seq: Seq,
    closed: bool,
    /// A customer wrote through an app or social channel here, so replies may have an
    /// outbox row to push.
    via_channel: bool,
    /// The agent holding it has replied since it was assigned (`conversations.answered`;
    /// the first reply also sets `first_agent_reply_at` if nothing had).
    answered: bool,
}

/// A wait for the message log to be folded ([`JournalHandle::settle`]), or also scrubbed
/// ([`JournalHandle::scrub`]): answered after the next commit.
pub(crate) struct SettleRequest {
    reply: oneshot::Sender<()>,
    scrub: bool,
}

/// How often the journal looks for a scrub asked for by another process
/// ([`crate::msglog::request_scrub`]).
const SCRUB_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Who wrote a message and their id for it: a message is stored once per key.
type ClientKey = (WorkspaceId, AuthorKind, Option<i64>, String);

/// Most messages the log may hold unfolded: about 3 s at 10,000 msg/s. Past it (the fold
/// thread, at its low priority, kept off a saturated core) the journal's transactions
/// fold the oldest [`FOLD_SHARE`] themselves, one share per transaction, so memory and the
/// log stay bounded and no one transaction stalls for all of them (folding 32,768 at once
/// held messages up for about half a second: docs/BENCHMARKS.md, finding 26).
const MAX_UNFOLDED: usize = 32_768;

/// How many of the oldest unfolded messages a transaction folds when the log holds too
/// many (a few milliseconds of inserts).
const FOLD_SHARE: usize = 2_048;

/// How long the journal must have gathered nothing but full batches (`journal.max_batch`)
/// before it writes them to the tables instead of the log ([`Journal::loggable`]): long
/// enough that a backlog left by a disk stall (at 10,000 msg/s, a few hundred
/// milliseconds' worth) is drained through the log first.
const SATURATED_AFTER_MS: UnixMillis = 1_000;

/// The message log as the journal writes it ([`crate::msglog`]).
struct LogState {
    /// The files.
    log: MessageLog,
    /// How far it is written and folded.
    progress: Arc<FoldProgress>,
    /// To the fold thread.
    /// Dropped with the journal: the fold thread folds one last time and stops.
    _fold: std::sync::mpsc::Sender<()>,
    /// What is synced but maybe not folded, in LSN order, shared with the fold thread;
    /// folded by the journal itself when it must be ([`Journal::fold_plan`]).
    unfolded: crate::msglog::Unfolded,
    /// The unfolded messages with a client id, for de-duplication before they are in the
    /// index.
    ids: HashMap<ClientKey, Arc<LoggedMessage>>,
    /// Every client id the tables and the log hold (and a few more): an id it rules out
    /// is new, with no lookup in the index ([`Journal::may_be_stored`]). Until
    /// `stored_ids` is read, only those stored since the start.
    client_ids: ClientIdFilter,
    /// The ids the tables held at the start, being read ([`read_stored_client_ids`]);
    /// `client_ids` absorbs them once they are ([`LogState::absorb_stored_ids`]).
    stored_ids: Option<std::sync::mpsc::Receiver<Result<ClientIdFilter>>>,
    /// The log holds more than [`MAX_UNFOLDED`] (said once each time it gets there).
    behind: bool,
    /// An append failed: the log may hold part of a batch that was refused, whose `seq`s
    /// go to other messages. It takes nothing more until the relay restarts (the tables
    /// take every message; at start the replay leaves the stray records out, as their
    /// rows exist by then).
    broken: bool,
}

impl LogState {
    /// Forgets what the fold thread (or the journal) has folded, and lets the log use its
    /// segments again.
    fn forget_folded(&mut self) {
        let folded = self.progress.folded();
        let mut unfolded = self.unfolded.lock().expect("not poisoned");
        while unfolded.front().is_some_and(|m| m.lsn <= folded) {
            let m = unfolded.pop_front().expect("checked");
            if let Some(id) = &m.client_msg_id {
                let key = (m.workspace, m.author, m.author_id, id.clone());
                if self.ids.get(&key).is_some_and(|kept| kept.lsn == m.lsn) {
                    self.ids.remove(&key);
                }
            }
        }
        let behind = unfolded.len() >= MAX_UNFOLDED;
        if behind && !self.behind {
            tracing::warn!(
                unfolded = unfolded.len(),
                "the fold thread fell behind; the journal folds the message log a share at a time"
            );
        }
        self.behind = behind;
        drop(unfolded);
        self.log.folded(folded);
    }

    /// Takes the ids the tables held at the start into the filter, once they are read
    /// (`wait`: waits for that). A read that failed leaves a filter that rules nothing out.
    fn absorb_stored_ids(&mut self, wait: bool) {
        let Some(reading) = &self.stored_ids else { return };
        let read = if wait {
            reading.recv().map_err(|_| std::sync::mpsc::TryRecvError::Disconnected)
        } else {
            reading.try_recv()
        };
        let stored = match read {
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Ok(Ok(stored)) => stored,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the stored client message ids could not be read: every id is looked up");
                ClientIdFilter::full()
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                tracing::error!("the stored client message ids were not read: every id is looked up");
                ClientIdFilter::full()
            }
        };
        self.client_ids.absorb(stored);
        self.stored_ids = None;
    }

    /// How many messages the log holds unfolded.
    fn unfolded_len(&self) -> usize {
        self.unfolded.lock().expect("not poisoned").len()
    }

    /// The unfolded message `m` repeats, if any.
    fn duplicate_of(&self, m: &NewMessage) -> Option<&Arc<LoggedMessage>> {
        let id = m.client_msg_id.clone()?;
        self.ids.get(&(m.workspace, m.author, m.author_id, id))
    }
}

/// The journal's state, on its own thread.
pub(crate) struct Journal {
    /// Its own connection to the database, driven synchronously: a batch is written
    /// without handing each statement to another thread.
    conn: rusqlite::Connection,
    /// Seals message bodies and contacts' names before they are bound.
    keys: Keys,
    /// The keyring of the batch being written: taken once per transaction, not per value.
    keyring: Arc<Keyring>,
    clock: Clock,
    hubs: Arc<Hubs>,
    max_batch: usize,
    cursors: HashMap<ConversationId, Cursor>,
    /// The cursors the batch being written changed, as they were before it.
    before: HashMap<ConversationId, Option<Cursor>>,
    /// Conversations the batch being written closed: their cursors are dropped once it
    /// commits, so the map holds open conversations, not every one since start.
    closed: Vec<ConversationId>,
    /// Poked after a commit that wrote a reply into a conversation with channel messages.
    outbox: Arc<tokio::sync::Notify>,
    /// Whether the batch being written did.
    outbox_due: bool,
    telemetry: Arc<crate::telemetry::Telemetry>,
    /// The message log, when on (`journal.message_log`).
    log: Option<LogState>,
    /// Readers waiting for the log to be folded ([`JournalHandle::settle`]), answered
    /// after the next commit.
    settle_waiters: Vec<oneshot::Sender<()>>,
    /// Whether one of them asked for the log to be scrubbed too.
    scrub_due: bool,
    /// Since when every batch gathered has been full, if the last one was.
    full_since: Option<UnixMillis>,
}

/// What the journal's thread woke up for.
enum Wake {
    /// An operation, now in the batch.
    Op,
    /// Time to look for a scrub another process asked for.
    Tick,
    Stop(oneshot::Sender<()>),
    Closed,
}

/// Starts `journal` (see [`Journal::new`]) on a thread of its own (`kefu-journal`), taking
/// up to `queue` operations from connections. A commit blocks that thread for its fsync,
/// never the runtime's.
pub(crate) fn spawn(journal: Journal, queue: usize) -> Result<JournalHandle> {
    let (ops_tx, ops) = mpsc::channel(queue);
    let (hub_tx, hub_ops) = mpsc::unbounded_channel();
    let (stop_tx, stop) = mpsc::channel(1);
    let (settle_tx, settle) = mpsc::unbounded_channel();
    let progress = journal.log.as_ref().map(|log| log.progress.clone());
    let runtime = tokio::runtime::Handle::current();
    let channels = Inbound { ops, hub_ops, stop, settle };
    std::thread::Builder::new().name("kefu-journal".into()).spawn(move || {
        if let Err(e) = gather_while_sessions_run() {
            tracing::warn!(error = %e, "the journal's thread keeps the normal scheduling policy");
        }
        journal.run(&runtime, channels)
    })?;
    Ok(JournalHandle { ops: ops_tx, hub_ops: hub_tx, stop: stop_tx, settle: settle_tx, progress })
}

/// Puts the calling thread (the journal's) under `SCHED_BATCH`, at the same nice value.
///
/// Why: every operation a session sends wakes the journal's thread. Under the normal
/// policy the scheduler lets it preempt the thread that woke it (on the relay's one core,
/// the runtime's, in the middle of reading frames), so it commits a batch of one or two
/// and the sessions wait meanwhile. A `SCHED_BATCH` thread does not preempt on wakeup: it
/// runs when the runtime's thread waits for input or uses up its slice, and finds what
/// arrived meanwhile, so commits are fewer and larger and typing indicators are not held
/// up behind them. Its share of the CPU is unchanged: the policy changes when it runs,
/// not its weight (docs/BENCHMARKS.md, finding 28).
#[cfg(target_os = "linux")]
fn gather_while_sessions_run() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` only reads `param`, which outlives the call; pid 0 is
    // the calling thread.
    match unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
fn gather_while_sessions_run() -> std::io::Result<()> {
    Ok(())
}

/// `m`'s client id as the filter of stored ids knows it.
fn client_id<'a>(m: &NewMessage, client_msg_id: &'a str) -> ClientId<'a> {
    ClientId { workspace: m.workspace, author: m.author, author_id: m.author_id, client_msg_id }
}

/// Reads every client id the messages table holds, from its index, into a filter hashing
/// as `journal` does, on a thread of its own (`kefu-ids`, at the fold thread's low
/// priority): a large store takes seconds (about 0.4 µs per id), and the relay serves
/// meanwhile, while the journal looks every id up ([`Journal::may_be_stored`]). Started
/// once the journal's own filter takes every id stored (and the store has replayed what a
/// log held before): whatever the read misses, stored after it began, is in that one.
fn read_stored_client_ids(
    conn: rusqlite::Connection,
    journal: &ClientIdFilter,
) -> Result<std::sync::mpsc::Receiver<Result<ClientIdFilter>>> {
    let (seeds, room) = (journal.seeds(), journal.room());
    let (read, reading) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new().name("kefu-ids".into()).spawn(move || {
        crate::msglog::lower_to_fold_priority("the read of stored client ids");
        let started = std::time::Instant::now();
        let filter = stored_client_ids(&conn, seeds, room);
        if let Ok(filter) = &filter {
            tracing::info!(
                ids = filter.count(),
                full = filter.is_full(),
                filter_bytes = filter.bytes(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "read the stored client message ids"
            );
        }
        // The journal may be gone already (a relay stopped at once).
        let _ = read.send(filter);
    })?;
    Ok(reading)
}

/// The filter of every client id the messages table holds (see [`read_stored_client_ids`]).
fn stored_client_ids(
    conn: &rusqlite::Connection,
    seeds: crate::client_ids::Seeds,
    room: usize,
) -> Result<ClientIdFilter> {
    let count: i64 =
        conn.query_row("SELECT count(*) FROM messages WHERE client_msg_id IS NOT NULL", [], |row| row.get(0))?;
    let mut filter = ClientIdFilter::for_stored(seeds, usize::try_from(count).unwrap_or(0), room);
    let mut statement = conn.prepare(
        "SELECT workspace_id, author_kind, author_id, client_msg_id FROM messages WHERE client_msg_id IS NOT NULL",
    )?;
    let mut rows = statement.query([])?;
    while !filter.is_full()
        && let Some(row) = rows.next()?
    {
        // Read in place: no copy of each id (a few million on a large store).
        let text = |i: usize| row.get_ref(i)?.as_str().map_err(rusqlite::Error::from);
        filter.insert(&ClientId {
            workspace: WorkspaceId(row.get(0)?),
            author: text(1)?.parse().map_err(Error::Internal)?,
            author_id: row.get(2)?,
            client_msg_id: text(3)?,
        });
    }
    Ok(filter)
}

/// What the journal's thread receives on.
struct Inbound {
    ops: mpsc::Receiver<JournalOp>,
    hub_ops: mpsc::UnboundedReceiver<JournalOp>,
    stop: mpsc::Receiver<oneshot::Sender<()>>,
    settle: mpsc::UnboundedReceiver<SettleRequest>,
}

impl Journal {
    /// The journal over its own connection to `store`, not yet running ([`spawn`] runs it).
    pub(crate) fn new(
        store: &crate::store::Store,
        clock: Clock,
        hubs: Arc<Hubs>,
        outbox: Arc<tokio::sync::Notify>,
        telemetry: Arc<crate::telemetry::Telemetry>,
        max_batch: usize,
    ) -> Result<Journal> {
        Ok(Journal {
            conn: store.journal_connection()?,
            keyring: store.keys().current(),
            keys: store.keys().clone(),
            clock,
            hubs,
            max_batch,
            cursors: HashMap::new(),
            before: HashMap::new(),
            closed: Vec::new(),
            outbox,
            outbox_due: false,
            telemetry,
            log: None,
            settle_waiters: Vec::new(),
            scrub_due: false,
            full_since: None,
        })
    }

    /// Turns the message log on: plain messages are appended to it and synced, then
    /// folded into the tables by a thread of its own ([`crate::msglog`]). The store has
    /// replayed and cleared what a log held before (`Store::open`).
    pub(crate) fn with_message_log(mut self, store: &crate::store::Store) -> Result<Journal> {
        let log = MessageLog::create(&crate::store::message_log_dir(store.data_dir()), 1)?;
        let progress = Arc::new(FoldProgress::default());
        let unfolded = crate::msglog::Unfolded::default();
        let client_ids = ClientIdFilter::new();
        let stored_ids = read_stored_client_ids(store.fold_connection()?, &client_ids)?;
        let fold = crate::msglog::spawn_folder(store.fold_connection()?, progress.clone(), unfolded.clone())?;
        self.log = Some(LogState {
            log,
            progress,
            _fold: fold,
            unfolded,
            ids: HashMap::new(),
            client_ids,
            stored_ids: Some(stored_ids),
            behind: false,
            broken: false,
        });
        Ok(self)
    }

    /// False when `m`'s client id is certainly new (the filter of stored ids rules it
    /// out), so that no lookup in the index is needed; true otherwise, and always without
    /// the log (whose filter it is), without a client id, or while the ids the tables held
    /// at start are still being read.
    fn may_be_stored(&self, m: &NewMessage) -> bool {
        match (&self.log, &m.client_msg_id) {
            (Some(log), Some(client_msg_id)) if log.stored_ids.is_none() => {
                log.client_ids.may_contain(&client_id(m, client_msg_id))
            }
            _ => true,
        }
    }

    /// Notes that `m` is stored (in the log or the tables) under its client id, if any.
    fn note_client_id(&mut self, m: &NewMessage) {
        if let (Some(log), Some(client_msg_id)) = (&mut self.log, &m.client_msg_id) {
            log.client_ids.insert(&client_id(m, client_msg_id));
        }
    }

    /// The journal's thread: waits for an operation (the channels are tokio's, awaited
    /// here through the runtime's handle), gathers whatever else is queued, writes it all
    /// in one transaction, reports, and waits again.
    fn run(mut self, runtime: &tokio::runtime::Handle, inbound: Inbound) {
        let Inbound { mut ops, mut hub_ops, mut stop, mut settle } = inbound;
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut next_poll = runtime.block_on(async { tokio::time::Instant::now() }) + SCRUB_POLL;
        loop {
            let wake = runtime.block_on(async {
                tokio::select! {
                    // Connections' operations before the hubs' (here and in the gathering
                    // below): a hub's decision never depends on a connection's operation
                    // still queued, but the other way round a decision taken while the
                    // journal was busy (an agent closing a conversation) would overtake a
                    // message sent before it (a customer's, then refused as closed).
                    biased;
                    Some(op) = ops.recv() => { batch.push(op); Wake::Op }
                    Some(op) = hub_ops.recv() => { batch.push(op); Wake::Op }
                    Some(request) = settle.recv() => { self.wait_for_settle(request); Wake::Op }
                    () = tokio::time::sleep_until(next_poll), if self.log.is_some() => Wake::Tick,
                    Some(done) = stop.recv() => Wake::Stop(done),
                    else => Wake::Closed,
                }
            });
            match wake {
                Wake::Op => {}
                Wake::Stop(done) => {
                    // Everything already queued was sent before the stop: write it too.
                    while let Ok(op) = ops.try_recv() {
                        batch.push(op)
                    }
                    while let Ok(op) = hub_ops.try_recv() {
                        batch.push(op)
                    }
                    while !batch.is_empty() {
                        let rest = batch.split_off(batch.len().min(self.max_batch));
                        let chunk = std::mem::replace(&mut batch, rest);
                        self.commit(chunk);
                    }
                    // And what the log holds, so a clean stop leaves the tables whole.
                    if self.log.as_ref().is_some_and(|log| !log.progress.settled()) {
                        while let Ok(request) = settle.try_recv() {
                            self.wait_for_settle(request);
                        }
                        let (waiter, _) = oneshot::channel();
                        self.settle_waiters.push(waiter);
                        self.commit(Vec::new());
                    }
                    let _ = done.send(());
                    return;
                }
                Wake::Closed => return,
                Wake::Tick => {}
            }
            // Under steady traffic as well as when idle: a scrub asked for from outside.
            if self.log.is_some() && tokio::time::Instant::now() >= next_poll {
                next_poll = tokio::time::Instant::now() + SCRUB_POLL;
                self.scrub_requested();
            }
            if batch.is_empty() && self.settle_waiters.is_empty() {
                continue;
            }
            // Gather whatever else is already waiting: this is the group in group commit.
            // Every queued hub operation goes in, even past `max_batch`, so that a flood of
            // messages cannot hold routing decisions back (their number is bounded by the
            // hubs' decisions, not by clients).
            while batch.len() < self.max_batch {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            while let Ok(op) = hub_ops.try_recv() {
                batch.push(op);
            }
            while let Ok(request) = settle.try_recv() {
                self.wait_for_settle(request);
            }
            let ops = std::mem::replace(&mut batch, Vec::with_capacity(self.max_batch));
            self.commit(ops);
        }
    }

    /// Queues a reader's (or an erasure's) wait for the next commit.
    fn wait_for_settle(&mut self, request: SettleRequest) {
        self.scrub_due |= request.scrub;
        self.settle_waiters.push(request.reply);
    }

    /// When another process asked for the log to be scrubbed (its request file is there),
    /// the next commit settles and scrubs, then removes the request.
    fn scrub_requested(&mut self) {
        if self.log.as_ref().is_some_and(|log| log.log.scrub_requested()) {
            let (waiter, _) = oneshot::channel();
            self.wait_for_settle(SettleRequest { reply: waiter, scrub: true });
        }
    }

    /// Notes a cursor's value before the batch changes it (once per batch), so that a
    /// failed transaction can put back just what it touched; returns the cursor.
    fn remember(&mut self, conversation: ConversationId) -> Option<&mut Cursor> {
        let old = self.cursors.get(&conversation).copied();
        self.before.entry(conversation).or_insert(old);
        self.cursors.get_mut(&conversation)
    }

    /// Puts back the cursors a failed transaction changed.
    fn undo(&mut self) {
        for (conversation, old) in self.before.drain() {
            match old {
                Some(cursor) => self.cursors.insert(conversation, cursor),
                None => self.cursors.remove(&conversation),
            };
        }
    }

    /// Writes a batch in one transaction and reports the outcomes. If the transaction
    /// fails, each operation is retried alone so that one bad operation cannot sink the
    /// others; what still fails is reported as rejected.
    fn commit(&mut self, batch: Vec<JournalOp>) {
        let started = std::time::Instant::now();
        let size = batch.len();
        match self.write(&batch) {
            Ok(outcomes) => {
                self.telemetry.committed(started.elapsed().as_secs_f64(), size);
                self.report(batch, outcomes);
                tracing::trace!(size, elapsed_us = started.elapsed().as_micros() as u64, "committed");
            }
            Err(e) => {
                tracing::error!(error = %e, size, "batch failed; retrying one by one");
                self.undo();
                for op in batch {
                    let single = vec![op];
                    match self.write(&single) {
                        Ok(outcomes) => self.report(single, outcomes),
                        Err(e) => {
                            tracing::error!(error = %e, "operation failed");
                            self.undo();
                            self.report_failure(single.into_iter().next().expect("one op"));
                        }
                    }
                }
            }
        }
    }

    /// Runs the batch in one transaction and returns one outcome per operation. The
    /// transaction takes SQLite's write lock at its start: the pool's writer connection
    /// writes too (administration, tickets), and waits for it the same way.
    fn write(&mut self, batch: &[JournalOp]) -> Result<Vec<Outcome>> {
        let now = self.clock.now_ms();
        self.before.clear();
        self.closed.clear();
        self.outbox_due = false;
        self.keyring = self.keys.current();
        if let Some(log) = &mut self.log {
            log.forget_folded();
            log.absorb_stored_ids(false);
        }
        if self.loggable(batch)? {
            tracing::trace!(size = batch.len(), "to the message log");
            return self.write_logged(batch, now);
        }
        let fold = self.fold_plan(batch);
        tracing::trace!(size = batch.len(), fold, "to the tables");
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let mut folded = None;
        let written = self
            .fold_unfolded(fold)
            .and_then(|last| {
                folded = last;
                self.write_ops(batch, now)
            })
            .and_then(|outcomes| {
                self.conn.prepare_cached("COMMIT")?.execute([])?;
                Ok(outcomes)
            });
        match written {
            Ok(outcomes) => {
                if let (Some(lsn), Some(log)) = (folded, &mut self.log) {
                    log.progress.set_folded(lsn);
                    log.forget_folded();
                }
                // With a reader waiting, everything was folded now, or nothing was left to
                // fold (`fold_plan`).
                if std::mem::take(&mut self.scrub_due)
                    && let Some(log) = &mut self.log
                    && let Err(e) = log.log.scrub()
                {
                    tracing::error!(error = %e, "the message log could not be scrubbed");
                    self.settle_waiters.clear();
                }
                for waiter in self.settle_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                if self.outbox_due {
                    self.outbox.notify_one();
                }
                for conversation in self.closed.drain(..) {
                    self.cursors.remove(&conversation);
                }
                Ok(outcomes)
            }
            Err(e) => {
                if !self.conn.is_autocommit() {
                    // Nothing of the batch stays; its cursors are put back by the caller.
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        }
    }

    /// True when the log is on and `batch` holds only plain messages it may take: no
    /// attachments, not from a channel, into an open conversation with no channel replies
    /// to push, and not an agent's first reply since the assignment (which also writes the
    /// conversation's row). Anything else goes to the tables directly.
    ///
    /// So do full batches (`journal.max_batch`) once the journal has gathered nothing else
    /// for [`SATURATED_AFTER_MS`]: it is saturated, and with that many messages sharing
    /// one commit the tables take them for less than the log's own work per message (a
    /// lookup for duplicates, a copy for the fold, the fold itself; flat out, with every
    /// batch logged, the relay did 49,000–53,000 msg/s against 71,000–74,000). Until then
    /// a full batch is a backlog, left by a disk stall, and goes to the log: taken by the
    /// tables, it writes a page or two for each of its conversations and syncs them all,
    /// which takes long enough (about 100 ms on a slow disk) for the next batch to be full
    /// again (docs/BENCHMARKS.md, finding 27).
    fn loggable(&mut self, batch: &[JournalOp]) -> Result<bool> {
        let saturated = self.saturated(batch.len());
        let Some(log) = &self.log else { return Ok(false) };
        if log.broken
            || batch.is_empty()
            || saturated
            || !self.settle_waiters.is_empty()
            || log.unfolded_len() >= MAX_UNFOLDED
        {
            // (Past the limit the batch goes to the tables, and its transaction folds a
            // share of the log first.)
            return Ok(false);
        }
        for op in batch {
            let JournalOp::Append(m) = op else { return Ok(false) };
            if !m.attachments.is_empty() || m.via.is_some() {
                return Ok(false);
            }
            let Some(cursor) = self.cursor(m.workspace, m.conversation)? else { return Ok(false) };
            let first_reply = m.author == AuthorKind::Agent && !m.internal && !cursor.answered;
            if cursor.closed || cursor.via_channel || first_reply {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Notes whether a batch of `size` is full, and says whether every batch has been for
    /// [`SATURATED_AFTER_MS`].
    fn saturated(&mut self, size: usize) -> bool {
        if size < self.max_batch {
            self.full_since = None;
            return false;
        }
        let now = self.clock.now_ms();
        now - *self.full_since.get_or_insert(now) >= SATURATED_AFTER_MS
    }

    /// How many of the oldest unfolded messages this batch's transaction must fold first:
    /// all of them when a reader waits or a conversation closes (erasure and retention,
    /// which work on closed conversations, then find all its messages in the tables, and
    /// a cursor is dropped only once its messages are there); a share of them when the
    /// log holds too many; none otherwise.
    fn fold_plan(&self, batch: &[JournalOp]) -> usize {
        let Some(log) = &self.log else { return 0 };
        if log.progress.settled() {
            return 0;
        }
        let unfolded = log.unfolded_len();
        let closes = batch.iter().any(
            |op| matches!(op, JournalOp::Transition { lifecycle, .. } if lifecycle.state == ConversationState::Closed),
        );
        if !self.settle_waiters.is_empty() || closes {
            unfolded
        } else if unfolded >= MAX_UNFOLDED {
            tracing::debug!(unfolded, "the fold thread fell behind; the journal folds part of the message log itself");
            FOLD_SHARE
        } else {
            0
        }
    }

    /// Inserts the oldest `count` messages the log holds unfolded, sorted by conversation
    /// and `seq` (inside the batch's transaction); returns the last LSN they reach.
    fn fold_unfolded(&self, count: usize) -> Result<Option<u64>> {
        let Some(log) = self.log.as_ref().filter(|_| count > 0) else { return Ok(None) };
        let mut records: Vec<Arc<LoggedMessage>> =
            log.unfolded.lock().expect("not poisoned").iter().take(count).cloned().collect();
        let last = records.last().map(|m| m.lsn);
        records.sort_unstable_by_key(|m| (m.conversation.0, m.seq));
        crate::msglog::fold_into(&self.conn, records.iter().map(|m| &**m))?;
        Ok(last)
    }

    /// Writes a batch of plain messages to the log: each is given its conversation's next
    /// `seq` (or found to repeat one stored before), sealed, appended, and synced once for
    /// the batch; then handed to the fold thread. No SQLite transaction.
    fn write_logged(&mut self, batch: &[JournalOp], now: UnixMillis) -> Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut records: Vec<LoggedMessage> = Vec::with_capacity(batch.len());
        // Repeats within the batch, before its records are in the log's map.
        let mut batch_ids: HashMap<ClientKey, usize> = HashMap::new();
        let mut answered = Vec::new();
        for op in batch {
            let JournalOp::Append(m) = op else { unreachable!("checked by loggable") };
            if self.may_be_stored(m)
                && let Some(original) = self.original_of(m)?
            {
                outcomes.push(Outcome::Hub(original));
                continue;
            }
            if let Some(client_msg_id) = &m.client_msg_id
                && let Some(&earlier) = batch_ids.get(&(m.workspace, m.author, m.author_id, client_msg_id.clone()))
            {
                let record: &LoggedMessage = &records[earlier];
                outcomes.push(Outcome::Hub(Committed::Duplicate {
                    origin: m.origin,
                    client_msg_id: client_msg_id.clone(),
                    conversation: record.conversation,
                    seq: record.seq,
                    at: record.created_at,
                }));
                continue;
            }
            let cursor = self.cursor(m.workspace, m.conversation)?.expect("checked by loggable");
            let seq = cursor.last_seq + 1;
            if let Some(client_msg_id) = &m.client_msg_id {
                batch_ids.insert((m.workspace, m.author, m.author_id, client_msg_id.clone()), records.len());
            }
            self.note_client_id(m);
            records.push(LoggedMessage {
                lsn: 0,
                conversation: m.conversation,
                seq,
                workspace: m.workspace,
                author: m.author,
                author_id: m.author_id,
                client_msg_id: m.client_msg_id.clone(),
                body: self.keyring.seal(Field::MessageBody, &m.body).into_owned(),
                format: m.format,
                created_at: now,
                internal: m.internal,
            });
            outcomes.push(Outcome::Hub(self.stored(m, seq, now, &mut answered)));
        }
        debug_assert!(answered.is_empty(), "first replies are not logged");
        let log = self.log.as_mut().expect("checked by loggable");
        if let Err(e) = log.log.append(&mut records) {
            tracing::error!(error = %e, "the message log failed; messages go to the tables until the relay restarts");
            log.broken = true;
            return Err(e);
        }
        let mut last = None;
        let mut unfolded = log.unfolded.lock().expect("not poisoned");
        for record in records.into_iter().map(Arc::new) {
            if let Some(id) = &record.client_msg_id {
                log.ids.insert((record.workspace, record.author, record.author_id, id.clone()), record.clone());
            }
            last = Some(record.lsn);
            unfolded.push_back(record);
        }
        drop(unfolded);
        // Synced, and where the fold thread finds them.
        if let Some(lsn) = last {
            log.progress.set_logged(lsn);
        }
        Ok(outcomes)
    }

    /// The message `m` repeats, as its outcome, if it repeats one: in the log not yet
    /// folded, or in the tables.
    fn original_of(&self, m: &NewMessage) -> Result<Option<Committed>> {
        let Some(client_msg_id) = &m.client_msg_id else { return Ok(None) };
        if let Some(original) = self.log.as_ref().and_then(|log| log.duplicate_of(m)) {
            return Ok(Some(Committed::Duplicate {
                origin: m.origin,
                client_msg_id: client_msg_id.clone(),
                conversation: original.conversation,
                seq: original.seq,
                at: original.created_at,
            }));
        }
        let original = self
            .conn
            .prepare_cached(
                "SELECT conversation_id, seq, created_at FROM messages
                 WHERE workspace_id = ? AND author_kind = ? AND author_id IS ? AND client_msg_id = ?",
            )?
            .query_row(params![m.workspace.0, m.author.as_str(), m.author_id, client_msg_id], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
            })
            .optional()?;
        Ok(original.map(|(conversation, seq, at)| Committed::Duplicate {
            origin: m.origin,
            client_msg_id: client_msg_id.clone(),
            conversation: ConversationId(conversation),
            seq: seq as Seq,
            at,
        }))
    }

    /// The operations of a batch, inside its transaction.
    fn write_ops(&mut self, batch: &[JournalOp], now: UnixMillis) -> Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(batch.len());
        // Conversations an agent answered for the first time since their assignment: the
        // only messages that change the conversation's row. (Its last `seq` is the
        // messages' own; writing it into the row too would dirty one more page per
        // message, a third of what a spread-out message costs to commit.)
        let mut answered: Vec<ConversationId> = Vec::new();
        // The event log's hash chain, read once per transaction (which holds the write lock).
        let mut chain = crate::audit::Chain::default();
        for op in batch {
            let outcome = match op {
                JournalOp::CreateContact(contact, _) => {
                    Outcome::Contact(insert_contact(&self.conn, &self.keyring, contact, now)?)
                }
                JournalOp::OpenConversation {
                    workspace,
                    contact,
                    channel,
                    channel_id,
                    lifecycle,
                    route,
                    request,
                    first,
                } => {
                    let opening = Opening {
                        workspace: *workspace,
                        contact: *contact,
                        channel: *channel,
                        channel_id: *channel_id,
                    };
                    let id = insert_conversation(&self.conn, &mut chain, opening, lifecycle, *route, now)?;
                    self.remember(id);
                    let cursor = Cursor {
                        workspace: *workspace,
                        last_seq: 0,
                        closed: false,
                        via_channel: channel_id.is_some(),
                        answered: false,
                    };
                    self.cursors.insert(id, cursor);
                    let first = match first {
                        Some(first) => {
                            let message = NewMessage { conversation: id, ..first.message.clone() };
                            Some(Box::new(self.append(&message, now, &mut answered)?))
                        }
                        None => None,
                    };
                    Outcome::Hub(Committed::Opened {
                        request: *request,
                        conversation: id,
                        contact: *contact,
                        channel: *channel,
                        lifecycle: lifecycle.clone(),
                        first,
                    })
                }
                JournalOp::Append(message) => Outcome::Hub(self.append(message, now, &mut answered)?),
                JournalOp::AppendAwaited(message, _) => Outcome::Awaited(self.append(message, now, &mut answered)?),
                JournalOp::Transition { workspace, conversation, lifecycle, resolution, route, transfer, event } => {
                    let still_answered =
                        update_lifecycle(&self.conn, *conversation, lifecycle, resolution.as_deref(), now)?;
                    if let Some(cursor) = self.remember(*conversation) {
                        cursor.answered = still_answered;
                    }
                    if let Some(route) = route {
                        update_route(&self.conn, *conversation, *route)?;
                    }
                    insert_event(&self.conn, &mut chain, *workspace, Some(*conversation), event, now)?;
                    // A closed conversation takes no more messages. (A cursor not loaded
                    // yet, or dropped after this commit, is read from the database, which
                    // says closed from now on.)
                    if lifecycle.state == ConversationState::Closed {
                        if let Some(cursor) = self.remember(*conversation) {
                            cursor.closed = true;
                        }
                        self.closed.push(*conversation);
                    }
                    Outcome::Hub(Committed::Transitioned {
                        conversation: *conversation,
                        lifecycle: lifecycle.clone(),
                        transfer: transfer.clone(),
                    })
                }
                JournalOp::Record { workspace, conversation, route, intent, event } => {
                    if let Some(route) = route {
                        update_route(&self.conn, *conversation, *route)?;
                    }
                    if let Some(intent) = intent {
                        self.conn
                            .prepare_cached("UPDATE conversations SET intent = ? WHERE id = ?")?
                            .execute(params![intent, conversation.0])?;
                    }
                    insert_event(&self.conn, &mut chain, *workspace, Some(*conversation), event, now)?;
                    Outcome::Hub(Committed::Recorded { conversation: *conversation, kind: event.kind })
                }
                JournalOp::Log { workspace, conversation, event } => {
                    insert_event(&self.conn, &mut chain, *workspace, *conversation, event, now)?;
                    Outcome::Skipped
                }
                JournalOp::Read { workspace, conversation, reader, reader_id, seq } => {
                    let Some(cursor) = self.cursor(*workspace, *conversation)? else {
                        outcomes.push(Outcome::Skipped);
                        continue;
                    };
                    let seq = (*seq).min(cursor.last_seq);
                    // Announce the stored maximum, so a receipt never goes backwards.
                    let stored: i64 = self
                        .conn
                        .prepare_cached(
                            "INSERT INTO read_receipts (conversation_id, reader_kind, reader_id, workspace_id, last_read_seq, updated_at)
                             VALUES (?, ?, ?, ?, ?, ?)
                             ON CONFLICT (conversation_id, reader_kind, reader_id) DO UPDATE
                             SET last_read_seq = max(last_read_seq, excluded.last_read_seq), updated_at = excluded.updated_at
                             RETURNING last_read_seq",
                        )?
                        .query_row(
                            params![conversation.0, reader.as_str(), reader_id, workspace.0, seq as i64, now],
                            |row| row.get(0),
                        )?;
                    Outcome::Hub(Committed::Read { conversation: *conversation, reader: *reader, seq: stored as Seq })
                }
            };
            outcomes.push(outcome);
        }
        for conversation in answered {
            self.conn
                .prepare_cached(
                    "UPDATE conversations SET answered = 1, first_agent_reply_at = COALESCE(first_agent_reply_at, ?)
                     WHERE id = ?",
                )?
                .execute(params![now, conversation.0])?;
        }
        Ok(outcomes)
    }

    /// The cursor of a conversation in `workspace`, loading it on first use; `None` when
    /// the conversation does not exist there.
    fn cursor(&mut self, workspace: WorkspaceId, conversation: ConversationId) -> Result<Option<Cursor>> {
        if let Some(cursor) = self.cursors.get(&conversation) {
            return Ok((cursor.workspace == workspace).then_some(*cursor));
        }
        let cursor = self
            .conn
            .prepare_cached(
                "SELECT workspace_id, state = 'closed', answered,
                        COALESCE((SELECT max(m.seq) FROM messages m WHERE m.conversation_id = v.id), 0) AS last_seq,
                        channel_id IS NOT NULL
                        OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = v.id AND m.channel_id IS NOT NULL)
                        AS via_channel
                 FROM conversations v WHERE id = ?",
            )?
            .query_row(params![conversation.0], |row| {
                Ok(Cursor {
                    workspace: WorkspaceId(row.get(0)?),
                    closed: row.get(1)?,
                    answered: row.get(2)?,
                    last_seq: row.get::<_, i64>(3)? as Seq,
                    via_channel: row.get(4)?,
                })
            })
            .optional()?;
        let Some(cursor) = cursor else { return Ok(None) };
        self.remember(conversation);
        self.cursors.insert(conversation, cursor);
        Ok((cursor.workspace == workspace).then_some(cursor))
    }

    /// Moves the cursor past a message just inserted under `seq`.
    fn stored(&mut self, m: &NewMessage, seq: Seq, now: UnixMillis, answered: &mut Vec<ConversationId>) -> Committed {
        let cursor = self.remember(m.conversation).expect("cursor loaded");
        cursor.last_seq = seq;
        cursor.via_channel |= m.via.is_some();
        let reply = matches!(m.author, AuthorKind::Agent | AuthorKind::Bot) && !m.internal;
        // An agent's reply is a message the customer sees, not a private note.
        if m.author == AuthorKind::Agent && !m.internal && !cursor.answered {
            cursor.answered = true;
            answered.push(m.conversation);
        }
        let via_channel = cursor.via_channel;
        self.outbox_due |= reply && via_channel;
        Committed::Appended(Arc::new(StoredMessage { message: m.clone(), seq, at: now }))
    }

    /// Stores one message under its conversation's next `seq` (or finds the one it
    /// duplicates). The cursor moves only when the row went in, so `seq` has no gap.
    fn append(&mut self, m: &NewMessage, now: UnixMillis, answered: &mut Vec<ConversationId>) -> Result<Committed> {
        let reject = |code, text: &str| Committed::Rejected {
            origin: m.origin,
            client_msg_id: m.client_msg_id.clone(),
            conversation: m.conversation,
            error: ProtocolError::new(code, text),
        };
        let Some(cursor) = self.cursor(m.workspace, m.conversation)? else {
            return Ok(reject(ErrorCode::NotFound, "no such conversation"));
        };
        // A repeat of a message the log holds unfolded: the index cannot see it yet.
        if let Some(original) = self.log.as_ref().and_then(|log| log.duplicate_of(m)) {
            return Ok(Committed::Duplicate {
                origin: m.origin,
                client_msg_id: m.client_msg_id.clone().unwrap_or_default(),
                conversation: original.conversation,
                seq: original.seq,
                at: original.created_at,
            });
        }
        let seq = cursor.last_seq + 1;
        let inserted = if cursor.closed {
            0
        } else {
            let attachments =
                (!m.attachments.is_empty()).then(|| serde_json::to_string(&m.attachments).expect("serialises"));
            self.conn
                .prepare_cached(
                    // OR IGNORE rather than ON CONFLICT DO NOTHING: it also covers the NOT
                    // NULL and CHECK constraints (which the journal's values always meet),
                    // so no constraint can abort the statement halfway and SQLite needs no
                    // statement journal for it. A row not inserted is looked into below.
                    "INSERT OR IGNORE INTO messages (conversation_id, seq, workspace_id, author_kind, author_id,
                                                     client_msg_id, body, format, created_at, internal, attachments,
                                                     channel_id, source)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )?
                .execute(params![
                    m.conversation.0,
                    seq as i64,
                    m.workspace.0,
                    m.author.as_str(),
                    m.author_id,
                    m.client_msg_id.as_deref(),
                    self.keyring.seal(Field::MessageBody, &m.body).as_ref(),
                    m.format.as_str(),
                    now,
                    m.internal,
                    attachments,
                    m.via.as_ref().map(|v| v.channel_id),
                    m.via.as_ref().and_then(|v| v.view.source).map(|s| s.as_str()),
                ])?
        };
        if inserted == 1 {
            self.note_client_id(m);
            return Ok(self.stored(m, seq, now, answered));
        }
        // Not inserted: either stored before under this client id, or the conversation is
        // closed. A duplicate is acknowledged again even after closing.
        if let Some(original) = self.original_of(m)? {
            return Ok(original);
        }
        if cursor.closed {
            return Ok(reject(ErrorCode::Conflict, "the conversation is closed"));
        }
        Err(Error::Internal(format!("message {seq} of conversation {} was neither stored nor found", m.conversation)))
    }

    /// Hands each outcome to whoever waits for it: contact replies directly, the rest to
    /// the workspace hubs, one report per workspace, in commit order.
    fn report(&self, batch: Vec<JournalOp>, outcomes: Vec<Outcome>) {
        let mut by_workspace: Vec<(WorkspaceId, Vec<Committed>)> = Vec::new();
        for (op, outcome) in batch.into_iter().zip(outcomes) {
            let workspace = op.workspace();
            let for_hub = match (op, outcome) {
                (JournalOp::CreateContact(_, reply), Outcome::Contact(id)) => {
                    let _ = reply.send(Ok(id));
                    continue;
                }
                (
                    JournalOp::OpenConversation { first: Some(FirstMessage { receipt: Some(reply), .. }), .. },
                    Outcome::Hub(committed),
                ) => {
                    if let Committed::Opened { first: Some(stored), .. } = &committed {
                        let _ = reply.send(receipt_of(stored));
                    }
                    committed
                }
                (_, Outcome::Hub(committed)) => committed,
                (JournalOp::AppendAwaited(_, reply), Outcome::Awaited(committed)) => {
                    let _ = reply.send(receipt_of(&committed));
                    committed
                }
                (_, Outcome::Skipped) => continue,
                (_, Outcome::Contact(_) | Outcome::Awaited(_)) => unreachable!("outcome of another operation"),
            };
            match by_workspace.iter_mut().find(|(w, _)| *w == workspace) {
                Some((_, list)) => list.push(for_hub),
                None => by_workspace.push((workspace, vec![for_hub])),
            }
        }
        for (workspace, list) in by_workspace {
            self.hubs.committed(workspace, list);
        }
    }

    /// Tells whoever waits that an operation could not be written.
    fn report_failure(&self, op: JournalOp) {
        let internal = || ProtocolError::new(ErrorCode::Internal, "the message could not be stored; retry");
        let workspace = op.workspace();
        let committed = match op {
            JournalOp::CreateContact(_, reply) => {
                let _ = reply.send(Err(Error::Internal("contact could not be stored".into())));
                return;
            }
            JournalOp::Append(m) => {
                let (origin, client_msg_id, conversation) = (m.origin, m.client_msg_id, m.conversation);
                Committed::Rejected { origin, client_msg_id, conversation, error: internal() }
            }
            JournalOp::AppendAwaited(_, reply) => {
                let _ = reply.send(Err(internal()));
                return;
            }
            JournalOp::Transition { conversation, .. } => Committed::TransitionFailed { conversation },
            JournalOp::OpenConversation { request, first, .. } => {
                if let Some(reply) = first.and_then(|f| f.receipt) {
                    let _ = reply.send(Err(internal()));
                }
                Committed::OpenFailed { request }
            }
            JournalOp::Read { .. } | JournalOp::Record { .. } | JournalOp::Log { .. } => return,
        };
        self.hubs.committed(workspace, vec![committed]);
    }
}

/// What one operation became.
enum Outcome {
    /// Nothing to report (a receipt for a conversation not in the workspace).
    Skipped,
    /// A contact was created; its id goes to the op's reply channel.
    Contact(ContactId),
    /// Something for the hub.
    Hub(Committed),
    /// Something for the hub that a caller also waits for.
    Awaited(Committed),
}

/// What a waiting caller is told of its message.
fn receipt_of(committed: &Committed) -> std::result::Result<Receipt, ProtocolError> {
    match committed {
        Committed::Appended(stored) => {
            Ok(Receipt { conversation: stored.message.conversation, seq: stored.seq, duplicate: false })
        }
        Committed::Duplicate { conversation, seq, .. } => {
            Ok(Receipt { conversation: *conversation, seq: *seq, duplicate: true })
        }
        Committed::Rejected { error, .. } => Err(error.clone()),
        _ => Err(ProtocolError::new(ErrorCode::Internal, "unexpected outcome of a message")),
    }
}

/// Who opens a conversation, through what.
struct Opening {
    workspace: WorkspaceId,
    contact: ContactId,
    channel: ChannelKind,
    channel_id: Option<i64>,
}

fn insert_contact(
    conn: &rusqlite::Connection,
    keyring: &Keyring,
    c: &NewContact,
    now: UnixMillis,
) -> Result<ContactId> {
    conn.prepare_cached("INSERT INTO contacts (workspace_id, name, created_at) VALUES (?, ?, ?)")?.execute(params![
        c.workspace.0,
        keyring.seal_opt(Field::ContactName, c.name.as_deref()).as_deref(),
        now
    ])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO contact_identities (workspace_id, contact_id, channel_kind, external_id, created_at) VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![c.workspace.0, id, c.channel.as_str(), c.external_id, now])?;
    conn.prepare_cached(
        "INSERT INTO customer_tokens (token_hash, workspace_id, contact_id, created_at) VALUES (?, ?, ?, ?)",
    )?
    .execute(params![c.token_hash, c.workspace.0, id, now])?;
    Ok(ContactId(id))
}

fn insert_conversation(
    conn: &rusqlite::Connection,
    chain: &mut crate::audit::Chain,
    opening: Opening,
    life: &Lifecycle,
    route: RouteFields,
    now: UnixMillis,
) -> Result<ConversationId> {
    let Opening { workspace, contact, channel, channel_id } = opening;
    conn.prepare_cached(
        "INSERT INTO conversations (workspace_id, contact_id, channel_kind, state, created_at, queued_at, updated_at, group_id,
                                    priority, channel_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        workspace.0,
        contact.0,
        channel.as_str(),
        life.state.as_str(),
        life.created_at,
        life.queued_at,
        now,
        route.group,
        route.priority as i64,
        channel_id,
    ])?;
    let id = conn.last_insert_rowid();
    let event = EventRecord {
        kind: "conversation.opened",
        actor_kind: "customer",
        actor_id: Some(contact.0),
        origin: None,
        data: serde_json::json!({ "channel": channel.as_str(), "channel_id": channel_id, "state": life.state.as_str() }),
    };
    insert_event(conn, chain, workspace, Some(ConversationId(id)), &event, now)?;
    Ok(ConversationId(id))
}

fn update_lifecycle(
    conn: &rusqlite::Connection,
    conversation: ConversationId,
    life: &Lifecycle,
    resolution: Option<&str>,
    now: UnixMillis,
) -> Result<bool> {
    let answered: Option<bool> = conn
        .prepare_cached(
            "UPDATE conversations SET state = ?, assignee_agent_id = ?, queued_at = ?,
                    answered = CASE WHEN assigned_at IS ? THEN answered ELSE 0 END, assigned_at = ?,
                    resolved_at = ?, closed_at = ?, resolution = COALESCE(?, resolution), updated_at = ?
             WHERE id = ? RETURNING answered",
        )?
        .query_row(
            params![
                life.state.as_str(),
                life.assignee.map(|a| a.0),
                life.queued_at,
                life.assigned_at,
                life.assigned_at,
                life.resolved_at,
                life.closed_at,
                resolution,
                now,
                conversation.0,
            ],
            |row| row.get(0),
        )
        .optional()?;
    // Whether the holder has answered: kept across a change that keeps the assignment.
    Ok(answered.unwrap_or(false))
}

fn update_route(conn: &rusqlite::Connection, conversation: ConversationId, route: RouteFields) -> Result<()> {
    conn.prepare_cached("UPDATE conversations SET group_id = ?, priority = ? WHERE id = ?")?.execute(params![
        route.group,
        route.priority as i64,
        conversation.0
    ])?;
    Ok(())
}

fn insert_event(
    conn: &rusqlite::Connection,
    chain: &mut crate::audit::Chain,
    workspace: WorkspaceId,
    conversation: Option<ConversationId>,
    event: &EventRecord,
    now: UnixMillis,
) -> Result<()> {
    let data = event.data.to_string();
    let entry = crate::audit::Entry {
        workspace,
        at: now,
        kind: event.kind,
        actor_kind: event.actor_kind,
        actor_id: event.actor_id,
        conversation,
        data: &data,
        origin: event.origin.as_deref(),
    };
    chain.append_on(conn, entry)
}

#[cfg(test)]
mod tests {
    use kefu_proto::frame::BodyFormat;

    use sqlx::Row;

    use super::*;
    use crate::store::Store;

    fn journal(store: &Store) -> Journal {
        journal_with(store, Clock::System, 4096)
    }

    fn journal_with(store: &Store, clock: Clock, max_batch: usize) -> Journal {
        Journal::new(
            store,
            clock,
            Arc::new(Hubs::default()),
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(crate::telemetry::Telemetry::new()),
            max_batch,
        )
        .unwrap()
    }

    fn message(workspace: WorkspaceId, conversation: ConversationId, client_msg_id: &str) -> JournalOp {
        JournalOp::Append(NewMessage {
            workspace,
            conversation,
            origin: None,
            author: AuthorKind::Customer,
            author_id: Some(1),
            client_msg_id: Some(client_msg_id.into()),
            body: format!("body of {client_msg_id}"),
            format: BodyFormat::Text,
            internal: false,
            attachments: vec![],
            via: None,
        })
    }

    /// Each message's `seq` and whether it was a repeat of one stored before.
    fn seqs(outcomes: Vec<Outcome>) -> Vec<(Seq, bool)> {
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Hub(Committed::Appended(stored)) => (stored.seq, false),
                Outcome::Hub(Committed::Duplicate { seq, .. }) => (seq, true),
                _ => panic!("a message's outcome"),
            })
            .collect()
    }

    /// A fresh store in `dir`, its default workspace and a contact in it.
    async fn store_with_contact(dir: &std::path::Path) -> (Store, WorkspaceId, ContactId) {
        let store = Store::open(dir).await.unwrap();
        let workspace = crate::admin::show_workspace(&store, "default").await.unwrap().id;
        let contact = insert_contact(
            &store.journal_connection().unwrap(),
            &Keyring::off(),
            &NewContact {
                workspace,
                name: None,
                channel: ChannelKind::Web,
                external_id: "visitor-1".into(),
                token_hash: vec![1; 32],
            },
            1,
        )
        .unwrap();
        (store, workspace, contact)
    }

    /// Opening a web conversation for `contact`, with the message it is opened for.
    fn opening(workspace: WorkspaceId, contact: ContactId, request: u64, first: Option<FirstMessage>) -> JournalOp {
        JournalOp::OpenConversation {
            workspace,
            contact,
            channel: ChannelKind::Web,
            channel_id: None,
            lifecycle: Lifecycle::open(1, false),
            route: RouteFields { group: None, priority: 202 },
            request,
            first,
        }
    }

    /// The system moving `conversation` to `lifecycle`, recorded as `kind`.
    fn transition(
        workspace: WorkspaceId,
        conversation: ConversationId,
        lifecycle: Lifecycle,
        kind: &'static str,
    ) -> JournalOp {
        JournalOp::Transition {
            workspace,
            conversation,
            lifecycle,
            resolution: None,
            route: None,
            transfer: None,
            event: EventRecord {
                kind,
                actor_kind: "system",
                actor_id: None,
                data: serde_json::json!({}),
                origin: None,
            },
        }
    }

    /// Opens a conversation for `contact` through the journal.
    async fn open(
        journal: &mut Journal,
        workspace: WorkspaceId,
        contact: ContactId,
        request: u64,
    ) -> (ConversationId, Lifecycle) {
        let outcomes = journal.write(&[opening(workspace, contact, request, None)]).unwrap();
        let Outcome::Hub(Committed::Opened { conversation, lifecycle, .. }) = &outcomes[0] else { panic!("opened") };
        (*conversation, lifecycle.clone())
    }

    /// A conversation opened for a customer's message holds it from its first commit: the
    /// message is `seq` 1 of the new conversation whatever id it was sent with, and the
    /// opening reports it; a repeat of it later is a duplicate of that one.
    #[tokio::test]
    async fn a_conversation_opened_for_a_message_is_stored_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, workspace, contact) = store_with_contact(dir.path()).await;
        let mut journal = journal(&store);
        let JournalOp::Append(first) = message(workspace, ConversationId(0), "hello-1") else { unreachable!() };
        let open = opening(workspace, contact, 7, Some(FirstMessage { message: first, receipt: None }));
        let outcomes = journal.write(&[open]).unwrap();
        let Outcome::Hub(Committed::Opened { request: 7, conversation, first: Some(first), .. }) = &outcomes[0] else {
            panic!("opened with its message")
        };
        let Committed::Appended(appended) = first.as_ref() else { panic!("the message was stored: {first:?}") };
        assert_eq!((appended.message.conversation, appended.seq), (*conversation, 1));
        assert_eq!(stored(&store).await, vec![(conversation.0, 1, "hello-1".to_string())]);
        let outcomes = journal.write(&[message(workspace, *conversation, "hello-1")]).unwrap();
        assert!(
            matches!(&outcomes[0], Outcome::Hub(Committed::Duplicate { seq: 1, conversation: c, .. }) if c == conversation)
        );
        // A caller that waits (an HTTP channel) is told where its message went.
        let JournalOp::Append(second) = message(workspace, ConversationId(0), "hello-2") else { unreachable!() };
        let (receipt_tx, receipt) = oneshot::channel();
        journal.commit(vec![opening(
            workspace,
            contact,
            8,
            Some(FirstMessage { message: second, receipt: Some(receipt_tx) }),
        )]);
        let receipt = receipt.await.unwrap().unwrap();
        assert_eq!((receipt.seq, receipt.duplicate), (1, false));
        assert_ne!(receipt.conversation, *conversation, "a conversation of its own");
        assert!(stored(&store).await.contains(&(receipt.conversation.0, 1, "hello-2".to_string())));
    }

    /// The stored `(conversation, seq, client_msg_id)` rows, in order.
    async fn stored(store: &Store) -> Vec<(i64, i64, String)> {
        sqlx::query("SELECT conversation_id, seq, client_msg_id FROM messages ORDER BY conversation_id, seq")
            .fetch_all(&store.writer)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// With the message log on, plain messages are stored in it: each gets the next `seq`
    /// as ever, a repeat (in the same batch, or of a message not folded yet, or of one
    /// folded) is a duplicate of the original, an agent's first reply still marks the
    /// conversation answered (it goes to the tables directly), a reader's settle and a
    /// close fold everything into the table, and the seq goes on without a gap across
    /// both paths.
    #[tokio::test]
    async fn the_message_log_stores_plain_messages_and_folds_them_when_needed() {
        use crate::msglog::read_log;
        let dir = tempfile::tempdir().unwrap();
        let (store, workspace, contact) = store_with_contact(dir.path()).await;
        let mut journal = journal(&store).with_message_log(&store).unwrap();
        let (conversation, lifecycle) = open(&mut journal, workspace, contact, 1).await;
        let c = conversation.0;
        let log_dir = crate::store::message_log_dir(dir.path());
        let logged = || -> Vec<(Seq, String)> {
            read_log(&log_dir).unwrap().into_iter().map(|m| (m.seq, m.client_msg_id.unwrap())).collect()
        };

        let first = journal
            .write(&[
                message(workspace, conversation, "a"),
                message(workspace, conversation, "b"),
                message(workspace, conversation, "a"),
            ])
            .unwrap();
        assert_eq!(seqs(first), [(1, false), (2, false), (1, true)]);
        assert_eq!(logged(), [(1, "a".to_string()), (2, "b".to_string())], "in the log, synced");
        let again =
            journal.write(&[message(workspace, conversation, "b"), message(workspace, conversation, "c")]).unwrap();
        assert_eq!(seqs(again), [(2, true), (3, false)]);

        // An agent's first reply after the assignment goes to the tables with its row.
        let mut assigned = lifecycle.clone();
        assigned.state = ConversationState::Assigned;
        assigned.assignee = Some(kefu_proto::AgentId(1));
        assigned.assigned_at = Some(10);
        let transition = |lifecycle: Lifecycle, kind| transition(workspace, conversation, lifecycle, kind);
        journal.write(&[transition(assigned.clone(), "conversation.assigned")]).unwrap();
        let JournalOp::Append(mut reply) = message(workspace, conversation, "r1") else { unreachable!() };
        reply.author = AuthorKind::Agent;
        reply.author_id = Some(1);
        let replied = journal.write(&[JournalOp::Append(reply.clone())]).unwrap();
        assert_eq!(seqs(replied), [(4, false)]);
        let answered: i64 = sqlx::query_scalar("SELECT answered FROM conversations WHERE id = ?")
            .bind(c)
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(answered, 1);
        reply.client_msg_id = Some("r2".into());
        let later = journal.write(&[JournalOp::Append(reply), message(workspace, conversation, "d")]).unwrap();
        assert_eq!(seqs(later), [(5, false), (6, false)]);
        assert_eq!(logged().last(), Some(&(6, "d".to_string())), "later replies are logged");

        // A reader waiting: the next transaction folds everything.
        let (waiter, settled) = oneshot::channel();
        journal.settle_waiters.push(waiter);
        journal.write(&[]).unwrap();
        settled.await.unwrap();
        let ids = |rows: Vec<(i64, i64, String)>| rows.into_iter().map(|(_, seq, id)| (seq, id)).collect::<Vec<_>>();
        let all: Vec<(i64, String)> =
            [(1, "a"), (2, "b"), (3, "c"), (4, "r1"), (5, "r2"), (6, "d")].map(|(s, id)| (s, id.to_string())).into();
        assert_eq!(ids(stored(&store).await), all);

        // A close folds what came since, before the cursor goes.
        journal.write(&[message(workspace, conversation, "e")]).unwrap();
        let mut closed = assigned;
        closed.state = ConversationState::Closed;
        journal.write(&[transition(closed, "conversation.closed")]).unwrap();
        assert_eq!(stored(&store).await.last(), Some(&(c, 7, "e".to_string())));
        assert!(journal.log.as_ref().unwrap().progress.settled());
    }

    /// The ids the tables held at the start are read beside the journal: a repeat of one is
    /// found while they are read (every id is looked up) and after (the filter they are
    /// read into does not rule it out), and a new id is stored.
    #[tokio::test]
    async fn a_repeat_of_an_id_stored_before_the_start_is_found_while_and_after_the_ids_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let (store, workspace, contact) = store_with_contact(dir.path()).await;
        let mut before = journal(&store);
        let (conversation, _) = open(&mut before, workspace, contact, 1).await;
        before.write(&[message(workspace, conversation, "a"), message(workspace, conversation, "b")]).unwrap();
        drop(before);

        let mut journal = journal(&store).with_message_log(&store).unwrap();
        let early = journal.write(&[message(workspace, conversation, "a")]).unwrap();
        assert_eq!(seqs(early), [(1, true)]);

        let log = journal.log.as_mut().unwrap();
        log.absorb_stored_ids(true);
        assert!(log.stored_ids.is_none(), "read and absorbed");
        assert_eq!(log.client_ids.count(), 2, "the two ids the tables held");
        let later = journal
            .write(&[
                message(workspace, conversation, "b"),
                message(workspace, conversation, "c"),
                message(workspace, conversation, "a"),
            ])
            .unwrap();
        assert_eq!(seqs(later), [(2, true), (3, false), (1, true)]);
        assert_eq!(journal.log.as_ref().unwrap().client_ids.count(), 3);
    }

    /// A full batch goes to the message log like any other (a backlog after a stall is
    /// drained through it), until every batch has been full for a second: then the journal
    /// is saturated and full batches go to the tables, until one is not full.
    #[tokio::test]
    async fn full_batches_go_to_the_tables_only_once_the_journal_is_saturated() {
        use crate::msglog::read_log;
        let dir = tempfile::tempdir().unwrap();
        let (store, workspace, contact) = store_with_contact(dir.path()).await;
        let clock = crate::clock::ManualClock::new(1_000_000);
        let mut journal = journal_with(&store, Clock::Manual(clock.clone()), 2).with_message_log(&store).unwrap();
        let (conversation, _) = open(&mut journal, workspace, contact, 1).await;
        let log_dir = crate::store::message_log_dir(dir.path());
        let logged =
            || -> Vec<String> { read_log(&log_dir).unwrap().into_iter().filter_map(|m| m.client_msg_id).collect() };
        let in_tables = |store: Store| async move {
            stored(&store).await.into_iter().map(|(_, _, id)| id).collect::<Vec<String>>()
        };
        let mut write = |ids: &[&str]| {
            let batch: Vec<JournalOp> = ids.iter().map(|id| message(workspace, conversation, id)).collect();
            journal.write(&batch).unwrap();
        };

        write(&["a", "b"]);
        clock.advance(std::time::Duration::from_millis(999));
        write(&["c", "d"]);
        assert_eq!(logged(), ["a", "b", "c", "d"], "full batches within a second are logged");
        assert!(in_tables(store.clone()).await.is_empty());

        clock.advance(std::time::Duration::from_millis(1));
        write(&["e", "f"]);
        assert_eq!(logged(), ["a", "b", "c", "d"], "saturated: not logged");
        assert_eq!(in_tables(store.clone()).await, ["e", "f"], "saturated: in the tables");

        write(&["g"]);
        clock.advance(std::time::Duration::from_secs(5));
        write(&["h", "i"]);
        assert_eq!(logged(), ["a", "b", "c", "d", "g", "h", "i"], "a batch not full ends the saturation");
        assert_eq!(in_tables(store.clone()).await, ["e", "f"]);
    }

    /// A message log left behind (by a relay that stopped before folding it) is replayed
    /// when the store opens: its messages go into the table under their `seq`, a message
    /// already stored keeps its row, a record of a conversation the database lacks is left
    /// out, and the log is cleared. While one store holds the log, another opening (a
    /// command-line tool beside a serving relay) leaves it alone.
    #[tokio::test]
    async fn a_message_log_left_behind_is_replayed_when_the_store_opens() {
        use crate::msglog::{LoggedMessage, MessageLog, read_log};
        let dir = tempfile::tempdir().unwrap();
        let (store, workspace, contact) = store_with_contact(dir.path()).await;
        let mut journal = journal(&store);
        let (conversation, _) = open(&mut journal, workspace, contact, 1).await;
        journal.write(&[message(workspace, conversation, "m-1")]).unwrap();
        drop(journal);
        let logged = |conversation: ConversationId, seq: Seq, id: &str| LoggedMessage {
            lsn: 0,
            conversation,
            seq,
            workspace,
            author: AuthorKind::Customer,
            author_id: Some(contact.0),
            client_msg_id: Some(id.into()),
            body: format!("logged {id}"),
            format: BodyFormat::Text,
            created_at: 5,
            internal: false,
        };
        // A relay serving the data dir holds the log (and replays it when it starts).
        let serving = Store::open_to_serve(dir.path(), Keys::off(), std::time::Duration::from_secs(1)).await.unwrap();
        let log_dir = crate::store::message_log_dir(dir.path());
        let mut log = MessageLog::create(&log_dir, 1).unwrap();
        log.append(&mut [
            logged(conversation, 1, "m-1"),
            logged(conversation, 2, "m-2"),
            logged(ConversationId(conversation.0 + 100), 1, "orphan"),
            logged(conversation, 3, "m-3"),
        ])
        .unwrap();
        drop(log);

        // A tool's store beside it leaves the log alone.
        let beside = Store::open(dir.path()).await.unwrap();
        assert_eq!(read_log(&log_dir).unwrap().len(), 4, "the log is the serving relay's");
        assert_eq!(stored(&beside).await.len(), 1);
        let second = Store::open_to_serve(dir.path(), Keys::off(), std::time::Duration::from_millis(100)).await;
        assert!(second.is_err(), "one relay serves a data dir");
        for store in [beside, serving, store] {
            store.close().await;
        }

        let reopened = Store::open(dir.path()).await.unwrap();
        let c = conversation.0;
        let expected = vec![(c, 1, "m-1".to_string()), (c, 2, "m-2".to_string()), (c, 3, "m-3".to_string())];
        assert_eq!(stored(&reopened).await, expected);
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT body FROM messages ORDER BY seq").fetch_all(&reopened.writer).await.unwrap();
        assert_eq!(bodies, ["body of m-1", "logged m-2", "logged m-3"]);
        assert!(read_log(&log_dir).unwrap().is_empty(), "cleared once replayed");
        reopened.close().await;
        drop(reopened);
        let again = Store::open(dir.path()).await.unwrap();
        assert_eq!(stored(&again).await, expected);
    }

    /// Batches of messages over two conversations, with repeats of an earlier message and
    /// within one batch: each message is stored once, a repeat is reported as the
    /// original, every conversation's `seq` has no gap, and a journal started afresh goes
    /// on from where each sequence stands.
    #[tokio::test]
    async fn runs_of_messages_store_each_once_in_order_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let (store, workspace, contact) = store_with_contact(dir.path()).await;
        let mut journal = journal(&store);
        let mut conversations = Vec::new();
        for request in 0..2 {
            conversations.push(open(&mut journal, workspace, contact, request).await.0);
        }
        let (a, b) = (conversations[0], conversations[1]);
        // 300 messages in one batch, the two conversations interleaved.
        let run: Vec<JournalOp> =
            (0..300).map(|i| message(workspace, if i % 3 == 0 { b } else { a }, &format!("m{i}"))).collect();
        let outcomes = journal.write(&run).unwrap();
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Hub(Committed::Appended(_)))));
        // A run with a repeat of an earlier message and a repeat within itself.
        let again = vec![
            message(workspace, a, "n0"),
            message(workspace, a, "m1"),
            message(workspace, b, "n1"),
            message(workspace, a, "n1-twin"),
            message(workspace, a, "n1-twin"),
        ];
        let outcomes = journal.write(&again).unwrap();
        let kinds: Vec<&str> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Hub(Committed::Appended(_)) => "stored",
                Outcome::Hub(Committed::Duplicate { .. }) => "duplicate",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["stored", "duplicate", "stored", "stored", "duplicate"]);
        let rows = stored(&store).await;
        for conversation in [a, b] {
            let seqs: Vec<i64> = rows.iter().filter(|r| r.0 == conversation.0).map(|r| r.1).collect();
            let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
            assert_eq!(seqs, expected, "conversation {conversation}: contiguous from 1");
        }
        assert_eq!(rows.len(), 300 + 3, "each message once");
        let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.2.as_str()).collect();
        assert_eq!(ids.len(), rows.len());
        // A journal that starts afresh (as after a restart) reads where each sequence
        // stands from the messages and goes on from there.
        let last_a = rows.iter().filter(|r| r.0 == a.0).count() as Seq;
        let mut restarted = super::tests::journal(&store);
        let outcomes = restarted.write(&[message(workspace, a, "after-restart")]).unwrap();
        let Outcome::Hub(Committed::Appended(next)) = &outcomes[0] else { panic!("stored") };
        assert_eq!(next.seq, last_a + 1);
    }

    /// `answered` (the holder replied since the assignment) is set by the first reply after
    /// each assignment, kept by other changes, cleared by a new assignment, and read back
    /// by a journal that starts afresh; `first_agent_reply_at` is the very first reply's.
    #[tokio::test]
    async fn agent_replies_mark_the_conversation_answered_once_per_assignment() {
        let dir = tempfile::tempdir().unwrap();
        let (store, workspace, contact) = store_with_contact(dir.path()).await;
        let mut journal = journal(&store);
        let agents: Vec<i64> = {
            let mut ids = Vec::new();
            for email in ["one@shop.example", "two@shop.example"] {
                let (id, _) = crate::admin::add_agent(
                    &store,
                    "default",
                    email,
                    email,
                    kefu_proto::frame::Role::Agent,
                    Some("a-long-password".into()),
                )
                .await
                .unwrap();
                ids.push(id.0);
            }
            ids
        };
        let (conversation, lifecycle) = open(&mut journal, workspace, contact, 0).await;
        let lifecycle = &lifecycle;
        let assign = |life: &Lifecycle, agent: i64, at: UnixMillis| {
            let mut next = life.clone();
            next.state = ConversationState::Assigned;
            next.assignee = Some(kefu_proto::AgentId(agent));
            next.assigned_at = Some(at);
            next
        };
        let transition = |lifecycle: Lifecycle| transition(workspace, conversation, lifecycle, "conversation.assigned");
        let reply = |agent: i64, id: &str| {
            let JournalOp::Append(mut m) = message(workspace, conversation, id) else { unreachable!() };
            m.author = AuthorKind::Agent;
            m.author_id = Some(agent);
            JournalOp::Append(m)
        };
        let row = || async {
            let row = sqlx::query("SELECT answered, first_agent_reply_at FROM conversations WHERE id = ?")
                .bind(conversation.0)
                .fetch_one(&store.writer)
                .await
                .unwrap();
            (row.get::<i64, _>(0) != 0, row.get::<Option<i64>, _>(1).is_some())
        };
        let first = assign(lifecycle, agents[0], 10);
        journal.write(&[transition(first.clone())]).unwrap();
        assert_eq!(row().await, (false, false), "assigned, not answered yet");
        journal.write(&[message(workspace, conversation, "question")]).unwrap();
        assert_eq!(row().await, (false, false), "a customer's message answers nothing");
        journal.write(&[reply(agents[0], "r1"), reply(agents[0], "r2")]).unwrap();
        assert_eq!(row().await, (true, true), "the first reply marks it");
        let first_reply_at: i64 = sqlx::query_scalar("SELECT first_agent_reply_at FROM conversations WHERE id = ?")
            .bind(conversation.0)
            .fetch_one(&store.writer)
            .await
            .unwrap();
        // The same assignment again (a change that keeps the holder) keeps it answered.
        journal.write(&[transition(first.clone())]).unwrap();
        assert_eq!(row().await, (true, true));
        // Another agent takes it: not answered by them yet.
        journal.write(&[transition(assign(&first, agents[1], 20))]).unwrap();
        assert_eq!(row().await, (false, true), "a new assignment clears it");
        // A journal that starts afresh reads that from the row, and the new holder's reply
        // marks it again without moving the first reply's time.
        let mut restarted = super::tests::journal(&store);
        restarted.write(&[reply(agents[1], "r3")]).unwrap();
        assert_eq!(row().await, (true, true));
        let still: i64 = sqlx::query_scalar("SELECT first_agent_reply_at FROM conversations WHERE id = ?")
            .bind(conversation.0)
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(still, first_reply_at);
    }

    /// Closing a conversation drops its cursor once the close commits, so the journal's
    /// memory follows the open conversations, not every one since start; a message sent
    /// there afterwards is still refused as closed, and a repeat of an earlier one is
    /// still recognised.
    #[tokio::test]
    async fn a_closed_conversation_leaves_the_journals_memory_and_stays_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (store, workspace, contact) = store_with_contact(dir.path()).await;
        let mut journal = journal(&store);
        let (conversation, lifecycle) = open(&mut journal, workspace, contact, 0).await;
        let (other, _) = open(&mut journal, workspace, contact, 1).await;
        journal.write(&[message(workspace, conversation, "before-close")]).unwrap();
        let mut closed = lifecycle.clone();
        closed.state = ConversationState::Closed;
        closed.closed_at = Some(5);
        let close = JournalOp::Transition {
            workspace,
            conversation,
            lifecycle: closed,
            resolution: None,
            route: None,
            transfer: None,
            event: EventRecord {
                kind: "conversation.closed",
                actor_kind: "system",
                actor_id: None,
                data: serde_json::json!({}),
                origin: None,
            },
        };
        // In the same batch as the close, a message after it is refused already.
        let outcomes = journal.write(&[close, message(workspace, conversation, "with-close")]).unwrap();
        assert!(matches!(&outcomes[1], Outcome::Hub(Committed::Rejected { .. })), "refused in the closing batch");
        assert!(!journal.cursors.contains_key(&conversation), "the closed conversation's cursor is gone");
        assert!(journal.cursors.contains_key(&other), "an open one keeps its cursor");
        let outcomes = journal
            .write(&[message(workspace, conversation, "after-close"), message(workspace, conversation, "before-close")])
            .unwrap();
        let Outcome::Hub(Committed::Rejected { error, .. }) = &outcomes[0] else { panic!("refused") };
        assert_eq!(error.code, ErrorCode::Conflict);
        assert!(
            matches!(&outcomes[1], Outcome::Hub(Committed::Duplicate { seq: 1, .. })),
            "a repeat is acknowledged with its original seq"
        );
        assert_eq!(stored(&store).await.iter().filter(|r| r.0 == conversation.0).count(), 1);
    }

    /// This process's threads named `name`, each as (nice value, scheduling policy), read
    /// from `/proc` (fields 19 and 41 of a thread's `stat`).
    #[cfg(target_os = "linux")]
    fn threads_named(name: &str) -> Vec<(i64, i64)> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            if comm.trim_end() != name {
                continue;
            }
            // After the command's closing parenthesis, fields start at the third.
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
            found.push((fields[19 - 3].parse().unwrap(), fields[41 - 3].parse().unwrap()));
        }
        found
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_journal_gathers_under_sched_batch_and_the_fold_runs_at_its_nice_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let handle = spawn(journal(&store).with_message_log(&store).unwrap(), 16).unwrap();
        // Each thread sets its own scheduling as it starts; other tests' journals may be
        // starting too, so wait (boundedly) until every one has.
        let settled = || {
            let journals = threads_named("kefu-journal");
            let folds = threads_named("kefu-fold");
            !journals.is_empty()
                && !folds.is_empty()
                && journals.iter().all(|&(nice, policy)| nice == 0 && policy == i64::from(libc::SCHED_BATCH))
                && folds.iter().all(|&(nice, policy)| nice == i64::from(crate::msglog::FOLD_NICE) && policy == 0)
        };
        for _ in 0..100 {
            if settled() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            settled(),
            "journal threads (nice, policy): {:?}; fold threads: {:?}",
            threads_named("kefu-journal"),
            threads_named("kefu-fold")
        );
        drop(handle);
    }
}
