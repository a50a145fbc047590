//! A contact's data on request, as privacy law requires (PIPL, GDPR): `export` gathers all
//! of it as JSON; `erase` removes or anonymises it everywhere and records that it did.
//!
//! Erasure, in one transaction with SQLite's `secure_delete` on (freed space is zeroed):
//! the contact's name goes; identities and customer tokens are deleted; in its
//! conversations the customer's messages become `[erased]` and everything staff wrote
//! (replies, notes, resolutions, ticket notes) is masked ([`crate::privacy::mask`]); its
//! tickets' subjects and descriptions become `[erased]`; rating comments go; attachment
//! rows and files are deleted. Then the write-ahead log is checkpointed and truncated, so
//! the old page images leave the disk too. The event log never holds customers' free text
//! (ids and facts only), so it keeps its append-only promise. Conversations must be closed
//! first: a running relay holds open ones in memory.

use std::path::Path;

use kefu_proto::{ContactId, ErrorCode, WorkspaceId};
use serde_json::{Value, json};
use sqlx::Row;

use crate::clock::now_ms;
use crate::crypto::Field;
use crate::error::{Error, Result};
use crate::privacy::mask;
use crate::store::Store;

/// What replaces a customer's words.
pub const ERASED: &str = "[erased]";

/// What an erasure changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    /// Conversations whose messages were rewritten.
    pub conversations: u64,
    /// Messages rewritten.
    pub messages: u64,
    /// Attachment files removed.
    pub attachments: u64,
    /// Tickets anonymised.
    pub tickets: u64,
}

