//! The report view's state (supervisors and admins): which range is shown (today, the
//! last 7 or 30 days, in the local time zone), the report fetched for it, the highlighted
//! agent row, and what a CSV export is called.
//!
//! Pure: the app asks for the requests it returns and feeds it the answers; time and the
//! local offset are passed in.

use kefu_proto::UnixMillis;
use kefu_proto::report::{Arrivals, Report};

use crate::api::ApiRequest;
use crate::app::Fetched;

const DAY_MS: i64 = 86_400_000;

/// The ranges the view offers, in the order the keys walk them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ReportRange {
    /// Since local midnight.
    Today,
    /// Today and the six days before it.
    #[default]
    Week,
    /// Today and the 29 days before it.
    Month,
}

impl ReportRange {
    /// Every range, shortest first.
    pub const ALL: [ReportRange; 3] = [ReportRange::Today, ReportRange::Week, ReportRange::Month];

    /// The short name in file names: `today`, `7d`, `30d`.
    pub fn name(self) -> &'static str {
        match self {
            ReportRange::Today => "today",
            ReportRange::Week => "7d",
            ReportRange::Month => "30d",
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            ReportRange::Today => "今天 today",
            ReportRange::Week => "7 天 7 days",
            ReportRange::Month => "30 天 30 days",
        }
    }

    /// Calendar days covered, today included.
    fn days(self) -> i64 {
        match self {
            ReportRange::Today => 1,
            ReportRange::Week => 7,
            ReportRange::Month => 30,
        }
    }

    /// The window it covers at `now`: from local midnight `days - 1` days ago up to now.
    pub fn window(self, now: UnixMillis, utc_offset_secs: i32) -> ReportWindow {
        let offset_ms = i64::from(utc_offset_secs) * 1000;
        let local_midnight = (now + offset_ms).div_euclid(DAY_MS) * DAY_MS - offset_ms;
        ReportWindow {
            range: self,
            from: local_midnight - (self.days() - 1) * DAY_MS,
            // The relay counts conversations opened before `to`: one opened this very
            // millisecond is in.
            to: now + 1,
            tz_offset_minutes: utc_offset_secs / 60,
        }
    }
}

/// A report's window as asked of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportWindow {
    /// The range it stands for.
    pub range: ReportRange,
    /// Conversations opened at or after this instant…
    pub from: UnixMillis,
    /// …and before this one.
    pub to: UnixMillis,
    /// The local offset from UTC, for arrivals by hour.
    pub tz_offset_minutes: i32,
}

impl ReportWindow {
    /// The query string of `/api/v1/reports/summary`.
    pub fn query(&self) -> String {
        format!("from={}&to={}&tz_offset_minutes={}", self.from, self.to, self.tz_offset_minutes)
    }

    /// The CSV file an export writes in the current directory:
    /// `kefu-report-<range>-<local date>.csv`.
    pub fn file_name(&self) -> String {
        let date = crate::view::format_date(self.to - 1, self.tz_offset_minutes * 60);
        format!("kefu-report-{}-{date}.csv", self.range.name())
    }
}

/// What the report view holds; it survives closing the view.
#[derive(Debug, Default)]
pub struct ReportBoard {
    /// The range shown.
    pub range: ReportRange,
    /// The window last asked for, and its report.
    pub report: Option<(ReportWindow, Fetched<Box<Report>>)>,
    /// The highlighted row of the agents table.
    pub agent_selected: usize,
    /// An export is being fetched and written.
    pub exporting: bool,
}

impl ReportBoard {
    /// The report of the current range, fetched afresh (what is shown stays until the
    /// answer comes, unless it is another range's).
    pub fn refresh(&mut self, now: UnixMillis, utc_offset_secs: i32) -> ApiRequest {
        let window = self.range.window(now, utc_offset_secs);
        let previous = match self.report.take() {
            Some((old, Fetched::Ready(report))) if old.range == window.range => Fetched::Ready(report),
            _ => Fetched::Loading,
        };
        self.report = Some((window, previous));
        ApiRequest::Report(window)
    }

    /// Shows the next (or previous) range.
    pub fn shift(&mut self, delta: isize, now: UnixMillis, utc_offset_secs: i32) -> ApiRequest {
        let at = ReportRange::ALL.iter().position(|r| *r == self.range).unwrap_or(0);
        let next = (at as isize + delta).rem_euclid(ReportRange::ALL.len() as isize) as usize;
        self.range = ReportRange::ALL[next];
        self.agent_selected = 0;
        self.refresh(now, utc_offset_secs)
    }

    /// The relay answered for `window`; an answer for a window no longer asked for is
    /// dropped.
    pub fn on_report(&mut self, window: ReportWindow, result: Result<Box<Report>, String>) {
        if self.report.as_ref().is_some_and(|(asked, _)| *asked == window) {
            let fetched = match result {
                Ok(report) => Fetched::Ready(report),
                Err(why) => Fetched::Failed(why),
            };
            self.report = Some((window, fetched));
            self.agent_selected = self.agent_selected.min(self.agents().saturating_sub(1));
        }
    }

