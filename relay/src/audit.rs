//! The event log as an audit trail that shows tampering: every entry carries
//! `hash = SHA-256(previous entry's hash ‖ this entry)`, so changing, inserting or removing
//! an entry anywhere but at the very end breaks every hash after it. The database refuses
//! UPDATE and DELETE on `events` (triggers); the chain catches what someone with the file
//! does anyway. `kefu-relay audit verify` walks it and prints the head (last id and hash),
//! which an operator keeps elsewhere to catch truncation too.
//!
//! Every insert goes through [`Chain`]: it reads the last entry once per transaction and
//! numbers entries itself, so the id is part of what is hashed. Both of the relay's writer
//! connections (the journal's and the pool's) append inside a transaction that holds
//! SQLite's write lock from its start (`BEGIN IMMEDIATE`), so nobody appends in between.

use kefu_proto::{ConversationId, UnixMillis, WorkspaceId};
use sha2::{Digest, Sha256};
use sqlx::{Row, SqliteConnection};

use crate::error::Result;

/// One entry, as hashed.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// When.
    pub at: UnixMillis,
    /// What.
    pub kind: &'a str,
    /// Who: `agent`, `customer`, `system`, `cli`, …
    pub actor_kind: &'a str,
    /// Which one.
    pub actor_id: Option<i64>,
    /// The conversation it concerns.
    pub conversation: Option<ConversationId>,
    /// Details, as stored (JSON text).
    pub data: &'a str,
    /// Where the operation came from: the client's address, for HTTP requests.
    pub origin: Option<&'a str>,
}

tokio::task_local! {
    /// The client address of the HTTP request being served (set by the router's
    /// `client_address` layer), so every entry an HTTP operation writes says where it
    /// came from without each call passing it on.
    pub static CLIENT: std::net::IpAddr;
}

/// The address of the HTTP client this task serves, if it serves one.
pub fn client_origin() -> Option<String> {
    CLIENT.try_with(|ip| ip.to_string()).ok()
}

/// The hash linking `entry` (numbered `id`) to the entry before it.
pub fn link(previous: &[u8], id: i64, entry: &Entry<'_>) -> [u8; 32] {
    let mut hash = Sha256::new();
    // Length-prefixed fields: no two different entries encode alike.
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(previous);
    field(&id.to_be_bytes());
    field(&entry.workspace.0.to_be_bytes());
    field(&entry.at.to_be_bytes());
    field(entry.kind.as_bytes());
    field(entry.actor_kind.as_bytes());
    field(&entry.actor_id.map_or(Vec::new(), |a| a.to_be_bytes().to_vec()));
    field(&entry.conversation.map_or(Vec::new(), |c| c.0.to_be_bytes().to_vec()));
    field(entry.data.as_bytes());
    // Added to the format later: hashed only when present, so earlier entries verify.
    if let Some(origin) = entry.origin {
        field(b"origin");
        field(origin.as_bytes());
    }
    hash.finalize().into()
}

/// The end of the chain within one write transaction.
#[derive(Debug, Default)]
pub struct Chain {
    /// The last entry's id and hash, once read.
    head: Option<(i64, Vec<u8>)>,
}

impl Chain {
    /// Appends `entry` on `conn` (inside the caller's transaction).
    pub async fn append(&mut self, conn: &mut SqliteConnection, entry: Entry<'_>) -> Result<()> {
        let (last_id, previous) = match self.head.take() {
            Some(head) => head,
            None => {
                let row = sqlx::query(LAST_ENTRY).fetch_optional(&mut *conn).await?;
                row.map_or((0, Vec::new()), |r| (r.get("id"), r.get::<Option<Vec<u8>>, _>("hash").unwrap_or_default()))
            }
        };
        let id = last_id + 1;
        let hash = link(&previous, id, &entry);
        sqlx::query(INSERT_ENTRY)
            .bind(id)
            .bind(entry.workspace.0)
            .bind(entry.at)
            .bind(entry.kind)
            .bind(entry.actor_kind)
            .bind(entry.actor_id)
            .bind(entry.conversation.map(|c| c.0))
            .bind(entry.data)
            .bind(hash.as_slice())
            .bind(entry.origin)
            .execute(&mut *conn)
            .await?;
        self.head = Some((id, hash.to_vec()));
        Ok(())
    }

    /// [`Chain::append`] on the journal's own (synchronous) connection.
    pub fn append_on(&mut self, conn: &rusqlite::Connection, entry: Entry<'_>) -> Result<()> {
        use rusqlite::OptionalExtension;
        let (last_id, previous) = match self.head.take() {
            Some(head) => head,
            None => conn
                .prepare_cached(LAST_ENTRY)?
                .query_row([], |r| Ok((r.get(0)?, r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default())))
                .optional()?
                .unwrap_or((0, Vec::new())),
        };
        let id = last_id + 1;
        let hash = link(&previous, id, &entry);
        conn.prepare_cached(INSERT_ENTRY)?.execute(rusqlite::params![
            id,
            entry.workspace.0,
            entry.at,
            entry.kind,
            entry.actor_kind,
            entry.actor_id,
            entry.conversation.map(|c| c.0),
            entry.data,
            hash.as_slice(),
            entry.origin,
        ])?;
        self.head = Some((id, hash.to_vec()));
        Ok(())
    }
}

/// The chain's head: the last entry's id and hash.
const LAST_ENTRY: &str = "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1";

