//! Time. The pure cores never read a clock: the hub gives them the time with each event.
//! The hub and journal read [`Clock`], which is the system clock in production and a
//! [`ManualClock`] in tests, so that a test can move time forward by two minutes and watch
//! an escalation happen without waiting two minutes. (tokio's paused time cannot serve
//! here: the database runs on its own threads, and a paused runtime that waits for them
//! jumps its timers forward on its own.)

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use kefu_proto::UnixMillis;
use tokio::sync::watch;

/// Now, in Unix milliseconds, from the system clock. For what must follow real time
/// whatever the relay's clock says (token expiry).
pub fn now_ms() -> UnixMillis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as UnixMillis).unwrap_or(0)
}

/// How often the hub looks at its timers under the system clock.
const TICK_EVERY: Duration = Duration::from_secs(1);

/// The clock conversations and routing run on.
#[derive(Clone, Default)]
pub enum Clock {
    /// Real time; timers are looked at every second.
    #[default]
    System,
    /// Time that moves only when a test moves it; timers are looked at on every move.
    Manual(Arc<ManualClock>),
}

impl Clock {
    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> UnixMillis {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(manual) => manual.now.load(Ordering::SeqCst),
        }
    }

    /// A source of ticks: moments at which timers may have fallen due.
    pub fn ticker(&self) -> Ticker {
        match self {
            Clock::System => {
                let mut interval = tokio::time::interval(TICK_EVERY);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                Ticker::Interval(interval)
            }
            Clock::Manual(manual) => Ticker::Manual(manual.moved.subscribe()),
        }
    }
}

/// A clock for tests.
pub struct ManualClock {
    now: AtomicI64,
    moved: watch::Sender<UnixMillis>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: UnixMillis) -> Arc<ManualClock> {
        Arc::new(ManualClock { now: AtomicI64::new(start), moved: watch::Sender::new(start) })
    }

    /// Moves time forward and wakes every ticker.
    pub fn advance(&self, by: Duration) {
        let now = self.now.fetch_add(by.as_millis() as i64, Ordering::SeqCst) + by.as_millis() as i64;
        self.moved.send_replace(now);
    }
}

/// Ticks from a [`Clock`].
pub enum Ticker {
    /// Every second.
    Interval(tokio::time::Interval),
    /// Whenever the manual clock moves.
    Manual(watch::Receiver<UnixMillis>),
}

impl Ticker {
    /// Waits for the next tick. A manual ticker whose clock is gone never ticks again.
    pub async fn tick(&mut self) {
        match self {
            Ticker::Interval(interval) => {
                interval.tick().await;
            }
            Ticker::Manual(moved) => {
                if moved.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
