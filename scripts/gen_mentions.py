#!/usr/bin/env python3
"""Writes N JSON lines for a `file` source: ~150 bytes of text per post, PCT percent of them
mentioning "acme" (so they match the benchmark's rule), each with a unique id, author and URL
(unique authors, so no alert threads into another). Deterministic for a given seed.

Usage: gen_mentions.py N PCT OUT.jsonl [SEED]

With POSTS_FROM=FILE (one real post per line, e.g. TweetEval's texts) each post is the
words of random lines of FILE, one line after another, cut to ~150 characters, so it
compresses like real text
(the default vocabulary of 60 words compresses far better than real posts do).
"""
import os
import json
import random
import sys

WORDS = (
    "the a my our this that new old update router phone app service support order delivery "
    "price screen battery login account refund week today again still never always great "
    "terrible slow fast broken works love hate waiting help please thanks team store online "
    "firmware driver setting wifi cable box package email reply ticket night morning customer"
).split()


def post(rng, match, lines=None):
    words = []
    length = 0
    target = rng.randint(140, 160)
    while length < target:
        if lines:
            more = rng.choice(lines).split()
        else:
            more = [rng.choice(WORDS)]
        for w in more:
            words.append(w)
            length += len(w) + 1
    if match:
        words[rng.randrange(len(words))] = "acme"
    return " ".join(words)[:target]


def main():
    n, pct, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 14)
    every = round(100 / pct) if pct > 0 else 0
    lines = None
    if os.environ.get("POSTS_FROM"):
        with open(os.environ["POSTS_FROM"], encoding="utf-8") as f:
            lines = [l.strip() for l in f if len(l.split()) >= 3]
    with open(out, "w") as f:
        for i in range(n):
            match = every > 0 and i % every == 0
            line = {
                "id": str(i),
                "text": post(rng, match, lines),
                "author": f"user{i}",
                "url": f"https://forum.example.com/t/{i}",
            }
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
