//! Length-aware text for chat platforms: cutting at grapheme boundaries with a visible "…",
//! and packing rendered markup into pieces that each fit a platform's limit without cutting
//! an escape (`&amp;`, `\*`), a mention or a link in half. It knows no platform's markup:
//! each renderer turns its text into [`Atom`]s and says how its platform counts length.

use unicode_segmentation::UnicodeSegmentation;

/// What a cut text ends with, so readers see that something is missing.
pub(crate) const ELLIPSIS: &str = "…";

/// The most a person can type into a dialog's note (the Resolve dialog), on Slack and Discord
/// alike. The note goes whole into the alert's thread (over several sections or messages if
/// need be) and in part onto the root message; 2,900 stays under Slack's input cap of 3,000
/// and leaves room for the "✅ @name resolved this — “…”" around it, so a typed note
/// usually fills one Slack section and never more than two.
pub(crate) const NOTE_INPUT_MAX: usize = 2900;
/// The most a person can type as a reason ("job ad", "not our Acme"): a few words.
pub(crate) const REASON_INPUT_MAX: usize = 500;

/// How a platform counts the length of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Unicode code points: Discord's API counts these (it runs on Python 3; Discord staff in
    /// discord/discord-api-docs#1315: "the API calculates length based on the number of
    /// codepoints").
    Chars,
    /// UTF-16 code units. Slack documents its limits in "characters" without saying which;
    /// UTF-16 units are never fewer than code points, so a text within a limit counted this
    /// way is within it counted either way.
    Utf16,
}

impl Unit {
    pub(crate) fn len(self, s: &str) -> usize {
        match self {
            Unit::Chars => s.chars().count(),
            Unit::Utf16 => s.encode_utf16().count(),
        }
    }
}

/// Cuts `s` to at most `max` units, only between grapheme clusters (an emoji ZWJ sequence or
/// a letter with its combining marks stays whole), ending in "…" when it cut. A single
/// cluster longer than the room left is dropped whole.
pub(crate) fn truncate(s: &str, max: usize, unit: Unit) -> String {
    if unit.len(s) <= max {
        return s.to_string();
    }
    let ellipsis = unit.len(ELLIPSIS);
    if max < ellipsis {
        return String::new();
    }
    let budget = max - ellipsis;
    let mut out = String::new();
    let mut used = 0;
    for g in s.graphemes(true) {
        let n = unit.len(g);
        if used + n > budget {
            break;
        }
        out.push_str(g);
        used += n;
    }
    out.truncate(out.trim_end().len());
    out.push_str(ELLIPSIS);
    out
}

/// A piece of rendered markup that is never cut: one escaped grapheme, a mention, a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Atom {
    pub(crate) text: String,
    /// The markup around a run of atoms (`*` for Slack bold, `**` for Discord bold, `` ` ``
    /// for code), or "" for none. A piece that splits a run closes and reopens it.
    pub(crate) wrap: &'static str,
}

impl Atom {
    pub(crate) fn plain(text: impl Into<String>) -> Atom {
        Atom {
            text: text.into(),
            wrap: "",
        }
    }

    fn is_space(&self) -> bool {
        self.text.chars().all(char::is_whitespace)
    }
}

/// The atoms of a text: one per grapheme cluster, each escaped by `escape`, so no cut can
/// split a cluster or an escape sequence.
pub(crate) fn atoms(s: &str, wrap: &'static str, escape: impl Fn(&str) -> String) -> Vec<Atom> {
    s.graphemes(true)
        .map(|g| Atom {
            text: escape(g),
            wrap,
        })
        .filter(|a| !a.text.is_empty())
        .collect()
}

/// Text packed into pieces that each fit a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packed {
    pub(crate) pieces: Vec<String>,
    /// Whether something did not fit and the last piece ends in "…".
    pub(crate) cut: bool,
}

