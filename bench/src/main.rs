//! `kefu-bench`: the load tool's command line. Each scenario starts its servers (pinned
//! with taskset when asked), runs, prints a readable table and a JSON summary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kefu_bench::conversations::{ConversationLoad, run_conversations};
use kefu_bench::idle::{IdleOutcome, IdleTarget, run_idle};
use kefu_bench::load::{MessageLoad, MessageOutcome, Target, run_messages};
use kefu_bench::report::{latency_cells, print_table};
use kefu_bench::server::{self, RelaySpawn, Server};
use serde_json::json;

/// The most conversations the relay lets one agent hold (`kefu_relay::admin::MAX_CAPACITY`).
const MAX_CAPACITY: u32 = 100;

/// Load generator for the kefu relay, with a bare WebSocket forwarder as the ceiling.
#[derive(Parser)]
#[command(name = "kefu-bench", version, about)]
struct Cli {
    /// Pin this tool to these CPUs (a taskset list, e.g. 0) before it starts.
    #[arg(long, global = true)]
    cpu: Option<String>,
    /// Runtime threads: 1 is a single-threaded runtime, the leanest on one core.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Also write the JSON summary to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bare forwarder (the ceiling) until killed.
    Forwarder {
        /// Address to listen on; prints `listening on ADDR`.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Messages from customers to agents (or through forwarder pairs).
    Messages(MessagesArgs),
    /// New conversations per second, time to assignment (relay only).
    Conversations(ConversationsArgs),
    /// Idle connections and the server's memory per connection.
    Idle(IdleArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Forwarder,
    Relay,
    Both,
}

#[derive(Args, Clone)]
struct ServerArgs {
    /// Which server to load; `both` runs the forwarder first, as this run's ceiling.
    #[arg(long, value_enum, default_value = "both")]
    server: Which,
    /// CPUs for the server process (a taskset list, e.g. 1).
    #[arg(long)]
    server_cpu: Option<String>,
    /// The relay binary [default: kefu-relay next to this executable].
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Load a running relay at this address instead of starting one.
    #[arg(long, requires = "widget_key")]
    relay_addr: Option<SocketAddr>,
    /// The running relay's widget key.
    #[arg(long)]
    widget_key: Option<String>,
    /// Bearer tokens of the running relay's agents (repeat).
    #[arg(long)]
    agent_token: Vec<String>,
    /// The running relay's pid, for its CPU and memory figures.
    #[arg(long)]
    relay_pid: Option<u32>,
    /// Agents to create on a relay this tool starts (more if the conversations need them).
    #[arg(long, default_value_t = 10)]
    agents: usize,
    /// Each agent's capacity, at most 100 [default: 100].
    #[arg(long)]
    capacity: Option<u32>,
    /// The relay's `limits.outbound_queue`.
    #[arg(long, default_value_t = 16_384)]
    outbound_queue: usize,
}

#[derive(Args)]
struct MessagesArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Conversations (customer → agent, or forwarder pairs).
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// Open loop: messages per second over all conversations. Absent: flat out.
    #[arg(long)]
    rate: Option<f64>,
    /// Flat out: messages in flight per conversation.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many messages in all.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Body size in bytes.
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
    /// Typing indicators per second over all conversations, beside the messages.
    #[arg(long)]
    typing_rate: Option<f64>,
}

#[derive(Args)]
struct ConversationsArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// New customers per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(cpus) = &cli.cpu {
        server::pin_self(cpus)?;
    }
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads).enable_all().build()?
    };
    runtime.block_on(async move {
        let summary = match cli.command {
            Command::Forwarder { listen } => {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                println!("listening on {}", listener.local_addr()?);
                kefu_bench::forwarder::serve(listener).await?;
                return Ok(());
            }
            Command::Messages(args) => messages(args).await?,
            Command::Conversations(args) => conversations(args).await?,
            Command::Idle(args) => idle(args).await?,
        };
        let text = serde_json::to_string_pretty(&summary)?;
        println!("\n{text}");
        if let Some(path) = cli.json {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    })
}

/// A relay to load: started here (with agents logged in) or given.
struct RelayUnderTest {
    target: Target,
    pid: Option<u32>,
    process: Option<Server>,
}

async fn relay(args: &ServerArgs, conversations: usize) -> Result<RelayUnderTest> {
    if let Some(addr) = args.relay_addr {
        let widget_key = args.widget_key.clone().context("--widget-key")?;
        return Ok(RelayUnderTest {
            target: Target::Relay { addr, widget_key, agent_tokens: args.agent_token.clone() },
            pid: args.relay_pid,
            process: None,
        });
    }
    // The relay holds an agent to at most MAX_CAPACITY conversations: add agents when
    // the conversations need more room than the asked-for agents have.
    let capacity = args.capacity.unwrap_or(MAX_CAPACITY).min(MAX_CAPACITY);
    let agents = args.agents.max(conversations.div_ceil(capacity as usize)).max(1);
    let spawn = RelaySpawn {
        bin: args.relay_bin.clone().unwrap_or_else(server::default_relay_bin),
        cpus: args.server_cpu.clone(),
        agents,
        capacity,
        outbound_queue: args.outbound_queue,
    };
    let (process, emails) = tokio::task::spawn_blocking(move || server::spawn_relay(&spawn)).await??;
    server::wait_healthy(process.addr).await?;
    let mut agent_tokens = Vec::new();
    for email in &emails {
        agent_tokens.push(server::login(process.addr, email, server::AGENT_PASSWORD).await?);
    }
    let widget_key = process.widget_key.clone().context("the relay printed no widget key")?;
    Ok(RelayUnderTest {
        target: Target::Relay { addr: process.addr, widget_key, agent_tokens },
        pid: Some(process.pid),
        process: Some(process),
    })
}

