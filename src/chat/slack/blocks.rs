//! Block Kit for Slack: alerts, notes and digests as blocks within Slack's documented limits,
//! untrusted text escaped everywhere (the fallback `text` too). It renders only; posting is
//! the platform's (`mod.rs`).

use super::*;
use crate::chat::escape::slack_plain;
use crate::chat::view::{priority_words, state_look, Emphasis, HEADLINE_CHARS};

/// Block Kit and Web API limits, as Slack documents them (docs.slack.dev/reference/…):
/// section block `text` ≤ 3,000 characters (block-kit/blocks/section-block); a context
/// block's text element is a text object, ≤ 3,000 (block-kit/composition-objects/text-object)
/// and ≤ 10 elements (block-kit/blocks/context-block).
pub(crate) const SECTION_TEXT_MAX: usize = 3000;
/// ≤ 50 blocks in a message, 100 in a modal (block-kit/blocks).
#[cfg(test)]
pub(crate) const MESSAGE_BLOCKS_MAX: usize = 50;
/// `block_id` and `action_id` ≤ 255 characters, unique in a message; "if a message is updated,
/// use a new block_id" (block-kit/blocks, "block_id").
pub(crate) const BLOCK_ID_MAX: usize = 255;
/// chat.postMessage: Slack truncates message `text` past 40,000 characters (methods/
/// chat.postMessage, "Truncating content"); the fallback `text` we send is a summary well
/// below that, and below the 4,000 characters Slack recommends per message.
pub(crate) const FALLBACK_TEXT_MAX: usize = 3000;
/// Modal `title`, `submit` and `close` ≤ 24 characters (views/modal-views).
pub(crate) const MODAL_TITLE_MAX: usize = 24;
/// `plain_text_input` `max_length` must be 1..=3,000 (block-kit/block-elements/
/// plain-text-input-element).
#[cfg(test)]
pub(crate) const INPUT_MAX_LENGTH_MAX: usize = 3000;
/// Sections one message carries at most. Slack also refuses a message whose blocks hold
/// about 13,000 characters in all (`msg_blocks_too_long`, slackapi/bolt-js#2509), far below
/// 50 × 3,000, so a note fills at most four full sections (12,000).
pub(super) const NOTE_SECTIONS_MAX: usize = 4;
/// A name or heading (`Part::Bold`, someone's display name) is cut at this many characters:
/// it is a label, and a 3,000-character "author name" is noise, not content.
pub(super) const NAME_MAX: usize = 200;
/// A link whose URL is longer than this is not put inside a sentence, where it would crowd
/// out the text within the section limit; it is shown as its label and address instead.
pub(super) const INLINE_URL_MAX: usize = 1000;

/// How Slack's limits are counted here (see `Unit::Utf16`).
pub(super) const UNIT: Unit = Unit::Utf16;

/// mrkdwn for one block, built from atoms so it can be cut or split without breaking an
/// escape, a mention or a link.
#[derive(Default)]
pub(super) struct Mrkdwn(Vec<Atom>);

impl Mrkdwn {
    /// Our own text and markup; never cut inside.
    fn ours(mut self, s: &str) -> Mrkdwn {
        self.0.push(Atom::plain(s));
        self
    }
    /// Untrusted text, escaped, at most `max` characters.
    fn text(self, s: &str, max: usize) -> Mrkdwn {
        self.styled(s, max, "")
    }
    fn styled(mut self, s: &str, max: usize, wrap: &'static str) -> Mrkdwn {
        let s = text::truncate(s, max, Unit::Chars);
        self.0.extend(text::atoms(&s, wrap, slack_text));
        self
    }
    fn fit(&self, max: usize) -> String {
        text::fit(&self.0, max, UNIT)
    }
}

