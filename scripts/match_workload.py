#!/usr/bin/env python3
"""Builds a matcher workload from real short posts: N word/phrase rules of which just enough
occur in the posts that about --match-pct % of the posts match at least one rule; the others
are brand-like words that occur nowhere (as most of a real deployment's brands are absent from
any one post). Used by scripts/bench_match.sh and scripts/hyperscan_compare.py.

    python3 scripts/match_workload.py --out /tmp/w10 --match-pct 10 posts.txt [more.txt ...]

Input: text files, one post per line (e.g. TweetEval's datasets/*/test_text.txt and
train_text.txt from github.com/cardiffnlp/tweeteval). Empty lines are skipped.

Writes into --out:
  posts.txt     the posts, one per line (as read)
  posts.jsonl   the same as `mentiondesk match` input lines ({"id": n, "text": ...})
  rules.tsv     name<TAB>query (mentiondesk syntax: `word` or `"word word"`)
  config.toml   the rules as a mentiondesk config (`match --config`)

Rule words are lower-case ASCII letters (3+), chosen among words that occur in at most 5 posts,
so each covers few posts; 10 % of the rules are two-word phrases (a bigram of the posts, or
two absent words). The chosen % is what this script's own word split finds; the matcher
reports the exact figure.
"""

import argparse
import json
import os
import random
import re

WORD = re.compile(r"[^\W_]+")
ASCII_WORD = re.compile(r"[a-z]{3,}")


def words_of(text):
    return WORD.findall(text.lower())


def brand_word(rng, taken):
    while True:
        w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(6, 10)))
        if w not in taken:
            taken.add(w)
            return w


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--rules", type=int, default=10_000)
    p.add_argument("--match-pct", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    rng = random.Random(args.seed)

    posts = []
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            posts.extend(l.rstrip("\n") for l in f if l.strip())
    tokens = [words_of(t) for t in posts]
    df = {}
    for toks in tokens:
        for w in set(toks):
            df[w] = df.get(w, 0) + 1
    # Where each candidate word occurs.
    where = {}
    for i, toks in enumerate(tokens):
        for w in set(toks):
            if df[w] <= 5 and ASCII_WORD.fullmatch(w):
                where.setdefault(w, []).append(i)
    bigrams = {}
    for i, toks in enumerate(tokens):
        for a, b in zip(toks, toks[1:]):
            if a in where and ASCII_WORD.fullmatch(b):
                bigrams.setdefault((a, b), set()).add(i)

    target = len(posts) * args.match_pct / 100.0
    covered = set()
    rules = []  # list of word tuples
    candidates = sorted(where)
    rng.shuffle(candidates)
    bigram_keys = sorted(bigrams)
    rng.shuffle(bigram_keys)
    taken = set(df)
    for w in candidates:
        if len(covered) >= target or len(rules) >= args.rules:
            break
        if len(rules) % 10 == 9 and bigram_keys:
            pair = bigram_keys.pop()
            rules.append(pair)
            covered |= bigrams[pair]
            continue
        rules.append((w,))
        covered |= set(where[w])
    while len(rules) < args.rules:
        if len(rules) % 10 == 9:
            rules.append((brand_word(rng, taken), brand_word(rng, taken)))
        else:
            rules.append((brand_word(rng, taken),))
    rng.shuffle(rules)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "posts.txt"), "w", encoding="utf-8") as f:
        for t in posts:
            f.write(t + "\n")
    with open(os.path.join(args.out, "posts.jsonl"), "w", encoding="utf-8") as f:
        for i, t in enumerate(posts):
            f.write(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n")
    with open(os.path.join(args.out, "rules.tsv"), "w", encoding="utf-8") as f:
        for i, r in enumerate(rules):
            q = r[0] if len(r) == 1 else '"' + " ".join(r) + '"'
            f.write(f"r{i}\t{q}\n")
    with open(os.path.join(args.out, "config.toml"), "w", encoding="utf-8") as f:
        for i, r in enumerate(rules):
            q = r[0] if len(r) == 1 else '"' + " ".join(r) + '"'
            f.write(f'[[rules]]\nname = "r{i}"\nquery = \'{q}\'\nalert = ["slack:#pr"]\n\n')
    size = sum(len(t.encode()) for t in posts) / len(posts)
    print(
        f"{len(posts)} posts ({size:.0f} bytes on average), {len(rules)} rules "
        f"({sum(len(r) == 2 for r in rules)} phrases); about {100.0 * len(covered) / len(posts):.1f} % "
        f"of posts contain a rule -> {args.out}"
    )


if __name__ == "__main__":
    main()
