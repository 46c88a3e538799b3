//! When a digest is due: a cron expression (seconds first) read in an IANA time zone.
//! Cron fields name wall-clock times, so the expression is evaluated on local time and each
//! local time is then placed on the real timeline: a time skipped by a daylight-saving jump
//! forward fires when the jump ends, and a time that occurs twice (jump back) fires once,
//! at its first occurrence. It does not know what a digest contains.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::str::FromStr;

/// How many schedule steps one lookup may take before giving up (a schedule that never
/// fires again, or one so dense that catching up is meaningless).
const MAX_STEPS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Schedule {
    cron: cron::Schedule,
    tz: Tz,
}

impl Schedule {
    /// Parses `expr` ("sec min hour day-of-month month day-of-week [year]"); the error says
    /// what a valid schedule looks like.
    pub fn parse(expr: &str, tz: Tz) -> Result<Schedule, String> {
        let fields = expr.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            return Err(format!("{expr:?} has {fields} fields; a schedule has seconds first: \"sec min hour day-of-month month day-of-week\", e.g. \"0 0 9 * * Mon-Fri\""));
        }
        let cron = cron::Schedule::from_str(expr).map_err(|e| {
            format!("{expr:?} is not a valid schedule ({e}); e.g. \"0 0 9 * * Mon-Fri\" is 9:00 on weekdays")
        })?;
        let s = Schedule { cron, tz };
        if s.next_after(Utc::now()).is_none() {
            return Err(format!("{expr:?} never fires again"));
        }
        Ok(s)
    }

    pub(crate) fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first firing strictly after `after`.
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut local = self.local(after);
        for _ in 0..MAX_STEPS {
            let next = self.cron.after(&fake_utc(local)).next()?.naive_utc();
            let at = self.place(next)?;
            if at > after {
                return Some(at);
            }
            local = next;
        }
        None
    }

    /// The last firing at or before `at`.
    pub(crate) fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // One second later so a firing exactly at `at` counts.
        let mut local = self.local(at + Duration::seconds(1));
        for _ in 0..MAX_STEPS {
            let prev = self.cron.after(&fake_utc(local)).next_back()?.naive_utc();
            let placed = self.place(prev)?;
            if placed <= at {
                return Some(placed);
            }
            local = prev;
        }
        None
    }

    /// The firing before `slot`, or `None` when there is none within `limit`.
    pub(crate) fn previous(&self, slot: DateTime<Utc>, limit: Duration) -> Option<DateTime<Utc>> {
        self.last_at_or_before(slot - Duration::seconds(1))
            .filter(|p| slot - *p <= limit)
    }

    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }

    /// A local wall-clock time on the real timeline: a repeated time is its first
    /// occurrence; a skipped time is the moment the clocks jumped (the first valid minute
    /// after it).
    fn place(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => {
                let minute_start = local.with_second(0)?.with_nanosecond(0)?;
                (1..=24 * 60).find_map(|m| {
                    self.tz
                        .from_local_datetime(&(minute_start + Duration::minutes(m)))
                        .earliest()
                        .map(|t| t.with_timezone(&Utc))
                })
            }
        }
    }
}

/// Local wall-clock time dressed as UTC, so cron steps through local fields without
/// applying any offset itself.
fn fake_utc(local: NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn berlin(expr: &str) -> Schedule {
        Schedule::parse(expr, chrono_tz::Europe::Berlin).unwrap()
    }

    #[test]
    fn weekday_mornings_in_berlin() {
        let s = berlin("0 0 9 * * Mon-Fri");
        // Friday 2026-11-20 10:00 Berlin (UTC+1) → next is Monday 09:00 = 08:00 UTC.
        let next = s.next_after(utc("2026-11-20T09:00:00Z")).unwrap();
        assert_eq!(next, utc("2026-11-23T08:00:00Z"));
        assert_eq!(
            s.last_at_or_before(utc("2026-11-23T08:00:00Z")),
            Some(utc("2026-11-23T08:00:00Z"))
        );
        assert_eq!(
            s.previous(next, Duration::days(7)),
            Some(utc("2026-11-20T08:00:00Z"))
        );
    }

    #[test]
    fn nine_o_clock_stays_nine_o_clock_across_the_spring_change() {
        // Berlin switches to summer time on 2026-03-29 (02:00 → 03:00).
        let s = berlin("0 0 9 * * *");
        let before = s.next_after(utc("2026-03-28T00:00:00Z")).unwrap();
        let after = s.next_after(before).unwrap();
        assert_eq!(before, utc("2026-03-28T08:00:00Z"), "09:00 CET");
        assert_eq!(after, utc("2026-03-29T07:00:00Z"), "09:00 CEST");
        assert_eq!(after - before, Duration::hours(23));
    }

    #[test]
    fn a_time_skipped_by_the_spring_change_fires_when_the_clocks_jump() {
        let s = berlin("0 30 2 * * *");
        let slots: Vec<_> = std::iter::successors(s.next_after(utc("2026-03-27T12:00:00Z")), |t| {
            s.next_after(*t)
        })
        .take(3)
        .collect();
        assert_eq!(
            slots,
            vec![
                utc("2026-03-28T01:30:00Z"), // 02:30 CET
                utc("2026-03-29T01:00:00Z"), // 02:30 does not exist: 03:00 CEST
                utc("2026-03-30T00:30:00Z"), // 02:30 CEST
            ]
        );
    }

    #[test]
    fn a_time_repeated_by_the_autumn_change_fires_once() {
        // Berlin goes back to winter time on 2026-10-25 (03:00 CEST → 02:00 CET).
        let s = berlin("0 30 2 * * *");
        let slots: Vec<_> = std::iter::successors(s.next_after(utc("2026-10-24T12:00:00Z")), |t| {
            s.next_after(*t)
        })
        .take(3)
        .collect();
        assert_eq!(
            slots,
            vec![
                utc("2026-10-25T00:30:00Z"), // first 02:30 (CEST)
                utc("2026-10-26T01:30:00Z"), // next day 02:30 CET; the second 02:30 is skipped
                utc("2026-10-27T01:30:00Z"),
            ]
        );
    }

    #[test]
    fn last_firing_before_a_time() {
        let s = berlin("0 0 9 * * Mon-Fri");
        // Sunday evening → Friday's 09:00.
        assert_eq!(
            s.last_at_or_before(utc("2026-11-22T20:00:00Z")),
            Some(utc("2026-11-20T08:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_say_what_to_write() {
        for (expr, wanted) in [
            ("0 9 * * *", "seconds first"),
            ("0 0 25 * * *", "not a valid schedule"),
            ("0 0 9 * * Funday", "not a valid schedule"),
            ("0 0 9 1 1 * 2001", "never fires again"),
        ] {
            let err = Schedule::parse(expr, chrono_tz::UTC).unwrap_err();
            assert!(err.contains(wanted), "{expr}: {err}");
        }
    }
}
