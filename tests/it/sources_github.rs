//! The `github` source against a fake GitHub REST API on 127.0.0.1 (`common::fake_github`):
//! issue search in `created:` windows under the 1,000-result cap, comment listings paged by
//! `Link`, restarts, GitHub's rate-limit headers and error answers, config checks, and an
//! issue turned into a Slack alert by the daemon.

use crate::common;

use common::fake_github::{
    gh_comment, gh_discussion, gh_issue, gh_pull, Backlog, FakeGithub, GITHUB_TOKEN,
};
use common::faults::Fault;
use common::{ConfigBuilder, Daemon, FakeSlack};
use mentiondesk::sources::{self, SourceError, SourceState};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// A `github` source on the fake; `extra` is more TOML for the entry.
fn source(fake: &FakeGithub, extra: &str) -> Box<dyn sources::Source> {
    let text = format!(
        r#"
[[sources]]
name = "gh"
kind = "github"
query = '(acme OR "acme corp") AND NOT hiring'
url = "{}"
timeout = "5s"
allow_private = true
{extra}

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr"]
"#,
        fake.url()
    );
    let env = |k: &str| (k == "GITHUB_TOKEN").then(|| GITHUB_TOKEN.to_string());
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &env)
        .unwrap_or_else(|e| panic!("{e}"));
    sources::build(&config.sources[0]).unwrap()
}

const WITH_TOKEN: &str = "token = \"${GITHUB_TOKEN}\"";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn ids(got: &[mentiondesk::model::Mention]) -> Vec<&str> {
    let mut v: Vec<&str> = got.iter().map(|m| m.item_id.as_str()).collect();
    v.sort();
    v
}

/// A restart: the state as the store would give it back.
fn restored(state: &SourceState) -> SourceState {
    serde_json::from_str(&serde_json::to_string(state).unwrap()).unwrap()
}

#[tokio::test]
async fn real_search_and_comment_shapes_become_clean_mentions() {
    let fake = FakeGithub::start().await;
    let t = now();
    fake.add_issue(gh_issue(
        35802,
        "acme/widgets",
        132,
        t - 600,
        "  Acme widget crashes on start  ",
        Some("Steps:\r\n1. open the **Acme** app\r\n2. it crashes\r\n"),
    ));
    // A pull request with no description and a deleted author (GitHub shows `ghost`).
    let mut pr = gh_pull(35803, "acme/widgets", 133, t - 500, "Fix acme login", None);
    pr["user"]["login"] = "ghost".into();
    fake.add_issue(pr);
    // Older than the first poll's hour: not handed on.
    fake.add_issue(gh_issue(
        35801,
        "acme/widgets",
        131,
        t - 7200,
        "acme old",
        Some("old"),
    ));
    fake.add_comment(
        "acme/widgets",
        gh_comment(
            1001,
            "acme/widgets",
            132,
            t - 400,
            "Same here, Acme support never answered",
        ),
    );
    fake.add_comment(
        "acme/widgets",
        gh_comment(1002, "acme/widgets", 132, t - 300, "unrelated: bump deps"),
    );
    fake.add_comment(
        "acme/widgets",
        gh_comment(
            1003,
            "acme/widgets",
            133,
            t - 200,
            "acme fixed it for me too",
        ),
    );

    let mut src = source(&fake, &format!("{WITH_TOKEN}\nrepos = [\"acme/widgets\"]"));
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(
        ids(&got),
        ["comment:1001", "comment:1003", "issue:35802", "issue:35803"],
        "{got:#?}"
    );
    let by = |id: &str| got.iter().find(|m| m.item_id == id).unwrap();

    let issue = by("issue:35802");
    assert_eq!(issue.title.as_deref(), Some("Acme widget crashes on start"));
    assert_eq!(
        issue.text,
        "Steps:\r\n1. open the **Acme** app\r\n2. it crashes"
    );
    assert_eq!(
        issue.url.as_deref(),
        Some("https://github.com/acme/widgets/issues/132")
    );
    assert_eq!(issue.author.as_deref(), Some("Nick3C"));
    assert_eq!(issue.source_kind, "github");
    assert_eq!(issue.published.unwrap().timestamp(), t - 600);

    let pull = by("issue:35803");
    assert_eq!(
        pull.url.as_deref(),
        Some("https://github.com/acme/widgets/pull/133")
    );
    assert_eq!(
        pull.text, "https://github.com/acme/widgets/pull/133",
        "no body: the link"
    );
    assert_eq!(pull.author.as_deref(), Some("ghost"));

    let comment = by("comment:1001");
    assert_eq!(comment.title, None);
    assert_eq!(comment.text, "Same here, Acme support never answered");
    // Two comments on one issue: same page, distinct mentions by their fragment.
    assert_eq!(
        comment.url.as_deref(),
        Some("https://github.com/acme/widgets/issues/132#issuecomment-1001")
    );
    assert_eq!(comment.author.as_deref(), Some("octocat"));

    // What was sent: GitHub's headers, the token, the query words and the scope.
    let search = &fake.requests("/search/issues")[0];
    assert_eq!(search.headers["accept"], "application/vnd.github+json");
    assert_eq!(search.headers["x-github-api-version"], "2022-11-28");
    assert!(search.headers["user-agent"].starts_with("mentiondesk/"));
    assert_eq!(
        search.headers["authorization"],
        format!("Bearer {GITHUB_TOKEN}")
    );
    let q = &search.query["q"];
    assert!(q.starts_with("acme repo:acme/widgets created:>="), "{q}");
    assert_eq!(search.query["sort"], "created");
    assert_eq!(search.query["order"], "asc");
    assert_eq!(search.query["per_page"], "100");
    let listing = &fake.requests("/repos/acme/widgets/issues/comments")[0];
    assert_eq!(listing.query["sort"], "created");
    assert_eq!(listing.query["direction"], "asc");
    assert!(listing.query.contains_key("since"));

    // Both budgets seen; the one closer to running out is shown (search: 29 of 30 left).
    let quota = src.quota().expect("github's budget");
    assert_eq!(
        (quota.unit, quota.remaining, quota.limit),
        ("requests", 29, Some(30))
    );
    assert!(quota.resets_at.is_some());
}

