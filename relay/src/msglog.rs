//! The message log: messages appended to files and synced, one sequential write per group
//! commit, instead of SQLite's B-tree pages written per message.
//!
//! Why: at spread-out rates each stored message costs SQLite about two random 4 KiB pages
//! in the WAL and again in the checkpoint, and the checkpoint's copy stalls the commit path;
//! a log of records costs the bytes of the message. Folded into the `messages` table in
//! large sorted batches (each conversation's pages written once per batch), the same
//! messages cost a fraction of the pages (docs/BENCHMARKS.md, findings 20–25).
//!
//! This module owns the files and their format, nothing else: [`MessageLog`] appends
//! batches of [`LoggedMessage`]s and syncs them, and [`read_log`] reads back every record
//! that was synced, in order, stopping at the first that was not (a batch cut short by a
//! crash). The store replays what it finds into the tables when it opens
//! ([`crate::store::Store::open_with_keys`]), so a log left behind by a relay that stopped
//! loses nothing.
//!
//! # Files
//!
//! A directory of segments, each a file of [`SEGMENT_BYTES`] written with zeros before its
//! first record (so a sync writes data, not the file system's allocation metadata), named
//! by the sequence number (LSN) of its first record, 20 digits, `.seg`. Records follow each
//! other from offset 0:
//!
//! ```text
//! u32 LE  payload length (0: no record here; the rest of the segment is unused)
//! u32 LE  CRC-32 of the payload
//! payload:
//!   u8      version (1)
//!   u64 LE  lsn (one more than the record before it, across segments)
//!   i64 LE  conversation id, u64 LE seq, i64 LE workspace id
//!   u8      author kind (0 customer, 1 agent, 2 bot, 3 system)
//!   u8      author id present (0/1), then i64 LE author id when present
//!   u8      client message id present (0/1), then u32 LE length + UTF-8 when present
//!   u32 LE  body length + UTF-8 (as stored: sealed when encryption at rest is on)
//!   u8      format (0 text, 1 markdown)
//!   i64 LE  created at (Unix ms)
//!   u8      internal (0/1)
//! ```
//!
//! A segment is used again once everything in it is folded: it is renamed for the LSN it
//! will hold next, and the records left in it from before are told apart by their LSN.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kefu_proto::frame::{AuthorKind, BodyFormat};
use kefu_proto::{ConversationId, Seq, UnixMillis, WorkspaceId};

use crate::error::{Error, Result};

/// The size of a segment: 4 MiB, about 40,000 short messages (four seconds at 10,000
/// msg/s, while a segment is folded and free again within about one). Written with zeros
/// when made: a start makes two, the first and a spare, so that no segment is made in the
/// journal's commit path while the log keeps up.
pub const SEGMENT_BYTES: u64 = 4 << 20;

/// The largest payload a record may have: a quarter of a segment, far above the relay's
/// limit on a message's size (`kefu_proto::limits::MAX_BODY_BYTES`), so any message fits.
pub const MAX_PAYLOAD: usize = (SEGMENT_BYTES / 4) as usize;

/// Bytes before a record's payload: its length and its CRC.
const HEADER: usize = 8;

/// The only payload version so far.
const VERSION: u8 = 1;

/// A message as the log holds it: everything its row in `messages` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedMessage {
    /// Its place in the log, one more than the record before it.
    pub lsn: u64,
    /// The conversation.
    pub conversation: ConversationId,
    /// Its sequence number in the conversation.
    pub seq: Seq,
    /// The conversation's workspace.
    pub workspace: WorkspaceId,
    /// Customer, agent, bot or system.
    pub author: AuthorKind,
    /// Contact id or agent id of the author.
    pub author_id: Option<i64>,
    /// The author's id for the message, for de-duplication.
    pub client_msg_id: Option<String>,
    /// The text as stored: sealed when encryption at rest is on.
    pub body: String,
    /// How to read it.
    pub format: BodyFormat,
    /// When it was stored.
    pub created_at: UnixMillis,
    /// A private note between agents.
    pub internal: bool,
}

fn author_code(author: AuthorKind) -> u8 {
    match author {
        AuthorKind::Customer => 0,
        AuthorKind::Agent => 1,
        AuthorKind::Bot => 2,
        AuthorKind::System => 3,
    }
}

