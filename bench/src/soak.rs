//! The soak run's report: one row per interval of a long open-loop message load
//! ([`crate::load::IntervalRow`]), and a verdict on whether the server stayed flat,
//! comparing the last third of the run with the first.

use std::time::Duration;

use serde::Serialize;

use crate::load::IntervalRow;
use crate::report::LatencySummary;

/// Columns of a soak row (latency in µs, memory in KiB); the last two are the disk's own
/// fsync latency in the same window ([`crate::disk`]).
pub const HEADER: [&str; 14] = [
    "elapsed s",
    "delivered",
    "msg/s",
    "e2e p50",
    "e2e p99",
    "e2e max",
    "typing p99",
    "rss KiB",
    "cpu µs/msg",
    "late",
    "dup",
    "errors",
    "fsync p99",
    "fsync max",
];

/// Widths for printing rows one at a time, before the whole table is known: enough for
/// the figures of a run of hours at tens of thousands of messages a second.
pub fn widths() -> Vec<usize> {
    HEADER.iter().map(|h| h.chars().count().max(9)).collect()
}

/// A row as table cells, in [`HEADER`]'s order, with the fsync probe's window when one ran.
pub fn row_cells(row: &IntervalRow, disk: Option<&LatencySummary>) -> Vec<String> {
    let latency = |count: u64, us: f64| if count == 0 { "-".to_string() } else { format!("{us:.1}") };
    let rate = if row.window_secs > 0.0 { row.delivered as f64 / row.window_secs } else { 0.0 };
    let (rss, cpu) = match &row.server {
        Some(s) => (s.rss_after_kib.to_string(), format!("{:.2}", s.cpu_us_per_item)),
        None => ("-".to_string(), "-".to_string()),
    };
    vec![
        // A tenth of a second tells the last row, the drain's remainder, from a boundary.
        format!("{:.1}", row.elapsed_secs),
        row.delivered.to_string(),
        format!("{rate:.0}"),
        latency(row.e2e.count, row.e2e.p50_us),
        latency(row.e2e.count, row.e2e.p99_us),
        latency(row.e2e.count, row.e2e.max_us),
        latency(row.typing.count, row.typing.p99_us),
        rss,
        cpu,
        row.late.to_string(),
        row.duplicates.to_string(),
        row.errors.to_string(),
        disk.map_or("-".to_string(), |d| latency(d.count, d.p99_us)),
        disk.map_or("-".to_string(), |d| latency(d.count, d.max_us)),
    ]
}

/// The server grew no more than this between the first and the last third to be called
/// flat: a leak of a few KiB per message shows in minutes, while caches that settle in
/// the first third do not count.
pub const FLAT_RSS_GROWTH_PCT: f64 = 10.0;

/// The median window's e2e p99 in the last third may be at most this many times the first
/// third's to be called flat: on a shared two-core machine tails double from others' work,
/// a queue that grows without bound does far more.
pub const FLAT_P99_RATIO: f64 = 2.0;

/// The last third of a soak against the first: medians over each third's windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Full windows in each third compared.
    pub windows_per_third: usize,
    /// The server's median resident memory at the ends of the first third's windows, KiB.
    pub rss_first_kib: Option<u64>,
    /// The same for the last third.
    pub rss_last_kib: Option<u64>,
    /// Last minus first, KiB.
    pub rss_growth_kib: Option<i64>,
    /// Growth as a share of the first, percent.
    pub rss_growth_pct: Option<f64>,
    /// The median window's e2e p99 in the first third, µs.
    pub e2e_p99_first_us: f64,
    /// The same in the last third, µs.
    pub e2e_p99_last_us: f64,
    /// Last over first.
    pub e2e_p99_ratio: f64,
    /// The median window's server CPU per message in the first third, µs.
    pub cpu_us_per_msg_first: Option<f64>,
    /// The same in the last third.
    pub cpu_us_per_msg_last: Option<f64>,
    /// Memory grew at most [`FLAT_RSS_GROWTH_PCT`] and p99 at most [`FLAT_P99_RATIO`]×.
    pub flat: bool,
}

/// The median of `values` (the lower one of the middle two), if any.
fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> Option<T> {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values.get(values.len().saturating_sub(1) / 2).copied()
}

impl Verdict {
    /// Compares the last third of `rows` with the first, over full windows only (at
    /// least half of `interval`: the run's last row may be a short remainder). `None`
    /// when fewer than three full windows were run.
    pub fn of(rows: &[IntervalRow], interval: Duration) -> Option<Verdict> {
        let full: Vec<&IntervalRow> = rows.iter().filter(|r| r.window_secs >= interval.as_secs_f64() / 2.0).collect();
        let third = full.len() / 3;
        if third == 0 {
            return None;
        }
        let (first, last) = (&full[..third], &full[full.len() - third..]);
        let rss = |rows: &[&IntervalRow]| {
            median(rows.iter().filter_map(|r| Some(r.server.as_ref()?.rss_after_kib)).collect())
        };
        let p99 = |rows: &[&IntervalRow]| median(rows.iter().map(|r| r.e2e.p99_us).collect()).unwrap_or(0.0);
        let cpu = |rows: &[&IntervalRow]| {
            median(rows.iter().filter_map(|r| Some(r.server.as_ref()?.cpu_us_per_item)).collect())
        };
        let (rss_first, rss_last) = (rss(first), rss(last));
        let rss_growth_kib = rss_first.zip(rss_last).map(|(a, b)| b as i64 - a as i64);
        let rss_growth_pct = rss_first
            .zip(rss_growth_kib)
            .map(|(a, g)| if a == 0 { 0.0 } else { (g as f64 / a as f64 * 1000.0).round() / 10.0 });
        let (p99_first, p99_last) = (p99(first), p99(last));
        let e2e_p99_ratio = if p99_first > 0.0 { (p99_last / p99_first * 100.0).round() / 100.0 } else { 0.0 };
        let flat = rss_growth_pct.is_none_or(|g| g <= FLAT_RSS_GROWTH_PCT) && e2e_p99_ratio <= FLAT_P99_RATIO;
        Some(Verdict {
            windows_per_third: third,
            rss_first_kib: rss_first,
            rss_last_kib: rss_last,
            rss_growth_kib,
            rss_growth_pct,
            e2e_p99_first_us: p99_first,
            e2e_p99_last_us: p99_last,
            e2e_p99_ratio,
            cpu_us_per_msg_first: cpu(first),
            cpu_us_per_msg_last: cpu(last),
            flat,
        })
    }

