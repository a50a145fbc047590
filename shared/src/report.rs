//! Reports: the service metrics of a range (`GET /api/v1/reports/...`), overall and per
//! group, agent and channel, as JSON or CSV. The relay computes them from its event log;
//! every figure is defined in `docs/metrics.md`.

use serde::{Deserialize, Serialize};

use crate::frame::ChannelKind;
use crate::{AgentId, UnixMillis};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// What a report covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportQuery {
    /// Conversations opened at or after this instant…
    pub from: UnixMillis,
    /// …and before this one.
    pub to: UnixMillis,
    /// The shop's offset from UTC in minutes, for arrivals by weekday and hour.
    pub tz_offset_minutes: i32,
    /// Only this group (by slug).
    pub group: Option<String>,
    /// Only what is attributed to this agent.
    pub agent: Option<AgentId>,
    /// Only this channel.
    pub channel: Option<ChannelKind>,
}

/// A set of durations: how many, their mean and percentiles (nearest rank).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    /// How many.
    pub count: u64,
    /// Arithmetic mean, in milliseconds; `None` when there are none.
    pub mean_ms: Option<f64>,
    /// The median (nearest rank).
    pub p50_ms: Option<i64>,
    /// The 90th percentile (nearest rank).
    pub p90_ms: Option<i64>,
}

/// Share of first responses within the service-level thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceLevel {
    /// First responses.
    pub answered: u64,
    /// Of them, within 15 s.
    pub within_15s: u64,
    /// Of them, within 60 s.
    pub within_60s: u64,
    /// `within_15s / answered`.
    pub share_15s: Option<f64>,
    /// `within_60s / answered`.
    pub share_60s: Option<f64>,
}

/// Customer satisfaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Csat {
    /// Ratings.
    pub ratings: u64,
    /// Their mean score.
    pub average: Option<f64>,
    /// How many of each score, 1 to 5.
    pub distribution: [u64; 5],
}

/// Every figure of one scope (overall, a group, an agent, a channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Conversations opened in the range.
    pub conversations: u64,
    /// Of them, those that entered the queue (people were asked).
    pub queued: u64,
    /// Settled, not abandoned: by an agent or by the bot.
    pub resolved: u64,
    /// Settled by the bot without people.
    pub bot_resolved: u64,
    /// Entered the queue and settled without ever being assigned.
    pub abandoned: u64,
    /// Still open when the report was made.
    pub still_open: u64,
    /// `resolved / conversations`.
    pub resolution_rate: Option<f64>,
    /// `abandoned / queued`.
    pub abandonment_rate: Option<f64>,
    /// From entering the queue to the first agent reply.
    pub first_response: Durations,
    /// First responses within 15 s and 60 s.
    pub service_level: ServiceLevel,
    /// Every reply gap, the first response included.
    pub reply_time: Durations,
    /// From the first assignment to being settled.
    pub handle_time: Durations,
    /// From opening to being settled.
    pub resolution_time: Durations,
    /// Transfers by agents.
    pub transfers: u64,
    /// Conversations transferred at least once.
    pub transferred_conversations: u64,
    /// Times customers reopened conversations.
    pub reopens: u64,
    /// Conversations reopened at least once.
    pub reopened_conversations: u64,
    /// Ratings.
    pub csat: Csat,
}

/// The figures of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupFigures {
    /// Its slug; `None`: conversations in the any-agent queue.
    pub group: Option<String>,
    /// Its figures.
    pub figures: Figures,
}

/// The figures of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentFigures {
    /// The agent.
    pub agent_id: AgentId,
    /// Their display name.
    pub name: String,
    /// Their figures.
    pub figures: Figures,
}

/// The figures of one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelFigures {
    /// The channel.
    pub channel: ChannelKind,
    /// Its figures.
    pub figures: Figures,
}

/// Conversations opened per weekday and hour of the shop's day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrivals {
    /// The offset from UTC applied, in minutes.
    pub tz_offset_minutes: i32,
    /// The rows' names, Monday first.
    pub weekdays: [String; 7],
    /// `counts[weekday][hour]`, Monday = 0, hour 0 to 23.
    pub counts: [[u64; 24]; 7],
}

/// Weekday names, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Arrivals {
    /// No arrivals yet, in the shop's time at `tz_offset_minutes` from UTC.
    pub fn new(tz_offset_minutes: i32) -> Arrivals {
        Arrivals { tz_offset_minutes, weekdays: WEEKDAYS.map(String::from), counts: [[0; 24]; 7] }
    }

    /// The weekday (Monday = 0) and hour of `at` in the shop's time.
    pub fn slot(at: UnixMillis, tz_offset_minutes: i32) -> (usize, usize) {
        let local = at + tz_offset_minutes as i64 * 60_000;
        let days = local.div_euclid(DAY_MS);
        // 1970-01-01 was a Thursday (3 with Monday = 0).
        let weekday = (days + 3).rem_euclid(7) as usize;
        let hour = (local.rem_euclid(DAY_MS) / HOUR_MS) as usize;
        (weekday, hour)
    }

    /// The matrix as CSV: `weekday,h00,…,h23`, one row per weekday.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("weekday");
        for hour in 0..24 {
            out.push_str(&format!(",h{hour:02}"));
        }
        out.push('\n');
        for (name, row) in self.weekdays.iter().zip(&self.counts) {
            out.push_str(name);
            for count in row {
                out.push_str(&format!(",{count}"));
            }
            out.push('\n');
        }
        out
    }
}

