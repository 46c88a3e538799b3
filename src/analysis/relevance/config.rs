//! `[relevance]`: whether the desk's outcomes teach a relevance model per rule, and when a
//! rule's model holds low-scoring mentions back. Reads only its own section; learning and
//! holding back are the desk's and intake's.

use crate::config::{Reader, Table};

const KEYS: &[&str] = &["enabled", "min_labels", "hold_below"];

/// Relevance learning (`[relevance]`); on by default.
#[derive(Debug, Clone, PartialEq)]
pub struct RelevanceConfig {
    /// Off: nothing is learned, scored or held back.
    pub enabled: bool,
    /// Labels a rule needs (with both kinds present) before its mentions can be held back.
    pub min_labels: u32,
    /// Mentions scored below this (0..1) are held back once the rule has enough labels.
    pub hold_below: f64,
}

impl Default for RelevanceConfig {
    fn default() -> RelevanceConfig {
        RelevanceConfig {
            enabled: true,
            min_labels: 30,
            hold_below: 0.2,
        }
    }
}

impl RelevanceConfig {
    /// Reads `[relevance]` (optional; every key has a default).
    pub(crate) fn read(r: &mut Reader, root: &Table) -> RelevanceConfig {
        let d = RelevanceConfig::default();
        let Some(t) = r.table(root, "relevance") else {
            return d;
        };
        r.known_keys(t, "relevance", KEYS);
        let min_labels = match r.integer(t, "relevance", "min_labels") {
            None => d.min_labels,
            Some(n) => match u32::try_from(n) {
                Ok(n) if n >= 2 => n,
                _ => {
                    let line = r.key_line(t, "min_labels");
                    r.problem(
                        line,
                        "relevance.min_labels",
                        "must be a whole number from 2 (one label of each kind) up, e.g. 30",
                    );
                    d.min_labels
                }
            },
        };
        let hold_below = match t.get("hold_below") {
            None => d.hold_below,
            Some(item) => match item
                .as_float()
                .or_else(|| item.as_integer().map(|i| i as f64))
            {
                Some(x) if (0.0..1.0).contains(&x) => x,
                _ => {
                    let line = r.key_line(t, "hold_below");
                    r.problem(
                        line,
                        "relevance.hold_below",
                        "must be a relevance score from 0 up to (not including) 1, e.g. 0.2; 0 holds nothing back",
                    );
                    d.hold_below
                }
            },
        };
        RelevanceConfig {
            enabled: r.boolean(t, "relevance", "enabled").unwrap_or(d.enabled),
            min_labels,
            hold_below,
        }
    }
}