fn author_of(code: u8) -> Option<AuthorKind> {
    Some(match code {
        0 => AuthorKind::Customer,
        1 => AuthorKind::Agent,
        2 => AuthorKind::Bot,
        3 => AuthorKind::System,
        _ => return None,
    })
}

/// Appends `message` as one record (header and payload) to `out`.
pub fn encode(message: &LoggedMessage, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(VERSION);
    out.extend_from_slice(&message.lsn.to_le_bytes());
    out.extend_from_slice(&message.conversation.0.to_le_bytes());
    out.extend_from_slice(&message.seq.to_le_bytes());
    out.extend_from_slice(&message.workspace.0.to_le_bytes());
    out.push(author_code(message.author));
    match message.author_id {
        Some(id) => {
            out.push(1);
            out.extend_from_slice(&id.to_le_bytes());
        }
        None => out.push(0),
    }
    match &message.client_msg_id {
        Some(id) => {
            out.push(1);
            put_text(out, id);
        }
        None => out.push(0),
    }
    put_text(out, &message.body);
    out.push(match message.format {
        BodyFormat::Text => 0,
        BodyFormat::Markdown => 1,
    });
    out.extend_from_slice(&message.created_at.to_le_bytes());
    out.push(u8::from(message.internal));
    let payload = &out[start + HEADER..];
    let length = u32::try_from(payload.len()).expect("a message is far smaller than 4 GiB");
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let length = u32::try_from(text.len()).expect("a message is far smaller than 4 GiB");
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Reads a payload's fields in order; `None` as soon as one is missing or malformed.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| v as i64)
    }

    fn flag(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn text(&mut self) -> Option<String> {
        let length = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        String::from_utf8(self.take(length)?.to_vec()).ok()
    }
}

/// The message a payload holds, or `None` when it is not one this version wrote.
pub fn decode(payload: &[u8]) -> Option<LoggedMessage> {
    let mut fields = Fields { rest: payload };
    if fields.u8()? != VERSION {
        return None;
    }
    let message = LoggedMessage {
        lsn: fields.u64()?,
        conversation: ConversationId(fields.i64()?),
        seq: fields.u64()?,
        workspace: WorkspaceId(fields.i64()?),
        author: author_of(fields.u8()?)?,
        author_id: if fields.flag()? { Some(fields.i64()?) } else { None },
        client_msg_id: if fields.flag()? { Some(fields.text()?) } else { None },
        body: fields.text()?,
        format: match fields.u8()? {
            0 => BodyFormat::Text,
            1 => BodyFormat::Markdown,
            _ => return None,
        },
        created_at: fields.i64()?,
        internal: fields.flag()?,
    };
    fields.rest.is_empty().then_some(message)
}

/// The records at the start of one segment's bytes, from `first_lsn` on, up to the first
/// that is missing, torn, damaged or from the segment's earlier use.
pub fn records_in(bytes: &[u8], first_lsn: u64) -> Vec<LoggedMessage> {
    let mut records = Vec::new();
    let mut at = 0;
    let mut expected = first_lsn;
    while bytes.len() - at >= HEADER {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + HEADER].try_into().expect("4 bytes"));
        if length == 0 || length > MAX_PAYLOAD || bytes.len() - at - HEADER < length {
            break;
        }
        let payload = &bytes[at + HEADER..at + HEADER + length];
        if crc32fast::hash(payload) != crc {
            break;
        }
        match decode(payload) {
            Some(message) if message.lsn == expected => records.push(message),
            _ => break,
        }
        expected += 1;
        at += HEADER + length;
    }
    records
}

