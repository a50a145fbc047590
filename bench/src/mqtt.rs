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
//! QoS 1 messages queued for it, which is the state its persistence option covers. Keep
//! alive is off (0), so no pings cross the measurement.
//!
//! Packets are encoded and parsed by rumqttc's MQTT 3.1.1 codec, but the sockets are driven
//! here, the way the WebSocket senders are: one task per connection reads what arrived,
//! queues what is due and writes it in one go. rumqttc's own event loop writes and flushes
//! every publish alone, hands PUBACKs over as events and needs a second task per publisher
//! (its `poll` must not be cancelled); flat out over 1,000 pairs it cost the tool 59 µs of
//! CPU per message, this 52 µs. Either way the tool pays about twice what mosquitto pays
//! per message (mosquitto sends every packet in a segment of its own, so the tool wakes,
//! reads and acknowledges per message): flat out, the tool's core is the limit, and the
//! broker's CPU per message is the figure to compare.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context as TaskContext, Poll};

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self, QoS};
use rumqttc::{ConnectReturnCode, Packet, PubAck, Publish, Subscribe, SubscribeFilter, SubscribeReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::load::{Next, Run};
use crate::wire::Probe;

/// Largest packet either way (the relay and the forwarder allow 64 KiB frames).
const MAX_PACKET: usize = 1 << 20;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// A publisher stops queueing publishes while this much is still unwritten: the socket's
/// back-pressure, as a WebSocket sink's `poll_ready` gives it.
const WRITE_HIGH_WATER: usize = 64 * 1024;

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

/// One MQTT connection: the socket, bytes read and not yet parsed, bytes to write.
pub(crate) struct Connection {
    stream: TcpStream,
    read: BytesMut,
    write: BytesMut,
}

impl Connection {
    /// Connects as `client_id` with a persistent session and waits for the CONNACK.
    async fn open(addr: SocketAddr, client_id: String) -> Result<Connection> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut connection = Connection { stream, read: BytesMut::new(), write: BytesMut::new() };
        let mut connect = rumqttc::Connect::new(client_id);
        connect.keep_alive = 0;
        connect.clean_session = false;
        connection.send(Packet::Connect(connect)).await?;
        match connection.receive().await? {
            Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => Ok(connection),
            Packet::ConnAck(ack) => bail!("connection refused: {:?}", ack.code),
            other => bail!("expected a CONNACK, got {other:?}"),
        }
    }

    /// Writes one packet and waits until it is written (setting up only).
    async fn send(&mut self, packet: Packet) -> Result<()> {
        packet.write(&mut self.write, MAX_PACKET)?;
        self.stream.write_all_buf(&mut self.write).await?;
        Ok(())
    }

    /// Waits for the next packet (setting up only).
    async fn receive(&mut self) -> Result<Packet> {
        loop {
            if let Some(packet) = self.parse()? {
                return Ok(packet);
            }
            self.read.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.read).await? == 0 {
                bail!("the broker closed the connection");
            }
        }
    }

    /// The next whole packet already read, if any.
    fn parse(&mut self) -> Result<Option<Packet>> {
        match Packet::read(&mut self.read, MAX_PACKET) {
            Ok(packet) => Ok(Some(packet)),
            Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(anyhow!("a packet that does not parse: {e}")),
        }
    }

    /// Reads what the socket holds and hands each whole packet to `on_packet`; registers
    /// for a wake-up when the socket has nothing more.
    fn poll_packets(
        &mut self,
        cx: &mut TaskContext<'_>,
        mut on_packet: impl FnMut(Packet, &mut BytesMut),
    ) -> Result<()> {
        self.read.reserve(READ_CHUNK);
        match self.stream.try_read_buf(&mut self.read) {
            Ok(0) => bail!("the broker closed the connection"),
            // More may be waiting, and readiness is armed again only by a read that finds
            // nothing: come back for it after the rest of this poll.
            Ok(_) => cx.waker().wake_by_ref(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Poll::Ready(ready) = self.stream.poll_read_ready(cx) {
                    ready?;
                    cx.waker().wake_by_ref();
                }
            }
            Err(e) => return Err(e.into()),
        }
        while let Some(packet) = self.parse()? {
            on_packet(packet, &mut self.write);
        }
        Ok(())
    }

    /// Writes as much of what is queued as the socket takes; registers for a wake-up when
    /// it takes no more.
    fn poll_write(&mut self, cx: &mut TaskContext<'_>) -> Result<()> {
        while !self.write.is_empty() {
            match self.stream.try_write(&self.write) {
                Ok(n) => {
                    let _ = self.write.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.stream.poll_write_ready(cx) {
                    Poll::Ready(ready) => ready?,
                    Poll::Pending => break,
                },
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Pair `c`'s subscriber, connected and subscribed (messages at QoS 1, typing at QoS 0).
pub(crate) async fn subscriber(addr: SocketAddr, run: &str, c: usize) -> Result<Connection> {
    let subscribed = async {
        let mut connection = Connection::open(addr, format!("kb-{run}-s{c}")).await?;
        let (messages, typing) = topics(run, c);
        let mut subscribe = Subscribe::new_many([
            SubscribeFilter::new(messages, QoS::AtLeastOnce),
            SubscribeFilter::new(typing, QoS::AtMostOnce),
        ]);
        subscribe.pkid = 1;
        connection.send(Packet::Subscribe(subscribe)).await?;
        match connection.receive().await? {
            Packet::SubAck(ack) => match ack.return_codes.as_slice() {
                [SubscribeReasonCode::Success(QoS::AtLeastOnce), SubscribeReasonCode::Success(_)] => Ok(connection),
                codes => bail!("subscription refused: {codes:?}"),
            },
            other => bail!("expected a SUBACK, got {other:?}"),
        }
    };
    subscribed.await.with_context(|| format!("subscriber {c}"))
}

/// Pair `c`'s publisher, connected.
pub(crate) async fn publisher(addr: SocketAddr, run: &str, c: usize) -> Result<Connection> {
    Connection::open(addr, format!("kb-{run}-p{c}")).await.with_context(|| format!("publisher {c}"))
}

/// Reads everything subscriber `c` gets, acknowledging each QoS 1 message, until it fails
/// or is aborted.
pub(crate) async fn drive_subscriber(mut connection: Connection, run: Arc<Run>, c: usize) -> Result<()> {
    poll_fn(|cx| {
        let on_packet = |packet, write: &mut BytesMut| match packet {
            Packet::Publish(publish) => {
                match std::str::from_utf8(&publish.payload) {
                    Ok(text) => run.on_receiver_frame(Some(c), text),
                    Err(_) => run.error(|| format!("subscriber {c}: a payload that is not UTF-8")),
                }
                if publish.qos == QoS::AtLeastOnce {
                    let _ = PubAck::new(publish.pkid).write(write);
                }
            }
            other => run.error(|| format!("subscriber {c}: unexpected {other:?}")),
        };
        let result = connection.poll_packets(cx, on_packet).and_then(|()| connection.poll_write(cx));
        match result {
            Ok(()) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e.context(format!("subscriber {c}")))),
        }
    })
    .await
}

/// Publishes what the run releases for pair `c` and pairs each PUBACK with the message it
/// acknowledges, until it fails or is aborted.
pub(crate) async fn drive_publisher(mut connection: Connection, run: Arc<Run>, name: &str, c: usize) -> Result<()> {
    let (messages, typing) = topics(name, c);
    let mut buf = String::with_capacity(256);
    // Packet ids of the QoS 1 messages not yet acknowledged.
    let mut unacked: HashMap<u16, Probe> = HashMap::new();
    let mut last_pkid: u16 = 0;
    poll_fn(|cx| {
        run.slots[c].waker.register(cx.waker());
        let on_packet = |packet, _: &mut BytesMut| match packet {
            Packet::PubAck(ack) => match unacked.remove(&ack.pkid) {
                Some(probe) => run.acked(c, probe, false),
                None => run.error(|| format!("publisher {c}: PUBACK for packet {} never sent", ack.pkid)),
            },
            other => run.error(|| format!("publisher {c}: unexpected {other:?}")),
        };
        if let Err(e) = connection.poll_packets(cx, on_packet) {
            return Poll::Ready(Err(e.context(format!("publisher {c}"))));
        }
        while connection.write.len() < WRITE_HIGH_WATER {
            let Some(next) = run.next_send(c, &mut buf) else { break };
            let payload = Bytes::copy_from_slice(buf.as_bytes());
            let publish = match next {
                Next::Typing => Publish::from_bytes(typing.as_str(), QoS::AtMostOnce, payload),
                Next::Message(probe) => {
                    // Ids 1..=65535 in turn; one still unacknowledged after a full turn
                    // would be a broker holding 65,535 messages of one client.
                    last_pkid = last_pkid.checked_add(1).unwrap_or(1);
                    if unacked.insert(last_pkid, probe).is_some() {
                        return Poll::Ready(Err(anyhow!("publisher {c}: packet id {last_pkid} still unacknowledged")));
                    }
                    let mut publish = Publish::from_bytes(messages.as_str(), QoS::AtLeastOnce, payload);
                    publish.pkid = last_pkid;
                    publish
                }
            };
            if let Err(e) = publish.write(&mut connection.write) {
                return Poll::Ready(Err(anyhow!("publisher {c}: {e}")));
            }
        }
        match connection.poll_write(cx) {
            Ok(()) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e.context(format!("publisher {c}")))),
        }
    })
    .await
}
