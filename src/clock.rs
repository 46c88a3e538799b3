//! Wall-clock time for business decisions (timers, time to claim). Production reads the
//! system clock; tests anchor it to tokio's clock so paused time drives escalations.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    /// `base` plus the tokio time elapsed since `start` (follows `tokio::time::pause`).
    Tokio {
        base: DateTime<Utc>,
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that starts at `base` now and advances with tokio's (possibly paused) time.
    pub fn tokio_at(base: DateTime<Utc>) -> Clock {
        Clock::Tokio {
            base,
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Tokio { base, start } => {
                *base + chrono::Duration::from_std(start.elapsed()).unwrap_or_default()
            }
        }
    }
}
