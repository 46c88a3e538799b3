//! The rule matcher on a workload read from files, so it can be measured side by side with
//! another engine on the same rules and posts (`scripts/hyperscan_compare.py` runs it): one
//! `RuleSet::matches` call per post, as `match` and the daemon call it.
//!
//! Environment:
//! - `RULES_FILE`: `name<TAB>query` lines (`scripts/match_workload.py` writes `rules.tsv`);
//! - `POSTS_FILE`: one post per line;
//! - `MATCHES_OUT` (optional): where to write, per post, the indices of the matching rules
//!   (`post<TAB>rule rule …`, posts without a match left out), for checking agreement;
//! - `CPU_SECONDS` (optional, default 3): how long to measure.
//!
//! Prints posts per CPU-second of the measuring thread (`/proc/thread-self/schedstat`) and
//! nanoseconds per post. Run: `RULES_FILE=… POSTS_FILE=… cargo bench --bench rules_files`.

use mentiondesk::rules::{Document, RuleSet};
use std::fmt::Write as _;
use std::hint::black_box;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn doc(text: &str) -> Document<'_> {
    Document {
        text,
        title: None,
        author: None,
        url: None,
        source: "bench",
        source_kind: "file",
        lang: None,
    }
}

fn main() {
    let (Ok(rules_path), Ok(posts_path)) =
        (std::env::var("RULES_FILE"), std::env::var("POSTS_FILE"))
    else {
        eprintln!("rules_files: set RULES_FILE and POSTS_FILE (see the top of benches/rules_files.rs); nothing measured");
        return;
    };
    let rules_text = std::fs::read_to_string(&rules_path).expect("RULES_FILE readable");
    let rules: Vec<(&str, &str)> = rules_text
        .lines()
        .map(|l| l.split_once('\t').expect("name<TAB>query"))
        .collect();
    let posts_text = std::fs::read_to_string(&posts_path).expect("POSTS_FILE readable");
    let posts: Vec<&str> = posts_text.lines().collect();
    let start = thread_cpu_ns();
    let set = RuleSet::compile(rules.iter().copied()).expect("valid rules");
    let compile_ms = (thread_cpu_ns() - start) as f64 / 1e6;

    let mut out = String::new();
    let mut matched = 0usize;
    for (i, p) in posts.iter().enumerate() {
        let m = set.matches(&doc(p));
        if !m.is_empty() {
            matched += 1;
            let _ = write!(out, "{i}\t");
            for (k, r) in m.iter().enumerate() {
                let _ = write!(out, "{}{}", if k > 0 { " " } else { "" }, r.rule);
            }
            out.push('\n');
        }
    }
    if let Ok(path) = std::env::var("MATCHES_OUT") {
        std::fs::write(path, out).expect("MATCHES_OUT writable");
    }
    let budget: f64 = std::env::var("CPU_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let start = thread_cpu_ns();
    let mut done = 0u64;
    let mut sink = 0usize;
    while ((thread_cpu_ns() - start) as f64) < budget * 1e9 {
        for p in &posts {
            sink += set.matches(black_box(&doc(p))).len();
        }
        done += posts.len() as u64;
    }
    black_box(sink);
    let ns = (thread_cpu_ns() - start) as f64 / done as f64;
    println!(
        "rules_files: {} rules compiled in {compile_ms:.0} ms CPU; {} posts, {} bytes on average, {matched} match ({:.1} %)",
        set.len(),
        posts.len(),
        posts.iter().map(|p| p.len()).sum::<usize>() / posts.len().max(1),
        100.0 * matched as f64 / posts.len().max(1) as f64
    );
    println!(
        "rules_files: {:.0} ns per post, {:.0} posts per CPU-second",
        ns,
        1e9 / ns
    );
}
