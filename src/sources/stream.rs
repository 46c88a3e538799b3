//! What streaming sources (Bluesky's Jetstream, Mastodon's SSE) share: a buffer between the
//! connection task a source owns and the shared poll loop that drains it, a guard that ends
//! the task when the source is dropped, and the reconnect backoff.
//! It does not connect to anything or parse events: each source's task does that.

use crate::model::Mention;
use crate::retry::Backoff;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Mentions buffered before the connection task waits for the poll loop to drain them.
/// Matching posts are rare (they passed the prefilter), so this is only reached when the
/// intake is stuck; the task then stops reading and the stream resumes from its cursor.
pub(crate) const BUFFER_CAP: usize = 10_000;

/// First reconnect delay; doubles per failed attempt up to `RECONNECT_MAX`.
pub(crate) const RECONNECT_MIN: Duration = Duration::from_secs(1);
pub(crate) const RECONNECT_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Inner {
    mentions: VecDeque<Mention>,
    /// Resume point of the newest event the task processed (kept or rejected).
    cursor: Option<String>,
    /// A connection problem not yet reported to the poll loop.
    error: Option<String>,
    connected: bool,
    /// A connection was (re)established since the last drain: whatever was said while it was
    /// down (or before it first came up) is only in the source's polled API.
    connect_pending: bool,
    /// Events seen since the last drain (kept or rejected), for logs.
    seen: u64,
    /// Connection problems reported since a connection last came up: 1 after a drop, more
    /// while the reconnects fail too.
    failures_in_row: u32,
}

/// The hand-over point between a connection task and `Source::poll`. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamBuffer {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
}

/// What one drain took out of the buffer.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    pub(crate) mentions: Vec<Mention>,
    pub(crate) cursor: Option<String>,
    pub(crate) error: Option<String>,
    /// A connection came up since the last drain (see `mark_connect`).
    pub(crate) connect: bool,
    pub(crate) seen: u64,
    /// Connection problems since a connection last came up (see `Inner::failures_in_row`).
    pub(crate) failures_in_row: u32,
}

impl StreamBuffer {
    pub(crate) fn new() -> StreamBuffer {
        StreamBuffer::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an event the task processed: its resume point and, if it was kept, the mention.
    pub(crate) fn push(&self, cursor: Option<String>, mention: Option<Mention>) {
        let wake = {
            let mut inner = self.lock();
            inner.seen += 1;
            if cursor.is_some() {
                inner.cursor = cursor;
            }
            match mention {
                Some(m) => {
                    inner.mentions.push_back(m);
                    true
                }
                None => false,
            }
        };
        if wake {
            self.notify.notify_one();
        }
    }

    /// True while the buffer is full; the task then waits before reading on.
    pub(crate) fn is_full(&self) -> bool {
        self.lock().mentions.len() >= BUFFER_CAP
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        let mut inner = self.lock();
        inner.connected = connected;
        if connected {
            inner.failures_in_row = 0;
        }
    }

    /// Records that a connection came up and wakes the poll loop, for sources that read their
    /// polled API once after every (re)connect to fill the gap before it.
    pub(crate) fn mark_connect(&self) {
        {
            let mut inner = self.lock();
            inner.connected = true;
            inner.connect_pending = true;
            inner.failures_in_row = 0;
        }
        self.notify.notify_one();
    }

    /// Records a connection problem (already free of secrets) for the next poll to report.
    pub(crate) fn set_error(&self, error: String) {
        {
            let mut inner = self.lock();
            inner.connected = false;
            inner.error = Some(error);
            inner.failures_in_row = inner.failures_in_row.saturating_add(1);
        }
        self.notify.notify_one();
    }

    /// Takes everything buffered, the newest cursor and any pending error.
    pub(crate) fn drain(&self) -> Drained {
        let mut inner = self.lock();
        Drained {
            mentions: inner.mentions.drain(..).collect(),
            cursor: inner.cursor.clone(),
            error: inner.error.take(),
            connect: std::mem::take(&mut inner.connect_pending),
            seen: std::mem::take(&mut inner.seen),
            failures_in_row: inner.failures_in_row,
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.lock().connected
    }

    /// Resolves once there is a mention or an error to hand over.
    pub(crate) async fn ready(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = self.lock();
                if !inner.mentions.is_empty() || inner.error.is_some() || inner.connect_pending {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Waits until the task connected or reported an error, at most `limit`.
    pub(crate) async fn wait_connected(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            {
                let inner = self.lock();
                if inner.connected || inner.error.is_some() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Aborts the connection task when the source that owns it is dropped: the poll loop drops
/// its source on shutdown, so the task stops with it and never outlives the daemon.
#[derive(Debug)]
pub(crate) struct TaskGuard(JoinHandle<()>);

impl TaskGuard {
    pub(crate) fn spawn(
        future: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> TaskGuard {
        TaskGuard(tokio::spawn(future))
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The reconnect schedule of every streaming source: attempt `failures` (1-based) waits 1 s
/// doubling to 60 s, ±20 %.
pub(crate) const RECONNECT: Backoff =
    Backoff::new(RECONNECT_MIN, RECONNECT_MAX).with_jitter(0.8, 1.2);

#[cfg(test)]
mod tests {
    use super::*;

    fn mention(id: &str) -> Mention {
        Mention {
            item_id: id.into(),
            source: "s".into(),
            source_kind: "bluesky".into(),
            url: None,
            title: None,
            text: "acme".into(),
            author: None,
            author_reach: None,
            published: None,
            lang: None,
            rating: None,
        }
    }

    #[tokio::test]
    async fn drain_hands_over_mentions_cursor_and_error_once() {
        let buf = StreamBuffer::new();
        buf.push(Some("1".into()), None);
        buf.push(Some("2".into()), Some(mention("a")));
        buf.push(Some("3".into()), None);
        tokio::time::timeout(Duration::from_secs(1), buf.ready())
            .await
            .unwrap();
        let d = buf.drain();
        assert_eq!(d.mentions.len(), 1);
        assert_eq!(d.cursor.as_deref(), Some("3"));
        assert_eq!(d.seen, 3);
        buf.set_error("dropped".into());
        let d = buf.drain();
        assert_eq!(d.error.as_deref(), Some("dropped"));
        assert!(buf.drain().error.is_none(), "an error is reported once");
        assert_eq!(buf.drain().cursor.as_deref(), Some("3"), "the cursor stays");
    }

    #[tokio::test]
    async fn ready_waits_for_a_mention() {
        let buf = StreamBuffer::new();
        buf.push(Some("1".into()), None);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), buf.ready())
                .await
                .is_err(),
            "a rejected event does not wake the loop"
        );
        let b = buf.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            b.push(None, Some(mention("x")));
        });
        tokio::time::timeout(Duration::from_secs(1), buf.ready())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_connect_wakes_the_loop_once() {
        let buf = StreamBuffer::new();
        buf.mark_connect();
        tokio::time::timeout(Duration::from_secs(1), buf.ready())
            .await
            .unwrap();
        let d = buf.drain();
        assert!(d.connect);
        assert!(buf.is_connected());
        assert!(!buf.drain().connect, "reported once");
    }

    #[test]
    fn reconnect_delay_grows_and_caps() {
        assert!(RECONNECT.delay(1) <= Duration::from_millis(1200));
        assert!(RECONNECT.delay(4) >= Duration::from_millis(6400));
        assert!(RECONNECT.delay(100) <= Duration::from_secs(72));
    }
}
