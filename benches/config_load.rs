//! Issue 14, goal 1: CPU time from a TOML file on disk to a compiled matcher
//! (`settings::load`: read, TOML parse, validation of every key, rule compile) for 1k, 10k and
//! 100k generated rules, plus 1k rules behind 1.1 MB of comments. It is what `check`, `run`
//! and `match` spend before their first real work, less process start-up and tracing set-up.
//! It does not assert the targets (< 100 ms CPU for 10k, < 1 s for 100k); the figures go into
//! BENCHMARKS.md. The config is generated here and written to a temporary file; nothing large
//! is committed.
//!
//! Run: `cargo bench --bench config_load` (in-process figures), or
//! `scripts/config_load_check.sh` (CPU time of the `mentiondesk check` process on the same
//! configs, what a user waits for).

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;

use mentiondesk::settings;

/// CPU time this thread has run, in nanoseconds: the machine is shared with other work, so
/// wall time would count the time others hold the core.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Deterministic xorshift, so every run loads the same config.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const COMMON: &[&str] = &[
    "refund", "support", "broken", "outage", "price", "delivery", "login", "crash", "hiring",
    "review", "update", "account",
];

/// A unique brand-like word for rule `i` (and a second one with `salt`).
fn brand(i: usize, salt: usize) -> String {
    let mut n = i * 2 + salt;
    let mut w = String::from("br");
    loop {
        w.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    w
}

/// A config with `n` `[[rules]]` mixing words, phrases, AND/OR/NOT, NEAR and wildcards, with
/// Slack and Discord targets and all four priorities, after `comment_bytes` of comments.
fn config_text(n: usize, comment_bytes: usize) -> String {
    let mut rng = Rng(0x00c0_ffee + n as u64);
    let mut t = String::with_capacity(n * 140 + comment_bytes + 256);
    while t.len() < comment_bytes {
        t.push_str("# a long comment that an operator left above the config, about nothing much\n");
    }
    t.push_str("[store]\npath = \"data/bench.sled\"\n\n[rules_defaults]\nexclude = \"giveaway OR \\\"promo code\\\"\"\n\n");
    let priorities = ["low", "normal", "high", "critical"];
    for i in 0..n {
        let (b, b2) = (brand(i, 0), brand(i, 1));
        let c = COMMON[rng.below(COMMON.len())];
        let q = match i % 10 {
            0..=3 => b.clone(),
            4 => format!("\"{b} {b2}\""),
            5 => format!("{b} AND {c}"),
            6 => format!("({b} OR {b2}) NOT {c}"),
            7 => format!("{b} NEAR/3 {c}"),
            8 => format!("{b}x* -{c}"),
            _ => format!("{b} OR \"{b2} {c}\" -hiring"),
        };
        let alert = if i % 2 == 0 {
            "\"slack:#pr-alerts\"".to_string()
        } else {
            format!(
                "\"slack:#pr-alerts\", \"discord:{}\"",
                100_000_000_000_000_000u64 + i as u64
            )
        };
        let _ = write!(
            t,
            "[[rules]]\nname = \"rule-{i}\"\nquery = '{q}'\nalert = [{alert}]\npriority = \"{}\"\n\n",
            priorities[i % 4]
        );
    }
    t
}

/// Loads `text` from a file `runs` times and returns the CPU milliseconds of each load, sorted.
fn measure(text: &str, rules: usize, runs: usize) -> Vec<f64> {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(text.as_bytes()).expect("write config");
    file.flush().expect("flush config");
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = thread_cpu_ns();
        let cfg = settings::load(file.path()).expect("the generated config is valid");
        let spent = thread_cpu_ns() - start;
        assert_eq!(cfg.rules.len(), rules);
        black_box(&cfg.matcher);
        // Dropping the config is not part of what a user waits for before the first post.
        drop(cfg);
        ms.push(spent as f64 / 1e6);
    }
    ms.sort_by(f64::total_cmp);
    ms
}

/// The configs `scripts/config_load_check.sh` times `mentiondesk check` on, written from the
/// same generator as the in-process figures: `c1k.toml`, `c10k.toml`, `c20k.toml`,
/// `c100k.toml` and `c1k-comments.toml` in `dir`.
fn write_configs(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("create the output folder");
    for (file, rules, comments) in [
        ("c1k.toml", 1_000, 0),
        ("c10k.toml", 10_000, 0),
        ("c20k.toml", 20_000, 0),
        ("c100k.toml", 100_000, 0),
        ("c1k-comments.toml", 1_000, 1_100_000),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, config_text(rules, comments)).expect("write a config");
        println!("{}", path.display());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--write-configs") {
        let dir = args.get(i + 1).expect("--write-configs DIR");
        write_configs(std::path::Path::new(dir));
        return;
    }
    // `cargo bench` passes `--bench`; a name filter may follow, as with criterion benches.
    let filter = args.into_iter().find(|a| !a.starts_with('-'));
    let cases: [(&str, usize, usize, usize); 5] = [
        ("1k rules", 1_000, 0, 20),
        ("10k rules", 10_000, 0, 10),
        ("20k rules", 20_000, 0, 10),
        ("100k rules", 100_000, 0, 5),
        ("1k rules after 1.1 MB of comments", 1_000, 1_100_000, 20),
    ];
    println!("| config | file size | CPU ms, median | CPU ms, min | runs |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (label, rules, comments, runs) in cases {
        if filter.as_deref().is_some_and(|f| !label.contains(f)) {
            continue;
        }
        let text = config_text(rules, comments);
        let ms = measure(&text, rules, runs);
        println!(
            "| {label} | {:.2} MB | {:.1} | {:.1} | {runs} |",
            text.len() as f64 / 1e6,
            ms[ms.len() / 2],
            ms[0],
        );
    }
}