    /// The report shown, once here.
    pub fn shown(&self) -> Option<(&ReportWindow, &Report)> {
        match &self.report {
            Some((window, Fetched::Ready(report))) => Some((window, report)),
            _ => None,
        }
    }

    /// Rows of the agents table.
    fn agents(&self) -> usize {
        self.shown().map_or(0, |(_, r)| r.by_agent.len())
    }

    /// Moves the highlight in the agents table: a row at a time wraps around, a page
    /// stops at the ends.
    pub fn select(&mut self, delta: isize) {
        let count = self.agents() as isize;
        if count > 0 {
            let next = self.agent_selected as isize + delta;
            let next = if delta.abs() == 1 { next.rem_euclid(count) } else { next.clamp(0, count - 1) };
            self.agent_selected = next as usize;
        }
    }

    /// The export of what is shown (or of the current range when nothing is yet), unless
    /// one is running.
    pub fn export(&mut self, now: UnixMillis, utc_offset_secs: i32) -> Option<ApiRequest> {
        if self.exporting {
            return None;
        }
        let window = match self.shown() {
            Some((window, _)) => *window,
            None => self.range.window(now, utc_offset_secs),
        };
        self.exporting = true;
        Some(ApiRequest::ExportReport { window, file: window.file_name() })
    }
}

/// Conversations opened per hour of the local day, summed over the days of the week.
pub fn arrivals_by_hour(arrivals: &Arrivals) -> [u64; 24] {
    let mut hours = [0; 24];
    for row in &arrivals.counts {
        for (hour, count) in row.iter().enumerate() {
            hours[hour] += count;
        }
    }
    hours
}

/// A share as a percentage, "87.5%"; "—" when there is nothing to divide.
pub fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "—".to_string(), |s| format!("{:.1}%", s * 100.0))
}

/// A duration as people say it: "42s", "3m05s", "1h05m"; "—" when there is none.
pub fn duration(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "—".into() };
    let secs = (ms + 500).div_euclid(1000).max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-11-21 08:00 in Beijing (00:00 UTC).
    const NOW: UnixMillis = 1_763_683_200_000;
    const BEIJING: i32 = 8 * 3600;

    #[test]
    fn ranges_start_at_local_midnight() {
        let today = ReportRange::Today.window(NOW, BEIJING);
        // Midnight in Beijing was 16:00 UTC the day before.
        assert_eq!(today.from, NOW - 8 * 3_600_000);
        assert_eq!(today.to, NOW + 1);
        assert_eq!(today.tz_offset_minutes, 480);
        let week = ReportRange::Week.window(NOW, BEIJING);
        assert_eq!(week.from, today.from - 6 * DAY_MS);
        assert_eq!(ReportRange::Month.window(NOW, 0).from, NOW - 29 * DAY_MS);
        assert_eq!(week.query(), format!("from={}&to={}&tz_offset_minutes=480", week.from, NOW + 1));
        assert_eq!(week.file_name(), "kefu-report-7d-2025-11-21.csv");
        // West of Greenwich: still the local date.
        assert_eq!(ReportRange::Today.window(NOW, -5 * 3600).file_name(), "kefu-report-today-2025-11-20.csv");
    }

    #[test]
    fn answers_for_another_range_are_dropped() {
        let mut board = ReportBoard::default();
        let ApiRequest::Report(week) = board.refresh(NOW, BEIJING) else { panic!("a report request") };
        let ApiRequest::Report(month) = board.shift(1, NOW, BEIJING) else { panic!("a report request") };
        assert_eq!(board.range, ReportRange::Month);
        board.on_report(week, Err("late".into()));
        assert!(matches!(board.report, Some((w, Fetched::Loading)) if w == month));
        board.on_report(month, Err("relay down".into()));
        assert!(matches!(&board.report, Some((_, Fetched::Failed(why))) if why == "relay down"));
    }

    #[test]
    fn figures_read_as_people_say_them() {
        assert_eq!(percent(Some(0.875)), "87.5%");
        assert_eq!(percent(None), "—");
        assert_eq!(duration(Some(41_600)), "42s");
        assert_eq!(duration(Some(185_000)), "3m05s");
        assert_eq!(duration(Some(3_900_000)), "1h05m");
        let mut arrivals = Arrivals::new(480);
        arrivals.counts[0][9] = 3;
        arrivals.counts[5][9] = 2;
        arrivals.counts[6][23] = 1;
        let hours = arrivals_by_hour(&arrivals);
        assert_eq!((hours[9], hours[23], hours.iter().sum::<u64>()), (5, 1, 6));
    }
}
