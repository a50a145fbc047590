//! The supervisor pane's state: the latest `monitor` frame (queues, conversations with
//! the bot, agents and the conversations they hold), the alerts feed, and where the
//! selection is.
//!
//! The relay sends a monitor only when something changed, so ages are counted here: from
//! the relay's own clock in the frame (`at`) plus the time that passed locally since the
//! frame arrived. That keeps a skewed local clock out of the figures.
//!
//! Pure: the app feeds it frames and ticks and reads the selection to act on.

use kefu_proto::frame::{
    AgentMonitor, AlertChange, AlertFrame, AlertKind, AlertView, BotConversationMonitor, GroupMonitor, MonitorFrame,
    MonitoredConversation, MonitoredCustomer,
};
use kefu_proto::{AgentId, ConversationId, UnixMillis};

use crate::app::contact_label;

/// A monitored customer's name, or the label the workstation gives a customer without one.
pub fn customer_label(customer: &MonitoredCustomer) -> String {
    contact_label(customer.contact.as_deref(), customer.contact_id)
}

/// How long a resolved alert stays in the feed, marked, before it goes.
pub const RESOLVED_SHOWN_MS: i64 = 5 * 60_000;
/// Most alerts the feed keeps (the oldest resolved ones go first).
const FEED_MAX: usize = 50;

/// The pane's tables, in the order the focus walks them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Section {
    /// One row per queue.
    Queues,
    /// Conversations the bot is answering (to observe or take over).
    Bot,
    /// One row per agent.
    #[default]
    Agents,
    /// The conversations the selected agent holds.
    Conversations,
    /// The alerts feed.
    Alerts,
}

impl Section {
    /// Every section, top to bottom.
    pub const ALL: [Section; 5] =
        [Section::Queues, Section::Bot, Section::Agents, Section::Conversations, Section::Alerts];
}

/// How a queue's longest wait stands against the alert limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaBand {
    /// Under half the limit.
    Calm,
    /// Half the limit or more, still under it.
    Near,
    /// At or past the limit: an alert is (or is about to be) on.
    Breached,
}

impl SlaBand {
    /// Where `wait_ms` stands against `limit_ms`.
    pub fn of(wait_ms: i64, limit_ms: i64) -> SlaBand {
        if wait_ms >= limit_ms {
            SlaBand::Breached
        } else if wait_ms * 2 >= limit_ms {
            SlaBand::Near
        } else {
            SlaBand::Calm
        }
    }

    /// A mark that tells the bands apart without colour (mono theme, screen readers).
    pub fn mark(self) -> &'static str {
        match self {
            SlaBand::Calm => "●",
            SlaBand::Near => "▲",
            SlaBand::Breached => "■",
        }
    }
}

/// What an alert is about, in words for the feed.
pub fn alert_kind_label(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::LongWait => "排队过久 long wait",
        AlertKind::NoAgentOnline => "无人在线 no agent online",
        AlertKind::CsatLow => "满意度低 CSAT low",
        AlertKind::BadRatingsRising => "差评上升 bad ratings rising",
        AlertKind::AgentNotReplying => "坐席未回复 agent not replying",
    }
}

/// One alert in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedAlert {
    /// As the relay last described it.
    pub alert: AlertView,
    /// The relay's clock when it was last heard of: its age is counted from it…
    relay_at: UnixMillis,
    /// …plus the time passed on ours since this moment.
    local_at: UnixMillis,
    /// When its condition cleared (our clock), if it did: it is shown marked until it goes.
    pub resolved_at: Option<UnixMillis>,
    /// A desktop notification went out for this firing.
    notified: bool,
}

impl FeedAlert {
    fn new(alert: AlertView, relay_at: UnixMillis, local_at: UnixMillis) -> FeedAlert {
        FeedAlert { alert, relay_at, local_at, resolved_at: None, notified: false }
    }

    /// The relay's clock read `relay_at` when ours read `local_at`: the latest reading
    /// counts ages best.
    fn heard(&mut self, relay_at: UnixMillis, local_at: UnixMillis) {
        self.relay_at = relay_at;
        self.local_at = local_at;
    }

    /// How long ago it fired, at `now` (our clock).
    pub fn age(&self, now: UnixMillis) -> i64 {
        (self.relay_at - self.alert.since + (now - self.local_at)).max(0)
    }

