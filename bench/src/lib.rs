//! # kefu-bench — load generator and benchmarks for the kefu relay
//!
//! Drives a relay over loopback WebSockets as customers and agents speaking the real
//! protocol, or drives this crate's bare forwarder the same way to measure the ceiling
//! of the machine in the same run. Latency is measured from each message's intended send
//! time (carried in the message), so a load that falls behind is not hidden.
//!
//! ## Layout
//! - [`load`]: the message load (customers → agents, or pairs through the forwarder),
//!   open-loop or flat out, with typing indicators; latency histograms and loss checks.
//! - [`conversations`]: new conversations per second, time to assignment.
//! - [`idle`]: idle connections and the server's memory per connection.
//! - [`disk`]: the disk's own fsync latency, probed beside a run.
//! - [`forwarder`]: the bare tokio-tungstenite forwarder (the ceiling).
//! - [`mqtt`]: the same message load through an MQTT broker (QoS 1), e.g. mosquitto.
//! - [`server`]: starting the relay, the forwarder or mosquitto as a pinned process,
//!   agents, login.
//! - [`soak`]: the soak run's rows (one per interval of a long open-loop load) and its
//!   verdict, the last third against the first.
//! - [`wire`]: frames written from templates and read by scanning, off the hot path of
//!   serde.
//! - [`report`]: percentiles, `/proc` figures, tables.
//!
//! The binary (`src/main.rs`) holds the scenarios; `docs/BENCHMARKS.md` records the
//! figures and the commands that produced them.

pub mod conversations;
pub mod disk;
pub mod forwarder;
pub mod idle;
pub mod load;
pub mod mqtt;
pub mod report;
pub mod server;
pub mod soak;
pub mod wire;
