//! How sled stores an alert (`alerts` tree): the alert's JSON alone, or an envelope that
//! also holds the record of the mention it is about, the references of the messages posted
//! for it and its pending timers. Why: sled's memory grows with its entries, not its bytes
//! (every page of at most 16 entries costs about 250 bytes of page table, cached or not;
//! BENCHMARKS.md, session 15), and an alert's mention, its message references and its
//! timers were three more entries per alert, each found through the alert's id. Alerts
//! written before the envelope, and mentions, references and timers kept in their own
//! trees (old stores, `store copy`), still read.
//! It does not decide what an alert is; `alerts.rs`, `accept.rs` and `outbox.rs` do.

use super::StoreError;
use crate::model::{AlertId, MessageRef, Target, TimerKind};
use chrono::{DateTime, Utc};

/// First byte of an envelope. A plain alert's JSON starts with `{`.
const ENVELOPE: u8 = 2;
/// Section tags; each section is its tag, its length (u32, big-endian) and its bytes.
const ALERT: u8 = b'a';
const MENTION: u8 = b'm';
const REFS: u8 = b'r';
const TIMERS: u8 = b't';
/// A timer in the timers section: kind code, due seconds (i64), nanoseconds (u32).
const TIMER_LEN: usize = 13;

/// The parts of a stored alert value, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Parts<'a> {
    /// The alert's JSON (what `to_json(&alert)` wrote).
    pub(super) alert: &'a [u8],
    /// Its mention's record (`mention_record`'s encoding), when the alert holds it.
    pub(super) mention: Option<&'a [u8]>,
    /// Its message references (a JSON list of `MessageRef`), once one was posted.
    pub(super) refs: Option<&'a [u8]>,
    /// Its pending timers (`encode_timers`), while it has any.
    pub(super) timers: Option<&'a [u8]>,
}

impl<'a> Parts<'a> {
    /// Splits a stored value; an error says what is wrong with it.
    pub(super) fn of(v: &'a [u8]) -> Result<Parts<'a>, String> {
        if v.first() != Some(&ENVELOPE) {
            return Ok(Parts {
                alert: v,
                ..Parts::default()
            });
        }
        let mut parts = Parts::default();
        let mut rest = &v[1..];
        while let Some((&tag, tail)) = rest.split_first() {
            let len = tail
                .get(..4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("four bytes")) as usize)
                .ok_or("an alert envelope section is cut off")?;
            let bytes = tail
                .get(4..4 + len)
                .ok_or("an alert envelope section is cut off")?;
            match tag {
                ALERT => parts.alert = bytes,
                MENTION => parts.mention = Some(bytes),
                REFS => parts.refs = Some(bytes),
                TIMERS if bytes.len() % TIMER_LEN != 0 => {
                    return Err("an alert's timers section is cut off".into())
                }
                TIMERS => parts.timers = Some(bytes),
                other => return Err(format!("unknown alert envelope section {other}")),
            }
            rest = &tail[4 + len..];
        }
        if parts.alert.is_empty() {
            return Err("an alert envelope without its alert".into());
        }
        Ok(parts)
    }