#[tokio::test]
async fn first_poll_looks_back_one_hour_then_only_new_items_arrive() {
    let fake = FakeGithub::start().await;
    let t = now();
    fake.add_issue(gh_issue(1, "a/b", 1, t - 3 * 3600, "acme ancient", None));
    fake.add_issue(gh_issue(2, "a/b", 2, t - 3000, "acme recent", None));
    fake.add_comment(
        "a/b",
        gh_comment(10, "a/b", 1, t - 7200, "acme old comment"),
    );
    fake.add_comment(
        "a/b",
        gh_comment(11, "a/b", 1, t - 1000, "acme new comment"),
    );
    let mut src = source(&fake, "repos = [\"a/b\"]");
    let mut state = SourceState::default();
    assert_eq!(
        ids(&src.poll(&mut state).await.unwrap()),
        ["comment:11", "issue:2"]
    );
    let q = &fake.requests("/search/issues")[0].query["q"];
    let since = chrono::DateTime::parse_from_rfc3339(q.rsplit(">=").next().unwrap()).unwrap();
    let back = t - since.timestamp();
    assert!(
        (3600..=3600 + 600 + 5).contains(&back),
        "looked back {back}s"
    );
    // No token: no Authorization header at all.
    assert!(!fake.requests("/search/issues")[0]
        .headers
        .contains_key("authorization"));

    // Nothing new: the overlap re-reads, nothing is handed on twice.
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    fake.add_issue(gh_issue(3, "a/b", 3, t - 5, "acme brand new", None));
    fake.add_comment("a/b", gh_comment(12, "a/b", 3, t - 4, "acme reply"));
    // An old comment edited now shows in `since` (which is about updates) but is not new.
    let mut edited = gh_comment(9, "a/b", 1, t - 5 * 3600, "acme edited");
    edited["updated_at"] = common::fake_github::iso(t).into();
    fake.add_comment("a/b", edited);
    assert_eq!(
        ids(&src.poll(&mut state).await.unwrap()),
        ["comment:12", "issue:3"]
    );
}