/// The segments in `dir` with the LSN each is named for, in order.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let path = entry?.path();
        let first = path
            .extension()
            .filter(|ext| *ext == "seg")
            .and_then(|_| path.file_stem())
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.parse::<u64>().ok());
        if let Some(first) = first {
            found.push((first, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Every record the log in `dir` holds, in LSN order: each segment's records from the
/// LSN it is named for on, up to the first that is torn, damaged or left from its earlier
/// use. A segment whose records were all folded may still be there under its old name
/// (a crash before it was used again): its records are read too, and replaying them
/// changes nothing (`INSERT OR IGNORE`), so no segment is skipped for the sake of another.
pub fn read_log(dir: &Path) -> Result<Vec<LoggedMessage>> {
    let mut records: Vec<LoggedMessage> = Vec::new();
    for (first, path) in segments(dir)? {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Used again (renamed) since it was listed: its records were folded.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        records.extend(records_in(&bytes, first));
    }
    records.sort_by_key(|m| m.lsn);
    records.dedup_by_key(|m| m.lsn);
    Ok(records)
}

/// True when `dir` holds a segment (a log is being written there, or was left behind).
pub fn has_segments(dir: &Path) -> Result<bool> {
    Ok(!segments(dir)?.is_empty())
}

/// Removes every segment in `dir`, spares included (after the store replayed them).
pub fn clear(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "seg") {
            std::fs::remove_file(path)?;
        }
    }
    sync_dir(dir)
}

/// A spare segment's name: not an LSN, so never read as part of the log.
fn spare_path(dir: &Path) -> PathBuf {
    dir.join("spare.seg")
}

/// Makes `path` a file of [`SEGMENT_BYTES`] zeros, synced.
fn zeroed_file(path: &Path) -> Result<File> {
    let mut file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path)?;
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..SEGMENT_BYTES / zeros.len() as u64 {
        file.write_all(&zeros)?;
    }
    file.sync_all()?;
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!("{first_lsn:020}.seg"))
}

/// How far the log is written and folded, shared by the journal (which writes it), the
/// thread that folds it and whoever must read what was acknowledged.
#[derive(Debug, Default)]
pub struct FoldProgress {
    /// Every record up to this LSN is synced (set before anything in it is acknowledged).
    logged: AtomicU64,
    /// Every record up to this LSN is in the tables.
    folded: AtomicU64,
}

impl FoldProgress {
    /// The last LSN synced.
    pub fn logged(&self) -> u64 {
        self.logged.load(Ordering::Acquire)
    }

    /// The last LSN folded.
    pub fn folded(&self) -> u64 {
        self.folded.load(Ordering::Acquire)
    }

    /// True when everything synced is folded: the tables hold every message acknowledged.
    pub fn settled(&self) -> bool {
        self.folded() >= self.logged()
    }

    /// Notes records up to `lsn` as synced.
    pub fn set_logged(&self, lsn: u64) {
        self.logged.fetch_max(lsn, Ordering::AcqRel);
    }

    /// Notes records up to `lsn` as folded (by whichever folder got there first).
    pub fn set_folded(&self, lsn: u64) {
        self.folded.fetch_max(lsn, Ordering::AcqRel);
    }
}

/// Inserts `records` into `messages` (inside the caller's transaction) and says how many
/// went in. A message already there (folded before, by the journal or the fold thread)
/// stays as it is, and one whose conversation the database lacks is left out (a log read
/// back over a database restored from an older backup: messages belong to a conversation).
pub fn fold_into<'a>(
    conn: &rusqlite::Connection,
    records: impl IntoIterator<Item = &'a LoggedMessage>,
) -> rusqlite::Result<usize> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO messages (conversation_id, seq, workspace_id, author_kind, author_id, client_msg_id,
                                         body, format, created_at, internal)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
         WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?1 AND workspace_id = ?3)",
    )?;
    let mut inserted = 0;
    for m in records {
        inserted += insert.execute(rusqlite::params![
            m.conversation.0,
            m.seq as i64,
            m.workspace.0,
            m.author.as_str(),
            m.author_id,
            m.client_msg_id.as_deref(),
            m.body,
            m.format.as_str(),
            m.created_at,
            m.internal,
        ])?;
    }
    Ok(inserted)
}

/// Inserts `records` into the database at `path` in one transaction (a replay at start, a
/// backup's copy) and says how many went in.
pub fn fold_file(path: &Path, records: &[LoggedMessage]) -> Result<usize> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let inserted = fold_into(&tx, records)?;
    tx.commit()?;
    Ok(inserted)
}

/// How often the fold thread folds what the log gathered. Each conversation's pages are
/// written once per fold, so a longer interval writes fewer bytes per message, but in
/// larger bursts that hold up the log's own syncs: a second measured best (5 s made the
/// tail longer; docs/BENCHMARKS.md, finding 25).
pub const FOLD_INTERVAL: Duration = Duration::from_secs(1);