/// The metrics of a range, overall and broken down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What it covers.
    pub query: ReportQuery,
    /// Everything that passes the filters.
    pub overall: Figures,
    /// Per group, by slug (the any-agent queue first).
    pub by_group: Vec<GroupFigures>,
    /// Per agent, by id.
    pub by_agent: Vec<AgentFigures>,
    /// Per channel.
    pub by_channel: Vec<ChannelFigures>,
    /// Arrivals by weekday × hour.
    pub arrivals: Arrivals,
}

/// `GET /api/v1/reports/agents`: the per-agent rows alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentsReport {
    /// What it covers.
    pub query: ReportQuery,
    /// Per agent, by id.
    pub agents: Vec<AgentFigures>,
}

/// `GET /api/v1/reports/arrivals`: the weekday × hour matrix alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrivalsReport {
    /// What it covers.
    pub query: ReportQuery,
    /// Arrivals by weekday × hour.
    pub arrivals: Arrivals,
}

impl From<Report> for AgentsReport {
    fn from(report: Report) -> Self {
        AgentsReport { query: report.query, agents: report.by_agent }
    }
}

impl From<Report> for ArrivalsReport {
    fn from(report: Report) -> Self {
        ArrivalsReport { query: report.query, arrivals: report.arrivals }
    }
}

impl Report {
    /// One CSV row per scope: `overall`, then each group, agent and channel.
    pub fn to_csv(&self) -> String {
        let mut out = csv_header();
        csv_row(&mut out, "overall", "", "", &self.overall);
        for g in &self.by_group {
            let slug = g.group.as_deref().unwrap_or("");
            csv_row(&mut out, "group", slug, slug, &g.figures);
        }
        self.agents_csv_rows(&mut out);
        for c in &self.by_channel {
            csv_row(&mut out, "channel", c.channel.as_str(), c.channel.as_str(), &c.figures);
        }
        out
    }

    /// One CSV row per agent.
    pub fn agents_csv(&self) -> String {
        let mut out = csv_header();
        self.agents_csv_rows(&mut out);
        out
    }

    fn agents_csv_rows(&self, out: &mut String) {
        for a in &self.by_agent {
            csv_row(out, "agent", &a.agent_id.to_string(), &a.name, &a.figures);
        }
    }
}

fn csv_header() -> String {
    format!("scope,key,name,{CSV_COLUMNS}\n")
}

/// A CSV field, quoted when it needs to be; a leading formula character is defused so a
/// spreadsheet shows an agent's name as text.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_string() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

fn csv_row(out: &mut String, scope: &str, key: &str, name: &str, f: &Figures) {
    fn opt<T: ToString>(value: Option<T>) -> String {
        value.map(|v| v.to_string()).unwrap_or_default()
    }
    fn durations(d: &Durations) -> [String; 4] {
        [d.count.to_string(), opt(d.mean_ms), opt(d.p50_ms), opt(d.p90_ms)]
    }
    let sl = &f.service_level;
    let mut fields = vec![
        scope.to_string(),
        csv_field(key),
        csv_field(name),
        f.conversations.to_string(),
        f.queued.to_string(),
        f.resolved.to_string(),
        f.bot_resolved.to_string(),
        f.abandoned.to_string(),
        f.still_open.to_string(),
        opt(f.resolution_rate),
        opt(f.abandonment_rate),
    ];
    fields.extend(durations(&f.first_response));
    fields.extend([
        sl.answered.to_string(),
        sl.within_15s.to_string(),
        sl.within_60s.to_string(),
        opt(sl.share_15s),
        opt(sl.share_60s),
    ]);
    fields.extend(durations(&f.reply_time));
    fields.extend(durations(&f.handle_time));
    fields.extend(durations(&f.resolution_time));
    fields.extend([
        f.transfers.to_string(),
        f.transferred_conversations.to_string(),
        f.reopens.to_string(),
        f.reopened_conversations.to_string(),
        f.csat.ratings.to_string(),
        opt(f.csat.average),
    ]);
    fields.extend(f.csat.distribution.iter().map(u64::to_string));
    out.push_str(&fields.join(","));
    out.push('\n');
}

/// The CSV columns after `scope,key,name`.
const CSV_COLUMNS: &str = "conversations,queued,resolved,bot_resolved,abandoned,still_open,resolution_rate,\
abandonment_rate,first_response_count,first_response_mean_ms,first_response_p50_ms,first_response_p90_ms,\
service_level_answered,service_level_within_15s,service_level_within_60s,service_level_15s,service_level_60s,\
reply_time_count,reply_time_mean_ms,reply_time_p50_ms,reply_time_p90_ms,handle_time_count,handle_time_mean_ms,\
handle_time_p50_ms,handle_time_p90_ms,resolution_time_count,resolution_time_mean_ms,resolution_time_p50_ms,\
resolution_time_p90_ms,transfers,transferred_conversations,reopens,reopened_conversations,csat_ratings,\
csat_average,csat_1,csat_2,csat_3,csat_4,csat_5";