/// The digest as section blocks: the title in bold, then the body split into sections,
/// preferably at line ends; the first block carries the delivery marker for `find_digest`.
pub(crate) fn digest_blocks(digest: &DigestPost, delivery: &str) -> Vec<SlackBlock> {
    let mut atoms = Mrkdwn::default()
        .styled(&digest.title, NAME_MAX, "*")
        .ours("\n")
        .0;
    atoms.extend(note_atoms(&digest.body));
    text::pack(&atoms, SECTION_TEXT_MAX, NOTE_SECTIONS_MAX, UNIT)
        .pieces
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let block = SlackSectionBlock::new().with_text(md!(text));
            let block = if i == 0 {
                block.with_block_id(note_block_id(delivery).into())
            } else {
                block
            };
            block.into()
        })
        .chain(note_actions(&digest.body))
        .collect()
}

/// Whether one of `blocks` carries `block_id` (our delivery marker).
pub(super) fn has_block_id(blocks: &Option<Vec<SlackBlock>>, block_id: &str) -> bool {
    blocks.iter().flatten().any(|b| {
        serde_json::to_value(b)
            .ok()
            .is_some_and(|v| v["block_id"] == block_id)
    })
}

/// The `block_id` that marks a note with its delivery id, so it can be found after a crash.
pub(super) fn note_block_id(delivery: &str) -> String {
    text::truncate(&format!("mdnote-{delivery}"), BLOCK_ID_MAX, Unit::Chars)
}

/// A `block_id` that is new on every render (Slack asks for new ones when a message is
/// updated), starting with `prefix` so tests and people can still recognise the block.
pub(super) fn fresh_block_id(prefix: &str) -> String {
    format!("{prefix}-{:08x}", fastrand::u32(..))
}

/// A note as Slack mrkdwn, whole. Untrusted text is escaped; only `User` of a Slack actor
/// and `Ping` become mentions, on purpose. What is sent is cut to Slack's limits by
/// [`note_sections`].
pub fn render_note(note: &Note) -> String {
    text::render(&note_atoms(note))
}

/// A note as a whole message: up to four sections and a fallback `text` for notifications,
/// the first section marked with `block_id` when given.
pub(crate) fn note_content(note: &Note, block_id: Option<String>) -> SlackMessageContent {
    let atoms = note_atoms(note);
    let sections = text::pack(&atoms, SECTION_TEXT_MAX, NOTE_SECTIONS_MAX, UNIT).pieces;
    let blocks: Vec<SlackBlock> = sections
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let block = SlackSectionBlock::new().with_text(md!(s));
            match (&block_id, i) {
                (Some(id), 0) => block.with_block_id(id.clone().into()).into(),
                _ => block.into(),
            }
        })
        .collect();
    SlackMessageContent::new()
        .with_text(text::fit(&atoms, FALLBACK_TEXT_MAX, UNIT))
        .with_blocks(blocks.into_iter().chain(note_actions(note)).collect())
}

/// A button's text: `plain_text`, at most 75 characters (block-kit/block-elements/
/// button-element).
pub(crate) const BUTTON_TEXT_MAX: usize = 75;

/// A note's buttons as one actions block below its sections (`None` without buttons): each
/// `action_id` `<action>:<alert>` (unique in the message, as Slack requires) with the alert id
/// as its `value`, at most `NOTE_BUTTONS_MAX` (an actions block holds 25 elements).
fn note_actions(note: &Note) -> Option<SlackBlock> {
    let elements: Vec<SlackActionBlockElement> = note
        .buttons()
        .take(crate::chat::NOTE_BUTTONS_MAX)
        .map(|(action, alert, label)| {
            SlackActionBlockElement::Button(
                SlackBlockButtonElement::new(
                    plain(text::fit(&plain_atoms(label), BUTTON_TEXT_MAX, UNIT)).into(),
                )
                .with_action_id(crate::chat::note_button_id(action, alert).into())
                .with_value(alert.to_string())
                .with_style(SlackBlockButtonStyle::Primary),
            )
        })
        .collect();
    (!elements.is_empty()).then(|| SlackActionsBlock::new(elements).into())
}

