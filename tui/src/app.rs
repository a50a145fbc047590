//! The workstation's state and the one place it changes: [`App::update`] takes an
//! [`Action`] (a key, a frame from the relay, a connection event, time passing) and
//! returns the [`Effect`]s to perform (frames to send, notifications, quitting).
//!
//! No terminal, no network, no clock: time arrives with [`Action::Tick`], frames with
//! [`Action::Server`]. Views read the state through `&App`.

use std::cell::Cell;
use std::collections::HashSet;

use kefu_proto::frame::{
    AgentView, Author, AuthorKind, BodyFormat, ClientFrame, CloseConversation, ConversationChange, ConversationState,
    ConversationView, ErrorFrame, MarkRead, Presence, ResolveConversation, ResumePoint, SendMessage, ServerFrame,
    Session, SetPresence, Typing,
};
use kefu_proto::limits::{MAX_BODY_BYTES, MAX_RESOLUTION_BYTES};
use kefu_proto::{ConversationId, ErrorCode, Seq, UnixMillis};
use ratatui_textarea::TextArea;

use crate::command::Command;
use crate::keymap::{KeyCode, KeyPress, Keymap, Lookup, Mode};
use crate::palette;
use crate::scrollback::{Delivery, Entry, Scrollback};
use crate::theme::Theme;

/// How long a customer's typing indicator lasts without a new `typing` frame.
const TYPING_SHOWN_MS: i64 = 6_000;
/// How often, at most, I re-announce that I am typing.
const TYPING_REPEAT_MS: i64 = 3_000;
/// After this long without an edit, I stop announcing that I am typing.
const TYPING_IDLE_MS: i64 = 5_000;
/// How long a status-line message stays.
const STATUS_MS: i64 = 6_000;
/// When a send was refused as `rate_limited` or `internal`, wait this long to retry.
const RETRY_MS: i64 = 2_000;

/// Something that happened, for [`App::update`].
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A key was pressed.
    Key(KeyPress),
    /// Text was pasted (bracketed paste), e.g. from an input method.
    Paste(String),
    /// Time passed; the current time.
    Tick(UnixMillis),
    /// The connection to the relay changed.
    Net(NetEvent),
    /// A frame from the relay.
    Server(ServerFrame),
    /// Run a command directly (the palette does this; tests too).
    Run(Command),
}

/// The worker's view of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// Dialling the relay (attempt 0 is the first).
    Connecting {
        /// How many attempts failed before this one.
        attempt: u32,
    },
    /// The WebSocket is open; the app answers with the hello.
    Opened,
    /// The connection ended or failed; the worker retries at `retry_at`.
    Lost {
        /// Why, for the status bar.
        reason: String,
        /// When the next attempt starts.
        retry_at: UnixMillis,
        /// How many attempts have failed in a row.
        attempt: u32,
    },
    /// The relay refused the token (expired, revoked): log in again. No more retries.
    LoggedOut(String),
}

/// What the app asks its shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Say hello on the new connection, resuming from these points.
    Hello(Vec<ResumePoint>),
    /// Send a frame to the relay.
    Frame(ClientFrame),
    /// Tell the agent, even if they look elsewhere (desktop notification or bell).
    Notify(Notice),
    /// Leave.
    Quit,
}

/// A notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The headline.
    pub title: String,
    /// The detail.
    pub body: String,
}

/// The connection as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Dialling.
    Connecting {
        /// Failed attempts before this one.
        attempt: u32,
    },
    /// Open, waiting for the welcome.
    Handshaking,
    /// Welcomed: live.
    Online,
    /// Lost; retrying at `retry_at`.
    Retrying {
        /// Why it was lost.
        reason: String,
        /// When the next attempt starts.
        retry_at: UnixMillis,
        /// Failed attempts in a row.
        attempt: u32,
    },
    /// The token was refused; `kefu login` is needed.
    LoggedOut(String),
}

/// What an overlay is showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// Every binding with its doc.
    Help {
        /// Rows scrolled.
        scroll: usize,
    },
    /// Find an action by name.
    Palette {
        /// What was typed.
        query: String,
        /// The highlighted match.
        selected: usize,
    },
    /// A question before acting on a conversation.
    Prompt {
        /// What is asked.
        kind: PromptKind,
        /// The answer typed so far.
        input: String,
    },
}

/// Questions the prompt asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// The resolution code for resolving this conversation.
    Resolve(ConversationId),
    /// Confirm closing this conversation for good.
    Close(ConversationId),
}

/// A status-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMessage {
    /// The text.
    pub text: String,
    /// Whether it reports a failure.
    pub is_error: bool,
    /// When it goes away.
    pub until: UnixMillis,
}

/// One conversation I hold.
#[derive(Debug)]
pub struct Conversation {
    /// As the relay last described it.
    pub view: ConversationView,
    /// Its messages.
    pub scrollback: Scrollback,
    /// How far I have read (messages after it from the customer are unread).
    pub read_seq: Seq,
    /// How far the customer has read.
    pub customer_read_seq: Seq,
    /// Until when the customer counts as typing.
    pub customer_typing_until: Option<UnixMillis>,
    /// The composer, one per conversation so drafts survive switching tabs.
    pub draft: TextArea<'static>,
    /// When I last told the relay I am typing here (None: I am not).
    typing_sent_at: Option<UnixMillis>,
    /// When I last edited the draft.
    last_edit_at: UnixMillis,
    /// `last_seq` when the conversation became known, to tell history from live messages.
    known_seq: Seq,
}

impl Conversation {
    fn new(view: ConversationView) -> Conversation {
        let known_seq = view.last_seq;
        Conversation {
            view,
            scrollback: Scrollback::default(),
            read_seq: 0,
            customer_read_seq: 0,
            customer_typing_until: None,
            draft: new_composer(),
            typing_sent_at: None,
            last_edit_at: 0,
            known_seq,
        }
    }

    /// The conversation's id.
    pub fn id(&self) -> ConversationId {
        self.view.id
    }

    /// The customer's display name.
    pub fn customer_name(&self) -> String {
        self.view.contact.name.clone().unwrap_or_else(|| format!("访客 #{}", self.view.contact.id))
    }

    /// The highest `seq` held: the resume point.
    pub fn last_seq(&self) -> Seq {
        self.scrollback.highest_seq()
    }

    /// Customer messages I have not read: those after my last reply and after `read_seq`.
    pub fn unread(&self) -> usize {
        self.scrollback
            .entries()
            .iter()
            .rev()
            .take_while(|e| e.author.kind != AuthorKind::Agent && e.seq.is_some_and(|s| s > self.read_seq))
            .filter(|e| e.from_customer())
            .count()
    }

