//! Discord rendering: alerts as an embed with buttons, notes and digests as messages within
//! Discord's documented limits, untrusted text escaped so it formats and pings nothing. It
//! renders only; sending is the platform's (`mod.rs`).

use super::*;
use crate::chat::view::{state_look, Emphasis};

/// The last line of every note: Discord shows `-#` as small grey subtext. `find_note`
/// recognises a note by it; text from outside cannot start a line with it (see
/// `discord_text`).
pub(super) fn note_marker(delivery: &str) -> String {
    format!("-# md:{delivery}")
}

/// The footer that names a digest delivery; `find_digest` recognises it.
pub(super) fn digest_footer(delivery: &str) -> String {
    format!("mentiondesk {delivery}")
}

/// The footer that names the alert; `find_alert` recognises our message by it.
/// The nonce of an alert's root message. Discord dedups a nonce per author, not per channel
/// ("if another message was created by the same author with the same nonce, that message
/// will be returned"), so it names the channel too (as a hash: nonces are ≤ 25 characters);
/// it stays the same for every retry of one delivery.
pub(super) fn alert_nonce(id: AlertId, channel: &str) -> String {
    let hash = channel.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    truncate(&format!("mda{id}-{hash:08x}"), NONCE_MAX)
}

pub(super) fn alert_footer(id: AlertId) -> String {
    format!("mentiondesk alert #{id}")
}

/// Discord markdown: a backslash before every character that formats, quotes, masks a link
/// or mentions (`\ * _ ~ ` | > < @ [ ]`, and `#` or `-` where a line could start), so
/// untrusted text shows as written. Line breaks become spaces.
pub(crate) fn discord_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for (i, c) in s.chars().enumerate() {
        escape_char(&mut out, c, i == 0);
    }
    out
}

pub(super) fn escape_char(out: &mut String, c: char, line_start: bool) {
    match c {
        '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '[' | ']' | '@' => {
            out.push('\\');
            out.push(c);
        }
        '#' | '-' if line_start => {
            out.push('\\');
            out.push(c);
        }
        '\r' | '\n' | '\t' => out.push(' '),
        c if c.is_control() => {}
        c => out.push(c),
    }
}

/// The atoms of untrusted text: one escaped grapheme each; `#`/`-` are escaped at the start.
pub(super) fn text_atoms(s: &str, wrap: &'static str) -> Vec<Atom> {
    use unicode_segmentation::UnicodeSegmentation;
    s.graphemes(true)
        .enumerate()
        .map(|(i, g)| {
            let mut out = String::new();
            for (j, c) in g.chars().enumerate() {
                escape_char(&mut out, c, i == 0 && j == 0);
            }
            Atom { text: out, wrap }
        })
        .filter(|a| !a.text.is_empty())
        .collect()
}

/// A piece that would start a line with `#` or `-` (a heading or list in Discord markdown
/// once it stands at the start of a message) gets a backslash; pieces are packed one
/// character short so it still fits.
pub(super) fn guard_start(piece: String) -> String {
    if piece.starts_with(['#', '-']) {
        format!("\\{piece}")
    } else {
        piece
    }
}

pub(super) fn discord_user(actor: &str) -> String {
    match actor.strip_prefix("discord:") {
        Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => format!("<@{id}>"),
        _ => discord_text(&truncate(
            actor.split_once(':').map_or(actor, |x| x.1),
            NAME_MAX,
        )),
    }
}

