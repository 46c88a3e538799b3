//! The store's one flusher (group commit): every durability wait in the store goes through
//! it, so sled never runs two flushes at once. It does not decide what to write or when a
//! write needs to be durable; the store's methods do, and then wait here.
//!
//! Why: sled 0.34's `flush_async` runs the blocking flush on sled's own IO thread pool, the
//! pool that also writes the sealed log buffers those flushes wait for. Enough concurrent
//! `flush_async` calls occupy every pool thread with a flush that waits for a buffer write
//! queued behind them, and the process wedges (spacejam/sled#1308, fixed only on sled's
//! unreleased main). Here a writer takes a ticket after its write and waits; one dedicated
//! thread runs `flush()` (never on sled's pool), one flush at a time, and each flush covers
//! every ticket taken before it started.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use tokio::sync::watch;

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FlushError {
    #[error("could not flush the store to disk: {0}")]
    Sled(#[from] sled::Error),
    #[error("the store's flusher stopped unexpectedly; restart mentiondesk")]
    Stopped,
}

/// Counters of the flusher since the store was opened, for tests.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FlushStats {
    /// Durability waits requested by writers.
    pub(crate) waits: u64,
    /// Flushes run: fewer than `waits` when one flush covered several writers.
    pub(crate) flushes: u64,
    /// The most flushes that ever ran at the same moment; 1 once anything was flushed.
    pub(crate) max_concurrent: u64,
}

/// A handle to the flusher thread. Dropping it lets the thread finish any flush that was
/// asked for, then joins it, so nothing keeps the database open afterwards.
pub(crate) struct Flusher {
    shared: Arc<Shared>,
    done: watch::Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the flusher thread: a ticket was taken, or it should stop.
    wake: Condvar,
    waits: AtomicU64,
    flushes: AtomicU64,
    in_flush: AtomicU64,
    max_in_flush: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The last ticket handed out; a flush that starts after reading it covers it.
    requested: u64,
    stop: bool,
}

/// What the flusher thread publishes after each flush.
#[derive(Clone, Default)]
struct Done {
    /// Every ticket up to this one is covered by a finished flush.
    completed: u64,
    /// The error of the latest flush. A waiter reports the latest flush's outcome: that
    /// flush started after its write, so success means the write is on disk.
    error: Option<sled::Error>,
}

impl Flusher {
    /// Starts the flusher thread for `db`.
    pub(crate) fn start(db: sled::Db) -> Flusher {
        Flusher::start_with(move || db.flush().map(|_| ()))
    }

