//! A Bluesky post record's searchable, displayable text: the `text` with its rich-text facets
//! resolved, followed by what the post embeds and what it replies to. Jetstream and the search
//! back-fill both build a mention's text here, so the same post gives the same text.
//! It does not fetch anything: a quoted post's own text is not in the record (only its URI),
//! and a mention facet carries a DID, not the handle, so neither can be added without an API
//! call per post, which the firehose does not allow.
//!
//! Shapes follow the atproto lexicons `app.bsky.feed.post`, `app.bsky.richtext.facet`
//! (`index.byteStart`/`byteEnd` are UTF-8 byte offsets into `text`, end exclusive; features
//! `#link {uri}`, `#mention {did}`, `#tag {tag}`) and `app.bsky.embed.{external, record,
//! recordWithMedia, images, video}`. Fields are read leniently from JSON values: a malformed
//! facet or embed is ignored, never a reason to lose the post.

use serde_json::Value;

/// The text rules match and alerts show: facets resolved, then one line per embedded link,
/// quoted post, image or video description, and the post replied to.
pub(crate) fn post_text(text: &str, facets: &Value, embed: &Value, reply: &Value) -> String {
    let mut out = resolve_facets(text, facets);
    let mut context = Vec::new();
    embed_lines(embed, &mut context);
    if let Some(parent) = reply.pointer("/parent/uri").and_then(Value::as_str) {
        context.push(format!("In reply to {}", web_url(parent)));
    }
    if !context.is_empty() {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&context.join("\n"));
    }
    out
}

