//! A real broker on the same path: MQTT 3.1.1 through a broker such as mosquitto, driven
//! by the message load of [`crate::load`] with the same probes, schedule and accounting.
//!
//! Pair `c` is a subscriber and a publisher. Messages are the very `send` frames the
//! forwarder carries, published at QoS 1 on `kefu-bench/<run>/<c>/m`; the broker's PUBACK
//! is the ack (ack latency from the intended send time, as the relay's `ack`). Typing
//! indicators are published at QoS 0 on `…/<c>/t`: ephemeral, as the relay treats them.
//! The subscriber reads the payloads exactly as the forwarder's receiving end reads its
//! frames, so delivery, order and latency are counted by the same code.
//!
//! Sessions are persistent (clean session off): the broker keeps each subscription and the
//! QoS 1 messages queued for it, which is the state its persistence option covers.
//!
//! rumqttc's `EventLoop::poll` must not be cancelled mid-way (it may have taken a request
//! off its channel), so a publisher is two futures joined in one task: one that publishes
//! what the schedule releases, one that polls the event loop and pairs PUBACKs with the
//! messages they acknowledge.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS,
    SubscribeFilter, SubscribeReasonCode,
};

use crate::load::{Next, Run};
use crate::wire::Probe;

/// QoS 1 messages a publisher may have unacknowledged. rumqttc numbers packets 1 to this
/// and stops taking publishes when they are all out; open loop must not be held back by
/// the client, so it is far above the 32 in flight of a flat-out run.
const INFLIGHT: u16 = 1024;

/// Largest packet either way (the relay and the forwarder allow 64 KiB frames).
const MAX_PACKET: usize = 1 << 20;

/// The topics of pair `c` in run `run`: messages, typing indicators.
fn topics(run: &str, c: usize) -> (String, String) {
    (format!("kefu-bench/{run}/{c}/m"), format!("kefu-bench/{run}/{c}/t"))
}

/// A name for this run's client ids and topics, so that sessions a broker kept from an
/// earlier run (clean session is off) are never picked up again.
pub fn run_name() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), RUNS.fetch_add(1, Relaxed))
}

fn client(addr: SocketAddr, id: String) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options
        .set_keep_alive(Duration::from_secs(60))
        .set_clean_session(false)
        .set_inflight(INFLIGHT)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    let (client, mut eventloop) = AsyncClient::new(options, usize::from(INFLIGHT));
    let mut network = NetworkOptions::new();
    // Nagle off, as on the tool's WebSocket connections and the servers' sockets.
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    (client, eventloop)
}

/// Polls `eventloop` until `done` accepts an event; fails on a refused connection.
async fn poll_until(eventloop: &mut EventLoop, mut done: impl FnMut(&Event) -> Result<bool>) -> Result<()> {
    loop {
        let event = eventloop.poll().await?;
        if let Event::Incoming(Packet::ConnAck(ack)) = &event
            && ack.code != ConnectReturnCode::Success
        {
            bail!("connection refused: {:?}", ack.code);
        }
        if done(&event)? {
            return Ok(());
        }
    }
}

/// Pair `c`'s subscriber, connected and subscribed (messages at QoS 1, typing at QoS 0).
pub(crate) async fn subscriber(addr: SocketAddr, run: &str, c: usize) -> Result<(AsyncClient, EventLoop)> {
    let (client, mut eventloop) = client(addr, format!("kb-{run}-s{c}"));
    let (messages, typing) = topics(run, c);
    client
        .subscribe_many([
            SubscribeFilter::new(messages, QoS::AtLeastOnce),
            SubscribeFilter::new(typing, QoS::AtMostOnce),
        ])
        .await?;
    poll_until(&mut eventloop, |event| match event {
        Event::Incoming(Packet::SubAck(ack)) => match ack.return_codes.as_slice() {
            [SubscribeReasonCode::Success(QoS::AtLeastOnce), SubscribeReasonCode::Success(_)] => Ok(true),
            codes => bail!("subscription of pair {c} refused: {codes:?}"),
        },
        _ => Ok(false),
    })
    .await
    .with_context(|| format!("subscriber {c}"))?;
    Ok((client, eventloop))
}

