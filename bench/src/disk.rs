//! The disk's own fsync latency, probed beside a run.
//!
//! A durable server acknowledges a message only after an fsync, so its tail latency can be
//! no better than the disk's, and on a shared virtual machine the disk's varies by orders
//! of magnitude over a day (docs/BENCHMARKS.md, finding 19). The probe writes one 4 KiB
//! block and `fdatasync`s it at a fixed interval, from a thread of this tool, to a file in
//! the temporary directory, where the servers this tool starts keep their data; its
//! percentiles, printed beside each run, say what the disk allowed while the run went on.
//! It adds one small synchronous write per interval to the disk's load (100 a second at
//! the default 10 ms), far below a durable run's own.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::report::{LatencySummary, histogram};

/// Bytes written before each sync: one page, as a small commit writes.
const BLOCK: usize = 4096;

/// Blocks the probe's file holds; the writes cycle over them, so the file stays 1 MiB and
/// its size never changes (an fdatasync then flushes data, not metadata).
const BLOCKS: u64 = 256;

/// A running probe; [`FsyncProbe::finish`] stops it.
pub struct FsyncProbe {
    stop: Arc<AtomicBool>,
    /// Samples since the last [`FsyncProbe::take_window`].
    window: Arc<Mutex<Histogram<u64>>>,
    /// The thread; returns every sample of the run.
    thread: JoinHandle<Result<Histogram<u64>>>,
    _dir: tempfile::TempDir,
}

impl FsyncProbe {
    /// Starts probing every `every` in a new temporary directory under `parent`.
    pub fn start(parent: &Path, every: Duration) -> Result<FsyncProbe> {
        let dir = tempfile::tempdir_in(parent).context("a directory for the fsync probe")?;
        let file = File::create(dir.path().join("probe")).context("the fsync probe's file")?;
        // The whole file first, synced, so that every timed write overwrites.
        file.write_all_at(&vec![0u8; BLOCK * BLOCKS as usize], 0)?;
        file.sync_all()?;
        let stop = Arc::new(AtomicBool::new(false));
        let window = Arc::new(Mutex::new(histogram()));
        let thread = std::thread::Builder::new().name("fsync-probe".into()).spawn({
            let stop = stop.clone();
            let window = window.clone();
            move || probe(&file, every, &stop, &window)
        })?;
        Ok(FsyncProbe { stop, window, thread, _dir: dir })
    }

    /// The samples since the previous call (or the start), and starts a new window.
    pub fn take_window(&self) -> LatencySummary {
        let mut window = self.window.lock().expect("the probe thread does not panic");
        let summary = LatencySummary::of(&window);
        window.reset();
        summary
    }

    /// Stops the probe; every sample of the run.
    pub fn finish(self) -> Result<LatencySummary> {
        self.stop.store(true, Ordering::Relaxed);
        let all = self.thread.join().map_err(|_| anyhow::anyhow!("the fsync probe panicked"))??;
        Ok(LatencySummary::of(&all))
    }
}

/// The probe's loop: write, sync, time, wait for the next tick (ticks missed while a sync
/// stalled are skipped, not made up in a burst).
fn probe(file: &File, every: Duration, stop: &AtomicBool, window: &Mutex<Histogram<u64>>) -> Result<Histogram<u64>> {
    let mut all = histogram();
    let block = [0x5au8; BLOCK];
    let mut next = Instant::now();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        file.write_all_at(&block, (n % BLOCKS) * BLOCK as u64)?;
        file.sync_data()?;
        let ns = started.elapsed().as_nanos() as u64;
        all.saturating_record(ns);
        window.lock().expect("the reader does not panic").saturating_record(ns);
        n += 1;
        next += every;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_times_syncs_and_its_windows_start_over() {
        let parent = tempfile::tempdir().unwrap();
        let probe = FsyncProbe::start(parent.path(), Duration::from_millis(1)).unwrap();
        // Until five syncs are in, or the probe stopped on an error (which `finish` returns).
        while probe.window.lock().unwrap().len() < 5 && !probe.thread.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!probe.thread.is_finished(), "the probe stopped early: {:?}", probe.finish().err());
        let first = probe.take_window();
        assert!(first.count >= 5, "{first:?}");
        assert!(first.max_us > 0.0 && first.p50_us <= first.max_us, "{first:?}");
        let all = probe.finish().unwrap();
        assert!(all.count >= first.count, "the whole run holds the first window: {all:?} {first:?}");
    }
}
