//! Candidates for the store's unit tests; no threading decisions (intake's tests cover those).

use super::{AlertChange, Candidate, LabelWrite, NewAlert};
use crate::analysis::relevance::LabelKind;
use crate::model::{Alert, AuditEntry, Mention, Priority, Target};

pub(super) fn mention(id: &str) -> Mention {
    Mention {
        item_id: id.into(),
        source: "feed".into(),
        source_kind: "rss".into(),
        url: Some(format!("https://example.com/{id}")),
        title: None,
        text: format!("text {id}"),
        author: None,
        author_reach: None,
        published: None,
        lang: None,
        rating: None,
    }
}

pub(super) fn candidate(id: &str, alert: bool) -> Candidate {
    let m = mention(id);
    Candidate {
        dedup_keys: vec![
            format!("item:{}", m.key()),
            format!("url:{}", m.url.clone().unwrap()),
        ],
        mention: m,
        alert: alert.then(|| NewAlert {
            rules: vec!["acme".into()],
            priority: Priority::Normal,
            sentiment: 0.0,
            negative: false,
            targets: vec![Target::Slack("#pr".into()), Target::Slack("#leads".into())],
            highlights: vec![],
            timers: vec![],
            thread_keys: vec![],
            repeat_of: None,
            log_hit: true,
            relevance: None,
            held: false,
        }),
    }
}

/// A desk change that writes `alert` as it is, by `slack:U1`, with nothing else attached
/// (tests add the label, outbox work or timers they need).
pub(super) fn change(alert: Alert) -> AlertChange {
    AlertChange {
        audit: AuditEntry {
            at: chrono::Utc::now(),
            actor: "slack:U1".into(),
            action: "test".into(),
            from: "open".into(),
            to: "open".into(),
            detail: None,
        },
        outbox: vec![],
        extra_outbox: vec![],
        cancel_timers: vec![],
        set_timers: vec![],
        label: None,
        alert,
    }
}

/// `change`, with a label of `kind` by `slack:U1` on the alert's rules.
pub(super) fn label_change(alert: Alert, kind: LabelKind, features: &[u32]) -> AlertChange {
    let label = LabelWrite {
        rules: alert.rules.clone(),
        kind,
        by: "slack:U1".into(),
        action: "test".into(),
        features: features.to_vec(),
        at: chrono::Utc::now(),
    };
    AlertChange {
        label: Some(label),
        ..change(alert)
    }
}

/// The desk heads as the stored alerts say they are (what the desk index must hold).
pub(super) fn heads_from_alerts(store: &super::SledStore) -> Vec<super::AlertHead> {
    store
        .alerts()
        .unwrap()
        .iter()
        .filter_map(super::AlertHead::of)
        .collect()
}