/// Rows per fold transaction: the fold holds SQLite's write lock for one of them at a time,
/// so the journal's own transactions wait at most for one.
const FOLD_ROWS: usize = 2000;

/// Rows the fold thread inserts at a stretch (about half a millisecond of inserts), and
/// the pause after each, which leaves the core to the sessions and the journal if they
/// are ready. A low priority alone does not bound how long the fold keeps the core once it
/// has it: the scheduler shares the core by weight, so a session that has had more than
/// its share waits behind a fold it is owed to, until the next tick (4 ms at 250 Hz); a
/// `sched_yield` hands the core back to the fold then. Typing indicators waited 3–6 ms
/// behind folds (docs/BENCHMARKS.md, finding 32). A pause costs the fold some 60 µs of
/// wall time per step, under 10 ms a second at 10,000 msg/s.
const FOLD_STEP_ROWS: usize = 64;
/// The pause between the fold thread's steps (see [`FOLD_STEP_ROWS`]).
const FOLD_PAUSE: Duration = Duration::from_micros(50);

/// [`fold_into`] by [`FOLD_STEP_ROWS`], with a [`FOLD_PAUSE`] between steps.
fn fold_in_steps(conn: &rusqlite::Connection, records: &[Arc<LoggedMessage>]) -> rusqlite::Result<()> {
    for (i, few) in records.chunks(FOLD_STEP_ROWS).enumerate() {
        if i > 0 {
            std::thread::sleep(FOLD_PAUSE);
        }
        fold_into(conn, few.iter().map(|m| &**m))?;
    }
    Ok(())
}

/// The nice value of the fold thread. It works on what is already durable, so it yields
/// the core to the sessions and the journal; at the normal priority it took the core from
/// the sessions (typing indicators' p99 up; finding 25). Not 19: at that weight a core
/// nine-tenths busy left it too little (it needs about a tenth at 10,000 msg/s), and it
/// holds SQLite's write lock while it waits for the core, so the journal waited on it and
/// then folded the backlog itself in its commit path (finding 28).
pub(crate) const FOLD_NICE: i32 = 10;

/// Sets the calling thread's nice value to [`FOLD_NICE`]: for the threads that work on
/// what is already durable (the fold, the read of stored client ids at start). Where that
/// is refused, `thread` says in the log which one keeps the normal priority.
pub(crate) fn lower_to_fold_priority(thread: &str) {
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), FOLD_NICE) {
        tracing::warn!(error = %e, thread, "this thread keeps the normal priority");
    }
}

/// The messages synced to the log and not yet known to be folded, in LSN order: the
/// journal appends and forgets, the fold thread reads. Shared rather than sent, so that
/// a fold thread kept off the core holds no copies of its own (the journal then folds
/// and forgets them itself past a limit).
pub type Unfolded = Arc<Mutex<VecDeque<Arc<LoggedMessage>>>>;

/// Starts the fold thread (`kefu-fold`) over `conn`: every [`FOLD_INTERVAL`] it inserts
/// what `unfolded` holds past `progress`'s folded LSN into the tables, sorted by
/// conversation and `seq`, then notes it as folded. It stops, after one last fold, when
/// the returned sender is dropped (with the journal).
pub fn spawn_folder(conn: rusqlite::Connection, progress: Arc<FoldProgress>, unfolded: Unfolded) -> Result<Sender<()>> {
    let (stop, stopped) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("kefu-fold".into())
        .spawn(move || fold_loop(&conn, &stopped, &progress, &unfolded))?;
    Ok(stop)
}

fn fold_loop(conn: &rusqlite::Connection, stopped: &Receiver<()>, progress: &FoldProgress, unfolded: &Unfolded) {
    lower_to_fold_priority("the fold thread");
    loop {
        let open = matches!(stopped.recv_timeout(FOLD_INTERVAL), Err(RecvTimeoutError::Timeout));
        if let Err(e) = fold(conn, progress, unfolded) {
            tracing::error!(error = %e, "folding the message log failed; it is tried again in a second");
        }
        if !open {
            return;
        }
    }
}

