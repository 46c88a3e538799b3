//! The relevance replay: a labelled stream of mentions of an ambiguous brand word (Jaguar, the
//! car maker, versus jaguar, the animal) goes through the real intake, store and desk, while
//! a person claims and resolves the car posts and marks the animal posts not relevant, as the
//! desk would see them; after a learning phase the filter must hold back most animal posts
//! and almost no car posts. The sentences are generated from templates with varied vocabulary
//! (a fixed seed), so the figures are reproducible; `BENCHMARKS.md` ("Relevance learning")
//! states them.

use super::*;
use crate::analysis::relevance::config::RelevanceConfig;
use crate::desk::state::Action;
use crate::desk::{config::DeskConfig, Desk};
use crate::model::{AlertState, Mention, SourceState};
use crate::rules::config::RuleConfig;

/// One generated post and whether it is about the car maker (the sense the rule is for).
pub(crate) struct Post {
    pub(crate) text: String,
    pub(crate) car: bool,
}

fn pick<'a>(rng: &mut fastrand::Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.usize(..xs.len())]
}

const MODELS: &[&str] = &[
    "F-Type", "F-Pace", "E-Pace", "I-Pace", "XF", "XE", "XJ", "E-Type", "XK", "S-Type",
];
const CAR_PARTS: &[&str] = &[
    "infotainment screen",
    "air suspension",
    "gearbox",
    "battery pack",
    "brake pads",
    "tyre pressure sensor",
    "parking camera",
    "heated seats",
    "key fob",
    "sat nav",
    "engine mount",
    "software update",
];
const CAR_PLACES: &[&str] = &[
    "the dealership",
    "the service centre",
    "the motorway",
    "the showroom",
    "the car park",
    "the garage",
    "the track day",
    "the charging station",
];
const CAR_PEOPLE: &[&str] = &[
    "my wife",
    "the salesman",
    "my mechanic",
    "the service advisor",
    "my dad",
    "a colleague",
    "the lease company",
    "my insurer",
];
const CAR_NOUNS: &[&str] = &[
    "lease deal",
    "test drive",
    "resale value",
    "range on a full charge",
    "fuel economy",
    "warranty",
    "recall notice",
    "finance offer",
    "towing capacity",
    "boot space",
    "0-60 time",
    "V8 sound",
];
const CAR_TEMPLATES: &[&str] = &[
    "Picked up my new Jaguar {model} from {place} today, the {part} already feels smarter than my last car",
    "Has anyone else had trouble with the {part} on a Jaguar {model}? {person} says it is a known issue",
    "Jaguar just announced a {noun} for the {model}, thinking about trading in my Audi",
    "The {noun} on the Jaguar {model} is honestly better than I expected after a month of commuting",
    "Booked the Jaguar {model} in at {place} because the {part} keeps throwing a warning light",
    "Jaguar Land Rover confirms the {model} will get an over-the-air {part} fix next quarter",
    "Took the Jaguar {model} on {place} run this weekend, {person} could not stop grinning",
    "Is the {noun} of a used Jaguar {model} worth it compared with a BMW or a Mercedes?",
    "Jaguar customer service sorted the {part} on my {model} within a day, credit where it is due",
    "Comparing the Jaguar {model} and the Porsche Macan: the {noun} decides it for me",
    "Jaguar racing team celebrates a podium in Formula E, the {model} road car gets the same motor tech",
    "My Jaguar {model} lease ends in May and {person} wants to know the {noun} before we renew",
    "Spotted a vintage Jaguar {model} at {place}, the paintwork and chrome were stunning",
    "Jaguar's electric plans: the {model} replacement promises a longer {noun} and a new {part}",
    "Third visit to {place} for the {part} on our Jaguar {model}; the loan car is nice at least",
    // Frames the animal posts use too, and posts with the other sense's words.
    "Just saw a Jaguar {model} outside {place} and honestly it made my day",
    "Can't stop looking at this photo of a classic Jaguar {model}, what a beauty",
    "Jaguar's new advert has a real jaguar prowling through a rainforest to sell the {model}",
    "Drove the Jaguar {model} to the zoo so the kids could see real jaguars, they loved both",
    "Our Jaguar {model} owners club is raising money for jaguar conservation this year",
    "Video of a Jaguar {model} going viral today, {person} sent it to me twice",
];

