#!/bin/sh
# Issue 14, goal 1: CPU time of `mentiondesk check` (the process as a user runs it: start,
# read, TOML parse, validation of every key, rule compile, printing `ok`) on generated
# configs of 1k, 10k, 20k and 100k rules, plus 1k rules after 1.1 MB of comments.
# The configs come from the generator in benches/config_load.rs. Prints user + system CPU
# seconds and peak RSS of each of RUNS runs (default 5).
#
# Usage: scripts/config_load_check.sh [RUNS]   (from the repository root; builds release)
set -eu
runs=${1:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cargo build --release --quiet --bin mentiondesk
cargo bench --quiet --bench config_load -- --write-configs "$dir" >/dev/null
bin=target/release/mentiondesk
echo "| config | file size | user + sys CPU s (each run) | peak RSS MB |"
echo "| --- | ---: | --- | ---: |"
for c in c1k c10k c20k c100k c1k-comments; do
    size=$(du -m "$dir/$c.toml" | cut -f1)
    times=""
    rss=0
    i=0
    while [ "$i" -lt "$runs" ]; do
        /usr/bin/time -o "$dir/time" -f "%U %S %M" "$bin" check --config "$dir/$c.toml" >/dev/null 2>&1
        out=$(tail -1 "$dir/time")
        cpu=$(echo "$out" | awk '{printf "%.2f", $1 + $2}')
        kb=$(echo "$out" | awk '{print $3}')
        [ "$kb" -gt "$rss" ] && rss=$kb
        times="$times $cpu"
        i=$((i + 1))
    done
    echo "| $c | ${size} MB | $times | $((rss / 1024)) |"
done
