//! The tickets view's state: my tickets (kept for the status bar's count too) or every
//! open one, filtered by what the agent types, the highlighted ticket's details (notes and
//! history) fetched when it is highlighted, and what a ticket made from a conversation
//! starts with.
//!
//! Pure: the app feeds it answers and `ticket` frames and performs the requests it
//! returns.

use std::collections::HashMap;

use kefu_proto::AgentId;
use kefu_proto::api::TicketDetails;
use kefu_proto::frame::{AuthorKind, ConversationView, TicketPriority, TicketStatus, TicketView};

use crate::api::{ApiRequest, TicketScope};
use crate::app::Fetched;
use crate::scrollback::Entry;

/// Statuses in the order the status prompt offers them (up and down walk it).
pub const STATUSES: [TicketStatus; 4] =
    [TicketStatus::Open, TicketStatus::Pending, TicketStatus::Solved, TicketStatus::Closed];
/// Priorities in the order the new-ticket prompt offers them.
pub const PRIORITIES: [TicketPriority; 4] =
    [TicketPriority::Low, TicketPriority::Normal, TicketPriority::High, TicketPriority::Urgent];
/// Longest subject the relay takes, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Characters of the customer's message a prefilled subject keeps.
const SUBJECT_CHARS: usize = 60;
/// Customer messages quoted in a new ticket's description.
const DESCRIPTION_MESSAGES: usize = 5;

/// What the tickets view holds; it survives closing the view.
#[derive(Debug)]
pub struct TicketBoard {
    /// Mine or all open.
    pub scope: TicketScope,
    /// The list of `scope`, once asked for.
    pub list: Option<Fetched<Vec<TicketView>>>,
    /// My tickets, whatever the view shows: the status bar counts the open ones.
    pub mine: Option<Vec<TicketView>>,
    /// Details fetched, by ticket id.
    pub details: HashMap<i64, Fetched<TicketDetails>>,
    /// What was typed to filter the list.
    pub filter: String,
    /// The highlighted ticket, by id, so it stays highlighted when the list reloads.
    pub selected: Option<i64>,
    /// Rows the details are scrolled down.
    pub scroll: usize,
}

impl Default for TicketBoard {
    fn default() -> Self {
        TicketBoard {
            scope: TicketScope::Mine,
            list: None,
            mine: None,
            details: HashMap::new(),
            filter: String::new(),
            selected: None,
            scroll: 0,
        }
    }
}

impl TicketBoard {
    /// My tickets that are open, once known.
    pub fn open_count(&self) -> Option<usize> {
        self.mine.as_ref().map(|list| list.iter().filter(|t| t.status == TicketStatus::Open).count())
    }

    /// The tickets shown: the list filtered by what was typed, in the relay's order.
    pub fn shown(&self) -> Vec<&TicketView> {
        let Some(Fetched::Ready(list)) = &self.list else { return Vec::new() };
        let words: Vec<String> = self.filter.split_whitespace().map(str::to_lowercase).collect();
        list.iter()
            .filter(|t| {
                let text = format!(
                    "#{} {} {} {} {} {}",
                    t.id,
                    t.subject,
                    t.status.as_str(),
                    t.priority.as_str(),
                    t.assignee.as_ref().map_or("", |a| a.name.as_str()),
                    t.group.as_deref().unwrap_or(""),
                )
                .to_lowercase();
                words.iter().all(|w| text.contains(w.as_str()))
            })
            .collect()
    }

    /// Where the highlighted ticket is among those shown (the first when it is not shown).
    pub fn selected_index(&self) -> usize {
        let shown = self.shown();
        self.selected.and_then(|id| shown.iter().position(|t| t.id == id)).unwrap_or(0)
    }

    /// The highlighted ticket.
    pub fn selected_ticket(&self) -> Option<&TicketView> {
        let shown = self.shown();
        shown.get(self.selected_index()).copied()
    }

