#!/usr/bin/env bash
# Alerts per second end to end with the sled store and with PostgreSQL at 1, 2 and 3 replicas,
# and the database's size per 100k alerts (issue 17).
#
# Each run: a fresh store (a sled folder, or a fresh database in a PostgreSQL cluster this
# script starts in a temporary folder, fsync on, default settings), N generated mentions in a
# `file` source (~150-byte posts, every one mentioning "acme", so N alerts), one rule alerting
# to Slack, and a fake Slack API on 127.0.0.1 in a process of its own (answers at once). The
# replicas are the release binary as separate processes on the same config (PostgreSQL:
# `[store] replica` r0, r1, r2). One replica polls the file (it holds the source's lease);
# every replica's relay delivers.
# The figure: N / (time of the N-th chat.postMessage - time of the first), i.e. alerts stored
# and posted per second once the first alert is out (start-up and the poll's read excluded).
# Database size: pg_database_size after the 1-replica run (whole database: tables, indexes,
# TOAST), scaled to 100k alerts; sled: the store folder's size after the run.
#
# Usage: scripts/replica_bench.sh [N=5000]
#   MENTIONDESK_BIN  the binary (default target/release/mentiondesk; `cargo build --release`).
#   PG_BIN           PostgreSQL's bin folder (default: the newest /usr/lib/postgresql/*/bin).
set -euo pipefail
N=${1:-5000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MENTIONDESK_BIN:-$ROOT/target/release/mentiondesk}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
WORK=$(mktemp -d /tmp/mentiondesk-replicas.XXXXXX)
chmod 777 "$WORK"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
python3 "$ROOT/scripts/gen_mentions.py" "$N" 100 "$WORK/mentions.jsonl"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$BIN" "$PG_BIN" "$WORK" "$N" <<'PY'
import json, os, shutil, subprocess, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIN, PG_BIN, WORK, N = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

def free_port():
    import socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

# --- the fake Slack, in a child process so the daemons' posts do not wait on this one's GIL ---
FAKE = free_port()
fake_src = r'''
import json, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
lock = threading.Lock(); posts = []; ts_next = [1700000000000000]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        # Headers and body leave in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold every answer ~40 ms, and the fake sets the pace.
        import socket
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def log_message(self, *a): pass
    def reply(self, obj):
        b = json.dumps(obj).encode()
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self): self.do_POST()
    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        m = self.path.split("?")[0].rsplit("/", 1)[-1]
        if m == "count":
            with lock: return self.reply({"posts": len(posts), "first": posts[0] if posts else None, "last": posts[-1] if posts else None})
        if m == "reset":
            with lock: posts.clear()
            return self.reply({"ok": True})
        if m == "auth.test":
            return self.reply({"ok": True, "url": "https://bench.slack.com/", "team": "Bench", "user": "mentiondesk",
                               "team_id": "T0TEAM", "user_id": "U0BOT", "bot_id": "B0BOT", "is_enterprise_install": False})
        try:
            args = json.loads(raw) if raw.startswith(b"{") else dict(urllib.parse.parse_qsl(raw.decode()))
        except ValueError:
            args = {}
        if m in ("chat.postMessage", "chat.update"):
            with lock:
                ts_next[0] += 1
                ts = args.get("ts") or f"{ts_next[0] // 1000000}.{ts_next[0] % 1000000:06d}"
                if m == "chat.postMessage": posts.append(time.time())
            msg = {"type": "message", "text": args.get("text") or "", "user": "U0BOT", "bot_id": "B0BOT", "ts": ts}
            return self.reply({"ok": True, "channel": "C0BENCH", "ts": ts, "message": msg})
        if m == "conversations.history":
            return self.reply({"ok": True, "messages": [], "has_more": False})
        return self.reply({"ok": True})
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H); s.daemon_threads = True; s.serve_forever()
'''
fake = subprocess.Popen([sys.executable, "-c", fake_src, str(FAKE)])
procs = [fake]

def fake_get(path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", FAKE, timeout=10)
    c.request("GET", "/api/" + path); r = json.loads(c.getresponse().read()); c.close(); return r

# --- a PostgreSQL cluster for the run ---
PG_PORT = free_port()
pgdata = os.path.join(WORK, "pgdata")
subprocess.run(as_pg + [f"{PG_BIN}/initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
               check=True, stdout=subprocess.DEVNULL)
pg = subprocess.Popen(as_pg + [f"{PG_BIN}/postgres", "-D", pgdata, "-p", str(PG_PORT), "-k", WORK,
                      "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=100"],
                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "pg.log"), "w"))