const INSERT_ENTRY: &str =
    "INSERT INTO events (id, workspace_id, at, kind, actor_kind, actor_id, conversation_id, data, hash, origin)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// What a walk of the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Entries from before the chain existed (no hash), at the start of the log.
    pub unchained: u64,
    /// Entries whose hash is right.
    pub intact: u64,
    /// The first entry whose hash is wrong or missing, if any.
    pub broken_at: Option<i64>,
    /// The last entry's id and hash (hex): keep it elsewhere to detect truncation.
    pub head: Option<(i64, String)>,
}

impl crate::store::Store {
    /// Walks the event log's hash chain ([`verify`]).
    pub async fn verify_audit(&self) -> Result<Verification> {
        let mut conn = self.reader.acquire().await?;
        verify(&mut conn).await
    }
}

/// Walks the whole log in order and checks every link.
pub async fn verify(conn: &mut SqliteConnection) -> Result<Verification> {
    let rows = sqlx::query(
        "SELECT id, workspace_id, at, kind, actor_kind, actor_id, conversation_id, data, hash, origin FROM events ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut result = Verification { unchained: 0, intact: 0, broken_at: None, head: None };
    let mut previous: Option<Vec<u8>> = None;
    for r in &rows {
        let id: i64 = r.get("id");
        let stored: Option<Vec<u8>> = r.get("hash");
        let Some(stored) = stored else {
            if previous.is_none() && result.intact == 0 {
                result.unchained += 1;
                continue;
            }
            result.broken_at = Some(id);
            break;
        };
        let entry = Entry {
            workspace: WorkspaceId(r.get("workspace_id")),
            at: r.get("at"),
            kind: r.get("kind"),
            actor_kind: r.get("actor_kind"),
            actor_id: r.get("actor_id"),
            conversation: r.get::<Option<i64>, _>("conversation_id").map(ConversationId),
            data: r.get("data"),
            origin: r.get("origin"),
        };
        if link(previous.as_deref().unwrap_or_default(), id, &entry).as_slice() != stored.as_slice() {
            result.broken_at = Some(id);
            break;
        }
        result.intact += 1;
        result.head = Some((id, hex::encode(&stored)));
        previous = Some(stored);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(data: &str) -> Entry<'_> {
        Entry {
            workspace: WorkspaceId(1),
            at: 1_000,
            kind: "agent.login",
            actor_kind: "agent",
            actor_id: Some(7),
            conversation: None,
            data,
            origin: None,
        }
    }

    /// Appends go through the chain; editing, inserting or deleting a row in the middle
    /// is found at that row.
    #[tokio::test]
    async fn tampering_breaks_the_chain_where_it_happened() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).await.unwrap();
        let ws = WorkspaceId(1);
        for i in 0..5 {
            let data = serde_json::json!({ "n": i });
            store.append_event(ws, "test.event", "system", None, None, &data).await.unwrap();
        }
        let mut conn = store.writer.acquire().await.unwrap();
        let fine = verify(&mut conn).await.unwrap();
        assert_eq!((fine.broken_at, fine.unchained), (None, 0));
        assert!(fine.intact >= 5);
        let (head, _) = fine.head.clone().unwrap();
        // Someone with the file drops the guard and rewrites an entry.
        sqlx::query("DROP TRIGGER events_no_update").execute(&mut *conn).await.unwrap();
        let target = head - 2;
        sqlx::query("UPDATE events SET data = '{\"n\":99}' WHERE id = ?")
            .bind(target)
            .execute(&mut *conn)
            .await
            .unwrap();
        assert_eq!(verify(&mut conn).await.unwrap().broken_at, Some(target));
        // Put it back: intact again. Then delete one in the middle: the next one breaks.
        let original = sqlx::query_scalar::<_, String>("SELECT data FROM events WHERE id = ?")
            .bind(target - 1)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert!(original.contains("\"n\""));
        sqlx::query("UPDATE events SET data = '{\"n\":2}' WHERE id = ?")
            .bind(target)
            .execute(&mut *conn)
            .await
            .unwrap();
        assert_eq!(verify(&mut conn).await.unwrap().broken_at, None);
        sqlx::query("DROP TRIGGER events_no_delete").execute(&mut *conn).await.unwrap();
        sqlx::query("DELETE FROM events WHERE id = ?").bind(target).execute(&mut *conn).await.unwrap();
        assert_eq!(verify(&mut conn).await.unwrap().broken_at, Some(target + 1));
    }

    #[test]
    fn every_field_and_the_previous_hash_change_the_link() {
        let base = link(b"", 1, &entry("{}"));
        assert_ne!(base, link(b"x", 1, &entry("{}")), "previous hash");
        assert_ne!(base, link(b"", 2, &entry("{}")), "id");
        assert_ne!(base, link(b"", 1, &entry("{\"a\":1}")), "data");
        assert_ne!(base, link(b"", 1, &Entry { actor_id: None, ..entry("{}") }), "actor");
        assert_ne!(base, link(b"", 1, &Entry { conversation: Some(ConversationId(7)), actor_id: None, ..entry("{}") }));
        assert_ne!(base, link(b"", 1, &Entry { origin: Some("203.0.113.5"), ..entry("{}") }), "origin");
        assert_eq!(base, link(b"", 1, &entry("{}")), "deterministic");
    }
}