#[tokio::test]
async fn a_restart_resumes_from_the_saved_state_without_gaps_or_repeats() {
    let fake = FakeGithub::start().await;
    let t = now();
    fake.add_issue(gh_issue(1, "a/b", 1, t - 100, "acme one", None));
    fake.add_comment("a/b", gh_comment(10, "a/b", 1, t - 90, "acme c1"));
    let mut state = SourceState::default();
    let extra = "repos = [\"a/b\"]";
    assert_eq!(
        source(&fake, extra).poll(&mut state).await.unwrap().len(),
        2
    );

    // "Down" for a while. One issue reaches the index late, with an older created_at than
    // what the last poll saw (inside the overlap).
    fake.add_issue(gh_issue(2, "a/b", 2, t - 150, "acme late", None));
    fake.add_issue(gh_issue(3, "a/b", 3, t - 20, "acme three", None));
    fake.add_comment("a/b", gh_comment(11, "a/b", 2, t - 10, "acme c2"));
    let mut state = restored(&state);
    let got = source(&fake, extra).poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["comment:11", "issue:2", "issue:3"]);
    let mut state = restored(&state);
    assert!(source(&fake, extra)
        .poll(&mut state)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn more_than_1000_results_are_all_read_once_across_polls_and_restarts() {
    let fake = FakeGithub::start().await;
    let t = now();
    {
        let mut s = fake.state.lock().unwrap();
        s.search.limit = 1000;
        s.search.remaining = 1000;
        // 2,500 issues in the last 50 minutes: more than one query can page to.
        s.issues = (0..2500u64)
            .map(|i| {
                gh_issue(
                    100_000 + i,
                    "a/b",
                    i,
                    t - 3000 + (i as i64 * 3000 / 2500),
                    "acme",
                    None,
                )
            })
            .collect();
    }
    let mut seen: Vec<String> = Vec::new();
    let mut state = SourceState::default();
    for poll in 0..12 {
        // Each poll from a fresh source on the saved state: restarts between the windows.
        let got = source(&fake, "").poll(&mut state).await.unwrap();
        if got.is_empty() && poll > 0 {
            break;
        }
        seen.extend(got.into_iter().map(|m| m.item_id));
        state = restored(&state);
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 2500, "every issue");
    assert_eq!(seen.len(), 2500, "no issue twice");
    let searches = fake.requests("/search/issues");
    assert!(
        searches.iter().any(|r| r.query["q"].contains("..")),
        "windows were narrowed"
    );
    assert!(searches
        .iter()
        .all(|r| r.query["page"].parse::<u32>().unwrap() <= 10));
}

#[tokio::test]
async fn comment_listings_are_paged_by_link_to_the_end() {
    let fake = FakeGithub::start().await;
    let t = now();
    for i in 0..250u64 {
        fake.add_comment(
            "a/b",
            gh_comment(5000 + i, "a/b", 7, t - 2000 + i as i64, "acme again"),
        );
    }
    let mut src = source(&fake, "repos = [\"a/b\"]");
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 250);
    let pages = fake.requests("/repos/a/b/issues/comments");
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[2].query["page"], "3");
    assert!(src.poll(&mut state).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_rate_limit_headers_pause_the_source_until_the_reset() {
    let fake = FakeGithub::start().await;
    let reset = now() + 45;
    {
        let mut s = fake.state.lock().unwrap();
        s.search.limit = 10;
        s.search.remaining = 2; // after this search: 1 left, the reserve
        s.search.reset = reset;
    }
    fake.add_issue(gh_issue(1, "a/b", 1, now() - 10, "acme", None));
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    assert_eq!(src.poll(&mut state).await.unwrap().len(), 1);
    let quota = src.quota().unwrap();
    assert_eq!((quota.remaining, quota.limit), (1, Some(10)));
    assert_eq!(quota.resets_at.unwrap().timestamp(), reset);

    let before = fake.requests("/search/issues").len();
    let err = src.poll(&mut state).await.unwrap_err();
    let wait = err.retry_after().expect("a wait");
    assert!(
        wait > Duration::from_secs(40) && wait <= Duration::from_secs(45),
        "{wait:?}"
    );
    assert_eq!(
        fake.requests("/search/issues").len(),
        before,
        "no request while paused"
    );
}

#[tokio::test]
async fn a_used_up_budget_or_a_secondary_limit_waits_as_github_says() {
    let fake = FakeGithub::start().await;
    let reset = now() + 120;
    {
        let mut s = fake.state.lock().unwrap();
        s.search.remaining = 0;
        s.search.reset = reset;
    }
    // Primary limit: 403 with x-ratelimit-remaining 0 waits for x-ratelimit-reset.
    let mut state = SourceState::default();
    let mut src = source(&fake, "");
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::RateLimited { .. }), "{err}");
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(115) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
    assert_eq!(src.quota().unwrap().remaining, 0);
    assert_eq!(state, SourceState::default(), "state untouched");

    // Secondary limit: 403 with retry-after.
    let fake = FakeGithub::start().await;
    fake.state.lock().unwrap().secondary_limit = Some(37);
    let err = source(&fake, "").poll(&mut state).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(37)), "{err}");
    // A 429 with retry-after, from the fault layer.
    fake.fail_next(Fault::rate_limited(12.0));
    let err = source(&fake, "").poll(&mut state).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(12)), "{err}");
}

