//! Issue 13: Bluesky authors shown by handle with their follower count, from the public
//! AppView's `app.bsky.actor.getProfiles` (faked on 127.0.0.1 after its lexicon: at most 25
//! `actors`, unknown ones left out) and Jetstream identity events; looked up once per author
//! in the background, in rounds on their own clock (never one request per streamed post),
//! and never at the cost of a post or its latency when the AppView fails.

use super::{source, wait_until};
use crate::common::fake_sources::{
    bsky_profile, jet_identity, jet_post, ops, FakeApi, FakeJetstream,
};
use crate::common::faults::Fault;
use mentiondesk::model::Mention;
use mentiondesk::sources::{self, SourceState};
use std::time::{Duration, Instant};

fn did(i: usize) -> String {
    format!("did:plc:author{i:020}")
}

/// Polls as the poll loop does until `n` mentions arrived.
async fn collect(
    src: &mut Box<dyn sources::Source>,
    state: &mut SourceState,
    n: usize,
) -> Vec<Mention> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} arrived",
            got.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(5), src.ready()).await;
        got.extend(src.poll(state).await.unwrap());
    }
    got
}

fn actors_asked(api: &FakeApi) -> Vec<Vec<String>> {
    api.requests("/xrpc/app.bsky.actor.getProfiles")
        .iter()
        .map(|r| r.query["actors"].split(',').map(str::to_string).collect())
        .collect()
}

/// The source's timeout for these tests: long enough that a loaded machine never times a
/// lookup round out (which would pause the lookups for a minute).
const TIMEOUT: &str = "timeout = \"20s\"";

fn all_asked(api: &FakeApi) -> Vec<String> {
    let mut all: Vec<String> = actors_asked(api).concat();
    all.sort();
    all
}