    /// Whether its condition still holds.
    pub fn is_on(&self) -> bool {
        self.resolved_at.is_none()
    }
}

/// The supervisor pane, open or not (alerts arrive either way).
#[derive(Debug, Default)]
pub struct SupervisorPane {
    /// The pane is shown (and the relay was asked for the monitor).
    pub open: bool,
    /// The keyboard is in the pane rather than on my own conversations.
    pub focused: bool,
    /// The latest monitor, once one came.
    pub monitor: Option<MonitorFrame>,
    /// Our clock when it came: ages add the time passed since.
    pub received_at: UnixMillis,
    /// Alerts, newest first: those on, and those resolved a short while ago.
    pub alerts: Vec<FeedAlert>,
    /// The table the selection is in.
    pub section: Section,
    /// The highlighted queue, by row.
    pub queue_selected: usize,
    /// The highlighted conversation with the bot, by id, so it stays on it when the list
    /// changes.
    pub bot_selected: Option<ConversationId>,
    /// The highlighted agent, by id, so it stays on them when the list reorders.
    pub agent_selected: Option<AgentId>,
    /// The highlighted conversation of that agent, by id.
    pub conversation_selected: Option<ConversationId>,
    /// The highlighted alert, by id, so it stays on that alert when the feed reorders (a
    /// new alert goes on top).
    pub alert_selected: Option<String>,
    /// The alerts on are not confirmed: set after each welcome, until the next monitor
    /// lists those still on. A `resolved` may have gone missing while we were away, and a
    /// restarted relay forgets its alerts without resolving them.
    pub alerts_unconfirmed: bool,
}

impl SupervisorPane {
    /// Opens the pane with the keyboard in it; the monitor comes from the relay.
    pub fn open(&mut self) {
        self.open = true;
        self.focused = true;
        self.monitor = None;
    }

    /// Closes the pane; the alerts feed stays for the next time.
    pub fn close(&mut self) {
        self.open = false;
        self.focused = false;
        self.monitor = None;
    }

    /// The relay's clock now, as far as the last monitor tells.
    fn relay_now(&self, now: UnixMillis) -> Option<UnixMillis> {
        self.monitor.as_ref().map(|m| m.at + (now - self.received_at))
    }

    /// How long the longest-waiting customer of `queue` has waited, at `now`.
    pub fn longest_wait(&self, queue: &GroupMonitor, now: UnixMillis) -> Option<i64> {
        let relay_now = self.relay_now(now)?;
        queue.oldest_queued_at.map(|since| (relay_now - since).max(0))
    }

    /// How `queue` stands against the alert limit, at `now` (none while nobody waits).
    pub fn sla_band(&self, queue: &GroupMonitor, now: UnixMillis) -> Option<SlaBand> {
        let limit = self.monitor.as_ref()?.wait_alert_ms;
        self.longest_wait(queue, now).map(|wait| SlaBand::of(wait, limit))
    }

    /// Time since the agent last replied to a customer, at `now`.
    pub fn since_last_reply(&self, agent: &AgentMonitor, now: UnixMillis) -> Option<i64> {
        let relay_now = self.relay_now(now)?;
        agent.last_reply_at.map(|at| (relay_now - at).max(0))
    }

    /// How long the bot has had `conversation`, at `now`.
    pub fn with_bot_for(&self, conversation: &BotConversationMonitor, now: UnixMillis) -> Option<i64> {
        let relay_now = self.relay_now(now)?;
        Some((relay_now - conversation.since).max(0))
    }

    /// How long the customer of `conversation` has waited for a reply, at `now`.
    pub fn awaiting_reply(&self, conversation: &MonitoredConversation, now: UnixMillis) -> Option<i64> {
        let relay_now = self.relay_now(now)?;
        conversation.awaiting_reply_since.map(|since| (relay_now - since).max(0))
    }

    /// A new monitor: the tables are replaced, and its alerts are taken as with
    /// [`SupervisorPane::on_alerts_listed`].
    pub fn on_monitor(&mut self, frame: MonitorFrame, now: UnixMillis) {
        self.merge_listed(&frame.alerts, frame.at, now);
        self.monitor = Some(frame);
        self.received_at = now;
        self.order_feed();
        self.keep_selection();
    }

    /// A welcome came: the alerts on stay shown, but unconfirmed until the next monitor.
    pub fn reconnected(&mut self) {
        self.alerts_unconfirmed = true;
    }

