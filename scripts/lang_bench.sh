#!/usr/bin/env bash
# Language detection (src/analysis/lang.rs, whatlang): accuracy on short posts, CPU time per
# post, and what whatlang adds to a release binary — without building the whole crate. Builds
# a throwaway cargo project that includes the module by path and:
#   1. detects every post of tests/data/lang_short.tsv (code TAB text) and prints, for several
#      confidence floors, how many posts whatlang alone gives the right language, a wrong one,
#      or none (`lang::MIN_CONFIDENCE` is the floor the daemon uses), then the same for
#      `lang::detect` (function words first, whatlang for the rest: what the daemon runs);
#   2. times `lang::detect` over those posts for ROUNDS rounds, in CPU time read from
#      /proc/thread-self/schedstat (what one dedicated core does, whatever else runs);
#   3. with ENGLISH (a file of English posts, one per line, e.g. TweetEval's
#      datasets/sentiment/test_text.txt from github.com/cardiffnlp/tweeteval), counts how many
#      of them would lose their sentiment score, i.e. are called another language (whatlang
#      alone by floor, and lang::detect), and times lang::detect and whatlang on them;
#   4. builds the same program with and without the whatlang call and prints the size of both
#      stripped release binaries.
#
#   scripts/lang_bench.sh [ROUNDS [ENGLISH]]      (default 2000 rounds of every post)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-2000}"
english="${2:-}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
target="${LANG_BENCH_TARGET_DIR:-$dir/target}"
whatlang_version="$(grep -E '^whatlang *=' "$root/Cargo.toml" | sed -E 's/.*version = "([^"]+)".*/\1/')"
mkdir -p "$dir/src"
cat > "$dir/Cargo.toml" <<TOML
[package]
name = "lang-bench"
version = "0.0.0"
edition = "2021"

[features]
detect = ["dep:whatlang"]

[dependencies]
whatlang = { version = "$whatlang_version", default-features = false, optional = true }

[profile.release]
debug = false
strip = true
TOML
cat > "$dir/src/main.rs" <<RUST
#[cfg(feature = "detect")]
#[allow(dead_code)]
#[path = "$root/src/analysis/lang.rs"]
mod lang;

use std::hint::black_box;
use std::time::Instant;

fn cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

fn main() {
    let data = std::fs::read_to_string("$root/tests/data/lang_short.tsv").unwrap();
    let posts: Vec<(&str, &str)> = data
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_once('\t').unwrap())
        .collect();
    #[cfg(not(feature = "detect"))]
    {
        // The same program without detection, for the size comparison.
        println!("{}", black_box(posts.len()));
    }
    #[cfg(feature = "detect")]
    {
        let rounds: usize = std::env::args().nth(1).unwrap().parse().unwrap();
        if let Some(path) = std::env::args().nth(2) {
            let text = std::fs::read_to_string(&path).unwrap();
            let english: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let guesses: Vec<Option<lang::Guess>> = english.iter().map(|t| lang::guess(None, t)).collect();
            println!("English posts ({path}): {} posts, {:.0} bytes on average", english.len(),
                english.iter().map(|t| t.len()).sum::<usize>() as f64 / english.len() as f64);
            for floor in [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] {
                let mut called = std::collections::BTreeMap::new();
                for g in &guesses {
                    let got = g.filter(|g| g.confidence >= floor).map_or("unknown", |g| g.code);
                    *called.entry(got).or_insert(0usize) += 1;
                }
                let other: usize = called.iter().filter(|(k, _)| **k != "en" && **k != "unknown").map(|(_, n)| n).sum();
                let mark = if (floor - lang::MIN_CONFIDENCE).abs() < 1e-9 { "  <- MIN_CONFIDENCE" } else { "" };
                println!("  confidence >= {floor:.1}: English {}, unknown {}, another language {} ({:.2} %, lose their sentiment){mark}",
                    called.get("en").unwrap_or(&0), called.get("unknown").unwrap_or(&0), other,
                    100.0 * other as f64 / english.len() as f64);
            }
        }
        let langs: std::collections::BTreeSet<&str> = posts.iter().map(|p| p.0).collect();
        println!("{} posts, {} languages, {:.0} bytes on average", posts.len(), langs.len(),
            posts.iter().map(|p| p.1.len()).sum::<usize>() as f64 / posts.len() as f64);
        let guesses: Vec<Option<lang::Guess>> = posts.iter().map(|(_, t)| lang::guess(None, t)).collect();
        for floor in [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] {
            let (mut right, mut wrong, mut none) = (0, 0, 0);
            let (mut en_right, mut en_wrong, mut en_none, mut not_en_as_en) = (0, 0, 0, 0);
            for ((want, _), g) in posts.iter().zip(&guesses) {
                match g.filter(|g| g.confidence >= floor) {
                    Some(g) if g.code == *want => right += 1,
                    Some(_) => wrong += 1,
                    None => none += 1,
                }
                let got = g.filter(|g| g.confidence >= floor).map(|g| g.code);
                if *want == "en" {
                    match got { Some("en") => en_right += 1, Some(_) => en_wrong += 1, None => en_none += 1 }
                } else if got == Some("en") {
                    not_en_as_en += 1;
                }
            }
            let mark = if (floor - lang::MIN_CONFIDENCE).abs() < 1e-9 { "  <- MIN_CONFIDENCE" } else { "" };
            println!("confidence >= {floor:.1}: right {right}, wrong {wrong}, unknown {none} | English posts: right {en_right}, wrong {en_wrong}, unknown {en_none}; others called English: {not_en_as_en}{mark}");
        }
        for ((want, text), g) in posts.iter().zip(&guesses) {
            if let Some(g) = g.filter(|g| g.confidence >= lang::MIN_CONFIDENCE && g.code != *want) {
                println!("wrong at the floor: {want} read as {} ({:.2}): {text}", g.code, g.confidence);
            }
        }
        // What the daemon uses: function words first, whatlang for the rest (lang::detect).
        let (mut right, mut wrong, mut none) = (0, 0, 0);
        for (want, t) in &posts {
            match lang::detect(None, t) {
                Some(got) if got == *want => right += 1,
                Some(got) => { wrong += 1; println!("detect wrong: {want} read as {got}: {t}"); }
                None => none += 1,
            }
        }
        let en_short = posts.iter().filter(|p| p.0 == "en").count();
        let en_named = posts.iter().filter(|p| p.0 == "en" && lang::detect(None, p.1) == Some("en")).count();
        println!("lang::detect (function words, then whatlang >= MIN_CONFIDENCE): right {right}, wrong {wrong}, unknown {none} | English posts: right {en_named} of {en_short}");
        if let Some(path) = std::env::args().nth(2) {
            let text = std::fs::read_to_string(&path).unwrap();
            let english: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let mut called = std::collections::BTreeMap::new();
            let mut asked = 0usize;
            for t in &english {
                *called.entry(lang::detect(None, t).unwrap_or("unknown")).or_insert(0usize) += 1;
                asked += usize::from(lang::evidence(&lang::words_only(None, t)) == lang::Evidence::Other);
            }
            let other: usize = called.iter().filter(|(k, _)| **k != "en" && **k != "unknown").map(|(_, n)| n).sum();
            println!("lang::detect on the English posts: English {}, unknown {}, another language {} ({:.2} %); whatlang asked for {asked} ({:.1} %)",
                called.get("en").unwrap_or(&0), called.get("unknown").unwrap_or(&0), other,
                100.0 * other as f64 / english.len() as f64, 100.0 * asked as f64 / english.len() as f64);
            let reps = (rounds * posts.len() / english.len()).max(1);
            let cpu0 = cpu_ns();
            for _ in 0..reps {
                for t in &english {
                    black_box(lang::detect(None, black_box(t)));
                }
            }
            let (cpu, n) = (cpu_ns() - cpu0, (reps * english.len()) as f64);
            println!("detect, English posts: {n} posts, {:.2} µs CPU per post ({:.0} k posts per CPU-second)",
                cpu as f64 / n / 1e3, n / (cpu as f64 / 1e9) / 1e3);
            let cpu0 = cpu_ns();
            for _ in 0..reps.min(3) {
                for t in &english {
                    black_box(lang::guess(None, black_box(t)));
                }
            }
            let n = (reps.min(3) * english.len()) as f64;
            println!("whatlang alone (lang::guess), English posts: {:.2} µs CPU per post", (cpu_ns() - cpu0) as f64 / n / 1e3);
        }
        for (_, t) in &posts { black_box(lang::detect(None, t)); }
        let (cpu0, wall0) = (cpu_ns(), Instant::now());
        for _ in 0..rounds {
            for (_, t) in &posts {
                black_box(lang::detect(None, black_box(t)));
            }
        }
        let (cpu, wall) = (cpu_ns() - cpu0, wall0.elapsed());
        let n = (rounds * posts.len()) as f64;
        println!("detect, short posts: {n} posts, {:.2} µs CPU per post ({:.0} k posts per CPU-second), {:.2} µs wall per post",
            cpu as f64 / n / 1e3, n / (cpu as f64 / 1e9) / 1e3, wall.as_nanos() as f64 / n / 1e3);
    }
}
RUST
cargo build --quiet --release --manifest-path "$dir/Cargo.toml" --target-dir "$target"
without=$(stat -c %s "$target/release/lang-bench")
cargo build --quiet --release --features detect --manifest-path "$dir/Cargo.toml" --target-dir "$target"
with=$(stat -c %s "$target/release/lang-bench")
"$target/release/lang-bench" "$rounds" ${english:+"$english"}
echo "stripped release binary: $without bytes without detection, $with with whatlang $whatlang_version (+$(( (with - without) / 1024 )) KiB)"