/// Folds what `unfolded` holds past the folded LSN (what the journal has not folded
/// itself meanwhile).
fn fold(conn: &rusqlite::Connection, progress: &FoldProgress, unfolded: &Unfolded) -> Result<()> {
    let done = progress.folded();
    let mut gathered: Vec<Arc<LoggedMessage>> =
        unfolded.lock().expect("not poisoned").iter().filter(|m| m.lsn > done).cloned().collect();
    let Some(last) = gathered.last().map(|m| m.lsn) else { return Ok(()) };
    gathered.sort_unstable_by_key(|m| (m.conversation.0, m.seq));
    for rows in gathered.chunks(FOLD_ROWS) {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let written = fold_in_steps(conn, rows).and_then(|()| conn.prepare_cached("COMMIT")?.execute([]).map(|_| ()));
        if let Err(e) = written {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(e.into());
        }
    }
    // The journal appends in LSN order, so everything up to the last one gathered is in.
    progress.set_folded(last);
    Ok(())
}

/// A segment being written.
struct Segment {
    file: File,
    path: PathBuf,
    /// Bytes written so far.
    written: u64,
}

/// The file a process that cannot scrub the log itself (a command-line tool beside a
/// serving relay) creates in the log's directory to ask the relay to; the relay removes it
/// once done ([`request_scrub`]).
const SCRUB_REQUEST: &str = "scrub";

