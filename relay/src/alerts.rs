//! Alerts: conditions a supervisor must hear of at once — a customer waiting too long, a
//! group with nobody online during business hours, satisfaction falling, an agent not
//! answering. Pure: the hub hands [`Alerts::evaluate`] the facts as they stand (on each
//! tick) and gets back what fired and what resolved; it alone does the telling (frames,
//! the event log, the webhook).
//!
//! Each alert has a stable id, its kind and subject (`long_wait:42`), so it fires once
//! while its condition holds and resolves once when it clears; its message keeps the
//! words of the moment it fired.

use std::collections::BTreeMap;

use kefu_proto::frame::{AlertChange, AlertKind, AlertView};
use kefu_proto::{AgentId, ConversationId, UnixMillis};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// When a group is expected to have someone online, in the shop's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessHours {
    /// Open on these weekdays, Monday = 0.
    pub days: [bool; 7],
    /// Opens at this minute of the day…
    pub open_minute: u32,
    /// …and closes at this one (before `open_minute`: open over midnight).
    pub close_minute: u32,
    /// The shop's offset from UTC, in minutes.
    pub utc_offset_minutes: i32,
}

impl BusinessHours {
    /// Whether `at` falls within business hours. Over midnight, the hours after midnight
    /// belong to the day that opened.
    pub fn contains(&self, at: UnixMillis) -> bool {
        let local = at + self.utc_offset_minutes as i64 * MINUTE_MS;
        let days = local.div_euclid(DAY_MS);
        // 1970-01-01 was a Thursday (3 with Monday = 0).
        let weekday = (days + 3).rem_euclid(7) as usize;
        let minute = (local.rem_euclid(DAY_MS) / MINUTE_MS) as u32;
        let (open, close) = (self.open_minute, self.close_minute);
        if open <= close {
            self.days[weekday] && (open..close).contains(&minute)
        } else {
            let yesterday = (weekday + 6) % 7;
            (self.days[weekday] && minute >= open) || (self.days[yesterday] && minute < close)
        }
    }
}

/// The thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertRules {
    /// A customer waiting in a queue this long raises `long_wait`.
    pub wait_ms: i64,
    /// A customer's message unanswered this long by the agent holding the conversation
    /// raises `agent_not_replying`.
    pub reply_ms: i64,
    /// When groups must have someone online (`no_agent_online`); `None`: never checked.
    pub business_hours: Option<BusinessHours>,
    /// How many of the latest ratings make the CSAT window.
    pub csat_window: usize,
    /// The window's average below this raises `csat_low`.
    pub csat_min: f64,
    /// Bad ratings (1 or 2) in the window at least this many, and at least twice as many
    /// as in the window before it, raise `bad_ratings_rising`.
    pub bad_ratings_min: usize,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            wait_ms: 2 * MINUTE_MS,
            reply_ms: 5 * MINUTE_MS,
            business_hours: None,
            csat_window: 20,
            csat_min: 3.5,
            bad_ratings_min: 3,
        }
    }
}

/// A conversation waiting in a queue.
#[derive(Debug, Clone, Copy)]
pub struct WaitingFact<'a> {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its queue's group slug; `None`: the any-agent queue.
    pub group: Option<&'a str>,
    /// The customer's name, for the message.
    pub contact: &'a str,
    /// Since when the customer has waited.
    pub since: UnixMillis,
}

/// A group and who is online in it.
#[derive(Debug, Clone, Copy)]
pub struct GroupFact<'a> {
    /// Its slug.
    pub slug: &'a str,
    /// Agents online with its skill.
    pub agents_online: u32,
}

/// An assigned conversation whose customer waits for the agent's reply.
#[derive(Debug, Clone, Copy)]
pub struct UnansweredFact<'a> {
    /// The conversation.
    pub conversation: ConversationId,
    /// The agent holding it.
    pub agent: AgentId,
    /// Their name, for the message.
    pub agent_name: &'a str,
    /// The customer's name, for the message.
    pub contact: &'a str,
    /// Since when the customer's message waits.
    pub since: UnixMillis,
}