#[tokio::test]
async fn a_refused_token_names_the_fix_without_printing_it() {
    let fake = FakeGithub::start().await;
    fake.state.lock().unwrap().token = "a-different-token".into();
    let err = source(&fake, WITH_TOKEN)
        .poll(&mut SourceState::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("401") && msg.contains("Bad credentials"),
        "{msg}"
    );
    assert!(msg.contains("github.com/settings/tokens"), "{msg}");
    assert!(!msg.contains(GITHUB_TOKEN), "{msg}");
    // Nor in the config's Debug (logged on start-up errors).
    let text = format!(
        "[[sources]]\nname = \"gh\"\nkind = \"github\"\nquery = \"acme\"\n{WITH_TOKEN}\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n"
    );
    let env = |k: &str| (k == "GITHUB_TOKEN").then(|| GITHUB_TOKEN.to_string());
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &env).unwrap();
    assert!(!format!("{config:?}").contains(GITHUB_TOKEN));
}

#[tokio::test]
async fn api_errors_are_named_with_the_fix_and_leave_the_state_alone() {
    let fake = FakeGithub::start().await;
    let t = now();
    fake.add_issue(gh_issue(1, "a/b", 1, t - 100, "acme one", None));
    let mut src = source(&fake, "orgs = [\"acme-inc\"]\nrepos = [\"a/b\"]");
    // The repo's comments were never listed: 404.
    let mut state = SourceState::default();
    fake.state.lock().unwrap().invalid_search = true;
    let err = src.poll(&mut state).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("422") && msg.contains("cannot be searched"),
        "{msg}"
    );
    assert!(msg.contains("check query, repos and orgs"), "{msg}");
    assert_eq!(state, SourceState::default());

    // The search works, the comments of a/b do not: a partial poll with a warning.
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["issue:1"]);
    let warning = src.take_warning().expect("a warning for the repo");
    assert!(
        warning.contains("a/b") && warning.contains("404"),
        "{warning}"
    );
    assert!(warning.contains("owner/name"), "{warning}");
}

#[tokio::test]
async fn failures_are_errors_that_leave_the_state_alone_and_the_next_poll_recovers() {
    let fake = FakeGithub::start().await;
    let t = now();
    fake.add_issue(gh_issue(1, "a/b", 1, t - 100, "acme one", None));
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    let saved = state.clone();
    fake.add_issue(gh_issue(2, "a/b", 2, t - 50, "acme two", None));

    fake.fail_next(Fault::http(502));
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(
        matches!(err, SourceError::Status { status: 502, .. }),
        "{err}"
    );
    fake.fail_next(Fault::Malformed);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Parse(_)), "{err}");
    fake.fail_next(Fault::Truncated);
    assert!(src.poll(&mut state).await.is_err());
    assert_eq!(state, saved, "a failed poll leaves the state as it was");
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["issue:2"]);
}

#[tokio::test]
async fn incomplete_results_are_read_again_and_shown_as_a_warning() {
    let fake = FakeGithub::start().await;
    let t = now();
    fake.add_issue(gh_issue(1, "a/b", 1, t - 100, "acme one", None));
    fake.state.lock().unwrap().incomplete = true;
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    assert_eq!(src.poll(&mut state).await.unwrap().len(), 1);
    assert!(src.take_warning().unwrap().contains("incomplete_results"));
    let cursor = state.cursor.clone();
    // GitHub finds the rest on the next try: only the new one is handed on.
    fake.state.lock().unwrap().incomplete = false;
    fake.add_issue(gh_issue(2, "a/b", 2, t - 150, "acme found late", None));
    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["issue:2"]);
    assert!(state.cursor > cursor);
}