impl Store {
    /// Everything stored about a contact of `workspace`, as JSON; recorded as
    /// `contact.exported`.
    pub async fn export_contact(&self, workspace: WorkspaceId, contact: ContactId, actor: &str) -> Result<Value> {
        self.settle().await?;
        let keyring = self.keys.current();
        let row = sqlx::query("SELECT id, name, vip, created_at FROM contacts WHERE id = ? AND workspace_id = ?")
            .bind(contact.0)
            .bind(workspace.0)
            .fetch_optional(&self.reader)
            .await?
            .ok_or_else(|| Error::refused(ErrorCode::NotFound, format!("no contact {contact}")))?;
        let person = json!({
            "id": row.get::<i64, _>("id"),
            "name": keyring.open_opt(Field::ContactName, row.get("name"))?,
            "vip": row.get::<i64, _>("vip") != 0,
            "created_at": row.get::<i64, _>("created_at"),
        });
        let identities: Vec<Value> = sqlx::query(
            "SELECT channel_kind, external_id, created_at FROM contact_identities WHERE contact_id = ? ORDER BY id",
        )
        .bind(contact.0)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            json!({
                "channel": r.get::<String, _>("channel_kind"),
                "external_id": r.get::<String, _>("external_id"),
                "created_at": r.get::<i64, _>("created_at"),
            })
        })
        .collect();
        let mut conversations = Vec::new();
        for c in sqlx::query(
            "SELECT id, state, channel_kind, created_at, closed_at, resolution FROM conversations
             WHERE contact_id = ? AND workspace_id = ? ORDER BY id",
        )
        .bind(contact.0)
        .bind(workspace.0)
        .fetch_all(&self.reader)
        .await?
        {
            let id: i64 = c.get("id");
            let messages: Vec<Value> = sqlx::query(
                "SELECT seq, author_kind, author_id, body, format, created_at, internal, attachments
                 FROM messages WHERE conversation_id = ? ORDER BY seq",
            )
            .bind(id)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|m| {
                Ok(json!({
                    "seq": m.get::<i64, _>("seq"),
                    "author": m.get::<String, _>("author_kind"),
                    "author_id": m.get::<Option<i64>, _>("author_id"),
                    "body": keyring.open(Field::MessageBody, m.get("body"))?,
                    "format": m.get::<String, _>("format"),
                    "at": m.get::<i64, _>("created_at"),
                    "internal": m.get::<i64, _>("internal") != 0,
                    "attachments": m.get::<Option<String>, _>("attachments")
                        .and_then(|a| serde_json::from_str::<Value>(&a).ok()),
                }))
            })
            .collect::<Result<_>>()?;
            conversations.push(json!({
                "id": id,
                "state": c.get::<String, _>("state"),
                "channel": c.get::<String, _>("channel_kind"),
                "created_at": c.get::<i64, _>("created_at"),
                "closed_at": c.get::<Option<i64>, _>("closed_at"),
                "resolution": c.get::<Option<String>, _>("resolution"),
                "messages": messages,
            }));
        }
        let mut tickets = Vec::new();
        for t in sqlx::query(
            "SELECT id, subject, description, status, created_at FROM tickets
             WHERE workspace_id = ? AND (contact_id = ? OR conversation_id IN
                   (SELECT id FROM conversations WHERE contact_id = ?)) ORDER BY id",
        )
        .bind(workspace.0)
        .bind(contact.0)
        .bind(contact.0)
        .fetch_all(&self.reader)
        .await?
        {
            let id: i64 = t.get("id");
            let notes: Vec<Value> =
                sqlx::query("SELECT author_kind, body, created_at FROM ticket_notes WHERE ticket_id = ? ORDER BY id")
                    .bind(id)
                    .fetch_all(&self.reader)
                    .await?
                    .iter()
                    .map(|n| {
                        Ok(json!({
                            "author": n.get::<String, _>("author_kind"),
                            "body": keyring.open(Field::TicketNote, n.get("body"))?,
                            "at": n.get::<i64, _>("created_at"),
                        }))
                    })
                    .collect::<Result<_>>()?;
            tickets.push(json!({
                "id": id,
                "subject": keyring.open(Field::TicketSubject, t.get("subject"))?,
                "description": keyring.open(Field::TicketDescription, t.get("description"))?,
                "status": t.get::<String, _>("status"),
                "created_at": t.get::<i64, _>("created_at"),
                "notes": notes,
            }));
        }
        let ratings: Vec<Value> = sqlx::query(
            "SELECT conversation_id, score, comment, created_at FROM ratings WHERE contact_id = ? ORDER BY created_at",
        )
        .bind(contact.0)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            Ok(json!({
                "conversation_id": r.get::<i64, _>("conversation_id"),
                "score": r.get::<i64, _>("score"),
                "comment": keyring.open_opt(Field::RatingComment, r.get("comment"))?,
                "at": r.get::<i64, _>("created_at"),
            }))
        })
        .collect::<Result<_>>()?;
        let attachments: Vec<Value> = sqlx::query(
            "SELECT a.id, a.conversation_id, a.uploader_kind, a.name, a.content_type, a.size FROM attachments a
             JOIN conversations c ON c.id = a.conversation_id WHERE c.contact_id = ? ORDER BY a.created_at",
        )
        .bind(contact.0)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|a| {
            json!({
                "id": a.get::<String, _>("id"),
                "conversation_id": a.get::<i64, _>("conversation_id"),
                "uploaded_by": a.get::<String, _>("uploader_kind"),
                "name": a.get::<String, _>("name"),
                "content_type": a.get::<String, _>("content_type"),
                "size": a.get::<i64, _>("size"),
            })
        })
        .collect();
        let data = json!({ "contact_id": contact });
        self.append_event(workspace, "contact.exported", actor, None, None, &data).await?;
        Ok(json!({
            "exported_at": now_ms(),
            "contact": person,
            "identities": identities,
            "conversations": conversations,
            "tickets": tickets,
            "ratings": ratings,
            "attachments": attachments,
        }))
    }

    /// Erases a contact of `workspace` (see the module); `data_dir` holds the attachment
    /// files. Refused while one of its conversations is not closed.
    pub async fn erase_contact(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        data_dir: &Path,
        actor: &str,
    ) -> Result<Erased> {
        self.settle().await?;
        let keyring = self.keys.current();
        let mut conn = self.writer.acquire().await?;
        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *conn).await?;
        // IMMEDIATE: the journal writes on a connection of its own (see `store::begin_write`).
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM contacts WHERE id = ? AND workspace_id = ?")
            .bind(contact.0)
            .bind(workspace.0)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(Error::refused(ErrorCode::NotFound, format!("no contact {contact}")));
        }
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM conversations WHERE contact_id = ? AND state != 'closed'")
                .bind(contact.0)
                .fetch_one(&mut *tx)
                .await?;
        if open > 0 {
            return Err(Error::refused(
                ErrorCode::Conflict,
                format!("contact {contact} has {open} conversation(s) not closed; close them first"),
            ));
        }
        sqlx::query("UPDATE contacts SET name = NULL, erased_at = ? WHERE id = ?")
            .bind(now_ms())
            .bind(contact.0)
            .execute(&mut *tx)
            .await?;
        for sql in
            ["DELETE FROM contact_identities WHERE contact_id = ?", "DELETE FROM customer_tokens WHERE contact_id = ?"]
        {
            sqlx::query(sql).bind(contact.0).execute(&mut *tx).await?;
        }
        let conversations: Vec<i64> = sqlx::query_scalar("SELECT id FROM conversations WHERE contact_id = ?")
            .bind(contact.0)
            .fetch_all(&mut *tx)
            .await?;
        let mut erased = Erased { conversations: conversations.len() as u64, messages: 0, attachments: 0, tickets: 0 };
        let mut files = Vec::new();
        for conversation in &conversations {
            let rows = sqlx::query("SELECT seq, author_kind, body FROM messages WHERE conversation_id = ?")
                .bind(conversation)
                .fetch_all(&mut *tx)
                .await?;
            for m in rows {
                // Staff's words are masked as text, then sealed again.
                let new_body = if m.get::<&str, _>("author_kind") == "customer" {
                    keyring.seal(Field::MessageBody, ERASED).into_owned()
                } else {
                    let body = keyring.open(Field::MessageBody, m.get("body"))?;
                    keyring.seal(Field::MessageBody, &mask(&body)).into_owned()
                };
                sqlx::query("UPDATE messages SET body = ?, attachments = NULL WHERE conversation_id = ? AND seq = ?")
                    .bind(new_body)
                    .bind(conversation)
                    .bind(m.get::<i64, _>("seq"))
                    .execute(&mut *tx)
                    .await?;
                erased.messages += 1;
            }
            let resolution: Option<String> = sqlx::query_scalar("SELECT resolution FROM conversations WHERE id = ?")
                .bind(conversation)
                .fetch_one(&mut *tx)
                .await?;
            if let Some(resolution) = resolution {
                sqlx::query("UPDATE conversations SET resolution = ? WHERE id = ?")
                    .bind(mask(&resolution).as_ref())
                    .bind(conversation)
                    .execute(&mut *tx)
                    .await?;
            }
            let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM attachments WHERE conversation_id = ?")
                .bind(conversation)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM attachments WHERE conversation_id = ?")
                .bind(conversation)
                .execute(&mut *tx)
                .await?;
            files.extend(ids);
        }
        let tickets: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM tickets WHERE workspace_id = ? AND (contact_id = ? OR conversation_id IN
                   (SELECT id FROM conversations WHERE contact_id = ?))",
        )
        .bind(workspace.0)
        .bind(contact.0)
        .bind(contact.0)
        .fetch_all(&mut *tx)
        .await?;
        for ticket in &tickets {
            sqlx::query("UPDATE tickets SET subject = ?, description = ? WHERE id = ?")
                .bind(keyring.seal(Field::TicketSubject, ERASED))
                .bind(keyring.seal(Field::TicketDescription, ERASED))
                .bind(ticket)
                .execute(&mut *tx)
                .await?;
            let notes = sqlx::query("SELECT id, body FROM ticket_notes WHERE ticket_id = ?")
                .bind(ticket)
                .fetch_all(&mut *tx)
                .await?;
            for note in notes {
                let body = keyring.open(Field::TicketNote, note.get("body"))?;
                sqlx::query("UPDATE ticket_notes SET body = ? WHERE id = ?")
                    .bind(keyring.seal(Field::TicketNote, &mask(&body)).into_owned())
                    .bind(note.get::<i64, _>("id"))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        erased.tickets = tickets.len() as u64;
        sqlx::query("UPDATE ratings SET comment = NULL WHERE contact_id = ?").bind(contact.0).execute(&mut *tx).await?;
        let data = json!({
            "contact_id": contact,
            "conversations": erased.conversations,
            "messages": erased.messages,
            "tickets": erased.tickets,
            "attachments": files.len(),
        });
        crate::store::insert_event(&mut tx, workspace, "contact.erased", actor, None, None, &data).await?;
        tx.commit().await?;
        for id in files.iter().filter(|id| crate::attachments::is_id(id)) {
            match std::fs::remove_file(crate::attachments::path_of(data_dir, id)) {
                Ok(()) => erased.attachments += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The erased words may also still be in the message log (folded, not yet
        // overwritten).
        self.scrub_message_log().await?;
        // The old page images still sit in the write-ahead log until it is checkpointed
        // and truncated; another process (the serving relay) may hold it for a moment.
        for _ in 0..50 {
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut *conn).await?;
            if row.get::<i64, _>(0) == 0 {
                sqlx::query("PRAGMA secure_delete = OFF").execute(&mut *conn).await?;
                return Ok(erased);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        sqlx::query("PRAGMA secure_delete = OFF").execute(&mut *conn).await?;
        Err(Error::Internal("erased, but the write-ahead log stayed busy: run the erasure again to truncate it".into()))
    }
}
