//! Key rotation while the relay serves (`kefu-relay keys rotate`) and what each key still
//! seals (`kefu-relay keys status`).
//!
//! Rotation walks every sealed column ([`Field::ALL`]) in primary-key order, a page at a
//! time, and re-seals under the active key each value that is under another key or in
//! plaintext (rows from before encryption was on). A page is read outside any transaction;
//! its new values are written in one short transaction, each `UPDATE` only if the row still
//! holds the value that was read, so a row the relay changed meanwhile (an erasure) is left
//! as the relay wrote it. Between pages the writer lock is free for the relay's journal.
//! Then the attachment files, each replaced whole by a rename.
//!
//! Rows the relay writes while rotation runs are already under the active key once the
//! relay has loaded it (SIGHUP, or within seconds of the key file changing), so one pass
//! leaves nothing behind; rotation says how many values are still under other keys at its
//! end, which is never more than the relay wrote before it reloaded.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sqlx::Row;

use crate::attachments;
use crate::crypto::{Field, Keyring, SEALED_PREFIX, file_key_id};
use crate::error::{Error, Result};
use crate::store::Store;

/// Values re-sealed per transaction.
pub const ROTATION_PAGE_ROWS: u32 = 256;

/// The pause between two pages, which leaves the writer lock to the relay.
const PAUSE_BETWEEN_PAGES: Duration = Duration::from_millis(5);

/// The statements of one sealed column. Key parts: `(k1, k2)`, the primary key in order
/// (`rowid` and 0 for tables with a rowid; `conversation_id, seq` for messages).
struct ColumnSql {
    field: Field,
    /// `?1, ?2`: the position after which to read; `?3, ?4`: the active key's prefix and
    /// its length; `?5`: how many rows.
    page: &'static str,
    /// `?1`: the new value; `?2, ?3`: the key; `?4`: the value it must still hold.
    update: &'static str,
    /// `key_id` (NULL for plaintext) and `n`.
    count: &'static str,
}

/// The key id of a value, in SQL: NULL for plaintext.
macro_rules! key_id_sql {
    ($column:literal) => {
        concat!(
            "CASE WHEN substr(",
            $column,
            ", 1, 5) = 'enc1:' THEN substr(",
            $column,
            ", 6, instr(substr(",
            $column,
            ", 6), ':') - 1) END"
        )
    };
}

/// The statements of a column in a table with a rowid.
macro_rules! rowid_column {
    ($field:expr, $table:literal, $column:literal) => {
        ColumnSql {
            field: $field,
            page: concat!(
                "SELECT rowid AS k1, 0 AS k2, ",
                $column,
                " AS value FROM ",
                $table,
                " WHERE rowid > ?1 AND ?2 = 0 AND ",
                $column,
                " IS NOT NULL AND substr(",
                $column,
                ", 1, ?4) IS NOT ?3 ORDER BY rowid LIMIT ?5"
            ),
            update: concat!(
                "UPDATE ",
                $table,
                " SET ",
                $column,
                " = ?1 WHERE rowid = ?2 AND ?3 = 0 AND ",
                $column,
                " = ?4"
            ),
            count: concat!(
                "SELECT ",
                key_id_sql!($column),
                " AS key_id, count(*) AS n FROM ",
                $table,
                " WHERE ",
                $column,
                " IS NOT NULL GROUP BY key_id"
            ),
        }
    };
}

/// Every sealed column's statements, in [`Field::ALL`] order.
const COLUMNS: [ColumnSql; 6] = [
    ColumnSql {
        field: Field::MessageBody,
        page: "SELECT conversation_id AS k1, seq AS k2, body AS value FROM messages
               WHERE (conversation_id, seq) > (?1, ?2) AND substr(body, 1, ?4) IS NOT ?3
               ORDER BY conversation_id, seq LIMIT ?5",
        update: "UPDATE messages SET body = ?1 WHERE conversation_id = ?2 AND seq = ?3 AND body = ?4",
        count: concat!("SELECT ", key_id_sql!("body"), " AS key_id, count(*) AS n FROM messages GROUP BY key_id"),
    },
    rowid_column!(Field::ContactName, "contacts", "name"),
    rowid_column!(Field::TicketSubject, "tickets", "subject"),
    rowid_column!(Field::TicketDescription, "tickets", "description"),
    rowid_column!(Field::TicketNote, "ticket_notes", "body"),
    rowid_column!(Field::RatingComment, "ratings", "comment"),
];