    /// Since when the customer has waited for an answer (their first message after my
    /// last one), if they are waiting.
    pub fn waiting_since(&self) -> Option<UnixMillis> {
        if self.view.state != ConversationState::Assigned {
            return None;
        }
        self.scrollback
            .entries()
            .iter()
            .rev()
            // My unsent messages have not answered anyone yet.
            .take_while(|e| e.author.kind != AuthorKind::Agent || e.seq.is_none())
            .filter(|e| e.from_customer())
            .last()
            .map(|e| e.at)
    }

    /// Whether the customer is typing at `now`.
    pub fn customer_typing(&self, now: UnixMillis) -> bool {
        self.customer_typing_until.is_some_and(|until| until > now)
    }
}

fn new_composer() -> TextArea<'static> {
    let mut draft = TextArea::default();
    draft.set_placeholder_text("写回复… Write a reply (enter: send, alt-enter: new line)");
    draft.set_cursor_line_style(ratatui::style::Style::default());
    draft
}

/// Sizes the last drawing used, so scrolling knows a page and a line's width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrollArea {
    /// Columns of the scrollback.
    pub width: u16,
    /// Rows of the scrollback.
    pub height: u16,
}

/// The whole workstation state.
pub struct App {
    /// Key bindings in force.
    pub keymap: Keymap,
    /// Colours.
    pub theme: Theme,
    /// The current time, from the last tick.
    pub now: UnixMillis,
    /// Local time zone offset, for timestamps.
    pub utc_offset_secs: i32,
    /// Who I am, once welcomed.
    pub agent: Option<AgentView>,
    /// My presence as the relay holds it.
    pub presence: Presence,
    /// The connection.
    pub connection: Connection,
    /// The conversations I hold, in the order they came.
    pub conversations: Vec<Conversation>,
    /// The highlighted row of the conversation list.
    pub selected: usize,
    /// Conversations open as tabs, in tab order.
    pub tabs: Vec<ConversationId>,
    /// The tab shown.
    pub active_tab: usize,
    /// Normal or insert (overlays take over while open).
    pub mode: Mode,
    /// The open overlay, if any.
    pub overlay: Option<Overlay>,
    /// The status-line message, if any.
    pub status: Option<StatusMessage>,
    /// Send what I write as Markdown.
    pub markdown: bool,
    /// Keys of a sequence typed so far.
    pending_keys: Vec<KeyPress>,
    /// Unique prefix of my `client_msg_id`s (per run), so ids never repeat across runs.
    client_id_prefix: String,
    /// Counter of my messages in this run.
    next_msg: u64,
    /// The scrollback's size at the last drawing (set by the view).
    pub scroll_area: Cell<ScrollArea>,
}

impl App {
    /// A fresh app. `client_id_prefix` must differ between runs (e.g. random).
    pub fn new(keymap: Keymap, theme: Theme, client_id_prefix: String, now: UnixMillis) -> App {
        App {
            keymap,
            theme,
            now,
            utc_offset_secs: 0,
            agent: None,
            presence: Presence::Offline,
            connection: Connection::Connecting { attempt: 0 },
            conversations: Vec::new(),
            selected: 0,
            tabs: Vec::new(),
            active_tab: 0,
            mode: Mode::Normal,
            overlay: None,
            status: None,
            markdown: false,
            pending_keys: Vec::new(),
            client_id_prefix,
            next_msg: 0,
            scroll_area: Cell::new(ScrollArea { width: 80, height: 20 }),
        }
    }

    /// The mode the keyboard is in (overlays take over).
    pub fn input_mode(&self) -> Mode {
        if self.overlay.is_some() { Mode::Overlay } else { self.mode }
    }

    /// Keys of an unfinished sequence, for the status bar.
    pub fn pending_keys(&self) -> &[KeyPress] {
        &self.pending_keys
    }

    /// Conversations in state `assigned`: the load against `max_concurrent`.
    pub fn load(&self) -> usize {
        self.conversations.iter().filter(|c| c.view.state == ConversationState::Assigned).count()
    }

