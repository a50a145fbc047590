//! The facts behind the metrics, read from the database: for the conversations a
//! workspace opened in a range, their lifecycle columns, what the event log says about
//! them (queue entry, first assignment, transfers, reopens), their rating, and their
//! customers' and agents' messages for reply times. Three queries whatever the number of
//! conversations; [`crate::metrics`] does the arithmetic.

use std::collections::HashMap;

use kefu_proto::{AgentId, ConversationId, UnixMillis, WorkspaceId};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::metrics::{ConversationFacts, MessageFact, RatingFact, Speaker, replies};
use crate::store::Store;

/// Per conversation opened in `[?2, ?3)` of workspace `?1`: its row, its group's slug, its
/// rating, and aggregates over its events (the `events_kind` index finds them by
/// conversation).
const FACTS: &str = "
SELECT c.id, c.created_at, c.channel_kind, c.state, c.assignee_agent_id, c.resolved_at, c.closed_at,
       g.slug AS group_slug, r.score, r.agent_id AS rating_agent_id,
       e.opened_queued, e.handed_over_at, e.first_reopened_at, e.last_reopened_at, e.reopens,
       e.first_assigned_at, e.transfers
FROM conversations c
LEFT JOIN groups g ON g.id = c.group_id
LEFT JOIN ratings r ON r.conversation_id = c.id
LEFT JOIN (
    SELECT ev.conversation_id,
           max(ev.kind = 'conversation.opened' AND json_extract(ev.data, '$.state') = 'queued') AS opened_queued,
           min(CASE WHEN ev.kind = 'conversation.handed_over' THEN ev.at END) AS handed_over_at,
           min(CASE WHEN ev.kind = 'conversation.reopened' THEN ev.at END) AS first_reopened_at,
           max(CASE WHEN ev.kind = 'conversation.reopened' THEN ev.at END) AS last_reopened_at,
           sum(ev.kind = 'conversation.reopened') AS reopens,
           min(CASE WHEN ev.kind = 'routing.assigned' THEN ev.at END) AS first_assigned_at,
           sum((ev.kind = 'routing.assigned' AND json_extract(ev.data, '$.details.rule') = 'transferred')
               OR (ev.kind = 'routing.returned' AND json_extract(ev.data, '$.details.reason') = 'transferred'))
               AS transfers
    FROM events ev
    WHERE ev.conversation_id IN (
              SELECT id FROM conversations WHERE workspace_id = ?1 AND created_at >= ?2 AND created_at < ?3)
      AND ev.kind IN ('conversation.opened', 'conversation.handed_over', 'conversation.reopened',
                      'routing.assigned', 'routing.returned')
    GROUP BY ev.conversation_id
) e ON e.conversation_id = c.id
WHERE c.workspace_id = ?1 AND c.created_at >= ?2 AND c.created_at < ?3
ORDER BY c.id";

/// The messages that count for reply times (customers' and agents' public ones) of the
/// same conversations, in order.
const MESSAGES: &str = "
SELECT m.conversation_id, m.author_kind, m.author_id, m.created_at
FROM messages m
WHERE m.conversation_id IN (
          SELECT id FROM conversations WHERE workspace_id = ?1 AND created_at >= ?2 AND created_at < ?3)
  AND m.internal = 0 AND m.author_kind IN ('customer', 'agent')
ORDER BY m.conversation_id, m.seq";

impl Store {
    /// The facts of every conversation `workspace` opened in `[from, to)`, by id.
    pub async fn conversation_facts(
        &self,
        workspace: WorkspaceId,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Vec<ConversationFacts>> {
        self.settle().await?;
        let rows = sqlx::query(FACTS).bind(workspace.0).bind(from).bind(to).fetch_all(&self.reader).await?;
        let message_rows = sqlx::query(MESSAGES).bind(workspace.0).bind(from).bind(to).fetch_all(&self.reader).await?;
        let mut messages: HashMap<i64, Vec<MessageFact>> = HashMap::new();
        for r in &message_rows {
            let speaker = match r.get::<&str, _>("author_kind") {
                "agent" => match r.get::<Option<i64>, _>("author_id") {
                    Some(agent) => Speaker::Agent(AgentId(agent)),
                    None => continue,
                },
                _ => Speaker::Customer,
            };
            messages
                .entry(r.get("conversation_id"))
                .or_default()
                .push(MessageFact { at: r.get("created_at"), speaker });
        }
        rows.iter()
            .map(|r| {
                let id: i64 = r.get("id");
                let created_at: UnixMillis = r.get("created_at");
                let opened_queued = r.get::<Option<i64>, _>("opened_queued").unwrap_or(0) != 0;
                let entered_queue_at = if opened_queued {
                    Some(created_at)
                } else {
                    let handed_over: Option<UnixMillis> = r.get("handed_over_at");
                    let reopened: Option<UnixMillis> = r.get("first_reopened_at");
                    handed_over.into_iter().chain(reopened).min()
                };
                let (first_reply, reply_gaps) =
                    replies(messages.get(&id).map(Vec::as_slice).unwrap_or_default(), entered_queue_at);
                let rating = r.get::<Option<i64>, _>("score").map(|score| RatingFact {
                    score: score.clamp(0, 5) as u8,
                    agent: r.get::<Option<i64>, _>("rating_agent_id").map(AgentId),
                });
                Ok(ConversationFacts {
                    id: ConversationId(id),
                    created_at,
                    channel: parse(r, "channel_kind")?,
                    group: r.get("group_slug"),
                    state: parse(r, "state")?,
                    agent: r.get::<Option<i64>, _>("assignee_agent_id").map(AgentId),
                    entered_queue_at,
                    first_assigned_at: r.get("first_assigned_at"),
                    resolved_at: r.get("resolved_at"),
                    closed_at: r.get("closed_at"),
                    last_reopened_at: r.get("last_reopened_at"),
                    transfers: r.get::<Option<i64>, _>("transfers").unwrap_or(0) as u32,
                    reopens: r.get::<Option<i64>, _>("reopens").unwrap_or(0) as u32,
                    first_reply,
                    reply_gaps,
                    rating,
                })
            })
            .collect()
    }

    /// Every agent's display name in `workspace`, disabled agents included (their past
    /// work still counts).
    pub async fn agent_names(&self, workspace: WorkspaceId) -> Result<HashMap<AgentId, String>> {
        let rows = sqlx::query("SELECT id, name FROM agents WHERE workspace_id = ?")
            .bind(workspace.0)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(|r| (AgentId(r.get("id")), r.get("name"))).collect())
    }
}

/// A column holding one of a wire enum's names.
fn parse<T: std::str::FromStr<Err = String>>(r: &sqlx::sqlite::SqliteRow, column: &str) -> Result<T> {
    r.get::<&str, _>(column).parse().map_err(|e| Error::Internal(format!("column {column}: {e}")))
}
