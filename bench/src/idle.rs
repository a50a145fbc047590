//! Idle connections: how much resident memory one more connected, welcomed and silent
//! client costs the server. The connections are opened a bounded number at a time, held,
//! and the server's `VmRSS` is read before the first and after the last.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::load::{self, Ws};
use crate::report::{self, LatencySummary};

/// Whom to connect to.
#[derive(Debug, Clone)]
pub enum IdleTarget {
    /// The forwarder: each connection is the `a` end of its own pair.
    Forwarder(SocketAddr),
    /// The relay: each connection is a new customer, welcomed.
    Relay {
        /// Where it listens.
        addr: SocketAddr,
        /// For the customers' hello.
        widget_key: String,
    },
}

/// What an idle run measured.
#[derive(Debug, Clone, Serialize)]
pub struct IdleOutcome {
    /// Connections asked for.
    pub asked: usize,
    /// Connections open (and welcomed, on the relay) at the end.
    pub open: usize,
    /// Connections that failed.
    pub failed: usize,
    /// The first failure.
    pub first_error: Option<String>,
    /// Seconds to open them all.
    pub setup_secs: f64,
    /// Connect → welcome (or handshake) per connection.
    pub connect: LatencySummary,
    /// Server resident memory before, KiB.
    pub rss_before_kib: u64,
    /// Server resident memory with every connection open, KiB.
    pub rss_after_kib: u64,
    /// (after − before) / open, KiB.
    pub rss_per_connection_kib: f64,
    /// Server CPU spent accepting them, per connection, µs.
    pub cpu_us_per_connection: f64,
}

/// Opens `connections` idle connections, reads the server's memory, closes them.
pub async fn run_idle(
    target: &IdleTarget,
    connections: usize,
    concurrency: usize,
    pid: Option<u32>,
) -> Result<IdleOutcome> {
    let before = pid.and_then(report::sample);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks: JoinSet<Result<(Ws, u64)>> = JoinSet::new();
    for i in 0..connections {
        let (gate, target) = (gate.clone(), target.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let t = Instant::now();
            let ws = match &target {
                IdleTarget::Forwarder(addr) => load::connect(*addr, &format!("/pair/{i}/a"), 4096).await?,
                IdleTarget::Relay { addr, widget_key } => load::customer(*addr, widget_key).await?,
            };
            Ok((ws, t.elapsed().as_nanos() as u64))
        });
    }
    let mut open = Vec::with_capacity(connections);
    let mut histogram = report::histogram();
    let (mut failed, mut first_error) = (0, None);
    while let Some(joined) = tasks.join_next().await {
        match joined? {
            Ok((ws, ns)) => {
                histogram.saturating_record(ns.max(1));
                open.push(ws);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let setup_secs = started.elapsed().as_secs_f64();
    // Let the server finish what the last hellos started (contacts are written in batches).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pid.and_then(report::sample);
    let (rss_before, rss_after) = (before.as_ref().map_or(0, |s| s.rss_kib), after.as_ref().map_or(0, |s| s.rss_kib));
    let cost = match (pid, before, after) {
        (Some(pid), Some(b), Some(a)) => Some(report::cost(pid, &b, &a, open.len() as u64)),
        _ => None,
    };
    let outcome = IdleOutcome {
        asked: connections,
        open: open.len(),
        failed,
        first_error,
        setup_secs,
        connect: LatencySummary::of(&histogram),
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_kib: if open.is_empty() {
            0.0
        } else {
            ((rss_after.saturating_sub(rss_before)) as f64 / open.len() as f64 * 100.0).round() / 100.0
        },
        cpu_us_per_connection: cost.map_or(0.0, |c| c.cpu_us_per_item),
    };
    drop(open);
    Ok(outcome)
}
