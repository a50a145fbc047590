//! The workstation's state and the one place it changes: [`App::update`] takes an
//! [`Action`] (a key, a frame from the relay, a connection event, time passing) and
//! returns the [`Effect`]s to perform (frames to send, notifications, quitting).
//!
//! No terminal, no network, no clock: time arrives with [`Action::Tick`], frames with
//! [`Action::Server`]. Views read the state through `&App`.
//!
//! Supervisors and admins also get the supervisor pane ([`SupervisorPane`]: the live
//! monitor, alerts, and actions on other agents' conversations), conversations they
//! observe read-only (tabs where the composer only whispers private notes), and the report
//! view ([`ReportBoard`]); admins the audit log ([`AuditLog`]).
//!
//! Where the workspace masks personal data for my role, messages come masked
//! (`138****5678`); revealing a conversation's (after a confirmation) asks the relay, which
//! records it in the audit log, and shows those messages as written, marked as revealed.
//! Messages that come later stay masked until revealed again.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};

use kefu_proto::api::{
    AgentPatch, CannedReply, CannedScope, ContactDetails, GroupView, NewCannedReply, NewTicket, RoutingHistory,
    TicketPatch,
};
use kefu_proto::frame::{
    AgentMonitor, AgentView, Author, AuthorKind, BodyFormat, ClientFrame, CloseConversation, ConversationChange,
    ConversationState, ConversationView, ErrorFrame, MarkRead, ObserveConversation, PickConversation, Presence,
    QueueListFrame, ResolveConversation, ResumePoint, Role, SendMessage, ServerFrame, Session, SetPresence, Supervise,
    TakeOverConversation, TicketChange, TicketPriority, TicketStatus, TransferConversation, TransferInfo,
    TransferTarget, Typing,
};
use kefu_proto::limits::{MAX_BODY_BYTES, MAX_NOTE_BYTES, MAX_RESOLUTION_BYTES};
use kefu_proto::{AgentId, ContactId, ConversationId, ErrorCode, Seq, UnixMillis};
use ratatui_textarea::TextArea;

use crate::api::{ApiAnswer, ApiFailure, ApiRequest, TicketScope};
use crate::article_editor::ArticleEditor;
use crate::audit::AuditLog;
use crate::canned;
use crate::command::Command;
use crate::keymap::{KeyCode, KeyPress, Keymap, Lookup, Mode};
use crate::knowledge::{Insert, KnowledgePane};
use crate::palette;
use crate::reports::ReportBoard;
use crate::scrollback::{Attachment, Delivery, Entry, Scrollback};
use crate::supervisor::{Section, SupervisorPane, alert_kind_label};
use crate::theme::Theme;
use crate::tickets::{self, TicketBoard};

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
/// An error frame this soon after a pick or transfer is taken to answer it (error frames
/// name no request).
const AWAIT_MS: i64 = 10_000;
/// Resolution codes offered in the resolve and close prompts (up/down cycle them); any
/// other code may be typed.
pub const RESOLUTION_CODES: &[&str] = &["answered", "refund_issued", "exchanged", "escalated", "no_response", "spam"];

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
    /// The relay's HTTP API answered a request of [`Effect::Api`].
    Api {
        /// What was asked.
        request: ApiRequest,
        /// The answer.
        result: Result<ApiAnswer, ApiFailure>,
    },
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
    /// Ask the relay's HTTP API; the answer comes back as [`Action::Api`].
    Api(ApiRequest),
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
    /// Find a canned reply to insert into the composer.
    Canned {
        /// What was typed.
        query: String,
        /// The highlighted match.
        selected: usize,
    },
    /// Find who to transfer a conversation to: an agent or a group.
    Transfer {
        /// The conversation to transfer.
        conversation: ConversationId,
        /// What was typed.
        query: String,
        /// The highlighted match.
        selected: usize,
    },
    /// Search the knowledge base and insert an answer (state in [`App::kb`], so it
    /// survives closing).
    Knowledge,
    /// Write or change a knowledge-base article (state in [`App::article_editor`]);
    /// closing it goes back to the knowledge base.
    ArticleEditor,
    /// Tickets: mine or all open, with details (state in [`App::tickets`]).
    Tickets,
    /// The service report: figures, charts, agents (state in [`App::report`]).
    Report,
    /// The audit log, newest first, filtered by kind (state in [`App::audit`]; admins).
    Audit,
}

/// Questions the prompt asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptKind {
    /// The resolution code for resolving this conversation.
    Resolve(ConversationId),
    /// Closing this conversation for good, with a resolution code.
    Close(ConversationId),
    /// The note for the receiver of a transfer.
    TransferNote(ConversationId, TransferTarget),
    /// The path of a file to send into the conversation.
    AttachFile(ConversationId),
    /// Shortcut and title for a new personal canned reply made of this conversation's
    /// draft.
    NewCanned(ConversationId),
    /// Confirm deleting one of my canned replies.
    DeleteCanned(i64),
    /// A ticket's new status (up/down walk the statuses).
    TicketStatus(i64),
    /// A note to add to a ticket.
    TicketNote(i64),
    /// Confirm deleting a knowledge-base article (named by its title).
    DeleteArticle {
        /// The article.
        id: i64,
        /// Its title, to name it in the question.
        title: String,
    },
    /// Confirm leaving the article editor with unsaved changes.
    DiscardArticle,
    /// The subject of a ticket made from this conversation (up/down change the priority).
    NewTicket {
        /// The conversation it comes from.
        conversation: ConversationId,
        /// How urgent.
        priority: TicketPriority,
    },
    /// Confirm revealing the personal data masked in this conversation (the relay records
    /// the reveal in the audit log).
    RevealMaskedData(ConversationId),
    /// An agent's new capacity (supervisors and admins, from the supervisor pane).
    AgentCapacity {
        /// The agent.
        agent: AgentId,
        /// Their name, to name them in the question.
        name: String,
    },
}

impl PromptKind {
    /// Prompts opened from the tickets view, which return to it when done.
    pub fn from_tickets(&self) -> bool {
        matches!(self, PromptKind::TicketStatus(_) | PromptKind::TicketNote(_))
    }

    /// Where esc goes back to: the view or editor the prompt was opened from.
    pub fn opened_from(&self) -> Option<Overlay> {
        match self {
            _ if self.from_tickets() => Some(Overlay::Tickets),
            PromptKind::DeleteArticle { .. } => Some(Overlay::Knowledge),
            PromptKind::DiscardArticle => Some(Overlay::ArticleEditor),
            _ => None,
        }
    }
}

/// Something fetched over HTTP for a panel.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched<T> {
    /// Asked, not answered yet.
    Loading,
    /// The answer.
    Ready(T),
    /// The request failed; why.
    Failed(String),
}

/// A transfer target as the picker lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetChoice {
    /// Where the conversation goes.
    pub target: TransferTarget,
    /// The agent's or group's name.
    pub label: String,
    /// E-mail and skills, or the group's slug.
    pub detail: String,
}

/// A pick or transfer sent and not yet answered: error frames carry no request id, so
/// one arriving soon after is reported as this one's refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Awaiting {
    /// Pick or transfer.
    what: AwaitKind,
    /// The conversation concerned.
    conversation: ConversationId,
    /// When it was sent.
    at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AwaitKind {
    Pick,
    /// To whom, for the status line.
    Transfer(String),
    /// A supervisor asked to follow the conversation read-only.
    Observe,
    /// A supervisor asked to take the conversation over.
    TakeOver,
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
    /// The composer writes private notes (agents only) instead of replies. Sticky per
    /// conversation: it never switches back to the customer by itself.
    pub note_mode: bool,
    /// Moved away from me by the relay or a supervisor (why): the tab stays, read-only,
    /// so the draft and context are not lost until I close it.
    pub detached: Option<String>,
    /// Not mine: a supervisor follows it read-only. The composer only whispers (private
    /// notes); closing the tab stops following it.
    pub observed: bool,
    /// A page of older messages is being fetched.
    pub history_loading: bool,
    /// Nothing older than what is held exists.
    pub history_complete: bool,
    /// A reveal of its personal data was asked for and not answered yet.
    pub revealing: bool,
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
            draft: new_composer(false),
            typing_sent_at: None,
            last_edit_at: 0,
            known_seq,
            note_mode: false,
            detached: None,
            observed: false,
            history_loading: false,
            history_complete: false,
            revealing: false,
        }
    }

    /// The conversation's id.
    pub fn id(&self) -> ConversationId {
        self.view.id
    }

    /// The customer's display name.
    pub fn customer_name(&self) -> String {
        customer_name(&self.view)
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
        if self.view.state != ConversationState::Assigned || self.detached.is_some() {
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

    /// Whether I can still write and act here (it is mine and not closed).
    pub fn is_mine(&self) -> bool {
        !self.observed && self.detached.is_none() && self.view.state != ConversationState::Closed
    }

    /// Whether the composer takes text here: mine, or observed (whispers only).
    pub fn is_writable(&self) -> bool {
        self.is_mine() || (self.observed && self.view.state != ConversationState::Closed)
    }

    /// The draft's text.
    pub fn draft_text(&self) -> String {
        self.draft.lines().join("\n")
    }

    fn set_note_mode(&mut self, on: bool) {
        self.note_mode = on;
        self.draft.set_placeholder_text(placeholder(on));
    }
}

/// The customer's display name in a conversation ("访客 #12" when they gave none).
pub fn customer_name(view: &ConversationView) -> String {
    contact_label(view.contact.name.as_deref(), view.contact.id)
}

/// A customer's name, or "访客 #12" (their contact id) when they gave none: the same
/// label wherever the workstation shows them.
pub fn contact_label(name: Option<&str>, contact: ContactId) -> String {
    name.map_or_else(|| format!("访客 #{contact}"), str::to_string)
}

fn placeholder(note: bool) -> &'static str {
    if note {
        "写内部备注… Private note for agents — the customer never sees it"
    } else {
        "写回复… Write a reply (enter: send, alt-enter: new line)"
    }
}

