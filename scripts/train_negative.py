#!/usr/bin/env python3
"""Train and evaluate mentiondesk's negative/complaint model (issue 15, part 1).

Two logistic regressions ("heads") over the same hashed word uni/bigrams and character
3-5-grams (defined in scripts/negative_features.py and reproduced by src/analysis/model.rs):
p_neg, "negative about or a complaint to the brand", and p_pos, "positive". `negative` is
p_neg >= the stored threshold; `sentiment` is p_pos - p_neg. It writes `models/negative.bin`
and `tests/data/negative_model_fixture.jsonl`, and prints precision, recall and F1 of the
negative class on every test split next to plain VADER (compound <= -0.05) and, with --bin,
next to what `mentiondesk match` prints as `negative`.

Data (see models/README.md for sources, licences and splits): a directory with
  complaints-data.csv                 danielpreotiuc/complaints-social-media
  tweeteval/{val,test}_{text,labels}.txt   cardiffnlp/tweeteval datasets/sentiment
  hutto_ICWSM_2014/*_GroundTruth.txt  cjhutto/vaderSentiment additional_resources/hutto_ICWSM_2014.tar.gz
  semeval/twitter-*-A.txt             SemEval-2013..2016 task "Sentiment Analysis in Twitter",
                                      subtask A gold files (the source of TweetEval's train split)
  sanders-full-corpus.csv             Sanders Twitter sentiment corpus (zfz/twitter_corpus)

Tweets addressed to or about airlines are dropped from every source before splitting
(AIRLINE below): the airline-tweets sentiment set is the held-out judge of this work.

    python3 scripts/train_negative.py train --data DIR            # writes the model + fixture
    python3 scripts/train_negative.py eval --data DIR [--bin target/debug/mentiondesk]
    python3 scripts/train_negative.py export --data DIR --out FILE   # for the Rust check

Needs numpy, scipy, scikit-learn and vaderSentiment==3.3.2 (eval only). Fixed seed; the same
data gives byte-identical output.
"""

import argparse
import csv
import json
import math
import os
import random
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import negative_features as nf  # noqa: E402

SEED = 15
BITS = 18
MAGIC = b"MDNEGMOD"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "negative.bin")
FIXTURE = os.path.join(ROOT, "tests", "data", "negative_model_fixture.jsonl")
VADER_NEGATIVE = -0.05
HUTTO_NEGATIVE_BELOW = -0.5
HUTTO_POSITIVE_ABOVE = 0.5
HUTTO = ["tweets", "amazonReviewSnippets", "nytEditorialSnippets", "movieReviewSnippets"]

# Handles of airlines and airports, and words about flying. A text matching any of them is
# dropped from training, validation and test alike.
AIRLINE = re.compile(
    r"@(united|americanair|southwestair|jetblue|virginamerica|usairways|delta|deltaassist"
    r"|british_airways|ba|airasiasupport|airasia|alaskaair|aircanada|lufthansa|ryanair"
    r"|easyjet|emirates|qantas|spiritairlines|flyfrontier|hawaiianair|klm|airfrance"
    r"|virginatlantic|\w*airport|\w*airline\w*|\w*airways\w*)\b"
    r"|\b(airlines?|flights?|airport|airplane|aircraft|boarding|baggage|layover|pilot)\b",
    re.IGNORECASE,
)


def norm(text):
    """Text as compared for duplicates across sources: TweetEval writes every handle as
    "@user" and some files quote or escape the text, so only letters and digits outside
    handles and links count, lowercased."""
    text = re.sub(r"@\w+|https?://\S+", " ", text.lower())
    return "".join(c for c in text if c.isalnum())


def seeded_rank(n):
    """Rank of each index 0..n-1 in a seeded shuffle, as a fraction of n."""
    order = list(range(n))
    random.Random(SEED).shuffle(order)
    rank = [0.0] * n
    for r, j in enumerate(order):
        rank[j] = r / n
    return rank


def split_70_10_20(r):
    return "train" if r < 0.7 else "val" if r < 0.8 else "test"