/// Everything the rules look at, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// Now.
    pub now: UnixMillis,
    /// Conversations waiting in queues.
    pub waiting: Vec<WaitingFact<'a>>,
    /// The workspace's groups.
    pub groups: Vec<GroupFact<'a>>,
    /// Assigned conversations waiting for the agent.
    pub unanswered: Vec<UnansweredFact<'a>>,
    /// The latest ratings, oldest first (the last two windows are enough).
    pub ratings: Vec<u8>,
}

/// The alerts that are on.
#[derive(Debug, Default)]
pub struct Alerts {
    active: BTreeMap<String, AlertView>,
}

impl Alerts {
    /// Compares the conditions that hold now with the alerts that are on: new ones fire,
    /// cleared ones resolve. An alert that stays on is not reported again.
    pub fn evaluate(&mut self, facts: &Facts<'_>, rules: &AlertRules) -> Vec<(AlertChange, AlertView)> {
        let now_on = conditions(facts, rules, &self.active);
        let mut changes = Vec::new();
        let cleared: Vec<String> = self.active.keys().filter(|id| !now_on.contains_key(*id)).cloned().collect();
        for id in cleared {
            let alert = self.active.remove(&id).expect("listed");
            changes.push((AlertChange::Resolved, alert));
        }
        // Those already on came back as `None`; the new ones carry their view.
        for (id, alert) in now_on {
            if let Some(alert) = alert {
                self.active.insert(id, alert.clone());
                changes.push((AlertChange::Fired, alert));
            }
        }
        changes
    }

    /// The alerts that are on, oldest first.
    pub fn active(&self) -> Vec<AlertView> {
        let mut list: Vec<AlertView> = self.active.values().cloned().collect();
        list.sort_by(|a, b| (a.since, &a.id).cmp(&(b.since, &b.id)));
        list
    }
}

/// The alerts whose conditions hold, by id, as they are collected: a new one with its
/// words, one already on (in `active`) without (it keeps the words it fired with, and
/// nothing is formatted for it on every tick).
struct Holding<'a> {
    now: UnixMillis,
    active: &'a BTreeMap<String, AlertView>,
    on: BTreeMap<String, Option<AlertView>>,
}

impl Holding<'_> {
    fn add(&mut self, kind: AlertKind, subject: &str, describe: impl FnOnce() -> (String, AlertView)) {
        let id = format!("{}:{subject}", kind_name(kind));
        let view = (!self.active.contains_key(&id)).then(|| {
            let (message, view) = describe();
            AlertView { id: id.clone(), kind, message, since: self.now, ..view }
        });
        self.on.insert(id, view);
    }
}

/// The alerts whose conditions hold at `facts.now`, by id; `None` for those in `active`.
fn conditions(
    facts: &Facts<'_>,
    rules: &AlertRules,
    active: &BTreeMap<String, AlertView>,
) -> BTreeMap<String, Option<AlertView>> {
    let now = facts.now;
    let mut holding = Holding { now, active, on: BTreeMap::new() };
    let blank = AlertView {
        id: String::new(),
        kind: AlertKind::LongWait,
        message: String::new(),
        since: now,
        conversation_id: None,
        group: None,
        agent_id: None,
    };
    for w in &facts.waiting {
        let waited = now - w.since;
        if waited >= rules.wait_ms {
            let queue = w.group.unwrap_or("the any-agent queue");
            holding.add(AlertKind::LongWait, &w.conversation.to_string(), || {
                (
                    format!("{} has waited {} in {queue}", w.contact, minutes(waited)),
                    AlertView {
                        conversation_id: Some(w.conversation),
                        group: w.group.map(str::to_string),
                        ..blank.clone()
                    },
                )
            });
        }
    }
    if rules.business_hours.is_some_and(|hours| hours.contains(now)) {
        for g in facts.groups.iter().filter(|g| g.agents_online == 0) {
            holding.add(AlertKind::NoAgentOnline, g.slug, || {
                (
                    format!("nobody is online in {} during business hours", g.slug),
                    AlertView { group: Some(g.slug.to_string()), ..blank.clone() },
                )
            });
        }
    }
    for u in &facts.unanswered {
        let waited = now - u.since;
        if waited >= rules.reply_ms {
            holding.add(AlertKind::AgentNotReplying, &u.conversation.to_string(), || {
                (
                    format!("{} has not answered {} for {}", u.agent_name, u.contact, minutes(waited)),
                    AlertView { conversation_id: Some(u.conversation), agent_id: Some(u.agent), ..blank.clone() },
                )
            });
        }
    }
    let window = rules.csat_window.max(1);
    if facts.ratings.len() >= window {
        let latest = &facts.ratings[facts.ratings.len() - window..];
        let average = latest.iter().map(|r| *r as f64).sum::<f64>() / window as f64;
        if average < rules.csat_min {
            holding.add(AlertKind::CsatLow, "workspace", || {
                (format!("the last {window} ratings average {average:.1}, below {:.1}", rules.csat_min), blank.clone())
            });
        }
        let bad = |scores: &[u8]| scores.iter().filter(|s| **s <= 2).count();
        let before_start = facts.ratings.len().saturating_sub(2 * window);
        let before = bad(&facts.ratings[before_start..facts.ratings.len() - window]);
        let recent = bad(latest);
        if recent >= rules.bad_ratings_min.max(1) && recent >= 2 * before {
            holding.add(AlertKind::BadRatingsRising, "workspace", || (format!(
                    "{recent} of the last {window} ratings are bad (1 or 2), against {before} in the {window} before"
                ), blank.clone()));
        }
    }
    holding.on
}