fn new_composer(note: bool) -> TextArea<'static> {
    let mut draft = TextArea::default();
    draft.set_placeholder_text(placeholder(note));
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
    /// The relay's base URL, for attachment links.
    pub relay_url: String,
    /// The queues I serve, by group slug (`None`: the any-agent queue), as the relay last
    /// listed them; empty queues are dropped.
    pub queues: BTreeMap<Option<String>, QueueListFrame>,
    /// The highlighted row of the queue pane.
    pub queue_selected: usize,
    /// Canned replies I may use (shared and mine), once fetched.
    pub canned: Option<Vec<CannedReply>>,
    /// The workspace's agents, once fetched (transfer targets).
    pub agents: Option<Vec<AgentView>>,
    /// The workspace's groups, once fetched (transfer targets).
    pub groups: Option<Vec<GroupView>>,
    /// The customer panel is shown.
    pub panel: bool,
    /// Customers as the panel shows them.
    pub contacts: HashMap<ContactId, Fetched<ContactDetails>>,
    /// Why each conversation was routed where it is.
    pub routing: HashMap<ConversationId, Fetched<RoutingHistory>>,
    /// A pick or transfer waiting for its answer.
    awaiting: Option<Awaiting>,
    /// Conversations I asked the relay to let me observe (from the pane, or again after a
    /// welcome) whose `observed` has not come yet. An `observed` for one neither asked for
    /// nor held is stale (its tab was closed meanwhile) and is stopped, not reopened; a
    /// `not_found` for one asked for again means it closed while I was away.
    observe_asked: HashSet<ConversationId>,
    /// The knowledge-base pane: query, results, previews.
    pub kb: KnowledgePane,
    /// The article being written or changed, while the editor is open (or a discard is
    /// being confirmed).
    pub article_editor: Option<ArticleEditor>,
    /// Tickets: the view's list and details, and mine for the status bar.
    pub tickets: TicketBoard,
    /// A ticket I asked to make from this conversation, not yet answered: its `created`
    /// frame needs no notification.
    creating_ticket: Option<ConversationId>,
    /// The supervisor pane (supervisors and admins): the monitor, the alerts feed, the
    /// selection.
    pub supervisor: SupervisorPane,
    /// The report view (supervisors and admins): its range and report.
    pub report: ReportBoard,
    /// The audit log (admins): the newest events, the filter, the highlight.
    pub audit: AuditLog,
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
            relay_url: String::new(),
            queues: BTreeMap::new(),
            queue_selected: 0,
            canned: None,
            agents: None,
            groups: None,
            panel: false,
            contacts: HashMap::new(),
            routing: HashMap::new(),
            awaiting: None,
            observe_asked: HashSet::new(),
            kb: KnowledgePane::default(),
            article_editor: None,
            tickets: TicketBoard::default(),
            creating_ticket: None,
            supervisor: SupervisorPane::default(),
            report: ReportBoard::default(),
            audit: AuditLog::default(),
        }
    }

    /// When the app wants an [`Action::Tick`] sooner than the regular one (a search
    /// waiting for the query to rest), if it does.
    pub fn wake_at(&self) -> Option<UnixMillis> {
        self.kb.wake_at()
    }

    /// The mode the keyboard is in (overlays take over; the article editor has its own;
    /// the supervisor pane has its own while it has the focus).
    pub fn input_mode(&self) -> Mode {
        match self.overlay {
            Some(Overlay::ArticleEditor) => Mode::Editor,
            Some(_) => Mode::Overlay,
            None if self.mode == Mode::Normal && self.supervisor.open && self.supervisor.focused => Mode::Supervisor,
            None => self.mode,
        }
    }

    /// Whether I may write the knowledge base (supervisors and admins), as the welcome
    /// said.
    pub fn can_write_kb(&self) -> bool {
        self.is_supervisor()
    }

    /// Whether I am a supervisor or an admin, as the welcome said: the supervisor pane,
    /// observing, taking over and the report are mine to use.
    pub fn is_supervisor(&self) -> bool {
        self.agent.as_ref().is_some_and(|a| matches!(a.role, Role::Supervisor | Role::Admin))
    }

    /// Whether I am an admin, as the welcome said: the audit log is mine to read.
    pub fn is_admin(&self) -> bool {
        self.agent.as_ref().is_some_and(|a| a.role == Role::Admin)
    }

    /// The customer of a conversation, by name, when known: one I have open, or one the
    /// monitor lists.
    pub fn customer_of(&self, id: ConversationId) -> Option<String> {
        match self.conversation(id) {
            Some(c) => Some(c.customer_name()),
            None => self.supervisor.customer_of(id),
        }
    }

    /// The customer of a conversation by name, else the conversation by number.
    pub fn customer_label(&self, id: ConversationId) -> String {
        self.customer_of(id).unwrap_or_else(|| format!("#{id}"))
    }

    /// Keys of an unfinished sequence, for the status bar.
    pub fn pending_keys(&self) -> &[KeyPress] {
        &self.pending_keys
    }

    /// Conversations in state `assigned` held by me: the load against `max_concurrent`.
    pub fn load(&self) -> usize {
        self.conversations.iter().filter(|c| c.view.state == ConversationState::Assigned && c.is_mine()).count()
    }

    /// The conversations waiting in the queues I serve, queue by queue, in line order:
    /// (group, position from 1, conversation).
    pub fn queued(&self) -> Vec<(Option<&str>, usize, &ConversationView)> {
        self.queues
            .iter()
            .flat_map(|(group, list)| {
                list.conversations.iter().enumerate().map(move |(i, view)| (group.as_deref(), i + 1, view))
            })
            .collect()
    }

    /// How many wait in the queues I serve (including those beyond the listed heads).
    pub fn queue_total(&self) -> u32 {
        self.queues.values().map(|q| q.total).sum()
    }

    /// The transfer targets matching `query`, best first: any agent, the groups, then
    /// the other agents (the relay refuses an agent who is not online with room).
    pub fn transfer_targets(&self, query: &str) -> Vec<TargetChoice> {
        let me = self.agent.as_ref().map(|a| a.id);
        let mut all = vec![TargetChoice {
            target: TransferTarget::Group { group: None },
            label: "任意坐席 any agent".into(),
            detail: "the any-agent queue".into(),
        }];
        for group in self.groups.iter().flatten() {
            all.push(TargetChoice {
                target: TransferTarget::Group { group: Some(group.slug.clone()) },
                label: format!("组 {}", group.name),
                detail: format!("group {}", group.slug),
            });
        }
        for agent in self.agents.iter().flatten().filter(|a| Some(a.id) != me) {
            let skills: Vec<&str> = agent.skills.iter().map(|s| s.group.as_str()).collect();
            all.push(TargetChoice {
                target: TransferTarget::Agent { agent_id: agent.id },
                label: agent.name.clone(),
                detail: format!("{} {}", agent.email, skills.join(",")).trim().to_string(),
            });
        }
        let order = palette::rank(query, all.iter().map(|c| format!("{} {}", c.label, c.detail)));
        order.into_iter().map(|i| all[i].clone()).collect()
    }

    /// Canned replies matching `query`, best first (none until fetched).
    pub fn canned_matches(&self, query: &str) -> Vec<&CannedReply> {
        let Some(list) = &self.canned else { return Vec::new() };
        canned::matches(list, query).into_iter().map(|i| &list[i]).collect()
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

    /// Where to resume each conversation I hold: the highest `seq` held. Observed ones
    /// are asked for again after the welcome.
    pub fn resume_points(&self) -> Vec<ResumePoint> {
        self.conversations
            .iter()
            .filter(|c| c.detached.is_none() && !c.observed)
            .map(|c| ResumePoint { conversation_id: c.id(), after_seq: c.last_seq() })
            .collect()
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
            Action::Api { request, result } => self.on_api(request, result, &mut effects),
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
                let Some(conversation) = self.active_mut().filter(|c| c.is_writable()) else { return };
                if conversation.draft.input(to_textarea_input(key)) {
                    conversation.last_edit_at = now;
                    self.after_edit(effects);
                }
            }
            Mode::Overlay => match &mut self.overlay {
                Some(
                    Overlay::Palette { query: input, selected }
                    | Overlay::Canned { query: input, selected }
                    | Overlay::Transfer { query: input, selected, .. },
                ) => {
                    let changed = edit_line(input, key);
                    *selected = if changed { 0 } else { *selected };
                }
                Some(Overlay::Prompt { input, .. }) => {
                    edit_line(input, key);
                }
                Some(Overlay::Knowledge) => {
                    let changed = edit_line(&mut self.kb.query, key);
                    if changed {
                        self.kb.edited(self.now);
                    }
                }
                Some(Overlay::Tickets) => {
                    if edit_line(&mut self.tickets.filter, key)
                        && let Some(request) = self.tickets.filtered()
                    {
                        effects.push(Effect::Api(request));
                    }
                }
                Some(Overlay::Audit) => {
                    if edit_line(&mut self.audit.filter, key)
                        && let Some(request) = self.audit.filtered()
                    {
                        effects.push(Effect::Api(request));
                    }
                }
                _ => {}
            },
            Mode::Editor => {
                if let Some(editor) = &mut self.article_editor {
                    editor.input(key);
                }
            }
            Mode::Normal | Mode::Supervisor => {
                self.set_status(format!("{key} is not bound; press ? for help"), false);
            }
        }
    }

    fn on_paste(&mut self, text: &str, effects: &mut Vec<Effect>) {
        match self.input_mode() {
            Mode::Editor => {
                if let Some(editor) = &mut self.article_editor {
                    editor.paste(text);
                }
            }
            Mode::Overlay => {
                if let Some(
                    Overlay::Palette { query: input, .. }
                    | Overlay::Prompt { input, .. }
                    | Overlay::Canned { query: input, .. }
                    | Overlay::Transfer { query: input, .. },
                ) = &mut self.overlay
                {
                    input.extend(text.chars().filter(|c| !c.is_control()));
                } else if let Some(Overlay::Knowledge) = &self.overlay {
                    self.kb.query.extend(text.chars().filter(|c| !c.is_control()));
                    self.kb.edited(self.now);
                } else if let Some(Overlay::Tickets) = &self.overlay {
                    self.tickets.filter.extend(text.chars().filter(|c| !c.is_control()));
                    if let Some(request) = self.tickets.filtered() {
                        effects.push(Effect::Api(request));
                    }
                } else if let Some(Overlay::Audit) = &self.overlay {
                    self.audit.filter.extend(text.chars().filter(|c| !c.is_control()));
                    if let Some(request) = self.audit.filtered() {
                        effects.push(Effect::Api(request));
                    }
                }
            }
            // A paste while the pane has the keyboard goes nowhere: the pane takes no text.
            Mode::Supervisor => {}
            Mode::Normal | Mode::Insert => {
                let now = self.now;
                let Some(conversation) = self.active_mut().filter(|c| c.is_writable()) else { return };
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
        let Some(conversation) = self.active_mut().filter(|c| c.is_mine()) else { return };
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
            C::Compose => match self.active() {
                Some(c) if c.is_writable() => {
                    self.mode = Mode::Insert;
                    self.supervisor.focused = false;
                }
                Some(c) => {
                    let why = c.detached.clone().unwrap_or_else(|| "it is closed".into());
                    self.set_status(format!("read-only: {why}; x closes the tab"), false);
                }
                None => self.set_status("no conversation open: select one and open it first", false),
            },
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
                if let Some(id) = self.active_id() {
                    if self.conversation(id).is_some_and(|c| c.observed) {
                        // Closing what I observe stops following it.
                        let name = self.customer_label(id);
                        self.remove_conversation(id);
                        if self.is_online() {
                            effects.push(Effect::Frame(observe(id, false)));
                        }
                        self.set_status(format!("不再旁听 stopped observing {name}"), false);
                    } else if self.conversation(id).is_some_and(|c| c.detached.is_some()) {
                        // Not mine any more: closing its tab lets it go.
                        self.remove_conversation(id);
                    } else {
                        self.tabs.remove(self.active_tab);
                    }
                    self.mode = Mode::Normal;
                    self.focus_tab(self.active_tab.min(self.tabs.len().saturating_sub(1)), effects);
                }
            }
            C::ScrollUp => {
                self.scroll(|sb, w, h, t| sb.scroll_up(1, w, h, t));
                self.history_at_top(effects);
            }
            C::ScrollDown => self.scroll(|sb, w, _, t| sb.scroll_down(1, w, t)),
            C::PageUp if matches!(self.overlay, Some(Overlay::Help { .. })) => self.help_scroll(-10),
            C::PageDown if matches!(self.overlay, Some(Overlay::Help { .. })) => self.help_scroll(10),
            C::PageUp if self.overlay == Some(Overlay::Knowledge) => self.kb.scroll_preview(-10),
            C::PageDown if self.overlay == Some(Overlay::Knowledge) => self.kb.scroll_preview(10),
            C::PageUp if self.overlay == Some(Overlay::Tickets) => self.tickets.scroll_details(-10),
            C::PageDown if self.overlay == Some(Overlay::Tickets) => self.tickets.scroll_details(10),
            C::PageUp if self.overlay == Some(Overlay::Report) => self.report.select(-10),
            C::PageDown if self.overlay == Some(Overlay::Report) => self.report.select(10),
            C::PageUp if self.overlay == Some(Overlay::Audit) => self.audit.select(-10),
            C::PageDown if self.overlay == Some(Overlay::Audit) => self.audit.select(10),
            C::PageUp => {
                self.scroll(|sb, w, h, t| sb.scroll_up(h.saturating_sub(2).max(1), w, h, t));
                self.history_at_top(effects);
            }
            C::PageDown => self.scroll(|sb, w, h, t| sb.scroll_down(h.saturating_sub(2).max(1), w, t)),
            C::ScrollTop => {
                self.scroll(|sb, w, h, t| sb.scroll_top(w, h, t));
                self.request_history(false, effects);
            }
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
                Some(c) if c.view.state == ConversationState::Assigned && c.is_mine() => {
                    let kind = PromptKind::Resolve(c.id());
                    self.overlay = Some(Overlay::Prompt { kind, input: RESOLUTION_CODES[0].into() });
                }
                Some(_) => self.set_status("only a conversation assigned to you can be resolved", false),
                None => self.set_status("no conversation open", false),
            },
            C::CloseConversation => match self.active() {
                Some(c) if c.is_mine() => {
                    let kind = PromptKind::Close(c.id());
                    self.overlay = Some(Overlay::Prompt { kind, input: RESOLUTION_CODES[0].into() });
                }
                Some(_) => self.set_status("this conversation is no longer yours to close", false),
                None => self.set_status("no conversation open", false),
            },
            // In the pane: reassign the selected conversation, whoever holds it.
            C::Transfer if self.input_mode() == Mode::Supervisor => match self.supervisor.target_conversation() {
                Some(conversation) => self.open_transfer(conversation, effects),
                None => self.set_status("select a conversation (or an alert about one) to reassign it", false),
            },
            C::Transfer => match self.active() {
                Some(c) if c.view.state == ConversationState::Assigned && c.is_mine() => {
                    let conversation = c.id();
                    self.open_transfer(conversation, effects);
                }
                // Supervisors reassign what they observe.
                Some(c) if c.observed && c.view.state != ConversationState::Closed => {
                    let conversation = c.id();
                    self.open_transfer(conversation, effects);
                }
                Some(_) => self.set_status("only a conversation assigned to you can be transferred", false),
                None => self.set_status("no conversation open", false),
            },
            C::ToggleNote => match self.active_mut() {
                Some(c) if c.observed => self.set_status(
                    "旁听 observing: you can only whisper private notes here; take it over to reply to the customer",
                    false,
                ),
                Some(c) if c.is_mine() => {
                    let on = !c.note_mode;
                    c.set_note_mode(on);
                    let what = if on {
                        "内部备注 private note: only agents see what you send now"
                    } else {
                        "回复 reply: what you send now goes to the customer"
                    };
                    self.set_status(what, false);
                }
                Some(_) => self.set_status("read-only conversation", false),
                None => self.set_status("no conversation open", false),
            },
            C::QueueNext | C::QueuePrev => {
                let count = self.queued().len();
                if count == 0 {
                    self.set_status("nobody is waiting in your queues", false);
                } else {
                    let delta = if command == C::QueueNext { 1 } else { count - 1 };
                    self.queue_selected = (self.queue_selected.min(count - 1) + delta) % count;
                }
            }
            C::Pick => self.pick(effects),
            C::Canned => match self.active() {
                Some(c) if c.is_writable() => {
                    self.overlay = Some(Overlay::Canned { query: String::new(), selected: 0 });
                    if self.canned.is_none() {
                        effects.push(Effect::Api(ApiRequest::Canned));
                    }
                }
                Some(_) => self.set_status("read-only conversation", false),
                None => self.set_status("no conversation open: canned replies go into a composer", false),
            },
            C::ExpandCanned => self.expand_canned(effects),
            C::NewCanned => match self.active() {
                Some(c) if !c.draft_text().trim().is_empty() && canned::shortcut_in(&c.draft_text()).is_none() => {
                    let kind = PromptKind::NewCanned(c.id());
                    self.overlay = Some(Overlay::Prompt { kind, input: String::new() });
                }
                _ => self.set_status("write the reply in the composer first, then save it as a canned reply", false),
            },
            C::DeleteCanned => {
                let Some(Overlay::Canned { query, selected }) = &self.overlay else { return };
                let chosen = self.canned_matches(query).get(*selected).map(|r| (r.id, r.scope, r.shortcut.clone()));
                match chosen {
                    Some((id, CannedScope::Personal, _)) => {
                        self.overlay =
                            Some(Overlay::Prompt { kind: PromptKind::DeleteCanned(id), input: String::new() });
                    }
                    Some((_, CannedScope::Workspace, shortcut)) => self.set_status(
                        format!("/{shortcut} is shared: supervisors manage shared replies (kefu-relay canned)"),
                        true,
                    ),
                    None => {}
                }
            }
            C::CustomerPanel => {
                self.panel = !self.panel;
                self.load_panel(true, effects);
            }
            C::LoadHistory => self.request_history(true, effects),
            C::RevealMaskedData => self.ask_to_reveal(),
            C::AttachFile => match self.active() {
                Some(c) if c.is_mine() => {
                    let kind = PromptKind::AttachFile(c.id());
                    self.overlay = Some(Overlay::Prompt { kind, input: String::new() });
                }
                Some(_) => self.set_status("read-only conversation", false),
                None => self.set_status("no conversation open", false),
            },
            C::Knowledge => {
                self.overlay = Some(Overlay::Knowledge);
                // Results already shown get their preview (it may have failed before).
                if let Some(request) = self.kb.article_wanted() {
                    effects.push(Effect::Api(request));
                }
            }
            C::KbInsertSnippet => self.insert_from_kb(Insert::Snippet, effects),
            C::KbInsertArticle => self.insert_from_kb(Insert::Article, effects),
            C::KbInsertLink => self.insert_from_kb(Insert::Link, effects),
            C::KbNewArticle => {
                if self.may_write_kb() {
                    self.article_editor = Some(ArticleEditor::new_article());
                    self.overlay = Some(Overlay::ArticleEditor);
                }
            }
            C::KbEditArticle => self.edit_article(effects),
            C::KbDeleteArticle => {
                if self.overlay != Some(Overlay::Knowledge) {
                    self.set_status("open the knowledge base (s) and select the article to delete", false);
                } else if self.may_write_kb() {
                    match self.kb.selected_hit() {
                        Some(hit) => {
                            let kind = PromptKind::DeleteArticle { id: hit.id, title: hit.title.clone() };
                            self.overlay = Some(Overlay::Prompt { kind, input: String::new() });
                        }
                        None => self.set_status("search for the article to delete and select it first", false),
                    }
                }
            }
            C::KbSaveArticle => self.save_article(effects),
            C::NextField | C::PrevField => {
                if let Some(editor) =
                    self.article_editor.as_mut().filter(|_| self.overlay == Some(Overlay::ArticleEditor))
                {
                    editor.move_focus(if command == C::NextField { 1 } else { -1 });
                }
            }
            C::Tickets => {
                self.overlay = Some(Overlay::Tickets);
                effects.push(Effect::Api(self.tickets.refresh()));
                self.ticket_details_wanted(effects);
            }
            C::TicketScope => {
                if self.overlay == Some(Overlay::Tickets) {
                    effects.push(Effect::Api(self.tickets.toggle_scope()));
                }
            }
            C::TicketStatus => match self.tickets_selected() {
                Some(ticket) => {
                    let next = tickets::cycle(&tickets::STATUSES, Some(ticket.status), 1);
                    let kind = PromptKind::TicketStatus(ticket.id);
                    self.overlay = Some(Overlay::Prompt { kind, input: next.as_str().into() });
                }
                None => self.set_status("select a ticket in the tickets view first", false),
            },
            C::TicketNote => match self.tickets_selected() {
                Some(ticket) => {
                    let kind = PromptKind::TicketNote(ticket.id);
                    self.overlay = Some(Overlay::Prompt { kind, input: String::new() });
                }
                None => self.set_status("select a ticket in the tickets view first", false),
            },
            C::NewTicket => match self.active() {
                Some(c) => {
                    let kind =
                        PromptKind::NewTicket { conversation: c.id(), priority: tickets::default_priority(&c.view) };
                    let subject = tickets::subject_from(c.scrollback.entries());
                    self.overlay = Some(Overlay::Prompt { kind, input: subject });
                }
                None => self.set_status("no conversation open: a ticket is made from the current conversation", false),
            },
            C::Supervisor => self.toggle_supervisor(effects),
            C::SupervisorFocus => {
                if self.supervisor.open {
                    self.supervisor.focused = !self.supervisor.focused;
                    self.mode = Mode::Normal;
                } else {
                    let key = self.keymap.keys_for(Mode::Normal, C::Supervisor).into_iter().next();
                    let hint = key.map(|k| format!(": {k} opens it")).unwrap_or_default();
                    self.set_status(format!("the supervisor pane is closed{hint}"), false);
                }
            }
            C::MonitorNextSection | C::MonitorPrevSection => {
                if self.supervisor.open {
                    self.supervisor.next_section(if command == C::MonitorNextSection { 1 } else { -1 });
                }
            }
            C::Observe => self.observe_selected(effects),
            C::TakeOver => self.take_over(effects),
            C::AgentCapacity => {
                if let Some(agent) = self.pane_agent() {
                    let kind = PromptKind::AgentCapacity { agent: agent.agent.id, name: agent.agent.name.clone() };
                    let input = agent.capacity.to_string();
                    self.overlay = Some(Overlay::Prompt { kind, input });
                }
            }
            C::AgentPresence => self.toggle_agent_presence(effects),
            C::Report => {
                if self.may_supervise("the report") {
                    self.overlay = Some(Overlay::Report);
                    effects.push(Effect::Api(self.report.refresh(self.now, self.utc_offset_secs)));
                }
            }
            C::ReportNextRange | C::ReportPrevRange => {
                if self.overlay == Some(Overlay::Report) {
                    let delta = if command == C::ReportNextRange { 1 } else { -1 };
                    effects.push(Effect::Api(self.report.shift(delta, self.now, self.utc_offset_secs)));
                }
            }
            C::ReportExport => {
                if self.overlay == Some(Overlay::Report)
                    && let Some(request) = self.report.export(self.now, self.utc_offset_secs)
                {
                    effects.push(Effect::Api(request));
                    self.set_status("导出中 exporting the report as CSV…", false);
                }
            }
            C::AuditLog => {
                if self.may_read_audit_log() {
                    self.overlay = Some(Overlay::Audit);
                    if let Some(request) = self.audit.refresh() {
                        effects.push(Effect::Api(request));
                    }
                    // Actors are named from the directory.
                    if self.agents.is_none() {
                        effects.push(Effect::Api(ApiRequest::Agents));
                    }
                }
            }
            C::AuditRefresh => {
                if self.overlay == Some(Overlay::Audit) {
                    match self.audit.refresh() {
                        Some(request) => effects.push(Effect::Api(request)),
                        None => self.set_status("加载中 the audit log is loading…", false),
                    }
                }
            }
            C::SelectNext | C::SelectPrev if self.input_mode() == Mode::Supervisor => {
                self.supervisor.select(if command == C::SelectNext { 1 } else { -1 });
            }
            C::SelectNext => self.palette_move(1, effects),
            C::SelectPrev => self.palette_move(-1, effects),
            C::Accept if self.input_mode() == Mode::Supervisor => self.accept_in_pane(effects),
            C::Accept => self.accept(effects),
            C::Cancel => self.cancel(),
        }
    }

    // ---------------------------------------------------------------------------------
    // Supervising
    // ---------------------------------------------------------------------------------

    /// Whether I may use supervisors' tools; if not, the status line says why (agents are
    /// told here rather than refused by the relay).
    fn may_supervise(&mut self, what: &str) -> bool {
        if self.is_supervisor() {
            return true;
        }
        let why = match &self.agent {
            Some(_) => format!("{what} is for supervisors and admins; you are signed in as an agent"),
            None => format!("not signed in yet: {what} waits for the relay's welcome"),
        };
        self.set_status(why, true);
        false
    }

    /// Whether I may read the audit log (admins); if not, the status line says why.
    fn may_read_audit_log(&mut self) -> bool {
        if self.is_admin() {
            return true;
        }
        let why = match &self.agent {
            Some(agent) => {
                let role = match agent.role {
                    Role::Supervisor => "a supervisor",
                    _ => "an agent",
                };
                format!("the audit log is for admins; you are signed in as {role}")
            }
            None => "not signed in yet: the audit log waits for the relay's welcome".to_string(),
        };
        self.set_status(why, true);
        false
    }

    /// Asks to confirm revealing the personal data masked in the active conversation (a
    /// reveal is recorded in the audit log: it should never happen by a stray key).
    fn ask_to_reveal(&mut self) {
        let Some(c) = self.active() else {
            return self
                .set_status("no conversation open: personal data is revealed one conversation at a time", false);
        };
        let (id, name) = (c.id(), c.customer_name());
        if c.revealing {
            return self.set_status(format!("显示中 revealing {name}'s personal data…"), false);
        }
        if c.scrollback.masked() == 0 {
            return self.set_status(format!("nothing is masked in {name}'s messages here: nothing to reveal"), false);
        }
        self.overlay = Some(Overlay::Prompt { kind: PromptKind::RevealMaskedData(id), input: String::new() });
    }

    /// Opens the pane (asking the relay for the monitor) or closes it.
    fn toggle_supervisor(&mut self, effects: &mut Vec<Effect>) {
        if self.supervisor.open {
            self.supervisor.close();
            if self.is_online() {
                effects.push(Effect::Frame(ClientFrame::Supervise(Supervise { active: false })));
            }
            self.set_status("监控已关闭 supervisor pane closed", false);
        } else if self.may_supervise("the supervisor pane") {
            self.supervisor.open();
            self.mode = Mode::Normal;
            if self.is_online() {
                effects.push(Effect::Frame(ClientFrame::Supervise(Supervise { active: true })));
            } else {
                self.set_status("not connected: the monitor starts when the relay is back", false);
            }
        }
    }

    /// The agent highlighted in the open pane; if none, the status line says so.
    fn pane_agent(&mut self) -> Option<AgentMonitor> {
        if !self.may_supervise("changing an agent") {
            return None;
        }
        let agent = self.supervisor.open.then(|| self.supervisor.selected_agent().cloned()).flatten();
        if agent.is_none() {
            self.set_status("select an agent in the supervisor pane first", false);
        }
        agent
    }

    /// Sets the highlighted agent away, or back online.
    fn toggle_agent_presence(&mut self, effects: &mut Vec<Effect>) {
        let Some(agent) = self.pane_agent() else { return };
        let name = agent.agent.name;
        let presence = match agent.presence {
            Presence::Online => Presence::Away,
            Presence::Away => Presence::Online,
            Presence::Offline => {
                return self
                    .set_status(format!("{name} is offline: presence is set only while they are connected"), false);
            }
        };
        let patch = AgentPatch { presence: Some(presence), ..AgentPatch::default() };
        effects.push(Effect::Api(ApiRequest::PatchAgent { id: agent.agent.id, patch }));
        self.set_status(format!("{name} → {}…", presence_word(presence)), false);
    }

    /// Opens the transfer picker for `conversation` (mine, or any, for supervisors).
    fn open_transfer(&mut self, conversation: ConversationId, effects: &mut Vec<Effect>) {
        self.overlay = Some(Overlay::Transfer { conversation, query: String::new(), selected: 0 });
        // Fresh lists each time: agents and groups change.
        effects.push(Effect::Api(ApiRequest::Agents));
        effects.push(Effect::Api(ApiRequest::Groups));
    }

    /// Enter in the pane: an agent opens their conversations; a conversation (an agent's or
    /// the bot's), or an alert about one, is observed.
    fn accept_in_pane(&mut self, effects: &mut Vec<Effect>) {
        match self.supervisor.section {
            Section::Queues => self.set_status("queues list no conversations: tab goes to the agents", false),
            Section::Agents => match self.supervisor.selected_agent() {
                Some(agent) if agent.conversations.is_empty() => {
                    let text = format!("{} holds no conversation", agent.agent.name);
                    self.set_status(text, false);
                }
                Some(_) => self.supervisor.section = Section::Conversations,
                None => {}
            },
            Section::Bot | Section::Conversations | Section::Alerts => self.observe_selected(effects),
        }
    }

    /// The conversation the pane's selection is about; if none, the status line says how
    /// to choose one.
    fn pane_conversation(&mut self, to: &str) -> Option<ConversationId> {
        let chosen = self.supervisor.open.then(|| self.supervisor.target_conversation()).flatten();
        if chosen.is_none() {
            let why = match self.supervisor.section {
                Section::Alerts if self.supervisor.selected_alert().is_some() => {
                    format!("this alert is about no single conversation: select a conversation to {to}")
                }
                _ => format!("select a conversation (or an alert about one) in the supervisor pane to {to}"),
            };
            self.set_status(why, false);
        }
        chosen
    }

    /// Follows the selected conversation read-only (it opens as a tab when the relay
    /// says `observed`).
    fn observe_selected(&mut self, effects: &mut Vec<Effect>) {
        if !self.may_supervise("observing") {
            return;
        }
        let Some(id) = self.pane_conversation("observe it") else { return };
        let name = self.customer_label(id);
        if let Some(c) = self.conversation(id).filter(|c| c.is_mine() || c.observed) {
            let what = if c.observed { "you observe it already" } else { "it is yours" };
            self.set_status(format!("{name}: {what}"), false);
            self.open_tab(id, true, effects);
            return;
        }
        if !self.is_online() {
            return self.set_status("not connected: observe it when the relay is back", true);
        }
        effects.push(Effect::Frame(observe(id, true)));
        self.observe_asked.insert(id);
        self.awaiting = Some(Awaiting { what: AwaitKind::Observe, conversation: id, at: self.now });
        self.set_status(format!("旁听 opening {name} read-only…"), false);
    }

    /// Takes over the pane's selected conversation, or (from my own work) the observed
    /// one in the active tab.
    fn take_over(&mut self, effects: &mut Vec<Effect>) {
        if !self.may_supervise("taking over") {
            return;
        }
        let id = if self.input_mode() == Mode::Supervisor {
            self.pane_conversation("take it over")
        } else {
            let observed = self.active().filter(|c| c.observed).map(Conversation::id);
            if observed.is_none() {
                self.set_status("observe a conversation, or select one in the supervisor pane, to take it over", false);
            }
            observed
        };
        let Some(id) = id else { return };
        let name = self.customer_label(id);
        if self.conversation(id).is_some_and(Conversation::is_mine) {
            return self.set_status(format!("{name} is yours already"), false);
        }
        if !self.is_online() {
            return self.set_status("not connected: take it over when the relay is back", true);
        }
        effects.push(Effect::Frame(ClientFrame::TakeOver(TakeOverConversation { conversation_id: id })));
        self.awaiting = Some(Awaiting { what: AwaitKind::TakeOver, conversation: id, at: self.now });
        self.set_status(format!("接管中 taking over {name}…"), false);
    }

    /// While the tickets view is open: fetch the highlighted ticket's details if missing.
    fn ticket_details_wanted(&mut self, effects: &mut Vec<Effect>) {
        if self.overlay == Some(Overlay::Tickets)
            && let Some(request) = self.tickets.details_wanted()
        {
            effects.push(Effect::Api(request));
        }
    }

    /// The ticket highlighted in the open tickets view.
    fn tickets_selected(&self) -> Option<kefu_proto::frame::TicketView> {
        if self.overlay != Some(Overlay::Tickets) {
            return None;
        }
        self.tickets.selected_ticket().cloned()
    }

    /// Esc: a prompt goes back to the view it was opened from; the article editor asks
    /// first when there are unsaved changes, then goes back to the knowledge base;
    /// anything else closes.
    fn cancel(&mut self) {
        self.overlay = match self.overlay.take() {
            Some(Overlay::ArticleEditor) if self.article_editor.as_ref().is_some_and(ArticleEditor::is_dirty) => {
                Some(Overlay::Prompt { kind: PromptKind::DiscardArticle, input: String::new() })
            }
            Some(Overlay::ArticleEditor) => {
                self.article_editor = None;
                Some(Overlay::Knowledge)
            }
            Some(Overlay::Prompt { kind, .. }) => kind.opened_from(),
            _ => None,
        };
    }

    /// Whether I may write the knowledge base; if not, the status line says so (agents
    /// are refused here rather than by the relay).
    fn may_write_kb(&mut self) -> bool {
        if self.can_write_kb() {
            return true;
        }
        let why = match &self.agent {
            Some(_) => {
                "只读 read-only: only supervisors and admins write the knowledge base; ask one to add or change an article"
            }
            None => "not signed in yet: writing the knowledge base waits for the relay's welcome",
        };
        self.set_status(why, true);
        false
    }

    /// Opens the editor on the highlighted article, once its text is here.
    fn edit_article(&mut self, effects: &mut Vec<Effect>) {
        if self.overlay != Some(Overlay::Knowledge) {
            self.set_status("open the knowledge base (s) and select the article to edit", false);
            return;
        }
        if !self.may_write_kb() {
            return;
        }
        if self.kb.selected_hit().is_none() {
            self.set_status("search for the article to edit and select it first", false);
            return;
        }
        match self.kb.selected_article() {
            Some(Fetched::Ready(article)) => {
                self.article_editor = Some(ArticleEditor::edit(article));
                self.overlay = Some(Overlay::ArticleEditor);
            }
            Some(Fetched::Failed(why)) => {
                let text = format!("cannot load the article to edit it: {why}");
                if let Some(id) = self.kb.selected_hit().map(|h| h.id) {
                    self.kb.articles.remove(&id);
                }
                if let Some(request) = self.kb.article_wanted() {
                    effects.push(Effect::Api(request));
                }
                self.set_status(text, true);
            }
            None | Some(Fetched::Loading) => {
                if let Some(request) = self.kb.article_wanted() {
                    effects.push(Effect::Api(request));
                }
                self.set_status("the article is loading; try again in a moment", false);
            }
        }
    }

    /// Sends the editor's article: new ones are created, others replaced.
    fn save_article(&mut self, effects: &mut Vec<Effect>) {
        if self.overlay != Some(Overlay::ArticleEditor) {
            return;
        }
        let Some(editor) = &mut self.article_editor else { return };
        if editor.saving {
            return self.set_status("保存中 saving…", false);
        }
        let article = match editor.to_new_article() {
            Ok(article) => article,
            Err(error) => {
                let text = format!("不能保存 cannot save: {}", error.message);
                editor.refused(error);
                return self.set_status(text, true);
            }
        };
        editor.saving = true;
        editor.error = None;
        let request = match &editor.editing {
            Some(editing) => ApiRequest::KbReplaceArticle { id: editing.id, article },
            None => ApiRequest::KbCreateArticle(article),
        };
        effects.push(Effect::Api(request));
        self.set_status("保存中 saving…", false);
    }

    /// Puts text from the knowledge base into the active composer and closes the pane.
    fn insert_from_kb(&mut self, what: Insert, effects: &mut Vec<Effect>) {
        if self.overlay != Some(Overlay::Knowledge) {
            return;
        }
        let text = match self.kb.text_to_insert(what) {
            Ok(text) => text,
            Err(why) => return self.set_status(why, false),
        };
        if !self.active().is_some_and(Conversation::is_writable) {
            self.set_status("no conversation of yours open: knowledge-base text goes into its composer", true);
            return;
        }
        self.overlay = None;
        let title = self.kb.selected_hit().map(|h| h.title.clone()).unwrap_or_default();
        self.insert_text(&text, effects);
        let hint = match what {
            Insert::Article if !self.markdown => " (Markdown: m sends it as Markdown)",
            _ => "",
        };
        let what = match what {
            Insert::Snippet => "摘要 snippet",
            Insert::Article => "全文 article",
            Insert::Link => "链接 link",
        };
        self.set_status(format!("已插入 inserted {what} of 《{title}》{hint}"), false);
    }

    /// Inserts `text` at the active composer's caret and starts writing.
    fn insert_text(&mut self, text: &str, effects: &mut Vec<Effect>) {
        let now = self.now;
        let Some(c) = self.active_mut().filter(|c| c.is_writable()) else { return };
        c.draft.insert_str(text);
        c.last_edit_at = now;
        self.mode = Mode::Insert;
        self.after_edit(effects);
    }

    fn pick(&mut self, effects: &mut Vec<Effect>) {
        let queued = self.queued();
        let Some((_, _, view)) = queued.get(self.queue_selected.min(queued.len().saturating_sub(1))) else {
            self.set_status("nobody is waiting in your queues", false);
            return;
        };
        let conversation = view.id;
        let name = customer_name(view);
        if !self.is_online() {
            self.set_status("not connected: take it again when the relay is back", true);
            return;
        }
        effects.push(Effect::Frame(ClientFrame::Pick(PickConversation { conversation_id: conversation })));
        self.awaiting = Some(Awaiting { what: AwaitKind::Pick, conversation, at: self.now });
        self.set_status(format!("认领 taking {name}…"), false);
    }

    /// Tab in the composer: a `/shortcut` expands (or opens the picker on it); anything
    /// else gets a tab.
    fn expand_canned(&mut self, effects: &mut Vec<Effect>) {
        let Some(draft) = self.active().filter(|c| c.is_writable()).map(Conversation::draft_text) else { return };
        match canned::shortcut_in(&draft) {
            Some(word) => {
                let word = word.to_string();
                if !self.use_shortcut(&word, effects) {
                    self.set_status(format!("no canned reply matches /{word}"), false);
                }
            }
            None => {
                if let Some(c) = self.active_mut() {
                    c.draft.insert_tab();
                }
            }
        }
    }

    /// Expands `/word` typed in the composer: an exact shortcut at once, else the picker
    /// on it. False when no canned reply matches at all.
    fn use_shortcut(&mut self, word: &str, effects: &mut Vec<Effect>) -> bool {
        let Some(list) = &self.canned else {
            effects.push(Effect::Api(ApiRequest::Canned));
            self.set_status("canned replies are loading; try again in a moment", false);
            return true;
        };
        if let Some(reply) = canned::exact(list, word).cloned() {
            self.insert_canned(&reply, effects);
            return true;
        }
        if canned::matches(list, word).is_empty() {
            return false;
        }
        self.overlay = Some(Overlay::Canned { query: word.to_string(), selected: 0 });
        true
    }

    /// Puts a canned reply, expanded, into the active composer (replacing a `/shortcut`
    /// draft, else at the caret).
    fn insert_canned(&mut self, reply: &CannedReply, effects: &mut Vec<Effect>) {
        let now = self.now;
        let agent_name = self.agent.as_ref().map(|a| a.name.clone());
        let Some(c) = self.active_mut().filter(|c| c.is_writable()) else { return };
        let text = canned::expand(&reply.body, c.view.contact.name.as_deref(), agent_name.as_deref());
        if canned::shortcut_in(&c.draft_text()).is_some() {
            c.draft = new_composer(c.note_mode);
        }
        c.draft.insert_str(text);
        c.last_edit_at = now;
        self.mode = Mode::Insert;
        self.after_edit(effects);
    }

    /// Shows the customer panel's data for the active conversation, fetching what is
    /// missing (everything again when `refresh`).
    fn load_panel(&mut self, refresh: bool, effects: &mut Vec<Effect>) {
        if !self.panel {
            return;
        }
        let Some((contact, conversation)) = self.active().map(|c| (c.view.contact.id, c.id())) else { return };
        if refresh || !self.contacts.contains_key(&contact) {
            self.contacts.entry(contact).or_insert(Fetched::Loading);
            effects.push(Effect::Api(ApiRequest::Contact(contact)));
        }
        if refresh || !self.routing.contains_key(&conversation) {
            self.routing.entry(conversation).or_insert(Fetched::Loading);
            effects.push(Effect::Api(ApiRequest::Routing(conversation)));
        }
    }

    /// After scrolling up: at the first message held, fetch what is before it.
    fn history_at_top(&mut self, effects: &mut Vec<Effect>) {
        let area = self.scroll_area.get();
        let at_top = self.active().is_some_and(|c| {
            c.scrollback.visible(area.width, area.height as usize, &self.theme).first().is_some_and(|p| p.0 == 0)
        });
        if at_top {
            self.request_history(false, effects);
        }
    }

    /// Fetches the page of messages before the first held in the active conversation, if
    /// any are missing; `explicit` when the agent asked (then the status line answers).
    fn request_history(&mut self, explicit: bool, effects: &mut Vec<Effect>) {
        let Some(id) = self.active_id() else { return };
        let Some(c) = self.conversation_mut(id) else { return };
        let before = match c.scrollback.lowest_seq() {
            _ if c.history_loading => {
                if explicit {
                    self.set_status("正在加载 loading older messages…", false);
                }
                return;
            }
            Some(lowest) if lowest > 1 && !c.history_complete => lowest,
            // Nothing held yet but the relay has messages: the catch-up is on its way,
            // unless the agent insists.
            None if c.view.last_seq > 0 && explicit => c.view.last_seq + 1,
            _ => {
                if c.scrollback.lowest_seq().is_some_and(|l| l <= 1) {
                    c.history_complete = true;
                }
                if explicit {
                    self.set_status("这就是全部历史 the whole history is here", false);
                }
                return;
            }
        };
        c.history_loading = true;
        effects.push(Effect::Api(ApiRequest::History { conversation: id, before }));
        if explicit {
            self.set_status("正在加载 loading older messages…", false);
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

    fn palette_move(&mut self, delta: isize, effects: &mut Vec<Effect>) {
        let wanted = match &self.overlay {
            Some(Overlay::Knowledge) => self.kb.select(delta),
            Some(Overlay::Tickets) => self.tickets.select(delta),
            Some(Overlay::Report) => {
                self.report.select(delta);
                None
            }
            Some(Overlay::Audit) => {
                self.audit.select(delta);
                None
            }
            _ => None,
        };
        if let Some(request) = wanted {
            effects.push(Effect::Api(request));
        }
        let count = match &self.overlay {
            Some(Overlay::Palette { query, .. }) => palette::matches(&self.keymap, query).len(),
            Some(Overlay::Canned { query, .. }) => self.canned_matches(query).len(),
            Some(Overlay::Transfer { query, .. }) => self.transfer_targets(query).len(),
            _ => 0,
        };
        let step = |selected: &mut usize| {
            if count > 0 {
                *selected = (*selected as isize + delta).rem_euclid(count as isize) as usize;
            }
        };
        match &mut self.overlay {
            Some(
                Overlay::Palette { selected, .. }
                | Overlay::Canned { selected, .. }
                | Overlay::Transfer { selected, .. },
            ) => step(selected),
            Some(Overlay::Help { scroll }) => *scroll = scroll.saturating_add_signed(delta),
            // Up and down offer the common resolution codes.
            Some(Overlay::Prompt { kind: PromptKind::Resolve(_) | PromptKind::Close(_), input }) => {
                let codes = RESOLUTION_CODES.len() as isize;
                let next = match RESOLUTION_CODES.iter().position(|c| c == input) {
                    Some(i) => (i as isize + delta).rem_euclid(codes),
                    None if delta > 0 => 0,
                    None => codes - 1,
                };
                *input = RESOLUTION_CODES[next as usize].to_string();
            }
            Some(Overlay::Prompt { kind: PromptKind::TicketStatus(_), input }) => {
                let current = input.trim().parse::<TicketStatus>().ok();
                *input = tickets::cycle(&tickets::STATUSES, current, delta).as_str().to_string();
            }
            Some(Overlay::Prompt { kind: PromptKind::NewTicket { priority, .. }, .. }) => {
                *priority = tickets::cycle(&tickets::PRIORITIES, Some(*priority), delta);
            }
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
            Some(Overlay::Canned { query, selected }) => {
                match self.canned_matches(&query).get(selected).map(|r| (*r).clone()) {
                    Some(reply) => self.insert_canned(&reply, effects),
                    None => {
                        if self.canned.is_none() {
                            self.set_status("canned replies are loading…", false);
                        }
                        self.overlay = Some(Overlay::Canned { query, selected });
                    }
                }
            }
            Some(Overlay::Transfer { conversation, query, selected }) => {
                match self.transfer_targets(&query).into_iter().nth(selected) {
                    Some(choice) => {
                        let kind = PromptKind::TransferNote(conversation, choice.target);
                        self.overlay = Some(Overlay::Prompt { kind, input: String::new() });
                    }
                    None => self.overlay = Some(Overlay::Transfer { conversation, query, selected }),
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::TransferNote(id, to), input }) => {
                let note = input.trim().to_string();
                if note.len() > MAX_NOTE_BYTES {
                    self.set_status(format!("a transfer note has at most {MAX_NOTE_BYTES} bytes"), true);
                    self.overlay = Some(Overlay::Prompt { kind: PromptKind::TransferNote(id, to), input });
                } else if !self.is_online() {
                    self.set_status("not connected: transfer again when the relay is back", true);
                } else {
                    let label = self.target_label(&to);
                    let mine = self.conversation(id).is_some_and(Conversation::is_mine);
                    let name = self.customer_label(id);
                    effects.push(Effect::Frame(ClientFrame::Transfer(TransferConversation {
                        conversation_id: id,
                        to,
                        note: (!note.is_empty()).then_some(note),
                    })));
                    self.awaiting =
                        Some(Awaiting { what: AwaitKind::Transfer(label.clone()), conversation: id, at: self.now });
                    if mine {
                        self.set_status(format!("转接中 transferring to {label}…"), false);
                    } else {
                        // Not mine: no frame comes back when it goes through; the monitor
                        // shows it with its new agent.
                        self.set_status(format!("转接 reassigning {name} to {label}…"), false);
                    }
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::AttachFile(id), input }) => {
                let path = input.trim().to_string();
                if path.is_empty() {
                    self.overlay = Some(Overlay::Prompt { kind: PromptKind::AttachFile(id), input });
                } else {
                    self.set_status(format!("上传中 uploading {path}…"), false);
                    effects.push(Effect::Api(ApiRequest::Upload { conversation: id, path }));
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::NewCanned(id), input }) => {
                let body = self.conversation(id).map(Conversation::draft_text).unwrap_or_default();
                match canned::parse_new(&input) {
                    Err(why) => {
                        self.set_status(why, true);
                        self.overlay = Some(Overlay::Prompt { kind: PromptKind::NewCanned(id), input });
                    }
                    Ok(_) if body.trim().is_empty() => self.set_status("the draft is empty", true),
                    Ok((shortcut, title)) => {
                        effects.push(Effect::Api(ApiRequest::CreateCanned(NewCannedReply {
                            shortcut,
                            title,
                            body,
                            scope: CannedScope::Personal,
                        })));
                    }
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::DeleteCanned(id), .. }) => {
                effects.push(Effect::Api(ApiRequest::DeleteCanned(id)));
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
            Some(Overlay::Prompt { kind: PromptKind::Close(id), input }) => {
                let code = input.trim().to_string();
                if code.len() > MAX_RESOLUTION_BYTES {
                    self.set_status(format!("a resolution code has at most {MAX_RESOLUTION_BYTES} bytes"), true);
                    self.overlay = Some(Overlay::Prompt { kind: PromptKind::Close(id), input });
                } else if self.is_online() {
                    effects.push(Effect::Frame(ClientFrame::Close(CloseConversation {
                        conversation_id: id,
                        resolution: (!code.is_empty()).then_some(code),
                    })));
                } else {
                    self.set_status("not connected: close again when the relay is back", true);
                }
            }
            Some(Overlay::Knowledge) => {
                self.overlay = Some(Overlay::Knowledge);
                self.insert_from_kb(Insert::Snippet, effects);
            }
            Some(Overlay::ArticleEditor) => self.overlay = Some(Overlay::ArticleEditor),
            Some(Overlay::Report) => self.overlay = Some(Overlay::Report),
            // Enter on an event about a conversation I hold goes to it.
            Some(Overlay::Audit) => {
                self.overlay = Some(Overlay::Audit);
                let Some(id) = self.audit.selected_event().and_then(|e| e.conversation_id) else { return };
                if self.conversation(id).is_some() {
                    self.overlay = None;
                    self.open_tab(id, true, effects);
                } else {
                    self.set_status(format!("conversation #{id} is not open here"), false);
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::RevealMaskedData(id), .. }) => {
                let Some(c) = self.conversation_mut(id) else { return };
                c.revealing = true;
                let name = c.customer_name();
                effects.push(Effect::Api(ApiRequest::Reveal(id)));
                self.set_status(format!("显示中 revealing {name}'s personal data…"), false);
            }
            Some(Overlay::Prompt { kind: PromptKind::AgentCapacity { agent, name }, input }) => {
                match input.trim().parse::<u32>() {
                    Ok(capacity) => {
                        let patch = AgentPatch { max_concurrent: Some(capacity), ..AgentPatch::default() };
                        effects.push(Effect::Api(ApiRequest::PatchAgent { id: agent, patch }));
                        self.set_status(format!("{name}: capacity → {capacity}…"), false);
                    }
                    Err(_) => {
                        self.set_status(format!("a capacity is a whole number of conversations, not '{input}'"), true);
                        self.overlay = Some(Overlay::Prompt { kind: PromptKind::AgentCapacity { agent, name }, input });
                    }
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::DeleteArticle { id, title }, .. }) => {
                effects.push(Effect::Api(ApiRequest::KbDeleteArticle(id)));
                self.set_status(format!("删除中 deleting 《{title}》…"), false);
                self.overlay = Some(Overlay::Knowledge);
            }
            Some(Overlay::Prompt { kind: PromptKind::DiscardArticle, .. }) => {
                self.article_editor = None;
                self.overlay = Some(Overlay::Knowledge);
                self.set_status("已放弃 changes discarded", false);
            }
            Some(Overlay::Tickets) => {
                self.overlay = Some(Overlay::Tickets);
                // A ticket of a conversation I hold: go to it; otherwise fetch it afresh.
                let Some(ticket) = self.tickets.selected_ticket().cloned() else { return };
                match ticket.conversation_id.filter(|id| self.conversation(*id).is_some()) {
                    Some(id) => {
                        self.overlay = None;
                        self.open_tab(id, true, effects);
                    }
                    None => effects.push(Effect::Api(self.tickets.reload_details(ticket.id))),
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::TicketStatus(id), input }) => {
                match input.trim().parse::<TicketStatus>() {
                    Ok(status) => {
                        let patch = TicketPatch { status: Some(status), ..TicketPatch::default() };
                        effects.push(Effect::Api(ApiRequest::PatchTicket { id, patch }));
                        self.set_status(format!("工单 ticket #{id} → {}…", status.as_str()), false);
                        self.overlay = Some(Overlay::Tickets);
                    }
                    Err(why) => {
                        self.set_status(why, true);
                        self.overlay = Some(Overlay::Prompt { kind: PromptKind::TicketStatus(id), input });
                    }
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::TicketNote(id), input }) => {
                let body = input.trim().to_string();
                if body.is_empty() || body.len() > MAX_BODY_BYTES {
                    self.set_status(format!("a note has 1 to {MAX_BODY_BYTES} bytes"), true);
                    self.overlay = Some(Overlay::Prompt { kind: PromptKind::TicketNote(id), input });
                } else {
                    effects.push(Effect::Api(ApiRequest::AddTicketNote { id, body }));
                    self.overlay = Some(Overlay::Tickets);
                }
            }
            Some(Overlay::Prompt { kind: PromptKind::NewTicket { conversation, priority }, input }) => {
                let subject = input.trim().to_string();
                let Some(c) = self.conversation(conversation) else { return };
                if subject.is_empty() || subject.chars().count() > tickets::MAX_SUBJECT_CHARS {
                    self.set_status(format!("a subject has 1 to {} characters", tickets::MAX_SUBJECT_CHARS), true);
                    self.overlay =
                        Some(Overlay::Prompt { kind: PromptKind::NewTicket { conversation, priority }, input });
                    return;
                }
                let description = tickets::description_from(&c.view, c.scrollback.entries());
                effects.push(Effect::Api(ApiRequest::CreateTicket(NewTicket {
                    subject,
                    description,
                    priority,
                    conversation_id: Some(conversation),
                    assignee_id: None,
                    group: None,
                })));
                self.creating_ticket = Some(conversation);
                self.set_status("创建工单 creating the ticket…", false);
            }
            Some(Overlay::Help { .. }) | None => {}
        }
    }

    /// Who a transfer target is, in words.
    pub fn target_label(&self, to: &TransferTarget) -> String {
        match to {
            TransferTarget::Agent { agent_id } => self
                .agents
                .iter()
                .flatten()
                .find(|a| a.id == *agent_id)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| format!("agent {agent_id}")),
            TransferTarget::Group { group: None } => "任意坐席 any agent".into(),
            TransferTarget::Group { group: Some(slug) } => self
                .groups
                .iter()
                .flatten()
                .find(|g| g.slug == *slug)
                .map(|g| format!("组 {}", g.name))
                .unwrap_or_else(|| format!("group {slug}")),
        }
    }

    /// Enter in the composer: a lone `/shortcut` expands; anything else is sent (as a
    /// private note in note mode, and always in a conversation I observe: a whisper).
    fn send(&mut self, effects: &mut Vec<Effect>) {
        let Some(id) = self.active_id() else { return };
        let Some(conversation) = self.conversation(id) else { return };
        let body = conversation.draft_text();
        let internal = conversation.note_mode || conversation.observed;
        if body.trim().is_empty() {
            return;
        }
        if let Some(word) = canned::shortcut_in(&body).map(str::to_string)
            && self.use_shortcut(&word, effects)
        {
            return;
        }
        if self.send_message(id, body, Vec::new(), internal, effects)
            && let Some(conversation) = self.conversation_mut(id)
        {
            conversation.draft = new_composer(conversation.note_mode);
        }
    }

    /// Stores a message of mine in `id` and sends it (or queues it while offline).
    /// Returns whether it was accepted.
    fn send_message(
        &mut self,
        id: ConversationId,
        body: String,
        attachments: Vec<Attachment>,
        internal: bool,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let online = self.is_online();
        let now = self.now;
        let format = if self.markdown { BodyFormat::Markdown } else { BodyFormat::Text };
        let me = self.me();
        let client_msg_id = format!("{}-{}", self.client_id_prefix, self.next_msg + 1);
        let Some(conversation) = self.conversation_mut(id) else { return false };
        if body.len() > MAX_BODY_BYTES {
            let len = body.len();
            self.set_status(format!("the message is {len} bytes; the limit is {MAX_BODY_BYTES}"), true);
            return false;
        }
        if conversation.view.state == ConversationState::Closed {
            self.set_status("the conversation is closed", true);
            return false;
        }
        if let Some(why) = &conversation.detached {
            let text = format!("not sent: the conversation {why}");
            self.set_status(text, true);
            return false;
        }
        let mut entry = Entry::outgoing(me, body, format, now, client_msg_id);
        // Whatever the caller says, nothing I write where I only observe reaches the
        // customer.
        entry.internal = internal || conversation.observed;
        entry.attachments = attachments;
        if online {
            entry.delivery = Delivery::Sending;
            effects.push(Effect::Frame(send_frame(id, &entry)));
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
        true
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
        self.load_panel(false, effects);
        self.request_history(false, effects);
    }

    /// The active conversation is being looked at: everything in it is read.
    fn mark_active_read(&mut self, effects: &mut Vec<Effect>) {
        let online = self.is_online();
        let Some(conversation) = self.active_mut() else { return };
        let last = conversation.last_seq();
        if last > conversation.read_seq {
            conversation.read_seq = last;
            // Read receipts are the assignee's: an observer reading must not tell the
            // customer their message was read.
            if online && !conversation.observed {
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
        self.supervisor.on_tick(now);
        if let Some(search) = self.kb.on_tick(now) {
            effects.push(Effect::Api(search));
        }
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
                // Whatever was in flight is unacknowledged: it goes again, with the same id,
                // after the welcome (or, where I observe, once observed again), not on a
                // retry timer that could beat them.
                for conversation in &mut self.conversations {
                    conversation.typing_sent_at = None;
                    conversation.customer_typing_until = None;
                    for entry in conversation.scrollback.outgoing_mut() {
                        if entry.delivery == Delivery::Sending {
                            entry.delivery = Delivery::Queued;
                        }
                        if entry.delivery == Delivery::Queued {
                            entry.retry_at = None;
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
                // The relay lists the queues I serve again after every hello.
                self.queues.clear();
                self.on_welcome(conversations, effects);
                self.resupervise(effects);
                if !self.is_admin() {
                    // Admin no more: nothing of the audit log stays.
                    self.audit = AuditLog::default();
                    if self.overlay == Some(Overlay::Audit) {
                        self.overlay = None;
                    }
                }
                effects.push(Effect::Api(ApiRequest::Canned));
                // My tickets, for the status bar's count.
                effects.push(Effect::Api(ApiRequest::Tickets(TicketScope::Mine)));
            }
            ServerFrame::Message(m) => {
                let active = self.active_id();
                let id = m.conversation_id;
                let Some(conversation) = self.conversations.iter_mut().find(|c| c.id() == m.conversation_id) else {
                    tracing::warn!(conversation = %m.conversation_id, seq = m.seq, "message for a conversation not held");
                    return;
                };
                // What I only observe is not mine to answer: no notification.
                let live = m.seq > conversation.known_seq && !conversation.observed;
                let from_customer = m.author.kind == AuthorKind::Customer;
                let preview = match m.attachments.first() {
                    Some(file) if m.body.trim().is_empty() => format!("附件 file: {}", file.name),
                    _ => m.body.chars().take(80).collect::<String>(),
                };
                let name = conversation.customer_name();
                let entry = Entry::from_message(m, &self.relay_url);
                if !conversation.scrollback.insert_stored(entry) {
                    return; // already held: resumed or delivered twice
                }
                if from_customer {
                    conversation.customer_typing_until = None;
                }
                if active == Some(id) {
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
            ServerFrame::Conversation(change) => {
                self.on_conversation(change.change, change.conversation, change.transfer, effects)
            }
            ServerFrame::QueueList(list) => {
                if list.total == 0 {
                    self.queues.remove(&list.group);
                } else {
                    self.queues.insert(list.group.clone(), list);
                }
                self.queue_selected = self.queue_selected.min(self.queued().len().saturating_sub(1));
            }
            // Customers' own place in line; agents get `queue_list`.
            ServerFrame::Queue(_) => {}
            // A ticket given to me: tell me, as with a newly assigned conversation (not
            // when I made it myself just now), and bring the lists up to date.
            ServerFrame::Ticket(t) => {
                let mine_just_made = t.change == TicketChange::Created
                    && t.ticket.conversation_id.is_some()
                    && self.creating_ticket == t.ticket.conversation_id;
                if matches!(t.change, TicketChange::Assigned | TicketChange::Created) && !mine_just_made {
                    effects.push(Effect::Notify(Notice {
                        title: format!("新工单 ticket #{}", t.ticket.id),
                        body: t.ticket.subject.clone(),
                    }));
                }
                let me = self.agent.as_ref().map(|a| a.id);
                self.tickets.upsert(&t.ticket, me);
                if self.overlay == Some(Overlay::Tickets) {
                    effects.push(Effect::Api(self.tickets.refresh()));
                    self.ticket_details_wanted(effects);
                }
            }
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
            // A late monitor after the pane closed is dropped: the pane shows only live ones.
            // Only the one asked for after a welcome to confirm the alerts is used then, for
            // its alerts, and the monitor stops again.
            ServerFrame::Monitor(monitor) => {
                if self.supervisor.open {
                    self.supervisor.on_monitor(monitor, self.now);
                } else if self.supervisor.alerts_unconfirmed {
                    self.supervisor.on_alerts_listed(&monitor.alerts, monitor.at, self.now);
                    if self.is_online() {
                        effects.push(Effect::Frame(ClientFrame::Supervise(Supervise { active: false })));
                    }
                }
            }
            ServerFrame::Alert(alert) => {
                if let Some(fired) = self.supervisor.on_alert(alert, self.now) {
                    effects.push(Effect::Notify(Notice {
                        title: format!("告警 Alert: {}", alert_kind_label(fired.kind)),
                        body: fired.message.clone(),
                    }));
                }
            }
            ServerFrame::Pong(_) => {}
        }
    }

    /// After a welcome: the monitor and the conversations I observed are asked for again
    /// (the relay forgets both with the old connection).
    ///
    /// The monitor is asked for even with the pane closed: the alerts shown as on may have
    /// resolved while I was away, or been forgotten by a relay that restarted, and the
    /// monitor the relay sends at once lists every alert that is on. Once it came, a closed
    /// pane stops the monitor again.
    fn resupervise(&mut self, effects: &mut Vec<Effect>) {
        // Whatever I asked to observe was asked of the old connection.
        self.observe_asked.clear();
        if !self.is_supervisor() {
            // A role taken away meanwhile: nothing of it stays.
            self.supervisor = SupervisorPane::default();
            let observed: Vec<ConversationId> =
                self.conversations.iter().filter(|c| c.observed).map(Conversation::id).collect();
            for id in observed {
                self.remove_conversation(id);
            }
            return;
        }
        self.supervisor.reconnected();
        effects.push(Effect::Frame(ClientFrame::Supervise(Supervise { active: true })));
        for conversation in self.conversations.iter().filter(|c| c.observed) {
            effects.push(Effect::Frame(observe(conversation.id(), true)));
            self.observe_asked.insert(conversation.id());
        }
    }

    fn on_welcome(&mut self, views: Vec<ConversationView>, effects: &mut Vec<Effect>) {
        let held: HashSet<ConversationId> = views.iter().map(|v| v.id).collect();
        // Conversations that left me while I was away (those I observe are asked for
        // again).
        let gone: Vec<ConversationId> = self
            .conversations
            .iter()
            .filter(|c| !c.observed && !held.contains(&c.id()))
            .map(Conversation::id)
            .collect();
        for id in gone {
            self.remove_conversation(id);
        }
        for view in views {
            match self.conversation_mut(view.id) {
                Some(conversation) => {
                    // The relay says I hold it: mine again, whatever it was before.
                    conversation.view = view;
                    conversation.observed = false;
                    conversation.detached = None;
                }
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
        // once and acks a repeat as a duplicate. Whispers where I observe wait until the
        // relay says I observe it again: before that it would refuse them.
        for conversation in self.conversations.iter_mut().filter(|c| !c.observed) {
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
        self.load_panel(false, effects);
    }

    fn on_conversation(
        &mut self,
        change: ConversationChange,
        view: ConversationView,
        transfer: Option<TransferInfo>,
        effects: &mut Vec<Effect>,
    ) {
        let id = view.id;
        let now = self.now;
        match change {
            ConversationChange::Assigned => {
                let took_over = self.awaited(AwaitKind::TakeOver, id);
                let picked = self.awaited(AwaitKind::Pick, id) || took_over;
                // It moved: the reasons the panel shows are out of date.
                self.routing.remove(&id);
                let name = customer_name(&view);
                let channel = view.channel.as_str();
                let vip = if view.contact.vip { " VIP" } else { "" };
                let about = view.intent.as_deref().map(|i| format!(" · 意图 intent: {i}")).unwrap_or_default();
                let after_seq = view.last_seq;
                let notice = transfer.as_ref().map(|t| transfer_notice(t, after_seq, now));
                let mut was_observed = false;
                let known = match self.conversation_mut(id) {
                    Some(conversation) => {
                        conversation.view = view;
                        conversation.detached = None;
                        // Observed until now: mine from here on. The composer stays on
                        // notes (it never switches to the customer by itself).
                        was_observed = std::mem::take(&mut conversation.observed);
                        if let Some(notice) = notice {
                            conversation.scrollback.insert_stored(notice);
                        }
                        true
                    }
                    None => {
                        let mut conversation = Conversation::new(view);
                        if let Some(notice) = notice {
                            conversation.scrollback.insert_stored(notice);
                        }
                        self.conversations.push(conversation);
                        false
                    }
                };
                let was_empty = self.tabs.is_empty();
                // What I took myself I want to see at once; what the relay gives me
                // must not steal the focus.
                self.open_tab(id, picked, effects);
                if was_empty && !known {
                    self.selected = self.conversations.len() - 1;
                }
                if was_observed && self.is_online() {
                    // Held now: following it as an observer too would only double it.
                    effects.push(Effect::Frame(observe(id, false)));
                }
                if took_over {
                    let hint =
                        if was_observed { "; the composer stays on private notes until you switch it" } else { "" };
                    self.set_status(format!("已接管 took over {name}: it is yours{hint}"), false);
                } else if picked {
                    self.set_status(format!("已认领 {name} is yours"), false);
                } else if let Some(t) = &transfer {
                    let from = t.from.as_ref().map_or("the relay", |a| a.name.as_str());
                    let note = t.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
                    effects.push(Effect::Notify(Notice {
                        title: format!("转给你 Transferred to you{vip}"),
                        body: format!("{name} ({channel}) from {from}{note}"),
                    }));
                } else if !known {
                    effects.push(Effect::Notify(Notice {
                        title: format!("新会话 New conversation{vip}"),
                        body: format!("{name} ({channel}){about}"),
                    }));
                }
                if self.active_id() == Some(id) {
                    self.load_panel(false, effects);
                }
            }
            ConversationChange::Observed => self.on_observed(view, effects),
            // Observers hear of moves as `observed`; should an `unassigned` come, it is
            // news of the conversation, not of me.
            ConversationChange::Unassigned if self.conversation(id).is_some_and(|c| c.observed) => {
                self.on_observed(view, effects)
            }
            ConversationChange::Unassigned => {
                let Some(name) = self.conversation(id).map(Conversation::customer_name) else { return };
                let label = match self.awaiting.take() {
                    Some(Awaiting { what: AwaitKind::Transfer(label), conversation, .. }) if conversation == id => {
                        Some(label)
                    }
                    other => {
                        self.awaiting = other;
                        None
                    }
                };
                if let Some(label) = label {
                    // My own transfer went through: it is not mine any more.
                    self.remove_conversation(id);
                    self.set_status(format!("已转出 {name} transferred to {label}"), false);
                    self.load_panel(false, effects);
                    return;
                }
                // Moved by the relay (no reply in time) or a supervisor: keep the tab,
                // read-only, so the context and draft are not lost mid-sentence.
                let whereto = match &view.assignee {
                    Some(agent) => format!("now with {}", agent.name),
                    None => "back in the queue".to_string(),
                };
                let why = format!("moved away from you ({whereto})");
                let active = self.active_id() == Some(id);
                let Some(conversation) = self.conversation_mut(id) else { return };
                let after_seq = conversation.last_seq();
                conversation.view = view;
                conversation.detached = Some(why.clone());
                conversation.typing_sent_at = None;
                conversation.scrollback.insert_stored(Entry::notice(
                    after_seq,
                    "移走 moved",
                    format!("已移走 {why} — read-only; x closes the tab"),
                    now,
                ));
                if active {
                    self.mode = Mode::Normal;
                }
                self.set_status(format!("conversation with {name} {why}"), false);
            }
            ConversationChange::Closed => {
                let name = self.conversation(id).map(Conversation::customer_name).unwrap_or_default();
                self.remove_conversation(id);
                self.set_status(format!("conversation with {name} closed"), false);
                self.load_panel(false, effects);
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

    /// The relay says I follow a conversation read-only: the first time it opens as a
    /// tab; later, it moved or changed (a line in its scrollback says where it went).
    fn on_observed(&mut self, view: ConversationView, effects: &mut Vec<Effect>) {
        let id = view.id;
        let now = self.now;
        let asked = self.awaited(AwaitKind::Observe, id);
        let wanted = self.observe_asked.remove(&id);
        let name = customer_name(&view);
        match self.conversation(id).map(|c| (c.is_mine(), c.observed)) {
            // Mine (taken over just now, say): I hear of it as its agent.
            Some((true, _)) => {}
            Some((false, true)) => {
                let online = self.is_online();
                let Some(conversation) = self.conversation_mut(id) else { return };
                // Observed again after a reconnect: the whispers written meanwhile go now.
                for entry in conversation.scrollback.outgoing_mut() {
                    if online && entry.delivery == Delivery::Queued && entry.retry_at.is_none() {
                        entry.delivery = Delivery::Sending;
                        effects.push(Effect::Frame(send_frame(id, entry)));
                    }
                }
                let moved = conversation.view.assignee != view.assignee;
                let after_seq = conversation.last_seq();
                let whereto = match &view.assignee {
                    Some(agent) => format!("now with {}", agent.name),
                    None => format!("{} (no agent)", view.state.as_str()),
                };
                conversation.view = view;
                if moved {
                    conversation.scrollback.insert_stored(Entry::notice(after_seq, "移动 moved", whereto, now));
                }
            }
            // Not asked for, and not a tab I observe: stale, already on its way when I closed
            // its tab, say. The relay is told again that I stop.
            Some((false, false)) | None if !wanted => {
                tracing::debug!(conversation = %id, "`observed` not asked for");
                if self.is_online() {
                    effects.push(Effect::Frame(observe(id, false)));
                }
            }
            // Moved away from me earlier, or new to me: observed from now on.
            Some((false, false)) | None => {
                if self.conversation(id).is_none() {
                    self.conversations.push(Conversation::new(view.clone()));
                }
                let Some(conversation) = self.conversation_mut(id) else { return };
                conversation.view = view;
                conversation.detached = None;
                conversation.observed = true;
                conversation.set_note_mode(true);
                conversation.typing_sent_at = None;
                self.open_tab(id, asked, effects);
                if asked {
                    self.set_status(
                        format!("旁听 observing {name} read-only: what you write there is a whisper, a private note"),
                        false,
                    );
                }
            }
        }
    }

    /// Whether a `what` for `conversation` was waiting for its answer (and now has it).
    fn awaited(&mut self, what: AwaitKind, conversation: ConversationId) -> bool {
        let matched = self.awaiting.as_ref().is_some_and(|a| {
            a.conversation == conversation && std::mem::discriminant(&a.what) == std::mem::discriminant(&what)
        });
        if matched {
            self.awaiting = None;
        }
        matched
    }

    // ---------------------------------------------------------------------------------
    // HTTP answers
    // ---------------------------------------------------------------------------------

    fn on_api(&mut self, request: ApiRequest, result: Result<ApiAnswer, ApiFailure>, effects: &mut Vec<Effect>) {
        let answer = match result {
            Ok(answer) => answer,
            Err(failure) => return self.on_api_failure(request, failure),
        };
        match (request, answer) {
            (_, ApiAnswer::Agents(agents)) => self.agents = Some(agents),
            (_, ApiAnswer::Groups(groups)) => self.groups = Some(groups),
            (_, ApiAnswer::Canned(list)) => self.canned = Some(list),
            (_, ApiAnswer::CannedCreated(reply)) => {
                let text = format!("已保存 saved /{}: type it in the composer and press tab", reply.shortcut);
                let list = self.canned.get_or_insert_with(Vec::new);
                list.retain(|r| r.id != reply.id);
                list.push(reply);
                list.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
                self.set_status(text, false);
            }
            (ApiRequest::DeleteCanned(id), ApiAnswer::CannedDeleted) => {
                let gone = self.canned.as_mut().and_then(|list| {
                    let at = list.iter().position(|r| r.id == id)?;
                    Some(list.remove(at))
                });
                let what = gone.map_or_else(|| "the canned reply".to_string(), |r| format!("/{}", r.shortcut));
                self.set_status(format!("已删除 deleted {what}"), false);
            }
            (ApiRequest::Contact(id), ApiAnswer::Contact(details)) => {
                self.contacts.insert(id, Fetched::Ready(details));
            }
            (ApiRequest::Routing(id), ApiAnswer::Routing(history)) => {
                self.routing.insert(id, Fetched::Ready(history));
            }
            (ApiRequest::History { conversation, .. }, ApiAnswer::History(page)) => {
                let relay_url = self.relay_url.clone();
                let Some(c) = self.conversations.iter_mut().find(|c| c.id() == conversation) else { return };
                c.history_loading = false;
                let mut added = 0;
                for message in page.messages {
                    added += usize::from(c.scrollback.insert_stored(Entry::from_message(message, &relay_url)));
                }
                if !page.more || added == 0 || c.scrollback.lowest_seq().is_some_and(|l| l <= 1) {
                    c.history_complete = true;
                }
                if added > 0 {
                    self.set_status(format!("已加载 {added} older messages"), false);
                }
            }
            (ApiRequest::Upload { conversation, .. }, ApiAnswer::Uploaded(reference)) => {
                let name = reference.name.clone();
                let internal = self.conversation(conversation).is_some_and(|c| c.note_mode);
                let attachment = Attachment::at(&self.relay_url, reference);
                if self.send_message(conversation, String::new(), vec![attachment], internal, effects) {
                    self.set_status(format!("已上传 uploaded {name}"), false);
                }
            }
            (ApiRequest::Reveal(id), ApiAnswer::Revealed(revealed)) => self.on_revealed(id, revealed),
            (request @ ApiRequest::Events { .. }, ApiAnswer::Events(page)) => {
                if let Some(next) = self.audit.on_page(&request, Ok(page), self.now) {
                    effects.push(Effect::Api(next));
                }
            }
            (ApiRequest::KbSearch { query }, ApiAnswer::KbHits(hits)) => {
                if let Some(request) = self.kb.on_results(&query, Ok(hits)) {
                    effects.push(Effect::Api(request));
                }
            }
            (ApiRequest::KbArticle(id), ApiAnswer::KbArticle(article)) => self.kb.on_article(id, Ok(article)),
            (
                request @ (ApiRequest::KbCreateArticle(_) | ApiRequest::KbReplaceArticle { .. }),
                ApiAnswer::KbArticleSaved(article),
            ) => {
                let created = matches!(request, ApiRequest::KbCreateArticle(_));
                self.on_article_saved(created, article, effects);
            }
            (ApiRequest::KbDeleteArticle(id), ApiAnswer::KbArticleDeleted) => {
                let title = self.kb.hits().iter().find(|h| h.id == id).map(|h| h.title.clone());
                let what = title.map_or_else(|| format!("article #{id}"), |t| format!("《{t}》"));
                self.kb.articles.remove(&id);
                if let Some(request) = self.kb.research(None) {
                    effects.push(Effect::Api(request));
                }
                self.set_status(format!("已删除 deleted {what} from the knowledge base"), false);
            }
            (ApiRequest::Tickets(scope), ApiAnswer::Tickets(list)) => {
                self.tickets.on_list(scope, Ok(list));
                self.ticket_details_wanted(effects);
            }
            (ApiRequest::Ticket(id), ApiAnswer::Ticket(details)) => self.tickets.on_details(id, Ok(details)),
            (ApiRequest::PatchTicket { id, .. }, ApiAnswer::TicketSaved(ticket)) => {
                let me = self.agent.as_ref().map(|a| a.id);
                self.tickets.upsert(&ticket, me);
                self.ticket_details_wanted(effects);
                self.set_status(format!("已更新 ticket #{id} is {} now", ticket.status.as_str()), false);
            }
            (ApiRequest::AddTicketNote { id, .. }, ApiAnswer::TicketNoted) => {
                self.tickets.details.remove(&id);
                self.ticket_details_wanted(effects);
                self.set_status(format!("已添加备注 note added to ticket #{id}"), false);
            }
            (ApiRequest::CreateTicket(_), ApiAnswer::TicketSaved(ticket)) => {
                self.creating_ticket = None;
                let me = self.agent.as_ref().map(|a| a.id);
                self.tickets.upsert(&ticket, me);
                let whose = match &ticket.assignee {
                    Some(agent) if Some(agent.id) == me => "yours".to_string(),
                    Some(agent) => format!("assigned to {}", agent.name),
                    None => "unassigned".to_string(),
                };
                self.set_status(
                    format!("已创建工单 ticket #{} created ({whose}): {}", ticket.id, ticket.subject),
                    false,
                );
            }
            (ApiRequest::PatchAgent { patch, .. }, ApiAnswer::AgentSaved(agent)) => {
                let text = match (patch.max_concurrent, patch.presence) {
                    (Some(capacity), _) => format!("已更新 {} takes up to {capacity} conversations now", agent.name),
                    (None, Some(presence)) => format!("已更新 {} is {} now", agent.name, presence_word(presence)),
                    (None, None) => format!("已更新 {} changed", agent.name),
                };
                self.set_status(text, false);
            }
            (ApiRequest::Report(window), ApiAnswer::Report(report)) => self.report.on_report(window, Ok(report)),
            (ApiRequest::ExportReport { .. }, ApiAnswer::ReportExported { path, bytes }) => {
                self.report.exporting = false;
                let size = crate::api::format_size(bytes as u64);
                self.set_status(format!("已导出 report saved: {path} ({size})"), false);
            }
            (request, answer) => tracing::warn!(?request, ?answer, "an answer that does not fit its request"),
        }
    }

    /// The relay answered a reveal: the messages held that were masked show as written.
    fn on_revealed(&mut self, id: ConversationId, revealed: kefu_proto::api::RevealedMessages) {
        let Some(c) = self.conversation_mut(id) else {
            let text = format!("conversation #{id} is no longer open; the reveal was recorded in the audit log");
            return self.set_status(text, false);
        };
        c.revealing = false;
        let name = c.customer_name();
        let shown = revealed.messages.into_iter().filter(|m| c.scrollback.reveal(m.seq, m.body.clone())).count();
        let still = c.scrollback.masked();
        let still = if still > 0 { format!("; {still} stay masked") } else { String::new() };
        // What matters most first: the status line is cut on a narrow screen.
        let text = match shown {
            0 => format!("recorded in the audit log, but nothing of {name}'s held here was masked{still}"),
            n => format!(
                "已显示 revealed, recorded in the audit log: {n} message{} of {name}{still}",
                if n == 1 { "" } else { "s" }
            ),
        };
        self.set_status(text, false);
    }

    /// The relay stored the article: the editor closes (if it was waiting for this), the
    /// pane shows the new text and searches again, a new article by its title.
    fn on_article_saved(&mut self, created: bool, article: kefu_proto::api::Article, effects: &mut Vec<Effect>) {
        // POST replaces an article with the same slug: say so rather than hide it.
        let replaced = created
            && (self.kb.articles.contains_key(&article.id) || self.kb.hits().iter().any(|h| h.id == article.id));
        if self.article_editor.as_ref().is_some_and(|e| e.saving) {
            self.article_editor = None;
            let discarding = matches!(&self.overlay, Some(Overlay::Prompt { kind: PromptKind::DiscardArticle, .. }));
            if self.overlay == Some(Overlay::ArticleEditor) || discarding {
                self.overlay = Some(Overlay::Knowledge);
            }
        }
        let id = article.id;
        let text = match (created, replaced) {
            (true, true) => {
                format!("已保存 saved 《{}》, replacing the article kb:{} (same slug)", article.title, article.slug)
            }
            (true, false) => format!("已创建 created 《{}》 (kb:{})", article.title, article.slug),
            (false, _) => format!("已保存 saved 《{}》 (kb:{})", article.title, article.slug),
        };
        if created {
            self.kb.query = article.title.clone();
        }
        self.kb.articles.insert(id, Fetched::Ready(article));
        if let Some(request) = self.kb.research(Some(id)) {
            effects.push(Effect::Api(request));
        }
        self.set_status(text, false);
    }

    fn on_api_failure(&mut self, request: ApiRequest, failure: ApiFailure) {
        let refused = match failure.status {
            Some(403) => format!("only supervisors and admins write the knowledge base ({})", failure.message),
            _ => failure.message.clone(),
        };
        if let Some(editor) = &mut self.article_editor
            && editor.saving
            && matches!(request, ApiRequest::KbCreateArticle(_) | ApiRequest::KbReplaceArticle { .. })
        {
            editor.refused_by_relay(&failure);
        }
        let message = failure.message;
        match request {
            ApiRequest::KbCreateArticle(_) | ApiRequest::KbReplaceArticle { .. } => {
                self.set_status(format!("不能保存 cannot save the article: {refused}"), true);
            }
            ApiRequest::KbDeleteArticle(_) => {
                self.set_status(format!("不能删除 cannot delete the article: {refused}"), true);
            }
            ApiRequest::Contact(id) => {
                self.contacts.insert(id, Fetched::Failed(message));
            }
            ApiRequest::Routing(id) => {
                self.routing.insert(id, Fetched::Failed(message));
            }
            ApiRequest::History { conversation, .. } => {
                if let Some(c) = self.conversation_mut(conversation) {
                    c.history_loading = false;
                }
                self.set_status(format!("cannot load older messages: {message}"), true);
            }
            ApiRequest::Upload { path, .. } => {
                self.set_status(format!("上传失败 upload failed ({path}): {message}"), true)
            }
            ApiRequest::CreateCanned(new) => {
                self.set_status(format!("cannot save /{}: {message}", new.shortcut), true);
            }
            ApiRequest::DeleteCanned(_) => self.set_status(format!("cannot delete: {message}"), true),
            ApiRequest::Agents | ApiRequest::Groups | ApiRequest::Canned => {
                self.set_status(format!("cannot reach the relay's API: {message}"), true);
            }
            ApiRequest::KbSearch { query } => {
                self.kb.on_results(&query, Err(message));
            }
            ApiRequest::KbArticle(id) => self.kb.on_article(id, Err(message)),
            ApiRequest::Tickets(scope) => {
                self.tickets.on_list(scope, Err(message.clone()));
                if self.overlay == Some(Overlay::Tickets) {
                    self.set_status(format!("cannot load tickets: {message}"), true);
                }
            }
            ApiRequest::Ticket(id) => self.tickets.on_details(id, Err(message)),
            ApiRequest::PatchTicket { id, .. } => {
                self.set_status(format!("cannot change ticket #{id}: {message}"), true);
            }
            ApiRequest::AddTicketNote { id, .. } => {
                self.set_status(format!("cannot add the note to ticket #{id}: {message}"), true);
            }
            ApiRequest::CreateTicket(new) => {
                self.creating_ticket = None;
                self.set_status(format!("cannot create the ticket \"{}\": {message}", new.subject), true);
            }
            ApiRequest::PatchAgent { id, .. } => {
                let name = self
                    .supervisor
                    .agents()
                    .iter()
                    .find(|a| a.agent.id == id)
                    .map_or_else(|| format!("agent {id}"), |a| a.agent.name.clone());
                self.set_status(format!("cannot change {name}: {message}"), true);
            }
            ApiRequest::Report(window) => {
                self.report.on_report(window, Err(message.clone()));
                if self.overlay == Some(Overlay::Report) {
                    self.set_status(format!("cannot load the report: {message}"), true);
                }
            }
            ApiRequest::ExportReport { .. } => {
                self.report.exporting = false;
                self.set_status(format!("cannot export the report: {message}"), true);
            }
            ApiRequest::Reveal(id) => {
                let name = match self.conversation_mut(id) {
                    Some(c) => {
                        c.revealing = false;
                        c.customer_name()
                    }
                    None => format!("#{id}"),
                };
                let why = match failure.status {
                    Some(404) => format!("the relay has no conversation #{id} (404)"),
                    Some(403) => format!("not allowed for your role ({message})"),
                    _ => message,
                };
                self.set_status(format!("不能显示 cannot reveal {name}'s personal data: {why}"), true);
            }
            request @ ApiRequest::Events { .. } => {
                let why = match failure.status {
                    Some(403) => format!("the audit log is for admins ({message})"),
                    _ => message,
                };
                self.audit.on_page(&request, Err(why.clone()), self.now);
                if self.overlay == Some(Overlay::Audit) {
                    self.set_status(format!("cannot load the audit log: {why}"), true);
                }
            }
        }
    }

    fn remove_conversation(&mut self, id: ConversationId) {
        self.observe_asked.remove(&id);
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
        if let Some(id) = error.conversation_id.filter(|_| error.code == ErrorCode::NotFound)
            && self.observe_asked.remove(&id)
            && self.conversation(id).is_some_and(|c| c.observed)
        {
            // Observed again after a reconnect, but it closed while I was away: the tab
            // goes, with the whispers still waiting to be sent.
            let name = self.customer_label(id);
            let unsent = self.conversation(id).map_or(0, |c| {
                c.scrollback
                    .entries()
                    .iter()
                    .filter(|e| matches!(e.delivery, Delivery::Queued | Delivery::Sending))
                    .count()
            });
            self.remove_conversation(id);
            let lost = if unsent > 0 { format!("; {unsent} whisper(s) not sent") } else { String::new() };
            self.set_status(format!("旁听结束 the conversation with {name} closed while you were away{lost}"), false);
            return;
        }
        let Some(id) = error.client_msg_id.as_deref() else {
            // No request named: a pick or transfer sent just now is the likely one.
            let what = match self.awaiting.take() {
                Some(a) if self.now - a.at <= AWAIT_MS => match a.what {
                    AwaitKind::Pick => "认领失败 pick refused".to_string(),
                    AwaitKind::Transfer(to) => format!("转接失败 transfer to {to} refused"),
                    AwaitKind::Observe => "旁听失败 observe refused".to_string(),
                    AwaitKind::TakeOver => "接管失败 take over refused".to_string(),
                },
                _ => "relay".to_string(),
            };
            // The relay names the conversation a refusal is about; say whose it is.
            let about = error.conversation_id.map(|id| match self.conversation(id) {
                Some(c) => format!(" [{}]", c.customer_name()),
                None => match self.supervisor.customer_of(id) {
                    Some(name) => format!(" [{name}]"),
                    None => format!(" [#{}]", id.0),
                },
            });
            let about = about.unwrap_or_default();
            self.set_status(format!("{what}{about}: {} ({})", error.message, error.code), true);
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

/// The line a transfer leaves in the receiver's scrollback.
fn transfer_notice(transfer: &TransferInfo, after_seq: Seq, at: UnixMillis) -> Entry {
    let from = match &transfer.from {
        Some(agent) => format!("由 {} 转来 transferred by {}", agent.name, agent.name),
        None => "由系统转来 moved here by the relay".to_string(),
    };
    let body = match transfer.note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(note) => format!("{from}: {note}"),
        None => from,
    };
    Entry::notice(after_seq, "转接 transfer", body, at)
}

fn observe(id: ConversationId, active: bool) -> ClientFrame {
    ClientFrame::Observe(ObserveConversation { conversation_id: id, active })
}

/// A presence in words.
fn presence_word(presence: Presence) -> &'static str {
    match presence {
        Presence::Online => "在线 online",
        Presence::Away => "离开 away",
        Presence::Offline => "离线 offline",
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
        internal: entry.internal,
        attachments: entry.attachments.iter().map(|a| a.reference.id.clone()).collect(),
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
pub(crate) fn to_textarea_input(key: KeyPress) -> ratatui_textarea::Input {
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
    use crate::article_editor::Field;
    use crate::keymap::KeyPress;
    use kefu_proto::api::NewArticle;

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
            via: None,
            masked: false,
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
                conversation_id: None,
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
    fn a_refusal_about_a_conversation_names_its_customer() {
        let mut app = online();
        let name = app.conversation(ConversationId(1)).unwrap().customer_name();
        app.update(Action::Server(ServerFrame::Error(ErrorFrame {
            code: ErrorCode::Forbidden,
            message: "the conversation is not assigned to you".into(),
            client_msg_id: None,
            conversation_id: Some(ConversationId(1)),
        })));
        let status = app.status.as_ref().unwrap().text.clone();
        assert!(status.contains(&format!("[{name}]")), "{status}");
        assert!(status.contains("not assigned to you"), "{status}");
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
        // Close offers the resolution codes too: down moves to the next one.
        let effects = keys(&mut app, "C down enter");
        assert_eq!(
            frames(&effects),
            vec![&ClientFrame::Close(CloseConversation {
                conversation_id: ConversationId(1),
                resolution: Some("refund_issued".into())
            })]
        );
        let effects = keys(&mut app, "C C-u enter");
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

    fn apis(effects: &[Effect]) -> Vec<&ApiRequest> {
        effects.iter().filter_map(|e| if let Effect::Api(r) = e { Some(r) } else { None }).collect()
    }

    fn answer(app: &mut App, request: ApiRequest, answer: ApiAnswer) -> Vec<Effect> {
        app.update(Action::Api { request, result: Ok(answer) })
    }

    fn queued(id: i64, name: &str, vip: bool, minutes: i64) -> ConversationView {
        serde_json::from_value(json!({
            "id": id, "state": "queued", "channel": "web",
            "contact": {"id": 100 + id, "name": name, "vip": vip},
            "last_seq": 1, "created_at": NOW - minutes * 60_000, "queued_at": NOW - minutes * 60_000,
            "group": "presales", "priority": if vip { 100 } else { 200 },
        }))
        .expect("a valid conversation view")
    }

    fn canned_list() -> Vec<CannedReply> {
        serde_json::from_value(json!([
            {"id": 1, "shortcut": "hi", "title": "问候", "body": "{customer.name}，您好！我是{agent.name}。", "scope": "workspace"},
            {"id": 2, "shortcut": "return", "title": "Returns", "body": "Hi {customer.name}, returns are free.", "scope": "workspace"},
            {"id": 3, "shortcut": "rest", "title": "我的休息说明", "body": "稍等片刻", "scope": "personal"},
        ]))
        .unwrap()
    }

    fn draft(app: &App) -> String {
        app.active().unwrap().draft_text()
    }

    #[test]
    fn the_queue_lists_waiting_conversations_and_pick_takes_one() {
        let mut app = online();
        app.update(server(json!({
            "type": "queue_list", "group": "presales", "total": 2,
            "conversations": [queued(5, "陈小姐", true, 3), queued(6, "Tom", false, 1)],
        })));
        let rows: Vec<(Option<&str>, usize, i64)> = app.queued().iter().map(|(g, p, v)| (*g, *p, v.id.0)).collect();
        assert_eq!(rows, vec![(Some("presales"), 1, 5), (Some("presales"), 2, 6)]);
        assert_eq!(app.queue_total(), 2);
        keys(&mut app, "J");
        assert_eq!(app.queue_selected, 1);
        let effects = keys(&mut app, "c");
        assert_eq!(frames(&effects), vec![&ClientFrame::Pick(PickConversation { conversation_id: ConversationId(6) })]);
        // Refused: the status line says so, naming the pick.
        app.update(server(json!({"type": "error", "code": "conflict", "message": "Tom was taken by 小李"})));
        let status = app.status.clone().unwrap();
        assert!(status.is_error && status.text.contains("pick refused") && status.text.contains("小李"), "{status:?}");
        // Taken: it opens in a focused tab; the queue empties when the relay says so.
        keys(&mut app, "c");
        let mut mine = view(6, "Tom");
        mine.last_seq = 1;
        let effects = app.update(changed("assigned", mine));
        assert!(!effects.iter().any(|e| matches!(e, Effect::Notify(_))), "what I took needs no notification");
        assert_eq!(app.active_id(), Some(ConversationId(6)));
        app.update(server(json!({"type": "queue_list", "group": "presales", "total": 1, "conversations": [queued(5, "陈小姐", true, 3)]})));
        assert_eq!(app.queue_selected, 0);
        app.update(server(json!({"type": "queue_list", "group": "presales", "total": 0, "conversations": []})));
        assert!(app.queues.is_empty());
    }

    #[test]
    fn transfer_picks_a_target_and_a_note_and_the_tab_goes_when_it_leaves() {
        let mut app = online();
        let effects = keys(&mut app, "t");
        assert_eq!(apis(&effects), vec![&ApiRequest::Agents, &ApiRequest::Groups]);
        let agents: Vec<AgentView> = serde_json::from_value(json!([
            {"id": 7, "name": "小王", "email": "wang@shop.example", "role": "agent", "max_concurrent": 5},
            {"id": 8, "name": "李娜", "email": "lina@shop.example", "role": "agent", "max_concurrent": 5,
             "skills": [{"group": "aftersales", "level": "senior"}]},
        ]))
        .unwrap();
        let groups: Vec<GroupView> = serde_json::from_value(json!([
            {"id": 1, "slug": "presales", "name": "售前"}, {"id": 2, "slug": "aftersales", "name": "售后"},
        ]))
        .unwrap();
        answer(&mut app, ApiRequest::Agents, ApiAnswer::Agents(agents));
        answer(&mut app, ApiRequest::Groups, ApiAnswer::Groups(groups));
        let labels: Vec<String> = app.transfer_targets("").into_iter().map(|t| t.label).collect();
        assert_eq!(labels, vec!["任意坐席 any agent", "组 售前", "组 售后", "李娜"], "never myself");
        assert_eq!(app.transfer_targets("lina")[0].target, TransferTarget::Agent { agent_id: kefu_proto::AgentId(8) });
        let effects = keys(&mut app, "\"售后\" enter \"客户要退款，订单已核实\" enter");
        assert_eq!(
            frames(&effects),
            vec![&ClientFrame::Transfer(TransferConversation {
                conversation_id: ConversationId(1),
                to: TransferTarget::Group { group: Some("aftersales".into()) },
                note: Some("客户要退款，订单已核实".into()),
            })]
        );
        app.update(changed(
            "unassigned",
            ConversationView { state: ConversationState::Queued, assignee: None, ..view(1, "李女士") },
        ));
        assert_eq!(app.tabs, vec![ConversationId(2)], "my own transfer closes the tab");
        assert!(app.status.as_ref().unwrap().text.contains("售后"));
    }

    #[test]
    fn a_transfer_received_shows_who_sent_it_and_their_note() {
        let mut app = online();
        let mut incoming = view(9, "陈小姐");
        incoming.last_seq = 2;
        let effects = app.update(server(json!({
            "type": "conversation", "change": "assigned", "conversation": incoming,
            "transfer": {"from": {"id": 8, "name": "李娜"}, "note": "要开发票，抬头已确认"},
        })));
        assert!(
            matches!(&effects[..], [Effect::Notify(n)] if n.title.contains("Transferred") && n.body.contains("开发票"))
        );
        app.update(customer_says(9, 1, "你好"));
        app.update(customer_says(9, 2, "发票呢？"));
        let entries = app.conversation(ConversationId(9)).unwrap().scrollback.entries();
        let bodies: Vec<&str> = entries.iter().map(|e| e.body.as_str()).collect();
        assert_eq!(bodies, vec!["你好", "发票呢？", "由 李娜 转来 transferred by 李娜: 要开发票，抬头已确认"]);
        assert!(entries[2].notice);
        assert_eq!(app.conversation(ConversationId(9)).unwrap().last_seq(), 2, "a notice is not a message");
    }

    #[test]
    fn moved_away_by_the_relay_the_tab_stays_read_only() {
        let mut app = online();
        keys(&mut app, "enter \"正在查\"");
        let elsewhere = ConversationView {
            assignee: Some(kefu_proto::frame::AgentRef { id: kefu_proto::AgentId(8), name: "李娜".into() }),
            ..view(1, "李女士")
        };
        app.update(changed("unassigned", elsewhere));
        let conversation = app.conversation(ConversationId(1)).unwrap();
        assert_eq!(conversation.detached.as_deref(), Some("moved away from you (now with 李娜)"));
        assert_eq!(conversation.draft_text(), "正在查", "the draft survives");
        assert_eq!(app.mode, Mode::Normal);
        assert_eq!(app.load(), 1);
        assert!(frames(&keys(&mut app, "i \"x\" enter")).is_empty(), "nothing can be sent");
        assert_eq!(app.resume_points().len(), 1);
        keys(&mut app, "esc x");
        assert_eq!(app.conversations.len(), 1, "closing the tab lets it go");
    }

    #[test]
    fn private_notes_go_as_internal_and_stay_notes_after_a_reconnect() {
        let mut app = online();
        keys(&mut app, "n");
        assert!(app.active().unwrap().note_mode);
        let effects = keys(&mut app, "i \"老顾客，优先处理\" enter");
        let [ClientFrame::Send(send)] =
            frames(&effects).into_iter().filter(|f| matches!(f, ClientFrame::Send(_))).collect::<Vec<_>>()[..]
        else {
            panic!("one send");
        };
        assert!(send.internal);
        assert!(app.active().unwrap().note_mode, "note mode is sticky: it never switches to the customer by itself");
        app.update(Action::Net(NetEvent::Lost { reason: "closed".into(), retry_at: NOW, attempt: 1 }));
        app.update(Action::Net(NetEvent::Opened));
        let effects = app.update(welcome(vec![view(1, "李女士"), view(2, "Tom")]));
        assert!(frames(&effects).iter().any(|f| matches!(f, ClientFrame::Send(s) if s.internal)), "resent as a note");
        keys(&mut app, "A-n \"好的\" enter");
        let entries = app.active().unwrap().scrollback.entries();
        assert!(entries[0].internal && !entries[1].internal);
    }

    #[test]
    fn canned_replies_expand_by_shortcut_or_picker_with_variables() {
        let mut app = online();
        let effects = app.update(welcome(vec![view(1, "李女士"), view(2, "Tom")]));
        assert_eq!(apis(&effects), vec![&ApiRequest::Canned, &ApiRequest::Tickets(TicketScope::Mine)]);
        answer(&mut app, ApiRequest::Canned, ApiAnswer::Canned(canned_list()));
        // An exact shortcut expands with tab, and enter does not send it.
        keys(&mut app, "i \"/hi\" tab");
        assert_eq!(draft(&app), "李女士，您好！我是小王。");
        let effects = keys(&mut app, "C-u");
        assert!(sent_ids(&effects).is_empty());
        app.active_mut().unwrap().draft = new_composer(false);
        assert!(sent_ids(&keys(&mut app, "\"/return\" enter")).is_empty());
        assert_eq!(draft(&app), "Hi 李女士, returns are free.");
        // A prefix opens the picker on it; enter inserts the best match.
        app.active_mut().unwrap().draft = new_composer(false);
        keys(&mut app, "\"/re\" tab");
        assert!(matches!(&app.overlay, Some(Overlay::Canned { query, .. }) if query == "re"));
        keys(&mut app, "down enter");
        assert_eq!(draft(&app), "稍等片刻");
        // From normal mode, the picker inserts at the caret.
        keys(&mut app, "esc / \"问候\" enter");
        assert_eq!(draft(&app), "稍等片刻李女士，您好！我是小王。");
        assert_eq!(app.mode, Mode::Insert);
    }

    #[test]
    fn canned_replies_are_made_and_deleted_from_the_workstation() {
        let mut app = online();
        answer(&mut app, ApiRequest::Canned, ApiAnswer::Canned(canned_list()));
        keys(&mut app, "i \"请提供订单号\" esc");
        app.update(Action::Run(Command::NewCanned));
        app.update(Action::Paste("order 订单号".into()));
        let effects = keys(&mut app, "enter");
        let new = NewCannedReply {
            shortcut: "order".into(),
            title: "订单号".into(),
            body: "请提供订单号".into(),
            scope: CannedScope::Personal,
        };
        assert_eq!(apis(&effects), vec![&ApiRequest::CreateCanned(new.clone())]);
        let stored = CannedReply {
            id: 4,
            shortcut: new.shortcut.clone(),
            title: new.title.clone(),
            body: new.body.clone(),
            scope: CannedScope::Personal,
        };
        answer(&mut app, ApiRequest::CreateCanned(new), ApiAnswer::CannedCreated(stored));
        assert!(app.canned_matches("order").iter().any(|r| r.id == 4));
        // Shared ones cannot be deleted here; mine can, after a confirmation.
        keys(&mut app, "/ \"hi\" C-d");
        assert!(app.status.as_ref().unwrap().is_error);
        keys(&mut app, "C-u \"order\"");
        let effects = keys(&mut app, "C-d enter");
        assert_eq!(apis(&effects), vec![&ApiRequest::DeleteCanned(4)]);
        answer(&mut app, ApiRequest::DeleteCanned(4), ApiAnswer::CannedDeleted);
        assert!(!app.canned.as_ref().unwrap().iter().any(|r| r.id == 4));
    }

    #[test]
    fn the_customer_panel_fetches_the_contact_and_the_routing_reasons() {
        let mut app = online();
        let effects = keys(&mut app, "v");
        assert!(app.panel);
        assert_eq!(apis(&effects), vec![&ApiRequest::Contact(ContactId(101)), &ApiRequest::Routing(ConversationId(1))]);
        assert_eq!(app.contacts.get(&ContactId(101)), Some(&Fetched::Loading));
        let history: RoutingHistory = serde_json::from_value(json!({
            "conversation_id": 1,
            "decisions": [{"at": NOW, "kind": "routing.assigned", "explanation": "小王 had the lightest load (1 of 5).", "details": {}}],
        }))
        .unwrap();
        answer(&mut app, ApiRequest::Routing(ConversationId(1)), ApiAnswer::Routing(history));
        app.update(Action::Api {
            request: ApiRequest::Contact(ContactId(101)),
            result: Err(ApiFailure::local("cannot reach the relay")),
        });
        assert!(matches!(app.contacts.get(&ContactId(101)), Some(Fetched::Failed(_))));
        // Switching tabs fetches only what is missing.
        let effects = keys(&mut app, "tab");
        assert_eq!(apis(&effects), vec![&ApiRequest::Contact(ContactId(102)), &ApiRequest::Routing(ConversationId(2))]);
        keys(&mut app, "v");
        assert!(apis(&keys(&mut app, "tab")).is_empty(), "hidden: nothing fetched");
    }

    #[test]
    fn older_messages_are_fetched_and_the_view_keeps_its_place() {
        let mut app = online();
        for seq in 51..=80 {
            app.update(customer_says(2, seq, &format!("m{seq}")));
        }
        let effects = keys(&mut app, "tab");
        assert_eq!(apis(&effects), vec![&ApiRequest::History { conversation: ConversationId(2), before: 51 }]);
        assert!(apis(&keys(&mut app, "H")).is_empty(), "one page at a time");
        keys(&mut app, "home");
        let anchored = app.active().unwrap().scrollback.scroll;
        let page: kefu_proto::api::MessagesPage = serde_json::from_value(json!({
            "messages": (1..=50).map(|seq| json!({
                "conversation_id": 2, "seq": seq, "author": {"kind": "customer", "id": 102},
                "body": format!("m{seq}"), "format": "text", "at": NOW, "internal": seq == 3,
            })).collect::<Vec<_>>(),
            "more": false,
        }))
        .unwrap();
        answer(&mut app, ApiRequest::History { conversation: ConversationId(2), before: 51 }, ApiAnswer::History(page));
        let conversation = app.active().unwrap();
        assert_eq!(conversation.scrollback.len(), 80);
        assert!(conversation.scrollback.entries()[2].internal);
        let crate::scrollback::ScrollPos::Anchor { index, .. } = anchored else { panic!("scrolled") };
        assert_eq!(
            conversation.scrollback.scroll,
            crate::scrollback::ScrollPos::Anchor { index: index + 50, hidden: 0 },
            "the same message stays at the bottom edge"
        );
        assert_eq!(conversation.unread(), 0, "history is not news");
        keys(&mut app, "H");
        assert!(app.status.as_ref().unwrap().text.contains("whole history"));
    }

    #[test]
    fn a_file_is_uploaded_then_sent_as_an_attachment() {
        let mut app = online();
        app.relay_url = "http://relay.test".into();
        let effects = keys(&mut app, "f \"~/发票.pdf\" enter");
        let upload = ApiRequest::Upload { conversation: ConversationId(1), path: "~/发票.pdf".into() };
        assert_eq!(apis(&effects), vec![&upload]);
        let reference = kefu_proto::frame::AttachmentRef {
            id: "att_1".into(),
            name: "发票.pdf".into(),
            size: 12_600,
            content_type: "application/pdf".into(),
        };
        let effects = answer(&mut app, upload.clone(), ApiAnswer::Uploaded(reference));
        let [ClientFrame::Send(send)] = frames(&effects)[..] else { panic!("one send: {effects:?}") };
        assert_eq!((send.body.as_str(), send.attachments.clone()), ("", vec!["att_1".to_string()]));
        let entry = &app.active().unwrap().scrollback.entries()[0];
        assert_eq!(entry.attachments[0].url, "http://relay.test/api/v1/attachments/att_1");
        // Refused by the relay: the reason shows.
        app.update(Action::Api {
            request: upload,
            result: Err(ApiFailure { status: Some(413), code: Some(ErrorCode::TooLarge), message: "too large".into() }),
        });
        let status = app.status.as_ref().unwrap();
        assert!(status.is_error && status.text.contains("too large"));
    }

    fn hits(list: serde_json::Value) -> ApiAnswer {
        ApiAnswer::KbHits(serde_json::from_value(list).unwrap())
    }

    fn article(id: i64, slug: &str, title: &str, body: &str) -> ApiAnswer {
        ApiAnswer::KbArticle(
            serde_json::from_value(json!({
                "id": id, "slug": slug, "title": title, "body": body, "tags": [], "intents": ["return_policy"],
                "language": "zh", "updated_at": NOW,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn the_knowledge_base_is_searched_as_the_agent_types_once_the_query_rests() {
        let mut app = online();
        keys(&mut app, "s");
        assert_eq!(app.overlay, Some(Overlay::Knowledge));
        let effects = keys(&mut app, "\"退货运费\"");
        assert!(apis(&effects).is_empty(), "nothing is searched while typing");
        assert_eq!(app.wake_at(), Some(NOW + crate::knowledge::SEARCH_DEBOUNCE_MS));
        assert!(apis(&app.update(Action::Tick(NOW + 100))).is_empty());
        let effects = app.update(Action::Tick(NOW + crate::knowledge::SEARCH_DEBOUNCE_MS));
        let search = ApiRequest::KbSearch { query: "退货运费".into() };
        assert_eq!(apis(&effects), vec![&search]);
        assert!(app.kb.searching());
        // The answer brings the first article's preview.
        let effects = answer(
            &mut app,
            search,
            hits(json!([
                {"id": 4, "slug": "return-shipping-zh", "title": "退货运费谁出", "snippet": "质量问题退货运费由我们承担。", "score": 7.5, "language": "zh"},
                {"id": 5, "slug": "return-policy-zh", "title": "七天无理由退货", "snippet": "签收后七天内可申请无理由退货。", "score": 5.1, "language": "zh"},
            ])),
        );
        assert_eq!(apis(&effects), vec![&ApiRequest::KbArticle(4)]);
        assert_eq!(apis(&keys(&mut app, "down")), vec![&ApiRequest::KbArticle(5)]);
        answer(
            &mut app,
            ApiRequest::KbArticle(5),
            article(5, "return-policy-zh", "七天无理由退货", "## 七天无理由退货\n\n签收后**七天**内可申请。\n"),
        );
        // The whole article goes into the active conversation's composer.
        keys(&mut app, "A-a");
        assert_eq!(app.overlay, None);
        assert_eq!(app.mode, Mode::Insert);
        assert_eq!(draft(&app), "## 七天无理由退货\n\n签收后**七天**内可申请。");
        assert!(app.status.as_ref().unwrap().text.contains("七天无理由退货"));
        // Reopened, the pane shows the last search; enter inserts the snippet at the caret,
        // and the link line goes in the same way.
        app.active_mut().unwrap().draft = new_composer(false);
        keys(&mut app, "esc s up enter");
        assert_eq!(draft(&app), "质量问题退货运费由我们承担。");
        keys(&mut app, "esc s A-l");
        assert_eq!(draft(&app), "质量问题退货运费由我们承担。退货运费谁出 (kb:return-shipping-zh)");
    }

    #[test]
    fn english_queries_and_answers_to_older_queries() {
        let mut app = online();
        keys(&mut app, "s \"return\"");
        let effects = app.update(Action::Tick(NOW + 300));
        assert_eq!(apis(&effects), vec![&ApiRequest::KbSearch { query: "return".into() }]);
        app.update(Action::Tick(NOW + 400));
        keys(&mut app, "space \"shipping\"");
        app.update(Action::Tick(NOW + 500));
        let effects = app.update(Action::Tick(NOW + 1_000));
        let latest = ApiRequest::KbSearch { query: "return shipping".into() };
        assert_eq!(apis(&effects), vec![&latest]);
        // The older search answers late: dropped.
        let effects = answer(
            &mut app,
            ApiRequest::KbSearch { query: "return".into() },
            hits(json!([{"id": 1, "slug": "old", "title": "Old", "snippet": "old", "score": 1.0, "language": "en"}])),
        );
        assert!(apis(&effects).is_empty());
        assert!(app.kb.hits().is_empty());
        answer(
            &mut app,
            latest,
            hits(
                json!([{"id": 9, "slug": "return-shipping-en", "title": "Who pays for return shipping", "snippet": "Returns are free within 30 days.", "score": 6.0, "language": "en"}]),
            ),
        );
        assert_eq!(app.kb.selected_hit().unwrap().slug, "return-shipping-en");
        // The article is still loading: it cannot go in yet, and the pane stays.
        keys(&mut app, "A-a");
        assert_eq!(app.overlay, Some(Overlay::Knowledge));
        assert!(app.status.as_ref().unwrap().text.contains("loading"));
        // Without a conversation of mine, nothing is inserted and the pane stays open.
        app.update(changed("closed", ConversationView { state: ConversationState::Closed, ..view(1, "李女士") }));
        app.update(changed("closed", ConversationView { state: ConversationState::Closed, ..view(2, "Tom") }));
        keys(&mut app, "enter");
        assert_eq!(app.overlay, Some(Overlay::Knowledge));
        assert!(app.status.as_ref().unwrap().is_error);
    }

    fn ticket(id: i64, subject: &str, status: &str, assignee: Option<i64>, conversation: Option<i64>) -> TicketView {
        serde_json::from_value(json!({
            "id": id, "subject": subject, "description": "客户要求补开发票", "status": status, "priority": "normal",
            "assignee": assignee.map(|a| json!({"id": a, "name": if a == 7 { "小王" } else { "李娜" }})),
            "conversation_id": conversation,
            "created_by": "agent", "created_at": NOW, "updated_at": NOW,
        }))
        .unwrap()
    }

    fn ticket_details(ticket: TicketView, notes: usize) -> ApiAnswer {
        ApiAnswer::Ticket(
            serde_json::from_value(json!({
                "ticket": ticket,
                "notes": (0..notes).map(|i| json!({"author": "小王", "body": format!("备注 {i}"), "at": NOW})).collect::<Vec<_>>(),
                "history": [{"at": NOW, "kind": "ticket.created", "actor_kind": "agent", "actor_id": 7, "data": {}}],
            }))
            .unwrap(),
        )
    }

    use kefu_proto::frame::TicketView;

    #[test]
    fn tickets_are_listed_detailed_changed_and_noted() {
        let mut app = online();
        let mine =
            vec![ticket(11, "补开发票", "open", Some(7), None), ticket(12, "换货 42→43", "pending", Some(7), Some(2))];
        answer(&mut app, ApiRequest::Tickets(TicketScope::Mine), ApiAnswer::Tickets(mine.clone()));
        assert_eq!(app.tickets.open_count(), Some(1), "the status bar's count");
        // Opening the view fetches the list again and the highlighted ticket's details.
        let effects = keys(&mut app, "T");
        assert_eq!(app.overlay, Some(Overlay::Tickets));
        assert_eq!(apis(&effects), vec![&ApiRequest::Tickets(TicketScope::Mine), &ApiRequest::Ticket(11)]);
        answer(&mut app, ApiRequest::Ticket(11), ticket_details(mine[0].clone(), 0));
        // Status: up and down walk the statuses; enter patches and comes back to the view.
        keys(&mut app, "A-s");
        assert!(
            matches!(&app.overlay, Some(Overlay::Prompt { kind: PromptKind::TicketStatus(11), input }) if input == "pending")
        );
        let effects = keys(&mut app, "down enter");
        let patch = TicketPatch { status: Some(TicketStatus::Solved), ..TicketPatch::default() };
        assert_eq!(apis(&effects), vec![&ApiRequest::PatchTicket { id: 11, patch: patch.clone() }]);
        assert_eq!(app.overlay, Some(Overlay::Tickets));
        let effects = answer(
            &mut app,
            ApiRequest::PatchTicket { id: 11, patch },
            ApiAnswer::TicketSaved(ticket(11, "补开发票", "solved", Some(7), None)),
        );
        assert_eq!(apis(&effects), vec![&ApiRequest::Ticket(11)], "its history changed");
        assert_eq!(app.tickets.open_count(), Some(0));
        // A note.
        let effects = keys(&mut app, "A-n \"已联系财务，明天寄出\" enter");
        assert_eq!(apis(&effects), vec![&ApiRequest::AddTicketNote { id: 11, body: "已联系财务，明天寄出".into() }]);
        answer(&mut app, ApiRequest::Ticket(11), ticket_details(ticket(11, "补开发票", "solved", Some(7), None), 0));
        let effects = answer(
            &mut app,
            ApiRequest::AddTicketNote { id: 11, body: "已联系财务，明天寄出".into() },
            ApiAnswer::TicketNoted,
        );
        assert_eq!(apis(&effects), vec![&ApiRequest::Ticket(11)]);
        // Esc in a prompt goes back to the view; the filter finds by words or number.
        keys(&mut app, "A-n esc");
        assert_eq!(app.overlay, Some(Overlay::Tickets));
        let effects = keys(&mut app, "\"换货\"");
        assert_eq!(app.tickets.selected_ticket().map(|t| t.id), Some(12));
        assert_eq!(apis(&effects), vec![&ApiRequest::Ticket(12)]);
        // Enter on a ticket of a conversation I hold goes to it.
        keys(&mut app, "enter");
        assert_eq!((app.overlay.clone(), app.active_id()), (None, Some(ConversationId(2))));
        // All open tickets.
        keys(&mut app, "T C-u");
        assert_eq!(apis(&keys(&mut app, "tab")), vec![&ApiRequest::Tickets(TicketScope::Open)]);
        assert_eq!(app.tickets.scope, TicketScope::Open);
    }

    #[test]
    fn a_ticket_frame_notifies_refreshes_the_view_and_counts() {
        let mut app = online();
        answer(&mut app, ApiRequest::Tickets(TicketScope::Mine), ApiAnswer::Tickets(vec![]));
        assert_eq!(app.tickets.open_count(), Some(0));
        keys(&mut app, "T");
        let frame =
            json!({"type": "ticket", "change": "assigned", "ticket": ticket(21, "退款未到账", "open", Some(7), None)});
        let effects = app.update(server(frame));
        assert!(matches!(&effects[..], [Effect::Notify(n), ..] if n.title.contains("#21") && n.body == "退款未到账"));
        assert_eq!(apis(&effects), vec![&ApiRequest::Tickets(TicketScope::Mine), &ApiRequest::Ticket(21)]);
        assert_eq!(app.tickets.open_count(), Some(1));
        assert_eq!(app.tickets.shown().len(), 1, "shown at once, before the list comes again");
        // Given to someone else: no longer mine.
        let frame =
            json!({"type": "ticket", "change": "updated", "ticket": ticket(21, "退款未到账", "open", Some(8), None)});
        let effects = app.update(server(frame));
        assert!(!effects.iter().any(|e| matches!(e, Effect::Notify(_))));
        assert_eq!(app.tickets.open_count(), Some(0));
    }

    #[test]
    fn a_ticket_is_made_from_the_conversation_with_the_customers_last_words() {
        let mut app = online();
        app.update(customer_says(1, 1, "你好"));
        app.update(customer_says(1, 2, "订单 20251120-8841 一周了还没到\n能帮我查一下吗"));
        keys(&mut app, "N");
        let Some(Overlay::Prompt { kind: PromptKind::NewTicket { conversation, priority }, input }) =
            app.overlay.clone()
        else {
            panic!("the new-ticket prompt: {:?}", app.overlay);
        };
        assert_eq!(
            (conversation, priority, input.as_str()),
            (ConversationId(1), TicketPriority::Normal, "订单 20251120-8841 一周了还没到")
        );
        let effects = keys(&mut app, "down down enter");
        let [ApiRequest::CreateTicket(new)] = apis(&effects)[..] else { panic!("one request: {effects:?}") };
        assert_eq!(new.subject, "订单 20251120-8841 一周了还没到");
        assert_eq!(new.priority, TicketPriority::Urgent);
        assert_eq!(new.conversation_id, Some(ConversationId(1)));
        assert!(new.description.contains("> 能帮我查一下吗"), "{}", new.description);
        let made = ticket(31, &new.subject, "open", Some(7), Some(1));
        // Its `created` frame needs no notification: I made it.
        let effects = app.update(server(json!({"type": "ticket", "change": "created", "ticket": made})));
        assert!(!effects.iter().any(|e| matches!(e, Effect::Notify(_))));
        answer(&mut app, ApiRequest::CreateTicket(new.clone()), ApiAnswer::TicketSaved(made));
        assert!(app.status.as_ref().unwrap().text.contains("#31"));
        // A blank subject is refused in place.
        keys(&mut app, "N C-u enter");
        assert!(matches!(app.overlay, Some(Overlay::Prompt { kind: PromptKind::NewTicket { .. }, .. })));
    }

    /// An app welcomed as 陈主管, a supervisor, with the knowledge base open on a search
    /// for 退货 that found article 4 (loaded).
    fn supervisor_in_the_knowledge_base() -> App {
        let mut app = App::new(Keymap::default_bindings(), Theme::default(), "k".into(), NOW);
        app.update(Action::Net(NetEvent::Opened));
        app.update(server(json!({
            "type": "welcome", "protocol": 1,
            "session": {
                "kind": "agent",
                "agent": {"id": 9, "name": "陈主管", "email": "chen@shop.example", "role": "supervisor", "max_concurrent": 5},
                "presence": "online", "conversations": [],
            },
            "limits": {"max_frame_bytes": 65536, "max_body_bytes": 32768, "frames_per_second": 50, "frame_burst": 200},
        })));
        keys(&mut app, "s \"退货\"");
        app.update(Action::Tick(NOW + 1_000));
        answer(
            &mut app,
            ApiRequest::KbSearch { query: "退货".into() },
            hits(
                json!([{"id": 4, "slug": "return-shipping-zh", "title": "退货运费谁承担", "snippet": "质量问题运费我们出。", "score": 7.5, "language": "zh"}]),
            ),
        );
        answer(
            &mut app,
            ApiRequest::KbArticle(4),
            saved_article(4, "return-shipping-zh", "退货运费谁承担", "质量问题运费我们出。"),
        );
        app
    }

    fn saved_article(id: i64, slug: &str, title: &str, body: &str) -> ApiAnswer {
        let ApiAnswer::KbArticle(article) = article(id, slug, title, body) else { unreachable!() };
        ApiAnswer::KbArticle(article)
    }

    fn editor(app: &App) -> &ArticleEditor {
        app.article_editor.as_ref().expect("the editor is open")
    }

    #[test]
    fn a_supervisor_writes_a_new_article_and_the_pane_finds_it() {
        let mut app = supervisor_in_the_knowledge_base();
        keys(&mut app, "A-c");
        assert_eq!(app.overlay, Some(Overlay::ArticleEditor));
        assert_eq!(app.input_mode(), Mode::Editor);
        // Enter goes from field to field; the language follows the title's script.
        keys(&mut app, "\"发票抬头怎么改\" enter \"发票，抬头\" tab \"invoice_title\" enter enter");
        assert_eq!(editor(&app).value(Field::Language), "zh");
        assert_eq!(editor(&app).focus, Field::Body);
        // In the text, enter starts a new line; pasted text goes in as it is.
        keys(&mut app, "\"##\" space \"改抬头\" enter");
        app.update(Action::Paste("开票前：在订单页修改。\n开票后：联系客服重开。".into()));
        let effects = keys(&mut app, "C-s");
        let [ApiRequest::KbCreateArticle(new)] = apis(&effects)[..] else { panic!("one request: {effects:?}") };
        assert_eq!(
            new,
            &NewArticle {
                slug: None,
                title: "发票抬头怎么改".into(),
                body: "## 改抬头\n开票前：在订单页修改。\n开票后：联系客服重开。".into(),
                tags: vec!["发票".into(), "抬头".into()],
                intents: vec!["invoice_title".into()],
                language: "zh".into(),
            }
        );
        assert!(editor(&app).saving);
        assert!(apis(&keys(&mut app, "C-s")).is_empty(), "one save at a time");
        // Saved: the editor closes, the pane searches for the new article and highlights it.
        let ApiAnswer::KbArticle(stored) = article(12, "article-3f2a-zh", "发票抬头怎么改", &new.body) else {
            unreachable!()
        };
        let effects = answer(&mut app, ApiRequest::KbCreateArticle(new.clone()), ApiAnswer::KbArticleSaved(stored));
        assert_eq!(app.overlay, Some(Overlay::Knowledge));
        assert!(app.article_editor.is_none());
        assert_eq!(apis(&effects), vec![&ApiRequest::KbSearch { query: "发票抬头怎么改".into() }]);
        assert!(app.status.as_ref().unwrap().text.contains("已创建 created 《发票抬头怎么改》"));
        let effects = answer(
            &mut app,
            ApiRequest::KbSearch { query: "发票抬头怎么改".into() },
            hits(json!([
                {"id": 2, "slug": "invoice-zh", "title": "发票", "snippet": "开票", "score": 3.0, "language": "zh"},
                {"id": 12, "slug": "article-3f2a-zh", "title": "发票抬头怎么改", "snippet": "改抬头", "score": 9.0, "language": "zh"},
            ])),
        );
        assert_eq!(app.kb.selected_hit().unwrap().id, 12);
        assert!(apis(&effects).is_empty(), "the saved text is already held for the preview");
    }

    #[test]
    fn a_supervisor_edits_an_article_and_the_relays_refusals_are_shown_in_place() {
        let mut app = supervisor_in_the_knowledge_base();
        keys(&mut app, "A-e");
        assert_eq!(editor(&app).value(Field::Title), "退货运费谁承担");
        assert!(!editor(&app).is_dirty());
        // Unchanged, esc goes straight back to the pane.
        keys(&mut app, "esc");
        assert_eq!(app.overlay, Some(Overlay::Knowledge));
        keys(&mut app, "A-e \"？\" S-tab \"质量问题\"");
        assert_eq!(editor(&app).focus, Field::Body);
        let effects = keys(&mut app, "C-s");
        let [ApiRequest::KbReplaceArticle { id: 4, article: changed }] = apis(&effects)[..] else {
            panic!("{effects:?}")
        };
        assert_eq!(changed.slug.as_deref(), Some("return-shipping-zh"), "links to it keep working");
        assert_eq!(changed.title, "退货运费谁承担？");
        assert_eq!(changed.body, "质量问题质量问题运费我们出。", "the text's caret starts at its beginning");
        assert_eq!(changed.intents, vec!["return_policy"]);
        // The relay names the field: the editor stays, says why, and goes to it.
        let request = ApiRequest::KbReplaceArticle { id: 4, article: changed.clone() };
        app.update(Action::Api {
            request: request.clone(),
            result: Err(ApiFailure {
                status: Some(400),
                code: Some(ErrorCode::BadRequest),
                message: "title must be 1 to 200 characters without control characters".into(),
            }),
        });
        assert_eq!(app.overlay, Some(Overlay::ArticleEditor));
        let error = editor(&app).error.clone().unwrap();
        assert_eq!((error.field, editor(&app).focus, editor(&app).saving), (Some(Field::Title), Field::Title, false));
        assert!(app.status.as_ref().unwrap().is_error);
        // Forbidden (the role changed meanwhile): said plainly, the text is kept.
        keys(&mut app, "C-s");
        app.update(Action::Api {
            request: request.clone(),
            result: Err(ApiFailure {
                status: Some(403),
                code: Some(ErrorCode::Forbidden),
                message: "writing the knowledge base needs the role supervisor or admin".into(),
            }),
        });
        assert!(editor(&app).error.as_ref().unwrap().message.contains("only supervisors and admins"));
        assert!(app.status.as_ref().unwrap().text.contains("cannot save"));
        // Unsaved changes: esc asks; esc again keeps editing; enter discards.
        keys(&mut app, "esc");
        assert!(matches!(app.overlay, Some(Overlay::Prompt { kind: PromptKind::DiscardArticle, .. })));
        keys(&mut app, "esc");
        assert_eq!(app.overlay, Some(Overlay::ArticleEditor));
        assert_eq!(editor(&app).value(Field::Title), "退货运费谁承担？");
        keys(&mut app, "esc enter");
        assert_eq!(app.overlay, Some(Overlay::Knowledge));
        assert!(app.article_editor.is_none());
        // Saved at last: the pane searches its query again and keeps the article highlighted.
        keys(&mut app, "A-e \"？\" C-s");
        let ApiAnswer::KbArticle(stored) = article(4, "return-shipping-zh", "退货运费谁承担？", "质量问题运费我们出。")
        else {
            unreachable!()
        };
        let effects = answer(&mut app, request, ApiAnswer::KbArticleSaved(stored));
        assert_eq!(apis(&effects), vec![&ApiRequest::KbSearch { query: "退货".into() }]);
        assert_eq!(app.kb.query, "退货", "an edit keeps the search");
        assert!(matches!(app.kb.articles.get(&4), Some(Fetched::Ready(a)) if a.title == "退货运费谁承担？"));
    }

    #[test]
    fn a_blank_text_is_named_before_any_request() {
        let mut app = supervisor_in_the_knowledge_base();
        let effects = keys(&mut app, "A-c \"Gift\" space \"wrapping\" C-s");
        assert!(apis(&effects).is_empty());
        assert_eq!(editor(&app).value(Field::Language), "en");
        let error = editor(&app).error.clone().unwrap();
        assert_eq!(error.field, Some(Field::Body));
        assert_eq!(editor(&app).focus, Field::Body);
        assert!(app.status.as_ref().unwrap().text.contains("body is empty"));
        // Writing in the field at fault clears its error.
        keys(&mut app, "\"Free\"");
        assert_eq!(editor(&app).error, None);
    }

    #[test]
    fn a_supervisor_deletes_an_article_after_confirming_it_by_name() {
        let mut app = supervisor_in_the_knowledge_base();
        keys(&mut app, "A-d");
        let Some(Overlay::Prompt { kind: PromptKind::DeleteArticle { id: 4, title }, .. }) = &app.overlay else {
            panic!("{:?}", app.overlay)
        };
        assert_eq!(title, "退货运费谁承担");
        // Esc keeps it and goes back to the pane.
        assert!(apis(&keys(&mut app, "esc")).is_empty());
        assert_eq!(app.overlay, Some(Overlay::Knowledge));
        let effects = keys(&mut app, "A-d enter");
        assert_eq!(apis(&effects), vec![&ApiRequest::KbDeleteArticle(4)]);
        assert_eq!(app.overlay, Some(Overlay::Knowledge));
        let effects = answer(&mut app, ApiRequest::KbDeleteArticle(4), ApiAnswer::KbArticleDeleted);
        assert_eq!(apis(&effects), vec![&ApiRequest::KbSearch { query: "退货".into() }]);
        assert!(!app.kb.articles.contains_key(&4));
        assert!(app.status.as_ref().unwrap().text.contains("已删除 deleted 《退货运费谁承担》"));
        // Refused by the relay: said plainly.
        app.update(Action::Api {
            request: ApiRequest::KbDeleteArticle(4),
            result: Err(ApiFailure {
                status: Some(404),
                code: Some(ErrorCode::NotFound),
                message: "no article 4".into(),
            }),
        });
        let status = app.status.as_ref().unwrap();
        assert!(status.is_error && status.text.contains("cannot delete the article: no article 4"), "{status:?}");
    }

    #[test]
    fn agents_are_told_the_knowledge_base_is_read_only_without_asking_the_relay() {
        let mut app = online();
        assert!(!app.can_write_kb());
        keys(&mut app, "s \"退货\"");
        app.update(Action::Tick(NOW + 1_000));
        answer(
            &mut app,
            ApiRequest::KbSearch { query: "退货".into() },
            hits(json!([{"id": 4, "slug": "r", "title": "退货", "snippet": "s", "score": 1.0, "language": "zh"}])),
        );
        answer(&mut app, ApiRequest::KbArticle(4), article(4, "r", "退货", "正文"));
        for key in ["A-c", "A-e", "A-d"] {
            app.status = None;
            let effects = keys(&mut app, key);
            assert!(apis(&effects).is_empty(), "{key}: no request");
            assert_eq!(app.overlay, Some(Overlay::Knowledge), "{key}: the pane stays");
            let status = app.status.as_ref().unwrap();
            assert!(status.is_error && status.text.contains("only supervisors and admins"), "{key}: {status:?}");
        }
        // From the palette too.
        app.update(Action::Run(Command::KbNewArticle));
        assert!(app.article_editor.is_none());
    }

    #[test]
    fn a_conversation_from_the_bot_announces_its_intent() {
        let mut app = online();
        let mut handed = view(5, "周女士");
        handed.intent = Some("order_status".into());
        handed.last_seq = 3;
        let effects = app.update(changed("assigned", handed));
        assert!(
            matches!(&effects[..], [Effect::Notify(n)] if n.body.contains("意图 intent: order_status")),
            "{effects:?}"
        );
    }

    // ---------------------------------------------------------------------------------
    // Supervising
    // ---------------------------------------------------------------------------------

    /// An app welcomed as 陈主管 (id 9), a supervisor holding conversation 1 (李女士).
    fn supervisor() -> App {
        let mut app = App::new(Keymap::default_bindings(), Theme::default(), "k".into(), NOW);
        app.update(Action::Net(NetEvent::Opened));
        app.update(supervisor_welcome(vec![view(1, "李女士")]));
        app
    }

    fn supervisor_welcome(views: Vec<ConversationView>) -> Action {
        server(json!({
            "type": "welcome", "protocol": 1,
            "session": {
                "kind": "agent",
                "agent": {"id": 9, "name": "陈主管", "email": "chen@shop.example", "role": "supervisor", "max_concurrent": 5},
                "presence": "online", "conversations": views,
            },
            "limits": {"max_frame_bytes": 65536, "max_body_bytes": 32768, "frames_per_second": 50, "frame_burst": 200},
        }))
    }

    /// The monitor at `NOW`: presales waiting 90 s (limit 120 s); 小王 (7) holds 李女士 (1)
    /// and Tom (2), 李娜 (8) holds 赵先生 (21) waiting 40 s for a reply, 张伟 (10) is
    /// offline; one alert on.
    fn monitor() -> Action {
        let alert = json!({"id": "long_wait:30", "kind": "long_wait", "message": "a customer has waited 2m in presales",
                           "since": NOW - 10_000, "conversation_id": 30, "group": "presales"});
        monitor_listing(json!([alert]))
    }

    /// `monitor`, with `alerts` the alerts on.
    fn monitor_listing(alerts: serde_json::Value) -> Action {
        server(json!({
            "type": "monitor", "at": NOW, "wait_alert_ms": 120_000,
            "groups": [{"group": "presales", "waiting": 1, "oldest_queued_at": NOW - 90_000, "agents_online": 2, "capacity": 8}],
            "agents": [
                {"agent": {"id": 7, "name": "小王"}, "role": "agent", "presence": "online", "load": 2, "capacity": 5,
                 "last_reply_at": NOW - 20_000,
                 "conversations": [{"id": 1, "contact_id": 101, "contact": "李女士", "vip": false}, {"id": 2, "contact_id": 102, "contact": "Tom", "vip": false}]},
                {"agent": {"id": 8, "name": "李娜"}, "role": "agent", "presence": "online", "load": 1, "capacity": 3,
                 "conversations": [{"id": 21, "contact_id": 121, "contact": "赵先生", "vip": true, "awaiting_reply_since": NOW - 40_000}]},
                {"agent": {"id": 10, "name": "张伟"}, "role": "agent", "presence": "offline", "load": 0, "capacity": 4,
                 "conversations": []},
            ],
            "alerts": alerts,
            "with_bot": [{"id": 35, "contact_id": 135, "contact": "周女士", "vip": false, "group": "presales", "intent": "refund",
                          "since": NOW - 300_000}],
            "with_bot_total": 1,
        }))
    }

    /// An alert about `conversation` that fired `ago` ms before `NOW`.
    fn alert_about(conversation: i64, ago: i64) -> serde_json::Value {
        json!({"id": format!("long_wait:{conversation}"), "kind": "long_wait", "since": NOW - ago,
               "message": format!("customer of #{conversation} waits"), "conversation_id": conversation})
    }

    fn alert_frame(change: &str, alert: &serde_json::Value) -> Action {
        server(json!({"type": "alert", "change": change, "alert": alert, "at": NOW}))
    }

    fn notified(effects: &[Effect]) -> bool {
        effects.iter().any(|e| matches!(e, Effect::Notify(_)))
    }

    /// 赵先生's conversation (21) as observers see it: 李娜 holds it, three messages so far.
    fn observed_view() -> ConversationView {
        let mut view = view(21, "赵先生");
        view.assignee = Some(kefu_proto::frame::AgentRef { id: kefu_proto::AgentId(8), name: "李娜".into() });
        view.last_seq = 3;
        view
    }

    /// A supervisor with the pane open on the monitor, 李娜's conversation 21 selected.
    fn supervising() -> App {
        let mut app = supervisor();
        keys(&mut app, "M");
        app.update(monitor());
        keys(&mut app, "j tab");
        assert_eq!(app.supervisor.target_conversation(), Some(ConversationId(21)));
        app
    }

    /// `supervising`, then observing conversation 21.
    fn observing() -> App {
        let mut app = supervising();
        keys(&mut app, "o");
        app.update(changed("observed", observed_view()));
        app
    }

    fn observe_frame(id: i64, active: bool) -> ClientFrame {
        ClientFrame::Observe(ObserveConversation { conversation_id: ConversationId(id), active })
    }

    #[test]
    fn agents_are_told_the_supervisor_tools_are_not_theirs() {
        let mut app = online();
        for key in ["M", "R"] {
            app.status = None;
            let effects = keys(&mut app, key);
            assert!(effects.is_empty(), "{key}: nothing is asked of the relay");
            let status = app.status.clone().unwrap();
            assert!(status.is_error && status.text.contains("for supervisors and admins"), "{key}: {status:?}");
        }
        assert!(!app.supervisor.open);
        assert_eq!(app.overlay, None);
        assert_eq!(app.input_mode(), Mode::Normal);
    }

    #[test]
    fn the_pane_asks_for_the_monitor_again_after_a_reconnect_and_stops_when_closed() {
        let mut app = supervisor();
        let effects = keys(&mut app, "M");
        assert_eq!(frames(&effects), vec![&ClientFrame::Supervise(Supervise { active: true })]);
        assert_eq!(app.input_mode(), Mode::Supervisor, "the keyboard goes to the pane");
        app.update(monitor());
        assert_eq!(app.supervisor.agents().len(), 3);
        // w goes back to my own work and returns.
        keys(&mut app, "w");
        assert_eq!(app.input_mode(), Mode::Normal);
        keys(&mut app, "w");
        assert_eq!(app.input_mode(), Mode::Supervisor);
        // Reconnected: the relay forgot the monitor with the old connection.
        app.update(Action::Net(NetEvent::Lost { reason: "closed".into(), retry_at: NOW, attempt: 1 }));
        app.update(Action::Net(NetEvent::Opened));
        let effects = app.update(supervisor_welcome(vec![view(1, "李女士")]));
        assert!(frames(&effects).contains(&&ClientFrame::Supervise(Supervise { active: true })));
        let effects = keys(&mut app, "M");
        assert_eq!(frames(&effects), vec![&ClientFrame::Supervise(Supervise { active: false })]);
        assert!(app.supervisor.monitor.is_none());
        assert_eq!(app.input_mode(), Mode::Normal);
        // A late monitor after closing is not shown.
        app.update(monitor());
        assert!(app.supervisor.monitor.is_none());
        // Closed, the next welcome asks for one monitor only, to confirm the alerts.
        app.update(Action::Net(NetEvent::Opened));
        let effects = app.update(supervisor_welcome(vec![view(1, "李女士")]));
        assert!(frames(&effects).contains(&&ClientFrame::Supervise(Supervise { active: true })));
        let effects = app.update(monitor());
        assert_eq!(frames(&effects), vec![&ClientFrame::Supervise(Supervise { active: false })]);
        assert!(app.supervisor.monitor.is_none(), "the pane stays closed");
        assert!(app.update(monitor()).is_empty(), "a later one is dropped");
    }

    #[test]
    fn alerts_on_before_a_reconnect_are_confirmed_by_the_first_monitor() {
        let mut app = supervisor();
        // Two alerts fire with the pane closed.
        assert!(notified(&app.update(alert_frame("fired", &alert_about(21, 0)))));
        assert!(notified(&app.update(alert_frame("fired", &alert_about(30, 0)))));
        // Away: #21's `resolved` is missed, and a relay restarted meanwhile remembers
        // nothing of #30 but fired it again when it saw the wait.
        app.update(Action::Net(NetEvent::Lost { reason: "closed".into(), retry_at: NOW, attempt: 1 }));
        app.update(Action::Net(NetEvent::Opened));
        let effects = app.update(supervisor_welcome(vec![view(1, "李女士")]));
        assert!(
            frames(&effects).contains(&&ClientFrame::Supervise(Supervise { active: true })),
            "the monitor is asked for though the pane is closed: {effects:?}"
        );
        assert_eq!(app.supervisor.alerts_on(), 2, "still shown until the relay says");
        let refired = alert_about(30, -3_000);
        let effects = app.update(monitor_listing(json!([refired, alert_about(40, 5_000)])));
        assert_eq!(frames(&effects), vec![&ClientFrame::Supervise(Supervise { active: false })], "stopped again");
        assert!(!notified(&effects), "alerts listed by the monitor are shown, not notified");
        assert!(app.supervisor.monitor.is_none(), "the pane stays closed");
        let on: Vec<&str> = app.supervisor.alerts.iter().filter(|a| a.is_on()).map(|a| a.alert.id.as_str()).collect();
        assert_eq!(on, vec!["long_wait:30", "long_wait:40"]);
        assert_eq!(app.supervisor.alerts_on(), 2, "#21 no longer counts");
        // The `fired` of #30's new firing, late: it was notified already.
        assert!(!notified(&app.update(alert_frame("fired", &refired))));
    }

    #[test]
    fn the_alert_highlight_stays_on_its_alert_when_a_new_one_fires() {
        let mut app = supervising();
        // Older than the monitor's #30: below it in the feed.
        app.update(alert_frame("fired", &alert_about(21, 60_000)));
        keys(&mut app, "tab j");
        assert_eq!(app.supervisor.section, Section::Alerts);
        assert_eq!(app.supervisor.target_conversation(), Some(ConversationId(21)));
        // A new alert goes on top of the feed: the highlight stays on #21's.
        app.update(alert_frame("fired", &alert_about(31, 0)));
        assert_eq!(app.supervisor.alerts[0].alert.conversation_id, Some(ConversationId(31)), "newest first");
        assert_eq!(app.supervisor.target_conversation(), Some(ConversationId(21)));
        let effects = keys(&mut app, "o");
        assert_eq!(frames(&effects), vec![&observe_frame(21, true)]);
        // Its alert gone, the highlight falls to the top of the feed.
        app.update(server(json!({"type": "alert", "change": "resolved", "alert": alert_about(21, 60_000), "at": NOW})));
        app.update(Action::Tick(NOW + crate::supervisor::RESOLVED_SHOWN_MS));
        assert_eq!(app.supervisor.target_conversation(), Some(ConversationId(31)));
    }

    #[test]
    fn waits_grow_with_local_time_between_monitors() {
        let mut app = supervising();
        let queue = app.supervisor.queues()[0].clone();
        assert_eq!(app.supervisor.sla_band(&queue, app.now), Some(crate::supervisor::SlaBand::Near));
        app.update(Action::Tick(NOW + 30_000));
        assert_eq!(app.supervisor.longest_wait(&queue, app.now), Some(120_000));
        assert_eq!(app.supervisor.sla_band(&queue, app.now), Some(crate::supervisor::SlaBand::Breached));
    }

    #[test]
    fn a_fired_alert_notifies_and_a_resolved_one_is_marked() {
        // Alerts reach supervisors whether the pane is open or not.
        let mut app = supervisor();
        let alert = json!({"id": "agent_not_replying:21", "kind": "agent_not_replying",
                           "message": "李娜 has not answered 赵先生 for 5m", "since": NOW, "conversation_id": 21, "agent_id": 8});
        let effects = app.update(server(json!({"type": "alert", "change": "fired", "alert": alert, "at": NOW})));
        let [Effect::Notify(notice)] = &effects[..] else { panic!("one notification: {effects:?}") };
        assert!(notice.title.contains("agent not replying"), "{notice:?}");
        assert!(notice.body.contains("李娜 has not answered"), "{notice:?}");
        assert!(app.status.as_ref().unwrap().text.contains("李娜 has not answered"), "the status line says it too");
        assert_eq!(app.supervisor.alerts_on(), 1);
        // The same firing again is not news.
        let effects =
            app.update(server(json!({"type": "alert", "change": "fired", "alert": alert, "at": NOW + 1_000})));
        assert!(effects.is_empty());
        let effects =
            app.update(server(json!({"type": "alert", "change": "resolved", "alert": alert, "at": NOW + 60_000})));
        assert!(effects.is_empty(), "a resolved alert is not notified");
        assert_eq!(app.supervisor.alerts_on(), 0);
        assert!(!app.supervisor.alerts[0].is_on(), "kept in the feed, marked resolved");
        app.update(Action::Tick(NOW + crate::supervisor::RESOLVED_SHOWN_MS));
        assert!(app.supervisor.alerts.is_empty(), "then it goes");
    }

    #[test]
    fn observing_opens_a_read_only_tab_where_only_whispers_go() {
        let mut app = supervising();
        let effects = keys(&mut app, "o");
        assert_eq!(frames(&effects), vec![&observe_frame(21, true)]);
        assert!(app.conversation(ConversationId(21)).is_none(), "the tab opens when the relay says so");
        app.update(changed("observed", observed_view()));
        let c = app.conversation(ConversationId(21)).unwrap();
        assert!(c.observed && !c.is_mine() && c.is_writable());
        assert_eq!(app.active_id(), Some(ConversationId(21)), "it opens as the active tab");
        assert_eq!(app.load(), 1, "an observed conversation is not my load");
        assert!(app.status.as_ref().unwrap().text.contains("observing 赵先生"));
        // Its history and live messages follow, notes included: no notification, and
        // no read receipt to the customer from an observer.
        let effects = app.update(customer_says(21, 1, "我的退款呢？"));
        assert!(effects.is_empty(), "{effects:?}");
        let effects = app.update(customer_says(21, 4, "还在吗？"));
        assert!(effects.is_empty(), "{effects:?}");
        // Back to my own work: the composer only whispers.
        keys(&mut app, "w");
        let effects = keys(&mut app, "i \"退款已批，提醒客户查收\" enter");
        let sends: Vec<&SendMessage> = frames(&effects)
            .into_iter()
            .filter_map(|f| if let ClientFrame::Send(s) = f { Some(s) } else { None })
            .collect();
        assert_eq!(sends.len(), 1);
        assert!(sends[0].internal, "a whisper is a private note");
        assert_eq!(sends[0].conversation_id, Some(ConversationId(21)));
        assert!(
            !frames(&effects).iter().any(|f| matches!(f, ClientFrame::Typing(_))),
            "no typing shown to the customer"
        );
        // Nor can it be switched to a reply, resolved or closed.
        keys(&mut app, "esc");
        app.status = None;
        keys(&mut app, "n");
        assert!(app.status.as_ref().unwrap().text.contains("only whisper"));
        assert!(app.active().unwrap().note_mode);
        assert!(frames(&keys(&mut app, "r")).is_empty());
        assert_eq!(app.overlay, None);
        // It is asked for again after a reconnect, never resumed as mine.
        assert_eq!(app.resume_points().len(), 1);
        app.update(Action::Net(NetEvent::Lost { reason: "closed".into(), retry_at: NOW, attempt: 1 }));
        app.update(Action::Net(NetEvent::Opened));
        let effects = app.update(supervisor_welcome(vec![view(1, "李女士")]));
        assert!(frames(&effects).contains(&&observe_frame(21, true)));
        assert!(app.conversation(ConversationId(21)).is_some(), "kept across the welcome");
        assert!(!frames(&effects).iter().any(|f| matches!(f, ClientFrame::Send(_))), "whispers wait for `observed`");
        // Observed again, and it moved meanwhile: the whisper goes again, a line says where.
        let mut moved = observed_view();
        moved.assignee = Some(kefu_proto::frame::AgentRef { id: kefu_proto::AgentId(7), name: "小王".into() });
        let effects = app.update(changed("observed", moved));
        assert_eq!(sent_ids(&effects), vec!["k-1"]);
        let entries = app.conversation(ConversationId(21)).unwrap().scrollback.entries();
        assert!(entries.iter().any(|e| e.notice && e.body.contains("now with 小王")));
        // Closing the tab stops following it.
        let effects = keys(&mut app, "x");
        assert_eq!(frames(&effects), vec![&observe_frame(21, false)]);
        assert!(app.conversation(ConversationId(21)).is_none());
    }

    #[test]
    fn an_observed_frame_for_a_closed_tab_stops_observing_again() {
        let mut app = observing();
        let effects = keys(&mut app, "w x");
        assert_eq!(frames(&effects), vec![&observe_frame(21, false)]);
        // The relay sent this before it heard me stop: no tab again, and it hears it again.
        let mut moved = observed_view();
        moved.assignee = Some(kefu_proto::frame::AgentRef { id: kefu_proto::AgentId(7), name: "小王".into() });
        let effects = app.update(changed("observed", moved));
        assert_eq!(frames(&effects), vec![&observe_frame(21, false)]);
        assert!(app.conversation(ConversationId(21)).is_none());
        assert!(!app.tabs.contains(&ConversationId(21)));
        // Asked again from the pane, it opens as before.
        keys(&mut app, "w");
        app.supervisor.section = Section::Conversations;
        app.supervisor.agent_selected = Some(kefu_proto::AgentId(8));
        let effects = keys(&mut app, "o");
        assert_eq!(frames(&effects), vec![&observe_frame(21, true)]);
        app.update(changed("observed", observed_view()));
        assert!(app.conversation(ConversationId(21)).is_some_and(|c| c.observed));
    }

    #[test]
    fn an_observed_conversation_that_closed_while_away_goes_with_its_whispers() {
        let mut app = observing();
        keys(&mut app, "w i \"还在处理吗\" enter esc");
        app.update(Action::Net(NetEvent::Lost { reason: "closed".into(), retry_at: NOW, attempt: 1 }));
        app.update(Action::Net(NetEvent::Opened));
        let effects = app.update(supervisor_welcome(vec![view(1, "李女士")]));
        assert!(frames(&effects).contains(&&observe_frame(21, true)));
        app.status = None;
        let effects = app.update(Action::Server(ServerFrame::Error(ErrorFrame {
            code: ErrorCode::NotFound,
            message: "no such open conversation".into(),
            client_msg_id: None,
            conversation_id: Some(ConversationId(21)),
        })));
        assert!(effects.is_empty(), "{effects:?}");
        assert!(app.conversation(ConversationId(21)).is_none(), "the tab goes");
        assert_eq!(app.tabs, vec![ConversationId(1)]);
        let status = app.status.clone().unwrap();
        assert!(
            status.text.contains("赵先生") && status.text.contains("closed") && status.text.contains("1 whisper"),
            "{status:?}"
        );
    }

    #[test]
    fn a_refused_observe_names_the_customer() {
        let mut app = supervising();
        keys(&mut app, "o");
        app.update(Action::Server(ServerFrame::Error(ErrorFrame {
            code: ErrorCode::NotFound,
            message: "no such open conversation".into(),
            client_msg_id: None,
            conversation_id: Some(ConversationId(21)),
        })));
        let status = app.status.clone().unwrap();
        assert!(
            status.is_error && status.text.contains("observe refused") && status.text.contains("赵先生"),
            "{status:?}"
        );
    }

    #[test]
    fn taking_over_an_observed_conversation_makes_it_mine() {
        let mut app = observing();
        keys(&mut app, "w i \"草稿\" esc w");
        let effects = keys(&mut app, "c");
        assert_eq!(
            frames(&effects),
            vec![&ClientFrame::TakeOver(TakeOverConversation { conversation_id: ConversationId(21) })]
        );
        let mut mine = observed_view();
        mine.assignee = Some(kefu_proto::frame::AgentRef { id: kefu_proto::AgentId(9), name: "陈主管".into() });
        let effects = app.update(changed("assigned", mine));
        assert!(!effects.iter().any(|e| matches!(e, Effect::Notify(_))), "what I took needs no notification");
        assert_eq!(frames(&effects), vec![&observe_frame(21, false)], "held now, not observed");
        let c = app.conversation(ConversationId(21)).unwrap();
        assert!(c.is_mine() && !c.observed);
        assert_eq!(c.draft_text(), "草稿", "the draft survives");
        assert!(c.note_mode, "still on notes: it never switches to the customer by itself");
        assert_eq!(app.load(), 2);
        assert!(app.status.as_ref().unwrap().text.contains("took over 赵先生"));
        // Mine: resolving works, and the next welcome resumes it.
        assert!(app.resume_points().iter().any(|p| p.conversation_id == ConversationId(21)));
        // Taking over what is mine already is refused here.
        keys(&mut app, "k tab tab tab");
        app.supervisor.section = Section::Conversations;
        app.supervisor.agent_selected = Some(kefu_proto::AgentId(7));
        app.supervisor.conversation_selected = Some(ConversationId(1));
        let effects = keys(&mut app, "c");
        assert!(frames(&effects).is_empty());
        assert!(app.status.as_ref().unwrap().text.contains("yours already"));
    }

    #[test]
    fn a_supervisor_takes_over_straight_from_the_pane() {
        let mut app = supervising();
        keys(&mut app, "c");
        let mut mine = observed_view();
        mine.assignee = Some(kefu_proto::frame::AgentRef { id: kefu_proto::AgentId(9), name: "陈主管".into() });
        app.update(changed("assigned", mine));
        let c = app.conversation(ConversationId(21)).unwrap();
        assert!(c.is_mine() && !c.note_mode, "never observed: a reply composer");
        assert_eq!(app.active_id(), Some(ConversationId(21)));
        // Refused: the status line names it.
        keys(&mut app, "k");
        app.supervisor.section = Section::Alerts;
        keys(&mut app, "c");
        app.update(Action::Server(ServerFrame::Error(ErrorFrame {
            code: ErrorCode::Conflict,
            message: "the bot is answering".into(),
            client_msg_id: None,
            conversation_id: Some(ConversationId(30)),
        })));
        let status = app.status.clone().unwrap();
        assert!(status.text.contains("take over refused") && status.text.contains("#30"), "{status:?}");
    }

    #[test]
    fn a_supervisor_observes_and_takes_over_a_conversation_the_bot_is_answering() {
        let mut app = supervising();
        // From the agent's conversations, back past the agents to the bot's.
        keys(&mut app, "S-tab S-tab");
        assert_eq!(app.supervisor.section, Section::Bot);
        assert_eq!(app.supervisor.target_conversation(), Some(ConversationId(35)));
        assert_eq!(app.customer_of(ConversationId(35)).as_deref(), Some("周女士"));
        let effects = keys(&mut app, "enter");
        assert_eq!(frames(&effects), vec![&observe_frame(35, true)], "enter observes it");
        let effects = keys(&mut app, "c");
        assert_eq!(
            frames(&effects),
            vec![&ClientFrame::TakeOver(TakeOverConversation { conversation_id: ConversationId(35) })]
        );
        assert!(app.status.as_ref().unwrap().text.contains("周女士"), "{:?}", app.status);
    }

    #[test]
    fn reassigning_from_the_pane_transfers_a_conversation_not_held() {
        let mut app = supervising();
        let effects = keys(&mut app, "t");
        assert_eq!(apis(&effects), vec![&ApiRequest::Agents, &ApiRequest::Groups]);
        let groups: Vec<GroupView> =
            serde_json::from_value(json!([{"id": 1, "slug": "presales", "name": "售前"}])).unwrap();
        answer(&mut app, ApiRequest::Groups, ApiAnswer::Groups(groups));
        answer(&mut app, ApiRequest::Agents, ApiAnswer::Agents(Vec::new()));
        let effects = keys(&mut app, "\"售前\" enter \"VIP客户，请优先\" enter");
        assert_eq!(
            frames(&effects),
            vec![&ClientFrame::Transfer(TransferConversation {
                conversation_id: ConversationId(21),
                to: TransferTarget::Group { group: Some("presales".into()) },
                note: Some("VIP客户，请优先".into()),
            })]
        );
        assert!(app.status.as_ref().unwrap().text.contains("reassigning 赵先生"));
        assert_eq!(app.input_mode(), Mode::Supervisor, "back in the pane");
        // Nothing selected to reassign: said so.
        app.supervisor.section = Section::Agents;
        assert!(apis(&keys(&mut app, "t")).is_empty());
        assert!(app.status.as_ref().unwrap().text.contains("select a conversation"));
    }

    #[test]
    fn capacity_and_presence_change_through_the_api() {
        let mut app = supervising();
        keys(&mut app, "S-tab");
        assert_eq!(app.supervisor.selected_agent().unwrap().agent.name, "李娜");
        keys(&mut app, "m");
        assert!(
            matches!(&app.overlay, Some(Overlay::Prompt { kind: PromptKind::AgentCapacity { .. }, input }) if input == "3")
        );
        keys(&mut app, "C-u \"four\" enter");
        assert!(app.status.as_ref().unwrap().is_error, "not a number: said so");
        let effects = keys(&mut app, "C-u \"4\" enter");
        let patch = AgentPatch { max_concurrent: Some(4), ..AgentPatch::default() };
        assert_eq!(apis(&effects), vec![&ApiRequest::PatchAgent { id: kefu_proto::AgentId(8), patch: patch.clone() }]);
        let saved: AgentView = serde_json::from_value(
            json!({"id": 8, "name": "李娜", "email": "lina@shop.example", "role": "agent", "max_concurrent": 4}),
        )
        .unwrap();
        answer(&mut app, ApiRequest::PatchAgent { id: kefu_proto::AgentId(8), patch }, ApiAnswer::AgentSaved(saved));
        assert!(app.status.as_ref().unwrap().text.contains("李娜 takes up to 4"));
        // Presence: online → away.
        let effects = keys(&mut app, "p");
        let away = AgentPatch { presence: Some(Presence::Away), ..AgentPatch::default() };
        assert_eq!(apis(&effects), vec![&ApiRequest::PatchAgent { id: kefu_proto::AgentId(8), patch: away.clone() }]);
        app.update(Action::Api {
            request: ApiRequest::PatchAgent { id: kefu_proto::AgentId(8), patch: away },
            result: Err(ApiFailure { status: Some(409), code: None, message: "李娜 is not connected".into() }),
        });
        let status = app.status.clone().unwrap();
        assert!(status.is_error && status.text.contains("cannot change 李娜"), "{status:?}");
        // An offline agent's presence is not the supervisor's to set.
        keys(&mut app, "j");
        assert!(apis(&keys(&mut app, "p")).is_empty());
        assert!(app.status.as_ref().unwrap().text.contains("张伟 is offline"));
    }

    #[test]
    fn the_report_is_fetched_in_local_time_switched_by_key_and_exported() {
        let mut app = supervisor();
        app.utc_offset_secs = 8 * 3600;
        let effects = keys(&mut app, "R");
        assert_eq!(app.overlay, Some(Overlay::Report));
        let [ApiRequest::Report(week)] = apis(&effects)[..] else { panic!("a report request: {effects:?}") };
        assert_eq!(week.range, crate::reports::ReportRange::Week);
        assert_eq!(week.tz_offset_minutes, 480);
        assert_eq!((week.to - week.from + 8 * 3_600_000 - 1) / 86_400_000, 7, "today and six days before");
        let week = *week;
        let effects = keys(&mut app, "right");
        let [ApiRequest::Report(month)] = apis(&effects)[..] else { panic!("a report request: {effects:?}") };
        assert_eq!(month.range, crate::reports::ReportRange::Month);
        let month = *month;
        // The late answer for the week is not shown for the month.
        let report: kefu_proto::report::Report = serde_json::from_value(sample_report()).unwrap();
        answer(&mut app, ApiRequest::Report(week), ApiAnswer::Report(Box::new(report.clone())));
        assert!(app.report.shown().is_none());
        answer(&mut app, ApiRequest::Report(month), ApiAnswer::Report(Box::new(report)));
        assert_eq!(app.report.shown().map(|(w, _)| w.range), Some(crate::reports::ReportRange::Month));
        let effects = keys(&mut app, "C-s");
        let [ApiRequest::ExportReport { window, file }] = apis(&effects)[..] else { panic!("an export: {effects:?}") };
        assert_eq!(*window, month);
        assert_eq!(file, "kefu-report-30d-2025-11-21.csv");
        assert!(apis(&keys(&mut app, "C-s")).is_empty(), "one export at a time");
        let request = ApiRequest::ExportReport { window: month, file: file.clone() };
        let path = "/home/chen/kefu-report-30d-2025-11-21.csv".to_string();
        answer(&mut app, request, ApiAnswer::ReportExported { path, bytes: 2048 });
        assert!(app.status.as_ref().unwrap().text.contains("/home/chen/kefu-report-30d-2025-11-21.csv"));
        assert!(!app.report.exporting);
        keys(&mut app, "esc");
        assert_eq!(app.overlay, None);
    }

    /// A small report as the relay serves it.
    fn sample_report() -> serde_json::Value {
        let durations = json!({"count": 0, "mean_ms": null, "p50_ms": null, "p90_ms": null});
        let figures = json!({
            "conversations": 12, "queued": 10, "resolved": 9, "bot_resolved": 2, "abandoned": 1, "still_open": 2,
            "resolution_rate": 0.75, "abandonment_rate": 0.1,
            "first_response": {"count": 9, "mean_ms": 30000.0, "p50_ms": 21000, "p90_ms": 95000},
            "service_level": {"answered": 9, "within_15s": 3, "within_60s": 7, "share_15s": 0.333, "share_60s": 0.778},
            "reply_time": durations, "handle_time": durations, "resolution_time": durations,
            "transfers": 2, "transferred_conversations": 2, "reopens": 1, "reopened_conversations": 1,
            "csat": {"ratings": 5, "average": 4.2, "distribution": [0, 1, 0, 1, 3]},
        });
        let counts: Vec<Vec<u64>> = (0..7).map(|_| vec![0; 24]).collect();
        json!({
            "query": {"from": NOW - 86_400_000, "to": NOW, "tz_offset_minutes": 480, "group": null, "agent": null, "channel": null},
            "overall": figures,
            "by_group": [], "by_agent": [{"agent_id": 7, "name": "小王", "figures": figures}], "by_channel": [],
            "arrivals": {"tz_offset_minutes": 480, "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "counts": counts},
        })
    }

    // ---------------------------------------------------------------------------------
    // Masked personal data
    // ---------------------------------------------------------------------------------

    /// A customer's message whose personal data the relay masked for me.
    fn masked_says(conversation: i64, seq: Seq, body: &str) -> Action {
        let Action::Server(ServerFrame::Message(mut m)) = customer_says(conversation, seq, body) else {
            unreachable!()
        };
        m.masked = true;
        Action::Server(ServerFrame::Message(m))
    }

    fn revealed(conversation: i64, messages: &[(Seq, &str)]) -> ApiAnswer {
        ApiAnswer::Revealed(kefu_proto::api::RevealedMessages {
            conversation_id: ConversationId(conversation),
            messages: messages
                .iter()
                .map(|(seq, body)| kefu_proto::api::RevealedMessage { seq: *seq, body: body.to_string() })
                .collect(),
        })
    }

    fn message_at(app: &App, conversation: i64, seq: Seq) -> &Entry {
        let c = app.conversation(ConversationId(conversation)).unwrap();
        c.scrollback.entries().iter().find(|e| e.seq == Some(seq) && !e.notice).unwrap()
    }

    #[test]
    fn masked_personal_data_is_revealed_after_a_confirmation_and_the_audit_is_said() {
        use crate::scrollback::Masking;
        let mut app = online();
        app.update(customer_says(1, 1, "你好"));
        app.update(masked_says(1, 2, "我的电话 138****5678，邮箱 z***@example.com"));
        assert_eq!(message_at(&app, 1, 2).masking, Masking::Masked);
        assert_eq!(message_at(&app, 1, 1).masking, Masking::Clear);
        // V asks first: a reveal is recorded, so a stray key must not do it.
        let effects = keys(&mut app, "V");
        assert!(apis(&effects).is_empty());
        assert!(matches!(
            app.overlay,
            Some(Overlay::Prompt { kind: PromptKind::RevealMaskedData(ConversationId(1)), .. })
        ));
        keys(&mut app, "esc");
        assert_eq!(app.overlay, None);
        assert_eq!(message_at(&app, 1, 2).body, "我的电话 138****5678，邮箱 z***@example.com", "kept masked");
        // Confirmed: the relay is asked, once.
        let effects = keys(&mut app, "V enter");
        assert_eq!(apis(&effects), vec![&ApiRequest::Reveal(ConversationId(1))]);
        assert!(apis(&keys(&mut app, "V")).is_empty(), "no second reveal while one is on its way");
        assert_eq!(app.overlay, None);
        let body = "我的电话 13812345678，邮箱 zhang@example.com";
        answer(&mut app, ApiRequest::Reveal(ConversationId(1)), revealed(1, &[(2, body)]));
        let entry = message_at(&app, 1, 2);
        assert_eq!((entry.body.as_str(), entry.masking), (body, Masking::Revealed));
        let status = app.status.clone().unwrap();
        assert!(!status.is_error);
        assert!(status.text.contains("1 message of 李女士"), "{}", status.text);
        assert!(status.text.contains("recorded in the audit log"), "{}", status.text);
        // A ticket made from the conversation quotes the customer as the relay masked it.
        keys(&mut app, "N");
        let Some(Overlay::Prompt { kind: PromptKind::NewTicket { .. }, input }) = app.overlay.clone() else {
            panic!("the new-ticket prompt: {:?}", app.overlay)
        };
        assert_eq!(input, "我的电话 138****5678，邮箱 z***@example.com");
        keys(&mut app, "esc");
        // What comes later stays masked until revealed again.
        app.update(masked_says(1, 3, "卡号 6222 **** **** 1234"));
        let entry = message_at(&app, 1, 3);
        assert_eq!((entry.body.as_str(), entry.masking), ("卡号 6222 **** **** 1234", Masking::Masked));
        assert_eq!(message_at(&app, 1, 2).masking, Masking::Revealed, "the earlier one stays revealed");
        let effects = keys(&mut app, "V enter");
        assert_eq!(apis(&effects), vec![&ApiRequest::Reveal(ConversationId(1))]);
        answer(
            &mut app,
            ApiRequest::Reveal(ConversationId(1)),
            revealed(1, &[(2, body), (3, "卡号 6222 0202 0000 1234")]),
        );
        assert_eq!(message_at(&app, 1, 3).body, "卡号 6222 0202 0000 1234");
        assert!(app.status.as_ref().unwrap().text.contains("2 messages"));
    }

    #[test]
    fn a_reveal_with_nothing_masked_or_refused_says_so_in_the_status_line() {
        use crate::scrollback::Masking;
        let mut app = online();
        app.update(customer_says(1, 1, "你好"));
        let effects = keys(&mut app, "V");
        assert!(effects.is_empty() && app.overlay.is_none(), "nothing to reveal, nothing asked");
        assert!(app.status.as_ref().unwrap().text.contains("nothing is masked"));
        app.update(masked_says(1, 2, "z***@example.com"));
        let effects = keys(&mut app, "V enter");
        assert_eq!(apis(&effects), vec![&ApiRequest::Reveal(ConversationId(1))]);
        app.update(Action::Api {
            request: ApiRequest::Reveal(ConversationId(1)),
            result: Err(ApiFailure {
                status: Some(404),
                code: Some(ErrorCode::NotFound),
                message: "no conversation 1".into(),
            }),
        });
        let status = app.status.clone().unwrap();
        assert!(status.is_error && status.text.contains("cannot reveal 李女士's personal data"), "{status:?}");
        assert!(status.text.contains("404"), "{}", status.text);
        assert_eq!(message_at(&app, 1, 2).masking, Masking::Masked);
        // It may be asked again.
        assert_eq!(apis(&keys(&mut app, "V enter")), vec![&ApiRequest::Reveal(ConversationId(1))]);
        app.update(Action::Api {
            request: ApiRequest::Reveal(ConversationId(1)),
            result: Err(ApiFailure::local("cannot reach the relay: connection refused")),
        });
        assert!(app.status.as_ref().unwrap().text.contains("connection refused"));
        // No conversation open.
        keys(&mut app, "x x");
        keys(&mut app, "V");
        assert!(app.status.as_ref().unwrap().text.contains("no conversation open"));
    }

    // ---------------------------------------------------------------------------------
    // The audit log
    // ---------------------------------------------------------------------------------

    /// An app welcomed as 周管理 (id 1), an admin holding conversation 1 (李女士).
    fn admin() -> App {
        let mut app = App::new(Keymap::default_bindings(), Theme::default(), "k".into(), NOW);
        app.update(Action::Net(NetEvent::Opened));
        app.update(server(json!({
            "type": "welcome", "protocol": 1,
            "session": {
                "kind": "agent",
                "agent": {"id": 1, "name": "周管理", "email": "zhou@shop.example", "role": "admin", "max_concurrent": 5},
                "presence": "online", "conversations": [view(1, "李女士")],
            },
            "limits": {"max_frame_bytes": 65536, "max_body_bytes": 32768, "frames_per_second": 50, "frame_burst": 200},
        })));
        app
    }

    fn audit_event(id: i64, kind: &str, actor: Option<i64>, conversation: Option<i64>) -> kefu_proto::api::EventView {
        serde_json::from_value(json!({
            "id": id, "at": NOW - 60_000 + id, "kind": kind,
            "actor_kind": if actor.is_some() { "agent" } else { "system" }, "actor_id": actor,
            "conversation_id": conversation, "data": {"seqs": [2]},
        }))
        .unwrap()
    }

    fn events(after: i64, kind: Option<&str>) -> ApiRequest {
        ApiRequest::Events { after, kind: kind.map(str::to_string), limit: crate::audit::PAGE }
    }

    fn shown_ids(app: &App) -> Vec<i64> {
        app.audit.shown().iter().map(|e| e.id).collect()
    }

    #[test]
    fn only_admins_open_the_audit_log() {
        for (mut app, role) in [(online(), "an agent"), (supervisor(), "a supervisor")] {
            let effects = keys(&mut app, "A");
            assert!(apis(&effects).is_empty(), "{role}: nothing is asked of the relay");
            assert_eq!(app.overlay, None);
            let status = app.status.clone().unwrap();
            assert!(status.is_error && status.text.contains("for admins"), "{status:?}");
            assert!(status.text.contains(role), "{status:?}");
        }
    }

    #[test]
    fn the_audit_log_lists_the_newest_events_filters_by_kind_and_refreshes() {
        let mut app = admin();
        let effects = keys(&mut app, "A");
        assert_eq!(app.overlay, Some(Overlay::Audit));
        assert_eq!(apis(&effects), vec![&events(0, None), &ApiRequest::Agents], "agents, to name the actors");
        let page = vec![
            audit_event(1, "routing.assigned", Some(7), Some(1)),
            audit_event(2, "pii.revealed", Some(1), Some(1)),
            audit_event(3, "alert.fired", None, Some(30)),
        ];
        let effects = answer(&mut app, events(0, None), ApiAnswer::Events(page));
        assert!(apis(&effects).is_empty(), "a page that is not full was all of it");
        assert_eq!(shown_ids(&app), vec![3, 2, 1], "newest first");
        answer(&mut app, ApiRequest::Agents, ApiAnswer::Agents(Vec::new()));
        // Typing narrows at once; a dot asks the relay for that kind.
        assert!(apis(&keys(&mut app, "\"pii\"")).is_empty());
        assert_eq!(shown_ids(&app), vec![2]);
        assert_eq!(apis(&keys(&mut app, "\".\"")), vec![&events(0, Some("pii."))]);
        answer(
            &mut app,
            events(0, Some("pii.")),
            ApiAnswer::Events(vec![audit_event(2, "pii.revealed", Some(1), Some(1))]),
        );
        // Refreshing asks only for what is new.
        let effects = keys(&mut app, "C-r");
        assert_eq!(apis(&effects), vec![&events(2, Some("pii."))]);
        answer(
            &mut app,
            events(2, Some("pii.")),
            ApiAnswer::Events(vec![audit_event(5, "pii.revealed", Some(7), Some(42))]),
        );
        assert_eq!(shown_ids(&app), vec![5, 2]);
        // Enter on an event about a conversation not held says so; on one held, goes to it.
        keys(&mut app, "enter");
        assert!(app.status.as_ref().unwrap().text.contains("#42 is not open here"));
        assert_eq!(app.overlay, Some(Overlay::Audit));
        keys(&mut app, "down enter");
        assert_eq!((app.overlay.clone(), app.active_id()), (None, Some(ConversationId(1))));
        // Open again: the filter is kept, and only what is new is asked for; a refusal is
        // shown, and what was held stays.
        assert_eq!(apis(&keys(&mut app, "A")), vec![&events(5, Some("pii."))]);
        app.update(Action::Api {
            request: events(5, Some("pii.")),
            result: Err(ApiFailure {
                status: Some(403),
                code: Some(ErrorCode::Forbidden),
                message: "admins only".into(),
            }),
        });
        let status = app.status.clone().unwrap();
        assert!(status.is_error && status.text.contains("cannot load the audit log"), "{status:?}");
        assert_eq!(shown_ids(&app), vec![5, 2]);
        keys(&mut app, "esc");
        assert_eq!(app.overlay, None);
    }

    #[test]
    fn an_admin_no_more_after_a_reconnect_keeps_nothing_of_the_audit_log() {
        let mut app = admin();
        keys(&mut app, "A");
        answer(&mut app, events(0, None), ApiAnswer::Events(vec![audit_event(1, "alert.fired", None, None)]));
        app.update(Action::Net(NetEvent::Opened));
        app.update(welcome(vec![view(1, "李女士")]));
        assert_eq!(app.overlay, None);
        assert!(app.audit.shown().is_empty());
    }
}
