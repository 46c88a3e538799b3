#!/usr/bin/env bash
# Times what a contributor or CI waits for: `cargo test --locked` in a fresh clone of COMMIT
# (default HEAD) with an empty target dir. Crates must already be downloaded (~/.cargo).
# Prints the build time (cargo's "Finished" line), each test binary's run time and the total.
# Usage: scripts/clean_test_time.sh [COMMIT]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
commit="${1:-HEAD}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
git clone -q "$repo" "$dir/src"
cd "$dir/src"
git checkout -q "$commit"
echo "commit $(git rev-parse --short HEAD), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
start=$(date +%s)
CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" CARGO_TERM_COLOR=never cargo test --locked >"$dir/log" 2>&1 || {
  tail -40 "$dir/log"
  exit 1
}
end=$(date +%s)
grep -E "Finished|Running|finished in" "$dir/log"
echo "total wall: $((end - start)) s"