procs.append(pg)

def psql(sql, db="postgres"):
    return subprocess.run(as_pg + [f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres",
                                   "-d", db, "-Atc", sql], check=True, capture_output=True, text=True).stdout.strip()

for _ in range(200):
    try:
        psql("SELECT 1"); break
    except subprocess.CalledProcessError:
        time.sleep(0.1)

def config(path, store, port, replica):
    with open(path, "w") as f:
        f.write(store.format(replica=replica))
        f.write(f'''
[server]
listen = "127.0.0.1:{port}"

[slack]
bot_token = "xoxb-replica-bench"
signing_secret = "replica-bench-secret"
api_url = "http://127.0.0.1:{FAKE}/api"

[[sources]]
name = "bench"
kind = "file"
path = "{WORK}/mentions.jsonl"
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
''')

def run(label, store, replicas):
    fake_get("reset")
    env = dict(os.environ, MENTIONDESK_LOG="warn")
    daemons = []
    for i in range(replicas):
        d = os.path.join(WORK, f"{label}-r{i}"); os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, "bench.toml")
        config(cfg, store, free_port(), f"r{i}")
        daemons.append(subprocess.Popen([BIN, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                                        stderr=open(os.path.join(d, "err.log"), "w"), env=env))
    deadline = time.time() + 1200
    shown = time.time()
    last = (0, time.time())
    while True:
        c = fake_get("count")
        if time.time() - shown > 10:
            print(f"  {label}: {c['posts']} of {N} posted", file=sys.stderr, flush=True)
            shown = time.time()
        if c["posts"] != last[0]:
            last = (c["posts"], time.time())
        # Done: all N, or nothing new for 10 s (a generated post the pipeline drops as a
        # duplicate of another raises no alert).
        if c["posts"] >= N or (c["posts"] and time.time() - last[1] > 10) or time.time() > deadline:
            break
        for d in daemons:
            if d.poll() is not None:
                sys.exit(f"{label}: a replica exited; see {WORK}")
        time.sleep(0.2)
    for d in daemons:
        d.terminate()
    for d in daemons:
        d.wait()
    posted = c["posts"]
    if posted < N * 0.95:
        sys.exit(f"{label}: only {posted} of {N} posted in time; see {WORK}")
    span = c["last"] - c["first"]
    rate = (posted - 1) / span if span > 0 else float("inf")
    print(f"{label:<24} {posted} alerts in {span:6.1f} s after the first post: {rate:7.0f} alerts/s", flush=True)
    return posted

try:
    sled_dir = os.path.join(WORK, "sled-store")
    alerts = run("sled, 1 process", f'[store]\npath = "{sled_dir}"\n', 1)
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(sled_dir) for f in fs)
    print(f"sled store after {alerts} alerts: {size / 1e6:.1f} MB ({size / alerts * 100000 / 1e6:.0f} MB per 100k alerts)")
    for replicas in (1, 2, 3):
        db = f"bench_{replicas}"
        psql(f"CREATE DATABASE {db}")
        store = (f'[store]\nbackend = "postgres"\nurl = "postgres://postgres@127.0.0.1:{PG_PORT}/{db}"\n'
                 'tls = "disable"\nreplica = "{replica}"\n')
        alerts = run(f"postgres, {replicas} replica{'s' if replicas > 1 else ''}", store, replicas)
        stored = int(psql("SELECT count(*) FROM alerts", db))
        if stored != alerts:
            print(f"  !! {alerts} posts for {stored} stored alerts: {alerts - stored} posted twice")
        if replicas == 1:
            size = int(psql(f"SELECT pg_database_size('{db}')"))
            empty = int(psql("SELECT pg_database_size('postgres')"))
            print(f"database after {alerts} alerts: {size / 1e6:.1f} MB (an empty database: {empty / 1e6:.1f} MB); "
                  f"{(size - empty) / alerts * 100000 / 1e6:.0f} MB per 100k alerts above empty")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try: p.wait(timeout=20)
        except subprocess.TimeoutExpired: p.kill()
    shutil.rmtree(WORK, ignore_errors=True)
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