#[tokio::test]
async fn jetstream_authors_show_as_handles_with_followers_looked_up_once_in_batches() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    {
        let mut s = api.state.lock().unwrap();
        for i in 0..30 {
            let p = bsky_profile(&did(i), &format!("user{i}.bsky.social"), i as u64 * 1000);
            s.bsky_profiles.insert(did(i), p);
        }
        // An account whose handle no longer verifies is shown by its DID.
        s.bsky_profiles
            .insert(did(40), bsky_profile(&did(40), "handle.invalid", 7));
    }
    let mut src = source(
        &jet.url(),
        &format!("profiles_url = \"{}\"\n{TIMEOUT}", api.xrpc_url()),
    );
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    wait_until(|| !jet.connections().is_empty()).await;
    // 30 known authors, one the AppView does not know (deleted), one with handle.invalid.
    // Their first posts are handed on at once, by DID unless the lookup was already done;
    // the lookups follow in the background.
    let mut t = 10;
    let authors: Vec<usize> = (0..30).chain([35, 40]).collect();
    for &i in &authors {
        t += 1;
        jet.send(t, jet_post(&did(i), &format!("r{i}"), t, "acme is down"));
    }
    let got = collect(&mut src, &mut state, authors.len()).await;
    assert_eq!(got.len(), authors.len());
    let mut want: Vec<String> = authors.iter().map(|&i| did(i)).collect();
    want.sort();
    wait_until(|| all_asked(&api) == want).await;
    let asked = actors_asked(&api);
    assert!(
        asked.iter().all(|a| a.len() <= 25),
        "batches of at most 25: {asked:?}"
    );

    // Their next posts show what the lookups found. The fake records a request before it
    // answers, so the last round's answer may not be stored yet: send the next posts again
    // (new ids) until every known author shows its handle, within a generous deadline.
    let known = |m: &Mention| {
        let i: usize = m.item_id.split("author").nth(1).unwrap()[..20]
            .parse()
            .unwrap();
        match i {
            35 => true,
            40 => m.author_reach == Some(7),
            _ => m.author.as_deref() == Some(format!("@user{i}.bsky.social").as_str()),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    let got = loop {
        round += 1;
        for &i in &authors {
            t += 1;
            jet.send(
                t,
                jet_post(&did(i), &format!("s{round}x{i}"), t, "acme is still down"),
            );
        }
        let got = collect(&mut src, &mut state, authors.len()).await;
        if got.iter().all(known) || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for m in &got {
        let i: usize = m.item_id.split("author").nth(1).unwrap()[..20]
            .parse()
            .unwrap();
        match i {
            35 => {
                assert_eq!(
                    m.author.as_deref(),
                    Some(did(35).as_str()),
                    "unknown: the DID"
                );
                assert_eq!(m.author_reach, None);
            }
            40 => {
                assert_eq!(m.author.as_deref(), Some(did(40).as_str()));
                assert_eq!(m.author_reach, Some(7));
            }
            _ => {
                assert_eq!(
                    m.author.as_deref(),
                    Some(format!("@user{i}.bsky.social").as_str())
                );
                assert_eq!(m.author_reach, Some(i as u64 * 1000));
                assert_eq!(m.reach_unit(), "followers");
            }
        }
        // The link keeps the DID: it works whatever the handle becomes.
        assert!(m.url.as_deref().unwrap().contains("/profile/did:plc:"));
    }
    assert_eq!(all_asked(&api), want, "each author asked for once");

    // The same authors again: nothing asked, the answers (and the unknown) are remembered.
    let requests = asked.len();
    for &i in &authors {
        t += 1;
        jet.send(
            t,
            jet_post(&did(i), &format!("again{i}"), t, "acme still down"),
        );
    }
    let got = collect(&mut src, &mut state, authors.len()).await;
    assert!(got
        .iter()
        .any(|m| m.author.as_deref() == Some("@user3.bsky.social")));
    assert_eq!(actors_asked(&api).len(), requests);

    // A handle change arrives as a Jetstream identity event and shows at once.
    t += 1;
    jet.send(t, jet_identity(&did(3), "dana.example.com", t));
    t += 1;
    jet.send(t, jet_post(&did(3), "renamed", t, "acme news"));
    let got = collect(&mut src, &mut state, 1).await;
    assert_eq!(got[0].author.as_deref(), Some("@dana.example.com"));
    assert_eq!(got[0].author_reach, Some(3000));
    assert_eq!(
        actors_asked(&api).len(),
        requests,
        "no lookup for a known author"
    );
}

/// The AppView refusing (429 with a long Retry-After, 400), failing (503, a broken body) or
/// never answering: each post is handed on with its DID, inside the poll's timeout, and the
/// lookups pause instead of asking again for every post.
#[tokio::test]
async fn a_failing_appview_leaves_the_did_and_never_costs_a_post() {
    for fault in [
        Fault::rate_limited(600.0),
        Fault::status(400, &[]),
        Fault::http(503),
        Fault::Malformed,
        Fault::Hang,
    ] {
        let jet = FakeJetstream::start().await;
        let api = FakeApi::start().await;
        api.state
            .lock()
            .unwrap()
            .bsky_profiles
            .insert(did(1), bsky_profile(&did(1), "one.bsky.social", 5));
        api.faults.always(ops::BSKY_GET_PROFILES, fault.clone());
        let mut src = source(
            &jet.url(),
            &format!("profiles_url = \"{}\"\ntimeout = \"5s\"", api.xrpc_url()),
        );
        let mut state = SourceState::default();
        src.poll(&mut state).await.unwrap();
        wait_until(|| !jet.connections().is_empty()).await;
        jet.send(1, jet_post(&did(1), "a", 1, "acme outage"));
        let got = collect(&mut src, &mut state, 1).await;
        assert_eq!(got[0].author.as_deref(), Some(did(1).as_str()), "{fault:?}");
        assert_eq!(got[0].author_reach, None);
        wait_until(|| actors_asked(&api).len() == 1).await;
        jet.send(2, jet_post(&did(2), "b", 2, "acme outage two"));
        let got = collect(&mut src, &mut state, 1).await;
        assert_eq!(got[0].text, "acme outage two", "{fault:?}");
        assert_eq!(got[0].author.as_deref(), Some(did(2).as_str()), "{fault:?}");
        // Long enough for another round to have run, had the lookups not paused.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(actors_asked(&api).len(), 1, "paused after {fault:?}");
    }
}

/// Review 6 #8: the lookups run on their own clock, not the stream's. Each streamed post from
/// a new author wakes a poll; those polls make no request of their own: the authors are
/// batched into rounds at least 3 s apart. Counted: with 60 posts by 60 new authors, each
/// polled on its own, the requests stay within what the rounds allow for the time taken
/// (one request per post before), and every author is still asked for once.
#[tokio::test]
async fn lookups_are_batched_on_their_own_clock_not_one_per_streamed_post() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    {
        let mut s = api.state.lock().unwrap();
        for i in 0..60 {
            let p = bsky_profile(&did(i), &format!("user{i}.bsky.social"), 10);
            s.bsky_profiles.insert(did(i), p);
        }
    }
    let mut src = source(
        &jet.url(),
        &format!("profiles_url = \"{}\"\n{TIMEOUT}", api.xrpc_url()),
    );
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    wait_until(|| !jet.connections().is_empty()).await;
    let started = Instant::now();
    for i in 0..60 {
        let t = 100 + i as i64;
        jet.send(t, jet_post(&did(i), &format!("p{i}"), t, "acme news"));
        let got = collect(&mut src, &mut state, 1).await;
        assert_eq!(got.len(), 1);
    }
    let mut want: Vec<String> = (0..60).map(did).collect();
    want.sort();
    wait_until(|| all_asked(&api) == want).await;
    let requests = actors_asked(&api).len();
    // Rounds start at most every 3 s; each takes every author queued by then (25 a request),
    // so 60 authors cost at most 3 requests more than there were rounds.
    let rounds = 1 + (started.elapsed().as_secs_f64() / 3.0).ceil() as usize;
    assert!(
        requests <= rounds + 3,
        "{requests} requests for 60 posts in {:?}: {:?}",
        started.elapsed(),
        actors_asked(&api)
    );
    assert!(requests < 60, "not one request per post: {requests}");
}
