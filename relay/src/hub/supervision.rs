//! Supervision, on the hub's task: the live monitor for supervisors who asked for it,
//! read-only observers of conversations, take-overs, agents' presence set by a supervisor,
//! and alerts (evaluated on each tick by the pure [`crate::alerts`] core, then told to
//! supervisors' connections, written to the event log and handed to the webhook).
//!
//! Every supervisor action is written to the event log with who did it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use kefu_proto::frame::{
    AgentMonitor, AlertChange, AlertFrame, AlertView, BotConversationMonitor, ContactView, ConversationChange,
    ConversationState, GroupMonitor, MonitorFrame, MonitoredConversation, MonitoredCustomer, Presence, PresenceFrame,
    Role, ServerFrame,
};
use kefu_proto::{AgentId, ConversationId, ErrorCode, ProtocolError, UnixMillis, WorkspaceId};
use tokio::sync::{mpsc, oneshot};

use super::{ConnId, Hub, Outbound, Who, conversation_frame};
use crate::alerts::{self, AlertRules, Alerts, Facts, GroupFact, UnansweredFact, WaitingFact};
use crate::conversation::Transition;
use crate::journal::{EventRecord, JournalOp};
use crate::permissions::{self, Permission};
use crate::routing::{Availability, Event, GroupId, Routable};
use crate::telemetry::{HubGauges, Telemetry};

/// Most conversations the monitor lists as with the bot (the longest with it); the frame
/// counts the rest. A busy shop has the bot answering thousands at once, and the monitor
/// goes out whole on every change.
const MONITOR_BOT_CONVERSATIONS: usize = 100;

/// A conversation's customer as the monitor shows them.
fn monitored_customer(contact: &ContactView) -> MonitoredCustomer {
    MonitoredCustomer { contact_id: contact.id, contact: contact.name.clone(), vip: contact.vip }
}

/// Whether two monitors say the same, whatever their time. (Every field is named, so a new
/// one cannot be forgotten here.)
fn same_monitor(a: &MonitorFrame, b: &MonitorFrame) -> bool {
    let MonitorFrame { at: _, wait_alert_ms, groups, agents, alerts, with_bot, with_bot_total } = a;
    *wait_alert_ms == b.wait_alert_ms
        && *groups == b.groups
        && *agents == b.agents
        && *alerts == b.alerts
        && *with_bot == b.with_bot
        && *with_bot_total == b.with_bot_total
}

/// An alert on its way to the webhook.
#[derive(Debug, Clone)]
pub struct AlertNotice {
    /// The workspace it is about.
    pub workspace: WorkspaceId,
    /// The change.
    pub frame: AlertFrame,
}

/// What supervision starts from.
pub struct SupervisionStart {
    /// The alert thresholds.
    pub rules: AlertRules,
    /// The workspace's latest ratings (conversation, score), oldest first.
    pub ratings: Vec<(ConversationId, u8)>,
    /// Where alerts go besides supervisors and the event log.
    pub webhook: Option<mpsc::Sender<AlertNotice>>,
    /// The operators' metrics the hub feeds.
    pub telemetry: Arc<Telemetry>,
    /// Roles whose connections receive messages with personal data masked.
    pub masked_roles: Vec<Role>,
}

/// The hub's supervision state.
pub(super) struct Supervision {
    /// Connections that asked for the monitor.
    monitors: HashSet<ConnId>,
    /// Connections following each conversation read-only.
    observers: HashMap<ConversationId, Vec<ConnId>>,
    /// The last monitor sent (its `at` aside), to send only changes.
    last_sent: Option<MonitorFrame>,
    alerts: Alerts,
    rules: AlertRules,
    /// The latest ratings (conversation, score), oldest first: two CSAT windows.
    ratings: VecDeque<(ConversationId, u8)>,
    webhook: Option<mpsc::Sender<AlertNotice>>,
    pub(super) telemetry: Arc<Telemetry>,
    masked_roles: Vec<Role>,
}

