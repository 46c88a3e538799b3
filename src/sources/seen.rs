//! The ids a source saw near its watermark, kept in its `SourceState` as one string
//! (`id@unix_ts id@unix_ts …`), so items re-read in the overlap window are not handed on twice
//! across polls and restarts. Only the encoding lives here: each source decides what to
//! remember and for how long.

use std::collections::BTreeMap;

/// The remembered ids and their times; an empty map for a missing or garbled value.
pub(crate) fn decode(raw: Option<&String>) -> BTreeMap<String, i64> {
    raw.map(|s| {
        s.split_whitespace()
            .filter_map(|e| {
                let (id, ts) = e.rsplit_once('@')?;
                Some((id.to_string(), ts.parse().ok()?))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The newest `max` of `seen` as one string; `None` when there is nothing to keep.
pub(crate) fn encode(seen: BTreeMap<String, i64>, max: usize) -> Option<String> {
    let mut entries: Vec<(String, i64)> = seen.into_iter().collect();
    entries.sort_by_key(|(_, ts)| std::cmp::Reverse(*ts));
    entries.truncate(max);
    (!entries.is_empty()).then(|| {
        entries
            .iter()
            .map(|(id, ts)| format!("{id}@{ts}"))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Stores the newest `max` of `seen` under `key`, or removes the key when nothing is left.
pub(crate) fn write(
    state: &mut super::SourceState,
    key: &str,
    seen: BTreeMap<String, i64>,
    max: usize,
) {
    match encode(seen, max) {
        Some(value) => state.extra.insert(key.to_string(), value),
        None => state.extra.remove(key),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_the_newest_and_skips_garbage() {
        let seen: BTreeMap<String, i64> = (0..10).map(|i| (format!("t3_{i}"), i)).collect();
        let text = encode(seen, 3).unwrap();
        assert_eq!(text, "t3_9@9 t3_8@8 t3_7@7");
        let mut raw = text.clone();
        raw.push_str(" junk no@time a@b@5");
        let back = decode(Some(&raw));
        assert_eq!(back.len(), 4, "{back:?}");
        assert_eq!(back["a@b"], 5, "ids may contain @");
        assert_eq!(encode(BTreeMap::new(), 3), None);
        assert!(decode(None).is_empty());
    }
}
