//! Real Jetstream payload shapes: facets, embeds, replies, quotes, and the events to skip.

use super::search::{ago, search_source, HANDLE_DID};
use super::*;

// ---------- real payload shapes: facets, embeds, replies, quotes, other events ----------

/// The matching text of a mention, as the intake hands it to the rules.
fn rule_hits(rules: &[(&str, &str)], m: &Mention) -> Vec<String> {
    let set = mentiondesk::rules::RuleSet::compile(rules.iter().copied()).unwrap();
    let doc = mentiondesk::rules::Document {
        text: &m.text,
        title: m.title.as_deref(),
        author: m.author.as_deref(),
        url: m.url.as_deref(),
        source: &m.source,
        source_kind: &m.source_kind,
        lang: m.lang.as_deref(),
    };
    set.matches(&doc).into_iter().map(|r| r.name).collect()
}

fn source_with_query(url: &str, query: &str) -> Box<dyn sources::Source> {
    let text = format!(
        "[[sources]]\nname = \"bsky\"\nkind = \"bluesky\"\nquery = '{query}'\nurl = \"{url}\"\n\
         every = \"1s\"\ntimeout = \"3s\"\nallow_private = true\nauthor_details = false\n\n\
         [[rules]]\nname = \"r\"\nquery = \"acme\"\nalert = [\"slack:#pr-alerts\"]\n"
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

/// A post as the Bluesky app writes it when the text holds a long link: the display text is
/// shortened (`www.youtube.com/watch?v=V5lD...`) and an `app.bsky.richtext.facet#link`
/// feature carries the full URI at the display text's UTF-8 byte range (atproto lexicon
/// `app.bsky.richtext.facet`: `index.byteStart`/`byteEnd`, `features[].uri`). The emoji in
/// front makes byte offsets differ from character offsets. The mention facet follows the
/// same lexicon (`#mention {did}`); the tag facet `#tag {tag}` (tag without `#`).
fn shortened_link_record() -> serde_json::Value {
    let text = "🎬🔥 New video from @acme.bsky.social www.youtube.com/watch?v=V5lD... #Review";
    let link = "www.youtube.com/watch?v=V5lD...";
    let handle = "@acme.bsky.social";
    let tag = "#Review";
    let at = |s: &str| text.find(s).unwrap();
    serde_json::json!({
        "$type": "app.bsky.feed.post",
        "createdAt": "2024-09-09T19:46:02.102Z",
        "langs": ["en"],
        "text": text,
        "facets": [
            {"$type": "app.bsky.richtext.facet",
             "index": {"byteStart": at(handle), "byteEnd": at(handle) + handle.len()},
             "features": [{"$type": "app.bsky.richtext.facet#mention",
                 "did": "did:plc:acmeacmeacmeacmeacme001"}]},
            {"$type": "app.bsky.richtext.facet",
             "index": {"byteStart": at(link), "byteEnd": at(link) + link.len()},
             "features": [{"$type": "app.bsky.richtext.facet#link",
                 "uri": "https://www.youtube.com/watch?v=V5lDxKq8mYw&t=42s"}]},
            {"$type": "app.bsky.richtext.facet",
             "index": {"byteStart": at(tag), "byteEnd": at(tag) + tag.len()},
             "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "Review"}]},
        ],
    })
}

/// Issue 11, defect 5: a rule on the full URL (or the video id) of a shortened link never
/// matched, and the alert showed the shortened `...` link. Checked to fail before the fix (the
/// post was not even kept: the keyword is only in the facet's URI).
#[tokio::test]
async fn a_shortened_link_is_matched_and_shown_by_its_full_uri() {
    let jet = FakeJetstream::start().await;
    let mut src = source_with_query(&jet.url(), "V5lDxKq8mYw");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    jet.send(
        10,
        jet_commit(DID, "3l3qo2vutsw2b", 10, shortened_link_record()),
    );
    tokio::time::timeout(Duration::from_secs(5), src.ready())
        .await
        .expect("the post is kept");
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(
        m.text,
        "🎬🔥 New video from @acme.bsky.social https://www.youtube.com/watch?v=V5lDxKq8mYw&t=42s #Review"
    );
    assert_eq!(
        rule_hits(
            &[
                ("url", "youtube.com/watch?v=V5lDxKq8mYw"),
                ("other-video", "youtube.com/watch?v=V5lDxKq8mYx"),
                ("id", "V5lDxKq8mYw"),
                ("handle", "@acme.bsky.social"),
                ("tag", "#review"),
                ("site", "site:bsky.app"),
            ],
            m
        ),
        ["url", "id", "handle", "tag", "site"]
    );
}

/// Embeds (atproto lexicons `app.bsky.embed.external`, `.record`, `.recordWithMedia`,
/// `.images`, `.video`) and replies (`app.bsky.feed.post#replyRef`): what they carry is part
/// of the text, so a brand named only in a link card or an image's alt text is found. A
/// quote carries only the quoted post's URI (its text is not in the event), shown as a link.
#[tokio::test]
async fn embeds_quotes_images_and_replies_are_matched_and_shown() {
    let jet = FakeJetstream::start().await;
    let mut src = source(&jet.url(), "");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    let post = |text: &str, extra: serde_json::Value| {
        let mut r = serde_json::json!({"$type": "app.bsky.feed.post",
            "createdAt": "2024-09-09T19:46:02.102Z", "langs": ["en"], "text": text});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    let quoted = "at://did:plc:quotedquotedquoted000001/app.bsky.feed.post/3kq2";
    let events = [
        // A link card: the brand only in the card's title.
        post(
            "read this",
            serde_json::json!({"embed": {"$type": "app.bsky.embed.external",
            "external": {"uri": "https://news.example/acme-recall",
                "title": "Acme recalls routers", "description": "Overheating units",
                "thumb": {"$type": "blob", "ref": {"$link": "bafkreih"}, "mimeType": "image/jpeg", "size": 1000}}}}),
        ),
        // A quote of another post that names the brand in the quoting text.
        post(
            "acme did it again",
            serde_json::json!({"embed": {"$type": "app.bsky.embed.record",
            "record": {"uri": quoted, "cid": "bafyreiq"}}}),
        ),
        // A quote with images: the brand only in the alt text.
        post(
            "look",
            serde_json::json!({"embed": {"$type": "app.bsky.embed.recordWithMedia",
            "record": {"$type": "app.bsky.embed.record", "record": {"uri": quoted, "cid": "bafyreiq"}},
            "media": {"$type": "app.bsky.embed.images", "images": [
                {"alt": "Acme router smoking", "image": {"$type": "blob", "ref": {"$link": "bafkreii"},
                    "mimeType": "image/jpeg", "size": 2000},
                 "aspectRatio": {"width": 4, "height": 3}}]}}}),
        ),
        // A reply.
        post(
            "acme never answered me either",
            serde_json::json!({"reply": {
            "root": {"uri": "at://did:plc:rootrootrootrootroot0001/app.bsky.feed.post/3kr", "cid": "bafyreir"},
            "parent": {"uri": "at://did:plc:parentparentparentpa0001/app.bsky.feed.post/3kp", "cid": "bafyreip"}}}),
        ),
    ];
    for (i, record) in events.into_iter().enumerate() {
        let t = 100 + i as i64;
        jet.send(t, jet_commit(DID, &format!("e{i}"), t, record));
    }
    let mut got = Vec::new();
    while got.len() < 4 {
        tokio::time::timeout(Duration::from_secs(5), src.ready())
            .await
            .expect("all four arrive");
        got.extend(src.poll(&mut state).await.unwrap());
    }
    let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "read this\n\nLink: Acme recalls routers — Overheating units https://news.example/acme-recall",
            "acme did it again\n\nQuoting https://bsky.app/profile/did:plc:quotedquotedquoted000001/post/3kq2",
            "look\n\nQuoting https://bsky.app/profile/did:plc:quotedquotedquoted000001/post/3kq2\nImage: Acme router smoking",
            "acme never answered me either\n\nIn reply to https://bsky.app/profile/did:plc:parentparentparentpa0001/post/3kp",
        ]
    );
    for m in &got {
        assert_eq!(rule_hits(&[("acme", "acme")], m), ["acme"], "{}", m.text);
    }
}

/// Identity and account events and deletes (Jetstream README examples) that happen to
/// contain a keyword are skipped without an error, and the stream goes on.
#[tokio::test]
async fn identity_account_and_delete_events_are_skipped_without_errors() {
    let jet = FakeJetstream::start().await;
    let mut src = source(&jet.url(), "");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    jet.send(200, jet_identity("did:plc:acme", "acme.bsky.social", 200));
    jet.send(201, jet_account("did:plc:acme", 201));
    jet.send(202, jet_delete("did:plc:acme", "acme", 202));
    jet.send(203, jet_post(DID, "k1", 203, "acme after the noise"));
    assert_eq!(
        next_batch(&mut src, &mut state).await,
        ["acme after the noise"]
    );
    assert_eq!(state.cursor.as_deref(), Some("203"));
    assert_eq!(src.take_warning(), None);
    // After a post, skipped events still move the resume point: a restart does not replay
    // them.
    jet.send(204, jet_identity("did:plc:acme", "acme2.bsky.social", 204));
    jet.send(205, jet_post(DID, "k2", 205, "acme again"));
    assert_eq!(next_batch(&mut src, &mut state).await, ["acme again"]);
    assert_eq!(state.cursor.as_deref(), Some("205"));
    assert_eq!(jet.connections().len(), 1, "no reconnect: nothing failed");
}

/// The search back-fill reads the same record (with facets and embeds) inside a `postView`
/// (`app.bsky.feed.defs#postView`): it must make the very same mention as Jetstream.
#[tokio::test]
async fn search_resolves_facets_and_embeds_exactly_as_jetstream_does() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    let created = ago(600);
    let mut record = shortened_link_record();
    record["createdAt"] = serde_json::json!(created);
    record["embed"] = serde_json::json!({"$type": "app.bsky.embed.external",
        "external": {"uri": "https://www.youtube.com/watch?v=V5lDxKq8mYw",
            "title": "Acme X200 review", "description": "Is it worth it?"}});
    api.bsky_add(bsky_post_view(
        HANDLE_DID,
        "ann.bsky.social",
        "3l3qo2vutsw2c",
        &created,
        record.clone(),
    ));
    let mut searching = search_source(&jet, &api, BSKY_APP_PASSWORD, "");
    let found = searching.poll(&mut SourceState::default()).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");

    let mut streaming = source(&jet.url(), "");
    let mut state = SourceState::default();
    streaming.poll(&mut state).await.unwrap();
    jet.send(1, jet_commit(HANDLE_DID, "3l3qo2vutsw2c", 1, record));
    tokio::time::timeout(Duration::from_secs(5), streaming.ready())
        .await
        .unwrap();
    let streamed = streaming.poll(&mut state).await.unwrap();
    assert_eq!(found, streamed, "search and Jetstream disagree");
    assert!(
        found[0]
            .text
            .contains("https://www.youtube.com/watch?v=V5lDxKq8mYw&t=42s"),
        "{}",
        found[0].text
    );
    assert!(found[0].text.ends_with(
        "Link: Acme X200 review — Is it worth it? https://www.youtube.com/watch?v=V5lDxKq8mYw"
    ));
}
