//! Leaf helpers shared across components: duration parsing and display, percentiles. Depends
//! on nothing in the crate, so any module may use it without creating an import cycle.

use std::time::Duration;

/// `90s`, `5m`, `2h`, `1d`, `1h30m`, `500ms`. A bare number is refused: the unit matters.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let hint = "write a number with a unit: 500ms, 90s, 5m, 2h, 1d or 1h30m";
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("empty duration; {hint}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{s:?} is not a duration; {hint}"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?} is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86_400),
            "" => return Err(format!("{s:?} has no unit; {hint}")),
            other => return Err(format!("{s:?}: unknown unit {other:?}; {hint}")),
        };
        total += part;
    }
    Ok(total)
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        for bad in ["", "5", "m5", "5 m", "5w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
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
