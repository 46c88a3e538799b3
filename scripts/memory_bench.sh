#!/usr/bin/env bash
# Memory, ingest speed and endpoint latency of the release daemon on one big `file` source.
#
# Generates N JSON lines (~150-byte posts, PCT % mentioning "acme": one rule alerts on them,
# to the console), runs `mentiondesk run` on them until every mention is stored and every alert
# printed, and reports:
#   - peak RSS while ingesting and holding the N mentions (VmHWM of the daemon),
#   - ingest rate: mentions stored per second of wall time and per CPU-second of the daemon,
#   - store size on disk after a clean shutdown, and per stored mention,
#   - /healthz and /metrics latency (p50/p99/max of curl's time_total, one request every
#     ~20 ms per endpoint) from the start until every mention is stored,
#   - RSS after a restart with no new input (idle, 10 s after the start), and of it the
#     anonymous part (heap) and the part mapped from files (the binary and its libraries).
#
# Usage: scripts/memory_bench.sh [N=1000000] [PCT=10] [CACHE_MB=16] [CPUS=all]
#   CPUS: a taskset list ("0" pins the daemon to one core).
#   KEEP_STORE=DIR: keep the store and its config in DIR.
#   Needs: a release build (cargo build --release), python3, curl.
set -euo pipefail
N=${1:-1000000}
PCT=${2:-10}
CACHE_MB=${3:-16}
CPUS=${4:-all}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MENTIONDESK_BIN:-$ROOT/target/release/mentiondesk}
WORK=$(mktemp -d /tmp/mentiondesk-bench.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
DATA=${BENCH_DATA:-$WORK/mentions.jsonl}
if [ ! -f "$DATA" ]; then
    python3 "$ROOT/scripts/gen_mentions.py" "$N" "$PCT" "$DATA"
fi
cat > "$WORK/bench.toml" <<TOML
[store]
path = "$WORK/store"
cache_mb = $CACHE_MB

[server]
listen = "127.0.0.1:$PORT"

[[sources]]
name = "bench"
kind = "file"
path = "$DATA"
every = "1s"
max_body_bytes = 4000000000

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr"]

[spikes]
enabled = false
TOML

run() {
    # exec: $! must be the daemon itself, so that kill -INT reaches it
    if [ "$CPUS" = all ]; then exec "$BIN" run --config "$WORK/bench.toml"; else exec taskset -c "$CPUS" "$BIN" run --config "$WORK/bench.toml"; fi
}
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v k="$1" '$1==k {print $2}'; }
cpu_secs() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
kib() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
latency() { # endpoint outfile
    while kill -0 "$PID" 2>/dev/null && [ ! -f "$WORK/stored" ]; do
        curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT$1" >> "$2" || true
        sleep 0.02
    done
}
pct() { python3 - "$@" <<'PY'
import sys
xs = sorted(float(l) * 1000 for l in open(sys.argv[1]) if l.strip())
if not xs:
    print("no samples"); sys.exit()
q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
print(f"n={len(xs)} p50={q(0.5):.1f} ms p99={q(0.99):.1f} ms max={xs[-1]:.1f} ms")
PY
}

