#!/usr/bin/env python3
"""Writes the VADER tables `src/analysis/vader.rs` compiles in (assets/vader/), from the
lexicon files of the installed reference package, vaderSentiment 3.3.2 (MIT, C.J. Hutto):

    pip install vaderSentiment==3.3.2
    python3 scripts/vader_tables.py assets/vader

- lexicon.tsv: `word<TAB>valence`, one line per key of the reference's `make_lex_dict`
  (duplicates resolved the way the reference's dict does: the later line wins), in the
  dict's order. The standard deviation and raw ratings columns are dropped: scoring never
  reads them.
- emoji.tsv: `emoji<TAB>description` for the keys of `make_emoji_dict` that are one code
  point: the reference looks emoji up one character at a time, so longer keys never match.

The values are copied as written (no float round trip), so Rust's and Python's parsers read
the same decimal strings. Exits 1 if the package is not 3.3.2.
"""

import hashlib
import os
import sys

import vaderSentiment
from vaderSentiment import vaderSentiment as vs

# sha256 of the two files in the vaderSentiment 3.3.2 sdist.
LEXICON_SHA256 = "1ec9c6e9ee19aade328f8beb393a6afa71a5bb3acf7d3cc22d4ef568df374bf5"
EMOJI_SHA256 = "b8d54223ae1ce22a3e12c1f745316b71678c328eb5f5d3063a842f37cfbe2823"


def read_checked(path, digest):
    with open(path, "rb") as f:
        raw = f.read()
    if hashlib.sha256(raw).hexdigest() != digest:
        sys.exit(f"{path} is not the vaderSentiment 3.3.2 file")
    return raw.decode("utf-8")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "assets/vader"
    pkg = os.path.dirname(vaderSentiment.__file__)
    lexicon = read_checked(os.path.join(pkg, "vader_lexicon.txt"), LEXICON_SHA256)
    emoji = read_checked(os.path.join(pkg, "emoji_utf8_lexicon.txt"), EMOJI_SHA256)
    # The reference's loaders, keeping the measure as the string it parses.
    lex = {}
    for line in lexicon.rstrip("\n").split("\n"):
        if not line:
            continue
        word, measure = line.strip().split("\t")[0:2]
        float(measure)
        lex[word] = measure
    emojis = {}
    for line in emoji.rstrip("\n").split("\n"):
        key, description = line.strip().split("\t")[0:2]
        emojis[key] = description
    # Cross-check against the package's own loaders.
    sia = vs.SentimentIntensityAnalyzer()
    assert {k: float(v) for k, v in lex.items()} == sia.lexicon
    assert emojis == sia.emojis
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "lexicon.tsv"), "w", encoding="utf-8", newline="\n") as f:
        for word, measure in lex.items():
            assert "\t" not in word and "\n" not in word
            f.write(f"{word}\t{measure}\n")
    single = {k: v for k, v in emojis.items() if len(k) == 1}
    with open(os.path.join(out, "emoji.tsv"), "w", encoding="utf-8", newline="\n") as f:
        for key, description in single.items():
            f.write(f"{key}\t{description}\n")
    print(f"{len(lex)} lexicon entries, {len(single)} single code point emoji -> {out}")


if __name__ == "__main__":
    main()