/// The kind as it appears in ids and the event log.
pub fn kind_name(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::LongWait => "long_wait",
        AlertKind::NoAgentOnline => "no_agent_online",
        AlertKind::CsatLow => "csat_low",
        AlertKind::BadRatingsRising => "bad_ratings_rising",
        AlertKind::AgentNotReplying => "agent_not_replying",
    }
}

/// A duration in words: `2 min 5 s`.
fn minutes(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2026-11-16 00:00 UTC.
    const MONDAY: i64 = 1_794_787_200_000;

    fn rules() -> AlertRules {
        AlertRules::default()
    }

    fn waiting(conversation: i64, since: UnixMillis) -> WaitingFact<'static> {
        WaitingFact { conversation: ConversationId(conversation), group: Some("pre_sales"), contact: "张三", since }
    }

    fn ids(changes: &[(AlertChange, AlertView)]) -> Vec<(AlertChange, &str)> {
        changes.iter().map(|(c, a)| (*c, a.id.as_str())).collect()
    }

    #[test]
    fn a_long_wait_fires_once_when_it_crosses_the_limit_and_resolves_when_served() {
        let mut alerts = Alerts::default();
        let at = |now| Facts { now, waiting: vec![waiting(7, 1_000)], ..Facts::default() };
        assert!(alerts.evaluate(&at(120_999), &rules()).is_empty(), "1 ms short of two minutes");
        let fired = alerts.evaluate(&at(121_000), &rules());
        assert_eq!(ids(&fired), [(AlertChange::Fired, "long_wait:7")]);
        assert_eq!(fired[0].1.message, "张三 has waited 2 min in pre_sales");
        assert_eq!(fired[0].1.conversation_id, Some(ConversationId(7)));
        assert!(alerts.evaluate(&at(200_000), &rules()).is_empty(), "fires once");
        assert_eq!(alerts.active().len(), 1);
        let served = Facts { now: 201_000, ..Facts::default() };
        assert_eq!(ids(&alerts.evaluate(&served, &rules())), [(AlertChange::Resolved, "long_wait:7")]);
        assert!(alerts.active().is_empty());
    }

    #[test]
    fn business_hours_in_the_shops_time() {
        // 09:00–21:00 at +08:00, Monday to Friday.
        let hours = BusinessHours {
            days: [true, true, true, true, true, false, false],
            open_minute: 9 * 60,
            close_minute: 21 * 60,
            utc_offset_minutes: 480,
        };
        let h = 3_600_000;
        let cases = [
            (MONDAY + h, true),                   // Mon 09:00 local
            (MONDAY + h - 1, false),              // Mon 08:59:59.999
            (MONDAY + 13 * h - 1, true),          // Mon 20:59:59.999
            (MONDAY + 13 * h, false),             // Mon 21:00
            (MONDAY + 4 * 24 * h + 2 * h, true),  // Fri 10:00
            (MONDAY + 5 * 24 * h + 2 * h, false), // Sat 10:00
            (MONDAY - 16 * h + h, false),         // Sun 09:00 local
        ];
        for (at, open) in cases {
            assert_eq!(hours.contains(at), open, "at {at}");
        }
        // Overnight 20:00–02:00 UTC, open Mondays only: Tuesday 01:00 belongs to Monday.
        let night = BusinessHours {
            days: [true, false, false, false, false, false, false],
            open_minute: 20 * 60,
            close_minute: 2 * 60,
            utc_offset_minutes: 0,
        };
        assert!(night.contains(MONDAY + 21 * h));
        assert!(night.contains(MONDAY + 25 * h));
        assert!(!night.contains(MONDAY + 27 * h));
        assert!(!night.contains(MONDAY + h), "Monday 01:00 belongs to Sunday, which is closed");
    }

    #[test]
    fn a_group_with_nobody_online_alerts_only_in_business_hours() {
        let always = BusinessHours { days: [true; 7], open_minute: 0, close_minute: 24 * 60, utc_offset_minutes: 0 };
        let groups =
            vec![GroupFact { slug: "after_sales", agents_online: 0 }, GroupFact { slug: "vip", agents_online: 2 }];
        let facts = Facts { now: MONDAY, groups: groups.clone(), ..Facts::default() };
        let mut alerts = Alerts::default();
        assert!(alerts.evaluate(&facts, &rules()).is_empty(), "no business hours configured: never");
        let with_hours = AlertRules { business_hours: Some(always), ..rules() };
        let fired = alerts.evaluate(&facts, &with_hours);
        assert_eq!(ids(&fired), [(AlertChange::Fired, "no_agent_online:after_sales")]);
        assert_eq!(fired[0].1.group.as_deref(), Some("after_sales"));
        let closed = BusinessHours { days: [false; 7], ..always };
        let after = alerts.evaluate(&facts, &AlertRules { business_hours: Some(closed), ..rules() });
        assert_eq!(ids(&after), [(AlertChange::Resolved, "no_agent_online:after_sales")]);
    }

    #[test]
    fn an_agent_not_replying_alerts_after_the_limit() {
        let facts = |now| Facts {
            now,
            unanswered: vec![UnansweredFact {
                conversation: ConversationId(3),
                agent: AgentId(9),
                agent_name: "小王",
                contact: "Ann",
                since: 0,
            }],
            ..Facts::default()
        };
        let mut alerts = Alerts::default();
        assert!(alerts.evaluate(&facts(299_999), &rules()).is_empty());
        let fired = alerts.evaluate(&facts(300_000), &rules());
        assert_eq!(ids(&fired), [(AlertChange::Fired, "agent_not_replying:3")]);
        assert_eq!(fired[0].1.message, "小王 has not answered Ann for 5 min");
        assert_eq!(fired[0].1.agent_id, Some(AgentId(9)));
    }

    #[test]
    fn csat_alerts_need_a_full_window_and_follow_the_latest_ratings() {
        let rules = AlertRules { csat_window: 4, csat_min: 3.5, bad_ratings_min: 2, ..rules() };
        let (low, rising) = ("csat_low:workspace", "bad_ratings_rising:workspace");
        let cases: [(&[u8], &[&str]); 7] = [
            (&[1, 1, 1], &[]),                           // the window is not full yet
            (&[5, 5, 4, 3], &[]),                        // 4.25
            (&[5, 4, 3, 2], &[]),                        // 3.5: at the threshold, not below
            (&[1, 1, 1, 1], &[rising, low]),             // 1.0; 4 bad against none before
            (&[5, 5, 5, 5, 2, 1, 5, 5], &[rising, low]), // 3.25; 2 bad against 0
            (&[2, 1, 5, 5, 2, 1, 5, 5], &[low]),         // 3.25; 2 bad against 2: not rising
            (&[1, 1, 1, 1, 5, 5, 5, 5], &[]),            // recovered
        ];
        for (ratings, expected) in cases {
            let facts = Facts { now: 1, ratings: ratings.to_vec(), ..Facts::default() };
            let on = conditions(&facts, &rules, &BTreeMap::new());
            assert_eq!(on.keys().map(String::as_str).collect::<Vec<_>>(), expected, "ratings {ratings:?}");
        }
    }
}
