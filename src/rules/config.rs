//! `[[rules]]` and `[rules_defaults]`: each rule's name, query, targets and priority, and the
//! exclusions every rule shares; compiling them all reports a bad query at its own line.
//! Reads only these sections; where alerts go is the chat's business.

use super::{Defaults, RuleSet, EXCLUDE_RULE_NAME};
use crate::analysis::lang;
use crate::config::{Item, RawTable, Reader, Table};
use crate::model::{Priority, Target};
use std::collections::{HashMap, HashSet};

const RULE_KEYS: &[&str] = &["name", "query", "alert", "priority"];
const RULES_DEFAULTS_KEYS: &[&str] = &["exclude", "muted_authors", "muted_sites", "languages"];

#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    pub name: String,
    pub query: String,
    pub alert: Vec<Target>,
    pub priority: Priority,
}

/// `[rules_defaults]`: exclusions that apply to every rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RulesDefaults {
    pub(crate) exclude: Option<String>,
    pub(crate) muted_authors: Vec<String>,
    pub(crate) muted_sites: Vec<String>,
    /// ISO 639-1 codes, lower case: posts in other languages match no rule.
    pub(crate) languages: Vec<String>,
}

/// Where each read rule came from, for reporting a bad query: the index of its `[[rules]]`
/// table and the line of its `query` key. Parallel to the rules `read_all` returns.
#[derive(Debug, Clone, Default)]
pub(crate) struct RulePlaces(Vec<(usize, usize)>);

/// `rules[i]`, formatted only when a problem names it.
struct Prefix(usize);

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rules[{}]", self.0)
    }
}

impl RuleConfig {
    /// Reads every `[[rules]]` entry (`tables`: from the lean scanner, or converted from
    /// `toml_edit` with [`rule_tables`]); an entry without name or query is left out
    /// (reported).
    pub(crate) fn read_all(r: &mut Reader, tables: &[RawTable]) -> (Vec<RuleConfig>, RulePlaces) {
        let mut out = Vec::with_capacity(tables.len());
        let mut places = Vec::with_capacity(tables.len());
        let mut names = HashSet::with_capacity(tables.len());
        for (i, t) in tables.iter().enumerate() {
            let key = &Prefix(i);
            r.raw_known_keys(t, key, RULE_KEYS);
            let name = r.raw_required_str(t, key, "name");
            if let Some((n, line)) = &name {
                r.raw_unique_name(&mut names, n.clone(), *line, key, || {
                    format!("duplicate rule name {n:?}; names must be unique")
                });
            }
            let query = r.raw_required_str(t, key, "query");
            let mut alert = Vec::new();
            r.raw_string_array(t, key, "alert", |r, s, line| match Target::parse(&s) {
                Ok(target) => alert.push(target),
                Err(e) => r.problem(line, &format!("{key}.alert"), e),
            });
            if t.get("alert").is_none() {
                r.problem(t.line, &format!("{key}.alert"), "missing; add alert = [\"slack:#channel\"] (without [slack], alerts print to the console)");
            }
            let priority = r.raw_str(t, key, "priority").and_then(|(s, line)| {
                let p = Priority::parse(&s);
                if p.is_none() {
                    r.problem(
                        line,
                        &format!("{key}.priority"),
                        format!("unknown priority {s:?}; expected low, normal, high or critical"),
                    );
                }
                p
            });
            if let (Some((name, _)), Some((query, query_line))) = (name, query) {
                out.push(RuleConfig {
                    name: name.into_owned(),
                    query: query.into_owned(),
                    alert,
                    priority: priority.unwrap_or_default(),
                });
                places.push((i, query_line));
            }
        }
        (out, RulePlaces(places))
    }
}

/// The `[[rules]]` tables of a document `toml_edit` parsed (when the lean scanner gave up),
/// as raw tables; a `rules` that is not a list of tables is reported.
pub(crate) fn rule_tables<'t>(r: &mut Reader, root: &'t Table) -> Vec<RawTable<'t>> {
    r.array_of_tables(root, "rules")
        .into_iter()
        .map(|t| RawTable::from_table(t, |span| r.line(span)))
        .collect()
}

impl RulesDefaults {
    /// Reads `[rules_defaults]` (optional).
    pub(crate) fn read(r: &mut Reader, root: &Table) -> RulesDefaults {
        let Some(t) = r.table(root, "rules_defaults") else {
            return RulesDefaults::default();
        };
        r.known_keys(t, "rules_defaults", RULES_DEFAULTS_KEYS);
        RulesDefaults {
            exclude: r.string(t, "rules_defaults", "exclude"),
            muted_authors: r.string_array(t, "rules_defaults", "muted_authors"),
            muted_sites: r.string_array(t, "rules_defaults", "muted_sites"),
            languages: read_languages(r, t, "rules_defaults"),
        }
    }
}

/// A `languages` list (`[rules_defaults]`, or a source's, `key` naming the table): each entry
/// a code language detection can answer, so a typo ("english", "ger") is refused at its line
/// with the fix rather than silently dropping every post. Lower case, without repeats.
pub(crate) fn read_languages(r: &mut Reader, t: &Table, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for code in r.string_array(t, key, "languages") {
        let lower = code.trim().to_ascii_lowercase();
        let problem = if lang::is_known(&lower) {
            if !out.contains(&lower) {
                out.push(lower);
            }
            continue;
        } else if lower.contains(['-', '_']) && lang::is_known(&lang::primary(&lower)) {
            format!(
                "{code:?} names a region; list languages only, e.g. languages = [{:?}]",
                lang::primary(&lower)
            )
        } else {
            format!(
                "{code:?} is not a language code; use two-letter ISO 639-1 codes such as languages = [\"en\", \"de\"] (known: {})",
                lang::known_codes().collect::<Vec<_>>().join(", ")
            )
        };
        let line = r.key_line(t, "languages");
        r.problem(line, &format!("{key}.languages"), problem);
    }
    out
}

