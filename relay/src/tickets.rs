//! Tickets: requests that wait for work outside a live chat. Made by agents, from a
//! message a customer left, or by the relay; assigned by hand or automatically (to the
//! agent of the ticket's group with the fewest open tickets); every change is in the
//! event log, which is the ticket's audit trail.

use kefu_proto::api::{NewTicket, TicketDetails, TicketEvent, TicketNote, TicketPatch};
use kefu_proto::frame::{AgentRef, TicketPriority, TicketStatus, TicketView};
use kefu_proto::limits::check_body;
use kefu_proto::{AgentId, ContactId, ConversationId, ErrorCode, WorkspaceId};
// The formatted queries only join constant text: nothing from a client is formatted in.
use sqlx::{AssertSqlSafe, Row};

use crate::clock::now_ms;
use crate::crypto::{Field, Keyring};
use crate::error::{Error, Result};
use crate::routing::GroupId;
use crate::store::Store;

/// Longest ticket subject, in characters.
const MAX_SUBJECT_CHARS: usize = 200;

/// Who made a ticket or changed it.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    /// An agent.
    Agent(AgentId),
    /// A customer (their left message).
    Customer(ContactId),
    /// The relay itself.
    System,
}

impl Actor {
    fn kind(self) -> &'static str {
        match self {
            Actor::Agent(_) => "agent",
            Actor::Customer(_) => "customer",
            Actor::System => "system",
        }
    }

    fn id(self) -> Option<i64> {
        match self {
            Actor::Agent(a) => Some(a.0),
            Actor::Customer(c) => Some(c.0),
            Actor::System => None,
        }
    }
}

/// A ticket to make, resolved to ids.
#[derive(Debug, Clone)]
pub struct TicketDraft {
    /// One line.
    pub subject: String,
    /// What is needed.
    pub description: String,
    /// How urgent.
    pub priority: TicketPriority,
    /// Its group.
    pub group: Option<GroupId>,
    /// The customer.
    pub contact: Option<ContactId>,
    /// The conversation it came from.
    pub conversation: Option<ConversationId>,
    /// Who works on it; `None`: chosen automatically.
    pub assignee: Option<AgentId>,
}

fn check_subject(subject: &str) -> Result<String> {
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS || subject.chars().any(char::is_control) {
        return Err(Error::refused(
            ErrorCode::BadRequest,
            format!("subject must be 1 to {MAX_SUBJECT_CHARS} characters without control characters"),
        ));
    }
    Ok(subject.to_string())
}

/// A subject made from the first line of a text.
pub fn subject_from(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let mut subject: String = line.chars().filter(|c| !c.is_control()).take(60).collect();
    if line.chars().count() > 60 {
        subject.push('…');
    }
    if subject.is_empty() { "Message".into() } else { subject }
}