    /// Starts the flusher thread around any flush function (tests instrument it).
    pub(crate) fn start_with(
        flush: impl FnMut() -> Result<(), sled::Error> + Send + 'static,
    ) -> Flusher {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            waits: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            in_flush: AtomicU64::new(0),
            max_in_flush: AtomicU64::new(0),
        });
        let (tx, done) = watch::channel(Done::default());
        let thread = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared, &tx, flush)
            })
            .expect("the OS can start one more thread");
        Flusher {
            shared,
            done,
            thread: Some(thread),
        }
    }

    /// Returns once every write this caller finished before calling is on disk: after a
    /// flush that started after this call took its ticket.
    pub(crate) async fn wait(&self) -> Result<(), FlushError> {
        let mut done = self.done.clone();
        let ticket = {
            let mut state = lock(&self.shared.state);
            state.requested += 1;
            state.requested
        };
        self.shared.waits.fetch_add(1, Ordering::Relaxed);
        self.shared.wake.notify_one();
        let done = done
            .wait_for(|d| d.completed >= ticket)
            .await
            .map_err(|_| FlushError::Stopped)?;
        match &done.error {
            Some(e) => Err(FlushError::Sled(e.clone())),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> FlushStats {
        FlushStats {
            waits: self.shared.waits.load(Ordering::Relaxed),
            flushes: self.shared.flushes.load(Ordering::Relaxed),
            max_concurrent: self.shared.max_in_flush.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the store flusher thread panicked");
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Nothing panics while holding the lock; a poisoned one still holds a valid counter.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The flusher thread: sleeps until a ticket is taken, flushes once for every ticket taken so
/// far, publishes, repeats. Stops only when asked and nothing is left to flush. If it ever
/// panics, `tx` drops and every waiter gets `FlushError::Stopped` instead of hanging.
fn run(
    shared: &Shared,
    tx: &watch::Sender<Done>,
    mut flush: impl FnMut() -> Result<(), sled::Error>,
) {
    let mut completed = 0;
    loop {
        let target = {
            let mut state = lock(&shared.state);
            while state.requested == completed && !state.stop {
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.requested == completed {
                return;
            }
            state.requested
        };
        let now = shared.in_flush.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flush.fetch_max(now, Ordering::SeqCst);
        let result = flush();
        shared.in_flush.fetch_sub(1, Ordering::SeqCst);
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        completed = target;
        tx.send_replace(Done {
            completed,
            error: result.err(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// A flush function that records how many run at once and, for each finished flush, the
    /// logical time it started.
    #[derive(Clone, Default)]
    struct Probe {
        clock: Arc<AtomicU64>,
        running: Arc<AtomicU64>,
        overlapped: Arc<AtomicBool>,
        finished_starts: Arc<Mutex<Vec<u64>>>,
    }

    impl Probe {
        fn flush_fn(&self) -> impl FnMut() -> Result<(), sled::Error> + Send + 'static {
            let p = self.clone();
            move || {
                if p.running.fetch_add(1, Ordering::SeqCst) > 0 {
                    p.overlapped.store(true, Ordering::SeqCst);
                }
                let started = p.clock.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
                p.running.fetch_sub(1, Ordering::SeqCst);
                p.finished_starts.lock().unwrap().push(started);
                Ok(())
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_waiters_share_flushes_that_never_overlap_and_start_after_their_write() {
        let probe = Probe::default();
        let flusher = Arc::new(Flusher::start_with(probe.flush_fn()));
        let mut tasks = Vec::new();
        for i in 0..400u64 {
            let (flusher, probe) = (flusher.clone(), probe.clone());
            tasks.push(tokio::spawn(async move {
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                // "The write": a logical time every flush that covers it must start after.
                let written = probe.clock.fetch_add(1, Ordering::SeqCst);
                flusher.wait().await.unwrap();
                let starts = probe.finished_starts.lock().unwrap().clone();
                assert!(
                    starts.iter().any(|&s| s > written),
                    "waiter {i} (write at {written}) returned before a flush that started after it: {starts:?}"
                );
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("every waiter returns")
                .unwrap();
        }
        assert!(
            !probe.overlapped.load(Ordering::SeqCst),
            "two flushes ran at once"
        );
        let stats = flusher.stats();
        assert_eq!(stats.waits, 400);
        assert_eq!(stats.max_concurrent, 1);
        assert!(
            stats.flushes < stats.waits,
            "one flush covers the writers that queued during the previous one: {stats:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_flush_is_reported_to_its_waiters_and_the_next_one_recovers() {
        let mut fail_next = true;
        let flusher = Flusher::start_with(move || {
            if std::mem::take(&mut fail_next) {
                Err(sled::Error::Unsupported("disk full".into()))
            } else {
                Ok(())
            }
        });
        let err = flusher.wait().await.unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        flusher.wait().await.unwrap();
    }

    #[tokio::test]
    async fn a_flusher_that_died_fails_its_waiters_instead_of_hanging() {
        let flusher = Flusher::start_with(|| panic!("flush exploded"));
        let err = tokio::time::timeout(Duration::from_secs(5), flusher.wait())
            .await
            .expect("the waiter is released")
            .unwrap_err();
        assert!(matches!(err, FlushError::Stopped), "{err}");
    }

    #[test]
    fn dropping_the_flusher_stops_its_thread() {
        let alive = Arc::new(());
        let held = alive.clone();
        let flusher = Flusher::start_with(move || {
            let _ = &held;
            Ok(())
        });
        assert_eq!(Arc::strong_count(&alive), 2);
        drop(flusher);
        assert_eq!(
            Arc::strong_count(&alive),
            1,
            "the thread and its flush function are gone once the flusher is dropped"
        );
    }
}
