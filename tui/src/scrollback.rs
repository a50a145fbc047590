//! One conversation's messages, in `seq` order, with their wrapped lines cached per
//! width, and the scroll position as an anchor (a message and the lines of it hidden
//! below the bottom edge). Drawing and scrolling touch only the messages on screen or
//! passed over, so a long history is never laid out again as a whole.

use std::cell::RefCell;
use std::rc::Rc;

use kefu_proto::frame::{AttachmentRef, Author, AuthorKind, BodyFormat, MessageFrame};
use kefu_proto::{Seq, UnixMillis};
use ratatui::text::{Line, Span};

use crate::text;
use crate::theme::Theme;

/// Where one of my messages stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Written while disconnected (or to be retried): goes out when the relay is back.
    Queued,
    /// Sent, not yet acknowledged.
    Sending,
    /// Stored by the relay.
    Acked,
    /// Refused by the relay; the reason is shown.
    Failed(String),
    /// Someone else's message.
    Received,
}

/// Whether the personal data in a message is masked for me.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Masking {
    /// Shown as written (nothing was masked for me).
    #[default]
    Clear,
    /// The relay masked phone, ID-card and bank-card numbers and e-mails in it for my
    /// role (`138****5678`).
    Masked,
    /// Masked, then revealed at my request (the relay recorded it in the audit log).
    Revealed,
}

/// A file attached to a message, with where to fetch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// As the relay described it.
    pub reference: AttachmentRef,
    /// `RELAY/api/v1/attachments/{id}` (needs the agent's token).
    pub url: String,
}

impl Attachment {
    /// `reference` as served by the relay at `relay_url`.
    pub fn at(relay_url: &str, reference: AttachmentRef) -> Attachment {
        let url = format!("{}/api/v1/attachments/{}", relay_url.trim_end_matches('/'), reference.id);
        Attachment { reference, url }
    }
}

/// One message in the scrollback.
#[derive(Debug)]
pub struct Entry {
    /// Its position once stored; `None` while mine and not yet acknowledged.
    pub seq: Option<Seq>,
    /// Who wrote it.
    pub author: Author,
    /// The text.
    pub body: String,
    /// How to read the text.
    pub format: BodyFormat,
    /// When it was stored (or written, while unsent).
    pub at: UnixMillis,
    /// My id for it (mine only), matched against acks and errors.
    pub client_msg_id: Option<String>,
    /// Delivery state of my messages.
    pub delivery: Delivery,
    /// When to retry a send refused as `rate_limited` or `internal`.
    pub retry_at: Option<UnixMillis>,
    /// A private note between agents: never shown to the customer.
    pub internal: bool,
    /// Files attached.
    pub attachments: Vec<Attachment>,
    /// The channel a customer's message came through, when not the widget: its name, and
    /// for social platforms whether it was a comment, a direct message or live chat.
    pub via: Option<String>,
    /// Not a message but a line of the workstation's own (a transfer, a move away),
    /// placed after the message `seq` names; never sent, never counted.
    pub notice: bool,
    /// Whether its personal data is masked for me, or was revealed.
    pub masking: Masking,
    /// Once revealed: the body as the relay masked it, for whatever leaves the
    /// conversation (a ticket made from it), so a reveal stays where it was asked for.
    masked_body: Option<String>,
    /// The body's wrapped lines for the width they were made for.
    wrapped: RefCell<Option<(u16, Rc<Vec<Line<'static>>>)>>,
}

/// How a social message is named on screen.
fn source_label(source: kefu_proto::api::SocialKind) -> &'static str {
    match source {
        kefu_proto::api::SocialKind::Comment => "评论 comment",
        kefu_proto::api::SocialKind::Dm => "私信 DM",
        kefu_proto::api::SocialKind::Live => "直播 live",
    }
}

impl Entry {
    /// A stored message from the relay.
    pub fn received(seq: Seq, author: Author, body: String, format: BodyFormat, at: UnixMillis) -> Entry {
        Entry::new(Some(seq), author, body, format, at, None, Delivery::Received)
    }

