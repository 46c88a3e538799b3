#!/usr/bin/env python3
"""Precision and recall of `negative` as `mentiondesk match` prints it, next to plain VADER
(compound <= -0.05, read from the same output's `vader`; `sentiment` before issue 15) on the
same texts.

What it does not do: fetch data or tune anything. Pass the labelled files:

  --gt FILE    a hutto_ICWSM_2014 *GroundTruth.txt file (cjhutto/vaderSentiment, MIT):
               id<TAB>mean human rating (-4..4)<TAB>text; negative = rating < --below.
  --complaints FILE
               complaints-data.csv from danielpreotiuc/complaints-social-media
               (Preotiuc-Pietro et al., ACL 2019): id,text,label,domain; negative = label 1.
               Split in two by row: even rows are the development half, odd rows held out
               (--half dev|test|all).

    python3 scripts/negative_bench.py --bin target/debug/mentiondesk \
        --gt .../amazonReviewSnippets_GroundTruth.txt --complaints .../complaints-data.csv --half dev
    add --errors N to print N false negatives and N false positives per set (development only).
"""

import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vader_parity import read_ground_truth, rust_match  # noqa: E402

VADER_NEGATIVE = -0.05


def complaints(path, half):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    keep = {"dev": 0, "test": 1}.get(half)
    for i, (ident, text, label, _domain) in enumerate(rows):
        if keep is None or i % 2 == keep:
            yield ident, label == "1", text


def prf(pred, gold):
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum(g and not p for p, g in zip(pred, gold))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def report(name, rows, binary, errors):
    texts = [t for _, _, t in rows]
    gold = [g for _, g, _ in rows]
    verdicts = rust_match(binary, texts)
    # Binaries from before issue 15 print VADER's compound as `sentiment` and have no `vader`.
    vader = [v.get("vader", v["sentiment"]) <= VADER_NEGATIVE for v in verdicts]
    ours = [v["negative"] for v in verdicts]
    pv, rv, fv = prf(vader, gold)
    po, ro, fo = prf(ours, gold)
    print(
        f"| {name} | {len(rows)} | {sum(gold)} | {pv:.3f} | {rv:.3f} | {fv:.3f} "
        f"| {po:.3f} | {ro:.3f} | {fo:.3f} |"
    )
    if errors:
        fns = [t for t, g, o in zip(texts, gold, ours) if g and not o][:errors]
        fps = [t for t, g, o in zip(texts, gold, ours) if o and not g][:errors]
        for t in fns:
            print(f"    FN: {t[:160]!r}", file=sys.stderr)
        for t in fps:
            print(f"    FP: {t[:160]!r}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="target/debug/mentiondesk")
    p.add_argument("--gt", action="append", default=[])
    p.add_argument("--below", type=float, default=-0.5, help="human mean rating below which a text is negative")
    p.add_argument("--complaints")
    p.add_argument("--half", choices=["dev", "test", "all"], default="test")
    p.add_argument("--errors", type=int, default=0)
    args = p.parse_args()
    print("| set | texts | negative | VADER P | VADER R | VADER F1 | mentiondesk P | mentiondesk R | mentiondesk F1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path in args.gt:
        rows = [(i, r < args.below, t) for i, r, t in read_ground_truth(path)]
        report(os.path.basename(path).replace("_GroundTruth.txt", ""), rows, args.bin, args.errors)
    if args.complaints:
        rows = list(complaints(args.complaints, args.half))
        report(f"complaints ({args.half})", rows, args.bin, args.errors)


if __name__ == "__main__":
    main()