impl Store {
    /// The agent of a group (any agent, without a group) with the fewest open tickets.
    pub async fn ticket_assignee_for(&self, workspace: WorkspaceId, group: Option<GroupId>) -> Result<Option<AgentId>> {
        let row = sqlx::query(
            "SELECT a.id FROM agents a
             WHERE a.workspace_id = ?1 AND a.disabled_at IS NULL AND a.role <> 'admin'
               AND (?2 IS NULL OR EXISTS (SELECT 1 FROM agent_skills s WHERE s.agent_id = a.id AND s.group_id = ?2))
             ORDER BY (SELECT count(*) FROM tickets t WHERE t.assignee_agent_id = a.id AND t.status IN ('open', 'pending')), a.id
             LIMIT 1",
        )
        .bind(workspace.0)
        .bind(group)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| AgentId(r.get("id"))))
    }

    /// Makes a ticket (assigning it when no assignee is given) and records it.
    pub async fn create_ticket(&self, workspace: WorkspaceId, draft: TicketDraft, actor: Actor) -> Result<TicketView> {
        let subject = check_subject(&draft.subject)?;
        check_body(&draft.description)?;
        let assignee = match draft.assignee {
            Some(agent) => {
                if self.agent(workspace, agent).await?.is_none() {
                    return Err(Error::refused(ErrorCode::NotFound, format!("no agent {agent}")));
                }
                Some(agent)
            }
            None => self.ticket_assignee_for(workspace, draft.group).await?,
        };
        let now = now_ms();
        let mut tx = crate::store::begin_write(&self.writer).await?;
        let id = sqlx::query(
            "INSERT INTO tickets (workspace_id, subject, description, priority, assignee_agent_id, group_id, contact_id,
                                  conversation_id, created_by_kind, created_by_id, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(workspace.0)
        .bind(self.keys.current().seal(Field::TicketSubject, &subject))
        .bind(self.keys.current().seal(Field::TicketDescription, &draft.description))
        .bind(draft.priority.as_str())
        .bind(assignee.map(|a| a.0))
        .bind(draft.group)
        .bind(draft.contact.map(|c| c.0))
        .bind(draft.conversation.map(|c| c.0))
        .bind(actor.kind())
        .bind(actor.id())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        // The subject stays in `tickets` (erasable): the append-only log holds no customer text.
        let data = serde_json::json!({
            "ticket_id": id,
            "assignee_id": assignee,
            "assigned": if draft.assignee.is_some() { "by hand" } else { "automatically" },
        });
        record(&mut tx, workspace, "ticket.created", actor, draft.conversation, &data).await?;
        tx.commit().await?;
        self.ticket(workspace, id).await?.ok_or_else(|| Error::Internal("ticket vanished".into()))
    }

    /// A ticket of a workspace.
    pub async fn ticket(&self, workspace: WorkspaceId, id: i64) -> Result<Option<TicketView>> {
        let row = sqlx::query(AssertSqlSafe(format!("{TICKET_SELECT} WHERE t.id = ? AND t.workspace_id = ?")))
            .bind(id)
            .bind(workspace.0)
            .fetch_optional(&self.reader)
            .await?;
        let keyring = self.keys.current();
        row.as_ref().map(|r| ticket_from_row(r, &keyring)).transpose()
    }

    /// Tickets of a workspace, newest change first, filtered.
    pub async fn tickets(
        &self,
        workspace: WorkspaceId,
        status: Option<TicketStatus>,
        assignee: Option<AgentId>,
        group: Option<GroupId>,
        limit: u32,
    ) -> Result<Vec<TicketView>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{TICKET_SELECT} WHERE t.workspace_id = ? AND (? IS NULL OR t.status = ?) AND (? IS NULL OR t.assignee_agent_id = ?)
             AND (? IS NULL OR t.group_id = ?) ORDER BY t.updated_at DESC, t.id DESC LIMIT ?"
        )))
        .bind(workspace.0)
        .bind(status.map(TicketStatus::as_str))
        .bind(status.map(TicketStatus::as_str))
        .bind(assignee.map(|a| a.0))
        .bind(assignee.map(|a| a.0))
        .bind(group)
        .bind(group)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        let keyring = self.keys.current();
        rows.iter().map(|r| ticket_from_row(r, &keyring)).collect()
    }

    /// Changes a ticket; returns it as it now stands.
    pub async fn update_ticket(
        &self,
        workspace: WorkspaceId,
        id: i64,
        patch: &TicketPatch,
        actor: Actor,
    ) -> Result<TicketView> {
        let Some(before) = self.ticket(workspace, id).await? else {
            return Err(Error::refused(ErrorCode::NotFound, format!("no ticket {id}")));
        };
        let subject = patch.subject.as_deref().map(check_subject).transpose()?;
        if let Some(agent) = patch.assignee_id
            && self.agent(workspace, agent).await?.is_none()
        {
            return Err(Error::refused(ErrorCode::NotFound, format!("no agent {agent}")));
        }
        let mut tx = crate::store::begin_write(&self.writer).await?;
        sqlx::query(
            "UPDATE tickets SET status = COALESCE(?, status), priority = COALESCE(?, priority),
                    assignee_agent_id = COALESCE(?, assignee_agent_id), subject = COALESCE(?, subject), updated_at = ?
             WHERE id = ? AND workspace_id = ?",
        )
        .bind(patch.status.map(TicketStatus::as_str))
        .bind(patch.priority.map(TicketPriority::as_str))
        .bind(patch.assignee_id.map(|a| a.0))
        .bind(self.keys.current().seal_opt(Field::TicketSubject, subject.as_deref()))
        .bind(now_ms())
        .bind(id)
        .bind(workspace.0)
        .execute(&mut *tx)
        .await?;
        let data = serde_json::json!({
            "ticket_id": id,
            "status": patch.status.map(|s| serde_json::json!({"from": before.status.as_str(), "to": s.as_str()})),
            "priority": patch.priority.map(|p| serde_json::json!({"from": before.priority.as_str(), "to": p.as_str()})),
            "assignee_id": patch.assignee_id.map(|a| serde_json::json!({"from": before.assignee.as_ref().map(|r| r.id), "to": a})),
            "subject_changed": patch.subject.is_some(),
        });
        record(&mut tx, workspace, "ticket.updated", actor, before.conversation_id, &data).await?;
        tx.commit().await?;
        self.ticket(workspace, id).await?.ok_or_else(|| Error::Internal("ticket vanished".into()))
    }

    /// Adds a note to a ticket.
    pub async fn add_ticket_note(&self, workspace: WorkspaceId, id: i64, body: &str, actor: Actor) -> Result<()> {
        check_body(body)?;
        let Some(ticket) = self.ticket(workspace, id).await? else {
            return Err(Error::refused(ErrorCode::NotFound, format!("no ticket {id}")));
        };
        let mut tx = crate::store::begin_write(&self.writer).await?;
        sqlx::query(
            "INSERT INTO ticket_notes (ticket_id, author_kind, author_id, body, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(actor.kind())
        .bind(actor.id())
        .bind(self.keys.current().seal(Field::TicketNote, body))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE tickets SET updated_at = ? WHERE id = ?").bind(now_ms()).bind(id).execute(&mut *tx).await?;
        record(&mut tx, workspace, "ticket.note", actor, ticket.conversation_id, &serde_json::json!({"ticket_id": id}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A ticket with its notes and history.
    pub async fn ticket_details(&self, workspace: WorkspaceId, id: i64) -> Result<Option<TicketDetails>> {
        let Some(ticket) = self.ticket(workspace, id).await? else { return Ok(None) };
        let notes = sqlx::query(
            "SELECT n.body, n.created_at, a.name FROM ticket_notes n
             LEFT JOIN agents a ON n.author_kind = 'agent' AND a.id = n.author_id WHERE n.ticket_id = ? ORDER BY n.id",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            Ok(TicketNote {
                author: r.get("name"),
                body: self.keys.current().open(Field::TicketNote, r.get("body"))?,
                at: r.get("created_at"),
            })
        })
        .collect::<Result<_>>()?;
        let history = sqlx::query(
            "SELECT at, kind, actor_kind, actor_id, data FROM events
             WHERE workspace_id = ? AND kind LIKE 'ticket.%' AND json_extract(data, '$.ticket_id') = ? ORDER BY id",
        )
        .bind(workspace.0)
        .bind(id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| TicketEvent {
            at: r.get("at"),
            kind: r.get("kind"),
            actor_kind: r.get("actor_kind"),
            actor_id: r.get("actor_id"),
            data: serde_json::from_str(r.get::<&str, _>("data")).unwrap_or_default(),
        })
        .collect();
        Ok(Some(TicketDetails { ticket, notes, history }))
    }
}

