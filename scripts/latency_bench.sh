#!/usr/bin/env bash
# Endpoint latency while the daemon ingests a large poll (issue 14, goal 5: `/healthz`,
# `/metrics` and desk commands answer p99 <= 50 ms during a 100k-post ingest).
#
# Runs the release daemon on one `file` source of N generated mentions (~150-byte posts, PCT %
# mentioning "acme", one rule alerting on them to Slack), with a fake Slack API on 127.0.0.1
# (answers auth.test, chat.postMessage and chat.update, in a process of its own).
# From the moment the daemon answers until every mention is stored, three probes run side by
# side, each sending its next request ~20 ms after the previous answer, on a new connection:
#   - GET /healthz, GET /metrics;
#   - a signed Slack slash command `POST /slack/commands` ("/desk list"), as Slack sends it:
#     the figure is the HTTP answer (Slack's 3-second ack); "private answer" is when the
#     answer reached the command's response URL (a listener in the probe). This probe is a
#     closed loop, like one person: the next command goes ~20 ms after the previous answer.
# Prints n, p50, p99 and max per probe (ms, wall clock, client side), the ingest's duration,
# and the machine's load.
#
# Usage: scripts/latency_bench.sh [N=100000] [PCT=10]
#   BENCH_DATA=FILE  use FILE (JSON lines, e.g. from scripts/gen_mentions.py N PCT FILE)
#                    instead of generating N mentions; N must be its line count.
#   MENTIONDESK_BIN  the binary (default target/release/mentiondesk; build it first with
#                    `cargo build --release`).
set -euo pipefail
N=${1:-100000}
PCT=${2:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MENTIONDESK_BIN:-$ROOT/target/release/mentiondesk}
WORK=$(mktemp -d /tmp/mentiondesk-latency.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
DATA=${BENCH_DATA:-$WORK/mentions.jsonl}
[ -f "$DATA" ] || python3 "$ROOT/scripts/gen_mentions.py" "$N" "$PCT" "$DATA"
PORT=$((20000 + RANDOM % 20000))
FAKE=$((PORT + 1))
SECRET=latency-bench-signing-secret
cat > "$WORK/bench.toml" <<TOML
[store]
path = "$WORK/store"

[server]
listen = "127.0.0.1:$PORT"

[slack]
bot_token = "xoxb-latency-bench"
signing_secret = "$SECRET"
api_url = "http://127.0.0.1:$FAKE/api"

[[sources]]
name = "bench"
kind = "file"
path = "$DATA"
every = "1s"
max_body_bytes = 4000000000

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:C0BENCH"]

[desk]
escalate_after = "1h"

[spikes]
enabled = false
TOML

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
cat > "$WORK/bench.py" <<'PY'
import hashlib, hmac, http.client, json, os, signal, subprocess, sys, threading, time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE, BIN, WORK, PORT, FAKE, SECRET, N = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
ts_lock = threading.Lock()
ts_next = [1700000000000000]

class FakeSlack(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the body would wait for the
    # client's delayed ACK (40 ms) on every call.
    disable_nagle_algorithm = True
    def log_message(self, *a):
        pass
    def reply(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.do_POST()
    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        path = self.path.split("?")[0]
        method = path.rsplit("/", 1)[-1]
        if method == "auth.test":
            return self.reply({"ok": True, "url": "https://bench.slack.com/", "team": "Bench",
                               "user": "mentiondesk", "team_id": "T0TEAM", "user_id": "U0BOT",
                               "bot_id": "B0BOT", "is_enterprise_install": False})
        try:
            args = json.loads(raw) if raw.startswith(b"{") else dict(urllib.parse.parse_qsl(raw.decode()))
        except ValueError:
            args = {}
        if method in ("chat.postMessage", "chat.update"):
            with ts_lock:
                ts_next[0] += 1
                ts = args.get("ts") or f"{ts_next[0] // 1000000}.{ts_next[0] % 1000000:06d}"
            msg = {"type": "message", "text": args.get("text") or "", "user": "U0BOT",
                   "bot_id": "B0BOT", "app_id": "A0APP", "team": "T0TEAM", "ts": ts}
            return self.reply({"ok": True, "channel": "C0BENCH", "ts": ts, "message": msg})
        return self.reply({"ok": True})

if MODE == "fake":
    # Its own process, so that serving the alerts' posts does not hold the probes' GIL.
    fake = ThreadingHTTPServer(("127.0.0.1", FAKE), FakeSlack)
    fake.daemon_threads = True
    fake.serve_forever()

env = dict(os.environ, MENTIONDESK_LOG="warn", RUST_LOG="warn")
err = open(os.path.join(WORK, "daemon.err"), "w")
daemon = subprocess.Popen([BIN, "run", "--config", os.path.join(WORK, "bench.toml")],
                          stdout=subprocess.DEVNULL, stderr=err, env=env)

def get(path, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()

while True:
    if daemon.poll() is not None:
        sys.exit("the daemon exited: " + open(os.path.join(WORK, "daemon.err")).read())
    try:
        get("/healthz", timeout=1)
        break
    except OSError:
        time.sleep(0.05)

stop = threading.Event()
lat = {"/healthz": [], "/metrics": [], "/desk list (ack)": []}
sent_at = {}

def probe_get(path):
    while not stop.is_set():
        t = time.perf_counter()
        try:
            status, _ = get(path)
            if status < 500:
                lat[path].append(time.perf_counter() - t)
        except OSError:
            pass
        time.sleep(0.02)

answers = {}  # trigger -> (threading.Event, monotonic time the private answer arrived)

class ResponseUrl(BaseHTTPRequestHandler):
    """The slash commands' response URL: records when each private answer arrived."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a):
        pass
    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        trigger = self.path.rsplit("/", 1)[-1]
        if trigger in answers:
            answers[trigger][1] = time.monotonic()
            answers[trigger][0].set()
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

def probe_desk():
    # Closed loop, like one person at the desk: the next command goes once the previous one
    # was answered (or after 10 s without an answer).
    responses = ThreadingHTTPServer(("127.0.0.1", 0), ResponseUrl)
    responses.daemon_threads = True
    threading.Thread(target=responses.serve_forever, daemon=True).start()
    i = 0
    while not stop.is_set():
        i += 1
        trigger = f"t{i}"
        answers[trigger] = [threading.Event(), None]
        body = urllib.parse.urlencode({
            "token": "legacy", "team_id": "T0TEAM", "channel_id": "C0BENCH", "user_id": "U0BENCH",
            "user_name": "bench", "command": "/desk", "text": os.environ.get("DESK_TEXT", "list"),
            "response_url": f"http://127.0.0.1:{responses.server_port}/response/{trigger}",
            "trigger_id": trigger,
        }).encode()
        ts = str(int(time.time()))
        sig = "v0=" + hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        t = time.perf_counter()
        sent_at[trigger] = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        try:
            c.request("POST", "/slack/commands", body, {
                "content-type": "application/x-www-form-urlencoded",
                "x-slack-request-timestamp": ts, "x-slack-signature": sig})
            r = c.getresponse()
            r.read()
            if r.status == 200:
                lat["/desk list (ack)"].append(time.perf_counter() - t)
        except OSError:
            pass
        finally:
            c.close()
        answers[trigger][0].wait(10)
        time.sleep(0.02)

def stored():
    _, body = get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith("mentiondesk_mentions_total "):
            return int(float(line.split()[1]))
    return 0

threads = [threading.Thread(target=probe_get, args=(p,)) for p in ("/healthz", "/metrics")]
threads.append(threading.Thread(target=probe_desk))
start = time.perf_counter()
for t in threads:
    t.start()
while stored() < N:
    if daemon.poll() is not None:
        stop.set()
        sys.exit("the daemon exited: " + open(os.path.join(WORK, "daemon.err")).read())
    time.sleep(0.2)
took = time.perf_counter() - start
stop.set()
for t in threads:
    t.join()
time.sleep(2)  # the last private answers
daemon.send_signal(signal.SIGINT)
daemon.wait(timeout=60)

def summary(xs):
    xs = sorted(x * 1000 for x in xs)
    if not xs:
        return "no samples"
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    return f"n={len(xs)} p50={q(0.5):.1f} ms p99={q(0.99):.1f} ms max={xs[-1]:.1f} ms"

print(f"ingest: {N} mentions stored in {took:.1f} s ({N / took:.0f}/s); load average after: {open('/proc/loadavg').read().split()[:3]}")
for k, xs in lat.items():
    print(f"{k}: {summary(xs)}")
answered = [answers[t][1] - s for t, s in sent_at.items() if answers[t][1] is not None]
print(f"/desk list (private answer at the response URL): {summary(answered)}; {len(sent_at) - len(answered)} of {len(sent_at)} unanswered within 10 s")
PY
python3 "$WORK/bench.py" fake "$BIN" "$WORK" "$PORT" "$FAKE" "$SECRET" "$N" &
until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $FAKE), 1)" 2>/dev/null; do sleep 0.1; done
python3 "$WORK/bench.py" probe "$BIN" "$WORK" "$PORT" "$FAKE" "$SECRET" "$N"