/// A window GitHub keeps answering `incomplete_results` for is read again twice, then taken as
/// it came with a warning that results may be incomplete: the watermark moves on instead of
/// staying on that window for good.
#[tokio::test]
async fn a_window_that_stays_incomplete_is_taken_after_three_tries_with_a_warning() {
    let fake = FakeGithub::start().await;
    let t = now();
    fake.add_issue(gh_issue(1, "a/b", 1, t - 100, "acme one", None));
    fake.state.lock().unwrap().incomplete = true;
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    let cursor = |s: &SourceState| -> i64 { s.cursor.as_deref().unwrap().parse().unwrap() };

    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["issue:1"]);
    let w = src.take_warning().unwrap();
    assert!(
        w.contains("incomplete_results") && w.contains("try 1 of 3"),
        "{w}"
    );
    let stuck = cursor(&state);
    let mut state = restored(&state);
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    let w = src.take_warning().unwrap();
    assert!(w.contains("try 2 of 3"), "{w}");
    assert_eq!(cursor(&state), stuck, "read again, not passed");

    // The third incomplete answer in a row is taken: what came is handed on, the watermark
    // moves, and /healthz says results may be incomplete.
    fake.add_issue(gh_issue(2, "a/b", 2, t - 50, "acme two", None));
    let mut state = restored(&state);
    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["issue:2"]);
    let w = src.take_warning().unwrap();
    assert!(
        w.contains("3 times in a row") && w.contains("may be incomplete"),
        "{w}"
    );
    assert!(cursor(&state) > stuck);

    // The next window counts its own tries.
    fake.add_issue(gh_issue(3, "a/b", 3, t - 10, "acme three", None));
    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["issue:3"]);
    let w = src.take_warning().unwrap();
    assert!(w.contains("try 1 of 3"), "{w}");
    fake.state.lock().unwrap().incomplete = false;
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    assert_eq!(src.take_warning(), None);
    assert!(!state.extra.contains_key("search_incomplete"));
}

/// A week of downtime on a busy word: 50,000 issues, one a second from just after the
/// watermark. Narrowing the window by halves took more than a poll's 10 search requests and
/// the narrowed window was not kept, and the ten minutes re-read before the watermark held
/// more than a poll could read, so the watermark stopped moving for good. Now every poll
/// moves it, and the backlog arrives whole and once, across restarts.
#[tokio::test]
async fn a_week_long_backlog_is_read_completely_and_every_poll_moves_the_watermark() {
    let fake = FakeGithub::start().await;
    let t = now();
    let week_ago = t - 7 * 86_400;
    const COUNT: u64 = 50_000;
    {
        let mut s = fake.state.lock().unwrap();
        s.search.limit = 1_000_000;
        s.search.remaining = 1_000_000;
        s.backlog = Some(Backlog {
            first_id: 1_000_000,
            start: week_ago + 1,
            step: 1,
            count: COUNT,
        });
    }
    fake.add_issue(gh_issue(7, "a/b", 7, t - 30, "acme today", None));
    let mut state = SourceState::default();
    state.cursor = Some(week_ago.to_string());
    let cursor = |s: &SourceState| -> i64 { s.cursor.as_deref().unwrap().parse().unwrap() };
    let mut seen: Vec<String> = Vec::new();
    let mut polls = 0u32;
    while seen.len() < COUNT as usize + 1 {
        polls += 1;
        assert!(
            polls <= 80,
            "not caught up after {polls} polls ({} read)",
            seen.len()
        );
        let before = cursor(&state);
        let searches = fake.requests("/search/issues").len();
        // A fresh source on the saved state every poll: restarts in the middle of the backlog.
        let got = source(&fake, "").poll(&mut state).await.unwrap();
        assert!(fake.requests("/search/issues").len() - searches <= 10);
        assert!(!got.is_empty(), "poll {polls} read nothing");
        seen.extend(got.into_iter().map(|m| m.item_id));
        assert!(
            cursor(&state) > before || seen.len() == COUNT as usize + 1,
            "poll {polls} did not move the watermark from {before}"
        );
        state = restored(&state);
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no issue twice");
    assert!(
        unique.contains(&"issue:7".to_string()) && unique.contains(&"issue:1049999".to_string())
    );
    assert!(source(&fake, "").poll(&mut state).await.unwrap().is_empty());
    assert!(fake
        .requests("/search/issues")
        .iter()
        .all(|r| r.query["page"].parse::<u32>().unwrap() <= 10));
}

/// A server's wait is capped at a day before any arithmetic: a `retry-after` of 10^13 seconds
/// or an `x-ratelimit-reset` in the year 250,000 used to overflow the pause's date (a panic) or
/// stop the source for millennia.
#[tokio::test]
async fn hostile_retry_after_and_reset_values_are_capped_at_a_day() {
    let day = Duration::from_secs(86_400);
    let near_a_day = |w: Duration| w <= day && w > day - Duration::from_secs(60);
    let fake = FakeGithub::start().await;
    fake.state.lock().unwrap().secondary_limit = Some(10_000_000_000_000);
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::RateLimited { .. }), "{err}");
    assert!(near_a_day(err.retry_after().unwrap()), "{err:?}");
    // Paused: the next poll asks nothing and says the same capped wait.
    let before = fake.requests("/search/issues").len();
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(near_a_day(err.retry_after().unwrap()), "{err:?}");
    assert_eq!(fake.requests("/search/issues").len(), before);

    // A 503 with such a retry-after.
    let fake = FakeGithub::start().await;
    fake.fail_next(Fault::status(503, &[("retry-after", "10000000000000")]));
    let err = source(&fake, "").poll(&mut state).await.unwrap_err();
    assert!(near_a_day(err.retry_after().unwrap()), "{err:?}");

    // A reset far in the future on a budget at its reserve.
    let fake = FakeGithub::start().await;
    {
        let mut s = fake.state.lock().unwrap();
        s.search.remaining = 2;
        s.search.reset = 8_000_000_000_000;
    }
    fake.add_issue(gh_issue(1, "a/b", 1, now() - 10, "acme", None));
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    assert_eq!(src.poll(&mut state).await.unwrap().len(), 1);
    let resets = src.quota().unwrap().resets_at.unwrap();
    assert!(
        resets <= chrono::Utc::now() + chrono::Duration::days(1),
        "{resets}"
    );
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(near_a_day(err.retry_after().unwrap()), "{err:?}");
}