/// A URL for a masked link or the embed: only http(s), and without the characters that would
/// end the link early.
pub(super) fn link_url(url: &str) -> Option<String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            // Characters that end a masked link early or that markdown could read, and those
            // RFC 3986 does not allow unencoded anyway.
            '<' | '>' | '(' | ')' | ' ' | '`' | '[' | ']' | '\\' | '"' | '|' | '^' | '{' | '}' => {
                out.push_str(&format!("%{:02X}", c as u32))
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// The atoms of a note: escaped graphemes, and mentions and links whole.
pub(super) fn note_atoms(note: &Note) -> Vec<Atom> {
    let mut out = Vec::new();
    for part in &note.0 {
        match part {
            Part::Text(t) => out.extend(text_atoms(t, "")),
            Part::Bold(t) => out.extend(text_atoms(&truncate(t, NAME_MAX), "**")),
            Part::Code(t) => out.extend(text::atoms(t, "`", |g| {
                g.chars()
                    .map(|c| match c {
                        '`' => 'ˋ',
                        '\r' | '\n' | '\t' => ' ',
                        c => c,
                    })
                    .filter(|c| !c.is_control())
                    .collect()
            })),
            Part::User(u) => out.push(Atom::plain(discord_user(u))),
            Part::Ping(p) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
                out.push(Atom::plain(format!("<#{p}>")))
            }
            Part::Ping(p) => out.extend(text_atoms(&truncate(p, NAME_MAX), "")),
            Part::Link { url, label } => match link_url(url) {
                Some(u) if u.chars().count() <= INLINE_URL_MAX => out.push(Atom::plain(format!(
                    "[{}](<{u}>)",
                    discord_text(&truncate(label, NAME_MAX))
                ))),
                _ => out.extend(text_atoms(&truncate(label, NAME_MAX), "")),
            },
            Part::Newline => out.push(Atom::plain("\n")),
            // Shown below the text, in `note_buttons`.
            Part::Button { .. } => {}
        }
    }
    out
}

/// A note's buttons as action rows of at most five (Discord takes five rows of five), each
/// `custom_id` `<action>:<alert>`, unique in the message as Discord requires; none without
/// buttons.
pub(super) fn note_buttons(note: &Note) -> Vec<CreateActionRow> {
    let buttons: Vec<CreateButton> = note
        .buttons()
        .take(crate::chat::NOTE_BUTTONS_MAX)
        .map(|(action, alert, label)| {
            CreateButton::new(truncate(
                &crate::chat::note_button_id(action, alert),
                CUSTOM_ID_MAX,
            ))
            .label(truncate(label, BUTTON_LABEL_MAX))
            .style(ButtonStyle::Primary)
        })
        .collect();
    buttons
        .chunks(ROW_BUTTONS_MAX)
        .map(|row| CreateActionRow::Buttons(row.to_vec()))
        .collect()
}

/// A note as Discord markdown, at most 2,000 characters (cut with "…").
#[cfg(test)]
pub(crate) fn render_note(note: &Note) -> String {
    render_note_within(note, CONTENT_MAX)
}

/// A note as Discord markdown, at most `limit` characters (cut with "…").
pub fn render_note_within(note: &Note, limit: usize) -> String {
    guard_start(text::fit(
        &note_atoms(note),
        limit.saturating_sub(1),
        Unit::Chars,
    ))
}

/// A note split for one message: the content (≤ 2,000) and, for a longer note, up to three
/// embed descriptions of ≤ 2,000 each (≤ 6,000 for the message's embeds together), so the
/// note stays one message (one nonce, found as one) and up to 8,000 characters arrive whole;
/// anything longer ends in "…".
pub(crate) fn note_pieces(note: &Note) -> (String, Vec<String>) {
    note_pieces_within(note, CONTENT_MAX)
}

/// `note_pieces` with the content held to `content_max` (room left for a marker line).
pub(super) fn note_pieces_within(note: &Note, content_max: usize) -> (String, Vec<String>) {
    let mut pieces = text::pack(
        &note_atoms(note),
        content_max - 1,
        NOTE_PIECES_MAX,
        Unit::Chars,
    )
    .pieces
    .into_iter()
    .map(guard_start);
    let content = pieces.next().unwrap_or_default();
    (content, pieces.collect())
}

/// A note as a message body (`content`, `embeds`, no mentions parsed), for interaction
/// answers and edits.
pub(crate) fn note_payload(note: &Note) -> serde_json::Value {
    let (content, more) = note_pieces(note);
    let embeds: Vec<serde_json::Value> = more
        .into_iter()
        .map(|d| serde_json::json!({ "description": d }))
        .collect();
    let mut payload = serde_json::json!({
        "content": content,
        "embeds": embeds,
        "allowed_mentions": { "parse": [] },
    });
    add_note_buttons(&mut payload, note);
    payload
}

/// Adds `note`'s buttons to a JSON message as `components`; a note without buttons sends
/// none.
fn add_note_buttons(payload: &mut serde_json::Value, note: &Note) {
    let buttons = note_buttons(note);
    if !buttons.is_empty() {
        payload["components"] = serde_json::json!(buttons);
    }
}