    /// Moves the highlight by `delta` (wrapping); returns the details to fetch, if any.
    pub fn select(&mut self, delta: isize) -> Option<ApiRequest> {
        let shown: Vec<i64> = self.shown().iter().map(|t| t.id).collect();
        if shown.is_empty() {
            return None;
        }
        let next = (self.selected_index() as isize + delta).rem_euclid(shown.len() as isize) as usize;
        self.selected = Some(shown[next]);
        self.scroll = 0;
        self.details_wanted()
    }

    /// The filter changed: the highlight goes to the first match.
    pub fn filtered(&mut self) -> Option<ApiRequest> {
        self.selected = self.shown().first().map(|t| t.id);
        self.scroll = 0;
        self.details_wanted()
    }

    /// The request for the highlighted ticket's details when they are not held (marked
    /// loading).
    pub fn details_wanted(&mut self) -> Option<ApiRequest> {
        let id = self.selected_ticket()?.id;
        self.selected = Some(id);
        if self.details.contains_key(&id) {
            return None;
        }
        self.details.insert(id, Fetched::Loading);
        Some(ApiRequest::Ticket(id))
    }

    /// The view opens or the scope changes: the list to fetch (the old one shows until the
    /// answer).
    pub fn refresh(&mut self) -> ApiRequest {
        if !matches!(self.list, Some(Fetched::Ready(_))) {
            self.list = Some(Fetched::Loading);
        }
        ApiRequest::Tickets(self.scope)
    }

    /// Switches between my tickets and all open ones; returns the list to fetch.
    pub fn toggle_scope(&mut self) -> ApiRequest {
        self.scope = match self.scope {
            TicketScope::Mine => TicketScope::Open,
            TicketScope::Open => TicketScope::Mine,
        };
        self.list = None;
        self.scroll = 0;
        self.refresh()
    }

    /// A list arrived (the view, when open, then wants the highlight's details).
    pub fn on_list(&mut self, scope: TicketScope, result: Result<Vec<TicketView>, String>) {
        if let (TicketScope::Mine, Ok(list)) = (scope, &result) {
            self.mine = Some(list.clone());
        }
        if scope != self.scope {
            return;
        }
        match result {
            Ok(list) => self.list = Some(Fetched::Ready(list)),
            // A list already shown stays; the status line says what failed.
            Err(why) if !matches!(self.list, Some(Fetched::Ready(_))) => self.list = Some(Fetched::Failed(why)),
            Err(_) => {}
        }
    }

    /// A ticket as it now stands (from a frame or an answer): the lists follow it, and
    /// its details are dropped (they changed; the view, when open, fetches them again).
    pub fn upsert(&mut self, ticket: &TicketView, me: Option<AgentId>) {
        let mine = me.is_some() && ticket.assignee.as_ref().map(|a| a.id) == me;
        if let Some(list) = &mut self.mine {
            place(list, ticket, mine);
        }
        let fits = match self.scope {
            TicketScope::Mine => mine,
            TicketScope::Open => ticket.status == TicketStatus::Open,
        };
        if let Some(Fetched::Ready(list)) = &mut self.list {
            place(list, ticket, fits);
        }
        self.details.remove(&ticket.id);
    }

    /// The details of ticket `id` arrived (or could not be fetched).
    pub fn on_details(&mut self, id: i64, result: Result<TicketDetails, String>) {
        let fetched = match result {
            Ok(details) => {
                let ticket = details.ticket.clone();
                if let Some(Fetched::Ready(list)) = &mut self.list
                    && let Some(held) = list.iter_mut().find(|t| t.id == id)
                {
                    *held = ticket;
                }
                Fetched::Ready(details)
            }
            Err(why) => Fetched::Failed(why),
        };
        self.details.insert(id, fetched);
    }

    /// Fetches ticket `id`'s details again (after a note or a change).
    pub fn reload_details(&mut self, id: i64) -> ApiRequest {
        self.details.insert(id, Fetched::Loading);
        ApiRequest::Ticket(id)
    }

