//! A source's `languages` key as a user meets it: `check` refuses a bad code naming the
//! source's key and the fix; `match` (for input lines naming the source), `scan --once` and
//! the daemon drop that source's matched mentions in other languages (given or detected)
//! and keep those whose language cannot be told, while other sources are not affected.

use crate::common;

use common::*;
use serde_json::json;
use std::path::Path;

const EN: &str = "My Acme order never arrived and support has not answered my emails for a week";
const DE: &str = "Acme hat mein Geld nicht erstattet und der Kundenservice antwortet nicht";
const FR: &str = "Ma commande Acme n'est jamais arrivée, aucune réponse du service client";
const SHORT: &str = "acme x2 refund?";

/// A config with two JSON-lines file sources: `forum` keeps German and French (`languages`
/// as given, so a case or a repeat is accepted), `news` has no list.
fn config(forum: &Path, news: &Path, languages: &str) -> String {
    format!(
        r#"
[[sources]]
name = "forum"
kind = "file"
path = "{}"
every = "1s"
languages = {languages}

[[sources]]
name = "news"
kind = "file"
path = "{}"
every = "1s"

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr-alerts"]
"#,
        forum.display(),
        news.display()
    )
}

fn jsonl(path: &Path, posts: &[(&str, &str)]) {
    let text: String = posts
        .iter()
        .map(|(id, text)| format!("{}\n", json!({"id": id, "text": text})))
        .collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn match_applies_the_list_of_the_source_a_line_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("m.toml");
    std::fs::write(
        &cfg,
        config(
            &dir.path().join("f.jsonl"),
            &dir.path().join("n.jsonl"),
            r#"["DE", "fr", "de"]"#,
        ),
    )
    .unwrap();
    let lines = [
        json!({"id": "forum-en", "text": EN, "source": "forum"}),
        json!({"id": "forum-de", "text": DE, "source": "forum"}),
        json!({"id": "forum-fr", "text": FR, "source": "forum"}),
        json!({"id": "forum-short", "text": SHORT, "source": "forum"}),
        json!({"id": "forum-tagged", "text": EN, "source": "forum", "lang": "de-CH"}),
        json!({"id": "news-en", "text": EN, "source": "news"}),
        json!({"id": "none-en", "text": EN}),
    ];
    let out = run_match(&cfg, &[], &lines);
    let rules = |id: &str| {
        let v = out.iter().find(|v| v["id"] == id).unwrap();
        (v["rules"].clone(), v["lang"].clone())
    };
    assert_eq!(
        rules("forum-en"),
        (json!([]), json!("en")),
        "English is not on forum's list"
    );
    assert_eq!(rules("forum-de"), (json!(["acme"]), json!("de")));
    assert_eq!(rules("forum-fr"), (json!(["acme"]), json!("fr")));
    assert_eq!(
        rules("forum-short"),
        (json!(["acme"]), json!(null)),
        "a language that cannot be told passes"
    );
    assert_eq!(
        rules("forum-tagged"),
        (json!(["acme"]), json!("de-CH")),
        "a given tag decides, its region ignored"
    );
    assert_eq!(rules("news-en").0, json!(["acme"]), "news has no list");
    assert_eq!(rules("none-en").0, json!(["acme"]), "no source named");
}

#[test]
fn check_refuses_a_bad_code_naming_the_source_key_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("m.toml");
    let text = config(
        &dir.path().join("f.jsonl"),
        &dir.path().join("n.jsonl"),
        r#"["de", "german", "de-AT"]"#,
    );
    std::fs::write(&cfg, &text).unwrap();
    let out = mentiondesk()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .position(|l| l.starts_with("languages"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(
            "m.toml:{line}: sources[0].languages: \"german\" is not a language code; use two-letter ISO 639-1 codes such as languages = [\"en\", \"de\"]"
        )),
        "{err}"
    );
    assert!(
        err.contains(
            "sources[0].languages: \"de-AT\" names a region; list languages only, e.g. languages = [\"de\"]"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_and_the_daemon_drop_a_sources_mentions_in_other_languages() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (forum, news) = (dir.path().join("f.jsonl"), dir.path().join("n.jsonl"));
    jsonl(
        &forum,
        &[("f-en", EN), ("f-de", DE), ("f-fr", FR), ("f-short", SHORT)],
    );
    jsonl(&news, &[("n-en", EN), ("n-fr", FR)]);
    let text = config(&forum, &news, r#"["de"]"#);

    // scan --once: what each source would alert.
    let parsed = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    let results = mentiondesk::app::scan_once(&parsed).await.unwrap();
    let hits = |name: &str| -> Vec<String> {
        let (_, r) = results.iter().find(|(n, _)| n == name).unwrap();
        let mut ids: Vec<String> = r
            .as_ref()
            .unwrap()
            .iter()
            .map(|h| h.mention.item_id.clone())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(hits("forum"), ["f-de", "f-short"]);
    assert_eq!(hits("news"), ["n-en", "n-fr"]);

    // The daemon: the same four alerts reach Slack, and the dropped ones never do.
    let daemon_text = ConfigBuilder::new().slack(&slack).toml() + &text;
    let daemon = Daemon::start(&daemon_text).await;
    slack.wait_for_posts(4, 20).await;
    // A few more polls: nothing else comes later.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let roots = slack.roots();
    let mut texts: Vec<String> = roots.iter().map(|p| p.body.to_string()).collect();
    texts.sort();
    assert_eq!(texts.len(), 4, "{texts:#?}");
    let posted = |needle: &str| texts.iter().filter(|t| t.contains(needle)).count();
    assert_eq!(posted("forum (file)"), 2, "{texts:#?}");
    assert_eq!(posted("news (file)"), 2, "{texts:#?}");
    assert_eq!(posted("Kundenservice"), 1);
    assert_eq!(posted("never arrived"), 1, "only news' English post");
    assert_eq!(posted("commande"), 1, "only news' French post");
    daemon.stop().await;
}