def load(data):
    """Every labelled text as dict(source, split, text, y, pos); airline texts dropped.

    y: negative (or a complaint); pos: positive, or None where the source does not say (the
    complaints set labels complaints only)."""
    rows, dropped = [], {}

    def add(source, split, text, y, pos):
        if AIRLINE.search(text):
            dropped[source] = dropped.get(source, 0) + 1
            return
        rows.append({"source": source, "split": split, "text": text, "y": int(y), "pos": pos})

    # Complaints: the odd rows are the test half (as scripts/negative_bench.py); the even
    # rows are split 80/20 into train and validation by the seed.
    with open(os.path.join(data, "complaints-data.csv"), encoding="utf-8", newline="") as f:
        crow = list(csv.reader(f))
    even = [r for i, r in enumerate(crow) if i % 2 == 0]
    val_rank = list(range(len(even)))
    random.Random(SEED).shuffle(val_rank)
    is_val = {j: r < 0.2 * len(even) for r, j in enumerate(val_rank)}
    for i, (_id, text, label, _domain) in enumerate(crow):
        if i % 2 == 1:
            add("complaints", "test", text, label == "1", None)
        else:
            add("complaints", "val" if is_val[i // 2] else "train", text, label == "1", None)

    # TweetEval sentiment: val and test files pooled (its train_text.txt is over the size
    # the snapshots carry), then 70/10/20 by the seed. Labels 0/1/2 = negative/neutral/positive.
    texts, labels = [], []
    for part in ("val", "test"):
        with open(os.path.join(data, "tweeteval", f"{part}_text.txt"), encoding="utf-8") as f:
            texts += f.read().split("\n")[:-1]
        with open(os.path.join(data, "tweeteval", f"{part}_labels.txt"), encoding="utf-8") as f:
            labels += [int(x) for x in f.read().split()]
    assert len(texts) == len(labels), (len(texts), len(labels))
    rank = seeded_rank(len(texts))
    for i, (t, l) in enumerate(zip(texts, labels)):
        add("tweeteval", split_70_10_20(rank[i]), t, l == 0, l == 2)
    tweeteval_seen = {norm(t) for t in texts}

    # SemEval 2013-2016 subtask A gold tweets, the pool TweetEval's train split was drawn
    # from: training only. A tweet that is also in TweetEval's val or test file (which our
    # TweetEval validation and test splits come from) is left out, and so is every repeat.
    sem_dir = os.path.join(data, "semeval")
    if os.path.isdir(sem_dir):
        seen = set(tweeteval_seen)
        for name in sorted(os.listdir(sem_dir)):
            if not (name.startswith("twitter-") and name.endswith("-A.txt")):
                continue
            with open(os.path.join(sem_dir, name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.rstrip("\r\n").split("\t")
                    if len(parts) < 3 or parts[1] not in ("negative", "neutral", "positive"):
                        continue
                    text = parts[2]
                    if len(text) > 1 and text[0] == '"' and text[-1] == '"':
                        text = text[1:-1].replace('""', '"')
                    k = norm(text)
                    if k in seen:
                        dropped["semeval duplicates"] = dropped.get("semeval duplicates", 0) + 1
                        continue
                    seen.add(k)
                    add("semeval", "train", text, parts[1] == "negative", parts[1] == "positive")

    # Sanders: tweets to and about Apple, Google, Microsoft and Twitter, hand-labelled
    # positive / negative / neutral / irrelevant (not English or not about the brand; left
    # out). 70/10/20 by the seed.
    sanders = os.path.join(data, "sanders-full-corpus.csv")
    if os.path.exists(sanders):
        with open(sanders, encoding="utf-8", errors="replace", newline="") as f:
            items = [r for r in csv.DictReader(f) if r["Sentiment"] in ("positive", "negative", "neutral")]
        rank = seeded_rank(len(items))
        for i, r in enumerate(items):
            add("sanders", split_70_10_20(rank[i]), r["TweetText"], r["Sentiment"] == "negative",
                r["Sentiment"] == "positive")

    # VADER's human-rated ground truth: negative = mean rating below -0.5, positive = above
    # 0.5; 70/10/20 each.
    for name in HUTTO:
        path = os.path.join(data, "hutto_ICWSM_2014", f"{name}_GroundTruth.txt")
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            items = [ln.rstrip("\r\n").split("\t", 2) for ln in f if ln.strip()]
        rank = seeded_rank(len(items))
        for i, (_id, mean, text) in enumerate(items):
            add(name, split_70_10_20(rank[i]), text, float(mean) < HUTTO_NEGATIVE_BELOW,
                float(mean) > HUTTO_POSITIVE_ABOVE)
    return rows, dropped


SOURCES = ["complaints", "sanders", "tweeteval", "semeval"] + HUTTO
# The validation rows that choose the settings and the threshold: posts to brands.
BRAND_VAL = ("complaints", "sanders")
# Sources the negative head does not learn from, by default: on the brand validation rows
# (C = 0.5, complaint weight 5) leaving them out scored F1 0.636, against 0.626 without
# semeval only and 0.608 with every source (models/README.md). Film reviews and editorials are
# far from posts to brands, and SemEval's general tweets outnumber the complaints 36 to 1.
NEG_EXCLUDE = ("semeval", "movieReviewSnippets", "nytEditorialSnippets")


def matrix(texts, bits):
    import numpy as np
    from scipy.sparse import csr_matrix

    indptr, indices, values = [0], [], []
    for t in texts:
        counts = {}
        b = nf.feature_buckets(t, bits)
        for k in b:
            counts[k] = counts.get(k, 0) + 1
        scale = 1.0 / math.sqrt(len(b)) if b else 0.0
        for k in sorted(counts):
            indices.append(k)
            values.append(counts[k] * scale)
        indptr.append(len(indices))
    return csr_matrix((np.array(values), np.array(indices), np.array(indptr)), shape=(len(texts), 1 << bits))


def prf(pred, gold):
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum(g and not p for p, g in zip(pred, gold))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def best_threshold(scores, gold):
    """The threshold (0.01 steps) with the best F1; ties go to the higher threshold."""
    best = (0.0, 0.5)
    for k in range(5, 96):
        t = k / 100
        f = prf([s >= t for s in scores], gold)[2]
        if f >= best[0]:
            best = (f, t)
    return best[1], best[0]


HEADS = ["negative", "positive"]


# Weights are stored as 16-bit integers, each head with its own scale (a power of two, so
# the scale, a weight and their product are exact in f32, f64 and JSON): 4 bytes per bucket
# instead of 8, so the table (1 MiB at 18 bits) stays in a core's 1 MiB L2 cache far more
# than the 2 MiB f32 table did (models/README.md, "Why 16-bit weights").
QMAX = 32767


def quantize(w):
    """(int16 weights, scale) with w ~= weights * scale; scale the smallest power of two
    that keeps every |w| / scale within QMAX."""
    import numpy as np

    top = float(np.max(np.abs(w)))
    scale = 2.0 ** math.ceil(math.log2(top / QMAX)) if top > 0 else 1.0
    return np.rint(w.astype(np.float64) / scale).astype(np.int16), scale


class Model:
    """Weights as stored (int16, one row of len(HEADS) per bucket, a scale per head), scored
    exactly as src/analysis/model.rs does: the integer sum of the hit weights, times the
    head's scale, over sqrt(hits), plus the bias, in f64."""

    def __init__(self, weights, scales, biases, threshold, bits):
        self.weights, self.scales, self.biases = weights, scales, biases
        self.threshold, self.bits = threshold, bits

    def scores(self, text):
        """(p_neg, p_pos)."""
        b = nf.feature_buckets(text, self.bits)
        out = []
        for h, bias in enumerate(self.biases):
            s = 0
            for k in b:
                s += int(self.weights[k, h])
            z = bias + (float(s) * self.scales[h] / math.sqrt(len(b)) if b else 0.0)
            out.append(1.0 / (1.0 + math.exp(-z)))
        return tuple(out)

    def score(self, text):
        return self.scores(text)[0]

    def write(self, path, meta):
        header = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        with open(path, "wb") as f:
            f.write(MAGIC + struct.pack("<I", len(header)) + header)
            f.write(self.weights.astype("<i2").tobytes())

    @classmethod
    def read(cls, path):
        import numpy as np

        raw = open(path, "rb").read()
        assert raw[:8] == MAGIC, "not a negative model"
        (n,) = struct.unpack("<I", raw[8 : 12])
        meta = json.loads(raw[12 : 12 + n])
        assert meta["scheme"] == nf.SCHEME, meta["scheme"]
        heads = len(meta["heads"])
        w = np.frombuffer(raw[12 + n :], dtype="<i2").reshape(-1, heads)
        assert len(w) == meta["features"] == 1 << meta["bits"]
        return cls(w, meta["scales"], meta["biases"], meta["threshold"], meta["bits"]), meta


_TRAIN_MATRIX = {}


def train_matrix(rows, bits):
    if bits not in _TRAIN_MATRIX:
        train = [r for r in rows if r["split"] == "train"]
        _TRAIN_MATRIX[bits] = (train, matrix([r["text"] for r in train], bits))
    return _TRAIN_MATRIX[bits]


def fit_head(rows, bits, c, label, weight_of, exclude=()):
    """One logistic regression on the training rows that have `label` and whose source is not
    in `exclude`; returns (int16 weights, scale, bias)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    train, x = train_matrix(rows, bits)
    keep = [i for i, r in enumerate(train) if r[label] is not None and r["source"] not in exclude]
    y = np.array([int(train[i][label]) for i in keep])
    w = np.array([weight_of(train[i]) for i in keep])
    clf = LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=SEED)
    clf.fit(x[keep], y, sample_weight=w)
    q, scale = quantize(clf.coef_[0].astype(np.float32))
    return q, scale, float(np.float32(clf.intercept_[0]))


def fit(rows, c, complaint_weight, bits, exclude, positive=None):
    """The negative head with (c, complaint_weight), not trained on the sources in `exclude`;
    the positive head from `positive` (weights, scale, bias) or, if None, a zero head (used
    while searching the negative settings)."""
    import numpy as np

    wn, sn, bn = fit_head(rows, bits, c, "y",
                          lambda r: complaint_weight if r["source"] == "complaints" else 1.0, exclude)
    wp, sp, bp = positive if positive is not None else (np.zeros(1 << bits, dtype=np.int16), 1.0, 0.0)
    return Model(np.stack([wn, wp], axis=1), [sn, sp], [bn, bp], 0.5, bits)


def validation_choice(model, rows):
    """Threshold with the best F1 on the brand validation rows, and that F1."""
    val = [r for r in rows if r["split"] == "val" and r["source"] in BRAND_VAL]
    scores = [model.score(r["text"]) for r in val]
    return best_threshold(scores, [bool(r["y"]) for r in val])


# The validation rows that choose where `sentiment` (p_pos - p_neg) counts as positive: the
# tweet sets whose labels say positive/neutral/negative.
POSITIVE_VAL = ("sanders", "tweeteval")


def positive_choice(model, rows):
    """The sentiment (0.01 steps, -0.5..0.9) from which a text is called positive with the
    best F1 of the positive class on the POSITIVE_VAL validation rows, and that F1."""
    val = [r for r in rows if r["split"] == "val" and r["source"] in POSITIVE_VAL]
    sent = []
    for r in val:
        n, p = model.scores(r["text"])
        sent.append(p - n)
    gold = [bool(r["pos"]) for r in val]
    best = (0.0, 0.0)
    for k in range(-50, 91):
        t = k / 100
        f = prf([s >= t for s in sent], gold)[2]
        if f > best[0]:
            best = (f, t)
    return best[1], best[0]


# Texts of the fixture: written for it (edge cases of the tokeniser) plus MIT-licensed
# snippets of VADER's ground truth; no complaints or TweetEval text is committed.
FIXTURE_TEXTS = [
    "",
    "   ",
    "!!!",
    "Still waiting for my refund, third week now.",
    "The package never arrived and support stopped answering.",
    "Does anyone know if the Acme X2 works with 5 GHz networks?",
    "Love the new update, thanks @AcmeHelp!",
    "@AcmeHelp my order #12345 is late again?!",
    "Don't ship broken boxes. Don’t.",
    "https://example.com/a?b=c is down, http://x.y too",
    "email me@example.com about_it",
    "Ça ne marche pas — remboursez-moi !",
    "ΣΑΣ ευχαριστώ πολύ",
    "Это ужасно, верните деньги",
    "İstanbul'da kargo gelmedi",
    "日本語のテキスト、最悪。",
    "worst. service. ever. 😡😡😡",
    "great job 👍🏽 folks",
    "❤️ it",
    "tab\tseparated\nlines\r\nhere",
    "MiXeD CaSe WoRdS",
    "numbers 1234 and 12.50 dollars",
    "@a @b @c",
    "under_score and dash-word",
    "a",
    "It's not bad at all",
    "no problem, it works fine",
    "why is the app crashing every time I open it?",
    "charged twice and nobody replies",
    "cancel my subscription now",
]


def export_lines(model, texts, f):
    for t in texts:
        p_neg, p_pos = model.scores(t)
        line = {"text": t, "features": len(nf.feature_buckets(t, model.bits)), "p": p_neg, "pos": p_pos}
        f.write(json.dumps(line, ensure_ascii=False) + "\n")


def export_fixture(model, rows):
    hutto_test = [r for r in rows if r["source"] in HUTTO and r["split"] == "test"]
    rng = random.Random(SEED)
    texts = FIXTURE_TEXTS + [r["text"] for r in rng.sample(hutto_test, 20)]
    with open(FIXTURE, "w", encoding="utf-8") as f:
        export_lines(model, texts, f)
    return len(texts)


def counts(rows, dropped):
    print("| source | train | val | test | negative share | positive share | airline texts dropped |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in SOURCES:
        sub = [r for r in rows if r["source"] == s]
        n = {k: sum(r["split"] == k for r in sub) for k in ("train", "val", "test")}
        neg = sum(r["y"] for r in sub) / max(len(sub), 1)
        pos = [r["pos"] for r in sub if r["pos"] is not None]
        pos_share = f"{sum(pos) / len(pos):.2f}" if pos else "-"
        print(f"| {s} | {n['train']} | {n['val']} | {n['test']} | {neg:.2f} | {pos_share} | {dropped.get(s, 0)} |")
    if dropped.get("semeval duplicates"):
        print(f"semeval tweets left out as repeats or TweetEval val/test tweets: {dropped['semeval duplicates']}")


def train(args):
    rows, dropped = load(args.data)
    counts(rows, dropped)
    best = None
    for c in args.c:
        for cw in args.complaint_weight:
            m = fit(rows, c, cw, args.bits, args.neg_exclude)
            t, f = validation_choice(m, rows)
            print(f"C={c} complaint_weight={cw}: brand val F1 {f:.3f} at threshold {t:.2f}", file=sys.stderr)
            if best is None or f > best[0]:
                best = (f, c, cw, t, m)
    f, c, cw, t, m = best
    # The positive head: the same C, every row whose source says whether it is positive.
    wp, sp, bp = fit_head(rows, args.bits, c, "pos", lambda r: 1.0)
    m.weights[:, 1] = wp
    m.scales[1] = sp
    m.biases[1] = bp
    m.threshold = t
    pa, pf = positive_choice(m, rows)
    print(f"positive head: sentiment >= {pa:.2f} counts as positive (val F1 {pf:.3f})", file=sys.stderr)
    meta = {
        "scheme": nf.SCHEME,
        "hash": "fnv1a64, then h ^ (h >> 32), low bits",
        "bits": args.bits,
        "features": 1 << args.bits,
        "heads": HEADS,
        "weights": "i16",
        "scales": m.scales,
        "word_ngrams": [1, 2],
        "char_ngrams": list(nf.CHAR_NGRAMS),
        "biases": m.biases,
        "threshold": t,
        "positive_at": pa,
        "positive_validation_f1": round(pf, 4),
        "seed": SEED,
        "C": c,
        "complaint_weight": cw,
        "negative_head_excludes": list(args.neg_exclude),
        "validation": "+".join(BRAND_VAL),
        "validation_f1": round(f, 4),
    }
    os.makedirs(os.path.dirname(MODEL), exist_ok=True)
    m.write(MODEL, meta)
    n = export_fixture(m, rows)
    print(f"chose C={c} complaint_weight={cw} threshold={t:.2f} (brand val F1 {f:.3f}); "
          f"wrote {MODEL} ({os.path.getsize(MODEL)} bytes) and {n} fixture texts", file=sys.stderr)


def evaluate(args):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    rows, _ = load(args.data)
    model, meta = Model.read(MODEL)
    vader = SentimentIntensityAnalyzer()
    if args.bin:
        from vader_parity import rust_match
    print(f"threshold {meta['threshold']} (chosen on the {meta['validation']} validation rows)")
    head = "| split | texts | negative | VADER P | VADER R | VADER F1 |"
    if args.bin:
        head += " match P | match R | match F1 |"
    print(head + " model P | model R | model F1 |")
    print("|" + " --- |" + " ---: |" * (head.count("|") + 2))
    for split in args.splits:
        for s in SOURCES:
            sub = [r for r in rows if r["source"] == s and r["split"] == split]
            if not sub:
                continue
            gold = [bool(r["y"]) for r in sub]
            texts = [r["text"] for r in sub]
            cells = [f"{s} ({split})", str(len(sub)), str(sum(gold))]
            v = [vader.polarity_scores(t)["compound"] <= VADER_NEGATIVE for t in texts]
            cells += [f"{x:.3f}" for x in prf(v, gold)]
            if args.bin:
                verdicts = rust_match(args.bin, texts)
                cells += [f"{x:.3f}" for x in prf([x["negative"] for x in verdicts], gold)]
            ours = [model.score(t) >= meta["threshold"] for t in texts]
            cells += [f"{x:.3f}" for x in prf(ours, gold)]
            print("| " + " | ".join(cells) + " |")


def export(args):
    """Every text of the chosen splits with the Python probabilities, for a large Rust check:
    NEGATIVE_MODEL_CHECK=FILE cargo test --lib analysis::model -- --ignored"""
    rows, _ = load(args.data)
    model, _ = Model.read(MODEL)
    with open(args.out, "w", encoding="utf-8") as f:
        export_lines(model, [r["text"] for r in rows if r["split"] in args.splits], f)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--bits", type=int, default=BITS)
    t.add_argument("--c", type=float, nargs="+", default=[0.5, 1.0])
    t.add_argument("--complaint-weight", type=float, nargs="+", default=[3.0, 5.0])
    t.add_argument("--neg-exclude", nargs="*", default=list(NEG_EXCLUDE), choices=SOURCES,
                   help="sources the negative head does not train on (the positive head uses all)")
    e = sub.add_parser("eval")
    e.add_argument("--data", required=True)
    e.add_argument("--bin", help="mentiondesk binary: also report today's `negative` (VADER + cues)")
    e.add_argument("--splits", nargs="+", default=["test"], choices=["train", "val", "test"])
    x = sub.add_parser("export", help="texts with Python probabilities for a large Rust check (not committed)")
    x.add_argument("--data", required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--splits", nargs="+", default=["test"], choices=["train", "val", "test"])
    args = p.parse_args()
    {"train": train, "eval": evaluate, "export": export}[args.cmd](args)


if __name__ == "__main__":
    main()