/// Asks the relay serving the log in `dir` to scrub it (fold everything, then overwrite
/// every segment with zeros), and waits until it has, at most `wait`. For erasure by a
/// command-line tool while the relay serves: the erased words may still be in the log.
pub async fn request_scrub(dir: &Path, wait: Duration) -> Result<()> {
    let request = dir.join(SCRUB_REQUEST);
    File::create(&request)?;
    let deadline = Instant::now() + wait;
    while request.exists() {
        if Instant::now() >= deadline {
            let _ = std::fs::remove_file(&request);
            return Err(Error::Internal(format!(
                "the relay serving this data dir did not scrub its message log ({}) within {} s",
                dir.display(),
                wait.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A segment written full, waiting for its records to be folded.
struct Full {
    path: PathBuf,
    /// The LSN of its last record.
    last_lsn: u64,
}

/// The log being written: the segment records are appended to, the full ones not yet
/// folded, and spare ones to use again.
pub struct MessageLog {
    dir: PathBuf,
    current: Segment,
    full: VecDeque<Full>,
    spares: Vec<PathBuf>,
    /// The LSN the next record gets.
    next_lsn: u64,
    /// The batch being written, encoded.
    buffer: Vec<u8>,
}

impl MessageLog {
    /// Starts a log in `dir` (created if missing) whose first record gets `next_lsn`. The
    /// directory must hold no segment: whatever a log held before is replayed and cleared
    /// first ([`read_log`], [`clear`]).
    pub fn create(dir: &Path, next_lsn: u64) -> Result<MessageLog> {
        std::fs::create_dir_all(dir)?;
        if !segments(dir)?.is_empty() {
            return Err(Error::Internal(format!("the message log in {} was not replayed", dir.display())));
        }
        let current = Self::new_segment(dir, next_lsn)?;
        let spare = spare_path(dir);
        zeroed_file(&spare)?;
        sync_dir(dir)?;
        Ok(MessageLog {
            dir: dir.to_path_buf(),
            current,
            full: VecDeque::new(),
            spares: vec![spare],
            next_lsn,
            buffer: Vec::new(),
        })
    }

    /// The LSN the next record gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// A segment for records from `first_lsn` on: a spare one renamed, or a new one
    /// written with zeros. Its name is synced before any record in it can be.
    fn new_segment(dir: &Path, first_lsn: u64) -> Result<Segment> {
        let path = segment_path(dir, first_lsn);
        let file = zeroed_file(&path)?;
        sync_dir(dir)?;
        Ok(Segment { file, path, written: 0 })
    }

    fn reuse_segment(&self, spare: PathBuf, first_lsn: u64) -> Result<Segment> {
        let path = segment_path(&self.dir, first_lsn);
        std::fs::rename(&spare, &path)?;
        sync_dir(&self.dir)?;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(Segment { file, path, written: 0 })
    }

    /// Writes what is buffered to the current segment and syncs it.
    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.current.file.write_all_at(&self.buffer, self.current.written)?;
        self.current.file.sync_data()?;
        self.current.written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Appends `messages` (their `lsn` is set here, in order) and syncs them: once this
    /// returns, a crash loses none of them.
    pub fn append(&mut self, messages: &mut [LoggedMessage]) -> Result<()> {
        for message in messages.iter_mut() {
            message.lsn = self.next_lsn;
            let before = self.buffer.len();
            encode(message, &mut self.buffer);
            let length = self.buffer.len() - before;
            if length - HEADER > MAX_PAYLOAD {
                self.buffer.truncate(before);
                return Err(Error::Internal(format!("a message of {length} bytes does not fit the message log")));
            }
            if self.current.written + self.buffer.len() as u64 > SEGMENT_BYTES {
                // This record starts the next segment; what came before it ends this one.
                let record = self.buffer.split_off(before);
                self.flush()?;
                let next = match self.spares.pop() {
                    Some(spare) => self.reuse_segment(spare, self.next_lsn)?,
                    None => {
                        tracing::warn!("no spare segment: the message log makes one while messages wait");
                        Self::new_segment(&self.dir, self.next_lsn)?
                    }
                };
                let done = std::mem::replace(&mut self.current, next);
                self.full.push_back(Full { path: done.path, last_lsn: self.next_lsn - 1 });
                self.buffer = record;
            }
            self.next_lsn += 1;
        }
        self.flush()
    }

    /// True when another process asked for a scrub ([`request_scrub`]).
    pub fn scrub_requested(&self) -> bool {
        self.dir.join(SCRUB_REQUEST).exists()
    }

    /// Overwrites every segment with zeros and starts the log again in a fresh segment:
    /// nothing the log held can be read back from its files (erasure). Only when every
    /// record is folded (the caller's to know).
    pub fn scrub(&mut self) -> Result<()> {
        self.flush()?;
        let zeros = vec![0u8; 1 << 20];
        let mut paths: Vec<PathBuf> = self.full.drain(..).map(|full| full.path).collect();
        paths.append(&mut self.spares);
        paths.push(self.current.path.clone());
        for path in paths {
            let file = OpenOptions::new().write(true).open(&path)?;
            for chunk in 0..SEGMENT_BYTES / zeros.len() as u64 {
                file.write_all_at(&zeros, chunk * zeros.len() as u64)?;
            }
            file.sync_data()?;
            self.spares.push(path);
        }
        let spare = self.spares.pop().expect("the current segment at least");
        self.current = self.reuse_segment(spare, self.next_lsn)?;
        // Answered: whoever asked from outside stops waiting.
        match std::fs::remove_file(self.dir.join(SCRUB_REQUEST)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        Ok(())
    }

    /// Notes that every record up to `lsn` is folded into the tables: full segments
    /// holding nothing after it become spares.
    pub fn folded(&mut self, lsn: u64) {
        while self.full.front().is_some_and(|full| full.last_lsn <= lsn) {
            let full = self.full.pop_front().expect("checked");
            self.spares.push(full.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(conversation: i64, seq: Seq, body: &str) -> LoggedMessage {
        LoggedMessage {
            lsn: 0,
            conversation: ConversationId(conversation),
            seq,
            workspace: WorkspaceId(1),
            author: AuthorKind::Customer,
            author_id: Some(7),
            client_msg_id: Some(format!("c-{conversation}-{seq}")),
            body: body.to_string(),
            format: BodyFormat::Text,
            created_at: 1_700_000_000_000 + seq as i64,
            internal: false,
        }
    }

    /// The fold thread's steps, with pauses between them, insert every record once:
    /// records across several steps and a partial last one.
    #[test]
    fn folding_in_steps_inserts_every_record_once() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE conversations (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL);
             INSERT INTO conversations VALUES (1, 1), (2, 1), (3, 1);
             CREATE TABLE messages (conversation_id INTEGER, seq INTEGER, workspace_id INTEGER,
                 author_kind TEXT, author_id INTEGER, client_msg_id TEXT, body TEXT, format TEXT,
                 created_at INTEGER, internal INTEGER, PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;",
        )
        .unwrap();
        let count = FOLD_STEP_ROWS * 3 + 5;
        let records: Vec<Arc<LoggedMessage>> =
            (0..count).map(|i| Arc::new(message(i as i64 % 3 + 1, i as Seq / 3 + 1, "b"))).collect();
        fold_in_steps(&conn, &records).unwrap();
        let stored: Vec<(i64, i64)> = conn
            .prepare("SELECT conversation_id, seq FROM messages ORDER BY seq, conversation_id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let expected: Vec<(i64, i64)> = records.iter().map(|m| (m.conversation.0, m.seq as i64)).collect();
        assert_eq!(stored, expected);
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let mut all = vec![
            message(1, 1, "你好，我的订单还没到"),
            LoggedMessage {
                author: AuthorKind::Agent,
                author_id: None,
                client_msg_id: None,
                format: BodyFormat::Markdown,
                internal: true,
                ..message(2, 9, "")
            },
        ];
        for (lsn, m) in all.iter_mut().enumerate() {
            m.lsn = lsn as u64 + 1;
        }
        let mut bytes = Vec::new();
        for m in &all {
            encode(m, &mut bytes);
        }
        assert_eq!(records_in(&bytes, 1), all);
    }

    #[test]
    fn reading_stops_at_a_torn_or_damaged_record() {
        let mut bytes = Vec::new();
        for (lsn, mut m) in [message(1, 1, "one"), message(1, 2, "two"), message(1, 3, "three")].into_iter().enumerate()
        {
            m.lsn = lsn as u64 + 1;
            encode(&m, &mut bytes);
        }
        let whole = records_in(&bytes, 1);
        assert_eq!(whole.len(), 3);
        // Cut short in the last record: the first two stand.
        assert_eq!(records_in(&bytes[..bytes.len() - 3], 1), whole[..2]);
        // A flipped byte in the second record's body: only the first stands.
        let mut damaged = bytes.clone();
        let second = bytes.windows(3).position(|w| w == b"two").expect("body present");
        damaged[second] ^= 0x20;
        assert_eq!(records_in(&damaged, 1), whole[..1]);
        // Records from the segment's earlier use (other LSNs) are not taken for new ones.
        assert!(records_in(&bytes, 5).is_empty());
    }

    #[test]
    fn a_payload_that_is_not_a_message_is_refused() {
        let mut m = message(1, 1, "x");
        m.lsn = 1;
        let mut bytes = Vec::new();
        encode(&m, &mut bytes);
        let payload = &bytes[HEADER..];
        assert!(decode(payload).is_some());
        for cut in 0..payload.len() {
            assert!(decode(&payload[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = payload.to_vec();
        longer.push(0);
        assert!(decode(&longer).is_none(), "trailing bytes");
        let mut version = payload.to_vec();
        version[0] = 2;
        assert!(decode(&version).is_none(), "unknown version");
    }

    /// How many records like `m` fit in a segment.
    fn per_segment(m: &LoggedMessage) -> u64 {
        let mut bytes = Vec::new();
        encode(m, &mut bytes);
        SEGMENT_BYTES / bytes.len() as u64
    }

    /// A message of 100 KiB, so that a few dozen fill a segment.
    fn large(seq: Seq) -> LoggedMessage {
        message(1, seq, &"b".repeat(100 << 10))
    }

    /// A new log in a temporary directory (kept while the first value lives) and its path.
    fn new_log() -> (tempfile::TempDir, PathBuf, MessageLog) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_dir = dir.path().join("log");
        let log = MessageLog::create(&log_dir, 1).expect("create");
        (dir, log_dir, log)
    }

    /// Appends `n` large messages; returns them as appended (with their LSNs).
    fn append_large(log: &mut MessageLog, n: u64) -> Vec<LoggedMessage> {
        let mut messages: Vec<_> = (0..n).map(|i| large(i + 1)).collect();
        log.append(&mut messages).expect("append");
        messages
    }

    #[test]
    fn the_log_holds_every_appended_message_across_segments_in_order() {
        let (_dir, log_dir, mut log) = new_log();
        // Bodies of 100 KiB: 40 to a segment, so 200 of them fill five.
        let body = "b".repeat(100 << 10);
        assert_eq!(per_segment(&message(1, 100, &body)), 40);
        let mut written = Vec::new();
        for batch in 0..20u64 {
            let mut messages: Vec<_> = (0..10).map(|i| message((batch % 3) as i64, batch * 10 + i, &body)).collect();
            log.append(&mut messages).expect("append");
            written.extend(messages);
        }
        assert_eq!(segments(&log_dir).expect("list").len(), 5);
        let read = read_log(&log_dir).expect("read");
        assert_eq!(read.len(), 200);
        assert_eq!(read, written);
        assert_eq!(log.next_lsn(), 201);
    }

    #[test]
    fn a_folded_segment_is_used_again_without_its_old_records_coming_back() {
        let (_dir, log_dir, mut log) = new_log();
        let per = per_segment(&large(1));
        append_large(&mut log, per);
        let second = append_large(&mut log, 1);
        assert_eq!(segments(&log_dir).expect("list").len(), 2);
        // Folded up to the second segment's first record: the first segment, all of it
        // folded, is used for the next one; the second is still being written.
        log.folded(per + 1);
        let mut rest = append_large(&mut log, per);
        assert_eq!(segments(&log_dir).expect("list").len(), 2, "the spare was renamed, not a new file made");
        let read = read_log(&log_dir).expect("read");
        let mut expected = second;
        expected.append(&mut rest);
        assert_eq!(read.first().map(|m| m.lsn), Some(per + 1));
        assert_eq!(read, expected);
    }

    #[test]
    fn a_segment_left_under_its_old_name_hides_nothing_after_it() {
        let (_dir, log_dir, mut log) = new_log();
        let per = per_segment(&large(1));
        // Segments A (LSN 1..) and B (per + 1..), then C starts; A and B are folded.
        append_large(&mut log, 2 * per + 1);
        log.folded(2 * per);
        // C fills and the next segment is B again, renamed. A is still there under its
        // old name, a segment whose LSNs stop long before C's first.
        let mut live = append_large(&mut log, per + 2);
        assert_eq!(
            segments(&log_dir).expect("list").iter().map(|(first, _)| *first).collect::<Vec<_>>(),
            [1, 2 * per + 1, 3 * per + 1]
        );
        let read = read_log(&log_dir).expect("read");
        let stale = read.iter().take_while(|m| m.lsn <= per).count() as u64;
        assert_eq!(stale, per, "A's folded records are read (replaying them changes nothing)");
        let tail: Vec<_> = read.into_iter().skip(stale as usize).collect();
        assert_eq!(tail.first().map(|m| m.lsn), Some(2 * per + 1));
        live.insert(0, tail[0].clone());
        assert_eq!(tail, live, "C's and the renamed B's records, all of them, in order");
    }

    #[test]
    fn a_scrubbed_log_holds_nothing_of_what_it_held_and_goes_on() {
        let (_dir, log_dir, mut log) = new_log();
        let per = per_segment(&large(1));
        let mut old: Vec<_> = (0..per + 3).map(|i| large(i + 1)).collect();
        old.push(message(1, per + 4, "张三丰 13812345678"));
        log.append(&mut old).expect("append");
        log.folded(per + 4);
        log.scrub().expect("scrub");
        assert!(read_log(&log_dir).expect("read").is_empty());
        for (_, path) in segments(&log_dir).expect("list") {
            let bytes = std::fs::read(&path).expect("read");
            assert!(bytes.iter().all(|b| *b == 0), "{} holds nothing", path.display());
        }
        let mut new = vec![message(2, 1, "after")];
        log.append(&mut new).expect("append");
        assert_eq!(new[0].lsn, per + 5);
        assert_eq!(read_log(&log_dir).expect("read"), new);
    }

    #[test]
    fn a_log_must_be_replayed_before_it_is_written_again() {
        let (_dir, log_dir, mut log) = new_log();
        log.append(&mut [message(1, 1, "kept")]).expect("append");
        drop(log);
        assert!(MessageLog::create(&log_dir, 2).is_err(), "a log with records is not started over");
        assert_eq!(read_log(&log_dir).expect("read").len(), 1);
        clear(&log_dir).expect("clear");
        assert!(read_log(&log_dir).expect("read").is_empty());
        MessageLog::create(&log_dir, 2).expect("a cleared log starts again");
    }
}
