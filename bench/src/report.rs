//! Summaries: latency histograms reduced to percentiles, server figures, and the readable
//! table printed beside the JSON.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in nanoseconds, 1 ns to 120 s, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of one latency histogram, in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl LatencySummary {
    /// Reduces a histogram of nanoseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        LatencySummary {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: (h.mean() / 100.0).round() / 10.0,
        }
    }
}

/// What the server process spent, read from `/proc/<pid>`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerCost {
    /// The server's process id.
    pub pid: u32,
    /// User + system CPU time during the measured interval, in milliseconds.
    pub cpu_ms: f64,
    /// Of it, in user space (the rest is the kernel: syscalls, fsync, TCP).
    pub user_ms: f64,
    /// CPU time per delivered message (or per connection), in microseconds.
    pub cpu_us_per_item: f64,
    /// Resident memory before the load, KiB.
    pub rss_before_kib: u64,
    /// Resident memory at the end of the load, KiB.
    pub rss_after_kib: u64,
    /// `cpu_us_per_item` split by thread name (threads of one name, such as a runtime's
    /// workers, together): which part of the server the CPU went to.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_us_per_item_by_thread: BTreeMap<String, f64>,
}

/// A process's CPU ticks (user + system) and resident memory.
#[derive(Debug, Clone)]
pub struct ProcSample {
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// utime alone, in clock ticks.
    pub user_ticks: u64,
    /// VmRSS in KiB.
    pub rss_kib: u64,
    /// utime + stime per thread name, from `/proc/<pid>/task/*/stat` (threads of one name
    /// summed; a thread that ended since the last sample is missing from the split).
    pub thread_ticks: BTreeMap<String, u64>,
}

/// A `stat` file's command name and utime + stime, utime.
fn stat_ticks(stat: &str) -> Option<(&str, u64, u64)> {
    // The command name is in parentheses and may hold spaces and parentheses; the
    // fields after it start at field 3.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((stat.get(open + 1..close)?, utime + stime, utime))
}

/// Reads `/proc/<pid>/stat`, `/proc/<pid>/status` and each thread's `stat`.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, ticks, user_ticks) = stat_ticks(&stat)?;
    let mut thread_ticks = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        if let Some((name, ticks, _)) = stat_ticks(&stat) {
            *thread_ticks.entry(name.to_string()).or_insert(0) += ticks;
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcSample { ticks, user_ticks, rss_kib, thread_ticks })
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The cost between two samples, spread over `items`.
pub fn cost(pid: u32, before: &ProcSample, after: &ProcSample, items: u64) -> ServerCost {
    let ms = |ticks: u64| ticks as f64 * 1000.0 / ticks_per_second() as f64;
    let per_item = |ms: f64| if items == 0 { 0.0 } else { (ms * 1000.0 / items as f64 * 100.0).round() / 100.0 };
    let cpu_ms = ms(after.ticks.saturating_sub(before.ticks));
    let cpu_us_per_item_by_thread = after
        .thread_ticks
        .iter()
        .map(|(name, &ticks)| {
            let spent = ticks.saturating_sub(before.thread_ticks.get(name).copied().unwrap_or(0));
            (name.clone(), per_item(ms(spent)))
        })
        .filter(|(_, us)| *us > 0.0)
        .collect();
    ServerCost {
        pid,
        cpu_ms,
        user_ms: ms(after.user_ticks.saturating_sub(before.user_ticks)),
        cpu_us_per_item: per_item(cpu_ms),
        rss_before_kib: before.rss_kib,
        rss_after_kib: after.rss_kib,
        cpu_us_per_item_by_thread,
    }
}

/// A cost's split by thread as one line: `name µs, …`, the largest first.
pub fn thread_split(cost: &ServerCost) -> String {
    let mut threads: Vec<(&String, &f64)> = cost.cpu_us_per_item_by_thread.iter().collect();
    threads.sort_by(|a, b| b.1.total_cmp(a.1));
    threads.iter().map(|(name, us)| format!("{name} {us:.2}")).collect::<Vec<_>>().join(", ")
}

/// Prints rows under a header, columns padded.
pub fn print_table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    println!("\n{title}");
    println!("{}", table_line(header, &widths));
    for row in rows {
        println!("{}", table_line(row, &widths));
    }
}

/// One line of a table: the first cell left-aligned, the others right-aligned, each
/// padded to its width.
pub fn table_line(cells: &[impl AsRef<str>], widths: &[usize]) -> String {
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .enumerate()
        .map(|(i, (c, w))| if i == 0 { format!("{:<w$}", c.as_ref()) } else { format!("{:>w$}", c.as_ref()) })
        .collect();
    format!("  {}", padded.join("  "))
}

/// A latency summary as table cells: p50, p90, p99, p99.9, max (µs).
pub fn latency_cells(l: &LatencySummary) -> Vec<String> {
    if l.count == 0 {
        return vec!["-".into(); 5];
    }
    [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us].iter().map(|v| format!("{v:.1}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_microseconds() {
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.max_us - 1000.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(!s.thread_ticks.is_empty(), "at least this thread");
    }

    #[test]
    fn a_thread_name_with_spaces_and_parentheses_is_read_whole() {
        let stat = "4242 (kefu (x) y) S 1 2 3 4 5 6 7 8 9 10 170 30 0 0 20 0 1 0";
        assert_eq!(stat_ticks(stat), Some(("kefu (x) y", 200, 170)));
    }

    #[test]
    fn the_cost_is_split_by_thread_per_item() {
        let sample = |threads: &[(&str, u64)]| ProcSample {
            ticks: threads.iter().map(|(_, t)| t).sum(),
            user_ticks: 0,
            rss_kib: 1,
            thread_ticks: threads.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
        };
        let before = sample(&[("kefu-journal", 100), ("tokio-rt-worker", 50)]);
        let after = sample(&[("kefu-journal", 150), ("tokio-rt-worker", 50), ("new", 20)]);
        let cost = cost(1, &before, &after, 1000);
        let tick_us = 1_000_000.0 / ticks_per_second() as f64;
        let by_thread = &cost.cpu_us_per_item_by_thread;
        assert_eq!(by_thread.keys().collect::<Vec<_>>(), ["kefu-journal", "new"], "idle threads are left out");
        assert!((by_thread["kefu-journal"] - 50.0 * tick_us / 1000.0).abs() < 0.01, "{cost:?}");
        assert!((by_thread["new"] - 20.0 * tick_us / 1000.0).abs() < 0.01, "{cost:?}");
        assert!(thread_split(&cost).starts_with("kefu-journal "), "{}", thread_split(&cost));
    }
}