/// The private answer to a slash command as the HTTP response body.
pub(crate) fn ephemeral_answer(note: &Note) -> serde_json::Value {
    let mut v = serde_json::to_value(note_content(note, None)).unwrap_or_default();
    v["response_type"] = "ephemeral".into();
    v
}

/// The atoms of a note: escaped graphemes, and mentions and links whole.
pub(super) fn note_atoms(note: &Note) -> Vec<Atom> {
    let mut out = Mrkdwn::default();
    for part in &note.0 {
        out = match part {
            Part::Text(t) => out.text(t, usize::MAX),
            Part::Bold(t) => out.styled(t, NAME_MAX, "*"),
            Part::Code(t) => {
                out.0
                    .extend(text::atoms(t, "`", crate::chat::escape::slack_code));
                out
            }
            Part::User(u) => match slack_user_id(u) {
                Some(id) => out.ours(&format!("<@{id}>")),
                None => out.text(actor_name(u), NAME_MAX),
            },
            Part::Ping(p) => match slack_ping(p) {
                Some(ping) => out.ours(&ping),
                None => out.text(p, NAME_MAX),
            },
            Part::Link { url, label } => match slack_url(url) {
                Some(u) if UNIT.len(&u) <= INLINE_URL_MAX => {
                    let label = slack_text(&text::truncate(label, NAME_MAX, Unit::Chars));
                    out.ours(&format!("<{u}|{label}>"))
                }
                // Too long to link inside a sentence: the label, and the address as text.
                Some(_) => out
                    .text(label, NAME_MAX)
                    .ours(" (")
                    .text(url, INLINE_URL_MAX)
                    .ours(")"),
                None => out.text(label, NAME_MAX),
            },
            Part::Newline => out.ours("\n"),
            // Shown below the text, in `note_actions`.
            Part::Button { .. } => out,
        };
    }
    out.0
}

/// The Slack user id of a `slack:U…` actor.
pub(super) fn slack_user_id(actor: &str) -> Option<&str> {
    actor.strip_prefix("slack:").filter(|id| is_slack_id(id))
}

/// An actor's name without its platform prefix.
pub(super) fn actor_name(actor: &str) -> &str {
    actor.split_once(':').map_or(actor, |x| x.1)
}

/// `slack:U0123` → `<@U0123>`; anyone else is shown by name, escaped.
pub(crate) fn slack_user(actor: &str) -> String {
    match slack_user_id(actor) {
        Some(id) => format!("<@{id}>"),
        None => slack_text(&text::truncate(actor_name(actor), NAME_MAX, Unit::Chars)),
    }
}

/// A deliberate ping: user group `S…`, channel `C…`/`G…`, user `U…`/`W…`; names stay text.
pub(super) fn slack_ping(who: &str) -> Option<String> {
    let id = who.trim_start_matches('@');
    is_slack_id(id).then(|| match id.as_bytes()[0] {
        b'S' => format!("<!subteam^{id}>"),
        b'C' | b'G' => format!("<#{id}>"),
        _ => format!("<@{id}>"),
    })
}

