#!/usr/bin/env bash
# Memory while a burst of alerts escalates: starts the release daemon on a copy of a store
# whose escalation timers are due (one kept by `KEEP_STORE=DIR scripts/memory_bench.sh`, run
# again more than `escalate_after` (15 min) later) and prints its RSS every 5 s for SECS
# seconds, then its high-water mark. The store in DIR is left as it was.
#
# Usage: scripts/escalation_bench.sh DIR [SECS=270]   (MENTIONDESK_BIN overrides the binary)
set -euo pipefail
KEEP=${1:?usage: scripts/escalation_bench.sh DIR [SECS]}
SECS=${2:-270}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MENTIONDESK_BIN:-$ROOT/target/release/mentiondesk}
WORK=$(mktemp -d /tmp/mentiondesk-escalation.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cp -r "$KEEP/store" "$WORK/store"
sed "s#$KEEP/store#$WORK/store#" "$KEEP/bench.toml" > "$WORK/bench.toml"
RUST_LOG=warn "$BIN" run --config "$WORK/bench.toml" > /dev/null 2> "$WORK/daemon.err" &
PID=$!
echo -n "RSS every 5 s (MiB):"
for _ in $(seq 1 $((SECS / 5))); do
    sleep 5
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/daemon.err" >&2; exit 1; }
    echo -n " $(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$PID/status")"
done
echo
awk '/VmHWM/ {printf "high-water mark: %d MiB\n", $2 / 1024}' "/proc/$PID/status"
kill -INT "$PID"; wait "$PID" || true
