//! The one retry policy: exponential backoff from a first wait, doubling per failure in a
//! row up to a cap, with jitter so many waiters do not return at once, and a server's
//! Retry-After honoured (up to a sanity limit). The relay, the source poll loop, the
//! stream reconnects and the Bluesky search back-fill each hold one `Backoff` with their own
//! numbers. It only computes waits:
//! every caller owns its loop, its sleep and its shutdown.

use std::time::Duration;

/// A backoff schedule: `first × 2^(attempt-1)` capped at `cap`, times a random factor in
/// `[jitter_low, jitter_high)`, never shorter than an honoured Retry-After.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    /// The wait after the first failure (attempt 1; attempt 0 counts as 1).
    pub(crate) first: Duration,
    /// The longest wait before jitter.
    pub(crate) cap: Duration,
    /// The jitter factor's lower bound (1.0 = never shorter than the schedule).
    pub(crate) jitter_low: f64,
    /// The jitter factor's upper bound (exclusive).
    pub(crate) jitter_high: f64,
    /// A Retry-After beyond this is taken as a server mistake, not as "stop for a week".
    pub(crate) max_retry_after: Duration,
}

/// A day: no server gets to stop us for longer with one Retry-After.
pub(crate) const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

impl Backoff {
    /// `first` doubling to `cap`, no jitter, Retry-After honoured up to a day.
    pub(crate) const fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff {
            first,
            cap,
            jitter_low: 1.0,
            jitter_high: 1.0,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }

    /// Each wait is scaled by a random factor in `[low, high)`.
    pub(crate) const fn with_jitter(self, low: f64, high: f64) -> Backoff {
        Backoff {
            jitter_low: low,
            jitter_high: high,
            ..self
        }
    }

    /// A Retry-After is honoured up to `max`.
    pub(crate) const fn with_max_retry_after(self, max: Duration) -> Backoff {
        Backoff {
            max_retry_after: max,
            ..self
        }
    }

    /// The schedule's wait before jitter after `attempt` failures in a row.
    pub(crate) fn base(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.cap)
    }

    /// The wait after `attempt` failures in a row, jittered.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let spread = self.jitter_high - self.jitter_low;
        let factor = self.jitter_low + spread * fastrand::f64();
        self.base(attempt).mul_f64(factor)
    }

    /// The wait after `attempt` failures when the server may have said how long to wait:
    /// the longer of the two (a Retry-After capped at `max_retry_after`).
    pub(crate) fn delay_after(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let wait = self.delay(attempt);
        match retry_after {
            Some(ra) => wait.max(self.retry_after(ra)),
            None => wait,
        }
    }

    /// How long a server's Retry-After is honoured on its own (a 429 that is nobody's
    /// failure): as asked, up to `max_retry_after`.
    pub(crate) fn retry_after(&self, retry_after: Duration) -> Duration {
        retry_after.min(self.max_retry_after)
    }
}

/// Whether a call that waits out rate limits in-line for up to `inline_budget` in all still
/// ends before the `call_timeout` its caller puts around it, with room for the call itself.
/// A longer in-line wait would end as a timeout (an outage) instead of a rate limit (a
/// pause): the two constants are tied by a compile-time assertion where they meet.
pub(crate) const fn fits_inside(inline_budget: Duration, call_timeout: Duration) -> bool {
    inline_budget.as_nanos() * 2 <= call_timeout.as_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_first_to_cap_and_attempt_zero_counts_as_one() {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
        for (attempt, secs) in [(0, 2), (1, 2), (2, 4), (3, 8), (8, 256), (9, 300)] {
            assert_eq!(b.delay(attempt), Duration::from_secs(secs), "{attempt}");
        }
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(300), "no overflow");
    }

    #[test]
    fn jitter_stays_inside_its_bounds_and_varies() {
        let b =
            Backoff::new(Duration::from_secs(10), Duration::from_secs(10)).with_jitter(0.8, 1.2);
        let samples: Vec<Duration> = (0..200).map(|_| b.delay(1)).collect();
        for d in &samples {
            assert!(
                *d >= Duration::from_secs(8) && *d < Duration::from_secs(12),
                "{d:?}"
            );
        }
        let distinct: std::collections::HashSet<u128> =
            samples.iter().map(|d| d.as_millis()).collect();
        assert!(distinct.len() > 1, "jittered");
    }

    #[test]
    fn retry_after_wins_when_longer_and_is_capped() {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(300))
            .with_max_retry_after(Duration::from_secs(3600));
        assert_eq!(
            b.delay_after(1, Some(Duration::from_secs(90))),
            Duration::from_secs(90)
        );
        assert_eq!(
            b.delay_after(3, Some(Duration::from_secs(1))),
            Duration::from_secs(8),
            "a short Retry-After does not shorten the backoff"
        );
        assert_eq!(
            b.delay_after(1, Some(Duration::from_secs(7 * 86_400))),
            Duration::from_secs(3600)
        );
        assert_eq!(b.delay_after(2, None), Duration::from_secs(4));
        assert_eq!(
            b.retry_after(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn an_inline_wait_must_leave_room_inside_the_call_timeout() {
        assert!(fits_inside(
            Duration::from_secs(10),
            Duration::from_secs(30)
        ));
        assert!(fits_inside(
            Duration::from_secs(15),
            Duration::from_secs(30)
        ));
        // The bug issue 12 found: 60 s of in-line waiting inside a 30 s call timeout.
        assert!(!fits_inside(
            Duration::from_secs(60),
            Duration::from_secs(30)
        ));
        assert!(!fits_inside(
            Duration::from_secs(20),
            Duration::from_secs(30)
        ));
    }
}
