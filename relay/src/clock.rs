//! Wall-clock time for the I/O shells. The pure cores never read the clock: they are given
//! the time with each event.

use kefu_proto::UnixMillis;

/// Now, in Unix milliseconds.
pub fn now_ms() -> UnixMillis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as UnixMillis).unwrap_or(0)
}
