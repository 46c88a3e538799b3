//! Making untrusted text (posts, titles, authors) safe to show in chat: it can never ping
//! anyone, open a link we did not make, or change formatting. Platform-neutral helpers live
//! here so every renderer uses the same rules.

/// Slack mrkdwn: escape exactly `&`, `<`, `>` (Slack's own rule; this neutralises
/// `<!channel>`, `<!here>`, `<@U..>` and `<url|label>`), and replace the characters that start
/// formatting (`*`, `_`, `~`, `` ` ``) with look-alikes so a post cannot bold, strike or
/// code-format our message. Line breaks become spaces so a post cannot fake our layout.
///
/// The look-alikes change what people copy, so text that must stay exactly as written (an
/// author's handle such as `dana_k`, the headline) goes into a `plain_text` object instead,
/// escaped with [`slack_plain`]: Slack formats nothing there.
pub(crate) fn slack_text(s: &str) -> String {
    slack_escape(s, &['*', '_', '~', '`'])
}

/// Text inside a Slack code span (`` `x` ``): mrkdwn formats nothing there, so `_`, `*` and
/// `~` stay as written (a handle such as `dana_k` can be copied and searched); `&`, `<`, `>`
/// are still escaped (Slack parses them everywhere) and a backtick, which would end the span,
/// becomes a look-alike. Line breaks become spaces.
pub(crate) fn slack_code(s: &str) -> String {
    slack_escape(s, &['`'])
}

/// Slack `plain_text` (header blocks, context elements): escape exactly `&`, `<`, `>` (Slack
/// parses them in every text object, so `<!channel>` must still be neutralised) and nothing
/// else: `plain_text` has no formatting, so `_`, `*`, `~` and `` ` `` stay as written and a
/// handle copied from the alert finds the person. Line breaks become spaces.
pub(crate) fn slack_plain(s: &str) -> String {
    slack_escape(s, &[])
}

/// `&`, `<`, `>` as entities, the `marks` among `*_~`` ` `` as look-alikes, line breaks and
/// tabs as spaces, other control characters dropped.
fn slack_escape(s: &str, marks: &[char]) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' | '\n' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c if marks.contains(&c) => out.push(match c {
                '*' => '\u{2217}', // ∗ asterisk operator
                '_' => '\u{02CD}', // ˍ modifier letter low macron
                '~' => '\u{223C}', // ∼ tilde operator
                _ => '\u{02CB}',   // ˋ modifier letter grave accent (for `)
            }),
            c => out.push(c),
        }
    }
    out
}

/// A URL inside Slack's `<url|label>` syntax: `&<>` escaped and `|` percent-encoded so the
/// label cannot be spoofed. Only http(s) URLs are linked at all.
pub(crate) fn slack_url(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.trim().chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '|' => out.push_str("%7C"),
            ' ' => out.push_str("%20"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// Plain text for terminals: control characters (ANSI escapes) removed.
pub fn terminal_text(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect()
}

/// Cuts `s` to at most `max` characters (code points) between grapheme clusters, adding `…`
/// when it cut. For text that is escaped or counted another way afterwards, renderers use
/// `super::text` directly.
pub fn truncate(s: &str, max: usize) -> String {
    super::text::truncate(s, max, super::text::Unit::Chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_text_neutralises_pings_entities_and_formatting() {
        let got = slack_text("<!channel> <@U123> &lt;b&gt; *bold* _it_ ~s~ `c`\nline");
        assert_eq!(
            got,
            "&lt;!channel&gt; &lt;@U123&gt; &amp;lt;b&amp;gt; ∗bold∗ ˍitˍ ∼s∼ ˋcˋ line"
        );
        assert!(!got.contains('<') && !got.contains('>') && !got.contains('*'));
    }

    #[test]
    fn slack_plain_keeps_handles_exact_and_still_neutralises_pings() {
        assert_eq!(slack_plain("dana_k"), "dana_k");
        assert_eq!(slack_plain("_x_ *y* ~z~ `c`"), "_x_ *y* ~z~ `c`");
        let got = slack_plain("<!channel> <@U123> a&b\nline\u{1b}");
        assert_eq!(got, "&lt;!channel&gt; &lt;@U123&gt; a&amp;b line");
        assert!(!got.contains('<') && !got.contains('>'));
    }

    #[test]
    fn slack_url_only_links_http_and_cannot_spoof_label() {
        assert_eq!(
            slack_url("https://x.test/a?b=1&c=2|<!here>").unwrap(),
            "https://x.test/a?b=1&amp;c=2%7C%3C!here%3E"
        );
        assert_eq!(slack_url("javascript:alert(1)"), None);
    }

    #[test]
    fn terminal_text_drops_escape_sequences() {
        assert_eq!(terminal_text("a\u{1b}[31mred\u{7}"), "a[31mred");
    }

    #[test]
    fn truncate_respects_graphemes() {
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        assert_eq!(truncate("short", 10), "short");
        let family = "👩\u{200d}👩\u{200d}👧\u{200d}👦";
        assert_eq!(truncate(&format!("ab{family}"), 5), "ab…");
        assert_eq!(truncate("e\u{301}e\u{301}e\u{301}", 3), "e\u{301}…");
    }

    #[test]
    fn slack_code_keeps_handles_exact_and_cannot_end_the_span_or_ping() {
        assert_eq!(slack_code("dana_k *x* ~y~"), "dana_k *x* ~y~");
        assert_eq!(
            slack_code("a`b <!channel> & c\nd"),
            "aˋb &lt;!channel&gt; &amp; c d"
        );
    }
}