impl Supervision {
    pub(super) fn new(start: SupervisionStart) -> Supervision {
        let keep = 2 * start.rules.csat_window;
        let skip = start.ratings.len().saturating_sub(keep);
        Supervision {
            monitors: HashSet::new(),
            observers: HashMap::new(),
            last_sent: None,
            alerts: Alerts::default(),
            ratings: start.ratings.into_iter().skip(skip).collect(),
            rules: start.rules,
            webhook: start.webhook,
            telemetry: start.telemetry,
            masked_roles: start.masked_roles,
        }
    }

    /// The connections following a conversation.
    pub(super) fn observers(&self, conversation: ConversationId) -> &[ConnId] {
        self.observers.get(&conversation).map_or(&[], Vec::as_slice)
    }
}

impl Hub {
    /// A supervisor starts or stops the monitor; starting sends it at once.
    pub(super) fn supervise(&mut self, conn: ConnId, active: bool) {
        // A connection the hub already let go of (a slow consumer) must not linger here.
        if !active || !self.is_supervisor(conn) {
            self.supervision.monitors.remove(&conn);
            return;
        }
        self.supervision.monitors.insert(conn);
        let frame = self.monitor_frame();
        self.send(conn, Outbound::frame(ServerFrame::Monitor(frame)));
    }

    /// A supervisor starts or stops following a conversation read-only.
    pub(super) fn observe(&mut self, conn: ConnId, conversation: ConversationId, active: bool) {
        let Some(supervisor) = self.requesting_agent(conn) else { return };
        if !active {
            if let Some(list) = self.supervision.observers.get_mut(&conversation) {
                list.retain(|c| *c != conn);
                if list.is_empty() {
                    self.supervision.observers.remove(&conversation);
                }
            }
            return;
        }
        let Some(view) = self.view(conversation) else {
            return self.refuse(conn, conversation, ErrorCode::NotFound, "no such open conversation");
        };
        let list = self.supervision.observers.entry(conversation).or_default();
        if !list.contains(&conn) {
            list.push(conn);
        }
        self.audit(supervisor, self.origin_of(conn), "supervisor.observed", Some(conversation), serde_json::json!({}));
        self.send(conn, Outbound::frame(conversation_frame(ConversationChange::Observed, view, None)));
    }

    /// A supervisor becomes the conversation's agent. One the bot is answering is handed
    /// over on the spot (the bot stops; an answer it was still preparing is dropped) and
    /// goes straight to the supervisor.
    pub(super) fn take_over(&mut self, conn: ConnId, conversation: ConversationId) {
        let Some(supervisor) = self.requesting_agent(conn) else { return };
        let arriving = match self.conversations.get(&conversation).map(|c| c.decided.state) {
            None => return self.refuse(conn, conversation, ErrorCode::NotFound, "no such open conversation"),
            Some(ConversationState::Resolved) => {
                return self.refuse(conn, conversation, ErrorCode::Conflict, "the conversation is resolved");
            }
            Some(ConversationState::Bot) => match self.take_from_bot(conn, supervisor, conversation) {
                Some(routable) => Some(routable),
                None => return,
            },
            Some(_) => None,
        };
        self.taking_from_bot = arriving.is_some().then_some(conversation);
        self.route(Event::TakeOver { conversation, agent: supervisor, arriving }, Some(conn));
        self.taking_from_bot = None;
    }