    /// The stored value: the alert's JSON alone when there is nothing else to hold.
    pub(super) fn encode(&self) -> Vec<u8> {
        if self.mention.is_none() && self.refs.is_none() && self.timers.is_none() {
            return self.alert.to_vec();
        }
        let sections = [
            (ALERT, Some(self.alert)),
            (MENTION, self.mention),
            (REFS, self.refs),
            (TIMERS, self.timers),
        ];
        let len = sections
            .iter()
            .map(|(_, b)| b.map_or(0, |b| 5 + b.len()))
            .sum::<usize>();
        let mut out = Vec::with_capacity(1 + len);
        out.push(ENVELOPE);
        for (tag, bytes) in sections {
            if let Some(bytes) = bytes {
                out.push(tag);
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    /// The message references alert `id`'s value holds, in the order they were posted.
    pub(super) fn message_refs(&self, id: AlertId) -> Result<Vec<MessageRef>, StoreError> {
        match self.refs {
            None => Ok(Vec::new()),
            Some(b) => serde_json::from_slice(b).map_err(|e| StoreError::Corrupt {
                key: format!("message refs of alert {id}"),
                reason: e.to_string(),
            }),
        }
    }
}

/// A timers section's timers, in the order they were set. A record with an unknown kind
/// (written by a later version) is skipped.
pub(super) fn timers_of(section: Option<&[u8]>) -> Vec<(TimerKind, DateTime<Utc>)> {
    section
        .unwrap_or_default()
        .chunks_exact(TIMER_LEN)
        .filter_map(|t| {
            let kind = TimerKind::from_code(t[0])?;
            let secs = i64::from_be_bytes(t[1..9].try_into().expect("eight bytes"));
            let nanos = u32::from_be_bytes(t[9..13].try_into().expect("four bytes"));
            Some((kind, DateTime::from_timestamp(secs, nanos)?))
        })
        .collect()
}

/// The timers section for `timers`; `None` when there are none (the section is left out).
pub(super) fn encode_timers(timers: &[(TimerKind, DateTime<Utc>)]) -> Option<Vec<u8>> {
    if timers.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(timers.len() * TIMER_LEN);
    for (kind, due) in timers {
        out.push(kind.code());
        out.extend_from_slice(&due.timestamp().to_be_bytes());
        out.extend_from_slice(&due.timestamp_subsec_nanos().to_be_bytes());
    }
    Some(out)
}

/// The references list with `msg` in place of any earlier one for its target, as JSON.
pub(super) fn with_ref(refs: Vec<MessageRef>, msg: &MessageRef) -> Vec<u8> {
    let mut refs: Vec<MessageRef> = refs
        .into_iter()
        .filter(|r| r.target != msg.target)
        .collect();
    refs.push(msg.clone());
    serde_json::to_vec(&refs).expect("message references are plain data")
}

/// The reference for `target` among `refs`.
pub(super) fn ref_for(refs: Vec<MessageRef>, target: &Target) -> Option<MessageRef> {
    refs.into_iter().find(|r| &r.target == target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(target: &str, id: &str) -> MessageRef {
        MessageRef {
            target: Target::parse(target).unwrap(),
            channel_id: "C1".into(),
            message_id: id.into(),
            permalink: None,
        }
    }

    /// A plain alert reads as before; an envelope gives back exactly what went in, and a
    /// damaged one is refused instead of read as something else.
    #[test]
    fn an_envelope_holds_its_parts_and_a_plain_alert_still_reads() {
        let alert = br#"{"id":1}"#;
        assert_eq!(
            Parts::of(alert).unwrap(),
            Parts {
                alert,
                ..Parts::default()
            }
        );
        let plain = Parts {
            alert,
            ..Parts::default()
        };
        assert_eq!(plain.encode(), alert.to_vec(), "nothing else: plain JSON");

        let refs = with_ref(Vec::new(), &msg("slack:#pr", "1.0"));
        let due = DateTime::from_timestamp(1_780_000_000, 500_000_000).unwrap();
        let timers = encode_timers(&[(TimerKind::Escalate, due)]).unwrap();
        let full = Parts {
            alert,
            mention: Some(b"\x01{\"x\":\"text\"}"),
            refs: Some(&refs),
            timers: Some(&timers),
        };
        let bytes = full.encode();
        assert_eq!(Parts::of(&bytes).unwrap(), full);
        let no_mention = Parts {
            mention: None,
            ..full
        };
        assert_eq!(Parts::of(&no_mention.encode()).unwrap(), no_mention);

        for cut in [2, 6, bytes.len() - 1] {
            assert!(Parts::of(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut unknown = bytes.clone();
        unknown[1] = b'z';
        assert!(Parts::of(&unknown).is_err());
    }

    /// Timers keep their kind and their due time to the nanosecond, in order; none is no
    /// section at all.
    #[test]
    fn timers_round_trip_exactly() {
        let t = |s, n| DateTime::from_timestamp(s, n).unwrap();
        let timers = [
            (TimerKind::Escalate, t(1_780_000_000, 0)),
            (TimerKind::Wake, t(-5, 999_999_999)),
            (TimerKind::Remind, t(1_780_000_123, 1)),
        ];
        let section = encode_timers(&timers).unwrap();
        assert_eq!(timers_of(Some(&section)), timers);
        assert_eq!(encode_timers(&[]), None);
        assert_eq!(timers_of(None), []);
    }

    /// A new reference replaces the one of its target and keeps the others.
    #[test]
    fn a_reference_replaces_only_its_targets() {
        let one = with_ref(Vec::new(), &msg("slack:#pr", "1.0"));
        let parts = Parts {
            alert: b"{}",
            refs: Some(&one),
            ..Parts::default()
        };
        let two = with_ref(
            parts.message_refs(AlertId(1)).unwrap(),
            &msg("discord:42", "9"),
        );
        let parts = Parts {
            refs: Some(&two),
            ..parts
        };
        let three = with_ref(
            parts.message_refs(AlertId(1)).unwrap(),
            &msg("slack:#pr", "2.0"),
        );
        let parts = Parts {
            refs: Some(&three),
            ..parts
        };
        let refs = parts.message_refs(AlertId(1)).unwrap();
        assert_eq!(refs.len(), 2);
        let slack = ref_for(refs.clone(), &Target::parse("slack:#pr").unwrap()).unwrap();
        assert_eq!(slack.message_id, "2.0");
        let discord = ref_for(refs, &Target::parse("discord:42").unwrap()).unwrap();
        assert_eq!(discord.message_id, "9");
    }
}
