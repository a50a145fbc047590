//! Summaries: latency histograms reduced to percentiles, server figures, and the readable
//! table printed beside the JSON.

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
}

/// A process's CPU ticks (user + system) and resident memory.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// utime alone, in clock ticks.
    pub user_ticks: u64,
    /// VmRSS in KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), starting at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcSample { ticks: utime + stime, user_ticks: utime, rss_kib })
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
pub fn cost(pid: u32, before: ProcSample, after: ProcSample, items: u64) -> ServerCost {
    let ms = |ticks: u64| ticks as f64 * 1000.0 / ticks_per_second() as f64;
    let cpu_ms = ms(after.ticks.saturating_sub(before.ticks));
    ServerCost {
        pid,
        cpu_ms,
        user_ms: ms(after.user_ticks.saturating_sub(before.user_ticks)),
        cpu_us_per_item: if items == 0 { 0.0 } else { (cpu_ms * 1000.0 / items as f64 * 100.0).round() / 100.0 },
        rss_before_kib: before.rss_kib,
        rss_after_kib: after.rss_kib,
    }
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
    }
}