RUST_LOG=warn run > "$WORK/console.out" 2> "$WORK/daemon.err" &
PID=$!
until curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz"; do kill -0 "$PID" 2>/dev/null || { cat "$WORK/daemon.err" >&2; exit 1; }; sleep 0.05; done
START=$(date +%s.%N)
latency /healthz "$WORK/healthz.lat" &
latency /metrics "$WORK/metrics.lat" &
WANT_ALERTS=$(awk -v n="$N" -v p="$PCT" 'BEGIN { e = (p > 0) ? int(100 / p + 0.5) : 0; print (e > 0) ? int((n + e - 1) / e) : 0 }')
STORED_AT=""
while :; do
    STORED=$(metric mentiondesk_mentions_total); STORED=${STORED:-0}
    POSTED=$(metric mentiondesk_alerts_posted_total); POSTED=${POSTED:-0}
    if [ -z "$STORED_AT" ] && [ "${STORED%.*}" -ge "$N" ]; then
        STORED_AT=$(date +%s.%N); touch "$WORK/stored"; CPU=$(cpu_secs "$PID"); PEAK_STORED=$(kib "$PID" VmHWM)
        echo "all $N mentions stored; $POSTED alerts posted so far (about $WANT_ALERTS posts mention acme)" >&2
    fi
    # Some generated posts repeat an earlier one closely enough to join its alert instead of
    # opening a new one, so "done" is every alert the daemon created being posted.
    ALERTS=$(metric mentiondesk_alerts_total); ALERTS=${ALERTS:-0}
    [ -n "$STORED_AT" ] && [ "${POSTED%.*}" -ge "${ALERTS%.*}" ] && break
    kill -0 "$PID" || { cat "$WORK/daemon.err"; exit 1; }
    sleep 0.2
done
END=$(date +%s.%N)
CPU_ALL=$(cpu_secs "$PID")
PEAK=$(kib "$PID" VmHWM)
HELD=$(kib "$PID" VmRSS)
kill -INT "$PID"; wait "$PID" || true
sleep 0.3
STORE_BYTES=$(du -sb "$WORK/store" | cut -f1)

RUST_LOG=warn run > /dev/null 2>> "$WORK/daemon.err" &
PID=$!
until curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz"; do kill -0 "$PID" 2>/dev/null || { cat "$WORK/daemon.err" >&2; exit 1; }; sleep 0.05; done
sleep 10
IDLE=$(kib "$PID" VmRSS)
IDLE_PEAK=$(kib "$PID" VmHWM)
IDLE_ANON=$(kib "$PID" RssAnon)
IDLE_FILE=$(kib "$PID" RssFile)
kill -INT "$PID"; wait "$PID" || true

echo "mentions=$N matching=$PCT% alerts=$POSTED cache_mb=$CACHE_MB cpus=$CPUS"
awk -v n="$N" -v s="$START" -v e="$STORED_AT" -v c="$CPU" 'BEGIN {
    printf "into the store: %.1f s wall, %.1f CPU-s: %.0f mentions/s, %.0f mentions per CPU-second\n", e - s, c, n / (e - s), n / c }'
awk -v a="$POSTED" -v s="$START" -v e="$END" -v c="$CPU_ALL" 'BEGIN {
    printf "until every alert was printed: %.1f s wall, %.1f CPU-s\n", e - s, c }'
echo "peak RSS: $((PEAK_STORED / 1024)) MiB when all were stored, $((PEAK / 1024)) MiB until all alerts were printed; RSS holding them at the end: $((HELD / 1024)) MiB"
awk -v b="$STORE_BYTES" -v n="$N" 'BEGIN { printf "store on disk: %.1f MiB, %.0f bytes per mention\n", b / 1048576, b / n }'
echo "idle after restart: RSS $((IDLE / 1024)) MiB (peak $((IDLE_PEAK / 1024)) MiB; heap and other anonymous $((IDLE_ANON / 1024)) MiB, the binary and libraries mapped from disk $((IDLE_FILE / 1024)) MiB)"
echo -n "/healthz during ingest: "; pct "$WORK/healthz.lat"
echo -n "/metrics during ingest: "; pct "$WORK/metrics.lat"
grep -c "" "$WORK/daemon.err" | xargs -I{} echo "daemon stderr lines: {}"
# KEEP_STORE=DIR keeps the store and its config there (e.g. to start it again later, when its
# escalation timers are due).
if [ -n "${KEEP_STORE:-}" ]; then
    mkdir -p "$KEEP_STORE" && mv "$WORK/store" "$KEEP_STORE/store"
    sed "s#$WORK/store#$KEEP_STORE/store#" "$WORK/bench.toml" > "$KEEP_STORE/bench.toml"
fi