    /// The alerts a monitor lists (`relay_at` its time), without its tables: the pane is
    /// closed and the monitor was asked for only to confirm the alerts after a reconnect.
    pub fn on_alerts_listed(&mut self, listed: &[AlertView], relay_at: UnixMillis, now: UnixMillis) {
        self.merge_listed(listed, relay_at, now);
        self.order_feed();
        self.keep_alert_selection();
    }

    /// A monitor lists every alert that is on, and it confirms the feed. Those it lists join
    /// the feed: alerts on before it came are not news, they are shown, not notified, and
    /// those held already keep their record (notified once per firing). One of ours that it
    /// no longer lists has cleared.
    fn merge_listed(&mut self, listed: &[AlertView], relay_at: UnixMillis, now: UnixMillis) {
        self.alerts_unconfirmed = false;
        for alert in listed {
            match self.alerts.iter_mut().find(|a| a.alert.id == alert.id) {
                Some(held) if held.is_on() => {
                    held.alert = alert.clone();
                    held.heard(relay_at, now);
                }
                Some(held) => {
                    // It cleared and is on again: a new firing.
                    *held = FeedAlert::new(alert.clone(), relay_at, now);
                }
                None => self.alerts.push(FeedAlert::new(alert.clone(), relay_at, now)),
            }
        }
        for held in self.alerts.iter_mut().filter(|a| a.is_on()) {
            if !listed.iter().any(|a| a.id == held.alert.id) {
                held.resolved_at = Some(now);
                held.heard(relay_at, now);
            }
        }
    }

    /// An alert fired or cleared. Returns the alert when it deserves a notification: a
    /// firing not notified yet.
    pub fn on_alert(&mut self, frame: AlertFrame, now: UnixMillis) -> Option<&AlertView> {
        let AlertFrame { change, alert, at } = frame;
        let index = match self.alerts.iter().position(|a| a.alert.id == alert.id) {
            Some(i) => i,
            None if change == AlertChange::Resolved => return None,
            None => {
                self.alerts.push(FeedAlert::new(alert.clone(), at, now));
                self.alerts.len() - 1
            }
        };
        let held = &mut self.alerts[index];
        let id = alert.id.clone();
        match change {
            AlertChange::Fired => {
                if !held.is_on() || held.alert.since != alert.since {
                    *held = FeedAlert::new(alert, at, now);
                } else {
                    held.alert = alert;
                    held.heard(at, now);
                }
            }
            AlertChange::Resolved => {
                if held.is_on() {
                    held.resolved_at = Some(now);
                }
                held.heard(at, now);
                return None;
            }
        }
        self.order_feed();
        self.keep_alert_selection();
        let held = self.alerts.iter_mut().find(|a| a.alert.id == id)?;
        if held.notified {
            return None;
        }
        held.notified = true;
        Some(&held.alert)
    }

    /// Time passed: resolved alerts shown long enough go.
    pub fn on_tick(&mut self, now: UnixMillis) {
        let before = self.alerts.len();
        self.alerts.retain(|a| a.resolved_at.is_none_or(|at| now - at < RESOLVED_SHOWN_MS));
        if self.alerts.len() != before {
            self.keep_alert_selection();
        }
    }

    /// Alerts that are on.
    pub fn alerts_on(&self) -> usize {
        self.alerts.iter().filter(|a| a.is_on()).count()
    }

    /// Newest firing first; a full feed drops its oldest resolved alerts, then its oldest.
    fn order_feed(&mut self) {
        self.alerts.sort_by(|a, b| b.alert.since.cmp(&a.alert.since).then_with(|| a.alert.id.cmp(&b.alert.id)));
        while self.alerts.len() > FEED_MAX {
            let drop = self.alerts.iter().rposition(|a| !a.is_on()).unwrap_or(self.alerts.len() - 1);
            self.alerts.remove(drop);
        }
    }

    /// The queues, as the monitor lists them.
    pub fn queues(&self) -> &[GroupMonitor] {
        self.monitor.as_ref().map_or(&[], |m| m.groups.as_slice())
    }

    /// The conversations with the bot, as the monitor lists them.
    pub fn with_bot(&self) -> &[BotConversationMonitor] {
        self.monitor.as_ref().map_or(&[], |m| m.with_bot.as_slice())
    }

