#!/usr/bin/env bash
# Time per post of the trained negative model (src/analysis/model.rs) in a release build of
# that one file, without building the whole crate (`cargo bench --bench negative_model` is the
# criterion version; it needs the full release build). Builds a throwaway cargo project in a
# temporary directory that includes the module by path, scores the same posts as the bench (both heads)
# for N rounds, and prints CPU time per post read from /proc/thread-self/schedstat (what one
# dedicated core does, whatever else the machine is running) and wall time.
#
#   scripts/negative_model_speed.sh [ROUNDS]      (default 200000 rounds of 8 posts)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-200000}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src"
cat > "$dir/Cargo.toml" <<EOF
[package]
name = "negative-model-speed"
version = "0.0.0"
edition = "2021"

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
thiserror = "2"

[profile.release]
debug = false
EOF
cat > "$dir/src/main.rs" <<EOF
#[allow(dead_code)]
#[path = "$root/src/analysis/model.rs"]
mod model;

use std::hint::black_box;
use std::time::Instant;

const POSTS: &[&str] = &[
    "@AcmeHelp my order is three weeks late and nobody answers my emails",
    "Does anyone know if the Acme X2 works with 5 GHz networks?",
    "Love the new Acme app update, the dark mode is great 👍",
    "Acme charged me twice this month, still waiting for the refund",
    "Just unboxed my Acme X2. Setup took five minutes, works fine",
    "why does the Acme app log me out every single time?! fix it",
    "Acme support was quick and friendly today, thanks @AcmeHelp",
    "The Acme store in Leeds is closed again, third time this week",
];

/// CPU time of this thread in nanoseconds.
fn cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

fn main() {
    let rounds: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let m = model::NegativeModel::embedded();
    for p in POSTS {
        black_box(m.scores(p));
    }
    let (cpu0, wall0) = (cpu_ns(), Instant::now());
    for _ in 0..rounds {
        for p in POSTS {
            black_box(m.scores(black_box(p)));
        }
    }
    let (cpu, wall) = (cpu_ns() - cpu0, wall0.elapsed());
    let n = (rounds * POSTS.len()) as f64;
    let bytes: usize = POSTS.iter().map(|p| p.len()).sum();
    println!(
        "{} posts of {:.0} bytes on average: {:.3} µs CPU per post ({:.2} M posts per CPU-second), {:.3} µs wall per post",
        n,
        bytes as f64 / POSTS.len() as f64,
        cpu as f64 / n / 1e3,
        n / (cpu as f64 / 1e9) / 1e6,
        wall.as_nanos() as f64 / n / 1e3
    );
}
EOF
cargo run --quiet --release --manifest-path "$dir/Cargo.toml" --target-dir "${SPEED_TARGET_DIR:-$dir/target}" -- "$rounds"