    /// Scrolls the details by `delta` rows.
    pub fn scroll_details(&mut self, delta: isize) {
        self.scroll = self.scroll.saturating_add_signed(delta);
    }
}

/// Puts `ticket` in `list` (replacing the one with its id) when `keep`, else takes it out.
fn place(list: &mut Vec<TicketView>, ticket: &TicketView, keep: bool) {
    match (list.iter().position(|t| t.id == ticket.id), keep) {
        (Some(i), true) => list[i] = ticket.clone(),
        (Some(i), false) => {
            list.remove(i);
        }
        (None, true) => list.insert(0, ticket.clone()),
        (None, false) => {}
    }
}

/// The next of `all` after `current` by `delta` steps (wrapping); the first when
/// `current` is not among them.
pub fn cycle<T: Copy + PartialEq>(all: &[T], current: Option<T>, delta: isize) -> T {
    let len = all.len() as isize;
    let next = match current.and_then(|c| all.iter().position(|x| *x == c)) {
        Some(i) => (i as isize + delta).rem_euclid(len),
        None if delta >= 0 => 0,
        None => len - 1,
    };
    all[next as usize]
}

/// A subject made from the customer's last message: its first line, at most 60
/// characters (empty when the customer has written nothing held here), with personal data
/// masked as the relay masked it.
pub fn subject_from(entries: &[Entry]) -> String {
    let Some(last) = entries.iter().rev().find(|e| e.from_customer() && !e.body.trim().is_empty()) else {
        return String::new();
    };
    // Personal data revealed on this screen stays masked in what others read.
    let line = last.shareable_body().lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let mut subject: String = line.chars().filter(|c| !c.is_control()).take(SUBJECT_CHARS).collect();
    if line.chars().count() > SUBJECT_CHARS {
        subject.push('…');
    }
    subject
}

/// A new ticket's description: where it comes from and what the customer said last
/// (personal data masked as the relay masked it, even once revealed here).
pub fn description_from(view: &ConversationView, entries: &[Entry]) -> String {
    let name = crate::app::customer_name(view);
    let mut text = format!("来自会话 From conversation #{} ({name}, {})", view.id, view.channel.as_str());
    if let Some(intent) = &view.intent {
        text.push_str(&format!(" · 意图 intent: {intent}"));
    }
    let said: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.author.kind == AuthorKind::Customer && !e.internal && !e.body.trim().is_empty())
        .collect();
    let recent = &said[said.len().saturating_sub(DESCRIPTION_MESSAGES)..];
    if !recent.is_empty() {
        text.push_str(":\n");
        let quoted: Vec<String> =
            recent.iter().map(|e| format!("> {}", e.shareable_body().trim().replace('\n', "\n> "))).collect();
        text.push_str(&quoted.join("\n"));
    }
    text
}

/// The priority a ticket from this conversation starts with: high for a VIP.
pub fn default_priority(view: &ConversationView) -> TicketPriority {
    if view.contact.vip { TicketPriority::High } else { TicketPriority::Normal }
}

#[cfg(test)]
mod tests {
    use kefu_proto::frame::{Author, BodyFormat};
    use serde_json::json;

    use super::*;

    fn ticket(id: i64, subject: &str, status: &str, assignee: Option<i64>) -> TicketView {
        serde_json::from_value(json!({
            "id": id, "subject": subject, "description": "", "status": status, "priority": "normal",
            "assignee": assignee.map(|a| json!({"id": a, "name": if a == 7 { "小王" } else { "李娜" }})),
            "created_by": "agent", "created_at": 0, "updated_at": 0,
        }))
        .unwrap()
    }

    fn said(seq: u64, kind: AuthorKind, body: &str) -> Entry {
        let author = Author { kind, id: None, name: None };
        let message = kefu_proto::frame::MessageFrame {
            conversation_id: kefu_proto::ConversationId(1),
            seq,
            author,
            body: body.into(),
            format: BodyFormat::Text,
            client_msg_id: None,
            at: 0,
            internal: false,
            attachments: vec![],
            via: None,
            masked: false,
        };
        Entry::from_message(message, "")
    }