/// `text` with each link facet's shortened display text (`youtube.com/watch?v=V5lD...`)
/// replaced by its full `uri`, and a tag facet shown as `#tag` when the display differs.
/// Mention facets keep their display text (`@handle`), which is what people write in rules.
/// Facets with a range outside the text, not on character boundaries, or overlapping an
/// earlier one are ignored, as the Bluesky app ignores them.
pub(crate) fn resolve_facets(text: &str, facets: &Value) -> String {
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for facet in facets.as_array().into_iter().flatten() {
        let index = &facet["index"];
        let (Some(start), Some(end)) = (
            index["byteStart"]
                .as_u64()
                .and_then(|v| usize::try_from(v).ok()),
            index["byteEnd"]
                .as_u64()
                .and_then(|v| usize::try_from(v).ok()),
        ) else {
            continue;
        };
        if start > end
            || end > text.len()
            || !text.is_char_boundary(start)
            || !text.is_char_boundary(end)
        {
            continue;
        }
        let shown = &text[start..end];
        for feature in facet["features"].as_array().into_iter().flatten() {
            let kind = feature["$type"].as_str().unwrap_or("");
            let replacement = match kind {
                "app.bsky.richtext.facet#link" => feature["uri"]
                    .as_str()
                    .filter(|u| !u.is_empty() && *u != shown)
                    .map(str::to_string),
                "app.bsky.richtext.facet#tag" => feature["tag"]
                    .as_str()
                    .map(|t| format!("#{}", t.trim_start_matches('#')))
                    .filter(|t| !t.eq_ignore_ascii_case(shown)),
                _ => None,
            };
            if let Some(r) = replacement {
                edits.push((start, end, r));
                break;
            }
        }
    }
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(text.len() + edits.len() * 32);
    let mut at = 0;
    for (start, end, replacement) in edits {
        if start < at {
            continue; // overlaps the previous facet
        }
        out.push_str(&text[at..start]);
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// One line per thing the embed carries that a reader or a rule cares about.
fn embed_lines(embed: &Value, out: &mut Vec<String>) {
    match embed["$type"].as_str().unwrap_or("") {
        "app.bsky.embed.external" => {
            let ext = &embed["external"];
            let uri = ext["uri"].as_str().unwrap_or("").trim();
            let title = ext["title"].as_str().unwrap_or("").trim();
            let description = ext["description"].as_str().unwrap_or("").trim();
            let words: Vec<&str> = [title, description]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            if uri.is_empty() && words.is_empty() {
                return;
            }
            let mut line = String::from("Link:");
            if !words.is_empty() {
                line.push(' ');
                line.push_str(&words.join(" — "));
            }
            if !uri.is_empty() {
                line.push(' ');
                line.push_str(uri);
            }
            out.push(line);
        }
        "app.bsky.embed.record" => {
            if let Some(uri) = embed.pointer("/record/uri").and_then(Value::as_str) {
                out.push(format!("Quoting {}", web_url(uri)));
            }
        }
        "app.bsky.embed.recordWithMedia" => {
            embed_lines(&embed["record"], out);
            embed_lines(&embed["media"], out);
        }
        "app.bsky.embed.images" => {
            for image in embed["images"].as_array().into_iter().flatten() {
                if let Some(alt) = image["alt"]
                    .as_str()
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                {
                    out.push(format!("Image: {alt}"));
                }
            }
        }
        "app.bsky.embed.video" => {
            if let Some(alt) = embed["alt"]
                .as_str()
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                out.push(format!("Video: {alt}"));
            }
        }
        _ => {}
    }
}

/// The bsky.app address of a post's `at://` URI; other records keep their `at://` URI.
pub(crate) fn web_url(at_uri: &str) -> String {
    let parts: Option<(&str, &str, &str)> = at_uri.strip_prefix("at://").and_then(|rest| {
        let mut p = rest.splitn(3, '/');
        Some((p.next()?, p.next()?, p.next()?))
    });
    match parts {
        Some((repo, "app.bsky.feed.post", rkey)) if !rkey.is_empty() && !rkey.contains('/') => {
            format!("https://bsky.app/profile/{repo}/post/{rkey}")
        }
        _ => at_uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A link facet after an emoji: byte offsets, not character offsets (the emoji is 4 bytes
    /// and 1 char, so character offsets would cut the wrong span).
    #[test]
    fn link_facets_are_resolved_at_byte_offsets() {
        let text = "🎬 new video www.youtube.com/watch?v=V5lD... go";
        let shown = "www.youtube.com/watch?v=V5lD...";
        let start = text.find(shown).unwrap();
        let facets = json!([{
            "index": {"byteStart": start, "byteEnd": start + shown.len()},
            "features": [{"$type": "app.bsky.richtext.facet#link",
                "uri": "https://www.youtube.com/watch?v=V5lDxKq8mYw"}]
        }]);
        assert_eq!(
            resolve_facets(text, &facets),
            "🎬 new video https://www.youtube.com/watch?v=V5lDxKq8mYw go"
        );
    }

    #[test]
    fn bad_and_overlapping_facets_are_ignored() {
        let text = "é abc def";
        let link = |s: usize, e: usize, uri: &str| {
            json!({"index": {"byteStart": s, "byteEnd": e},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}]})
        };
        let facets = json!([
            link(1, 3, "https://inside-a-char"), // byte 1 is inside "é"
            link(3, 99, "https://past-the-end"),
            link(3, 6, "https://a.example"),
            link(4, 9, "https://overlaps.example"),
            {"index": {"byteStart": "x"}, "features": []},
            {"features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://no-index"}]},
        ]);
        assert_eq!(resolve_facets(text, &facets), "é https://a.example def");
    }

    #[test]
    fn mentions_keep_the_handle_and_tags_show_as_tags() {
        let text = "hi @acme.bsky.social #Acme";
        let facets = json!([
            {"index": {"byteStart": 3, "byteEnd": 20},
             "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:abc"}]},
            {"index": {"byteStart": 21, "byteEnd": 26},
             "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "Acme"}]},
        ]);
        assert_eq!(resolve_facets(text, &facets), text);
    }

    #[test]
    fn embeds_and_replies_add_context_lines() {
        let embed = json!({"$type": "app.bsky.embed.recordWithMedia",
            "record": {"$type": "app.bsky.embed.record",
                "record": {"uri": "at://did:plc:q/app.bsky.feed.post/3kq", "cid": "bafy"}},
            "media": {"$type": "app.bsky.embed.images", "images": [
                {"alt": "Acme router with a red light", "image": {}},
                {"alt": "", "image": {}}]}});
        let reply = json!({"root": {"uri": "at://did:plc:r/app.bsky.feed.post/1", "cid": "c"},
            "parent": {"uri": "at://did:plc:p/app.bsky.feed.post/2", "cid": "c"}});
        assert_eq!(
            post_text("same here", &json!(null), &embed, &reply),
            "same here\n\nQuoting https://bsky.app/profile/did:plc:q/post/3kq\n\
             Image: Acme router with a red light\n\
             In reply to https://bsky.app/profile/did:plc:p/post/2"
        );
        let external = json!({"$type": "app.bsky.embed.external", "external": {
            "uri": "https://acme.example/recall", "title": "Acme recall",
            "description": "Routers affected"}});
        assert_eq!(
            post_text("", &json!([]), &external, &json!(null)),
            "Link: Acme recall — Routers affected https://acme.example/recall"
        );
    }
}
