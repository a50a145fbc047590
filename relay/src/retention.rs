//! Retention: conversations closed longer ago than `[retention] conversations_days` are
//! deleted with everything that hangs off them — messages, attachment rows and files, read
//! receipts, ratings, channel deliveries — in short transactions of [`BATCH`]
//! conversations, so the relay's own writes are never held up for long. Tickets stay
//! (they are their own record) without the link. The event log keeps its entries (ids and
//! facts, no customer text); the purge itself is recorded. Run by the relay every hour.

use std::path::Path;

use kefu_proto::{UnixMillis, WorkspaceId};
use serde_json::json;

use crate::error::Result;
use crate::store::Store;

/// Conversations deleted per transaction.
pub const BATCH: i64 = 200;

/// What one purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Conversations.
    pub conversations: u64,
    /// Their messages.
    pub messages: u64,
    /// Attachment files.
    pub files: u64,
}

impl Store {
    /// Deletes every conversation closed before `cutoff`, batch by batch.
    pub async fn purge_closed_before(&self, cutoff: UnixMillis, data_dir: &Path) -> Result<Purged> {
        let mut purged = Purged::default();
        loop {
            let mut tx = crate::store::begin_write(&self.writer).await?;
            let batch: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT id, workspace_id FROM conversations WHERE state = 'closed' AND closed_at < ? ORDER BY id LIMIT ?",
            )
            .bind(cutoff)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
            if batch.is_empty() {
                tx.commit().await?;
                return Ok(purged);
            }
            let mut files = Vec::new();
            let mut per_workspace: Vec<(i64, u64, u64)> = Vec::new();
            for (id, workspace) in &batch {
                let attachments: Vec<String> =
                    sqlx::query_scalar("SELECT id FROM attachments WHERE conversation_id = ?")
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?;
                files.extend(attachments);
                let messages = sqlx::query("DELETE FROM messages WHERE conversation_id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                for statement in [
                    "DELETE FROM attachments WHERE conversation_id = ?",
                    "DELETE FROM read_receipts WHERE conversation_id = ?",
                    "DELETE FROM ratings WHERE conversation_id = ?",
                    "DELETE FROM channel_outbox WHERE conversation_id = ?",
                    "UPDATE tickets SET conversation_id = NULL WHERE conversation_id = ?",
                    "DELETE FROM conversations WHERE id = ?",
                ] {
                    sqlx::query(statement).bind(id).execute(&mut *tx).await?;
                }
                purged.conversations += 1;
                purged.messages += messages;
                match per_workspace.iter_mut().find(|(w, _, _)| w == workspace) {
                    Some(entry) => {
                        entry.1 += 1;
                        entry.2 += messages;
                    }
                    None => per_workspace.push((*workspace, 1, messages)),
                }
            }
            for (workspace, conversations, messages) in per_workspace {
                let data = json!({ "conversations": conversations, "messages": messages, "closed_before": cutoff });
                crate::store::insert_event(
                    &mut tx,
                    WorkspaceId(workspace),
                    "retention.purged",
                    "system",
                    None,
                    None,
                    &data,
                )
                .await?;
            }
            tx.commit().await?;
            // Files go after their rows: a crash in between leaves files nobody names,
            // never a row without its file.
            for id in files.iter().filter(|id| crate::attachments::is_id(id)) {
                match std::fs::remove_file(crate::attachments::path_of(data_dir, id)) {
                    Ok(()) => purged.files += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}
