//! Leaf helpers shared across components: duration parsing and display, percentiles. Depends
//! on nothing in the crate, so any module may use it without creating an import cycle.

use std::time::Duration;

/// A duration as people write it: a number and a unit, with or without a space between them,
/// in short or long form (`90s`, `30 seconds`, `5m`, `5 min`, `15 mins`, `1 minute`, `2h`,
/// `2 hours`, `1d`, `7 days`, `2w`, `500ms`), case-insensitive, and several such parts in a
/// row (`1h30m`, `1 hour 30 minutes`). A bare number is refused: the unit matters. Every error
/// says what to write instead.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let not_a_duration =
        || format!("{s:?} is not a duration: write e.g. \"5m\", \"5 minutes\", \"2h\" or \"1d\"");
    if s.is_empty() {
        return Err(not_a_duration());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(not_a_duration());
        }
        let number = &rest[..digits];
        // Only digits, so the one way this fails is a number too large for a u64.
        let n: u64 = number.parse().map_err(|_| too_long(s))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = rest[..unit_len].to_ascii_lowercase();
        rest = rest[unit_len..].trim_start();
        let part = match unit.as_str() {
            "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => Duration::from_millis(n),
            "" if !rest.is_empty() => return Err(not_a_duration()),
            "" => {
                return Err(format!(
                    "{s:?} has no unit: write e.g. \"{number}s\", \"{number}m\", \"{number}h\" or \"{number}d\" (seconds, minutes, hours or days)"
                ))
            }
            other => match unit_seconds(other) {
                Some(secs) => Duration::from_secs(n.checked_mul(secs).ok_or_else(|| too_long(s))?),
                None => return Err(not_a_duration()),
            },
        };
        total = total
            .checked_add(part)
            .filter(|t| *t <= MAX_DURATION)
            .ok_or_else(|| too_long(s))?;
    }
    Ok(total)
}

/// Seconds in one of a duration's units, in any of the spellings `parse_duration` accepts.
fn unit_seconds(unit: &str) -> Option<u64> {
    Some(match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => return None,
    })
}

/// A hundred years: longer is a typo, and timers far past it would overflow the clock.
const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

fn too_long(s: &str) -> String {
    format!("{s:?} is too long a duration: write at most \"36500d\" (100 years)")
}

/// `45 s`, `4 min`, `3 h 20 min`, `2 d 5 h`.
pub(crate) fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        // Days in words: "1 d" read as a glitch next to "15 min" and "2 h".
        _ => {
            let days = match s / 86_400 {
                1 => "1 day".to_string(),
                n => format!("{n} days"),
            };
            match (s % 86_400) / 3600 {
                0 => days,
                h => format!("{days} {h} h"),
            }
        }
    }
}

/// Nearest-rank percentile of seconds; sorts in place.
pub(crate) fn percentile(v: &mut [i64], p: usize) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = (p * v.len()).div_ceil(100).clamp(1, v.len());
    Some(v[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: "5 minutes" and "15 mins" were refused as "no unit". Every spelling people
    /// commonly write is read, and anything else says what to write.
    #[test]
    fn durations_accept_common_spellings() {
        let (sec, min, hour, day) = (1, 60, 3600, 86_400);
        for (text, secs) in [
            ("90s", 90 * sec),
            ("30 seconds", 30 * sec),
            ("1 second", sec),
            ("45 sec", 45 * sec),
            ("5m", 5 * min),
            ("5 min", 5 * min),
            ("5 mins", 5 * min),
            ("15 mins", 15 * min),
            ("5 minutes", 5 * min),
            ("1 minute", min),
            ("5 Minutes", 5 * min),
            ("2h", 2 * hour),
            ("2 hours", 2 * hour),
            ("1 hour", hour),
            ("3 hrs", 3 * hour),
            ("2H", 2 * hour),
            ("1d", day),
            ("1 day", day),
            ("7 days", 7 * day),
            ("7d", 7 * day),
            ("2w", 14 * day),
            ("1 week", 7 * day),
            ("1h30m", hour + 30 * min),
            ("1h 30m", hour + 30 * min),
            ("1 hour 30 minutes", hour + 30 * min),
            ("  10m  ", 10 * min),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text:?}"
            );
        }
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_duration("250 milliseconds"),
            Ok(Duration::from_millis(250))
        );
    }

    #[test]
    fn a_duration_that_cannot_be_read_says_what_to_write() {
        let hint = "is not a duration: write e.g. \"5m\", \"5 minutes\", \"2h\" or \"1d\"";
        for bad in [
            "5 minuets",
            "",
            "m5",
            "five minutes",
            "1.5h",
            "2 months",
            "5m and 3s",
            "-5m",
            "5m!",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(format!("{:?} {hint}", bad.trim())),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_duration("5 minuets").unwrap_err(),
            "\"5 minuets\" is not a duration: write e.g. \"5m\", \"5 minutes\", \"2h\" or \"1d\""
        );
        assert_eq!(
            parse_duration("15").unwrap_err(),
            "\"15\" has no unit: write e.g. \"15s\", \"15m\", \"15h\" or \"15d\" (seconds, minutes, hours or days)"
        );
        assert!(parse_duration("1h30").unwrap_err().contains("has no unit"));
        assert!(parse_duration("99999999999999999999d")
            .unwrap_err()
            .contains("too long a duration"));
        assert!(parse_duration("999999999999999999d")
            .unwrap_err()
            .contains("too long a duration"));
        assert!(parse_duration("36501d").is_err());
        assert_eq!(
            parse_duration("36500d"),
            Ok(Duration::from_secs(36_500 * 86_400))
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(42), "42 s");
        assert_eq!(human_duration(240), "4 min");
        assert_eq!(human_duration(3600 * 3 + 1200), "3 h 20 min");
        assert_eq!(human_duration(86_400 * 2 + 3600 * 5), "2 days 5 h");
        assert_eq!(human_duration(86_400), "1 day");
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v = vec![50, 10, 40, 20, 30];
        assert_eq!(percentile(&mut v, 50), Some(30));
        assert_eq!(percentile(&mut v, 90), Some(50));
        assert_eq!(percentile(&mut [], 50), None);
    }
}