/// Stops a server; a server that does not stop cleanly is reported, not fatal, since its
/// figures are already taken.
fn stop(server: Server) {
    if let Err(e) = server.stop() {
        eprintln!("warning: {e:#}");
    }
}

fn machine_conditions() -> serde_json::Value {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let usable = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    json!({ "loadavg": load.trim(), "cpus_online": online.trim(), "cpus_for_this_tool": usable })
}

fn message_row(name: &str, o: &MessageOutcome) -> Vec<String> {
    let mut row = vec![
        name.to_string(),
        o.sent.to_string(),
        o.delivered.to_string(),
        (o.lost + o.unacked + o.duplicate_deliveries + o.out_of_order).to_string(),
        o.errors.to_string(),
        format!("{:.0}", o.delivered_per_sec),
    ];
    row.extend(latency_cells(&o.e2e));
    let ack = latency_cells(&o.ack);
    row.push(ack[0].clone());
    row.push(ack[2].clone());
    let typing = latency_cells(&o.typing);
    row.push(typing[0].clone());
    row.push(typing[2].clone());
    row.push(format!("{:.0}", o.send_lag.p99_us));
    match &o.server {
        Some(s) => {
            let user = if s.cpu_ms > 0.0 { s.user_ms / s.cpu_ms * 100.0 } else { 0.0 };
            row.push(format!("{:.2} ({user:.0}% user)", s.cpu_us_per_item));
            row.push(format!("{:.1}", s.rss_after_kib as f64 / 1024.0));
        }
        None => row.extend(["-".to_string(), "-".to_string()]),
    }
    row
}

async fn messages(args: MessagesArgs) -> Result<serde_json::Value> {
    let load = MessageLoad {
        conversations: args.conversations,
        rate: args.rate,
        in_flight: args.in_flight,
        duration: Duration::from_secs_f64(args.duration),
        max_messages: args.max_messages,
        body_bytes: args.body_bytes,
        typing_rate: args.typing_rate,
        ..MessageLoad::default()
    };
    let mut results: Vec<(&str, MessageOutcome)> = Vec::new();
    if args.server.server != Which::Relay {
        let forwarder = server::spawn_forwarder(args.server.server_cpu.as_deref())?;
        let target = Target::Forwarder { addr: forwarder.addr };
        let outcome = run_messages(&target, &load, Some(forwarder.pid)).await?;
        stop(forwarder);
        results.push(("forwarder", outcome));
    }
    if args.server.server != Which::Forwarder {
        let relay = relay(&args.server, args.conversations).await?;
        let outcome = run_messages(&relay.target, &load, relay.pid).await?;
        if let Some(process) = relay.process {
            stop(process);
        }
        results.push(("relay", outcome));
    }
    let mode = match args.rate {
        Some(rate) => format!("open loop at {rate} msg/s"),
        None => format!("flat out, {} in flight per conversation", args.in_flight),
    };
    print_table(
        &format!(
            "messages: {} conversations, {mode}, {} s, {} B bodies (latency in µs)",
            args.conversations, args.duration, args.body_bytes
        ),
        &[
            "server",
            "sent",
            "delivered",
            "lost/dup",
            "errors",
            "msg/s",
            "e2e p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "ack p50",
            "ack p99",
            "typing p50",
            "typing p99",
            "lag p99",
            "cpu µs/msg",
            "rss MiB",
        ],
        &results.iter().map(|(name, o)| message_row(name, o)).collect::<Vec<_>>(),
    );
    for (name, o) in &results {
        if let Some(e) = &o.first_error {
            println!("  {name}: first error: {e}");
        }
    }
    let mut summary = json!({
        "scenario": "messages",
        "conversations": args.conversations,
        "rate": args.rate,
        "in_flight": if args.rate.is_none() { Some(args.in_flight) } else { None },
        "duration_secs": args.duration,
        "body_bytes": args.body_bytes,
        "typing_rate": args.typing_rate,
        "machine": machine_conditions(),
    });
    for (name, o) in &results {
        summary[*name] = serde_json::to_value(o)?;
    }
    if let [(_, f), (_, r)] = &results[..] {
        let ratio = |a: f64, b: f64| if b > 0.0 { ((a / b) * 1000.0).round() / 1000.0 } else { 0.0 };
        let cpu = |o: &MessageOutcome| o.server.as_ref().map_or(0.0, |s| s.cpu_us_per_item);
        let ratios = json!({
            "throughput_relay_over_forwarder": ratio(r.delivered_per_sec, f.delivered_per_sec),
            "e2e_p50_relay_over_forwarder": ratio(r.e2e.p50_us, f.e2e.p50_us),
            "e2e_p99_relay_over_forwarder": ratio(r.e2e.p99_us, f.e2e.p99_us),
            "typing_p99_relay_over_forwarder": ratio(r.typing.p99_us, f.typing.p99_us),
            "cpu_per_msg_relay_over_forwarder": ratio(cpu(r), cpu(f)),
        });
        println!("\n  relay / forwarder: {ratios}");
        summary["ratios"] = ratios;
    }
    Ok(summary)
}

