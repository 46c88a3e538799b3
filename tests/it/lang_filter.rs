//! Language (issue 15 part 3) as a user meets it: `match` prints the detected `"lang"`,
//! `lang:` rules and `[rules_defaults] languages` see it, sentiment is `null` outside
//! English; `check` refuses an unknown code with the fix; and the daemon posts a German
//! complaint saying its sentiment was not scored, drops a French one, and scores English.

use crate::common;

use common::*;

const EN: &str = "My Acme order never arrived and support has not answered my emails for a week";
const DE: &str = "Acme hat mein Geld nicht erstattet und der Kundenservice antwortet nicht";
const FR: &str = "Ma commande Acme n'est jamais arrivée, aucune réponse du service client";

const CONFIG: &str = r#"
[[rules]]
name = "acme"
query = 'acme'
alert = ["slack:#care"]

[[rules]]
name = "acme-de"
query = 'acme lang:de'
alert = ["slack:#care-de"]

[rules_defaults]
languages = ["en", "DE"]
"#;

/// Runs `match` with `config` over `lines` and returns its JSON lines.
fn run_match(config: &str, lines: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("m.toml");
    std::fs::write(&cfg, config).unwrap();
    common::run_match(&cfg, &[], lines)
}

#[test]
fn match_detects_filters_and_leaves_foreign_sentiment_unscored() {
    use serde_json::json;
    let out = run_match(
        CONFIG,
        &[
            json!({"id": "en", "text": EN}),
            json!({"id": "de", "text": DE}),
            json!({"id": "fr", "text": FR}),
            json!({"id": "short", "text": "acme x2 refund?"}),
            json!({"id": "tagged-pt", "text": EN, "lang": "pt-BR"}),
            json!({"id": "tagged-de", "text": EN, "lang": "de-AT"}),
            json!({"id": "nothing", "text": "Ich warte immer noch auf mein Paket"}),
        ],
    );
    let by_id = |id: &str| out.iter().find(|v| v["id"] == id).unwrap().clone();

    let en = by_id("en");
    assert_eq!(en["rules"], json!(["acme"]), "{en}");
    assert_eq!(en["lang"], "en", "{en}");
    assert_eq!(en["negative"], true, "English is scored: {en}");
    assert!(en["sentiment"].is_number(), "{en}");

    let de = by_id("de");
    assert_eq!(
        de["rules"],
        json!(["acme", "acme-de"]),
        "lang:de sees it: {de}"
    );
    assert_eq!(de["lang"], "de", "{de}");
    assert_eq!(
        de["sentiment"],
        json!(null),
        "not scored, not guessed: {de}"
    );
    assert_eq!(de["negative"], json!(null), "{de}");
    assert_eq!(de["priority"], "normal", "not raised for negativity: {de}");

    let fr = by_id("fr");
    assert_eq!(fr["rules"], json!([]), "French is not on the list: {fr}");
    assert_eq!(fr["lang"], "fr", "{fr}");
    assert_eq!(fr["priority"], json!(null));

    let short = by_id("short");
    assert_eq!(short["rules"], json!(["acme"]), "unknown language is kept");
    assert_eq!(short["lang"], json!(null), "{short}");
    assert!(short["sentiment"].is_number(), "unknown is scored: {short}");

    let pt = by_id("tagged-pt");
    assert_eq!(pt["rules"], json!([]), "the given tag decides: {pt}");
    assert_eq!(pt["lang"], "pt-BR");
    let tagged_de = by_id("tagged-de");
    assert_eq!(
        tagged_de["rules"],
        json!(["acme", "acme-de"]),
        "{tagged_de}"
    );
    assert_eq!(tagged_de["sentiment"], json!(null), "{tagged_de}");

    let nothing = by_id("nothing");
    assert_eq!(nothing["rules"], json!([]));
    assert_eq!(
        nothing["lang"],
        json!(null),
        "a post no rule looks at is not detected: {nothing}"
    );

    // Without the list every language alerts, still unscored outside English.
    let open = run_match(
        &CONFIG.replace("languages = [\"en\", \"DE\"]", ""),
        &[json!({"id": "fr", "text": FR})],
    );
    assert_eq!(open[0]["rules"], json!(["acme"]), "{}", open[0]);
    assert_eq!(open[0]["lang"], "fr");
    assert_eq!(open[0]["negative"], json!(null));
}

#[test]
fn check_refuses_an_unknown_language_code_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("m.toml");
    std::fs::write(
        &cfg,
        CONFIG.replace("[\"en\", \"DE\"]", "[\"en\", \"english\", \"en-GB\"]"),
    )
    .unwrap();
    let out = mentiondesk()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("rules_defaults.languages: \"english\" is not a language code; use two-letter ISO 639-1 codes such as languages = [\"en\", \"de\"]"),
        "{err}"
    );
    assert!(
        err.contains("\"en-GB\" names a region; list languages only, e.g. languages = [\"en\"]"),
        "{err}"
    );
}

/// Through the daemon: a feed with an English, a German and a French complaint, and
/// `languages = ["en", "de"]`. Slack gets two alerts: the English one says it is negative;
/// the German one says its sentiment was not scored and is not raised; the French one is
/// stored without an alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_says_when_sentiment_was_not_scored_and_drops_unlisted_languages() {
    let slack = FakeSlack::start().await;
    let feed = rss(&[
        ("g-en".into(), "Acme refund".into(), EN.into()),
        ("g-de".into(), "Acme Erstattung".into(), DE.into()),
        ("g-fr".into(), "Acme commande".into(), FR.into()),
    ]);
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(feed))]).await;
    let config = ConfigBuilder::new()
        .slack(&slack)
        .rss("news", &feeds.url("/feed.xml"))
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .key("priority", "normal")
        .table("[rules_defaults]")
        .key("languages", ["en", "de"])
        .toml();
    let daemon = Daemon::start(&config).await;
    slack.wait_for_posts(2, 20).await;
    // A few more polls: the French item must not be posted later either.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let posts = slack.posts();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    let body_of = |word: &str| {
        posts
            .iter()
            .map(|p| p.body.to_string())
            .find(|b| b.contains(word))
            .unwrap_or_else(|| panic!("no post with {word}: {posts:#?}"))
    };
    let en = body_of("Acme refund");
    assert!(en.contains("negative"), "{en}");
    assert!(!en.contains("not scored"), "{en}");
    let de = body_of("Acme Erstattung");
    assert!(
        de.contains("sentiment not scored (language: de)"),
        "the alert says why there is no score: {de}"
    );
    assert!(
        de.contains("sentiment is scored for English posts only"),
        "{de}"
    );
    assert!(de.contains("Normal priority"), "not raised: {de}");
    assert!(!posts
        .iter()
        .any(|p| p.body.to_string().contains("commande")));
    daemon.stop().await;
}
