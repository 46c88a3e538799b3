#!/usr/bin/env python3
"""mentiondesk's rule matcher against Hyperscan on the same word/phrase rules and the same real
short posts, in one run (issue 14, goal 4: at least 2x Hyperscan's per-post throughput at 10 %
and 30 % of posts matching).

    python3 -m venv /tmp/hs && /tmp/hs/bin/pip install hyperscan
    /tmp/hs/bin/python scripts/hyperscan_compare.py POSTS.txt [MORE.txt ...]

POSTS: one post per line, e.g. TweetEval (github.com/cardiffnlp/tweeteval)
datasets/sentiment/test_text.txt, datasets/emotion/train_text.txt,
datasets/irony/train_text.txt. For each --pct (default 10 and 30) it builds the workload with
scripts/match_workload.py (10,000 rules, 10 % of them two-word phrases), then measures:

- mentiondesk: `cargo bench --bench rules_files` (release), one `RuleSet::matches` per post,
  CPU time of the measuring thread;
- Hyperscan 5 (the `hyperscan` PyPI binding, block mode, one `Database.scan` per post; flags
  CASELESS | SINGLEMATCH, each rule `\\bword\\b` or `\\bword[^A-Za-z0-9]+word\\b`), CPU time of
  the measuring thread. The binding's own costs are measured separately and subtracted: the
  per-call overhead (a scan of the same posts against a one-pattern database that never
  matches) and the per-match callback into Python (a database whose one pattern matches every
  post once, minus the per-call overhead).

It also reports how often the two engines disagree on which rules a post matches (they split
words differently only at `_` and non-ASCII letters next to a rule word).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import hyperscan

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FLAGS = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH


def hs_expr(query):
    """mentiondesk `word` / `"word word"` as a Hyperscan expression on word boundaries."""
    words = query.strip('"').split(" ")
    return ("\\b" + "[^A-Za-z0-9]+".join(words) + "\\b").encode()


def compile_db(exprs):
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=[FLAGS] * len(exprs))
    return db


def cpu_per_post(db, posts, seconds, on_match):
    """CPU seconds of this thread per post, scanning all posts repeatedly for `seconds`."""
    for p in posts:
        db.scan(p, match_event_handler=on_match)
    start = time.thread_time()
    done = 0
    while time.thread_time() - start < seconds:
        for p in posts:
            db.scan(p, match_event_handler=on_match)
        done += len(posts)
    return (time.thread_time() - start) / done


def ours(workdir, seconds):
    env = dict(
        os.environ,
        RULES_FILE=os.path.join(workdir, "rules.tsv"),
        POSTS_FILE=os.path.join(workdir, "posts.txt"),
        MATCHES_OUT=os.path.join(workdir, "ours.tsv"),
        CPU_SECONDS=str(seconds),
    )
    out = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "rules_files"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout
    ns = None
    for line in out.splitlines():
        print("   ", line)
        if "ns per post" in line:
            ns = float(line.split(":")[1].split("ns")[0])
    matches = {}
    with open(os.path.join(workdir, "ours.tsv")) as f:
        for line in f:
            post, rules = line.rstrip("\n").split("\t")
            matches[int(post)] = set(map(int, rules.split()))
    return ns, matches


def run(pct, files, seconds, tmp):
    workdir = os.path.join(tmp, f"w{pct}")
    subprocess.run(
        [sys.executable, os.path.join(HERE, "match_workload.py"), "--out", workdir, "--match-pct", str(pct), *files],
        check=True,
    )
    with open(os.path.join(workdir, "rules.tsv"), encoding="utf-8") as f:
        queries = [l.rstrip("\n").split("\t", 1)[1] for l in f]
    with open(os.path.join(workdir, "posts.txt"), encoding="utf-8") as f:
        posts = [l.rstrip("\n").encode() for l in f]

    started = time.process_time()
    db = compile_db([hs_expr(q) for q in queries])
    hs_compile = time.process_time() - started
    never = compile_db([b"qzxjqzxjqzxjqzxj"])
    every = compile_db([b"(?s)."])

    hs_matches = {}
    for i, p in enumerate(posts):
        found = set()
        db.scan(p, match_event_handler=lambda rule, _f, _t, _fl, _c: found.add(rule))
        if found:
            hs_matches[i] = found
    per_post_hits = sum(len(v) for v in hs_matches.values()) / len(posts)

    nothing = lambda *_: None  # noqa: E731
    # Side by side: Hyperscan, mentiondesk, Hyperscan again (the machine's load drifts).
    hs_a = cpu_per_post(db, posts, seconds, nothing)
    our_ns, our_matches = ours(workdir, seconds)
    hs_b = cpu_per_post(db, posts, seconds, nothing)
    call = cpu_per_post(never, posts, seconds, nothing)
    one_hit = cpu_per_post(every, posts, seconds, nothing)
    callback = max(one_hit - call, 0.0)
    hs_total = min(hs_a, hs_b)
    hs_net = hs_total - call - per_post_hits * callback

    differ = sum(
        1 for i in range(len(posts)) if hs_matches.get(i, set()) != our_matches.get(i, set())
    )
    us = 1e6
    print(f"  {pct} % target: {len(posts)} posts, {100.0 * len(our_matches) / len(posts):.1f} % match (mentiondesk), "
          f"{100.0 * len(hs_matches) / len(posts):.1f} % (hyperscan); {per_post_hits:.2f} rule hits per post; "
          f"engines disagree on {differ} posts")
    print(f"  hyperscan compile: {hs_compile:.1f} s CPU")
    print(f"  hyperscan scan, as called from Python: {hs_total * us:.2f} us per post (runs: {hs_a * us:.2f}, {hs_b * us:.2f})")
    print(f"    of which per-call overhead {call * us:.2f} us, callback {callback * us:.2f} us per match")
    print(f"    hyperscan itself (the above minus overheads): {hs_net * us:.2f} us per post, {1 / hs_net:,.0f} posts/CPU-s")
    ours_s = our_ns / 1e9
    print(f"  mentiondesk: {our_ns / 1e3:.2f} us per post, {1 / ours_s:,.0f} posts/CPU-s")
    print(f"  ratio (hyperscan itself / mentiondesk): {hs_net / ours_s:.2f}x; "
          f"against hyperscan as called from Python: {hs_total / ours_s:.2f}x")
    return hs_net / ours_s


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pct", type=float, action="append", help="share of posts that match (repeatable)")
    p.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per measurement")
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    print(f"hyperscan {hyperscan.__version__} (PyPI binding), Python {sys.version.split()[0]}")
    subprocess.run(["cargo", "bench", "--no-run", "--quiet", "--bench", "rules_files"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        for pct in args.pct or [10.0, 30.0]:
            print(f"workload at {pct:g} % matching:")
            run(pct, args.files, args.seconds, tmp)


if __name__ == "__main__":
    main()