/// Compiles every rule with the global exclusions, reporting each bad one at the line of its
/// `query` (or of `[rules_defaults].exclude`), and each lint as a warning there.
pub(crate) fn compile(
    r: &mut Reader,
    root: &Table,
    rules: &[RuleConfig],
    places: &RulePlaces,
    defaults: &RulesDefaults,
) -> Option<RuleSet> {
    let d = Defaults {
        exclude: defaults.exclude.as_deref(),
        muted_authors: defaults.muted_authors.iter().map(String::as_str).collect(),
        muted_sites: defaults.muted_sites.iter().map(String::as_str).collect(),
        languages: defaults.languages.iter().map(String::as_str).collect(),
    };
    // Where `check` points for a rule's query: its line and key. Indexed by name only when
    // something is reported (looking each failing or warned rule up in the list would be
    // quadratic when many rules fail). The first rule of a name wins.
    let mut index_of: Option<HashMap<&str, usize>> = None;
    let mut place = |r: &Reader, rule: &str| -> (usize, String) {
        if rule == EXCLUDE_RULE_NAME {
            let line = root
                .get("rules_defaults")
                .and_then(Item::as_table)
                .map_or(1, |t| r.key_line(t, "exclude"));
            return (line, "rules_defaults.exclude".to_string());
        }
        let index_of = index_of.get_or_insert_with(|| {
            let mut m = HashMap::with_capacity(rules.len());
            for (i, rule) in rules.iter().enumerate() {
                m.entry(rule.name.as_str()).or_insert(i);
            }
            m
        });
        let (table, line) = index_of
            .get(rule)
            .and_then(|&i| places.0.get(i))
            .copied()
            .unwrap_or((0, 1));
        (line, format!("rules[{table}].query"))
    };
    match RuleSet::compile_with(
        rules.iter().map(|r| (r.name.as_str(), r.query.as_str())),
        &d,
    ) {
        Ok(set) => {
            for w in set.warnings() {
                let (line, key) = place(r, &w.rule);
                let message = if w.rule == EXCLUDE_RULE_NAME {
                    w.warning.to_string()
                } else {
                    w.to_string()
                };
                r.warning(line, &key, message);
            }
            Some(set)
        }
        Err(errors) => {
            for e in errors {
                let (line, key) = place(r, &e.rule);
                if e.rule == EXCLUDE_RULE_NAME {
                    r.problem(line, &key, e.error.to_string());
                } else {
                    r.problem(line, &key, e.to_string());
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_document, ConfigError, Problem};
    use std::path::Path;

    const RULES: &str = r#"
[store]
path = "data/x.sled"

[[rules]]
name = "acme"
query = '(acme OR "acme corp") AND NOT hiring'
alert = ["slack:#pr-alerts"]
priority = "high"
"#;

    /// Reads only the rule sections of `text`, as `settings` does, and compiles them.
    fn read(text: &str) -> Result<(Vec<RuleConfig>, RuleSet), Vec<Problem>> {
        let path = Path::new("t.toml");
        let doc = parse_document(text, path).unwrap();
        let mut r = Reader::new(text, &|_| None);
        let tables = rule_tables(&mut r, doc.as_table());
        let (rules, places) = RuleConfig::read_all(&mut r, &tables);
        let defaults = RulesDefaults::read(&mut r, doc.as_table());
        let set = compile(&mut r, doc.as_table(), &rules, &places, &defaults);
        match r.finish(path) {
            Ok(_) => Ok((rules, set.expect("compiled"))),
            Err(ConfigError::Invalid { problems, .. }) => Err(problems),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn missing_required_keys_point_at_their_table() {
        let problems = read("[store]\npath = \"x\"\n\n[[rules]]\nname = \"r\"\nquery = \"acme\"\n")
            .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "rules[0].alert");
        assert_eq!(problems[0].line, 4, "{problems:?}");
    }

    #[test]
    fn global_exclusions_apply_and_bad_ones_are_reported() {
        let text = format!("{RULES}\n[rules_defaults]\nexclude = 'giveaway'\nmuted_authors = [\"@spambot\"]\nmuted_sites = [\"spam.example\"]\n");
        let (_, matcher) = read(&text).unwrap();
        let doc = |text: &'static str, author: Option<&'static str>, url: Option<&'static str>| {
            crate::rules::Document {
                text,
                author,
                url,
                ..Default::default()
            }
        };
        assert_eq!(matcher.matches(&doc("acme rocks", None, None)).len(), 1);
        assert!(matcher
            .matches(&doc("acme giveaway", None, None))
            .is_empty());
        assert!(matcher
            .matches(&doc("acme rocks", Some("SpamBot"), None))
            .is_empty());
        assert!(matcher
            .matches(&doc("acme rocks", None, Some("https://www.spam.example/x")))
            .is_empty());

        let bad = format!("{RULES}\n[rules_defaults]\nexclude = 'giveaway AND'\n");
        let problems = read(&bad).unwrap_err();
        assert_eq!(problems[0].key, "rules_defaults.exclude", "{problems:?}");
        assert_eq!(problems[0].line, RULES.lines().count() + 3);
    }
}