const CATS: &[&str] = &[
    "jaguar",
    "young jaguar",
    "female jaguar",
    "male jaguar",
    "jaguar cub",
    "pair of jaguars",
];
const WILD_PLACES: &[&str] = &[
    "the Pantanal",
    "the Amazon",
    "a Belize reserve",
    "the riverbank",
    "the Atlantic Forest",
    "northern Mexico",
    "a Costa Rican national park",
    "the wetlands",
    "the Gran Chaco",
];
const PREY: &[&str] = &[
    "caiman",
    "capybara",
    "peccary",
    "tapir",
    "river turtle",
    "deer",
    "anaconda",
    "armadillo",
];
const WILD_PEOPLE: &[&str] = &[
    "our guide",
    "the researchers",
    "a park ranger",
    "the film crew",
    "local ranchers",
    "the biologists",
    "a wildlife photographer",
    "the zoo keepers",
];
const WILD_NOUNS: &[&str] = &[
    "camera trap footage",
    "rosette pattern",
    "bite force",
    "conservation project",
    "tracking collar",
    "population survey",
    "documentary",
    "wildlife corridor",
    "paw prints",
    "night vision video",
];
const WILD_TEMPLATES: &[&str] = &[
    "Incredible {noun} of a {cat} stalking a {prey} in {place}",
    "{people} counted six jaguars in {place} this season, the {noun} is paying off",
    "The {cat} swam across the river in {place} and {people} got it all on film",
    "Did you know a jaguar's {noun} is strong enough to crack a {prey} shell?",
    "Our trip to {place}: {people} found fresh jaguar {noun} near the lodge at dawn",
    "A {cat} was born at the city zoo, {people} say mother and cub are doing well",
    "New {noun} shows the jaguar returning to {place} after decades",
    "Watched a documentary about the jaguar tonight, the way it hunts {prey} is unreal",
    "{people} fitted a {cat} with a {noun} to learn how it moves through {place}",
    "The jaguar is the largest cat in the Americas and its {noun} is unique to each animal",
    "Rare sighting of a black jaguar in {place}, {people} could hardly believe it",
    "Habitat loss in {place} pushes the jaguar closer to cattle farms, {people} warn",
    "Kids loved the jaguar enclosure today, the {cat} was napping on a branch",
    "Drawing of a {cat} resting by a {prey} trail in {place}, inspired by the {noun}",
    "Jaguar spotted on a trail camera in {place} for the first time, {people} are thrilled",
    // Frames the car posts use too, and posts with the other sense's words.
    "Just saw a {cat} in {place} and honestly it made my day",
    "Can't stop looking at this photo of a {cat} by the river, what a beauty",
    "A {cat} crossed the road right in front of our rental car in {place}",
    "The {cat} at the zoo can outrun most cars over a short sprint, {people} told us",
    "{people} parked the jeep and waited two hours for the {cat} to come out",
    "Video of a {cat} going viral today, {people} filmed it from the boat",
];

fn fill(rng: &mut fastrand::Rng, template: &str, slots: &[(&str, &[&str])]) -> String {
    let mut out = template.to_string();
    for (name, values) in slots {
        let key = format!("{{{name}}}");
        while out.contains(&key) {
            out = out.replacen(&key, pick(rng, values), 1);
        }
    }
    // "{people} ..." at the start of a sentence reads better capitalised.
    let mut chars = out.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
        None => out,
    }
}

/// `n` distinct posts of each sense, shuffled into one stream (fixed seed).
pub(crate) fn corpus(n: usize, seed: u64) -> Vec<Post> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut seen = std::collections::HashSet::new();
    let mut posts = Vec::new();
    for car in [true, false] {
        let mut made = 0;
        while made < n {
            let template = pick(&mut rng, if car { CAR_TEMPLATES } else { WILD_TEMPLATES });
            let text = if car {
                fill(
                    &mut rng,
                    template,
                    &[
                        ("model", MODELS),
                        ("part", CAR_PARTS),
                        ("place", CAR_PLACES),
                        ("person", CAR_PEOPLE),
                        ("noun", CAR_NOUNS),
                    ],
                )
            } else {
                fill(
                    &mut rng,
                    template,
                    &[
                        ("cat", CATS),
                        ("place", WILD_PLACES),
                        ("prey", PREY),
                        ("people", WILD_PEOPLE),
                        ("noun", WILD_NOUNS),
                    ],
                )
            };
            if seen.insert(text.clone()) {
                posts.push(Post { text, car });
                made += 1;
            }
        }
    }
    rng.shuffle(&mut posts);
    posts
}

/// What a replay measured after its learning phase.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub(crate) wrong: usize,
    pub(crate) wrong_held: usize,
    pub(crate) right: usize,
    pub(crate) right_held: usize,
    /// Wrong-sense mentions scored below `hold_below` but posted because they read as a
    /// complaint (negative, high priority).
    pub(crate) wrong_bypassed: usize,
}