/// How many values (or files) each key seals; `None`: plaintext.
pub type ByKey = BTreeMap<Option<String>, u64>;

/// What each key still seals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyStatus {
    /// Per sealed column.
    pub columns: Vec<(Field, ByKey)>,
    /// Attachment files.
    pub files: ByKey,
}

impl KeyStatus {
    /// Values and files under anything but `active` (plaintext included).
    pub fn not_under(&self, active: &str) -> u64 {
        self.columns
            .iter()
            .map(|(_, by_key)| by_key)
            .chain(std::iter::once(&self.files))
            .flat_map(|by_key| by_key.iter())
            .filter(|(key, _)| key.as_deref() != Some(active))
            .map(|(_, n)| n)
            .sum()
    }

    /// Totals per key over every column and the files.
    pub fn totals(&self) -> ByKey {
        let mut totals = ByKey::new();
        for by_key in self.columns.iter().map(|(_, by_key)| by_key).chain(std::iter::once(&self.files)) {
            for (key, n) in by_key {
                *totals.entry(key.clone()).or_default() += n;
            }
        }
        totals
    }
}

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotated {
    /// The key everything was sealed under.
    pub active: String,
    /// Values re-sealed, per column.
    pub values: Vec<(Field, u64)>,
    /// Files re-sealed.
    pub files: u64,
    /// Values or files that did not open (a key missing from the keyring, damage), left as
    /// they were.
    pub failed: u64,
    /// The first of those failures.
    pub first_failure: Option<String>,
    /// Values and files under other keys (or in plaintext) when rotation ended: written by
    /// a relay that had not yet loaded the active key.
    pub left: u64,
}

/// A row's primary key as read in a page.
type PageRow = (i64, i64, String);

impl Store {
    /// How many values each key seals, per column, and how many files.
    pub async fn key_status(&self, data_dir: &Path) -> Result<KeyStatus> {
        let mut status = KeyStatus::default();
        for column in &COLUMNS {
            let mut by_key = ByKey::new();
            for r in sqlx::query(column.count).fetch_all(&self.reader).await? {
                by_key.insert(r.get("key_id"), r.get::<i64, _>("n").max(0) as u64);
            }
            status.columns.push((column.field, by_key));
        }
        let mut after = String::new();
        loop {
            let ids = self.attachment_page(&after).await?;
            for id in ids.iter().filter(|id| attachments::is_id(id)) {
                let key = match read_file_head(data_dir, id).await? {
                    Some(head) => file_key_id(&head).map(str::to_string),
                    None => continue,
                };
                *status.files.entry(key).or_default() += 1;
            }
            match ids.last() {
                Some(last) => after = last.clone(),
                None => break,
            }
        }
        Ok(status)
    }

    /// Re-seals under the active key every value and file that is under another key or in
    /// plaintext (see the module).
    pub async fn rotate_keys(&self, data_dir: &Path) -> Result<Rotated> {
        let keyring = self.keys.current();
        let Some(active) = keyring.active_id().map(str::to_string) else {
            return Err(Error::Config("encryption is off: add a key to the key file (or KEFU_KEYS) first".into()));
        };
        let prefix = format!("{SEALED_PREFIX}{active}:");
        let mut rotated = Rotated { active: active.clone(), ..Rotated::default() };
        for column in &COLUMNS {
            let count = self.rotate_column(column, &keyring, &prefix, &mut rotated).await?;
            tracing::info!(column = column.field.column(), resealed = count, "column rotated");
            rotated.values.push((column.field, count));
        }
        rotated.files = self.rotate_files(data_dir, &keyring, &active, &mut rotated).await?;
        rotated.left = self.key_status(data_dir).await?.not_under(&active);
        Ok(rotated)
    }