    /// Takes a conversation from the bot for `supervisor`: the hand-over is recorded with
    /// who asked for it, and the conversation's routing facts come back for the router,
    /// which has not seen it yet.
    fn take_from_bot(&mut self, conn: ConnId, supervisor: AgentId, conversation: ConversationId) -> Option<Routable> {
        let now = self.now();
        let origin = self.origin_of(conn);
        let conv = self.conversations.get_mut(&conversation)?;
        let next = match conv.decided.apply(Transition::HandOver, now) {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(%conversation, error = %e, "take-over from the bot does not fit the lifecycle");
                return None;
            }
        };
        conv.bot = None;
        let (route, vip) = (conv.route, conv.contact.vip);
        let event = EventRecord {
            kind: "conversation.handed_over",
            actor_kind: "agent",
            actor_id: Some(supervisor.0),
            origin,
            data: serde_json::json!({ "reason": "taken_over", "intent": conv.intent }),
        };
        let queued_at = next.queued_at.unwrap_or(now);
        self.commit_transition(conversation, next, None, None, None, event);
        Some(Routable { conversation, group: route.group, priority: route.priority, vip, queued_at, preferred: None })
    }

    /// A supervisor sets an agent's presence (the agent must be connected).
    pub(super) fn set_agent_presence(
        &mut self,
        agent: AgentId,
        status: Presence,
        by: AgentId,
        origin: Option<String>,
        reply: oneshot::Sender<Result<(), ProtocolError>>,
    ) {
        let Some(entry) = self.agents.get_mut(&agent) else {
            let _ = reply.send(Err(ProtocolError::new(ErrorCode::NotFound, format!("no agent {agent}"))));
            return;
        };
        if entry.conns.is_empty() {
            let error =
                ProtocolError::new(ErrorCode::Conflict, "the agent is offline; presence is set while connected");
            let _ = reply.send(Err(error));
            return;
        }
        let before = entry.presence;
        entry.presence = status;
        for c in entry.conns.clone() {
            self.send(c, Outbound::frame(ServerFrame::Presence(PresenceFrame { status })));
        }
        let availability = if status == Presence::Online { Availability::Online } else { Availability::Away };
        self.route(Event::Presence { agent, availability }, None);
        let data = serde_json::json!({ "agent_id": agent, "from": before, "to": status });
        self.audit(by, origin, "agent.presence_set", None, data);
        let _ = reply.send(Ok(()));
    }

    /// A customer rated a conversation; rating it again replaces the score (as the
    /// database does), so one customer cannot fill the window.
    pub(super) fn rated(&mut self, conversation: ConversationId, score: u8) {
        let s = &mut self.supervision;
        if let Some(rating) = s.ratings.iter_mut().find(|(c, _)| *c == conversation) {
            rating.1 = score;
            return;
        }
        s.ratings.push_back((conversation, score));
        while s.ratings.len() > 2 * s.rules.csat_window {
            s.ratings.pop_front();
        }
    }

    /// A connection went away: it no longer watches anything.
    pub(super) fn forget_watcher(&mut self, conn: ConnId) {
        let s = &mut self.supervision;
        if s.monitors.remove(&conn) || !s.observers.is_empty() {
            s.observers.retain(|_, list| {
                list.retain(|c| *c != conn);
                !list.is_empty()
            });
        }
    }

    /// A conversation closed: nobody follows it any more.
    pub(super) fn forget_observed(&mut self, conversation: ConversationId) {
        self.supervision.observers.remove(&conversation);
    }

    /// Each tick: alerts, then the monitor for those who watch it (when it changed).
    pub(super) fn supervise_tick(&mut self) {
        self.evaluate_alerts();
        if self.supervision.monitors.is_empty() {
            self.supervision.last_sent = None;
            return;
        }
        let frame = self.monitor_frame();
        let unchanged = self.supervision.last_sent.as_ref().is_some_and(|last| same_monitor(last, &frame));
        if unchanged {
            return;
        }
        let monitors: Vec<ConnId> = self.supervision.monitors.iter().copied().collect();
        for conn in monitors {
            self.send(conn, Outbound::frame(ServerFrame::Monitor(frame.clone())));
        }
        self.supervision.last_sent = Some(frame);
    }

    fn evaluate_alerts(&mut self) {
        let now = self.now();
        let mut alerts = std::mem::take(&mut self.supervision.alerts);
        let changes = {
            let facts = self.alert_facts(now);
            alerts.evaluate(&facts, &self.supervision.rules)
        };
        self.supervision.alerts = alerts;
        for (change, alert) in changes {
            self.tell_alert(change, alert, now);
        }
    }

    /// The facts the alert rules look at.
    fn alert_facts(&self, now: UnixMillis) -> Facts<'_> {
        let ratings = self.supervision.ratings.iter().map(|(_, score)| *score).collect();
        let mut facts = Facts { now, ratings, ..Facts::default() };
        let queues: Vec<Option<GroupId>> = self.router.queued_groups().collect();
        for group in queues {
            let slug = group.and_then(|g| self.groups.get(&g)).map(|g| g.slug.as_str());
            for conversation in self.router.queue(group) {
                let (Some(since), Some(conv)) =
                    (self.router.waiting_since(conversation), self.conversations.get(&conversation))
                else {
                    continue;
                };
                let contact = conv.contact.name.as_deref().unwrap_or("a customer");
                facts.waiting.push(WaitingFact { conversation, group: slug, contact, since });
            }
        }
        for (id, group) in &self.groups {
            facts.groups.push(GroupFact { slug: &group.slug, agents_online: self.router.online_count(Some(*id)) });
        }
        for (id, conv) in &self.conversations {
            let (Some(agent), Some(since)) = (conv.announced.assignee, conv.awaiting_reply_since) else { continue };
            if conv.announced.state != ConversationState::Assigned {
                continue;
            }
            // The agent's clock starts when the conversation reached them.
            let since = since.max(conv.announced.assigned_at.unwrap_or(since));
            let agent_name = self.agents.get(&agent).map_or("an agent", |a| a.view.name.as_str());
            let contact = conv.contact.name.as_deref().unwrap_or("a customer");
            facts.unanswered.push(UnansweredFact { conversation: *id, agent, agent_name, contact, since });
        }
        facts
    }

    /// An alert fired or resolved: to supervisors and admins, the event log, the webhook.
    fn tell_alert(&mut self, change: AlertChange, alert: AlertView, now: UnixMillis) {
        let kind = match change {
            AlertChange::Fired => "alert.fired",
            AlertChange::Resolved => "alert.resolved",
        };
        // The message names the customer: it goes to supervisors, not to logs or the
        // append-only event log, which hold ids only.
        tracing::info!(workspace = %self.workspace, alert = %alert.id, "{kind}");
        let data = serde_json::json!({
            "id": alert.id,
            "kind": alerts::kind_name(alert.kind),
            "group": alert.group,
            "agent_id": alert.agent_id,
        });
        self.journal.submit_from_hub(JournalOp::Log {
            workspace: self.workspace,
            conversation: alert.conversation_id,
            event: EventRecord { kind, actor_kind: "system", actor_id: None, data, origin: None },
        });
        let frame = AlertFrame { change, alert, at: now };
        let supervisors: Vec<ConnId> = self
            .agents
            .values()
            .filter(|a| matches!(a.view.role, Role::Supervisor | Role::Admin))
            .flat_map(|a| a.conns.iter().copied())
            .collect();
        for conn in supervisors {
            self.send(conn, Outbound::frame(ServerFrame::Alert(frame.clone())));
        }
        // The hub never waits: with the webhook's queue full, this push is dropped.
        if let Some(webhook) = &self.supervision.webhook
            && webhook.try_send(AlertNotice { workspace: self.workspace, frame }).is_err()
        {
            tracing::warn!(workspace = %self.workspace, "alert webhook queue full; push dropped");
        }
    }

    /// The monitor as it stands.
    fn monitor_frame(&self) -> MonitorFrame {
        let mut groups: Vec<Option<GroupId>> = self.groups.keys().map(|g| Some(*g)).collect();
        groups.sort_by_key(|g| self.group_slug(*g));
        if self.router.queue(None).next().is_some() {
            groups.insert(0, None);
        }
        let groups = groups
            .into_iter()
            .map(|group| {
                let (agents_online, capacity) = self.router.online(group);
                let mut waiting = 0;
                let mut oldest_queued_at: Option<UnixMillis> = None;
                for conversation in self.router.queue(group) {
                    waiting += 1;
                    if let Some(since) = self.router.waiting_since(conversation) {
                        oldest_queued_at = Some(oldest_queued_at.map_or(since, |o| o.min(since)));
                    }
                }
                GroupMonitor { group: self.group_slug(group), waiting, oldest_queued_at, agents_online, capacity }
            })
            .collect();
        let mut held: HashMap<AgentId, Vec<MonitoredConversation>> = HashMap::new();
        for (id, conv) in &self.conversations {
            if let (ConversationState::Assigned, Some(agent)) = (conv.announced.state, conv.announced.assignee) {
                held.entry(agent).or_default().push(MonitoredConversation {
                    id: *id,
                    customer: monitored_customer(&conv.contact),
                    awaiting_reply_since: conv.awaiting_reply_since,
                });
            }
        }
        let mut agents: Vec<AgentMonitor> = self
            .agents
            .values()
            .map(|a| {
                let mut conversations = held.remove(&a.view.id).unwrap_or_default();
                conversations.sort_by_key(|c| c.id);
                AgentMonitor {
                    agent: kefu_proto::frame::AgentRef { id: a.view.id, name: a.view.name.clone() },
                    role: a.view.role,
                    presence: a.presence,
                    load: self.router.load(a.view.id),
                    capacity: a.view.max_concurrent,
                    last_reply_at: a.last_reply_at,
                    conversations,
                }
            })
            .collect();
        let rank = |p: Presence| match p {
            Presence::Online => 0,
            Presence::Away => 1,
            Presence::Offline => 2,
        };
        agents.sort_by(|a, b| {
            (rank(a.presence), &a.agent.name, a.agent.id).cmp(&(rank(b.presence), &b.agent.name, b.agent.id))
        });
        let mut with_bot: Vec<BotConversationMonitor> = self
            .conversations
            .iter()
            .filter(|(_, conv)| conv.announced.state == ConversationState::Bot)
            .map(|(id, conv)| BotConversationMonitor {
                id: *id,
                customer: monitored_customer(&conv.contact),
                group: self.group_slug(conv.route.group),
                intent: conv.intent.clone(),
                since: conv.announced.created_at,
            })
            .collect();
        let with_bot_total = with_bot.len() as u32;
        with_bot.sort_by_key(|c| (c.since, c.id));
        with_bot.truncate(MONITOR_BOT_CONVERSATIONS);
        MonitorFrame {
            at: self.now(),
            wait_alert_ms: self.supervision.rules.wait_ms,
            groups,
            agents,
            alerts: self.supervision.alerts.active(),
            with_bot,
            with_bot_total,
        }
    }

    /// The workspace's state for a scrape of `/metrics`.
    pub(super) fn gauges(&self, reply: oneshot::Sender<HubGauges>) {
        let now = self.now();
        let queues = self
            .router
            .queued_groups()
            .map(|group| {
                let waiting: Vec<ConversationId> = self.router.queue(group).collect();
                let oldest = waiting.iter().filter_map(|c| self.router.waiting_since(*c)).min().unwrap_or(now);
                let name = self.group_slug(group).unwrap_or_else(|| "any".into());
                (name, waiting.len() as u32, (now - oldest).max(0) as f64 / 1000.0)
            })
            .collect();
        let count = |p: Presence| self.agents.values().filter(|a| a.presence == p).count() as u32;
        let _ = reply.send(HubGauges {
            workspace: self.workspace_slug.clone(),
            queues,
            agents_online: count(Presence::Online),
            agents_away: count(Presence::Away),
        });
    }

    /// The address of a connection, as the audit log records it.
    pub(super) fn origin_of(&self, conn: ConnId) -> Option<String> {
        self.conns.get(&conn).map(|c| c.peer.to_string())
    }

    /// Writes a supervisor's action to the event log, with where it came from when a
    /// connection asked (`origin`).
    pub(super) fn audit(
        &self,
        actor: AgentId,
        origin: Option<String>,
        kind: &'static str,
        conversation: Option<ConversationId>,
        data: serde_json::Value,
    ) {
        self.journal.submit_from_hub(JournalOp::Log {
            workspace: self.workspace,
            conversation,
            event: EventRecord { kind, actor_kind: "agent", actor_id: Some(actor.0), data, origin },
        });
    }

    /// Whether the connection's role sees personal data masked (`privacy.masked_roles`).
    pub(super) fn sees_masked(&self, conn: ConnId) -> bool {
        if self.supervision.masked_roles.is_empty() {
            return false;
        }
        match self.conns.get(&conn).map(|c| c.who) {
            Some(Who::Agent(agent)) => {
                self.agents.get(&agent).is_some_and(|a| self.supervision.masked_roles.contains(&a.view.role))
            }
            _ => false,
        }
    }

    /// Whether the connection is staff who may supervise.
    pub(super) fn is_supervisor(&self, conn: ConnId) -> bool {
        match self.conns.get(&conn).map(|c| c.who) {
            Some(Who::Agent(agent)) => {
                self.agents.get(&agent).is_some_and(|a| permissions::allows(a.view.role, Permission::Supervise))
            }
            _ => false,
        }
    }
}