/// With a token, discussions are searched too, through GraphQL (`search(type: DISCUSSION)`),
/// paged by `endCursor`, oldest first, in the same windows and watermark scheme as issues.
#[tokio::test]
async fn discussions_are_searched_through_graphql_when_a_token_is_set() {
    let fake = FakeGithub::start().await;
    let t = now();
    {
        let mut s = fake.state.lock().unwrap();
        s.discussions.push(gh_discussion(
            "D_kwDOAHz1OX4uYAah",
            "acme/widgets",
            12,
            t - 300,
            "  Acme SDK roadmap ",
            "Will acme support arm64?",
        ));
        s.discussions.push(gh_discussion(
            "D_other",
            "x/y",
            1,
            t - 200,
            "unrelated",
            "nothing",
        ));
        s.discussions.push(gh_discussion(
            "D_old",
            "x/y",
            2,
            t - 7200,
            "acme old",
            "old",
        ));
        for i in 0..150u64 {
            s.discussions.push(gh_discussion(
                &format!("D_bulk{i}"),
                "x/y",
                100 + i,
                t - 2000 + i as i64,
                "acme question",
                "acme?",
            ));
        }
    }
    let mut src = source(&fake, WITH_TOKEN);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 151, "{:?}", ids(&got));
    let d = got
        .iter()
        .find(|m| m.item_id == "discussion:D_kwDOAHz1OX4uYAah")
        .expect("the discussion");
    assert_eq!(d.title.as_deref(), Some("Acme SDK roadmap"));
    assert_eq!(d.text, "Will acme support arm64?");
    assert_eq!(
        d.url.as_deref(),
        Some("https://github.com/acme/widgets/discussions/12")
    );
    assert_eq!(d.author.as_deref(), Some("monalisa"));
    assert_eq!(d.published.unwrap().timestamp(), t - 300);
    assert_eq!(d.source_kind, "github");

    let calls = fake.requests("/graphql");
    assert_eq!(calls.len(), 2, "two pages of 100");
    assert!(calls[0].query["graphql"].contains("search(type: DISCUSSION"));
    assert!(calls[0].query["q"].starts_with("acme created:>="));
    assert!(!calls[0].query.contains_key("after"));
    assert!(calls[1].query.contains_key("after"), "paged by endCursor");
    assert_eq!(
        calls[0].headers["authorization"],
        format!("Bearer {GITHUB_TOKEN}")
    );

    // Nothing new: nothing twice. A new one arrives alone.
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    fake.state.lock().unwrap().discussions.push(gh_discussion(
        "D_new",
        "x/y",
        9,
        t - 5,
        "acme new",
        "acme!",
    ));
    let mut state = restored(&state);
    assert_eq!(
        ids(&source(&fake, WITH_TOKEN).poll(&mut state).await.unwrap()),
        ["discussion:D_new"]
    );

    // Without a token (GraphQL refuses those), or with discussions = false: not asked.
    let before = fake.requests("/graphql").len();
    source(&fake, "")
        .poll(&mut SourceState::default())
        .await
        .unwrap();
    source(&fake, &format!("{WITH_TOKEN}\ndiscussions = false"))
        .poll(&mut SourceState::default())
        .await
        .unwrap();
    assert_eq!(fake.requests("/graphql").len(), before);
}

