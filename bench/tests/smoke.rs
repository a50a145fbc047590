//! A smoke run of every scenario with tiny numbers, against an in-process relay
//! (`kefu_relay::run` on 127.0.0.1:0) and an in-process forwarder: the tool's own
//! bookkeeping must come out exact (all acknowledged, all delivered once, in order).
//! These check counts, never speed.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use kefu_bench::conversations::{ConversationLoad, run_conversations};
use kefu_bench::idle::{IdleTarget, run_idle};
use kefu_bench::load::{MessageLoad, Target, run_messages, run_messages_observed};
use kefu_bench::server::{AGENT_PASSWORD, MosquittoSpawn, login, spawn_mosquitto};
use kefu_bench::soak::Verdict;
use kefu_proto::frame::Role;
use kefu_relay::{Config, Store, admin};
use tokio::sync::oneshot;

/// A relay in this process with `agents` agents of capacity `capacity`, logged in.
struct Relay {
    addr: SocketAddr,
    widget_key: String,
    tokens: Vec<String>,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn relay(agents: usize, capacity: u32) -> Result<Relay> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path()).await?;
    let workspace = admin::show_workspace(&store, "default").await?;
    for i in 0..agents {
        let email = format!("agent{i}@bench.invalid");
        let (id, _) = admin::add_agent(
            &store,
            "default",
            &email,
            &format!("Agent {i}"),
            Role::Agent,
            Some(AGENT_PASSWORD.into()),
        )
        .await?;
        admin::update_agent(&store, workspace.id, id, Some(capacity), None).await?;
    }
    store.close().await;
    let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    config.limits.frames_per_second = 100_000;
    config.limits.frame_burst = 100_000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(kefu_relay::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let mut tokens = Vec::new();
    for i in 0..agents {
        tokens.push(login(addr, &format!("agent{i}@bench.invalid"), AGENT_PASSWORD).await?);
    }
    Ok(Relay { addr, widget_key: workspace.widget_key, tokens, _stop: stop, _dir: dir })
}