/// Renders atoms: runs with the same `wrap` are wrapped once, with their leading and trailing
/// spaces outside the marks (Slack and Discord only format `*x*`, not `* x *`); runs of
/// spaces alone stay unwrapped.
pub(crate) fn render(atoms: &[Atom]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < atoms.len() {
        let wrap = atoms[i].wrap;
        let mut j = i;
        while j < atoms.len() && atoms[j].wrap == wrap {
            j += 1;
        }
        let run = &atoms[i..j];
        match run.iter().position(|a| !a.is_space()) {
            Some(first) if !wrap.is_empty() => {
                let last = run.iter().rposition(|a| !a.is_space()).unwrap_or(first);
                run[..first].iter().for_each(|a| out.push_str(&a.text));
                out.push_str(wrap);
                run[first..=last].iter().for_each(|a| out.push_str(&a.text));
                out.push_str(wrap);
                run[last + 1..].iter().for_each(|a| out.push_str(&a.text));
            }
            _ => run.iter().for_each(|a| out.push_str(&a.text)),
        }
        i = j;
    }
    out
}

/// Running length of a piece as `render` will produce it.
#[derive(Default)]
struct Measure {
    len: usize,
    wrap: &'static str,
    run_has_text: bool,
}

impl Measure {
    /// The length with `a` appended, and the state after it.
    fn with(&self, a: &Atom, unit: Unit) -> Measure {
        let mut len = self.len + unit.len(&a.text);
        let same_run = self.len > 0 && a.wrap == self.wrap;
        let mut run_has_text = same_run && self.run_has_text;
        if !a.is_space() && !run_has_text {
            len += 2 * unit.len(a.wrap);
            run_has_text = true;
        }
        Measure {
            len,
            wrap: a.wrap,
            run_has_text,
        }
    }
}

/// Packs `atoms` into at most `max_pieces` pieces of at most `limit` units each. A piece
/// breaks after a space or line break in its second half where there is one, else between
/// two atoms. When the atoms do not fit, the last piece ends in "…" (`cut`); an atom larger
/// than a whole piece is replaced by "…".
pub(crate) fn pack(atoms: &[Atom], limit: usize, max_pieces: usize, unit: Unit) -> Packed {
    let room = limit.saturating_sub(unit.len(ELLIPSIS));
    let mut pieces: Vec<String> = Vec::new();
    let mut cut = false;
    let mut current: Vec<Atom> = Vec::new();
    let mut measure = Measure::default();
    let mut queue: std::collections::VecDeque<Atom> = atoms.iter().cloned().collect();
    while let Some(atom) = queue.pop_front() {
        // Pieces never start with spaces or line breaks.
        if current.is_empty() && atom.is_space() && !pieces.is_empty() {
            continue;
        }
        let next = measure.with(&atom, unit);
        if next.len <= room {
            current.push(atom);
            measure = next;
            continue;
        }
        if current.is_empty() {
            // Too large for any piece on its own.
            cut = true;
            let stand_in = Atom {
                text: ELLIPSIS.into(),
                wrap: "",
            };
            if Measure::default().with(&stand_in, unit).len <= room {
                current.push(stand_in);
                measure = Measure::default().with(&current[0], unit);
            }
            continue;
        }
        if pieces.len() + 1 >= max_pieces {
            cut = true;
            break;
        }
        // Break after the last line break in the second half of the piece, else after the
        // last space there, else here.
        let half = current.len() / 2;
        let last = |want: fn(&Atom) -> bool| {
            current
                .iter()
                .rposition(want)
                .filter(|&p| p >= half && p + 1 < current.len())
        };
        let split = last(|a| a.text.contains('\n'))
            .or_else(|| last(Atom::is_space))
            .map_or(current.len(), |p| p + 1);
        let carried: Vec<Atom> = current.split_off(split);
        pieces.push(render(&current).trim_end().to_string());
        current.clear();
        measure = Measure::default();
        queue.push_front(atom);
        for a in carried.into_iter().rev() {
            queue.push_front(a);
        }
    }
    if cut {
        let mut last = render(&current).trim_end().to_string();
        if !last.ends_with(ELLIPSIS) {
            last.push_str(ELLIPSIS);
        }
        pieces.push(last);
    } else if !current.is_empty() || pieces.is_empty() {
        pieces.push(render(&current));
    }
    Packed { pieces, cut }
}