/// A note as a message to post, with its embeds for a long note, and `marker` as the last
/// line of its last piece (the content, or the last embed of a long note), where `find_note`
/// looks for it. Every piece leaves room for the marker, so the note's text is never split
/// by it.
pub(super) fn note_message(note: &Note, marker: Option<&str>) -> CreateMessage {
    let room = marker.map_or(0, |m| m.chars().count() + 1);
    let (mut content, mut more) = note_pieces_within(note, CONTENT_MAX - room);
    if let Some(marker) = marker {
        let last = more.last_mut().unwrap_or(&mut content);
        last.push('\n');
        last.push_str(marker);
    }
    CreateMessage::new()
        .content(content)
        .embeds(
            more.into_iter()
                .map(|d| CreateEmbed::new().description(d))
                .collect(),
        )
        .components(note_buttons(note))
        .allowed_mentions(CreateAllowedMentions::new())
}

/// The text of a posted message's last piece: its last embed's description for a long note,
/// else its content.
pub(super) fn last_piece(m: &serde_json::Value) -> Option<&str> {
    match m["embeds"].as_array().and_then(|e| e.last()) {
        Some(embed) => embed["description"].as_str(),
        None => m["content"].as_str(),
    }
}

/// The digest as `payload_json`: one embed with the chart as its image, no mentions parsed,
/// and a nonce so a repeat after a crash returns the first message.
pub(crate) fn digest_payload(digest: &DigestPost, delivery: &str) -> serde_json::Value {
    let file = chart_file_name(delivery);
    let footer = digest_footer(delivery);
    let title = truncate(&digest.title, EMBED_TITLE_MAX);
    let room = EMBED_TOTAL_MAX - title.chars().count() - footer.chars().count();
    let mut embed = serde_json::json!({
        "title": title,
        "description": render_note_within(&digest.body, EMBED_DESCRIPTION_MAX.min(room)),
        "color": 0x3498db,
        "footer": { "text": footer },
    });
    let mut attachments = Vec::new();
    if digest.chart.is_some() {
        embed["image"] = serde_json::json!({ "url": format!("attachment://{file}") });
        attachments.push(serde_json::json!({
            "id": 0,
            "filename": file,
            "description": truncate(&digest.chart_alt, ATTACHMENT_DESCRIPTION_MAX),
        }));
    }
    let mut payload = serde_json::json!({
        "embeds": [embed],
        "attachments": attachments,
        "allowed_mentions": { "parse": [] },
        "nonce": truncate(&format!("mdd{delivery}"), NONCE_MAX),
        "enforce_nonce": true,
    });
    add_note_buttons(&mut payload, &digest.body);
    payload
}

/// Escaped untrusted text cut to `max` characters without splitting an escape; never empty
/// (Discord refuses an empty field value).
pub(super) fn field_text(s: &str, max: usize) -> String {
    let t = text::fit(&text_atoms(s, ""), max, Unit::Chars);
    if t.trim().is_empty() {
        "—".to_string()
    } else {
        t
    }
}

/// The "who said it where" line is a label: cut at this many characters.
const WHO_MAX: usize = 600;
/// The rule names on the "why" line are cut at this many characters.
const RULES_MAX: usize = 300;

