"""Tokeniser and hashed features of the negative model, shared by training and evaluation.

`src/analysis/model.rs` implements exactly the same steps; change both together and bump
SCHEME. The steps (version "negative-v3"; v2 is v1 with two heads in the file, v3 is v2
with 16-bit weights, see train_negative.py; the features are the same since v1):

1. Lowercase each code point on its own with the Unicode default mapping (Python `c.lower()`,
   Rust `char::to_lowercase`); no context rules, so a final sigma stays "σ". Drop `'` and
   `’` (U+2019), so "don't" and "don’t" are "dont".
2. Split the result into tokens, left to right:
   - `@` followed by a word character ends the current word and starts a handle: the
     handle's word characters are consumed and the token is "@user" (the same for every brand, so the model learns how
     people write to a brand, not which brand);
   - "http://" or "https://" outside a word starts a link: everything up to the next ASCII
     space, tab, CR, LF, VT or FF, or non-ASCII separator, is consumed and the token is "<url>";
   - `!` and `?` are one-character tokens;
   - an emoji or pictographic symbol (ranges in `is_symbol`) is a one-character token;
   - a word character (ASCII letter or digit, `_`, or any other non-ASCII code point that is
     neither a separator nor a symbol) extends the current word;
   - anything else (ASCII punctuation and whitespace, the non-ASCII separators in
     `is_separator`) ends the current word.
3. Features, each hashed with 64-bit FNV-1a over its UTF-8 bytes, then `h ^ (h >> 32)`, then
   the low BITS bits pick the weight:
   - "w\\0" + token for every token;
   - "b\\0" + token + "\\0" + next token for every adjacent pair;
   - "c\\0" + n code points of (" " + token + " ") for n in 3..=5, for every word token
     (not "@user", "<url>", "!", "?" or symbols).
4. A feature occurring k times contributes k, and the vector is divided by sqrt(total
   occurrences), so long posts are not more extreme than short ones. The probability is
   sigmoid(bias + sum of weight * value).
"""

SCHEME = "negative-v3"
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1
CHAR_NGRAMS = (3, 5)


def is_separator(cp):
    """Non-ASCII code points that end a word: spaces, general punctuation, CJK and
    full-width punctuation, Latin-1 punctuation."""
    return (
        cp in (0x85, 0xA0, 0xA1, 0xA7, 0xAB, 0xB6, 0xB7, 0xBB, 0xBF, 0x1680, 0xFEFF)
        or 0x2000 <= cp <= 0x2018
        or 0x201A <= cp <= 0x206F
        or 0x3000 <= cp <= 0x303F
        or 0xFF01 <= cp <= 0xFF0F
        or 0xFF1A <= cp <= 0xFF20
    )


def is_symbol(cp):
    """Emoji and pictographic symbols: each is a token of its own."""
    return (
        0x2190 <= cp <= 0x21FF
        or 0x2300 <= cp <= 0x23FF
        or 0x25A0 <= cp <= 0x27BF
        or 0x2B00 <= cp <= 0x2BFF
        or 0x1F000 <= cp <= 0x1FAFF
    )


def is_word(c):
    cp = ord(c)
    if cp < 0x80:
        return c.isalnum() or c == "_"
    return not is_separator(cp) and not is_symbol(cp) and cp not in (0x2019, 0xFE0F, 0x200D)


def ends_link(c):
    cp = ord(c)
    return c in " \t\n\r\x0b\x0c" or (cp >= 0x80 and is_separator(cp))


def lower(text):
    return "".join(c.lower() for c in text if c not in "'\u2019")


def tokens(text):
    """Tokens of `text` as (token, is_word_token) pairs."""
    s = lower(text)
    out = []
    word = []
    i = 0
    n = len(s)

    def flush():
        if word:
            out.append(("".join(word), True))
            word.clear()

    while i < n:
        c = s[i]
        cp = ord(c)
        if c == "@" and i + 1 < n and is_word(s[i + 1]):
            flush()
            i += 1
            while i < n and is_word(s[i]):
                i += 1
            out.append(("@user", False))
            continue
        if not word and (s.startswith("http://", i) or s.startswith("https://", i)):
            while i < n and not ends_link(s[i]):
                i += 1
            out.append(("<url>", False))
            continue
        if is_word(c):
            word.append(c)
        else:
            flush()
            if c in "!?" or is_symbol(cp):
                out.append((c, False))
        i += 1
    flush()
    return out


def fnv(data, h=FNV_OFFSET):
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


def bucket(h, bits):
    h ^= h >> 32
    return h & ((1 << bits) - 1)


def feature_buckets(text, bits):
    """Bucket index of every feature occurrence (a bucket may repeat)."""
    toks = tokens(text)
    out = []
    for t, _ in toks:
        out.append(bucket(fnv(t.encode("utf-8"), fnv(b"w\x00")), bits))
    for (a, _), (b, _) in zip(toks, toks[1:]):
        out.append(bucket(fnv(a.encode() + b"\x00" + b.encode(), fnv(b"b\x00")), bits))
    lo, hi = CHAR_NGRAMS
    cseed = fnv(b"c\x00")
    for t, is_w in toks:
        if not is_w:
            continue
        p = " " + t + " "
        for k in range(lo, hi + 1):
            for j in range(len(p) - k + 1):
                out.append(bucket(fnv(p[j : j + k].encode("utf-8"), cseed), bits))
    return out