    /// A stored message as the relay sent it; attachments link to `relay_url`.
    pub fn from_message(m: MessageFrame, relay_url: &str) -> Entry {
        let mut entry = Entry::received(m.seq, m.author, m.body, m.format, m.at);
        entry.internal = m.internal;
        entry.masking = if m.masked { Masking::Masked } else { Masking::Clear };
        entry.attachments = m.attachments.into_iter().map(|a| Attachment::at(relay_url, a)).collect();
        entry.via = m.via.map(|via| match via.source {
            Some(source) => format!("{} · {}", via.name, source_label(source)),
            None => via.name,
        });
        entry
    }

    /// The workstation's own line after message `after_seq` (e.g. "transferred by 小李").
    pub fn notice(after_seq: Seq, title: &str, body: String, at: UnixMillis) -> Entry {
        let author = Author { kind: AuthorKind::System, id: None, name: Some(title.to_string()) };
        let mut entry = Entry::new(Some(after_seq), author, body, BodyFormat::Text, at, None, Delivery::Received);
        entry.notice = true;
        entry
    }

    /// A message of mine, not yet stored.
    pub fn outgoing(author: Author, body: String, format: BodyFormat, at: UnixMillis, client_msg_id: String) -> Entry {
        Entry::new(None, author, body, format, at, Some(client_msg_id), Delivery::Queued)
    }

    fn new(
        seq: Option<Seq>,
        author: Author,
        body: String,
        format: BodyFormat,
        at: UnixMillis,
        client_msg_id: Option<String>,
        delivery: Delivery,
    ) -> Entry {
        Entry {
            seq,
            author,
            body,
            format,
            at,
            client_msg_id,
            delivery,
            retry_at: None,
            internal: false,
            attachments: Vec::new(),
            via: None,
            notice: false,
            masking: Masking::Clear,
            masked_body: None,
            wrapped: RefCell::new(None),
        }
    }

    /// The body laid out for `width` columns (cached: made once per width).
    pub fn body_lines(&self, width: u16, theme: &Theme) -> Rc<Vec<Line<'static>>> {
        if let Some((w, lines)) = self.wrapped.borrow().as_ref()
            && *w == width
        {
            return lines.clone();
        }
        let style = if self.notice { theme.pending } else { theme.body };
        let mut logical = match self.format {
            BodyFormat::Markdown => text::markdown(&self.body, style, &theme.markdown),
            BodyFormat::Text => text::plain(&self.body, style),
        };
        for attachment in &self.attachments {
            let r = &attachment.reference;
            let size = crate::api::format_size(r.size);
            logical.push(vec![
                ("附件 file ".to_string(), theme.dim),
                (r.name.clone(), theme.link),
                (format!(" ({size}, {})", r.content_type), theme.dim),
            ]);
            logical.push(vec![(attachment.url.clone(), theme.dim)]);
        }
        let mut lines = text::wrap(&logical, width, "  ");
        if self.internal {
            // A gutter in the note colour down the whole body: this never reached the customer.
            for line in &mut lines {
                if let Some(first) = line.spans.first_mut() {
                    *first = Span::styled("┃ ", theme.note);
                }
            }
        } else if self.author.kind == AuthorKind::Bot {
            // A dotted gutter: the bot said this, not a person.
            for line in &mut lines {
                if let Some(first) = line.spans.first_mut() {
                    *first = Span::styled("┊ ", theme.bot);
                }
            }
        }
        let lines = Rc::new(lines);
        *self.wrapped.borrow_mut() = Some((width, lines.clone()));
        lines
    }

    /// Rows this entry takes at `width`: a header and the body.
    pub fn height(&self, width: u16, theme: &Theme) -> usize {
        1 + self.body_lines(width, theme).len()
    }

    /// Whether a customer wrote it.
    pub fn from_customer(&self) -> bool {
        self.author.kind == AuthorKind::Customer
    }

    /// The body as it may be copied out of the conversation (into a ticket): masked when
    /// the relay masked it, even after a reveal.
    pub fn shareable_body(&self) -> &str {
        self.masked_body.as_deref().unwrap_or(&self.body)
    }

    /// Shows `body`, the text as written, in place of the masked one.
    fn reveal(&mut self, body: String) {
        let masked = std::mem::replace(&mut self.body, body);
        if self.masking == Masking::Masked {
            self.masked_body = Some(masked);
        }
        self.masking = Masking::Revealed;
        *self.wrapped.borrow_mut() = None;
    }
}