fn tiny(conversations: usize) -> MessageLoad {
    MessageLoad {
        conversations,
        duration: Duration::from_secs(60),
        drain: Duration::from_secs(60),
        connect_concurrency: 8,
        ..MessageLoad::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_out_through_the_relay_acks_and_delivers_every_message_once() -> Result<()> {
    let relay = relay(2, 10).await?;
    let target = Target::Relay { addr: relay.addr, widget_key: relay.widget_key.clone(), agent_tokens: relay.tokens };
    let load = MessageLoad { in_flight: 4, max_messages: Some(400), ..tiny(12) };
    let outcome = run_messages(&target, &load, Some(std::process::id())).await?;
    assert!(outcome.clean(), "{outcome:#?}");
    assert_eq!((outcome.sent, outcome.acked, outcome.delivered), (400, 400, 400), "{outcome:#?}");
    assert_eq!(outcome.e2e.count, 400);
    assert_eq!(outcome.ack.count, 400);
    assert!(outcome.server.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_through_the_relay_with_typing_loses_nothing() -> Result<()> {
    let relay = relay(1, 10).await?;
    let target = Target::Relay { addr: relay.addr, widget_key: relay.widget_key.clone(), agent_tokens: relay.tokens };
    let load =
        MessageLoad { rate: Some(400.0), typing_rate: Some(100.0), duration: Duration::from_millis(750), ..tiny(5) };
    let outcome = run_messages(&target, &load, None).await?;
    assert!(outcome.clean(), "{outcome:#?}");
    assert_eq!(outcome.sent, 300, "{outcome:#?}");
    assert_eq!(outcome.delivered, 300);
    assert_eq!(outcome.typing_sent, 75);
    assert_eq!(outcome.typing_received, 75);
    assert_eq!(outcome.send_lag.count, 300);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarder_passes_every_message_and_typing_indicator() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(kefu_bench::forwarder::serve(listener));
    let flat = MessageLoad { in_flight: 8, max_messages: Some(300), ..tiny(6) };
    let outcome = run_messages(&Target::Forwarder { addr }, &flat, None).await?;
    assert!(outcome.clean(), "{outcome:#?}");
    assert_eq!((outcome.sent, outcome.delivered), (300, 300));
    let open =
        MessageLoad { rate: Some(400.0), typing_rate: Some(40.0), duration: Duration::from_millis(500), ..tiny(4) };
    let outcome = run_messages(&Target::Forwarder { addr }, &open, None).await?;
    assert!(outcome.clean(), "{outcome:#?}");
    assert_eq!((outcome.sent, outcome.delivered, outcome.typing_received), (200, 200, 20));
    server.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_conversations_are_all_assigned_and_idle_customers_all_welcomed() -> Result<()> {
    let relay = relay(2, 5).await?;
    let load = ConversationLoad {
        rate: 40.0,
        duration: Duration::from_millis(500),
        max_waiting: 100,
        timeout: Duration::from_secs(60),
    };
    let outcome = run_conversations(relay.addr, &relay.widget_key, &relay.tokens, &load, None).await?;
    assert_eq!((outcome.started, outcome.assigned, outcome.failed), (20, 20, 0), "{outcome:#?}");
    assert_eq!(outcome.closed_by_agents, 20, "{outcome:#?}");
    assert_eq!(outcome.to_assigned.count, 20);
    assert_eq!(outcome.to_ack.count, 20);

    let target = IdleTarget::Relay { addr: relay.addr, widget_key: relay.widget_key.clone() };
    let idle = run_idle(&target, 30, 8, Some(std::process::id())).await?;
    assert_eq!((idle.open, idle.failed), (30, 0), "{idle:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_reports_a_row_per_interval_that_add_up_to_the_run() -> Result<()> {
    let relay = relay(1, 10).await?;
    let target = Target::Relay { addr: relay.addr, widget_key: relay.widget_key.clone(), agent_tokens: relay.tokens };
    let interval = Duration::from_millis(500);
    let load = MessageLoad {
        rate: Some(200.0),
        typing_rate: Some(20.0),
        duration: Duration::from_millis(2000),
        interval: Some(interval),
        ..tiny(4)
    };
    let mut printed = 0;
    let outcome = run_messages_observed(&target, &load, Some(std::process::id()), &mut |_| printed += 1).await?;
    assert!(outcome.clean(), "{outcome:#?}");
    assert_eq!((outcome.sent, outcome.delivered, outcome.typing_received), (400, 400, 40), "{outcome:#?}");
    let rows = &outcome.intervals;
    assert_eq!(printed, rows.len());
    // Four windows of 0.5 s; the last one may close at its boundary or run on through the
    // drain, which can leave a short fifth.
    assert!((4..=5).contains(&rows.len()), "{rows:#?}");
    assert_eq!(rows.iter().map(|r| r.delivered).sum::<u64>(), 400);
    assert_eq!(rows.iter().map(|r| r.e2e.count).sum::<u64>(), outcome.e2e.count);
    assert_eq!(rows.iter().map(|r| r.typing.count).sum::<u64>(), 40);
    assert!(rows.iter().all(|r| r.server.is_some() && r.duplicates == 0 && r.errors == 0), "{rows:#?}");
    assert_eq!(rows.last().map(|r| r.late), Some(0));
    let verdict = Verdict::of(rows, interval).expect("four full windows give a verdict");
    assert_eq!(verdict.windows_per_third, 1);
    assert!(verdict.rss_first_kib.is_some());
    Ok(())
}

/// Debian's mosquitto, when installed (`apt-get install mosquitto`): the broker path is
/// checked wherever it can run, and skipped, saying so, where it cannot.
fn mosquitto() -> Option<std::path::PathBuf> {
    let found = std::process::Command::new("mosquitto").arg("-h").output().is_ok();
    if !found {
        eprintln!("mosquitto is not installed: the MQTT smoke run is skipped");
    }
    found.then(|| "mosquitto".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_through_mosquitto_acks_and_delivers_every_message_once() -> Result<()> {
    let Some(bin) = mosquitto() else { return Ok(()) };
    for persistence in [false, true] {
        let spawn = MosquittoSpawn { bin: bin.clone(), cpus: None, persistence };
        let broker = tokio::task::spawn_blocking(move || spawn_mosquitto(&spawn)).await??;
        let target = Target::Mqtt { addr: broker.addr };
        let flat = MessageLoad { in_flight: 8, max_messages: Some(300), ..tiny(6) };
        let outcome = run_messages(&target, &flat, Some(broker.pid)).await?;
        assert!(outcome.clean(), "{outcome:#?}");
        assert_eq!((outcome.sent, outcome.acked, outcome.delivered), (300, 300, 300), "{outcome:#?}");
        assert_eq!(outcome.ack.count, 300);
        assert!(outcome.server.is_some());
        let open =
            MessageLoad { rate: Some(400.0), typing_rate: Some(40.0), duration: Duration::from_millis(500), ..tiny(4) };
        let outcome = run_messages(&target, &open, None).await?;
        assert!(outcome.clean(), "{outcome:#?}");
        assert_eq!((outcome.sent, outcome.acked, outcome.delivered, outcome.typing_received), (200, 200, 200, 20));
        broker.stop()?;
    }
    Ok(())
}