    async fn rotate_column(
        &self,
        column: &ColumnSql,
        keyring: &Keyring,
        prefix: &str,
        rotated: &mut Rotated,
    ) -> Result<u64> {
        let mut resealed = 0;
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let page: Vec<PageRow> = sqlx::query(column.page)
                .bind(after.0)
                .bind(if column.field == Field::MessageBody { after.1 } else { 0 })
                .bind(prefix)
                .bind(prefix.len() as i64)
                .bind(ROTATION_PAGE_ROWS as i64)
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(|r| (r.get("k1"), r.get("k2"), r.get("value")))
                .collect();
            let Some(&(k1, k2, _)) = page.last() else { break };
            after = (k1, k2);
            let mut writes = Vec::with_capacity(page.len());
            for (k1, k2, stored) in page {
                match keyring.open(column.field, stored.clone()) {
                    Ok(plain) => writes.push((k1, k2, keyring.seal(column.field, &plain).into_owned(), stored)),
                    Err(e) => {
                        rotated.failed += 1;
                        rotated.first_failure.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            if !writes.is_empty() {
                let mut tx = crate::store::begin_write(&self.writer).await?;
                for (k1, k2, new, old) in &writes {
                    let done =
                        sqlx::query(column.update).bind(new).bind(k1).bind(k2).bind(old).execute(&mut *tx).await?;
                    resealed += done.rows_affected();
                }
                tx.commit().await?;
            }
            tokio::time::sleep(PAUSE_BETWEEN_PAGES).await;
        }
        Ok(resealed)
    }

    async fn rotate_files(
        &self,
        data_dir: &Path,
        keyring: &Keyring,
        active: &str,
        rotated: &mut Rotated,
    ) -> Result<u64> {
        let mut resealed = 0;
        let mut after = String::new();
        loop {
            let ids = self.attachment_page(&after).await?;
            let Some(last) = ids.last() else { break };
            after = last.clone();
            for id in ids.into_iter().filter(|id| attachments::is_id(id)) {
                match read_file_head(data_dir, &id).await? {
                    Some(head) if file_key_id(&head) != Some(active) => {}
                    _ => continue,
                }
                let plain = match attachments::read(data_dir, &id, keyring).await {
                    Ok(plain) => plain,
                    Err(e) => {
                        rotated.failed += 1;
                        rotated.first_failure.get_or_insert_with(|| e.to_string());
                        continue;
                    }
                };
                let sha256 = attachments::replace(data_dir, &id, &keyring.seal_file(&id, &plain)).await?;
                let kept = sqlx::query("UPDATE attachments SET sha256 = ? WHERE id = ?")
                    .bind(sha256)
                    .bind(&id)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                if kept == 0 {
                    // Erased while it was being re-sealed: the erasure removed the old file,
                    // so the new one goes too.
                    let _ = tokio::fs::remove_file(attachments::path_of(data_dir, &id)).await;
                    continue;
                }
                resealed += 1;
            }
            tokio::time::sleep(PAUSE_BETWEEN_PAGES).await;
        }
        Ok(resealed)
    }

    /// Attachment ids after `after`, in order, a page at a time (callers make paths only
    /// of those with the relay's own id form).
    async fn attachment_page(&self, after: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM attachments WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after)
            .bind(ROTATION_PAGE_ROWS as i64)
            .fetch_all(&self.reader)
            .await?)
    }
}