/// Where the view stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScrollPos {
    /// At the latest message, following new ones.
    #[default]
    Follow,
    /// Scrolled back: entry `index` is at the bottom edge with `hidden` of its rows below it.
    Anchor {
        /// The entry at the bottom edge.
        index: usize,
        /// How many of its rows are below the edge.
        hidden: usize,
    },
}

/// A conversation's messages: stored ones in `seq` order, then my unacknowledged ones.
#[derive(Debug, Default)]
pub struct Scrollback {
    /// The messages.
    entries: Vec<Entry>,
    /// How many leading entries have a `seq` (the rest are my unsent messages).
    stored: usize,
    /// The view's position.
    pub scroll: ScrollPos,
}

impl Scrollback {
    /// The messages, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a message with `seq` is held.
    pub fn contains(&self, seq: Seq) -> bool {
        self.entries[..self.stored].binary_search_by_key(&(Some(seq), false), |e| (e.seq, e.notice)).is_ok()
    }

    /// The lowest `seq` of a message held (notices aside), if any.
    pub fn lowest_seq(&self) -> Option<Seq> {
        self.entries[..self.stored].iter().find(|e| !e.notice).and_then(|e| e.seq)
    }

    /// Adds a stored message (or a notice) in `seq` order; returns false (and drops it)
    /// if already held. A notice goes after the message whose `seq` it carries.
    pub fn insert_stored(&mut self, entry: Entry) -> bool {
        let key = (entry.seq, entry.notice);
        match self.entries[..self.stored].binary_search_by_key(&key, |e| (e.seq, e.notice)) {
            Ok(_) if entry.notice => {
                // Several notices after one message: in the order they came.
                let at = self.entries[..self.stored].partition_point(|e| (e.seq, e.notice) <= key);
                self.insert_at(at, entry);
                true
            }
            Ok(_) => false,
            Err(at) => {
                self.insert_at(at, entry);
                true
            }
        }
    }

    /// Inserts among the stored entries, keeping the scroll anchor on the same entry so
    /// the view does not jump when older messages arrive above it.
    fn insert_at(&mut self, at: usize, entry: Entry) {
        self.entries.insert(at, entry);
        self.stored += 1;
        if let ScrollPos::Anchor { index, hidden } = self.scroll
            && at <= index
        {
            self.scroll = ScrollPos::Anchor { index: index + 1, hidden };
        }
    }

    /// The messages whose personal data is masked for me.
    pub fn masked(&self) -> usize {
        self.entries.iter().filter(|e| e.masking == Masking::Masked).count()
    }

    /// Shows message `seq` as written (`body`), if it is held and was masked for me;
    /// returns whether it was.
    pub fn reveal(&mut self, seq: Seq, body: String) -> bool {
        let Ok(at) = self.entries[..self.stored].binary_search_by_key(&(Some(seq), false), |e| (e.seq, e.notice))
        else {
            return false;
        };
        let entry = &mut self.entries[at];
        if entry.masking == Masking::Clear {
            return false;
        }
        entry.reveal(body);
        true
    }

    /// Adds one of my messages at the end, unsent.
    pub fn push_outgoing(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    /// My unsent or unacknowledged messages.
    pub fn outgoing_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.entries[self.stored..].iter_mut()
    }

    /// My message `client_msg_id`, wherever it stands.
    pub fn find_mine_mut(&mut self, client_msg_id: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().rev().find(|e| e.client_msg_id.as_deref() == Some(client_msg_id))
    }

    /// The relay stored my message `client_msg_id` as `seq`: it moves into `seq` order.
    /// Returns whether it was one of mine waiting for this.
    pub fn acknowledge(&mut self, client_msg_id: &str, seq: Seq, at: UnixMillis) -> bool {
        let Some(pos) = self.entries[self.stored..]
            .iter()
            .position(|e| e.client_msg_id.as_deref() == Some(client_msg_id))
            .map(|p| p + self.stored)
        else {
            return false;
        };
        let mut entry = self.entries.remove(pos);
        entry.seq = Some(seq);
        entry.at = at;
        entry.delivery = Delivery::Acked;
        entry.retry_at = None;
        // A duplicate ack for something already held changes nothing else.
        self.insert_stored(entry);
        true
    }