/// Pair `c`'s publisher, connected.
pub(crate) async fn publisher(addr: SocketAddr, run: &str, c: usize) -> Result<(AsyncClient, EventLoop)> {
    let (client, mut eventloop) = client(addr, format!("kb-{run}-p{c}"));
    poll_until(&mut eventloop, |event| Ok(matches!(event, Event::Incoming(Packet::ConnAck(_)))))
        .await
        .with_context(|| format!("publisher {c}"))?;
    Ok((client, eventloop))
}

/// Reads everything subscriber `c` gets until it fails or is aborted. rumqttc sends the
/// PUBACK for each QoS 1 message itself.
pub(crate) async fn drive_subscriber(
    client: AsyncClient,
    mut eventloop: EventLoop,
    run: Arc<Run>,
    c: usize,
) -> Result<()> {
    // The event loop ends once every handle of its client is dropped: hold this one.
    let _client = client;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => match std::str::from_utf8(&publish.payload) {
                Ok(text) => run.on_receiver_frame(Some(c), text),
                Err(_) => run.error(|| format!("subscriber {c}: a payload that is not UTF-8")),
            },
            Ok(_) => {}
            Err(e) => bail!("subscriber {c}: {e}"),
        }
    }
}

/// Drives publisher `c` of run `name` until it fails or is aborted.
pub(crate) async fn drive_publisher(
    client: AsyncClient,
    eventloop: EventLoop,
    run: Arc<Run>,
    name: &str,
    c: usize,
) -> Result<()> {
    // Probes of QoS 1 messages handed to the client and not yet given a packet id, in
    // order: rumqttc numbers publishes in the order it takes them.
    let unnumbered = Mutex::new(VecDeque::new());
    let topics = topics(name, c);
    tokio::try_join!(
        publish(&client, &run, &topics, c, &unnumbered),
        acknowledgements(eventloop, &run, c, &unnumbered)
    )?;
    Ok(())
}

/// Publishes what the run releases for pair `c`.
async fn publish(
    client: &AsyncClient,
    run: &Run,
    (messages, typing): &(String, String),
    c: usize,
    unnumbered: &Mutex<VecDeque<Probe>>,
) -> Result<()> {
    let mut buf = String::with_capacity(256);
    loop {
        let next = poll_fn(|cx| {
            run.slots[c].waker.register(cx.waker());
            match run.next_send(c, &mut buf) {
                Some(next) => Poll::Ready(next),
                None => Poll::Pending,
            }
        })
        .await;
        match next {
            Next::Typing => client.publish(typing, QoS::AtMostOnce, false, buf.as_bytes()).await,
            Next::Message(probe) => {
                unnumbered.lock().expect("lock").push_back(probe);
                client.publish(messages, QoS::AtLeastOnce, false, buf.as_bytes()).await
            }
        }
        .map_err(|e| anyhow!("publisher {c}: {e}"))?;
    }
}

/// Polls publisher `c`'s event loop: numbers its messages, and records each PUBACK as the
/// ack of the message it names.
async fn acknowledgements(
    mut eventloop: EventLoop,
    run: &Run,
    c: usize,
    unnumbered: &Mutex<VecDeque<Probe>>,
) -> Result<()> {
    let mut numbered: HashMap<u16, Probe> = HashMap::new();
    loop {
        match eventloop.poll().await.map_err(|e| anyhow!("publisher {c}: {e}"))? {
            // Packet id 0 is a QoS 0 publish (a typing indicator): nothing will ack it.
            Event::Outgoing(Outgoing::Publish(pkid)) if pkid != 0 => {
                let probe = unnumbered.lock().expect("lock").pop_front();
                let probe = probe.with_context(|| format!("publisher {c}: packet {pkid} for no message"))?;
                numbered.insert(pkid, probe);
            }
            Event::Incoming(Packet::PubAck(ack)) => match numbered.remove(&ack.pkid) {
                Some(probe) => run.acked(c, probe, false),
                None => run.error(|| format!("publisher {c}: PUBACK for packet {} never sent", ack.pkid)),
            },
            _ => {}
        }
    }
}
