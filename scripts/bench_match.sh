#!/usr/bin/env bash
# `mentiondesk match` end to end (issue 14, goal 3: >= 150k posts/s per core on ~100-byte posts
# with 10,000 rules): JSON lines in, rules, analysis of the matched posts, JSON lines out,
# through the release binary, in CPU time (user + system, /usr/bin/time).
#
#   scripts/bench_match.sh POSTS.txt [MORE.txt ...]
#
# POSTS: one post per line, e.g. TweetEval (github.com/cardiffnlp/tweeteval)
# datasets/sentiment/test_text.txt, datasets/emotion/train_text.txt,
# datasets/irony/train_text.txt. For each share of matching posts (PCTS, default "5 10 30") it
# builds 10,000 word/phrase rules with scripts/match_workload.py, feeds the posts REPEAT times
# (default 10) through `match`, and subtracts the CPU time of the same command on empty input
# (process start and loading the 10,000-rule config), so the figure is the per-post path.
# MENTIONDESK_BIN: the binary to measure (default: build target/release/mentiondesk first).
# MATCH_ARGS: extra arguments to `match` (e.g. "--vader" to also print VADER's score).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 POSTS.txt [MORE.txt ...]" >&2; exit 2; }
PCTS=${PCTS:-"5 10 30"}
REPEAT=${REPEAT:-10}
if [ -n "${MENTIONDESK_BIN:-}" ]; then
  bin=$MENTIONDESK_BIN
else
  cargo build --release --quiet
  bin=target/release/mentiondesk
fi
read -r -a match_args <<< "${MATCH_ARGS:-}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cpu() { # prints user+sys CPU seconds of "$@" < stdin, output discarded into $tmp/out.jsonl
  /usr/bin/time -f "%U %S %M" -o "$tmp/time" "$@" > "$tmp/out.jsonl"
  awk '{ printf "%.2f %d\n", $1 + $2, $3 }' "$tmp/time"
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
for pct in $PCTS; do
  w="$tmp/w$pct"
  python3 scripts/match_workload.py --out "$w" --match-pct "$pct" "$@"
  for _ in $(seq "$REPEAT"); do cat "$w/posts.jsonl"; done > "$w/input.jsonl"
  lines=$(wc -l < "$w/input.jsonl")
  bytes=$(awk '{ n += length($0) } END { printf "%.0f", n / NR }' "$w/posts.txt")
  read -r empty _ < <(cpu env MENTIONDESK_LOG=warn "$bin" match "${match_args[@]}" --config "$w/config.toml" < /dev/null)
  read -r full rss < <(cpu env MENTIONDESK_LOG=warn "$bin" match "${match_args[@]}" --config "$w/config.toml" < "$w/input.jsonl")
  matched=$(grep -vc '"rules":\[\]' "$tmp/out.jsonl" || true)
  awk -v n="$lines" -v f="$full" -v e="$empty" -v m="$matched" -v b="$bytes" -v r="$rss" 'BEGIN {
    printf "match, %s posts (%s bytes of text on average), %.1f %% matching: %.2f s CPU (%.2f s of it start-up and config), %.0f posts per CPU-second, %.2f us per post; peak RSS %.0f MB\n",
      n, b, 100 * m / n, f, e, n / (f - e), 1e6 * (f - e) / n, r / 1024 }'
done