/// `atoms` rendered and cut to one piece of at most `limit` units.
pub(crate) fn fit(atoms: &[Atom], limit: usize, unit: Unit) -> String {
    pack(atoms, limit, 1, unit).pieces.remove(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = "👩\u{200d}👩\u{200d}👧\u{200d}👦";
    const E_ACUTE: &str = "e\u{301}";

    #[test]
    fn truncation_never_splits_a_grapheme() {
        let s = format!("ab{FAMILY}{FAMILY}");
        for max in 0..=Unit::Utf16.len(&s) {
            for unit in [Unit::Chars, Unit::Utf16] {
                let t = truncate(&s, max, unit);
                assert!(unit.len(&t) <= max, "{t:?} over {max}");
                let core = t.trim_end_matches(ELLIPSIS);
                assert!(s.starts_with(core), "{t:?}");
                assert!(
                    core.graphemes(true)
                        .all(|g| g == "a" || g == "b" || g == FAMILY),
                    "split cluster in {t:?}"
                );
            }
        }
        let accents = E_ACUTE.repeat(10);
        let t = truncate(&accents, 6, Unit::Chars);
        assert_eq!(t, format!("{}{ELLIPSIS}", E_ACUTE.repeat(2)));
    }

    #[test]
    fn short_text_is_left_alone_and_cut_text_shows_it() {
        assert_eq!(truncate("short", 10, Unit::Chars), "short");
        assert_eq!(truncate("héllo wörld", 6, Unit::Chars), "héllo…");
        assert_eq!(truncate("hello world", 7, Unit::Chars), "hello…");
    }

    #[test]
    fn utf16_counts_astral_characters_twice() {
        assert_eq!(Unit::Chars.len("😀"), 1);
        assert_eq!(Unit::Utf16.len("😀"), 2);
        assert_eq!(Unit::Utf16.len(FAMILY), 11);
    }

    fn amp(g: &str) -> String {
        g.replace('&', "&amp;")
    }

    #[test]
    fn packing_never_cuts_an_escape_and_stays_within_the_limit() {
        let a = atoms(&"&".repeat(100), "", amp);
        let p = pack(&a, 23, 1, Unit::Chars);
        assert!(p.cut);
        assert_eq!(p.pieces, vec![format!("{}…", "&amp;".repeat(4))]);
        let p = pack(&a, 23, 100, Unit::Chars);
        assert!(!p.cut);
        assert!(p.pieces.iter().all(|s| s.chars().count() <= 23));
        assert_eq!(p.pieces.concat(), "&amp;".repeat(100));
    }

    #[test]
    fn pieces_break_at_spaces_and_wraps_close_and_reopen() {
        let mut a = atoms("one two three four", "", |g| g.to_string());
        a.extend(atoms(" bold words here", "*", |g| g.to_string()));
        let p = pack(&a, 12, 10, Unit::Chars);
        assert!(!p.cut, "{p:?}");
        assert!(p.pieces.iter().all(|s| s.chars().count() <= 12), "{p:?}");
        assert_eq!(p.pieces[0], "one two");
        assert!(p.pieces.iter().any(|s| s.starts_with("*words")), "{p:?}");
        for s in &p.pieces {
            assert_eq!(s.matches('*').count() % 2, 0, "unbalanced {s:?}");
        }
    }

    #[test]
    fn a_wrapped_run_keeps_spaces_outside_its_marks() {
        let mut a = atoms("by", "", |g| g.to_string());
        a.extend(atoms(" Ann ", "*", |g| g.to_string()));
        a.extend(atoms("!", "", |g| g.to_string()));
        assert_eq!(render(&a), "by *Ann* !");
        let whole = pack(&a, 100, 1, Unit::Chars);
        assert_eq!(whole.pieces, vec!["by *Ann* !".to_string()]);
    }

    #[test]
    fn an_atom_too_large_for_any_piece_becomes_an_ellipsis() {
        let a = vec![
            Atom::plain("ok "),
            Atom::plain("x".repeat(50)),
            Atom::plain(" end"),
        ];
        let p = pack(&a, 10, 5, Unit::Chars);
        assert!(p.cut);
        assert!(p.pieces.iter().all(|s| s.chars().count() <= 10), "{p:?}");
        assert!(p.pieces.concat().contains(ELLIPSIS));
    }
}

/// Generators for the renderers' property tests: hostile, huge and oddly composed text.
#[cfg(test)]
pub(crate) mod testgen {
    use crate::chat::AlertView;
    use crate::model::{AlertId, AlertState, Note, Priority};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    /// Text mixing what breaks renderers: emoji ZWJ sequences, combining marks, mention and
    /// markup syntax, entities, line breaks, astral characters; sometimes thousands of
    /// characters long.
    pub(crate) fn hostile() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("👩\u{200d}👩\u{200d}👧\u{200d}👦".to_string()),
            Just("e\u{301}".to_string()),
            Just("<!channel>".to_string()),
            Just("<!here>".to_string()),
            Just("<@U0BAD>".to_string()),
            Just("@everyone".to_string()),
            Just("@here".to_string()),
            Just("<@&123>".to_string()),
            Just("&amp;".to_string()),
            Just("&".to_string()),
            Just("<".to_string()),
            Just(">".to_string()),
            Just("*".to_string()),
            Just("`".to_string()),
            Just("\\".to_string()),
            Just("#".to_string()),
            Just("-".to_string()),
            Just("|".to_string()),
            Just("\n".to_string()),
            Just(" ".to_string()),
            Just("😀".to_string()),
            "[a-zA-Z]{1,12}",
            any::<char>().prop_map(String::from),
        ];
        (prop::collection::vec(piece, 0..400), 1..12usize)
            .prop_map(|(pieces, times)| pieces.concat().repeat(times))
    }

    /// A URL: ordinary, or a few thousand characters long, or not http at all.
    pub(crate) fn url() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("https://example.com/post?id=1&x=<2>|y".to_string())),
            (1..6000usize).prop_map(|n| Some(format!("https://feed.example/{}", "a".repeat(n)))),
            hostile().prop_map(|s| Some(format!("https://x.test/{s}"))),
            hostile().prop_map(Some),
        ]
    }

    pub(crate) fn state() -> impl Strategy<Value = AlertState> {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap();
        prop_oneof![
            Just(AlertState::Open),
            Just(AlertState::Claimed {
                by: "slack:U0OK".into(),
                at,
            }),
            prop::option::of(hostile()).prop_map(move |note| AlertState::Resolved {
                by: "discord:42".into(),
                at,
                note,
            }),
            prop::option::of(hostile()).prop_map(move |reason| AlertState::Ignored {
                by: "slack:U0OK".into(),
                at,
                reason,
            }),
            hostile().prop_map(move |by| AlertState::Snoozed { by, until: at }),
        ]
    }

    pub(crate) fn view() -> impl Strategy<Value = AlertView> {
        (
            prop::collection::vec(hostile(), 1..4),
            (hostile(), hostile(), prop::option::of(hostile())),
            (prop::option::of(hostile()), hostile(), hostile()),
            url(),
            state(),
            any::<u64>(),
        )
            .prop_map(
                |(rules, (source, kind, author), (title, excerpt, hl), url, state, id)| AlertView {
                    id: AlertId(id),
                    rules,
                    source,
                    source_kind: kind,
                    author,
                    author_reach: Some(id),
                    headline: title.clone().unwrap_or_else(|| excerpt.clone()),
                    title,
                    matched: vec![hl.clone(), excerpt.clone()],
                    excerpt: vec![(excerpt, false), (hl, true)],
                    url,
                    // Every star count, so the limit tests cover the rating line too.
                    rating: Some((id % 5) as u8 + 1),
                    priority: Priority::Critical,
                    sentiment: -0.5,
                    negative: true,
                    human_negative: None,
                    relevance: None,
                    complaint: id % 2 == 0,
                    question: id % 3 == 0,
                    unscored_lang: None,
                    state,
                    created_at: Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap(),
                },
            )
    }

    /// A note with hostile text and, sometimes, more Promote buttons than any platform shows
    /// (each renderer keeps `NOTE_BUTTONS_MAX`).
    pub(crate) fn note() -> impl Strategy<Value = Note> {
        (
            hostile(),
            hostile(),
            hostile(),
            hostile(),
            url(),
            hostile(),
            0usize..40,
        )
            .prop_map(|(a, b, c, d, url, label, buttons)| {
                let mut n = Note::new()
                    .text("📝 ")
                    .user("slack:U0OK")
                    .text(" ")
                    .user("discord:42")
                    .text(": ")
                    .text(a)
                    .bold(b)
                    .newline()
                    .code(c)
                    .user(format!("rss:{d}"))
                    .ping(d);
                if let Some(u) = url {
                    n = n.link(u, label.clone());
                }
                for i in 0..buttons {
                    n = n.button(
                        crate::chat::buttons::PROMOTE,
                        crate::model::AlertId(i as u64 + 1),
                        format!("{label} #{i}"),
                    );
                }
                n
            })
    }
}