    #[test]
    fn my_open_tickets_are_counted_and_follow_frames() {
        let me = Some(AgentId(7));
        let mut board = TicketBoard::default();
        assert_eq!(board.open_count(), None);
        board.on_list(
            TicketScope::Mine,
            Ok(vec![ticket(1, "退款", "open", Some(7)), ticket(2, "发票", "solved", Some(7))]),
        );
        assert_eq!(board.open_count(), Some(1));
        board.upsert(&ticket(3, "换货", "open", Some(7)), me);
        assert_eq!(board.open_count(), Some(2));
        board.upsert(&ticket(1, "退款", "pending", Some(7)), me);
        board.upsert(&ticket(3, "换货", "open", Some(8)), me);
        assert_eq!(board.open_count(), Some(0), "pending and given away");
        assert_eq!(board.shown().iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn the_filter_and_the_highlight() {
        let mut board = TicketBoard::default();
        let list = vec![ticket(1, "退款 refund", "open", Some(7)), ticket(2, "发票 invoice", "open", Some(7))];
        board.on_list(TicketScope::Mine, Ok(list));
        assert_eq!(board.details_wanted(), Some(ApiRequest::Ticket(1)));
        assert_eq!(board.select(1), Some(ApiRequest::Ticket(2)));
        board.filter = "REFUND".into();
        assert_eq!(board.filtered(), None, "ticket 1's details are held");
        assert_eq!(board.selected_ticket().map(|t| t.id), Some(1));
        board.filter = "#2".into();
        board.filtered();
        assert_eq!(board.selected_ticket().map(|t| t.id), Some(2));
        // Another scope's answer only updates my count.
        board.on_list(TicketScope::Open, Ok(vec![]));
        assert_eq!(board.shown().len(), 1);
    }

    #[test]
    fn a_ticket_from_a_conversation_starts_from_what_the_customer_said() {
        let entries = vec![
            said(1, AuthorKind::Customer, "你好"),
            said(2, AuthorKind::Bot, "您好！请问有什么可以帮您？"),
            said(
                3,
                AuthorKind::Customer,
                "\n我的订单 20251120-8841 一周了还没到，能帮我查一下吗？物流一直没有更新，我很着急\n谢谢",
            ),
            said(4, AuthorKind::Agent, "好的"),
        ];
        assert_eq!(
            subject_from(&entries),
            "我的订单 20251120-8841 一周了还没到，能帮我查一下吗？物流一直没有更新，我很着急"
        );
        assert_eq!(subject_from(&entries[1..2]), "");
        let long = vec![said(1, AuthorKind::Customer, &"长".repeat(80))];
        assert_eq!(subject_from(&long).chars().count(), SUBJECT_CHARS + 1);
        let view: ConversationView = serde_json::from_value(json!({
            "id": 1, "state": "assigned", "channel": "web", "contact": {"id": 101, "name": "李女士", "vip": true},
            "last_seq": 4, "created_at": 0, "intent": "order_status",
        }))
        .unwrap();
        assert_eq!(
            description_from(&view, &entries),
            "来自会话 From conversation #1 (李女士, web) · 意图 intent: order_status:\n> 你好\n> 我的订单 20251120-8841 一周了还没到，能帮我查一下吗？物流一直没有更新，我很着急\n> 谢谢"
        );
        assert_eq!(default_priority(&view), TicketPriority::High);
    }

    #[test]
    fn statuses_cycle() {
        assert_eq!(cycle(&STATUSES, Some(TicketStatus::Open), 1), TicketStatus::Pending);
        assert_eq!(cycle(&STATUSES, Some(TicketStatus::Open), -1), TicketStatus::Closed);
        assert_eq!(cycle(&STATUSES, None, 1), TicketStatus::Open);
    }
}