pub(super) fn is_slack_id(s: &str) -> bool {
    s.len() >= 2
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// `C…`, `G…` and `D…` ids are used as they are; anything else is a channel name.
pub(super) fn is_channel_id(channel: &str) -> bool {
    channel.len() >= 9
        && matches!(channel.as_bytes()[0], b'C' | b'G' | b'D')
        && channel
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Slack's header block holds at most 150 characters of `plain_text` (block-kit/blocks/
/// header-block).
pub(crate) const HEADER_TEXT_MAX: usize = 150;

/// Untrusted text as the atoms of a `plain_text` object: only `&<>` escaped.
fn plain_atoms(s: &str) -> Vec<Atom> {
    text::atoms(s, "", slack_plain)
}

/// A `plain_text` object that Slack shows exactly as given: no `:shortcode:` emoji either.
fn plain(text: String) -> SlackBlockPlainText {
    SlackBlockPlainText::new(text).with_emoji(false)
}

/// The alert as Slack Block Kit, fallback text and metadata, headline first:
///
/// 1. header (`plain_text`): the state marker and what was said;
/// 2. context (`plain_text`): who said it where, the handle exactly as written;
/// 3. section: the quoted excerpt, the rule and the words it matched, priority and sentiment
///    in words;
/// 4. context: the numbers (sentiment score, alert id);
/// 5. section: the link;
/// 6. context `state-…`: the state line, with the owner;
/// 7. actions `actions-…`: the buttons the state allows.
///
/// Every piece of untrusted text is escaped (`slack_plain` in `plain_text`, `slack_text` in
/// mrkdwn), the fallback text included, and cut to its block's limit at grapheme boundaries.
/// Block ids are new on every render (Slack wants new ones on `chat.update`).
pub(crate) fn render_alert(view: &AlertView) -> SlackMessageContent {
    let look = state_look(&view.state);
    let rules = view.rules.join(", ");

    let mut head = vec![Atom::plain(format!("{} ", look.emoji))];
    head.extend(plain_atoms(&view.headline));
    let head = text::fit(&head, HEADER_TEXT_MAX, UNIT);
    let who = text::fit(&plain_atoms(&view.who_line()), SECTION_TEXT_MAX, UNIT);

    let mut why = Mrkdwn::default();
    if !view.excerpt.is_empty() {
        why = why.ours("> ");
        for (run, hl) in &view.excerpt {
            why = why.styled(run, usize::MAX, if *hl { "*" } else { "" });
        }
        why = why.ours("\n");
    }
    why = why.ours("Matched rule ").styled(&rules, 300, "*");
    for (i, w) in view.matched_words().iter().enumerate() {
        why = why
            .ours(if i == 0 { ": " } else { ", " })
            .styled(w, 100, "*");
    }
    let (priority, sentiment, stars) = view.urgency_words();
    why = why.ours(&format!("\n*{priority}* · {sentiment}"));
    if let Some(stars) = stars {
        why = why.ours(&format!(" · rating {stars}"));
    }

    // A link that fits is linked; a very long one is shown as text (cut visibly) so people
    // can still see where the post is.
    let link = view.url.as_deref().and_then(slack_url).map(|u| {
        if UNIT.len(&u) + 20 <= SECTION_TEXT_MAX {
            format!("🔗 <{u}|Open the post>")
        } else {
            Mrkdwn::default()
                .ours("🔗 Link too long for Slack: ")
                .text(view.url.as_deref().unwrap_or_default(), usize::MAX)
                .fit(SECTION_TEXT_MAX)
        }
    });

    let state = view.state_line(slack_user, slack_text);
    // The detail and the state line are bounded by construction (a quoted note is at most
    // STATE_NOTE_CHARS characters, a name NAME_MAX, so at most about 2,100 units once
    // escaped); the cut is a last guard that never applies in practice.
    let context = |text: String| {
        SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
            SlackBlockMarkDownText::new(text::truncate(&text, SECTION_TEXT_MAX, UNIT)),
        )])
    };
    let buttons: Vec<SlackActionBlockElement> = view
        .buttons()
        .iter()
        .map(|b| {
            let style = match b.emphasis {
                Emphasis::Main => Some(SlackBlockButtonStyle::Primary),
                Emphasis::Danger => Some(SlackBlockButtonStyle::Danger),
                Emphasis::Positive | Emphasis::Plain => None,
            };
            SlackActionBlockElement::Button(
                SlackBlockButtonElement::new(pt!(b.label))
                    .with_action_id(b.id.into())
                    .with_value(view.id.to_string())
                    .opt_style(style),
            )
        })
        .collect();

    let mut blocks: Vec<SlackBlock> = vec![
        SlackHeaderBlock::new(plain(head).into()).into(),
        SlackContextBlock::new(vec![SlackContextBlockElement::Plain(plain(who))]).into(),
        SlackSectionBlock::new()
            .with_text(md!(why.fit(SECTION_TEXT_MAX)))
            .into(),
        context(view.detail_line()).into(),
    ];
    if let Some(link) = link {
        blocks.push(SlackSectionBlock::new().with_text(md!(link)).into());
    }
    blocks.extend([
        context(state)
            .with_block_id(fresh_block_id(&format!("state-{}", view.id)).into())
            .into(),
        SlackActionsBlock::new(buttons)
            .with_block_id(fresh_block_id(&format!("actions-{}", view.id)).into())
            .into(),
    ]);

    let mut fallback = Mrkdwn::default()
        .ours(&format!("{} ", look.emoji))
        .text(&view.headline, HEADLINE_CHARS);
    if !view.excerpt.is_empty() {
        fallback = fallback
            .ours(" — “")
            .text(&view.excerpt_text(), 150)
            .ours("”");
    }
    let fallback = fallback
        .ours(&format!(
            " · {} · {} · #{}",
            priority_words(view.priority),
            look.word,
            view.id
        ))
        .fit(FALLBACK_TEXT_MAX);
    let metadata = SlackMessageMetadata {
        event_type: ALERT_EVENT_TYPE.to_string(),
        event_payload: Some(HashMap::from([(
            "alert_id".to_string(),
            view.id.to_string(),
        )])),
    };
    SlackMessageContent::new()
        .with_text(fallback)
        .with_blocks(blocks)
        .with_metadata(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertState;

    fn view(text: &str) -> AlertView {
        AlertView {
            id: AlertId(7),
            rules: vec!["acme".into()],
            source: "hn".into(),
            source_kind: "rss".into(),
            author: Some("<!everyone>".into()),
            title: Some("*Big* <news>".into()),
            headline: "*Big* <news>".into(),
            excerpt: vec![(text.into(), false)],
            url: Some("https://x.test/a|<!here>".into()),
            ..AlertView::sample()
        }
    }

    #[test]
    fn hostile_text_is_escaped_everywhere_including_fallback() {
        let content = render_alert(&view("<!channel> <@U123> &lt;b&gt; *bold*"));
        let json = serde_json::to_string(&content).unwrap();
        for bad in ["<!channel>", "<@U123>", "<!everyone>", "<!here>", "<news>"] {
            assert!(!json.contains(bad), "{bad} leaked into {json}");
        }
        assert!(json.contains("&lt;!channel&gt;"));
        assert!(json.contains("&amp;lt;b&amp;gt;"));
        assert!(content.text.unwrap().contains("&lt;@U123&gt;"));
    }

    #[test]
    fn the_stars_are_on_the_facts_line_when_rated() {
        let plain = serde_json::to_string(&render_alert(&view("acme broke"))).unwrap();
        assert!(!plain.contains("rating"), "{plain}");
        let rated = serde_json::to_string(&render_alert(&AlertView {
            rating: Some(2),
            ..view("acme broke")
        }))
        .unwrap();
        assert!(
            rated.contains("negative — complaint · rating ★★☆☆☆ 2/5"),
            "{rated}"
        );
    }

    #[test]
    fn alert_has_id_buttons_and_metadata() {
        let content = render_alert(&view("acme broke"));
        let json = serde_json::to_value(&content).unwrap();
        let text = json.to_string();
        assert!(text.contains("#7"));
        let actions = json["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap();
        let labels: Vec<_> = actions["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["text"]["text"].as_str().unwrap(),
                    e["value"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            labels,
            vec![
                ("Claim", "7"),
                ("Resolve", "7"),
                ("Snooze", "7"),
                ("Not relevant", "7")
            ]
        );
        assert_eq!(json["metadata"]["event_type"], ALERT_EVENT_TYPE);
        assert_eq!(json["metadata"]["event_payload"]["alert_id"], "7");
    }

    /// Every `&` starts an entity and every `<` one of our own mentions or links: nothing
    /// from untrusted text can ping or link.
    fn assert_safe(text: &str) {
        let mut rest = text;
        while let Some(i) = rest.find(['&', '<', '>']) {
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix('&') {
                assert!(
                    ["&amp;", "&lt;", "&gt;"]
                        .iter()
                        .any(|e| tail.starts_with(e)),
                    "bare & in {}",
                    text.chars().take(300).collect::<String>()
                );
                rest = after;
                continue;
            }
            let line_start = i == 0
                && (rest.len() == text.len() || text[..text.len() - rest.len()].ends_with('\n'))
                || rest[..i].ends_with('\n');
            if tail.starts_with("> ") && line_start {
                rest = &tail[1..];
                continue;
            }
            assert!(
                tail.starts_with('<'),
                "bare > in {}",
                text.chars().take(300).collect::<String>()
            );
            let end = tail.find('>').expect("unclosed <");
            let inner = &tail[1..end];
            assert!(
                inner == "@U0OK" || inner.starts_with("http"),
                "untrusted <{}>",
                inner.chars().take(300).collect::<String>()
            );
            assert!(!inner.contains('<'));
            rest = &tail[end + 1..];
        }
    }

    /// Checks one message against Slack's Block Kit and message limits.
    fn assert_within_limits(content: &SlackMessageContent) {
        let v = serde_json::to_value(content).unwrap();
        let blocks = v["blocks"].as_array().cloned().unwrap_or_default();
        assert!(blocks.len() <= MESSAGE_BLOCKS_MAX);
        let len16 = |s: &str| s.encode_utf16().count();
        let text = v["text"].as_str().unwrap_or_default();
        assert!(len16(text) <= FALLBACK_TEXT_MAX, "fallback {}", len16(text));
        assert_safe(text);
        let mut block_ids = std::collections::HashSet::new();
        let mut action_ids = std::collections::HashSet::new();
        let mut total = 0;
        for b in &blocks {
            if let Some(id) = b["block_id"].as_str() {
                assert!(id.chars().count() <= BLOCK_ID_MAX);
                assert!(block_ids.insert(id.to_string()), "duplicate block_id {id}");
            }
            let mut texts = vec![];
            if let Some(t) = b["text"]["text"].as_str() {
                texts.push(t);
            }
            if b["type"] == "header" {
                let t = b["text"]["text"].as_str().unwrap();
                assert_eq!(b["text"]["type"], "plain_text");
                assert!(len16(t) <= HEADER_TEXT_MAX, "header {}", len16(t));
            }
            let elements = b["elements"].as_array().cloned().unwrap_or_default();
            if b["type"] == "context" {
                assert!(elements.len() <= 10);
            }
            for e in &elements {
                if b["type"] == "context" {
                    texts.push(e["text"].as_str().unwrap());
                }
                if e["type"] == "button" {
                    assert!(e["text"]["text"].as_str().unwrap().chars().count() <= 75);
                    assert!(e["value"].as_str().unwrap().chars().count() <= 2000);
                    let id = e["action_id"].as_str().unwrap();
                    assert!(id.len() <= BLOCK_ID_MAX && action_ids.insert(id.to_string()));
                }
            }
            for t in texts {
                assert!(len16(t) <= SECTION_TEXT_MAX, "block text {} long", len16(t));
                assert!(!t.trim().is_empty(), "empty block text");
                assert_safe(t);
                total += len16(t);
            }
        }
        assert!(total <= 12_100, "blocks hold {total} characters");
    }

    /// A note's buttons (Promote in `/desk list held`) become one actions block below its
    /// text: `action_id` `desk_promote:<id>` (unique in the message), the id as `value`, at
    /// most 25; a note without buttons has no actions block.
    #[test]
    fn note_buttons_are_one_actions_block_of_at_most_25() {
        let mut note = Note::new().text("3 held back alerts");
        for i in 1..=30 {
            note = note.button(
                crate::chat::buttons::PROMOTE,
                AlertId(i),
                format!("Promote #{i}"),
            );
        }
        let v = serde_json::to_value(note_content(&note, None)).unwrap();
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2, "{v}");
        assert_eq!(blocks[1]["type"], "actions");
        let els = blocks[1]["elements"].as_array().unwrap();
        assert_eq!(els.len(), 25);
        assert_eq!(els[0]["action_id"], "desk_promote:1");
        assert_eq!(els[0]["value"], "1");
        assert_eq!(els[0]["text"]["text"], "Promote #1");
        assert_eq!(els[24]["action_id"], "desk_promote:25");
        assert_eq!(v["text"], "3 held back alerts", "the fallback is the text");
        let plain = serde_json::to_value(note_content(&Note::new().text("x"), None)).unwrap();
        assert_eq!(plain["blocks"].as_array().unwrap().len(), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn every_alert_fits_slack_and_escapes_untrusted_text(v in text::testgen::view()) {
            let content = render_alert(&v);
            assert_within_limits(&content);
            // Updates get new block ids every time.
            let ids = |c: &SlackMessageContent| serde_json::to_value(c).unwrap()["blocks"]
                .as_array().unwrap().iter()
                .filter_map(|b| b["block_id"].as_str().map(str::to_string))
                .collect::<Vec<_>>();
            let again = render_alert(&v);
            assert!(ids(&content).iter().all(|id| !ids(&again).contains(id)));
        }

        #[test]
        fn every_note_fits_slack_and_loses_nothing_that_fits(n in text::testgen::note()) {
            let content = note_content(&n, Some(note_block_id("7-1")));
            assert_within_limits(&content);
            let v = serde_json::to_value(&content).unwrap();
            let blocks = v["blocks"].as_array().unwrap();
            assert_eq!(blocks[0]["block_id"], "mdnote-7-1");
            let sections: Vec<&str> = blocks
                .iter()
                .filter(|b| b["type"] == "section")
                .map(|b| b["text"]["text"].as_str().unwrap())
                .collect();
            // The buttons follow the text, one actions block of at most 25.
            let buttons = n.buttons().count();
            match blocks.last() {
                Some(b) if b["type"] == "actions" => {
                    assert_eq!(b["elements"].as_array().unwrap().len(), buttons.min(25));
                }
                _ => assert_eq!(buttons, 0),
            }
            let whole = render_note(&n);
            let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace() && *c != '*' && *c != '`').collect::<String>();
            if !sections.last().unwrap().ends_with(text::ELLIPSIS) {
                assert_eq!(squash(&sections.concat()), squash(&whole));
            }
        }
    }

    fn long_note(len: usize) -> Note {
        Note::new()
            .text("📝 ")
            .user("slack:U0OK")
            .text(": ")
            .text("a & b ".repeat(len / 6))
    }

    #[test]
    fn a_desk_note_of_2990_characters_is_posted_whole_over_two_sections() {
        let n = long_note(2990);
        let content = note_content(&n, Some(note_block_id("1-2")));
        assert_within_limits(&content);
        let v = serde_json::to_value(&content).unwrap();
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2, "{v}");
        let all: String = blocks
            .iter()
            .map(|b| b["text"]["text"].as_str().unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(all.matches("a &amp; b").count(), 2990 / 6);
        assert!(!all.contains('…'));
    }

    #[test]
    fn a_huge_author_name_is_cut_in_a_repeat_note() {
        let n = Note::new()
            .text("🔁 Another mention by ")
            .bold("N".repeat(3000))
            .text(" on news: “acme again”");
        let content = note_content(&n, None);
        assert_within_limits(&content);
        let v = serde_json::to_value(&content).unwrap();
        let text = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(v["blocks"].as_array().unwrap().len(), 1);
        assert!(
            text.contains(&format!("*{}…*", "N".repeat(NAME_MAX - 1))),
            "{text}"
        );
        assert!(text.ends_with("on news: “acme again”"));
    }

    #[test]
    fn a_long_resolve_note_shows_an_excerpt_on_the_root() {
        let mut v = view("acme broke");
        v.state = AlertState::Resolved {
            by: "slack:U0OK".into(),
            at: Utc::now(),
            note: Some("<!channel> fixed & ".repeat(200)),
        };
        let content = render_alert(&v);
        assert_within_limits(&content);
        let json = serde_json::to_value(&content).unwrap();
        let state = json["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["block_id"].as_str().unwrap_or("").starts_with("state-7-"))
            .unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(state.starts_with("✅ Resolved by <@U0OK> — \"&lt;!channel&gt; fixed &amp;"));
        assert!(state.ends_with("…\" (all of it in the thread)"), "{state}");
    }

    #[test]
    fn a_very_long_link_gets_its_own_section_or_is_shown_as_text() {
        let mut v = view("acme broke");
        v.url = Some(format!("https://feed.example/{}", "a".repeat(2500)));
        let json = serde_json::to_value(render_alert(&v)).unwrap();
        assert!(json.to_string().contains("🔗 <https://feed.example/aaa"));
        v.url = Some(format!("https://feed.example/{}", "a".repeat(5000)));
        let content = render_alert(&v);
        assert_within_limits(&content);
        let json = serde_json::to_value(content).unwrap().to_string();
        assert!(json.contains("Link too long for Slack: https://feed.example/aaa"));
    }

    fn labels(v: &AlertView) -> Vec<String> {
        let json = serde_json::to_value(render_alert(v)).unwrap();
        json["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().unwrap().clone())
            .map(|e| e["text"]["text"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_state_decides_the_marker_and_the_buttons() {
        let at = Utc::now();
        let claimed = AlertView {
            state: AlertState::Claimed {
                by: "slack:U0OK".into(),
                at,
            },
            ..view("acme broke")
        };
        assert_eq!(labels(&claimed), ["Unclaim", "Resolve", "Snooze"]);
        let json = serde_json::to_value(render_alert(&claimed)).unwrap();
        assert!(json["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("🙋 "));
        assert!(
            json.to_string().contains("🙋 Claimed by <@U0OK>"),
            "owner shown"
        );
        let resolved = AlertView {
            state: AlertState::Resolved {
                by: "slack:U0OK".into(),
                at,
                note: None,
            },
            ..view("acme broke")
        };
        assert_eq!(labels(&resolved), ["Reopen"]);
        let content = render_alert(&resolved);
        assert!(content.text.as_deref().unwrap().starts_with("✅ "));
        assert!(content.text.as_deref().unwrap().contains("· Resolved · #7"));
        assert_eq!(
            labels(&view("acme")),
            ["Claim", "Resolve", "Snooze", "Not relevant"]
        );
    }

    #[test]
    fn the_headline_comes_first_and_the_handle_is_shown_exactly() {
        let v = AlertView {
            author: Some("dana_k".into()),
            author_reach: Some(12_345),
            headline: "Acme_support *never* answered".into(),
            ..view("acme broke")
        };
        let json = serde_json::to_value(render_alert(&v)).unwrap();
        let blocks = json["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[0]["text"]["text"], "📥 Acme_support *never* answered",
            "plain_text: shown as written"
        );
        assert_eq!(blocks[1]["type"], "context");
        assert_eq!(blocks[1]["elements"][0]["type"], "plain_text");
        assert_eq!(
            blocks[1]["elements"][0]["text"],
            "by dana_k (12.3k followers) · hn (rss)"
        );
        let why = blocks[2]["text"]["text"].as_str().unwrap();
        assert!(
            why.contains("Matched rule *acme*: *Acme*\n*🟠 High priority* · negative — complaint"),
            "{why}"
        );
        assert!(blocks[3]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("sentiment score -0.62"));
        // A hostile handle still pings nobody.
        let v = AlertView {
            author: Some("<!channel>_x".into()),
            ..view("acme")
        };
        let json = serde_json::to_value(render_alert(&v)).unwrap();
        assert_eq!(
            json["blocks"][1]["elements"][0]["text"],
            "by &lt;!channel&gt;_x · hn (rss)"
        );
    }

    #[test]
    fn channel_ids_are_recognised() {
        assert!(is_channel_id("C0123ABCD"));
        assert!(!is_channel_id("#pr-alerts"));
        assert!(!is_channel_id("pr-alerts"));
    }
}