/// The alert's embed, headline first, in the same order as on Slack and the console:
///
/// - title: the state marker and what was said, linked to the post;
/// - description: who said it where (the handle backslash-escaped, so it shows and copies as
///   written), the quoted excerpt, the rule and the words it matched, priority and
///   sentiment in words;
/// - fields: the state line (with the owner) and the numbers behind the words;
/// - colour: the state's, so a channel of alerts reads at a glance.
///
/// It stays within every embed limit: title, description, fields, footer and the 6,000
/// characters they may hold together (the excerpt gives way first). A link Discord would
/// refuse as the embed `url` (over 2,048 characters, or not a valid http(s) URL) is put into
/// the description as a masked link instead, or shown as text where even that cannot fit, so
/// people can still reach the post.
pub(super) fn alert_embed(view: &AlertView) -> CreateEmbed {
    let look = state_look(&view.state);
    let mut title_atoms = vec![Atom::plain(format!("{} ", look.emoji))];
    title_atoms.extend(text_atoms(&view.headline, ""));
    let title = text::fit(&title_atoms, EMBED_TITLE_MAX, Unit::Chars);

    let fields: Vec<(&str, String, bool)> = vec![
        (
            "State",
            truncate(
                &view.state_line(discord_user, discord_text),
                EMBED_FIELD_VALUE_MAX,
            ),
            false,
        ),
        ("Details", view.detail_line(), false),
    ];
    let footer = alert_footer(view.id);

    let who = field_text(&view.who_line(), WHO_MAX);
    let mut why = vec![Atom::plain("Matched rule ")];
    why.extend(text_atoms(
        &truncate(&view.rules.join(", "), RULES_MAX),
        "**",
    ));
    for (i, w) in view.matched_words().iter().enumerate() {
        why.push(Atom::plain(if i == 0 { ": " } else { ", " }));
        why.extend(text_atoms(w, "**"));
    }
    let why = text::render(&why);
    let (priority, sentiment, stars) = view.urgency_words();
    let urgency = match stars {
        Some(stars) => format!("**{priority}** · {sentiment} · rating {stars}"),
        None => format!("**{priority}** · {sentiment}"),
    };

    let url = view.url.as_deref().and_then(link_url);
    let embed_url = url.clone().filter(|u| {
        u.chars().count() <= EMBED_URL_MAX && url::Url::parse(u).is_ok_and(|p| p.has_host())
    });
    // Who, why and urgency with the line breaks between them and the quote's "> ".
    let fixed = who.chars().count() + why.chars().count() + urgency.chars().count() + 6;
    let used = title.chars().count()
        + footer.chars().count()
        + fields
            .iter()
            .map(|(n, v, _)| n.chars().count() + v.chars().count())
            .sum::<usize>();
    let room = EMBED_DESCRIPTION_MAX
        .min(EMBED_TOTAL_MAX.saturating_sub(used))
        .saturating_sub(fixed);
    let link_line = match (&url, &embed_url) {
        (Some(u), None) => {
            let masked = format!("\n🔗 [Open the post]({u})");
            if masked.chars().count() + EXCERPT_MIN <= room {
                Some(masked)
            } else {
                let mut a = vec![Atom::plain("\n🔗 Link too long for Discord: ")];
                a.extend(text_atoms(view.url.as_deref().unwrap_or_default(), ""));
                Some(text::fit(&a, room / 2, Unit::Chars))
            }
        }
        _ => None,
    };
    let link_len = link_line.as_deref().map_or(0, |l| l.chars().count());
    let excerpt_atoms: Vec<Atom> = view
        .excerpt
        .iter()
        .flat_map(|(run, hl)| text_atoms(run, if *hl { "**" } else { "" }))
        .collect();
    let quote = text::fit(
        &excerpt_atoms,
        EXCERPT_MAX.min(room.saturating_sub(link_len)),
        Unit::Chars,
    );
    let mut description = who;
    if !quote.trim().is_empty() {
        description.push_str("\n> ");
        description.push_str(&quote);
    }
    description.push('\n');
    description.push_str(&why);
    description.push('\n');
    description.push_str(&urgency);
    description.push_str(link_line.as_deref().unwrap_or_default());

    let mut embed = CreateEmbed::new()
        .title(title)
        .description(description)
        .colour(look.colour)
        .footer(CreateEmbedFooter::new(footer));
    for (name, value, inline) in fields {
        embed = embed.field(name, value, inline);
    }
    if let Some(u) = embed_url {
        embed = embed.url(u);
    }
    if let Ok(ts) = serenity::model::Timestamp::from_unix_timestamp(view.created_at.timestamp()) {
        embed = embed.timestamp(ts);
    }
    embed
}

/// The buttons the alert's state allows, as one row (`<button id>:<alert id>`, at most 34
/// characters: well within `custom_id`'s 100).
pub(super) fn alert_buttons(view: &AlertView) -> Vec<CreateActionRow> {
    let row = view
        .buttons()
        .iter()
        .map(|b| {
            CreateButton::new(format!("{}:{}", b.id, view.id))
                .label(b.label)
                .style(match b.emphasis {
                    Emphasis::Main => ButtonStyle::Primary,
                    Emphasis::Positive => ButtonStyle::Success,
                    Emphasis::Plain => ButtonStyle::Secondary,
                    Emphasis::Danger => ButtonStyle::Danger,
                })
        })
        .collect();
    vec![CreateActionRow::Buttons(row)]
}

