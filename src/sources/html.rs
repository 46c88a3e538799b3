//! HTML to plain text, the one path every source uses (feeds, Hacker News, Mastodon, …), so a
//! rule sees the same words whatever the source and the chat layer only ever gets text.
//! It is not a sanitiser or a renderer: the output is text, never HTML, and keeps no layout
//! beyond single spaces (alert excerpts are quoted and highlighted inline).
//!
//! Real feeds are messy, so it is lenient: unknown entities stay as written, a lone `<` is
//! text, and HTML that was escaped twice (`&lt;b&gt;` inside an HTML field, common in RSS)
//! is stripped too. Named entities come from quick-xml's complete HTML5 table.

use quick_xml::escape::resolve_html5_entity;

/// HTML to readable plain text: tags, comments, scripts and styles dropped, block elements and
/// `<br>` turned into spaces, `<q>` into curly quotes, CDATA kept as text, entities decoded
/// (named, decimal, hex), whitespace collapsed. A link keeps its text; when that text is only a
/// shortened form of the link's URL (Hacker News cuts long links to `https://…/lo...`), the full
/// URL is used instead so a rule on the URL still matches.
pub(crate) fn html_to_text(html: &str) -> String {
    convert(html, Tags::Any)
}

/// Text a feed declares as plain. Feeds mislabel HTML as text all the time (RSS 1.0 and
/// RSS 2.0 descriptions and titles, double-escaped summaries), so entities are decoded and
/// well-known HTML elements are stripped; anything else in angle brackets (`Vec<String>`,
/// `<!channel>`) stays as written.
pub(crate) fn plain_text(text: &str) -> String {
    convert(text, Tags::KnownOnly)
}

#[derive(Clone, Copy, PartialEq)]
enum Tags {
    /// Every tag-like `<name …>` is markup.
    Any,
    /// Only the HTML elements in `KNOWN` are markup.
    KnownOnly,
}

fn convert(input: &str, tags: Tags) -> String {
    let once = strip(input, tags);
    // HTML escaped twice shows up as tags only after one round of decoding.
    let text = if has_known_tag(&once) {
        strip(&once, Tags::KnownOnly)
    } else {
        once
    };
    collapse_whitespace(&text)
}

/// One pass: drops markup and decodes entities in the text between it.
fn strip(html: &str, tags: Tags) -> String {
    let mut out = String::with_capacity(html.len());
    // The link being read: its href and where its text starts in `out`.
    let mut link: Option<(String, usize)> = None;
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..lt]));
        let after = &rest[lt..];
        if let Some(comment) = after.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        if let Some(pi) = after.strip_prefix("<?") {
            // An XML declaration or processing instruction pasted into content.
            if let Some(end) = pi.find("?>") {
                rest = &pi[end + 2..];
                continue;
            }
        }
        if let Some(cdata) = after.strip_prefix("<![CDATA[") {
            // CDATA is literal text: no entities, no tags.
            let end = cdata.find("]]>").unwrap_or(cdata.len());
            out.push_str(&cdata[..end]);
            rest = cdata.get(end + 3..).unwrap_or("");
            continue;
        }
        let tag = match read_tag(after, tags) {
            Read::Tag(tag) => tag,
            Read::Text => {
                // Not markup: "a < b", "1 <2 and 3> 2", or chat tokens such as "<!channel>"
                // that must stay visible so the chat layer escapes them, not dropped by us.
                out.push('<');
                rest = &after[1..];
                continue;
            }
            Read::Unterminated => {
                // A tag that never closes ("unclosed <a href="): the rest is text. Stopping
                // here also keeps the pass linear on input full of unclosed tags.
                rest = after;
                break;
            }
        };
        rest = &after[tag.len..];
        if !tag.closing
            && matches!(
                tag.name.as_str(),
                "script" | "style" | "noscript" | "template"
            )
        {
            let close = format!("</{}", tag.name);
            rest = find_ignore_ascii_case(rest, &close)
                .and_then(|i| rest[i..].find('>').map(|j| &rest[i + j + 1..]))
                .unwrap_or("");
            continue;
        }
        match (tag.name.as_str(), tag.closing) {
            ("q", false) => out.push('“'),
            ("q", true) => out.push('”'),
            ("a", false) => link = tag.href.map(|href| (href, out.len())),
            ("a", true) => {
                if let Some((href, start)) = link.take() {
                    if is_shortened(&out[start..], &href) {
                        out.truncate(start);
                        out.push_str(&href);
                    }
                }
            }
            (name, _) if is_block(name) => out.push(' '),
            _ => {}
        }
    }
    out.push_str(&decode_entities(rest));
    out
}

struct Tag {
    /// Lower-cased element name.
    name: String,
    closing: bool,
    /// Decoded `href` of an opening `<a>`.
    href: Option<String>,
    /// Bytes from `<` to `>` inclusive.
    len: usize,
}

enum Read {
    Tag(Tag),
    /// The `<` is text.
    Text,
    /// A tag starts but the input ends before its `>`.
    Unterminated,
}