/// GraphQL's budget used up (`{"errors": [{"type": "RATE_LIMITED"}]}`): the issue search
/// still runs, the poll says why discussions were skipped, and no GraphQL request is made
/// until the reset.
#[tokio::test]
async fn a_used_up_graphql_budget_pauses_only_the_discussion_search() {
    let fake = FakeGithub::start().await;
    let t = now();
    fake.add_issue(gh_issue(1, "a/b", 1, t - 100, "acme one", None));
    {
        let mut s = fake.state.lock().unwrap();
        s.graphql.remaining = 0;
        s.graphql.reset = t + 90;
        s.discussions
            .push(gh_discussion("D_1", "a/b", 1, t - 50, "acme", "acme"));
    }
    let mut src = source(&fake, WITH_TOKEN);
    let mut state = SourceState::default();
    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["issue:1"]);
    let w = src.take_warning().expect("discussions skipped");
    assert!(
        w.contains("discussion search") && w.contains("rate limit"),
        "{w}"
    );
    assert!(!state.extra.contains_key("discussions_watermark"));
    let calls = fake.requests("/graphql").len();
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    assert_eq!(
        fake.requests("/graphql").len(),
        calls,
        "paused until the reset"
    );
    let w = src.take_warning().unwrap();
    assert!(w.contains("discussion search"), "{w}");

    // After the reset it is read.
    {
        let mut s = fake.state.lock().unwrap();
        s.graphql.remaining = 5000;
    }
    let mut state = restored(&state);
    assert_eq!(
        ids(&source(&fake, WITH_TOKEN).poll(&mut state).await.unwrap()),
        ["discussion:D_1"]
    );
}