    /// How many conversations the bot is answering in all (the list may be shorter).
    pub fn with_bot_total(&self) -> usize {
        self.monitor.as_ref().map_or(0, |m| (m.with_bot_total as usize).max(m.with_bot.len()))
    }

    /// Where the highlighted conversation is among those with the bot.
    pub fn bot_index(&self) -> usize {
        let listed = self.with_bot();
        self.bot_selected.and_then(|id| listed.iter().position(|c| c.id == id)).unwrap_or(0)
    }

    /// The highlighted conversation with the bot.
    pub fn selected_bot_conversation(&self) -> Option<&BotConversationMonitor> {
        self.with_bot().get(self.bot_index())
    }

    /// The agents, as the monitor lists them.
    pub fn agents(&self) -> &[AgentMonitor] {
        self.monitor.as_ref().map_or(&[], |m| m.agents.as_slice())
    }

    /// Where the highlighted agent is in the list.
    pub fn agent_index(&self) -> usize {
        let agents = self.agents();
        self.agent_selected.and_then(|id| agents.iter().position(|a| a.agent.id == id)).unwrap_or(0)
    }

    /// The highlighted agent.
    pub fn selected_agent(&self) -> Option<&AgentMonitor> {
        self.agents().get(self.agent_index())
    }

    /// Where the highlighted conversation is among the selected agent's.
    pub fn conversation_index(&self) -> usize {
        let Some(agent) = self.selected_agent() else { return 0 };
        self.conversation_selected.and_then(|id| agent.conversations.iter().position(|c| c.id == id)).unwrap_or(0)
    }

    /// The conversation highlighted in the conversations table, with its agent.
    pub fn selected_conversation(&self) -> Option<(&AgentMonitor, &MonitoredConversation)> {
        let agent = self.selected_agent()?;
        agent.conversations.get(self.conversation_index()).map(|c| (agent, c))
    }

    /// Where the highlighted alert is in the feed.
    pub fn alert_index(&self) -> usize {
        let alerts = &self.alerts;
        self.alert_selected.as_ref().and_then(|id| alerts.iter().position(|a| &a.alert.id == id)).unwrap_or(0)
    }

    /// The highlighted alert.
    pub fn selected_alert(&self) -> Option<&FeedAlert> {
        self.alerts.get(self.alert_index())
    }

    /// The conversation the selection is about, if any: the highlighted conversation, or
    /// the one the highlighted alert concerns.
    pub fn target_conversation(&self) -> Option<ConversationId> {
        match self.section {
            Section::Conversations => self.selected_conversation().map(|(_, c)| c.id),
            Section::Bot => self.selected_bot_conversation().map(|c| c.id),
            Section::Alerts => self.selected_alert().and_then(|a| a.alert.conversation_id),
            Section::Queues | Section::Agents => None,
        }
    }

    /// The customer's name in a conversation the monitor lists.
    pub fn customer_of(&self, conversation: ConversationId) -> Option<String> {
        let held = self.agents().iter().flat_map(|a| &a.conversations).find(|c| c.id == conversation);
        let customer = held
            .map(|c| &c.customer)
            .or_else(|| self.with_bot().iter().find(|c| c.id == conversation).map(|c| &c.customer));
        customer.map(customer_label)
    }

    /// Moves the highlight within the current table by `delta` (wrapping).
    pub fn select(&mut self, delta: isize) {
        let step = |current: usize, count: usize| (current as isize + delta).rem_euclid(count.max(1) as isize) as usize;
        match self.section {
            Section::Queues => self.queue_selected = step(self.queue_selected, self.queues().len()),
            Section::Bot => {
                let next = step(self.bot_index(), self.with_bot().len());
                self.bot_selected = self.with_bot().get(next).map(|c| c.id);
            }
            Section::Agents => {
                let next = step(self.agent_index(), self.agents().len());
                self.agent_selected = self.agents().get(next).map(|a| a.agent.id);
                self.conversation_selected = None;
            }
            Section::Conversations => {
                let count = self.selected_agent().map_or(0, |a| a.conversations.len());
                let next = step(self.conversation_index(), count);
                self.conversation_selected =
                    self.selected_agent().and_then(|a| a.conversations.get(next)).map(|c| c.id);
            }
            Section::Alerts => {
                let next = step(self.alert_index(), self.alerts.len());
                self.alert_selected = self.alerts.get(next).map(|a| a.alert.id.clone());
            }
        }
    }