    /// The highest `seq` held (0: none). (A notice carries the `seq` before it, so the
    /// last stored entry has the highest.)
    pub fn highest_seq(&self) -> Seq {
        self.entries[..self.stored].last().and_then(|e| e.seq).unwrap_or(0)
    }

    /// Scrolls towards older messages by `rows` (at most to the top of the history).
    pub fn scroll_up(&mut self, rows: usize, width: u16, height: usize, theme: &Theme) {
        if self.entries.is_empty() {
            return;
        }
        let (mut index, mut hidden) = self.anchor();
        hidden += rows;
        while index > 0 && hidden >= self.entries[index].height(width, theme) {
            hidden -= self.entries[index].height(width, theme);
            index -= 1;
        }
        let first = self.entries[0].height(width, theme);
        if index == 0 {
            hidden = hidden.min(first.saturating_sub(1));
        }
        self.scroll = ScrollPos::Anchor { index, hidden };
        // Never past the top: the rows from the first message to the bottom edge must fill
        // the screen.
        let mut above = 0;
        for i in (0..=index).rev() {
            above += self.entries[i].height(width, theme) - if i == index { hidden } else { 0 };
            if above >= height {
                return;
            }
        }
        self.scroll_top(width, height, theme);
    }

    /// Scrolls towards newer messages by `rows`; reaching the end follows new ones again.
    pub fn scroll_down(&mut self, rows: usize, width: u16, theme: &Theme) {
        let ScrollPos::Anchor { mut index, mut hidden } = self.scroll else { return };
        let mut rows = rows;
        loop {
            if rows <= hidden {
                hidden -= rows;
                break;
            }
            rows -= hidden;
            index += 1;
            if index >= self.entries.len() {
                self.scroll = ScrollPos::Follow;
                return;
            }
            hidden = self.entries[index].height(width, theme);
        }
        self.scroll = if index + 1 >= self.entries.len() && hidden == 0 {
            ScrollPos::Follow
        } else {
            ScrollPos::Anchor { index, hidden }
        };
    }

    /// Shows the first message at the top.
    pub fn scroll_top(&mut self, width: u16, height: usize, theme: &Theme) {
        let mut rows = 0;
        for (i, entry) in self.entries.iter().enumerate() {
            let h = entry.height(width, theme);
            if rows + h >= height {
                self.scroll = ScrollPos::Anchor { index: i, hidden: rows + h - height };
                return;
            }
            rows += h;
        }
        self.scroll = ScrollPos::Follow;
    }

    /// The entry at the bottom edge and its hidden rows.
    fn anchor(&self) -> (usize, usize) {
        match self.scroll {
            ScrollPos::Follow => (self.entries.len().saturating_sub(1), 0),
            ScrollPos::Anchor { index, hidden } => (index.min(self.entries.len().saturating_sub(1)), hidden),
        }
    }