    /// The verdict in one line.
    pub fn line(&self) -> String {
        let rss = match (self.rss_first_kib, self.rss_last_kib, self.rss_growth_kib, self.rss_growth_pct) {
            (Some(a), Some(b), Some(g), Some(p)) => format!("RSS {a} → {b} KiB ({g:+} KiB, {p:+.1}%)"),
            _ => "RSS not known".to_string(),
        };
        let cpu = match (self.cpu_us_per_msg_first, self.cpu_us_per_msg_last) {
            (Some(a), Some(b)) => format!(", CPU {a:.2} → {b:.2} µs/msg"),
            _ => String::new(),
        };
        format!(
            "verdict: {} — last third against first ({} windows each, medians): {rss}, e2e p99 {:.1} → {:.1} µs ({:.2}×){cpu}",
            if self.flat { "flat" } else { "NOT flat" },
            self.windows_per_third,
            self.e2e_p99_first_us,
            self.e2e_p99_last_us,
            self.e2e_p99_ratio,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{LatencySummary, ServerCost};

    fn row(elapsed: f64, window: f64, rss_kib: u64, p99_us: f64) -> IntervalRow {
        IntervalRow {
            elapsed_secs: elapsed,
            window_secs: window,
            delivered: 100,
            e2e: LatencySummary { count: 100, p99_us, ..LatencySummary::default() },
            typing: LatencySummary::default(),
            server: Some(ServerCost { rss_after_kib: rss_kib, cpu_us_per_item: 10.0, ..ServerCost::default() }),
            late: 0,
            duplicates: 0,
            errors: 0,
        }
    }

    #[test]
    fn a_steady_run_is_flat_and_a_growing_one_is_not() {
        let interval = Duration::from_secs(10);
        let steady: Vec<_> = (1..=6).map(|i| row(i as f64 * 10.0, 10.0, 100_000 + i, 500.0)).collect();
        let v = Verdict::of(&steady, interval).unwrap();
        assert_eq!(v.windows_per_third, 2);
        assert_eq!((v.rss_first_kib, v.rss_last_kib, v.rss_growth_kib), (Some(100_001), Some(100_005), Some(4)));
        assert_eq!(v.e2e_p99_ratio, 1.0);
        assert!(v.flat, "{}", v.line());

        let leaking: Vec<_> = (1..=6).map(|i| row(i as f64 * 10.0, 10.0, 100_000 * i, 500.0)).collect();
        let v = Verdict::of(&leaking, interval).unwrap();
        assert_eq!(v.rss_growth_pct, Some(400.0));
        assert!(!v.flat);

        let backlog: Vec<_> = (1..=6).map(|i| row(i as f64 * 10.0, 10.0, 100_000, 500.0 * i as f64)).collect();
        let v = Verdict::of(&backlog, interval).unwrap();
        assert_eq!(v.e2e_p99_ratio, 5.0);
        assert!(!v.flat, "{}", v.line());
    }

    #[test]
    fn a_short_remainder_is_left_out_and_too_few_windows_give_no_verdict() {
        let interval = Duration::from_secs(10);
        let mut rows: Vec<_> = (1..=3).map(|i| row(i as f64 * 10.0, 10.0, 100_000, 500.0)).collect();
        rows.push(row(30.2, 0.2, 900_000, 90_000.0));
        let v = Verdict::of(&rows, interval).unwrap();
        assert_eq!(v.windows_per_third, 1);
        assert!(v.flat, "{}", v.line());
        assert_eq!(Verdict::of(&rows[..2], interval), None);
    }

    #[test]
    fn a_row_has_a_cell_per_column() {
        let cells = row_cells(&row(30.0, 30.0, 2048, 1500.0), None);
        assert_eq!(cells.len(), HEADER.len());
        assert_eq!(cells[0], "30.0");
        assert_eq!(cells[2], "3");
        assert_eq!(cells[4], "1500.0");
        assert_eq!(cells[7], "2048");
        assert_eq!(cells[12..], ["-", "-"], "no probe, no disk figures");
        let disk = LatencySummary { count: 3000, p99_us: 812.4, max_us: 2861.0, ..LatencySummary::default() };
        let cells = row_cells(&row(30.0, 30.0, 2048, 1500.0), Some(&disk));
        assert_eq!(cells.len(), HEADER.len());
        assert_eq!(cells[12..], ["812.4", "2861.0"]);
    }
}