const TICKET_SELECT: &str = "SELECT t.id, t.subject, t.description, t.status, t.priority, t.assignee_agent_id,
        a.name AS assignee_name, g.slug AS group_slug, t.contact_id, t.conversation_id, t.created_by_kind,
        t.created_at, t.updated_at
     FROM tickets t LEFT JOIN agents a ON a.id = t.assignee_agent_id LEFT JOIN groups g ON g.id = t.group_id";

fn ticket_from_row(r: &sqlx::sqlite::SqliteRow, keyring: &Keyring) -> Result<TicketView> {
    let parse = |column: &str| -> Result<String> { Ok(r.get::<String, _>(column)) };
    Ok(TicketView {
        id: r.get("id"),
        subject: keyring.open(Field::TicketSubject, r.get("subject"))?,
        description: keyring.open(Field::TicketDescription, r.get("description"))?,
        status: parse("status")?.parse().map_err(Error::Internal)?,
        priority: parse("priority")?.parse().map_err(Error::Internal)?,
        assignee: r.get::<Option<i64>, _>("assignee_agent_id").map(|id| AgentRef {
            id: AgentId(id),
            name: r.get::<Option<String>, _>("assignee_name").unwrap_or_default(),
        }),
        group: r.get("group_slug"),
        contact_id: r.get::<Option<i64>, _>("contact_id").map(ContactId),
        conversation_id: r.get::<Option<i64>, _>("conversation_id").map(ConversationId),
        created_by: r.get("created_by_kind"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

async fn record(
    conn: &mut sqlx::SqliteConnection,
    workspace: WorkspaceId,
    kind: &str,
    actor: Actor,
    conversation: Option<ConversationId>,
    data: &serde_json::Value,
) -> Result<()> {
    crate::store::insert_event(conn, workspace, kind, actor.kind(), actor.id(), conversation, data).await
}

/// Resolves a new ticket from the API into a draft: the conversation's contact and group
/// are taken from it.
pub async fn draft_from(store: &Store, workspace: WorkspaceId, new: &NewTicket) -> Result<TicketDraft> {
    let (contact, conversation) = match new.conversation_id {
        Some(id) => match store.conversation_owner(id).await? {
            Some((owner, contact)) if owner == workspace => (Some(contact), Some(id)),
            _ => return Err(Error::refused(ErrorCode::NotFound, format!("no conversation {id}"))),
        },
        None => (None, None),
    };
    let group = match (&new.group, conversation) {
        (Some(slug), _) => Some(store.group_id(workspace, slug).await?),
        // A ticket from a conversation belongs to the conversation's group.
        (None, Some(conversation)) => store.conversation_group(conversation).await?,
        (None, None) => None,
    };
    Ok(TicketDraft {
        subject: new.subject.clone(),
        description: new.description.clone(),
        priority: new.priority,
        group,
        contact,
        conversation,
        assignee: new.assignee_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_come_from_the_first_line() {
        assert_eq!(subject_from("\n我想退货，订单号 123\n详细情况……"), "我想退货，订单号 123");
        assert_eq!(subject_from(&"长".repeat(80)).chars().count(), 61);
        assert_eq!(subject_from("   "), "Message");
    }
}