/// Should GitHub ignore `sort:created-asc` and answer newest first, a page says nothing about
/// what is covered: the watermark moves only past windows read whole, and nothing is skipped.
#[tokio::test]
async fn a_search_answered_out_of_order_skips_nothing() {
    let fake = FakeGithub::start().await;
    let t = now();
    {
        let mut s = fake.state.lock().unwrap();
        s.discussions_newest_first = true;
        for i in 0..1500u64 {
            s.discussions.push(gh_discussion(
                &format!("D_{i}"),
                "x/y",
                i,
                t - 3000 + (i as i64 * 2),
                "acme",
                "acme",
            ));
        }
    }
    let mut seen: Vec<String> = Vec::new();
    let mut state = SourceState::default();
    for _ in 0..10 {
        let got = source(&fake, WITH_TOKEN).poll(&mut state).await.unwrap();
        seen.extend(got.into_iter().map(|m| m.item_id));
        state = restored(&state);
        if seen.len() >= 1500 {
            break;
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 1500, "every discussion");
    assert_eq!(seen.len(), 1500, "none twice");
}

fn problems(entry: &str) -> String {
    let text = format!(
        "[[sources]]\nname = \"gh\"\nkind = \"github\"\n{entry}\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n"
    );
    mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None)
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn config_problems_name_the_key_and_the_fix() {
    assert_eq!(
        problems("query = \"acme\"\nrepos = [\"acme/widgets\", \"a-b/c.d_e\"]\norgs = [\"acme\"]"),
        ""
    );
    let e = problems("repos = [\"acme/widgets\"]");
    assert!(
        e.contains("sources[0].query") && e.contains("query = \"acme\""),
        "{e}"
    );
    let e = problems("query = \"acme\"\nrepos = [\"https://github.com/acme/widgets\", \"acme\"]");
    assert!(e.contains("sources[0].repos"), "{e}");
    assert!(
        e.contains("\"acme\" is not a repository as owner/name"),
        "{e}"
    );
    assert!(
        e.contains("repos = [\\\"acme/widgets\\\"]") || e.contains("repos = [\"acme/widgets\"]"),
        "{e}"
    );
    let e = problems("query = \"acme\"\norgs = [\"acme/widgets\"]");
    assert!(
        e.contains("sources[0].orgs") && e.contains("not an organization login"),
        "{e}"
    );
    let e = problems("query = \"a OR b OR c OR d OR e OR f OR g\"");
    assert!(e.contains("at most 6") && e.contains("split it"), "{e}");
    let e = problems("query = \"NOT hiring\"");
    assert!(e.contains("names no word"), "{e}");
    let e = problems("query = \"acme\"\ntoken = \"\"");
    assert!(
        e.contains("sources[0].token") && e.contains("GITHUB_TOKEN"),
        "{e}"
    );
    let e = problems("query = \"acme\"\nurl = \"api.github.com\"");
    assert!(e.contains("sources[0].url"), "{e}");
    let e = problems("query = \"acme\"\ndiscussions = true");
    assert!(
        e.contains("sources[0].discussions") && e.contains("needs a token"),
        "{e}"
    );
    assert_eq!(problems("query = \"acme\"\ndiscussions = false"), "");
    let e = problems("query = \"acme\"\nsubreddits = [\"x\"]");
    assert!(e.contains("subreddits"), "{e}");
}

/// Through the whole daemon: an issue found by search becomes a Slack alert, and `/healthz`
/// shows GitHub's budget for the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_turns_a_github_issue_into_an_alert() {
    let slack = FakeSlack::start().await;
    let fake = FakeGithub::start().await;
    let t = now();
    fake.add_issue(gh_issue(
        77,
        "acme/widgets",
        5,
        t - 60,
        "Acme widget broke",
        Some("It stopped working after the update."),
    ));
    fake.add_issue(gh_issue(
        78,
        "acme/widgets",
        6,
        t - 50,
        "Acme is hiring",
        None,
    ));
    let config = ConfigBuilder::new()
        .slack(&slack)
        .source("gh", "github")
        .key("query", "acme")
        .key("url", fake.url())
        .key("every", "1s")
        .key("allow_private", true)
        .rule("acme", "acme AND NOT hiring", &["slack:#pr-alerts"])
        .toml();
    let daemon = Daemon::start(&config).await;
    let posts = slack.wait_for_posts(1, 15).await;
    let body = posts[0].body.to_string();
    assert!(body.contains("Acme widget broke"), "{body}");
    assert!(body.contains("github.com/acme/widgets/issues/5"), "{body}");
    let health = daemon.healthz().await;
    let src = health["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "gh")
        .unwrap_or_else(|| panic!("{health}"))
        .clone();
    assert_eq!(src["quota"]["limit"], 30, "{src}");
    assert_eq!(src["quota"]["unit"], "requests", "{src}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.posts().len(), 1, "the hiring issue is no alert");
    daemon.stop().await;
}

/// The core budget (60 an hour without a token) runs low in the middle of a long comment
/// listing: the source stops before zero, keeps what it read, says so, and continues after
/// the reset without repeating or skipping a comment.
#[tokio::test]
async fn a_low_core_budget_stops_the_listing_and_it_continues_after_the_reset() {
    let fake = FakeGithub::start().await;
    let t = now();
    for i in 0..250u64 {
        fake.add_comment(
            "a/b",
            gh_comment(5000 + i, "a/b", 7, t - 2000 + i as i64, "acme again"),
        );
    }
    {
        let mut s = fake.state.lock().unwrap();
        s.core.limit = 60;
        s.core.remaining = 3; // two pages, then 1 left: the reserve
        s.core.reset = now() + 2;
    }
    let mut src = source(&fake, "repos = [\"a/b\"]");
    let mut state = SourceState::default();
    let first = src.poll(&mut state).await.unwrap();
    assert_eq!(first.len(), 200, "two pages read");
    assert_eq!(fake.requests("/repos/a/b/issues/comments").len(), 2);
    let quota = src.quota().unwrap();
    assert_eq!(
        (quota.remaining, quota.limit),
        (1, Some(60)),
        "core is the one running out"
    );

    // Paused: the search still runs, the listing waits, and the poll says so.
    let got = src.poll(&mut state).await.unwrap();
    assert!(got.is_empty());
    let warning = src.take_warning().expect("the paused listing");
    assert!(
        warning.contains("comments of a/b") && warning.contains("rate limit"),
        "{warning}"
    );
    assert_eq!(
        fake.requests("/repos/a/b/issues/comments").len(),
        2,
        "no request while paused"
    );

    {
        let mut s = fake.state.lock().unwrap();
        s.core.remaining = 60;
        s.core.reset = now() + 3600;
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut state = restored(&state);
    let rest = src.poll(&mut state).await.unwrap();
    let all: HashSet<String> = first
        .iter()
        .chain(&rest)
        .map(|m| m.item_id.clone())
        .collect();
    assert_eq!(rest.len(), 50, "only the rest");
    assert_eq!(all.len(), 250);
}