async fn conversations(args: ConversationsArgs) -> Result<serde_json::Value> {
    if args.server.server == Which::Forwarder {
        bail!("new conversations are a relay scenario");
    }
    // Agents close what they get at once; 2,000 slots absorb a backlog.
    let relay = relay(&args.server, 2000).await?;
    let Target::Relay { addr, widget_key, agent_tokens } = &relay.target else { unreachable!() };
    let load = ConversationLoad {
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration),
        max_waiting: 15_000,
        timeout: Duration::from_secs(60),
    };
    let o = run_conversations(*addr, widget_key, agent_tokens, &load, relay.pid).await?;
    if let Some(process) = relay.process {
        stop(process);
    }
    let mut row =
        vec![o.started.to_string(), o.assigned.to_string(), o.failed.to_string(), format!("{:.0}", o.assigned_per_sec)];
    row.extend(latency_cells(&o.to_welcome).into_iter().take(3).collect::<Vec<_>>());
    row.extend(latency_cells(&o.to_assigned));
    row.push(o.server.as_ref().map_or("-".into(), |s| format!("{:.0}", s.cpu_us_per_item)));
    print_table(
        &format!(
            "new conversations: {} per second for {} s (latency from the intended start, µs)",
            args.rate, args.duration
        ),
        &[
            "started",
            "assigned",
            "failed",
            "assigned/s",
            "welcome p50",
            "p90",
            "p99",
            "assigned p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "cpu µs/conv",
        ],
        &[row],
    );
    if let Some(e) = &o.first_error {
        println!("  first error: {e}");
    }
    Ok(json!({ "scenario": "conversations", "machine": machine_conditions(), "relay": o }))
}

async fn idle(args: IdleArgs) -> Result<serde_json::Value> {
    let mut results: Vec<(&str, IdleOutcome)> = Vec::new();
    if args.server.server != Which::Relay {
        let forwarder = server::spawn_forwarder(args.server.server_cpu.as_deref())?;
        let target = IdleTarget::Forwarder(forwarder.addr);
        results.push(("forwarder", run_idle(&target, args.connections, args.concurrency, Some(forwarder.pid)).await?));
        stop(forwarder);
    }
    if args.server.server != Which::Forwarder {
        let relay = relay(&args.server, 0).await?;
        let Target::Relay { addr, widget_key, .. } = &relay.target else { unreachable!() };
        let target = IdleTarget::Relay { addr: *addr, widget_key: widget_key.clone() };
        results.push(("relay", run_idle(&target, args.connections, args.concurrency, relay.pid).await?));
        if let Some(process) = relay.process {
            stop(process);
        }
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(name, o)| {
            let mut row =
                vec![name.to_string(), o.open.to_string(), o.failed.to_string(), format!("{:.1}", o.setup_secs)];
            row.extend(latency_cells(&o.connect).into_iter().take(3).collect::<Vec<_>>());
            row.push(format!("{:.1}", o.rss_before_kib as f64 / 1024.0));
            row.push(format!("{:.1}", o.rss_after_kib as f64 / 1024.0));
            row.push(format!("{:.2}", o.rss_per_connection_kib));
            row.push(format!("{:.0}", o.cpu_us_per_connection));
            row
        })
        .collect();
    print_table(
        &format!("idle connections: {}", args.connections),
        &[
            "server",
            "open",
            "failed",
            "setup s",
            "connect p50 µs",
            "p90",
            "p99",
            "rss before MiB",
            "rss after MiB",
            "KiB/conn",
            "cpu µs/conn",
        ],
        &rows,
    );
    for (name, o) in &results {
        if let Some(e) = &o.first_error {
            println!("  {name}: first error: {e}");
        }
    }
    let mut summary = json!({ "scenario": "idle", "connections": args.connections, "machine": machine_conditions() });
    for (name, o) in &results {
        summary[*name] = serde_json::to_value(o)?;
    }
    if let [(_, f), (_, r)] = &results[..]
        && f.rss_per_connection_kib > 0.0
    {
        summary["ratios"] = json!({ "rss_per_connection_relay_over_forwarder":
            ((r.rss_per_connection_kib / f.rss_per_connection_kib) * 100.0).round() / 100.0 });
    }
    Ok(summary)
}
