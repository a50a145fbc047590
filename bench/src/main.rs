//! `kefu-bench`: the load tool's command line. Each scenario starts its servers (pinned
//! with taskset when asked), runs, prints a readable table and a JSON summary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kefu_bench::conversations::{ConversationLoad, run_conversations};
use kefu_bench::disk::FsyncProbe;
use kefu_bench::idle::{IdleOutcome, IdleTarget, run_idle};
use kefu_bench::load::{MessageLoad, MessageOutcome, Target, run_messages, run_messages_observed};
use kefu_bench::report::{LatencySummary, latency_cells, print_table, table_line, thread_split};
use kefu_bench::server::{self, MosquittoSpawn, RelaySpawn, Server};
use kefu_bench::soak::{self, Verdict};
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
    /// Beside each message, soak or new-conversation run, write 4 KiB and fdatasync it
    /// this often (milliseconds) in the temporary directory, where the servers keep their
    /// data, and report the syncs' latency: what the disk allowed during the run. 0: off.
    #[arg(long, global = true, default_value_t = 10)]
    fsync_probe_ms: u64,
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
    /// Messages from customers to agents (or through forwarder pairs, or MQTT pairs
    /// through mosquitto).
    Messages(MessagesArgs),
    /// A long open-loop message load at a moderate rate, one row per interval (latency,
    /// the server's memory and CPU per message, losses), then a verdict: is it flat?
    Soak(SoakArgs),
    /// New conversations per second, time to assignment (relay only).
    Conversations(ConversationsArgs),
    /// Idle connections and the server's memory per connection.
    Idle(IdleArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    /// The bare WebSocket forwarder: the ceiling.
    Forwarder,
    /// The kefu relay.
    Relay,
    /// mosquitto, MQTT QoS 1, `persistence false`.
    Mosquitto,
    /// mosquitto, MQTT QoS 1, `persistence true`.
    MosquittoPersistent,
    /// The forwarder and the relay.
    Both,
    /// The forwarder, the relay and mosquitto without and with persistence.
    All,
}

/// One server to load.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Forwarder,
    Relay,
    Mosquitto { persistence: bool },
}

impl Kind {
    /// Every kind, in the order a run loads them: the ceiling first.
    const ALL: [Kind; 4] =
        [Kind::Forwarder, Kind::Relay, Kind::Mosquitto { persistence: false }, Kind::Mosquitto { persistence: true }];

    /// Its name in tables and in the JSON summary.
    fn name(self) -> &'static str {
        match self {
            Kind::Forwarder => "forwarder",
            Kind::Relay => "relay",
            Kind::Mosquitto { persistence: false } => "mosquitto",
            Kind::Mosquitto { persistence: true } => "mosquitto_persistent",
        }
    }
}

impl Which {
    fn covers(self, kind: Kind) -> bool {
        match self {
            Which::Forwarder => kind == Kind::Forwarder,
            Which::Relay => kind == Kind::Relay,
            Which::Mosquitto => kind == Kind::Mosquitto { persistence: false },
            Which::MosquittoPersistent => kind == Kind::Mosquitto { persistence: true },
            Which::Both => matches!(kind, Kind::Forwarder | Kind::Relay),
            Which::All => true,
        }
    }
}

/// The servers `which` names, each once, in [`Kind::ALL`]'s order.
fn kinds(which: &[Which]) -> Vec<Kind> {
    Kind::ALL.into_iter().filter(|&k| which.iter().any(|w| w.covers(k))).collect()
}

#[derive(Args, Clone)]
struct ServerArgs {
    /// Which servers to load, one after the other (a comma-separated list); the
    /// forwarder, when named, runs first as this run's ceiling.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "both")]
    server: Vec<Which>,
    #[command(flatten)]
    launch: LaunchArgs,
}