    /// The entries and row ranges to draw in `height` rows, top to bottom: `(index, skip
    /// rows at its top, rows to draw)`. Only the entries on screen are laid out.
    pub fn visible(&self, width: u16, height: usize, theme: &Theme) -> Vec<(usize, usize, usize)> {
        if self.entries.is_empty() || height == 0 {
            return Vec::new();
        }
        let (anchor, hidden) = self.anchor();
        // Walk up from the anchor until the screen is full.
        let mut parts: Vec<(usize, usize, usize)> = Vec::new();
        let mut rows = 0;
        let mut i = anchor + 1;
        while i > 0 && rows < height {
            i -= 1;
            let h = self.entries[i].height(width, theme);
            let shown = if i == anchor { h.saturating_sub(hidden) } else { h };
            let take = shown.min(height - rows);
            parts.push((i, shown - take, take));
            rows += take;
        }
        parts.reverse();
        // Not full: the history is shorter than the screen above the anchor; fill below.
        let mut j = anchor;
        if rows < height
            && hidden > 0
            && let Some(last) = parts.last_mut()
        {
            let extra = hidden.min(height - rows);
            last.2 += extra;
            rows += extra;
        }
        while rows < height && j + 1 < self.entries.len() {
            j += 1;
            let h = self.entries[j].height(width, theme);
            let take = h.min(height - rows);
            parts.push((j, 0, take));
            rows += take;
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> Author {
        Author { kind: AuthorKind::Customer, id: Some(1), name: Some("李女士".into()) }
    }

    fn filled(n: u64) -> Scrollback {
        let mut sb = Scrollback::default();
        for seq in 1..=n {
            sb.insert_stored(Entry::received(seq, customer(), format!("消息 {seq}"), BodyFormat::Text, 0));
        }
        sb
    }

    #[test]
    fn stored_messages_stay_in_seq_order_and_are_held_once() {
        let mut sb = Scrollback::default();
        for seq in [2, 1, 3, 2] {
            sb.insert_stored(Entry::received(seq, customer(), format!("{seq}"), BodyFormat::Text, 0));
        }
        let seqs: Vec<_> = sb.entries().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![Some(1), Some(2), Some(3)]);
        sb.push_outgoing(Entry::outgoing(customer(), "mine".into(), BodyFormat::Text, 0, "k-1".into()));
        sb.insert_stored(Entry::received(4, customer(), "4".into(), BodyFormat::Text, 0));
        assert_eq!(sb.entries().last().unwrap().client_msg_id.as_deref(), Some("k-1"), "unsent stays last");
        assert!(sb.acknowledge("k-1", 5, 9));
        assert_eq!(sb.entries()[4].seq, Some(5));
        assert_eq!(sb.highest_seq(), 5);
        assert!(!sb.acknowledge("k-1", 5, 9), "a second ack finds nothing waiting");
    }

    #[test]
    fn a_revealed_message_shows_as_written_but_is_shared_masked() {
        let theme = Theme::default();
        let mut sb = filled(2);
        let masked = MessageFrame {
            conversation_id: kefu_proto::ConversationId(1),
            seq: 3,
            author: customer(),
            body: "电话 138****5678".into(),
            format: BodyFormat::Text,
            client_msg_id: None,
            at: 0,
            internal: false,
            attachments: Vec::new(),
            via: None,
            masked: true,
        };
        sb.insert_stored(Entry::from_message(masked, ""));
        assert_eq!(sb.masked(), 1);
        let before = sb.entries()[2].body_lines(40, &theme);
        assert!(!sb.reveal(1, "消息 1".into()), "nothing was masked in it");
        assert!(!sb.reveal(9, "?".into()), "not held");
        assert!(sb.reveal(3, "电话 13812345678".into()));
        let entry = &sb.entries()[2];
        assert_eq!((entry.masking, entry.body.as_str()), (Masking::Revealed, "电话 13812345678"));
        assert_eq!(entry.shareable_body(), "电话 138****5678");
        assert_ne!(entry.body_lines(40, &theme), before, "laid out again");
        assert_eq!(sb.masked(), 0);
        assert_eq!(sb.entries()[0].masking, Masking::Clear);
    }

    #[test]
    fn scrolling_touches_only_what_it_passes_and_returns_to_follow() {
        let theme = Theme::default();
        let mut sb = filled(10_000);
        let visible = sb.visible(40, 10, &theme);
        assert_eq!(visible.last().unwrap().0, 9_999);
        assert_eq!(visible.iter().map(|p| p.2).sum::<usize>(), 10);
        // Only the bottom five messages (two rows each) were laid out.
        let laid_out = sb.entries().iter().filter(|e| e.wrapped.borrow().is_some()).count();
        assert_eq!(laid_out, 5);
        sb.scroll_up(4, 40, 10, &theme);
        assert_eq!(sb.scroll, ScrollPos::Anchor { index: 9_997, hidden: 0 });
        sb.scroll_down(4, 40, &theme);
        assert_eq!(sb.scroll, ScrollPos::Follow);
        sb.scroll_top(40, 10, &theme);
        let visible = sb.visible(40, 10, &theme);
        assert_eq!(visible.first().unwrap(), &(0, 0, 2));
        sb.scroll_up(100, 40, 10, &theme);
        assert_eq!(sb.visible(40, 10, &theme).first().unwrap(), &(0, 0, 2), "never past the top");
    }
}