/// Reads the tag at the start of `s` (which starts with `<`). Quoted attribute values may
/// hold `>`.
fn read_tag(s: &str, tags: Tags) -> Read {
    let inner = &s[1..];
    let closing = inner.starts_with('/');
    let body = if closing { &inner[1..] } else { inner };
    if body
        .get(..8)
        .is_some_and(|t| t.eq_ignore_ascii_case("!doctype"))
    {
        return match s.find('>') {
            Some(gt) => Read::Tag(Tag {
                name: "!doctype".into(),
                closing: false,
                href: None,
                len: gt + 1,
            }),
            None => Read::Unterminated,
        };
    }
    let name_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ':'))
        .unwrap_or(body.len());
    let name = body[..name_len].to_ascii_lowercase();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Read::Text;
    }
    if tags == Tags::KnownOnly && !KNOWN.contains(&name.as_str()) {
        return Read::Text;
    }
    // The tag name must end the tag or be followed by space or '/'.
    let after_name = &body[name_len..];
    if after_name.is_empty() {
        return Read::Unterminated;
    }
    if !after_name.starts_with(|c: char| c == '>' || c == '/' || c.is_ascii_whitespace()) {
        return Read::Text;
    }
    let mut quote: Option<char> = None;
    let mut end = None;
    for (i, c) in after_name.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => {
                end = Some(i);
                break;
            }
            (None, _) => {}
        }
    }
    let Some(end) = end else {
        return Read::Unterminated;
    };
    let attrs = &after_name[..end];
    let href = (name == "a" && !closing)
        .then(|| attribute(attrs, "href"))
        .flatten();
    Read::Tag(Tag {
        len: 1 + usize::from(closing) + name_len + end + 1,
        name,
        closing,
        href,
    })
}

/// The decoded value of attribute `name` in a tag's attribute text.
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let mut rest = attrs;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
        if rest.is_empty() {
            return None;
        }
        let key_len = rest
            .find(|c: char| c == '=' || c.is_ascii_whitespace() || c == '/')
            .unwrap_or(rest.len());
        let key = &rest[..key_len];
        rest = rest[key_len..].trim_start();
        let value = if let Some(v) = rest.strip_prefix('=') {
            let v = v.trim_start();
            let (value, after) = match v.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let close = v[1..].find(q).map_or(v.len(), |i| i + 1);
                    (&v[1..close], v.get(close + 1..).unwrap_or(""))
                }
                _ => {
                    let end = v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len());
                    (&v[..end], &v[end..])
                }
            };
            rest = after;
            Some(value)
        } else {
            None
        };
        if key.eq_ignore_ascii_case(name) {
            return value.map(|v| decode_entities(v.trim()));
        }
    }
}

/// Whether a link's visible text is only a cut-off form of its URL.
fn is_shortened(text: &str, href: &str) -> bool {
    let text = text.trim();
    let Some(cut) = text.strip_suffix("...").or_else(|| text.strip_suffix('…')) else {
        return false;
    };
    let bare = |u: &str| {
        let u = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"))
            .unwrap_or(u);
        u.strip_prefix("www.").unwrap_or(u).to_string()
    };
    let cut = bare(cut);
    cut.len() >= 4 && bare(href).starts_with(&cut)
}

/// Elements treated as markup inside text that claims to be plain, and looked for to spot
/// HTML that was escaped twice: the ones feeds really put in titles and descriptions.
const KNOWN: &[&str] = &[
    "a",
    "abbr",
    "b",
    "big",
    "blockquote",
    "br",
    "center",
    "cite",
    "code",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
    "script",
    "style",
    "section",
    "article",
    "header",
    "footer",
    "iframe",
    "video",
    "source",
    "picture",
];

fn has_known_tag(text: &str) -> bool {
    let mut rest = text;
    while let Some(lt) = rest.find('<') {
        match read_tag(&rest[lt..], Tags::KnownOnly) {
            Read::Tag(_) => return true,
            Read::Unterminated => return false,
            Read::Text => {}
        }
        rest = &rest[lt + 1..];
    }
    false
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "br" | "p"
            | "div"
            | "li"
            | "ul"
            | "ol"
            | "dl"
            | "dt"
            | "dd"
            | "tr"
            | "td"
            | "th"
            | "table"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "blockquote"
            | "pre"
            | "hr"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "figure"
            | "figcaption"
            | "img"
            | "iframe"
            | "video"
    )
}

fn find_ignore_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

pub(crate) fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes `&name;`, `&#123;` and `&#x1F600;`; an unknown or malformed reference stays as
/// written (`AT&T`, `&bogus;`).
pub(crate) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after
            .find(';')
            .filter(|&semi| semi <= 40)
            .and_then(|semi| decode_entity(&after[..semi]).map(|c| (c, semi)));
        match decoded {
            Some((text, semi)) => {
                out.push_str(&text);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<String> {
    let Some(num) = name.strip_prefix('#') else {
        return resolve_html5_entity(name).map(str::to_string);
    };
    let code = match num.strip_prefix(['x', 'X']) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()?
        }
        None if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => num.parse().ok()?,
        _ => return None,
    };
    // HTML reads 128–159 as Windows-1252, as old feeds that write `&#146;` for ’ expect.
    let c = match code {
        0x80..=0x9f => WINDOWS_1252[(code - 0x80) as usize],
        0 => return None,
        _ => char::from_u32(code)?,
    };
    Some(c.to_string())
}

/// Windows-1252 for bytes 0x80–0x9F, as the HTML standard maps numeric references to them.
const WINDOWS_1252: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];