/// The first bytes of an attachment file, enough for its header; `None` when it is gone.
async fn read_file_head(data_dir: &Path, id: &str) -> Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let file = match tokio::fs::File::open(attachments::path_of(data_dir, id)).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut head = Vec::with_capacity(64);
    file.take(crate::crypto::FILE_MAGIC.len() as u64 + 1 + crate::crypto::MAX_KEY_ID_BYTES as u64)
        .read_to_end(&mut head)
        .await?;
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use kefu_proto::{ContactId, ConversationId, WorkspaceId};

    use super::*;
    use crate::crypto::{Keys, generate_key_line};
    use crate::store::MessageRange;
    use crate::tickets::{Actor, TicketDraft};

    /// One of everything that is sealed, written through the store with its keys.
    async fn write_one_of_each(store: &Store, data_dir: &Path, n: i64) -> (WorkspaceId, ContactId, i64, String) {
        let workspace = crate::admin::show_workspace(store, "default").await.unwrap().id;
        let name = format!("王小明{n}");
        let contact =
            store.contact_for_identity(workspace, "shop", &format!("customer-{n}"), Some(&name)).await.unwrap().id;
        let conversation: i64 = sqlx::query_scalar(
            "INSERT INTO conversations (workspace_id, contact_id, channel_kind, state, created_at, updated_at)
             VALUES (?, ?, 'web', 'closed', 1, 1) RETURNING id",
        )
        .bind(workspace.0)
        .bind(contact.0)
        .fetch_one(&store.writer)
        .await
        .unwrap();
        let keyring = store.keys.current();
        for seq in 1..=2 {
            sqlx::query(
                "INSERT INTO messages (conversation_id, seq, workspace_id, author_kind, author_id, body, created_at)
                 VALUES (?, ?, ?, 'customer', ?, ?, 1)",
            )
            .bind(conversation)
            .bind(seq)
            .bind(workspace.0)
            .bind(contact.0)
            .bind(keyring.seal(Field::MessageBody, &format!("message {seq} of {n}")))
            .execute(&store.writer)
            .await
            .unwrap();
        }
        let draft = TicketDraft {
            subject: format!("subject {n}"),
            description: format!("call me on 1381234567{n}"),
            priority: Default::default(),
            group: None,
            contact: Some(contact),
            conversation: Some(ConversationId(conversation)),
            assignee: None,
        };
        let ticket = store.create_ticket(workspace, draft, Actor::Customer(contact)).await.unwrap().id;
        store.add_ticket_note(workspace, ticket, &format!("note {n}"), Actor::System).await.unwrap();
        store.rate(workspace, contact, ConversationId(conversation), 5, Some(&format!("great {n}"))).await.unwrap();
        let file = crate::attachments::new_id();
        crate::attachments::store(data_dir, &file, format!("file {n}").as_bytes(), &keyring).await.unwrap();
        sqlx::query(
            "INSERT INTO attachments (id, workspace_id, conversation_id, uploader_kind, uploader_id, name, content_type, size, sha256, created_at)
             VALUES (?, ?, ?, 'customer', ?, 'f.txt', 'text/plain', 6, x'00', 1)",
        )
        .bind(&file)
        .bind(workspace.0)
        .bind(conversation)
        .bind(contact.0)
        .execute(&store.writer)
        .await
        .unwrap();
        (workspace, contact, ticket, file)
    }

    /// Everything of one `write_one_of_each`, read back through the store.
    async fn read_back(store: &Store, data_dir: &Path, n: i64, written: &(WorkspaceId, ContactId, i64, String)) {
        let (workspace, contact, ticket, file) = written;
        let details = store.contact_details(*workspace, *contact).await.unwrap().unwrap();
        assert_eq!(details.name.as_deref(), Some(format!("王小明{n}").as_str()));
        let conversation = details.conversations[0].id;
        let messages = store.messages(conversation, MessageRange::After(0), 10, true).await.unwrap();
        let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, [format!("message 1 of {n}"), format!("message 2 of {n}")]);
        assert_eq!(messages[0].author.name.as_deref(), Some(format!("王小明{n}").as_str()));
        let ticket = store.ticket_details(*workspace, *ticket).await.unwrap().unwrap();
        assert_eq!(ticket.ticket.subject, format!("subject {n}"));
        assert_eq!(ticket.ticket.description, format!("call me on 1381234567{n}"));
        assert_eq!(ticket.notes[0].body, format!("note {n}"));
        assert_eq!(store.rating(conversation).await.unwrap(), Some((5, Some(format!("great {n}")))));
        let bytes = crate::attachments::read(data_dir, file, &store.keys.current()).await.unwrap();
        assert_eq!(bytes, format!("file {n}").as_bytes());
    }

    fn under(status: &KeyStatus, key: Option<&str>) -> u64 {
        status.totals().get(&key.map(str::to_string)).copied().unwrap_or(0)
    }

    /// Plaintext from before encryption and values under an old key all end under the new
    /// key, and read back the same, column by column and file by file.
    #[tokio::test]
    async fn rotation_reseals_plaintext_and_old_keys_under_the_active_key() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path();
        let old = generate_key_line("old").unwrap();
        let new = generate_key_line("new").unwrap();
        let plain = Store::open(data_dir).await.unwrap();
        let first = write_one_of_each(&plain, data_dir, 1).await;
        plain.close().await;
        let sealed_old = Store::open_with_keys(data_dir, Keys::fixed(Keyring::parse(&old).unwrap())).await.unwrap();
        let second = write_one_of_each(&sealed_old, data_dir, 2).await;
        let status = sealed_old.key_status(data_dir).await.unwrap();
        // Per pass: a name, two messages, a subject, a description, a note, a comment, a file.
        assert_eq!((under(&status, None), under(&status, Some("old"))), (8, 8), "{status:?}");
        sealed_old.close().await;

        let both = Keyring::parse(&format!("{old}\n{new}")).unwrap();
        let store = Store::open_with_keys(data_dir, Keys::fixed(both)).await.unwrap();
        let rotated = store.rotate_keys(data_dir).await.unwrap();
        assert_eq!((rotated.failed, rotated.left, rotated.files), (0, 0, 2), "{rotated:?}");
        assert_eq!(rotated.values.iter().map(|(_, n)| n).sum::<u64>(), 14);
        let status = store.key_status(data_dir).await.unwrap();
        assert_eq!(status.totals().into_iter().collect::<Vec<_>>(), [(Some("new".to_string()), 16)]);
        read_back(&store, data_dir, 1, &first).await;
        read_back(&store, data_dir, 2, &second).await;
        // A second pass has nothing left to do.
        let again = store.rotate_keys(data_dir).await.unwrap();
        assert_eq!((again.values.iter().map(|(_, n)| n).sum::<u64>(), again.files), (0, 0));
        store.close().await;

        // The old key can go: the new one alone opens everything.
        let store = Store::open_with_keys(data_dir, Keys::fixed(Keyring::parse(&new).unwrap())).await.unwrap();
        read_back(&store, data_dir, 1, &first).await;
        read_back(&store, data_dir, 2, &second).await;
        store.close().await;
    }

    /// A value under a key the keyring lacks is counted and left alone; the rest rotate.
    #[tokio::test]
    async fn values_under_a_missing_key_are_reported_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path();
        let lost =
            Store::open_with_keys(data_dir, Keys::fixed(Keyring::parse(&generate_key_line("lost").unwrap()).unwrap()))
                .await
                .unwrap();
        write_one_of_each(&lost, data_dir, 1).await;
        lost.close().await;
        let store =
            Store::open_with_keys(data_dir, Keys::fixed(Keyring::parse(&generate_key_line("new").unwrap()).unwrap()))
                .await
                .unwrap();
        let rotated = store.rotate_keys(data_dir).await.unwrap();
        assert_eq!((rotated.failed, rotated.left), (8, 8), "{rotated:?}");
        assert!(rotated.first_failure.unwrap().contains("'lost'"));
        store.close().await;
    }
}
