//! How a stored mention is encoded: compact JSON behind a format byte, without the source
//! name and item id (the record's key already holds both), with short field names and no
//! empty fields. Records written before this format (plain `StoredMention` JSON) still load.
//! It does not decide what is stored; `accept` does.

use super::accept::StoredMention;
use super::StoreError;
use crate::model::Mention;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// First byte of a record in this format. A record from before starts with `{`.
const COMPACT: u8 = 1;

/// The fields of a mention its key does not hold, and whether it raised an alert (only such
/// bodies outlive `[store] keep_mentions`).
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    #[serde(rename = "k", borrow)]
    source_kind: Cow<'a, str>,
    #[serde(rename = "x", borrow)]
    text: Cow<'a, str>,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none", borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none", borrow)]
    title: Option<Cow<'a, str>>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none", borrow)]
    author: Option<Cow<'a, str>>,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    author_reach: Option<u64>,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    published: Option<DateTime<Utc>>,
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none", borrow)]
    lang: Option<Cow<'a, str>>,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    rating: Option<u8>,
    /// Whole seconds are enough: it only decides when the body is dropped.
    #[serde(rename = "r", with = "chrono::serde::ts_seconds")]
    received_at: DateTime<Utc>,
    #[serde(rename = "al", default, skip_serializing_if = "std::ops::Not::not")]
    alerted: bool,
    /// The mention's place in the arrival order, kept in the record of a mention that
    /// opened an alert instead of in a `mention_log` entry (see `accept.rs`).
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

/// A mention's record under its key (`Mention::key()`: source, 0x1f, item id); `seq` for a
/// mention whose place in the arrival order is kept here rather than in `mention_log`.
pub(super) fn encode(
    m: &Mention,
    received_at: DateTime<Utc>,
    alerted: bool,
    seq: Option<u64>,
) -> Vec<u8> {
    let record = Record {
        source_kind: Cow::Borrowed(&m.source_kind),
        text: Cow::Borrowed(&m.text),
        url: m.url.as_deref().map(Cow::Borrowed),
        title: m.title.as_deref().map(Cow::Borrowed),
        author: m.author.as_deref().map(Cow::Borrowed),
        author_reach: m.author_reach,
        published: m.published,
        lang: m.lang.as_deref().map(Cow::Borrowed),
        rating: m.rating,
        received_at,
        alerted,
        seq,
    };
    let mut out = Vec::with_capacity(m.text.len() + 96);
    out.push(COMPACT);
    serde_json::to_writer(&mut out, &record).expect("mention records are plain data");
    out
}

/// What a mention record holds, in either format.
pub(super) struct Decoded {
    pub(super) stored: StoredMention,
    /// `None` for a record from before this format, which did not say.
    pub(super) alerted: Option<bool>,
    /// Its place in the arrival order, when the record holds it (see `encode`).
    pub(super) seq: Option<u64>,
}

pub(super) fn decode(key: &str, bytes: &[u8]) -> Result<Decoded, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.replace('\u{1f}', "/"),
        reason,
    };
    let Some((&COMPACT, body)) = bytes.split_first() else {
        let stored = super::from_json(key, bytes)?;
        return Ok(Decoded {
            stored,
            alerted: None,
            seq: None,
        });
    };
    let r: Record = serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))?;
    let (source, item_id) = key
        .split_once('\u{1f}')
        .ok_or_else(|| corrupt("the key names no source".into()))?;
    Ok(Decoded {
        stored: StoredMention {
            mention: Mention {
                item_id: item_id.to_string(),
                source: source.to_string(),
                source_kind: r.source_kind.into_owned(),
                url: r.url.map(Cow::into_owned),
                title: r.title.map(Cow::into_owned),
                text: r.text.into_owned(),
                author: r.author.map(Cow::into_owned),
                author_reach: r.author_reach,
                published: r.published,
                lang: r.lang.map(Cow::into_owned),
                rating: r.rating,
            },
            received_at: r.received_at,
        },
        alerted: Some(r.alerted),
        seq: r.seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Mention {
        Mention {
            item_id: "p-1\u{1f}x".into(),
            source: "forum".into(),
            source_kind: "discourse".into(),
            url: Some("https://forum.example.com/t/1".into()),
            title: Some("Router \"died\"".into()),
            text: "acme router died again 😡\nsecond line \\ with a backslash".into(),
            author: Some("dana".into()),
            author_reach: Some(1200),
            published: Some("2026-01-05T09:00:00.123456789Z".parse().unwrap()),
            lang: Some("en".into()),
            rating: Some(2),
        }
    }

    #[test]
    fn every_field_survives_the_round_trip() {
        let at: DateTime<Utc> = "2026-01-06T10:00:00Z".parse().unwrap();
        for (m, alerted, seq) in [
            (full(), true, Some(u64::MAX - 3)),
            (
                Mention {
                    url: None,
                    title: None,
                    author: None,
                    author_reach: None,
                    published: None,
                    lang: None,
                    rating: None,
                    ..full()
                },
                false,
                None,
            ),
        ] {
            let bytes = encode(&m, at, alerted, seq);
            let got = decode(&m.key(), &bytes).unwrap();
            assert_eq!(got.stored.mention, m);
            assert_eq!(got.stored.received_at, at);
            assert_eq!(got.alerted, Some(alerted));
            assert_eq!(got.seq, seq);
        }
    }

    /// Stores written before this format hold `StoredMention` as JSON; they load unchanged.
    #[test]
    fn records_from_before_load() {
        let at: DateTime<Utc> = "2026-01-06T10:00:00Z".parse().unwrap();
        let m = full();
        let old = serde_json::to_vec(&StoredMention {
            mention: m.clone(),
            received_at: at,
        })
        .unwrap();
        let got = decode(&m.key(), &old).unwrap();
        assert_eq!(got.stored.mention, m);
        assert_eq!(got.alerted, None);
        assert_eq!(got.seq, None);
    }

    /// The compact record of a typical post costs its text plus well under 100 bytes, about
    /// half of the old JSON (which repeated the source, the item id and every field name).
    #[test]
    fn the_record_is_text_plus_little() {
        let at: DateTime<Utc> = "2026-01-06T10:00:00Z".parse().unwrap();
        let m = Mention {
            item_id: "123456".into(),
            source: "bench".into(),
            source_kind: "file".into(),
            url: Some("https://forum.example.com/t/123456".into()),
            title: None,
            text: "x".repeat(150),
            author: Some("user123456".into()),
            author_reach: None,
            published: None,
            lang: None,
            rating: None,
        };
        let new = encode(&m, at, false, None).len();
        let old = serde_json::to_vec(&StoredMention {
            mention: m.clone(),
            received_at: at,
        })
        .unwrap()
        .len();
        let fixed = m.text.len() + m.url.as_ref().unwrap().len() + m.author.as_ref().unwrap().len();
        assert!(new - fixed < 70, "{new} bytes for {fixed} bytes of fields");
        assert!(new * 10 < old * 7, "{new} vs {old} bytes before");
    }
}