/// The alert as a message: embed, buttons, and no mentions parsed.
pub(crate) fn alert_message(view: &AlertView) -> CreateMessage {
    CreateMessage::new()
        .embed(alert_embed(view))
        .components(alert_buttons(view))
        .allowed_mentions(CreateAllowedMentions::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertState;

    fn view() -> AlertView {
        AlertView {
            id: AlertId(9),
            rules: vec!["acme".into()],
            source: "hn".into(),
            source_kind: "rss".into(),
            author: Some("@everyone".into()),
            title: Some("x".repeat(400)),
            headline: "x".repeat(400),
            excerpt: vec![
                ("<@123> **bold** @here".into(), false),
                ("acme".into(), true),
            ],
            url: Some("https://example.com/p".into()),
            ..AlertView::sample()
        }
    }

    fn description(v: &AlertView) -> String {
        let json = serde_json::to_value(alert_message(v)).unwrap();
        json["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_rating_is_said_with_the_urgency_only_when_there_is_one() {
        assert!(!description(&view()).contains("rating"));
        let rated = description(&AlertView {
            rating: Some(2),
            ..view()
        });
        assert!(
            rated.ends_with("**🟠 High priority** · negative — complaint · rating ★★☆☆☆ 2/5"),
            "{rated}"
        );
    }

    #[test]
    fn the_state_decides_colour_marker_and_buttons() {
        let at = Utc::now();
        let by = "discord:42".to_string();
        let cases = [
            (
                AlertState::Open,
                0xe74c3c,
                "📥",
                vec![
                    "desk_claim:9",
                    "desk_resolve:9",
                    "desk_snooze:9",
                    "desk_ignore:9",
                ],
            ),
            (
                AlertState::Claimed { by: by.clone(), at },
                0xf1c40f,
                "🙋",
                vec!["desk_unclaim:9", "desk_resolve:9", "desk_snooze:9"],
            ),
            (
                AlertState::Snoozed {
                    by: by.clone(),
                    until: at,
                },
                0x9b59b6,
                "💤",
                vec!["desk_claim:9", "desk_resolve:9", "desk_ignore:9"],
            ),
            (
                AlertState::Resolved {
                    by: by.clone(),
                    at,
                    note: None,
                },
                0x2ecc71,
                "✅",
                vec!["desk_reopen:9"],
            ),
            (
                AlertState::Ignored {
                    by: by.clone(),
                    at,
                    reason: None,
                },
                0x95a5a6,
                "🚫",
                vec!["desk_reopen:9"],
            ),
        ];
        for (state, colour, mark, ids) in cases {
            let v = serde_json::to_value(alert_message(&AlertView {
                state: state.clone(),
                ..view()
            }))
            .unwrap();
            assert_eq!(v["embeds"][0]["color"], colour, "{state:?}");
            assert!(v["embeds"][0]["title"].as_str().unwrap().starts_with(mark));
            let got: Vec<&str> = v["components"][0]["components"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["custom_id"].as_str().unwrap())
                .collect();
            assert_eq!(got, ids, "{state:?}");
        }
    }

    #[test]
    fn the_handle_is_escaped_so_it_shows_as_written() {
        let desc = description(&AlertView {
            author: Some("dana_k".into()),
            author_reach: Some(12_345),
            ..view()
        });
        assert!(
            desc.starts_with("by dana\\_k (12.3k followers) · hn (rss)\n> "),
            "{desc}"
        );
    }

    #[test]
    fn alert_message_has_embed_buttons_and_no_mentions() {
        let v = serde_json::to_value(alert_message(&view())).unwrap();
        assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
        let embed = &v["embeds"][0];
        assert!(
            embed["title"].as_str().unwrap().chars().count() <= EMBED_TITLE_MAX,
            "title truncated"
        );
        assert_eq!(
            embed["url"], "https://example.com/p",
            "the link survives truncation"
        );
        assert_eq!(embed["footer"]["text"], "mentiondesk alert #9");
        let desc = embed["description"].as_str().unwrap();
        assert!(
            desc.contains("\\<\\@123\\>")
                && desc.contains("\\*\\*bold\\*\\*")
                && desc.contains("\\@here**acme**"),
            "{desc}"
        );
        let ids: Vec<&str> = v["components"][0]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["custom_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![
                "desk_claim:9",
                "desk_resolve:9",
                "desk_snooze:9",
                "desk_ignore:9"
            ]
        );
    }

    /// Every `@` in rendered text is escaped (an odd number of backslashes before it), inside
    /// an inline code span, or our own mention of user 42.
    fn assert_no_ping(text: &str) {
        let chars: Vec<char> = text.chars().collect();
        let escaped =
            |i: usize| chars[..i].iter().rev().take_while(|c| **c == '\\').count() % 2 == 1;
        let mut in_code = false;
        let mut in_url = false;
        for (i, c) in chars.iter().enumerate() {
            // The target of a masked link `[label](url)` is an address, not text.
            if !in_code && *c == '(' && i > 0 && chars[i - 1] == ']' && !escaped(i - 1) {
                in_url = true;
            }
            if in_url {
                in_url = *c != ')';
                continue;
            }
            if *c == '`' && !escaped(i) {
                in_code = !in_code;
            }
            if *c != '@' || in_code || escaped(i) {
                continue;
            }
            let ours = i > 0 && chars[i - 1] == '<' && chars[i + 1..].starts_with(&['4', '2', '>']);
            assert!(
                ours,
                "unescaped @ at {i}: {:?}",
                chars[i.saturating_sub(40)..(i + 20).min(chars.len())]
                    .iter()
                    .collect::<String>()
            );
        }
    }

    fn count(v: &serde_json::Value) -> usize {
        v.as_str().map_or(0, |s| s.chars().count())
    }

    /// Checks one message body against Discord's limits; returns its embeds' total.
    fn assert_within_limits(msg: &serde_json::Value) {
        assert_eq!(
            msg["allowed_mentions"]["parse"],
            serde_json::json!([]),
            "{msg}"
        );
        assert!(count(&msg["content"]) <= CONTENT_MAX);
        assert_no_ping(msg["content"].as_str().unwrap_or_default());
        let embeds = msg["embeds"].as_array().cloned().unwrap_or_default();
        assert!(embeds.len() <= 10);
        let mut total = 0;
        for e in &embeds {
            assert!(count(&e["title"]) <= EMBED_TITLE_MAX);
            assert!(count(&e["description"]) <= EMBED_DESCRIPTION_MAX);
            assert!(count(&e["footer"]["text"]) <= EMBED_FOOTER_MAX);
            assert!(
                count(&e["url"]) <= EMBED_URL_MAX,
                "url {}",
                count(&e["url"])
            );
            if let Some(u) = e["url"].as_str() {
                assert!(url::Url::parse(u).is_ok(), "{u}");
            }
            let fields = e["fields"].as_array().cloned().unwrap_or_default();
            assert!(fields.len() <= EMBED_FIELDS_MAX);
            total += count(&e["title"]) + count(&e["description"]) + count(&e["footer"]["text"]);
            for f in &fields {
                assert!((1..=EMBED_FIELD_NAME_MAX).contains(&count(&f["name"])));
                assert!(
                    (1..=EMBED_FIELD_VALUE_MAX).contains(&count(&f["value"])),
                    "{f}"
                );
                total += count(&f["name"]) + count(&f["value"]);
                assert_no_ping(f["value"].as_str().unwrap());
            }
            assert_no_ping(e["description"].as_str().unwrap_or_default());
            assert_no_ping(e["title"].as_str().unwrap_or_default());
        }
        assert!(total <= EMBED_TOTAL_MAX, "embeds hold {total}");
        let rows = msg["components"].as_array().cloned().unwrap_or_default();
        assert!(rows.len() <= 5);
        let mut ids = std::collections::HashSet::new();
        for r in rows {
            let items = r["components"].as_array().unwrap();
            assert!((1..=5).contains(&items.len()));
            for b in items {
                assert!(count(&b["custom_id"]) <= CUSTOM_ID_MAX);
                assert!(count(&b["label"]) <= BUTTON_LABEL_MAX);
                let id = b["custom_id"].as_str().unwrap().to_string();
                assert!(ids.insert(id), "a custom_id repeats in {msg}");
            }
        }
    }

    /// A note's buttons become action rows of five, at most five rows, `custom_id`
    /// `desk_promote:<id>`; a note without buttons sends no `components`.
    #[test]
    fn note_buttons_are_rows_of_five_at_most_five_rows() {
        let mut note = Note::new().text("held back");
        for i in 1..=27 {
            note = note.button(
                crate::chat::buttons::PROMOTE,
                AlertId(i),
                format!("Promote #{i}"),
            );
        }
        let v = note_payload(&note);
        let rows = v["components"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        assert!(rows
            .iter()
            .all(|r| r["type"] == 1 && r["components"].as_array().unwrap().len() == 5));
        assert_eq!(rows[0]["components"][0]["custom_id"], "desk_promote:1");
        assert_eq!(rows[0]["components"][0]["label"], "Promote #1");
        assert_eq!(rows[4]["components"][4]["custom_id"], "desk_promote:25");
        let posted = serde_json::to_value(note_message(&note, None)).unwrap();
        assert_eq!(posted["components"], v["components"]);
        assert!(note_payload(&Note::new().text("x"))["components"].is_null());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn every_alert_fits_discord_and_pings_nobody(v in text::testgen::view()) {
            let msg = serde_json::to_value(alert_message(&v)).unwrap();
            assert_within_limits(&msg);
            let edit = EditMessage::new()
                .embed(alert_embed(&v))
                .components(alert_buttons(&v))
                .allowed_mentions(CreateAllowedMentions::new());
            assert_within_limits(&serde_json::to_value(edit).unwrap());
            let name = truncate(&format!("#{} {}", v.id, v.rules.join(", ")), THREAD_NAME_MAX);
            assert!((1..=THREAD_NAME_MAX).contains(&name.chars().count()));
        }

        #[test]
        fn every_note_fits_one_discord_message(n in text::testgen::note()) {
            let msg = serde_json::to_value(note_message(&n, None)).unwrap();
            assert_within_limits(&msg);
            // With the crash-recovery marker: still within limits, and the marker is the
            // last line of the last piece, where `find_note` looks.
            let marker = note_marker("12345-67890");
            let marked = serde_json::to_value(note_message(&n, Some(&marker))).unwrap();
            assert_within_limits(&marked);
            let last = last_piece(&marked).unwrap();
            assert!(last.ends_with(&format!("\n{marker}")));
            assert_eq!(marked.to_string().matches(&marker).count(), 1);
            let payload = note_payload(&n);
            assert_within_limits(&payload);
            let (content, more) = note_pieces(&n);
            assert!(more.len() < NOTE_PIECES_MAX);
            let whole = text::render(&note_atoms(&n));
            let last = more.last().unwrap_or(&content);
            if !last.ends_with(text::ELLIPSIS) {
                let squash = |s: &str| s.chars()
                    .filter(|c| !c.is_whitespace() && *c != '*' && *c != '`' && *c != '\\')
                    .collect::<String>();
                assert_eq!(squash(&format!("{content}{}", more.concat())), squash(&whole));
            }
        }
    }

    #[test]
    fn a_3000_character_link_moves_from_the_embed_url_into_the_description() {
        let mut v = view();
        let long = format!("https://feed.example/item?{}", "q=1&".repeat(750));
        v.url = Some(long.clone());
        let msg = serde_json::to_value(alert_message(&v)).unwrap();
        assert_within_limits(&msg);
        let embed = &msg["embeds"][0];
        assert!(
            embed["url"].is_null(),
            "a url over 2,048 is refused by Discord"
        );
        let desc = embed["description"].as_str().unwrap();
        assert!(desc.contains(&format!("[Open the post]({long})")), "{desc}");
    }

    #[test]
    fn a_long_note_continues_in_embeds_of_the_same_message() {
        let n = Note::new()
            .text("📝 ")
            .user("discord:42")
            .text(": ")
            .text("word ".repeat(598));
        let (content, more) = note_pieces(&n);
        assert!(content.chars().count() <= CONTENT_MAX);
        assert_eq!(more.len(), 1);
        assert_eq!(
            format!("{content} {}", more[0]).matches("word").count(),
            598
        );
    }

    #[test]
    fn notes_escape_text_and_fit_the_limit() {
        let n = Note::new()
            .text("@everyone *x* ")
            .user("discord:42")
            .text(" ")
            .user("slack:U1")
            .text("y".repeat(3000));
        let r = render_note(&n);
        assert!(r.starts_with("\\@everyone \\*x\\* <@42> U1"), "{r}");
        assert!(r.chars().count() <= CONTENT_MAX);
    }
}