    /// The conversation with `id`.
    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.iter().find(|c| c.id() == id)
    }

    fn conversation_mut(&mut self, id: ConversationId) -> Option<&mut Conversation> {
        self.conversations.iter_mut().find(|c| c.id() == id)
    }

    /// The conversation of the active tab.
    pub fn active(&self) -> Option<&Conversation> {
        self.tabs.get(self.active_tab).and_then(|id| self.conversation(*id))
    }

    fn active_id(&self) -> Option<ConversationId> {
        self.tabs.get(self.active_tab).copied()
    }

    fn active_mut(&mut self) -> Option<&mut Conversation> {
        let id = self.active_id()?;
        self.conversation_mut(id)
    }

    /// Where to resume each conversation: the highest `seq` held.
    pub fn resume_points(&self) -> Vec<ResumePoint> {
        self.conversations.iter().map(|c| ResumePoint { conversation_id: c.id(), after_seq: c.last_seq() }).collect()
    }

    /// Whether frames can be sent now.
    pub fn is_online(&self) -> bool {
        self.connection == Connection::Online
    }

    /// Handles one action; returns what to do about it.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        let mut effects = Vec::new();
        match action {
            Action::Key(key) => self.on_key(key, &mut effects),
            Action::Paste(text) => self.on_paste(&text, &mut effects),
            Action::Tick(now) => self.on_tick(now, &mut effects),
            Action::Net(event) => self.on_net(event, &mut effects),
            Action::Server(frame) => self.on_frame(frame, &mut effects),
            Action::Run(command) => self.run(command, &mut effects),
        }
        // The status line always carries the latest notice, whatever else shows it.
        if let Some(Effect::Notify(notice)) = effects.iter().rev().find(|e| matches!(e, Effect::Notify(_))) {
            let text = format!("{}: {}", notice.title, notice.body);
            self.set_status(text, false);
        }
        effects
    }

    fn set_status(&mut self, text: impl Into<String>, is_error: bool) {
        self.status = Some(StatusMessage { text: text.into(), is_error, until: self.now + STATUS_MS });
    }

    // ---------------------------------------------------------------------------------
    // Keys
    // ---------------------------------------------------------------------------------

    fn on_key(&mut self, key: KeyPress, effects: &mut Vec<Effect>) {
        let mode = self.input_mode();
        self.pending_keys.push(key);
        match self.keymap.lookup(mode, &self.pending_keys) {
            Lookup::Pending => {}
            Lookup::Matched(command) => {
                self.pending_keys.clear();
                self.run(command, effects);
            }
            Lookup::NotFound => {
                self.pending_keys.clear();
                self.type_key(mode, key, effects);
            }
            Lookup::Cancelled(keys) => {
                self.pending_keys.clear();
                if mode == Mode::Normal {
                    self.set_status(
                        format!("{} is not bound; press ? for help", crate::keymap::format_sequence(&keys)),
                        false,
                    );
                } else {
                    for key in keys {
                        self.type_key(mode, key, effects);
                    }
                }
            }
        }
    }

    fn type_key(&mut self, mode: Mode, key: KeyPress, effects: &mut Vec<Effect>) {
        match mode {
            Mode::Insert => {
                let now = self.now;
                let Some(conversation) = self.active_mut() else { return };
                if conversation.draft.input(to_textarea_input(key)) {
                    conversation.last_edit_at = now;
                    self.after_edit(effects);
                }
            }
            Mode::Overlay => match &mut self.overlay {
                Some(Overlay::Palette { query: input, selected }) => {
                    let changed = edit_line(input, key);
                    *selected = if changed { 0 } else { *selected };
                }
                Some(Overlay::Prompt { input, .. }) => {
                    edit_line(input, key);
                }
                _ => {}
            },
            Mode::Normal => {
                self.set_status(format!("{key} is not bound; press ? for help"), false);
            }
        }
    }

    fn on_paste(&mut self, text: &str, effects: &mut Vec<Effect>) {
        match self.input_mode() {
            Mode::Overlay => {
                if let Some(Overlay::Palette { query: input, .. } | Overlay::Prompt { input, .. }) = &mut self.overlay {
                    input.extend(text.chars().filter(|c| !c.is_control()));
                }
            }
            Mode::Normal | Mode::Insert => {
                let now = self.now;
                let Some(conversation) = self.active_mut() else { return };
                conversation.draft.insert_str(text.replace("\r\n", "\n").replace('\r', "\n"));
                conversation.last_edit_at = now;
                self.mode = Mode::Insert;
                self.after_edit(effects);
            }
        }
    }

    /// Tells the customer I am typing (or stopped) after the draft changed.
    fn after_edit(&mut self, effects: &mut Vec<Effect>) {
        let now = self.now;
        let online = self.is_online();
        let Some(conversation) = self.active_mut() else { return };
        let empty = conversation.draft.is_empty();
        let id = conversation.id();
        if !empty && conversation.typing_sent_at.is_none_or(|t| now - t >= TYPING_REPEAT_MS) {
            conversation.typing_sent_at = Some(now);
            if online {
                effects.push(Effect::Frame(typing(id, true)));
            }
        } else if empty && conversation.typing_sent_at.take().is_some() && online {
            effects.push(Effect::Frame(typing(id, false)));
        }
    }

    // ---------------------------------------------------------------------------------
    // Commands
    // ---------------------------------------------------------------------------------

    fn run(&mut self, command: Command, effects: &mut Vec<Effect>) {
        use Command as C;
        match command {
            C::Quit => effects.push(Effect::Quit),
            C::Help => self.overlay = Some(Overlay::Help { scroll: 0 }),
            C::Palette => self.overlay = Some(Overlay::Palette { query: String::new(), selected: 0 }),
            C::Compose => {
                if self.active().is_some() {
                    self.mode = Mode::Insert;
                } else {
                    self.set_status("no conversation open: select one and open it first", false);
                }
            }
            C::NormalMode => self.mode = Mode::Normal,
            C::Send => self.send(effects),
            C::Newline => {
                if let Some(conversation) = self.active_mut() {
                    conversation.draft.insert_newline();
                }
            }
            C::ToggleMarkdown => {
                self.markdown = !self.markdown;
                let what = if self.markdown { "Markdown" } else { "plain text" };
                self.set_status(format!("messages are sent as {what}"), false);
            }
            C::NextConversation => {
                if !self.conversations.is_empty() {
                    self.selected = (self.selected + 1) % self.conversations.len();
                }
            }
            C::PrevConversation => {
                if !self.conversations.is_empty() {
                    self.selected = (self.selected + self.conversations.len() - 1) % self.conversations.len();
                }
            }
            C::OpenConversation => {
                if let Some(id) = self.conversations.get(self.selected).map(Conversation::id) {
                    self.open_tab(id, true, effects);
                }
            }
            C::NextTab if !self.tabs.is_empty() => {
                self.focus_tab((self.active_tab + 1) % self.tabs.len(), effects);
            }
            C::PrevTab if !self.tabs.is_empty() => {
                self.focus_tab((self.active_tab + self.tabs.len() - 1) % self.tabs.len(), effects);
            }
            C::NextTab | C::PrevTab => {}
            C::Tab1 | C::Tab2 | C::Tab3 | C::Tab4 | C::Tab5 | C::Tab6 | C::Tab7 | C::Tab8 | C::Tab9 => {
                let n = Command::ALL.iter().position(|c| *c == command).unwrap_or(0)
                    - Command::ALL.iter().position(|c| *c == C::Tab1).unwrap_or(0);
                if n < self.tabs.len() {
                    self.focus_tab(n, effects);
                } else {
                    self.set_status(format!("there is no tab {}", n + 1), false);
                }
            }
            C::CloseTab => {
                if self.active_tab < self.tabs.len() {
                    self.tabs.remove(self.active_tab);
                    self.mode = Mode::Normal;
                    self.focus_tab(self.active_tab.min(self.tabs.len().saturating_sub(1)), effects);
                }
            }
            C::ScrollUp => self.scroll(|sb, w, h, t| sb.scroll_up(1, w, h, t)),
            C::ScrollDown => self.scroll(|sb, w, _, t| sb.scroll_down(1, w, t)),
            C::PageUp if matches!(self.overlay, Some(Overlay::Help { .. })) => self.help_scroll(-10),
            C::PageDown if matches!(self.overlay, Some(Overlay::Help { .. })) => self.help_scroll(10),
            C::PageUp => self.scroll(|sb, w, h, t| sb.scroll_up(h.saturating_sub(2).max(1), w, h, t)),
            C::PageDown => self.scroll(|sb, w, h, t| sb.scroll_down(h.saturating_sub(2).max(1), w, t)),
            C::ScrollTop => self.scroll(|sb, w, h, t| sb.scroll_top(w, h, t)),
            C::ScrollBottom => {
                if let Some(c) = self.active_mut() {
                    c.scrollback.scroll = crate::scrollback::ScrollPos::Follow;
                }
            }
            C::TogglePresence => {
                if !self.is_online() {
                    self.set_status("not connected: presence changes when the relay is back", true);
                } else {
                    let status = if self.presence == Presence::Online { Presence::Away } else { Presence::Online };
                    effects.push(Effect::Frame(ClientFrame::Presence(SetPresence { status })));
                }
            }
            C::Resolve => match self.active() {
                Some(c) if c.view.state == ConversationState::Assigned => {
                    let kind = PromptKind::Resolve(c.id());
                    self.overlay = Some(Overlay::Prompt { kind, input: "answered".into() });
                }
                Some(_) => self.set_status("only an assigned conversation can be resolved", false),
                None => self.set_status("no conversation open", false),
            },
            C::CloseConversation => match self.active() {
                Some(c) => {
                    let kind = PromptKind::Close(c.id());
                    self.overlay = Some(Overlay::Prompt { kind, input: String::new() });
                }
                None => self.set_status("no conversation open", false),
            },
            C::SelectNext => self.palette_move(1),
            C::SelectPrev => self.palette_move(-1),
            C::Accept => self.accept(effects),
            C::Cancel => self.overlay = None,
        }
    }

    fn help_scroll(&mut self, delta: isize) {
        if let Some(Overlay::Help { scroll }) = &mut self.overlay {
            *scroll = scroll.saturating_add_signed(delta);
        }
    }

    fn scroll(&mut self, f: impl FnOnce(&mut Scrollback, u16, usize, &Theme)) {
        if matches!(self.overlay, Some(Overlay::Help { .. })) {
            return;
        }
        let area = self.scroll_area.get();
        let theme = self.theme;
        if let Some(c) = self.active_mut() {
            f(&mut c.scrollback, area.width, area.height as usize, &theme);
        }
    }

    fn palette_move(&mut self, delta: isize) {
        match &mut self.overlay {
            Some(Overlay::Palette { query, selected }) => {
                let count = palette::matches(&self.keymap, query).len();
                if count > 0 {
                    *selected = (*selected as isize + delta).rem_euclid(count as isize) as usize;
                }
            }
            Some(Overlay::Help { scroll }) => *scroll = scroll.saturating_add_signed(delta),
            _ => {}
        }
    }

    fn accept(&mut self, effects: &mut Vec<Effect>) {
        match self.overlay.take() {
            Some(Overlay::Palette { query, selected }) => {
                if let Some(command) = palette::matches(&self.keymap, &query).get(selected).map(|m| m.command) {
                    self.run(command, effects);
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::Resolve(id), input }) => {
                let code = input.trim().to_string();
                if code.len() > MAX_RESOLUTION_BYTES {
                    self.set_status(format!("a resolution code has at most {MAX_RESOLUTION_BYTES} bytes"), true);
                    self.overlay = Some(Overlay::Prompt { kind: PromptKind::Resolve(id), input });
                } else if !self.is_online() {
                    self.set_status("not connected: resolve again when the relay is back", true);
                } else {
                    let resolution = (!code.is_empty()).then_some(code);
                    effects.push(Effect::Frame(ClientFrame::Resolve(ResolveConversation {
                        conversation_id: id,
                        resolution,
                    })));
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::Close(id), .. }) => {
                if self.is_online() {
                    effects.push(Effect::Frame(ClientFrame::Close(CloseConversation {
                        conversation_id: id,
                        resolution: None,
                    })));
                } else {
                    self.set_status("not connected: close again when the relay is back", true);
                }
            }
            Some(Overlay::Help { .. }) | None => {}
        }
    }

    fn send(&mut self, effects: &mut Vec<Effect>) {
        let online = self.is_online();
        let now = self.now;
        let format = if self.markdown { BodyFormat::Markdown } else { BodyFormat::Text };
        let me = self.me();
        let Some(id) = self.active_id() else { return };
        let client_msg_id = format!("{}-{}", self.client_id_prefix, self.next_msg + 1);
        let Some(conversation) = self.conversation_mut(id) else { return };
        let body = conversation.draft.lines().join("\n");
        if body.trim().is_empty() {
            return;
        }
        if body.len() > MAX_BODY_BYTES {
            let len = body.len();
            self.set_status(format!("the message is {len} bytes; the limit is {MAX_BODY_BYTES}"), true);
            return;
        }
        if conversation.view.state == ConversationState::Closed {
            self.set_status("the conversation is closed", true);
            return;
        }
        conversation.draft = new_composer();
        let mut entry = Entry::outgoing(me, body.clone(), format, now, client_msg_id.clone());
        if online {
            entry.delivery = Delivery::Sending;
            effects.push(Effect::Frame(ClientFrame::Send(SendMessage {
                client_msg_id,
                conversation_id: Some(id),
                body,
                format,
                internal: false,
                attachments: Vec::new(),
            })));
            if conversation.typing_sent_at.take().is_some() {
                effects.push(Effect::Frame(typing(id, false)));
            }
        } else {
            conversation.typing_sent_at = None;
        }
        conversation.scrollback.push_outgoing(entry);
        conversation.scrollback.scroll = crate::scrollback::ScrollPos::Follow;
        self.next_msg += 1;
        if !online {
            self.set_status("not connected: the message is queued and goes out when the relay is back", false);
        }
    }

    fn me(&self) -> Author {
        match &self.agent {
            Some(agent) => Author { kind: AuthorKind::Agent, id: Some(agent.id.0), name: Some(agent.name.clone()) },
            None => Author { kind: AuthorKind::Agent, id: None, name: None },
        }
    }

    fn open_tab(&mut self, id: ConversationId, focus: bool, effects: &mut Vec<Effect>) {
        let index = match self.tabs.iter().position(|t| *t == id) {
            Some(i) => i,
            None => {
                self.tabs.push(id);
                self.tabs.len() - 1
            }
        };
        if focus || self.tabs.len() == 1 {
            self.focus_tab(index, effects);
        }
    }

    fn focus_tab(&mut self, index: usize, effects: &mut Vec<Effect>) {
        self.active_tab = index;
        if let Some(id) = self.active_id()
            && let Some(pos) = self.conversations.iter().position(|c| c.id() == id)
        {
            self.selected = pos;
        }
        self.mark_active_read(effects);
    }

    /// The active conversation is being looked at: everything in it is read.
    fn mark_active_read(&mut self, effects: &mut Vec<Effect>) {
        let online = self.is_online();
        let Some(conversation) = self.active_mut() else { return };
        let last = conversation.last_seq();
        if last > conversation.read_seq {
            conversation.read_seq = last;
            if online {
                effects.push(Effect::Frame(ClientFrame::Read(MarkRead {
                    conversation_id: Some(conversation.id()),
                    seq: last,
                })));
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Time
    // ---------------------------------------------------------------------------------

    fn on_tick(&mut self, now: UnixMillis, effects: &mut Vec<Effect>) {
        self.now = now;
        if self.status.as_ref().is_some_and(|s| s.until <= now) {
            self.status = None;
        }
        let online = self.is_online();
        for conversation in &mut self.conversations {
            if conversation.customer_typing_until.is_some_and(|until| until <= now) {
                conversation.customer_typing_until = None;
            }
            if conversation.typing_sent_at.is_some() && now - conversation.last_edit_at >= TYPING_IDLE_MS {
                conversation.typing_sent_at = None;
                if online {
                    effects.push(Effect::Frame(typing(conversation.id(), false)));
                }
            }
            if online {
                let id = conversation.id();
                for entry in conversation.scrollback.outgoing_mut() {
                    if entry.delivery == Delivery::Queued && entry.retry_at.is_some_and(|at| at <= now) {
                        entry.retry_at = None;
                        entry.delivery = Delivery::Sending;
                        effects.push(Effect::Frame(send_frame(id, entry)));
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Connection
    // ---------------------------------------------------------------------------------

    fn on_net(&mut self, event: NetEvent, effects: &mut Vec<Effect>) {
        match event {
            NetEvent::Connecting { attempt } => self.connection = Connection::Connecting { attempt },
            NetEvent::Opened => {
                self.connection = Connection::Handshaking;
                effects.push(Effect::Hello(self.resume_points()));
            }
            NetEvent::Lost { reason, retry_at, attempt } => {
                self.connection = Connection::Retrying { reason, retry_at, attempt };
                self.presence = Presence::Offline;
                // Whatever was in flight is unacknowledged: it goes again, with the same id.
                for conversation in &mut self.conversations {
                    conversation.typing_sent_at = None;
                    conversation.customer_typing_until = None;
                    for entry in conversation.scrollback.outgoing_mut() {
                        if entry.delivery == Delivery::Sending {
                            entry.delivery = Delivery::Queued;
                        }
                    }
                }
            }
            NetEvent::LoggedOut(reason) => {
                self.connection = Connection::LoggedOut(reason);
                self.presence = Presence::Offline;
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Frames
    // ---------------------------------------------------------------------------------

    fn on_frame(&mut self, frame: ServerFrame, effects: &mut Vec<Effect>) {
        match frame {
            ServerFrame::Welcome(welcome) => {
                let Session::Agent { agent, presence, conversations } = welcome.session else {
                    self.connection = Connection::LoggedOut("the relay took this client for a customer".into());
                    return;
                };
                self.agent = Some(agent);
                self.presence = presence;
                self.connection = Connection::Online;
                self.on_welcome(conversations, effects);
            }
            ServerFrame::Message(m) => {
                let active = self.active_id();
                let Some(conversation) = self.conversation_mut(m.conversation_id) else {
                    tracing::warn!(conversation = %m.conversation_id, seq = m.seq, "message for a conversation not held");
                    return;
                };
                let live = m.seq > conversation.known_seq;
                let from_customer = m.author.kind == AuthorKind::Customer;
                let preview = m.body.chars().take(80).collect::<String>();
                let name = conversation.customer_name();
                let entry = Entry::received(m.seq, m.author, m.body, m.format, m.at);
                if !conversation.scrollback.insert_stored(entry) {
                    return; // already held: resumed or delivered twice
                }
                if from_customer {
                    conversation.customer_typing_until = None;
                }
                if active == Some(m.conversation_id) {
                    self.mark_active_read(effects);
                } else if live && from_customer {
                    effects.push(Effect::Notify(Notice { title: format!("{name} 发来消息"), body: preview }));
                }
            }
            ServerFrame::Ack(ack) => {
                if let Some(conversation) = self.conversation_mut(ack.conversation_id)
                    && conversation.scrollback.acknowledge(&ack.client_msg_id, ack.seq, ack.at)
                {
                    return;
                }
                // The original conversation may differ (a duplicate from an earlier one).
                for conversation in &mut self.conversations {
                    if let Some(entry) = conversation.scrollback.find_mine_mut(&ack.client_msg_id)
                        && entry.seq.is_none()
                    {
                        entry.delivery = Delivery::Acked;
                    }
                }
            }
            ServerFrame::Error(error) => self.on_error(error),
            ServerFrame::Conversation(change) => self.on_conversation(change.change, change.conversation, effects),
            ServerFrame::Typing(t) => {
                let now = self.now;
                if t.author == AuthorKind::Customer
                    && let Some(conversation) = self.conversation_mut(t.conversation_id)
                {
                    conversation.customer_typing_until = t.active.then_some(now + TYPING_SHOWN_MS);
                }
            }
            ServerFrame::Read(read) => {
                if read.reader == AuthorKind::Customer
                    && let Some(conversation) = self.conversation_mut(read.conversation_id)
                {
                    conversation.customer_read_seq = conversation.customer_read_seq.max(read.seq);
                }
            }
            ServerFrame::Presence(p) => {
                self.presence = p.status;
                let what = match p.status {
                    Presence::Online => "online: new conversations come to you",
                    Presence::Away => "away: no new conversations until you are back online",
                    Presence::Offline => "offline",
                };
                self.set_status(what, false);
            }
            ServerFrame::Pong(_) => {}
            // Frames a newer relay sends that this workstation does not show yet.
            #[allow(unreachable_patterns)]
            other => tracing::debug!(?other, "frame not shown by this workstation"),
        }
    }

    fn on_welcome(&mut self, views: Vec<ConversationView>, effects: &mut Vec<Effect>) {
        let held: HashSet<ConversationId> = views.iter().map(|v| v.id).collect();
        // Conversations that left me while I was away.
        let gone: Vec<ConversationId> =
            self.conversations.iter().map(Conversation::id).filter(|id| !held.contains(id)).collect();
        for id in gone {
            self.remove_conversation(id);
        }
        for view in views {
            match self.conversation_mut(view.id) {
                Some(conversation) => conversation.view = view,
                None => {
                    let id = view.id;
                    self.conversations.push(Conversation::new(view));
                    self.tabs.push(id);
                }
            }
        }
        if self.active_tab >= self.tabs.len() {
            self.active_tab = 0;
        }
        // Everything not acknowledged goes (again) with its own id: the relay stores it
        // once and acks a repeat as a duplicate.
        for conversation in &mut self.conversations {
            let id = conversation.id();
            for entry in conversation.scrollback.outgoing_mut() {
                if matches!(entry.delivery, Delivery::Queued | Delivery::Sending) {
                    entry.delivery = Delivery::Sending;
                    entry.retry_at = None;
                    effects.push(Effect::Frame(send_frame(id, entry)));
                }
            }
        }
        self.mark_active_read(effects);
    }

    fn on_conversation(&mut self, change: ConversationChange, view: ConversationView, effects: &mut Vec<Effect>) {
        let id = view.id;
        match change {
            ConversationChange::Assigned => {
                if let Some(conversation) = self.conversation_mut(id) {
                    conversation.view = view;
                    return;
                }
                let name = view.contact.name.clone().unwrap_or_else(|| format!("访客 #{}", view.contact.id));
                let channel = view.channel.as_str();
                let vip = if view.contact.vip { " VIP" } else { "" };
                self.conversations.push(Conversation::new(view));
                let was_empty = self.tabs.is_empty();
                self.open_tab(id, false, effects);
                if was_empty {
                    self.selected = self.conversations.len() - 1;
                }
                effects.push(Effect::Notify(Notice {
                    title: format!("新会话 New conversation{vip}"),
                    body: format!("{name} ({channel})"),
                }));
            }
            ConversationChange::Unassigned | ConversationChange::Closed => {
                let name = self.conversation(id).map(Conversation::customer_name).unwrap_or_default();
                self.remove_conversation(id);
                let what = if change == ConversationChange::Closed { "closed" } else { "moved away from you" };
                self.set_status(format!("conversation with {name} {what}"), false);
            }
            _ => {
                let resolved = view.state == ConversationState::Resolved;
                if let Some(conversation) = self.conversation_mut(id) {
                    let name = conversation.customer_name();
                    conversation.view = view;
                    if resolved {
                        self.set_status(format!("conversation with {name} resolved"), false);
                    }
                }
            }
        }
    }

    fn remove_conversation(&mut self, id: ConversationId) {
        let active = self.active_id();
        self.conversations.retain(|c| c.id() != id);
        self.tabs.retain(|t| *t != id);
        if active == Some(id) {
            self.mode = Mode::Normal;
        }
        self.active_tab = match active.and_then(|a| self.tabs.iter().position(|t| *t == a)) {
            Some(i) => i,
            None => self.active_tab.min(self.tabs.len().saturating_sub(1)),
        };
        self.selected = self.selected.min(self.conversations.len().saturating_sub(1));
    }

    fn on_error(&mut self, error: ErrorFrame) {
        let Some(id) = error.client_msg_id.as_deref() else {
            self.set_status(format!("relay: {} ({})", error.message, error.code), true);
            return;
        };
        let now = self.now;
        let retry = matches!(error.code, ErrorCode::RateLimited | ErrorCode::Internal);
        for conversation in &mut self.conversations {
            if let Some(entry) = conversation.scrollback.find_mine_mut(id) {
                if retry {
                    entry.delivery = Delivery::Queued;
                    entry.retry_at = Some(now + RETRY_MS);
                } else {
                    entry.delivery = Delivery::Failed(error.message.clone());
                }
            }
        }
        if !retry {
            self.set_status(format!("not sent: {}", error.message), true);
        }
    }
}

fn typing(id: ConversationId, active: bool) -> ClientFrame {
    ClientFrame::Typing(Typing { conversation_id: Some(id), active })
}

fn send_frame(id: ConversationId, entry: &Entry) -> ClientFrame {
    ClientFrame::Send(SendMessage {
        client_msg_id: entry.client_msg_id.clone().unwrap_or_default(),
        conversation_id: Some(id),
        body: entry.body.clone(),
        format: entry.format,
        internal: false,
        attachments: Vec::new(),
    })
}

/// Edits a one-line input with a key; returns whether it changed.
fn edit_line(input: &mut String, key: KeyPress) -> bool {
    match key.code {
        KeyCode::Char(c) if !key.ctrl && !key.alt => {
            input.push(c);
            true
        }
        KeyCode::Backspace => input.pop().is_some(),
        KeyCode::Char('u') if key.ctrl => {
            input.clear();
            true
        }
        _ => false,
    }
}

/// The composer's view of a key.
fn to_textarea_input(key: KeyPress) -> ratatui_textarea::Input {
    use ratatui_textarea::Key;
    let k = match key.code {
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::F(n) => Key::F(n),
    };
    ratatui_textarea::Input { key: k, ctrl: key.ctrl, alt: key.alt, shift: key.shift }
}

#[cfg(test)]
mod tests {
    use kefu_proto::frame::{Ack, ContactView, MessageFrame, PresenceFrame, ReadFrame, TypingFrame};
    use serde_json::json;

    use super::*;
    use crate::keymap::KeyPress;

    const NOW: UnixMillis = 1_763_712_000_000;

    // Frames are written as the wire has them (JSON), so fields a newer protocol adds
    // with defaults need no change here.
    fn server(frame: serde_json::Value) -> Action {
        Action::Server(serde_json::from_value(frame).expect("a valid server frame"))
    }

    fn view(id: i64, name: &str) -> ConversationView {
        serde_json::from_value(json!({
            "id": id, "state": "assigned", "channel": "web",
            "contact": {"id": 100 + id, "name": name, "vip": false},
            "assignee": {"id": 7, "name": "小王"},
            "last_seq": 0, "created_at": NOW, "queued_at": NOW,
        }))
        .expect("a valid conversation view")
    }

    fn welcome(views: Vec<ConversationView>) -> Action {
        server(json!({
            "type": "welcome", "protocol": 1,
            "session": {
                "kind": "agent",
                "agent": {"id": 7, "name": "小王", "email": "wang@shop.example", "role": "agent", "max_concurrent": 5},
                "presence": "online",
                "conversations": views,
            },
            "limits": {"max_frame_bytes": 65536, "max_body_bytes": 32768, "frames_per_second": 50, "frame_burst": 200},
        }))
    }

    fn changed(change: &str, conversation: ConversationView) -> Action {
        server(json!({"type": "conversation", "change": change, "conversation": conversation}))
    }

    fn customer_says(conversation: i64, seq: Seq, body: &str) -> Action {
        Action::Server(ServerFrame::Message(MessageFrame {
            conversation_id: ConversationId(conversation),
            seq,
            author: Author { kind: AuthorKind::Customer, id: Some(100 + conversation), name: None },
            body: body.into(),
            format: BodyFormat::Text,
            client_msg_id: None,
            at: NOW + seq as i64 * 1000,
            internal: false,
            attachments: Vec::new(),
        }))
    }

    fn ack(conversation: i64, client_msg_id: &str, seq: Seq, duplicate: bool) -> Action {
        Action::Server(ServerFrame::Ack(Ack {
            client_msg_id: client_msg_id.into(),
            conversation_id: ConversationId(conversation),
            seq,
            at: NOW + 5_000,
            duplicate,
        }))
    }

    /// An app welcomed with conversations 1 (李女士) and 2 (Tom).
    fn online() -> App {
        let mut app = App::new(Keymap::default_bindings(), Theme::default(), "k".into(), NOW);
        app.update(Action::Net(NetEvent::Opened));
        app.update(welcome(vec![view(1, "李女士"), view(2, "Tom")]));
        app
    }

    /// Feeds keys written as in key files, separated by spaces; `"text"` types text.
    fn keys(app: &mut App, script: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        for token in script.split(' ').filter(|t| !t.is_empty()) {
            if let Some(text) = token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                for c in text.chars() {
                    effects.extend(app.update(Action::Key(KeyPress::char(c))));
                }
            } else {
                effects.extend(app.update(Action::Key(KeyPress::parse(token).unwrap())));
            }
        }
        effects
    }

    fn frames(effects: &[Effect]) -> Vec<&ClientFrame> {
        effects.iter().filter_map(|e| if let Effect::Frame(f) = e { Some(f) } else { None }).collect()
    }

    fn sent_ids(effects: &[Effect]) -> Vec<String> {
        frames(effects)
            .into_iter()
            .filter_map(|f| if let ClientFrame::Send(s) = f { Some(s.client_msg_id.clone()) } else { None })
            .collect()
    }

    #[test]
    fn hello_resumes_from_the_last_seq_held() {
        let mut app = online();
        app.update(customer_says(1, 1, "你好"));
        app.update(customer_says(1, 2, "在吗"));
        let effects = app.update(Action::Net(NetEvent::Opened));
        assert_eq!(
            effects,
            vec![Effect::Hello(vec![
                ResumePoint { conversation_id: ConversationId(1), after_seq: 2 },
                ResumePoint { conversation_id: ConversationId(2), after_seq: 0 },
            ])]
        );
    }

    #[test]
    fn welcome_fills_the_list_tabs_and_load() {
        let app = online();
        assert_eq!(app.connection, Connection::Online);
        assert_eq!(app.tabs, vec![ConversationId(1), ConversationId(2)]);
        assert_eq!(app.active().map(Conversation::customer_name).as_deref(), Some("李女士"));
        assert_eq!(app.load(), 2);
        assert_eq!(app.presence, Presence::Online);
    }

    #[test]
    fn messages_are_held_once_in_seq_order() {
        let mut app = online();
        for seq in [1, 2, 2, 1, 3] {
            app.update(customer_says(2, seq, &format!("m{seq}")));
        }
        let bodies: Vec<&str> =
            app.conversation(ConversationId(2)).unwrap().scrollback.entries().iter().map(|e| e.body.as_str()).collect();
        assert_eq!(bodies, vec!["m1", "m2", "m3"]);
    }

    #[test]
    fn a_message_in_a_background_tab_is_unread_and_notified_only_when_live() {
        let mut app = online();
        // History caught up after the welcome (seq ≤ last_seq then) is not news.
        let mut with_history = view(3, "王先生");
        with_history.last_seq = 1;
        app.update(changed("assigned", with_history));
        let effects = app.update(customer_says(3, 1, "可以开发票吗？"));
        assert!(!effects.iter().any(|e| matches!(e, Effect::Notify(_))));

        let effects = app.update(customer_says(2, 1, "Can I return these shoes?"));
        assert!(matches!(&effects[..], [Effect::Notify(n)] if n.body.contains("shoes")));
        assert_eq!(app.conversation(ConversationId(2)).unwrap().unread(), 1);
        // In the active tab, a message is read at once.
        let effects = app.update(customer_says(1, 1, "我的快递到哪了？"));
        assert_eq!(
            frames(&effects),
            vec![&ClientFrame::Read(MarkRead { conversation_id: Some(ConversationId(1)), seq: 1 })]
        );
        // Switching to tab 2 by number reads it.
        let effects = keys(&mut app, "2");
        assert_eq!(app.active_tab, 1);
        assert_eq!(app.conversation(ConversationId(2)).unwrap().unread(), 0);
        assert_eq!(frames(&effects).len(), 1);
    }

    #[test]
    fn a_new_assignment_opens_a_tab_and_notifies() {
        let mut app = online();
        let vip = ConversationView {
            contact: ContactView { vip: true, ..view(9, "陈小姐").contact },
            ..view(9, "陈小姐")
        };
        let effects = app.update(changed("assigned", vip));
        assert!(matches!(&effects[..], [Effect::Notify(n)] if n.title.contains("VIP") && n.body.contains("陈小姐")));
        assert_eq!(app.tabs.last(), Some(&ConversationId(9)));
        assert_eq!(app.active_tab, 0, "a new conversation does not steal the focus");
        assert_eq!(app.load(), 3);
        assert!(app.status.as_ref().unwrap().text.contains("陈小姐"), "the status line shows the notice too");
    }

    #[test]
    fn compose_send_and_ack() {
        let mut app = online();
        let effects = keys(&mut app, "enter \"您好，正在查询\" enter");
        let sends = sent_ids(&effects);
        assert_eq!(sends, vec!["k-1"]);
        assert!(
            frames(&effects)
                .contains(&&ClientFrame::Typing(Typing { conversation_id: Some(ConversationId(1)), active: true }))
        );
        assert!(
            frames(&effects)
                .contains(&&ClientFrame::Typing(Typing { conversation_id: Some(ConversationId(1)), active: false }))
        );
        let conversation = app.conversation(ConversationId(1)).unwrap();
        assert!(conversation.draft.is_empty());
        assert_eq!(conversation.scrollback.entries()[0].delivery, Delivery::Sending);
        app.update(ack(1, "k-1", 1, false));
        let conversation = app.conversation(ConversationId(1)).unwrap();
        assert_eq!(conversation.scrollback.entries()[0].delivery, Delivery::Acked);
        assert_eq!(conversation.last_seq(), 1);
        app.update(Action::Server(ServerFrame::Read(ReadFrame {
            conversation_id: ConversationId(1),
            reader: AuthorKind::Customer,
            seq: 1,
        })));
        assert_eq!(app.conversation(ConversationId(1)).unwrap().customer_read_seq, 1);
    }

    #[test]
    fn multi_line_drafts_and_wide_characters() {
        let mut app = online();
        let effects = keys(&mut app, "i \"第一行\" A-enter \"second\" enter");
        let body = frames(&effects)
            .into_iter()
            .find_map(|f| if let ClientFrame::Send(s) = f { Some(s.body.clone()) } else { None });
        assert_eq!(body.as_deref(), Some("第一行\nsecond"));
    }

    #[test]
    fn sends_while_offline_are_queued_and_delivered_once_after_reconnect() {
        let mut app = online();
        keys(&mut app, "enter \"first\" enter");
        // Lost before the ack: the first is unacknowledged.
        app.update(Action::Net(NetEvent::Lost { reason: "closed 1001".into(), retry_at: NOW + 500, attempt: 1 }));
        let effects = keys(&mut app, "\"second\" enter");
        assert!(sent_ids(&effects).is_empty(), "nothing goes out while offline");
        let entries = app.conversation(ConversationId(1)).unwrap().scrollback.entries();
        assert!(entries.iter().all(|e| e.delivery == Delivery::Queued));

        let effects = app.update(Action::Net(NetEvent::Opened));
        assert!(matches!(&effects[..], [Effect::Hello(_)]));
        let effects = app.update(welcome(vec![view(1, "李女士"), view(2, "Tom")]));
        assert_eq!(sent_ids(&effects), vec!["k-1", "k-2"], "same ids, in order");
        // The relay had stored the first before the connection dropped.
        app.update(ack(1, "k-1", 1, true));
        app.update(ack(1, "k-2", 2, false));
        let conversation = app.conversation(ConversationId(1)).unwrap();
        let seqs: Vec<_> = conversation.scrollback.entries().iter().map(|e| (e.seq, e.delivery.clone())).collect();
        assert_eq!(seqs, vec![(Some(1), Delivery::Acked), (Some(2), Delivery::Acked)]);
        // A third welcome resends nothing.
        app.update(Action::Net(NetEvent::Opened));
        assert!(sent_ids(&app.update(welcome(vec![view(1, "李女士")]))).is_empty());
        assert_eq!(app.tabs, vec![ConversationId(1)], "a conversation gone while away is dropped");
    }

    #[test]
    fn refused_sends_are_retried_or_failed_by_code() {
        let mut app = online();
        keys(&mut app, "enter \"a\" enter \"b\" enter");
        let error = |id: &str, code| {
            Action::Server(ServerFrame::Error(ErrorFrame {
                code,
                message: "nope".into(),
                client_msg_id: Some(id.into()),
            }))
        };
        app.update(error("k-1", ErrorCode::RateLimited));
        app.update(error("k-2", ErrorCode::TooLarge));
        assert!(sent_ids(&app.update(Action::Tick(NOW + 1_000))).is_empty());
        assert_eq!(sent_ids(&app.update(Action::Tick(NOW + RETRY_MS))), vec!["k-1"]);
        let entries = app.conversation(ConversationId(1)).unwrap().scrollback.entries();
        assert_eq!(entries[1].delivery, Delivery::Failed("nope".into()));
    }

    #[test]
    fn the_customers_typing_shows_and_expires() {
        let mut app = online();
        app.update(Action::Server(ServerFrame::Typing(TypingFrame {
            conversation_id: ConversationId(1),
            author: AuthorKind::Customer,
            active: true,
        })));
        assert!(app.active().unwrap().customer_typing(NOW));
        app.update(Action::Tick(NOW + TYPING_SHOWN_MS));
        assert!(!app.active().unwrap().customer_typing(app.now));
    }

    #[test]
    fn my_typing_stops_after_idling() {
        let mut app = online();
        keys(&mut app, "i \"好\"");
        let effects = app.update(Action::Tick(NOW + TYPING_IDLE_MS));
        assert_eq!(frames(&effects), vec![&typing(ConversationId(1), false)]);
    }

    #[test]
    fn presence_toggles_through_the_relay() {
        let mut app = online();
        let effects = keys(&mut app, "p");
        assert_eq!(frames(&effects), vec![&ClientFrame::Presence(SetPresence { status: Presence::Away })]);
        assert_eq!(app.presence, Presence::Online, "the relay's answer changes it, not the key");
        app.update(Action::Server(ServerFrame::Presence(PresenceFrame { status: Presence::Away })));
        assert_eq!(app.presence, Presence::Away);
    }

    #[test]
    fn resolve_and_close_by_key() {
        let mut app = online();
        let effects = keys(&mut app, "r enter");
        assert_eq!(
            frames(&effects),
            vec![&ClientFrame::Resolve(ResolveConversation {
                conversation_id: ConversationId(1),
                resolution: Some("answered".into())
            })]
        );
        let effects = keys(&mut app, "r C-u \"refund_issued\" enter");
        assert!(
            matches!(frames(&effects)[..], [ClientFrame::Resolve(ResolveConversation { resolution: Some(r), .. })] if r == "refund_issued")
        );
        assert!(frames(&keys(&mut app, "C esc")).is_empty(), "esc keeps the conversation");
        let effects = keys(&mut app, "C enter");
        assert_eq!(
            frames(&effects),
            vec![&ClientFrame::Close(CloseConversation { conversation_id: ConversationId(1), resolution: None })]
        );
        app.update(changed(
            "closed",
            ConversationView { state: ConversationState::Closed, assignee: None, ..view(1, "李女士") },
        ));
        assert_eq!(app.tabs, vec![ConversationId(2)]);
        assert_eq!(app.load(), 1);
    }

    #[test]
    fn the_palette_finds_and_runs_an_action() {
        let mut app = online();
        let effects = keys(&mut app, ": \"away\" enter");
        assert_eq!(frames(&effects), vec![&ClientFrame::Presence(SetPresence { status: Presence::Away })]);
        assert_eq!(app.overlay, None);
        keys(&mut app, "C-p \"help\" enter");
        assert_eq!(app.overlay, Some(Overlay::Help { scroll: 0 }));
        keys(&mut app, "esc");
        assert_eq!(app.overlay, None);
    }

    #[test]
    fn tabs_switch_by_key_and_close() {
        let mut app = online();
        keys(&mut app, "tab");
        assert_eq!(app.active_tab, 1);
        keys(&mut app, "tab");
        assert_eq!(app.active_tab, 0);
        keys(&mut app, "A-2");
        assert_eq!(app.active_tab, 1);
        keys(&mut app, "9");
        assert!(app.status.as_ref().unwrap().text.contains("no tab 9"));
        keys(&mut app, "x");
        assert_eq!(app.tabs, vec![ConversationId(1)]);
        keys(&mut app, "j o");
        assert_eq!(app.tabs, vec![ConversationId(1), ConversationId(2)]);
        assert_eq!(app.active_tab, 1);
    }

    #[test]
    fn a_vim_sequence_waits_for_its_second_key() {
        let mut app = App::new(Keymap::shipped("vim").unwrap(), Theme::default(), "k".into(), NOW);
        app.update(welcome(vec![view(1, "李女士"), view(2, "Tom")]));
        keys(&mut app, "g");
        assert_eq!(app.pending_keys().len(), 1);
        keys(&mut app, "t");
        assert_eq!((app.active_tab, app.pending_keys().len()), (1, 0));
        assert_eq!(keys(&mut app, "Z Z"), vec![Effect::Quit]);
    }

    #[test]
    fn the_token_refused_means_logged_out() {
        let mut app = online();
        app.update(Action::Net(NetEvent::LoggedOut("logged out".into())));
        assert_eq!(app.connection, Connection::LoggedOut("logged out".into()));
        assert!(frames(&keys(&mut app, "p")).is_empty());
    }
}