/// How to start (or find) the servers.
#[derive(Args, Clone)]
struct LaunchArgs {
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
    /// The mosquitto binary (Debian: `apt-get install mosquitto`).
    #[arg(long, default_value = "mosquitto")]
    mosquitto_bin: PathBuf,
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
struct SoakArgs {
    /// The one server to load.
    #[arg(long, value_enum, default_value = "relay")]
    server: Which,
    #[command(flatten)]
    launch: LaunchArgs,
    /// Conversations (customer → agent, or pairs).
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// Messages per second over all conversations (open loop).
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Typing indicators per second over all conversations (0: none).
    #[arg(long, default_value_t = 200.0)]
    typing_rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// Seconds per row.
    #[arg(long, default_value_t = 30.0)]
    interval: f64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
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
    let probe = (cli.fsync_probe_ms > 0).then(|| Duration::from_millis(cli.fsync_probe_ms));
    runtime.block_on(async move {
        let summary = match cli.command {
            Command::Forwarder { listen } => {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                println!("listening on {}", listener.local_addr()?);
                kefu_bench::forwarder::serve(listener).await?;
                return Ok(());
            }
            Command::Messages(args) => messages(args, probe).await?,
            Command::Soak(args) => soak(args, probe).await?,
            Command::Conversations(args) => conversations(args, probe).await?,
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

/// A server to load: started here (a relay with agents logged in) or given.
struct UnderTest {
    target: Target,
    pid: Option<u32>,
    process: Option<Server>,
}

impl UnderTest {
    /// Stops the server if this tool started it.
    fn stop(self) {
        if let Some(process) = self.process {
            stop(process);
        }
    }
}

/// Starts the server `kind` is (or finds the relay given on the command line); the relay
/// gets agents with room for `conversations`.
async fn start(kind: Kind, args: &LaunchArgs, conversations: usize) -> Result<UnderTest> {
    let cpus = args.server_cpu.clone();
    let (target, process) = match kind {
        Kind::Relay => return relay(args, conversations).await,
        Kind::Forwarder => {
            let forwarder = server::spawn_forwarder(cpus.as_deref())?;
            (Target::Forwarder { addr: forwarder.addr }, forwarder)
        }
        Kind::Mosquitto { persistence } => {
            let spawn = MosquittoSpawn { bin: args.mosquitto_bin.clone(), cpus, persistence };
            let broker = tokio::task::spawn_blocking(move || server::spawn_mosquitto(&spawn)).await??;
            (Target::Mqtt { addr: broker.addr }, broker)
        }
    };
    Ok(UnderTest { target, pid: Some(process.pid), process: Some(process) })
}

async fn relay(args: &LaunchArgs, conversations: usize) -> Result<UnderTest> {
    if let Some(addr) = args.relay_addr {
        let widget_key = args.widget_key.clone().context("--widget-key")?;
        return Ok(UnderTest {
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
    Ok(UnderTest {
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

/// Starts the fsync probe when asked for.
fn start_probe(every: Option<Duration>) -> Result<Option<FsyncProbe>> {
    every.map(|every| FsyncProbe::start(&std::env::temp_dir(), every)).transpose()
}

/// Prints what the fsync probe saw beside `name`'s run.
fn print_disk_line(name: &str, disk: &LatencySummary, every: Option<Duration>) {
    let ms = |us: f64| us / 1000.0;
    println!(
        "  {name}: the disk beside it (4 KiB + fdatasync every {} ms, {} syncs): p50 {:.2} ms, p99 {:.2} ms, \
         max {:.2} ms",
        every.unwrap_or_default().as_millis(),
        disk.count,
        ms(disk.p50_us),
        ms(disk.p99_us),
        ms(disk.max_us)
    );
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

async fn messages(args: MessagesArgs, every: Option<Duration>) -> Result<serde_json::Value> {
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
    let mut disk = Vec::new();
    for kind in kinds(&args.server.server) {
        let server = start(kind, &args.server.launch, args.conversations).await?;
        let probe = start_probe(every)?;
        let outcome = run_messages(&server.target, &load, server.pid).await;
        let probed = probe.map(|p| p.finish()).transpose();
        server.stop();
        results.push((kind.name(), outcome?));
        disk.push((kind.name(), probed?));
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
    for (name, o) in &results {
        if let Some(cost) = &o.server {
            println!("  {name}: cpu µs/msg by thread: {}", thread_split(cost));
        }
    }
    for (name, probed) in &disk {
        if let Some(d) = probed {
            print_disk_line(name, d, every);
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
    if every.is_some() {
        summary["disk_fsync"] = disk.iter().map(|(name, d)| (name.to_string(), json!(d))).collect();
    }
    if let Some((_, ceiling)) = results.iter().find(|(name, _)| *name == Kind::Forwarder.name()) {
        let mut ratios = serde_json::Map::new();
        for (name, o) in results.iter().filter(|(name, _)| *name != Kind::Forwarder.name()) {
            let these = ratios_to_ceiling(name, o, ceiling);
            println!("\n  {name} / forwarder: {}", serde_json::Value::Object(these.clone()));
            ratios.extend(these);
        }
        summary["ratios"] = serde_json::Value::Object(ratios);
    }
    Ok(summary)
}

/// `name`'s figures over the forwarder's (the ceiling's), keyed `<figure>_<name>_over_forwarder`.
fn ratios_to_ceiling(name: &str, o: &MessageOutcome, f: &MessageOutcome) -> serde_json::Map<String, serde_json::Value> {
    let ratio = |a: f64, b: f64| if b > 0.0 { ((a / b) * 1000.0).round() / 1000.0 } else { 0.0 };
    let cpu = |o: &MessageOutcome| o.server.as_ref().map_or(0.0, |s| s.cpu_us_per_item);
    [
        ("throughput", ratio(o.delivered_per_sec, f.delivered_per_sec)),
        ("e2e_p50", ratio(o.e2e.p50_us, f.e2e.p50_us)),
        ("e2e_p99", ratio(o.e2e.p99_us, f.e2e.p99_us)),
        ("typing_p99", ratio(o.typing.p99_us, f.typing.p99_us)),
        ("cpu_per_msg", ratio(cpu(o), cpu(f))),
    ]
    .into_iter()
    .map(|(figure, value)| (format!("{figure}_{name}_over_forwarder"), json!(value)))
    .collect()
}

async fn soak(args: SoakArgs, every: Option<Duration>) -> Result<serde_json::Value> {
    let [kind] = kinds(&[args.server])[..] else {
        bail!("a soak loads one server: forwarder, relay, mosquitto or mosquitto-persistent");
    };
    if args.interval <= 0.0 || args.duration < args.interval {
        bail!("--interval must be positive and at most --duration");
    }
    let interval = Duration::from_secs_f64(args.interval);
    let load = MessageLoad {
        conversations: args.conversations,
        rate: Some(args.rate),
        duration: Duration::from_secs_f64(args.duration),
        body_bytes: args.body_bytes,
        typing_rate: (args.typing_rate > 0.0).then_some(args.typing_rate),
        interval: Some(interval),
        ..MessageLoad::default()
    };
    let title = format!(
        "soak of the {}: {} conversations, open loop at {} msg/s and {} typing/s, {} s, a row every {} s \
         (latency in µs from the intended send time)",
        kind.name(),
        args.conversations,
        args.rate,
        args.typing_rate,
        args.duration,
        args.interval
    );
    let machine = machine_conditions();
    let server = start(kind, &args.launch, args.conversations).await?;
    let probe = start_probe(every)?;
    println!("\n{title}");
    let widths = soak::widths();
    println!("{}", table_line(&soak::HEADER, &widths));
    // Each row with what the disk allowed in the same window.
    let mut disk_windows = Vec::new();
    let mut print_row = |row: &_| {
        let disk = probe.as_ref().map(FsyncProbe::take_window);
        println!("{}", table_line(&soak::row_cells(row, disk.as_ref()), &widths));
        disk_windows.push(disk);
    };
    let outcome = run_messages_observed(&server.target, &load, server.pid, &mut print_row).await;
    let probed = probe.map(FsyncProbe::finish).transpose();
    server.stop();
    let (outcome, probed) = (outcome?, probed?);
    let rows: Vec<Vec<String>> = outcome
        .intervals
        .iter()
        .zip(disk_windows.iter().chain(std::iter::repeat(&None)))
        .map(|(row, disk)| soak::row_cells(row, disk.as_ref()))
        .collect();
    print_table(&title, &soak::HEADER, &rows);
    if let Some(cost) = &outcome.server {
        println!("  {}: cpu µs/msg by thread over the run: {}", kind.name(), thread_split(cost));
    }
    if let Some(disk) = &probed {
        print_disk_line(kind.name(), disk, every);
    }
    println!(
        "  total: {} sent, {} delivered, {} lost, {} unacknowledged, {} duplicate, {} out of order, {} errors; \
         typing {} sent, {} received",
        outcome.sent,
        outcome.delivered,
        outcome.lost,
        outcome.unacked,
        outcome.duplicate_acks + outcome.duplicate_deliveries,
        outcome.out_of_order,
        outcome.errors,
        outcome.typing_sent,
        outcome.typing_received
    );
    if let Some(e) = &outcome.first_error {
        println!("  first error: {e}");
    }
    let verdict = Verdict::of(&outcome.intervals, interval);
    match &verdict {
        Some(v) => println!("  {}", v.line()),
        None => println!("  verdict: none (fewer than three full intervals)"),
    }
    let mut summary = json!({
        "scenario": "soak",
        "server": kind.name(),
        "conversations": args.conversations,
        "rate": args.rate,
        "typing_rate": args.typing_rate,
        "duration_secs": args.duration,
        "interval_secs": args.interval,
        "body_bytes": args.body_bytes,
        "machine": machine,
        "verdict": verdict,
    });
    summary[kind.name()] = serde_json::to_value(&outcome)?;
    if every.is_some() {
        summary["disk_fsync"] = json!({ "run": probed, "windows": disk_windows });
    }
    Ok(summary)
}

async fn conversations(args: ConversationsArgs, every: Option<Duration>) -> Result<serde_json::Value> {
    if !kinds(&args.server.server).contains(&Kind::Relay) {
        bail!("new conversations are a relay scenario");
    }
    // Agents close what they get at once; 2,000 slots absorb a backlog.
    let relay = relay(&args.server.launch, 2000).await?;
    let Target::Relay { addr, widget_key, agent_tokens } = &relay.target else { unreachable!() };
    let load = ConversationLoad {
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration),
        max_waiting: 15_000,
        timeout: Duration::from_secs(60),
    };
    let probe = start_probe(every)?;
    let o = run_conversations(*addr, widget_key, agent_tokens, &load, relay.pid).await;
    let probed = probe.map(FsyncProbe::finish).transpose();
    relay.stop();
    let (o, probed) = (o?, probed?);
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
    if let Some(cost) = &o.server {
        println!("  relay: cpu µs/conversation by thread: {}", thread_split(cost));
    }
    if let Some(disk) = &probed {
        print_disk_line("relay", disk, every);
    }
    Ok(json!({ "scenario": "conversations", "machine": machine_conditions(), "relay": o, "disk_fsync": probed }))
}

async fn idle(args: IdleArgs) -> Result<serde_json::Value> {
    let kinds = kinds(&args.server.server);
    if kinds.iter().any(|k| matches!(k, Kind::Mosquitto { .. })) {
        bail!("idle connections are measured on the forwarder and the relay");
    }
    let mut results: Vec<(&str, IdleOutcome)> = Vec::new();
    for kind in kinds {
        let server = start(kind, &args.server.launch, 0).await?;
        let target = match &server.target {
            Target::Forwarder { addr } => IdleTarget::Forwarder(*addr),
            Target::Relay { addr, widget_key, .. } => IdleTarget::Relay { addr: *addr, widget_key: widget_key.clone() },
            Target::Mqtt { .. } => unreachable!("refused above"),
        };
        results.push((kind.name(), run_idle(&target, args.connections, args.concurrency, server.pid).await?));
        server.stop();
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
