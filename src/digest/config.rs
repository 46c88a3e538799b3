//! `[digest]` / `[[digest]]`: when each digest is posted, in which time zone, and where.
//! Reads only its own section; building and posting a digest is `digest`'s job.

use super::schedule::Schedule;
use crate::config::{Item, Reader, Table};
use crate::model::Target;
use std::collections::HashSet;

const KEYS: &[&str] = &["name", "schedule", "timezone", "to", "chart"];

#[derive(Debug, Clone, PartialEq)]
pub struct DigestConfig {
    /// Names the digest in its title, in `digest --now NAME` and in the store's slot marker.
    pub name: String,
    pub schedule: String,
    pub timezone: chrono_tz::Tz,
    pub to: Vec<Target>,
    /// Attach the PNG chart (default true).
    pub chart: bool,
}

impl DigestConfig {
    /// `[digest]` (one) or `[[digest]]` (several, each with its own name); empty = no digest.
    pub(crate) fn read_all(r: &mut Reader, root: &Table) -> Vec<DigestConfig> {
        let tables: Vec<(&Table, String)> = match root.get("digest") {
            None => Vec::new(),
            Some(Item::Table(t)) => vec![(t, "digest".to_string())],
            Some(_) => r
                .array_of_tables(root, "digest")
                .into_iter()
                .enumerate()
                .map(|(i, t)| (t, format!("digest[{i}]")))
                .collect(),
        };
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for (i, (t, prefix)) in tables.iter().enumerate() {
            let Some(d) = DigestConfig::read(r, t, prefix, i) else {
                continue;
            };
            r.unique_name(&mut names, t, prefix, &d.name, || {
                format!(
                    "another digest is already named {:?}; give each [[digest]] its own name",
                    d.name
                )
            });
            out.push(d);
        }
        out
    }

    fn read(r: &mut Reader, t: &Table, prefix: &str, index: usize) -> Option<DigestConfig> {
        r.known_keys(t, prefix, KEYS);
        let name = r.string(t, prefix, "name").unwrap_or_else(|| match index {
            0 => "Mentions digest".to_string(),
            i => format!("Mentions digest {}", i + 1),
        });
        let schedule = r.required_string(t, prefix, "schedule");
        let timezone = r.timezone(t, prefix, "timezone").unwrap_or(chrono_tz::UTC);
        if let Some(s) = &schedule {
            if let Err(e) = Schedule::parse(s, timezone) {
                let line = r.key_line(t, "schedule");
                r.problem(line, &format!("{prefix}.schedule"), e);
            }
        }
        let to = r.targets(t, prefix, "to");
        if !t.contains_key("to") {
            let line = r.key_line(t, "schedule");
            r.problem(
                line,
                &format!("{prefix}.to"),
                "is missing: say where the digest goes, e.g. to = [\"slack:#pr-alerts\"]"
                    .to_string(),
            );
        } else if to.is_empty() {
            let line = r.key_line(t, "to");
            r.problem(
                line,
                &format!("{prefix}.to"),
                "lists no destination; write e.g. to = [\"slack:#pr-alerts\"]".to_string(),
            );
        }
        let chart = r.boolean(t, prefix, "chart").unwrap_or(true);
        Some(DigestConfig {
            name,
            schedule: schedule?,
            timezone,
            to,
            chart,
        })
    }
}