fn mention(i: usize, text: &str) -> Mention {
    const SOURCES: &[(&str, &str)] = &[("news", "rss"), ("reddit", "reddit"), ("sky", "bluesky")];
    let (source, kind) = SOURCES[i % SOURCES.len()];
    Mention {
        item_id: format!("p{i}"),
        source: source.into(),
        source_kind: kind.into(),
        url: Some(format!("https://posts.example/{i}")),
        title: None,
        text: text.into(),
        author: Some(format!("user{}", i * 7919 % 1000)),
        author_reach: None,
        published: None,
        lang: None,
        rating: None,
    }
}

/// Replays `posts` through intake, store and desk: the first `learn` posts are the learning
/// phase; afterwards each held or posted mention is counted by sense. A person labels every
/// posted alert as they would (claim and resolve a car post, mark an animal post not
/// relevant) and promotes a held car post, in both phases.
pub(crate) async fn replay(posts: &[Post], learn: usize, cfg: RelevanceConfig) -> Replay {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rules = vec![RuleConfig {
        name: "jaguar".into(),
        query: "jaguar OR jaguars".into(),
        alert: vec![Target::Slack("#pr".into())],
        priority: Priority::Normal,
    }];
    let judge = Arc::new(Judge {
        matcher: Arc::new(RuleSet::compile([("jaguar", "jaguar OR jaguars")]).unwrap()),
        rules,
        source_languages: Default::default(),
    });
    let (_tx, rx) = mpsc::channel(1);
    let intake = Intake::new(
        judge,
        Duration::from_secs(3600),
        store.clone(),
        rx,
        Arc::new(Metrics::default()),
        Clock::System,
    )
    .with_relevance(cfg.clone());
    let desk_cfg = DeskConfig {
        command: "/desk".into(),
        escalate_after: Duration::from_secs(3600),
        escalate_to: None,
        remind_after: None,
        allowed: vec![],
        timezone: chrono_tz::UTC,
    };
    let hold_below = cfg.hold_below;
    let desk = Desk::new(store.clone(), desk_cfg).with_relevance(cfg);
    let person = "slack:U0PR".to_string();
    let mut out = Replay::default();
    for (i, p) in posts.iter().enumerate() {
        let outcome = PollOutcome {
            source: "s".into(),
            mentions: vec![mention(i, &p.text)],
            state: SourceState::default(),
        };
        let created = intake.accept(outcome).await.unwrap();
        // Every post makes one alert (distinct authors and links: no repeats), ids from 1.
        assert_eq!(created, 1, "post {i} makes an alert: {}", p.text);
        let alert = store
            .alert(crate::model::AlertId(i as u64 + 1))
            .await
            .unwrap()
            .expect("an alert per post");
        assert!(
            alert.mention_key.ends_with(&format!("\u{1f}p{i}")),
            "alert {} is post {i}'s",
            alert.id
        );
        let held = alert.state == AlertState::Held;
        if i >= learn {
            let low = alert.relevance.is_some_and(|r| f64::from(r) < hold_below);
            let bypassed = !held && low && alert.negative && alert.priority >= Priority::High;
            if p.car {
                out.right += 1;
                out.right_held += usize::from(held);
            } else {
                out.wrong += 1;
                out.wrong_held += usize::from(held);
                out.wrong_bypassed += usize::from(bypassed);
            }
        }
        let now = chrono::Utc::now();
        let actions: Vec<Action> = match (p.car, held) {
            (true, true) => vec![Action::Promote, Action::Claim],
            (true, false) => vec![Action::Claim, Action::Resolve { note: None }],
            (false, false) => vec![Action::Ignore { reason: None }],
            // A held animal post is left alone, as a person would.
            (false, true) => vec![],
        };
        for a in actions {
            let o = desk.act(alert.id, &person, a, now).await.unwrap();
            assert!(o.applied, "{}", o.note.plain());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_learning_most_wrong_sense_mentions_are_held_and_almost_no_right_ones() {
    let posts = corpus(240, 7);
    let r = replay(&posts, 120, RelevanceConfig::default()).await;
    let wrong = r.wrong_held as f64 / r.wrong as f64;
    let right = r.right_held as f64 / r.right as f64;
    eprintln!("relevance replay: {r:?}; wrong-sense held {wrong:.3}, right-sense held {right:.3}");
    assert!(r.wrong > 150 && r.right > 150, "{r:?}");
    assert!(wrong >= 0.8, "{r:?}");
    assert!(right <= 0.02, "{r:?}");
}

#[test]
fn the_corpus_is_varied() {
    let posts = corpus(240, 7);
    assert_eq!(posts.len(), 480);
    for car in [true, false] {
        let words: std::collections::HashSet<String> = posts
            .iter()
            .filter(|p| p.car == car)
            .flat_map(|p| p.text.split_whitespace().map(str::to_lowercase))
            .collect();
        assert!(words.len() > 150, "{} distinct words", words.len());
    }
}