    /// Moves to the next (or previous) table.
    pub fn next_section(&mut self, delta: isize) {
        let at = Section::ALL.iter().position(|s| *s == self.section).unwrap_or(0);
        let next = (at as isize + delta).rem_euclid(Section::ALL.len() as isize) as usize;
        self.section = Section::ALL[next];
        self.keep_selection();
    }

    /// Keeps each highlight on a row that exists.
    fn keep_selection(&mut self) {
        self.queue_selected = self.queue_selected.min(self.queues().len().saturating_sub(1));
        self.keep_alert_selection();
        let bot = self.selected_bot_conversation().map(|c| c.id);
        self.bot_selected = bot;
        let agent = self.selected_agent().map(|a| a.agent.id);
        self.agent_selected = agent;
        let conversation = self.selected_conversation().map(|(_, c)| c.id);
        self.conversation_selected = conversation;
    }

    /// Keeps the alert highlight on an alert in the feed (the first, when its own went).
    fn keep_alert_selection(&mut self) {
        let alert = self.selected_alert().map(|a| a.alert.id.clone());
        self.alert_selected = alert;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const AT: UnixMillis = 1_763_683_200_000;

    fn alert(id: &str, since_ago: i64) -> serde_json::Value {
        json!({"id": id, "kind": "long_wait", "message": format!("{id} waits"), "since": AT - since_ago})
    }

    fn monitor(alerts: Vec<serde_json::Value>) -> MonitorFrame {
        serde_json::from_value(json!({
            "at": AT, "wait_alert_ms": 120_000,
            "groups": [{"group": "presales", "waiting": 2, "oldest_queued_at": AT - 50_000, "agents_online": 1, "capacity": 3}],
            "agents": [
                {"agent": {"id": 7, "name": "小王"}, "role": "agent", "presence": "online", "load": 1, "capacity": 3,
                 "last_reply_at": AT - 30_000,
                 "conversations": [{"id": 1, "contact_id": 101, "contact": "李女士", "vip": true}, {"id": 2, "contact_id": 102, "contact": "Tom", "vip": false}]},
                {"agent": {"id": 8, "name": "李娜"}, "role": "agent", "presence": "away", "load": 0, "capacity": 5,
                 "conversations": []},
            ],
            "alerts": alerts,
            "with_bot": [
                {"id": 5, "contact_id": 105, "contact": "周女士", "vip": false, "intent": "refund", "since": AT - 300_000},
                {"id": 6, "contact_id": 106, "vip": true, "group": "presales", "since": AT - 20_000},
            ],
            "with_bot_total": 7,
        }))
        .unwrap()
    }

    fn alert_frame(change: &str, alert: serde_json::Value) -> AlertFrame {
        serde_json::from_value(json!({"change": change, "alert": alert, "at": AT})).unwrap()
    }

    #[test]
    fn bands_split_at_half_the_limit_and_at_it() {
        assert_eq!(SlaBand::of(59_999, 120_000), SlaBand::Calm);
        assert_eq!(SlaBand::of(60_000, 120_000), SlaBand::Near);
        assert_eq!(SlaBand::of(119_999, 120_000), SlaBand::Near);
        assert_eq!(SlaBand::of(120_000, 120_000), SlaBand::Breached);
    }

    #[test]
    fn waits_count_from_the_relays_clock_plus_time_passed_here() {
        let mut pane = SupervisorPane::default();
        // Our clock is an hour off the relay's: it must not matter.
        let local = AT + 3_600_000;
        pane.on_monitor(monitor(vec![]), local);
        let queue = pane.queues()[0].clone();
        assert_eq!(pane.longest_wait(&queue, local), Some(50_000));
        assert_eq!(pane.sla_band(&queue, local), Some(SlaBand::Calm));
        assert_eq!(pane.longest_wait(&queue, local + 20_000), Some(70_000));
        assert_eq!(pane.sla_band(&queue, local + 20_000), Some(SlaBand::Near));
        assert_eq!(pane.sla_band(&queue, local + 70_000), Some(SlaBand::Breached));
        let agent = pane.agents()[0].clone();
        assert_eq!(pane.since_last_reply(&agent, local + 1_000), Some(31_000));
        assert_eq!(pane.since_last_reply(&pane.agents()[1].clone(), local), None);
    }

    #[test]
    fn alerts_are_notified_once_per_firing_and_resolved_ones_fade() {
        let mut pane = SupervisorPane::default();
        // On before the monitor came: shown, not news.
        pane.on_monitor(monitor(vec![alert("long_wait:1", 10_000)]), AT);
        assert_eq!(pane.alerts_on(), 1);
        // A new one fires: notified once, even if the monitor lists it first.
        pane.on_monitor(monitor(vec![alert("long_wait:1", 10_000), alert("long_wait:2", 0)]), AT);
        assert!(pane.on_alert(alert_frame("fired", alert("long_wait:2", 0)), AT).is_some());
        assert!(pane.on_alert(alert_frame("fired", alert("long_wait:2", 0)), AT).is_none());
        assert_eq!(pane.alerts[0].alert.id, "long_wait:2", "newest first");
        // Resolved: marked, then gone after a while.
        assert!(pane.on_alert(alert_frame("resolved", alert("long_wait:2", 0)), AT + 1_000).is_none());
        assert!(!pane.alerts[0].is_on());
        assert_eq!(pane.alerts_on(), 1);
        pane.on_tick(AT + 1_000 + RESOLVED_SHOWN_MS);
        assert_eq!(pane.alerts.len(), 1);
        // A monitor without the first: it cleared too.
        pane.on_monitor(monitor(vec![]), AT + 2_000);
        assert_eq!(pane.alerts_on(), 0);
        // It fires again later: a new firing, notified again.
        assert!(pane.on_alert(alert_frame("fired", alert("long_wait:1", -5_000)), AT + 5_000).is_some());
    }

    #[test]
    fn the_selection_walks_tables_and_stays_on_its_agent() {
        let mut pane = SupervisorPane::default();
        pane.open();
        pane.on_monitor(monitor(vec![]), AT);
        assert_eq!(pane.section, Section::Agents);
        pane.select(1);
        assert_eq!(pane.selected_agent().map(|a| a.agent.name.as_str()), Some("李娜"));
        pane.select(1);
        assert_eq!(pane.selected_agent().map(|a| a.agent.name.as_str()), Some("小王"));
        pane.next_section(1);
        assert_eq!(pane.section, Section::Conversations);
        pane.select(1);
        assert_eq!(pane.target_conversation(), Some(ConversationId(2)));
        assert_eq!(pane.customer_of(ConversationId(2)).as_deref(), Some("Tom"));
        // The agents reorder: the highlight follows 小王.
        let mut frame = monitor(vec![]);
        frame.agents.reverse();
        pane.on_monitor(frame, AT);
        assert_eq!(pane.agent_index(), 1);
        assert_eq!(pane.target_conversation(), Some(ConversationId(2)));
        pane.next_section(-3);
        assert_eq!(pane.section, Section::Queues);
        assert_eq!(pane.target_conversation(), None);
    }

    #[test]
    fn conversations_with_the_bot_are_a_table_of_their_own() {
        let mut pane = SupervisorPane::default();
        pane.open();
        pane.on_monitor(monitor(vec![]), AT);
        pane.next_section(-1);
        assert_eq!(pane.section, Section::Bot);
        assert_eq!(pane.target_conversation(), Some(ConversationId(5)), "the longest with the bot first");
        assert_eq!(pane.customer_of(ConversationId(5)).as_deref(), Some("周女士"));
        assert_eq!(pane.with_bot_for(&pane.with_bot()[0].clone(), AT + 1_000), Some(301_000));
        assert_eq!(pane.with_bot_total(), 7, "more than the monitor lists");
        pane.select(1);
        assert_eq!(pane.target_conversation(), Some(ConversationId(6)));
        // No name given: labelled as the workstation labels such a customer everywhere.
        assert_eq!(pane.customer_of(ConversationId(6)).as_deref(), Some("访客 #106"));
        // The first one is handed over: the highlight stays on the second.
        let mut frame = monitor(vec![]);
        frame.with_bot.remove(0);
        pane.on_monitor(frame, AT);
        assert_eq!(pane.target_conversation(), Some(ConversationId(6)));
        // The bot has nobody left: nothing to act on.
        let mut frame = monitor(vec![]);
        frame.with_bot.clear();
        pane.on_monitor(frame, AT);
        assert_eq!(pane.target_conversation(), None);
        pane.select(1);
        assert_eq!(pane.target_conversation(), None);
    }
}
