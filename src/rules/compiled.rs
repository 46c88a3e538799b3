//! The compiled pre-filter of a rule set: one hash table over the literal atoms of every rule,
//! looked up once per word of a post, so a post costs one pass over its words plus the
//! evaluation of the few rules whose atoms occurred. It does not decide matches itself
//! (`eval.rs` does, on the candidates it returns).
//!
//! Why a word table and not an Aho-Corasick automaton: every atom of the language is a whole
//! normalised word or a word prefix, so the text's own word boundaries already say where an
//! atom can start and end. Looking words up needs no overlapping search and no boundary
//! re-checks, and builds in a fraction of the time of a DFA over 10,000+ patterns (see
//! BENCHMARKS.md for the measured comparison).
//!
//! Every rule gets a *trigger*: a set of literal atoms at least one of which must occur in the
//! title or text whenever the rule matches. A term's atom is one of its literal words (or the
//! literal prefix of a wildcard word); AND needs one child's trigger; OR needs all children's;
//! NEAR needs one operand's. Where there is a choice, the atom used by the fewest rules wins
//! (then the longest): context words many rules share (`refund`, `support`) are common in posts
//! too, while brand names are rare, so this keeps the candidates per post few. A rule without a
//! trigger (only `author:`, `raw:`, `site:`, `source:`, `lang:` tests; a rule with only NOT
//! is refused by the lint in `lint.rs`) is evaluated on every post.
//!
//! Per word of a post: an ASCII word is hashed in place (no copy) and checked against a length
//! mask and a bloom filter; only words that pass are lowercased and looked up. Non-ASCII text
//! is normalised by `text.rs` first and its normalised words are looked up the same way.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::ast::{Expr, Field, Term, WordPat};
use super::parser::MIN_WILDCARD_PREFIX;
use super::text::tokenize;
use super::Document;

/// How an atom must sit in the text for a hit to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A whole word.
    Word,
    /// The start of a word (wildcard prefix).
    Prefix,
}

/// FxHash: atoms and words are short, and SipHash's DoS resistance buys nothing here because
/// the table holds only configured atoms (a post can only look words up).
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl Fx {
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut v = [0u8; 8];
            v[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(v));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    /// The multiply only carries bits upwards, so the raw state's low bits (hashbrown's bucket
    /// index) depend only on the low, i.e. first, bytes of a word: words sharing a stem would
    /// share a probe chain. murmur3's 64-bit finaliser folds every input bit into every output
    /// bit, for two multiplies per lookup.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Hash for the bloom filters, over 8-byte chunks with every byte ORed with 0x20: for ASCII
/// letters and digits that is exactly lowercasing, so a post's words hash in place without
/// being copied. Other bytes are mapped too, identically for atoms and words, so equal words
/// still hash equal (the filter may only err towards a lookup).
fn key_hash(bytes: &[u8]) -> u64 {
    key_hash_in(bytes, 0, bytes.len())
}

/// `key_hash(&b[start..start + len])`, reading whole 8-byte words where the buffer allows.
fn key_hash_in(b: &[u8], start: usize, len: usize) -> u64 {
    let mut h = Fx::default();
    let mut at = start;
    let end = start + len;
    while at + 8 <= end {
        h.add(load(b, at, 8) | 0x2020_2020_2020_2020);
        at += 8;
    }
    h.add(load(b, at, end - at) | 0x2020_2020_2020_2020);
    h.add(len as u64);
    h.0
}

/// ASCII letters and digits: the bytes ASCII words are made of (`text.rs` splits ASCII text
/// the same way).
static ALNUM: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    t
};

/// ASCII letters and digits, and every byte of a non-ASCII character: what is left between
/// ASCII separators.
static WORDISH: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric() || i >= 0x80;
        i += 1;
    }
    t
};

/// Bit `k` set if `block[k]` (at most 64 bytes) is in `table`.
fn byte_mask(block: &[u8], table: &[bool; 256]) -> u64 {
    let mut m = 0u64;
    for (k, &x) in block.iter().enumerate() {
        m |= (table[x as usize] as u64) << k;
    }
    m
}

/// Calls `f(start, end)` for every maximal run of bytes of `b` that are in `table`. Runs are
/// found 64 bytes at a time from a bit mask: their starts and ends are the mask's 0→1 and 1→0
/// edges, so the loop branches per run, not per byte. `open` is the start of a run still going
/// at the end of the previous block.
fn for_each_run(b: &[u8], table: &[bool; 256], mut f: impl FnMut(usize, usize)) {
    let mut open: Option<usize> = None;
    for (block_no, block) in b.chunks(64).enumerate() {
        let base = block_no * 64;
        let m = byte_mask(block, table);
        let valid = if block.len() == 64 {
            u64::MAX
        } else {
            (1u64 << block.len()) - 1
        };
        let prev = (m << 1) | open.is_some() as u64;
        let ends = !m & prev & valid;
        let mut edges = (m & !prev) | ends;
        while edges != 0 {
            let k = edges.trailing_zeros() as usize;
            edges &= edges - 1;
            if ends >> k & 1 == 1 {
                let start = open.take().expect("an end follows a start");
                f(start, base + k);
            } else {
                open = Some(base + k);
            }
        }
    }
    if let Some(start) = open {
        f(start, b.len());
    }
}

/// `n <= 8` bytes of `b` from `at`, little-endian, zero-padded.
#[inline]
fn load(b: &[u8], at: usize, n: usize) -> u64 {
    if n == 0 {
        return 0;
    }
    if at + 8 <= b.len() {
        let v = u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if n == 8 {
            v
        } else {
            v & ((1u64 << (8 * n)) - 1)
        }
    } else {
        b[at..at + n]
            .iter()
            .rev()
            .fold(0u64, |v, &x| (v << 8) | x as u64)
    }
}

/// Bits of the first bloom level: 64 KiB, which stays in L1/L2 cache.
const SMALL_BLOOM_BITS: usize = 1 << 19;

/// Two-level one-hash bloom filter. The full level has 32 bits per key (about 3 % false
/// positives); with more than ~16,000 keys it outgrows the L2 cache, so a fixed 64 KiB level in
/// front of it answers most words that are not atoms before the full level is touched. With
/// few keys the small level is the whole filter.
#[derive(Debug, Clone)]
struct Bloom {
    small: Vec<u64>,
    big: Vec<u64>,
    big_shift: u32,
}

/// Bit index `0..2^bits_log2` from a hash, by multiply-shift (the high bits mix best).
fn bit_index(h: u64, salt: u64, bits_log2: u32) -> usize {
    (h.wrapping_mul(salt) >> (64 - bits_log2)) as usize
}

const SALT_SMALL: u64 = 0x9e37_79b9_7f4a_7c15;
const SALT_BIG: u64 = 0xc2b2_ae3d_27d4_eb4f;

impl Bloom {
    fn new(keys: usize) -> Bloom {
        let n_bits = (keys * 32).max(1 << 16).next_power_of_two();
        let small_bits = n_bits.min(SMALL_BLOOM_BITS);
        Bloom {
            small: vec![0; small_bits / 64],
            big: if n_bits > small_bits {
                vec![0; n_bits / 64]
            } else {
                Vec::new()
            },
            big_shift: n_bits.trailing_zeros(),
        }
    }

    fn small_index(&self, h: u64) -> usize {
        bit_index(h, SALT_SMALL, (self.small.len() * 64).trailing_zeros())
    }

    fn insert(&mut self, h: u64) {
        let i = self.small_index(h);
        self.small[i / 64] |= 1 << (i % 64);
        if !self.big.is_empty() {
            let j = bit_index(h, SALT_BIG, self.big_shift);
            self.big[j / 64] |= 1 << (j % 64);
        }
    }

    fn may_contain(&self, h: u64) -> bool {
        let i = self.small_index(h);
        if self.small[i / 64] & (1 << (i % 64)) == 0 {
            return false;
        }
        if self.big.is_empty() {
            return true;
        }
        let j = bit_index(h, SALT_BIG, self.big_shift);
        self.big[j / 64] & (1 << (j % 64)) != 0
    }
}

/// Wildcard prefixes sharing their first bytes, each with the rules it triggers.
type PrefixBucket = Vec<(Box<[u8]>, Box<[u32]>)>;

#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    /// Normalised whole-word atoms → rules they trigger.
    words: FxMap<Box<[u8]>, Box<[u32]>>,
    /// Bit `n` set if some word atom is `n` bytes long (bit 63: 63 or more), so most words of a
    /// post skip the hash lookup.
    word_lens: u64,
    /// FNV hashes of the word atoms.
    word_bloom: Bloom,
    /// Hashes of the first `prefix_key_len` bytes of the wildcard prefixes.
    prefix_bloom: Bloom,
    /// Wildcard prefixes keyed by their first `prefix_key_len` bytes.
    prefixes: FxMap<Box<[u8]>, PrefixBucket>,
    /// Length in bytes of the shortest wildcard prefix (at least `MIN_WILDCARD_PREFIX`, since
    /// every prefix has that many characters): the longest key every prefix can be filed
    /// under. Longer keys collide less with ordinary words than a fixed 3-byte key would.
    prefix_key_len: usize,
    /// Rules without a trigger, evaluated on every post.
    always: Vec<u32>,
}

/// What one scan of a post found: candidate rules (sorted, unique).
pub(crate) struct Scan {
    pub(crate) candidates: Vec<u32>,
}

fn len_bit(n: usize) -> u64 {
    1 << n.min(63)
}

impl Compiled {
    pub(crate) fn build<'e>(exprs: impl IntoIterator<Item = &'e Expr>) -> Compiled {
        let exprs: Vec<&Expr> = exprs.into_iter().collect();
        let mut uses: HashMap<&str, u32> = HashMap::new();
        for e in &exprs {
            let mut atoms = Vec::new();
            all_atoms(e, &mut atoms);
            atoms.sort_unstable();
            atoms.dedup();
            for a in atoms {
                *uses.entry(a).or_insert(0) += 1;
            }
        }
        let mut words: HashMap<String, Vec<u32>> = HashMap::new();
        let mut prefixes: HashMap<String, Vec<u32>> = HashMap::new();
        let mut always = Vec::new();
        for (rule, e) in exprs.iter().enumerate() {
            let rule = rule as u32;
            let Some(atoms) = trigger(e, &uses) else {
                always.push(rule);
                continue;
            };
            for (atom, kind) in atoms {
                let table = match kind {
                    Kind::Word => &mut words,
                    Kind::Prefix => &mut prefixes,
                };
                let list = table.entry(atom).or_default();
                if list.last() != Some(&rule) {
                    list.push(rule);
                }
            }
        }
        let mut c = Compiled {
            words: FxMap::default(),
            word_lens: 0,
            word_bloom: Bloom::new(words.len()),
            prefix_bloom: Bloom::new(prefixes.len()),
            prefix_key_len: prefixes
                .keys()
                .map(String::len)
                .min()
                .unwrap_or(MIN_WILDCARD_PREFIX),
            prefixes: FxMap::default(),
            always,
        };
        for (w, rules) in words {
            c.word_lens |= len_bit(w.len());
            c.word_bloom.insert(key_hash(w.as_bytes()));
            c.words.insert(w.into_bytes().into(), rules.into());
        }
        for (p, rules) in prefixes {
            let key: Box<[u8]> = p.as_bytes()[..c.prefix_key_len].into();
            c.prefix_bloom.insert(key_hash(&key));
            c.prefixes
                .entry(key)
                .or_default()
                .push((p.into_bytes().into(), rules.into()));
        }
        c
    }

    /// Candidate rules for `doc`: those whose atoms occur in its title or text, plus those
    /// without a trigger.
    pub(crate) fn scan(&self, doc: &Document) -> Scan {
        let mut candidates = Vec::new();
        self.scan_field(doc.text, &mut candidates);
        if let Some(title) = doc.title {
            self.scan_field(title, &mut candidates);
        }
        candidates.extend_from_slice(&self.always);
        candidates.sort_unstable();
        candidates.dedup();
        Scan { candidates }
    }

    /// Looks every word of `s` up. ASCII is split in place (ASCII normalises to its lowercase
    /// and its words are runs of ASCII letters and digits, exactly as `text.rs` splits it).
    /// Other text is cut at its ASCII separators, which separate words in `text.rs` too
    /// (normalisation maps them to themselves): the pieces that are plain ASCII are looked up
    /// in place, and only a piece holding non-ASCII characters is normalised and split by
    /// `text.rs`. One emoji or curly quote no longer sends the whole post through Unicode
    /// normalisation; the property test in `tests/properties.rs` holds both paths to the
    /// reference matcher.
    fn scan_field(&self, s: &str, out: &mut Vec<u32>) {
        let b = s.as_bytes();
        if s.is_ascii() {
            for_each_run(b, &ALNUM, |start, end| self.ascii_word(b, start, end, out));
        } else {
            for_each_run(b, &WORDISH, |start, end| {
                if b[start..end].is_ascii() {
                    self.ascii_word(b, start, end, out);
                } else {
                    // Cut at ASCII bytes only, so `start..end` lies on character boundaries.
                    let t = tokenize(&s[start..end]);
                    for i in 0..t.words.len() {
                        let w = t.word(i).as_bytes();
                        let hp = w.get(..self.prefix_key_len).map_or(0, key_hash);
                        self.lookup(w, key_hash(w), hp, out);
                    }
                }
            });
        }
    }

    /// Looks up the ASCII word `b[start..end]` without copying it unless a filter lets it by.
    fn ascii_word(&self, b: &[u8], start: usize, end: usize, out: &mut Vec<u32>) {
        let len = end - start;
        let h = key_hash_in(b, start, len);
        let hp = if len >= self.prefix_key_len && !self.prefixes.is_empty() {
            key_hash_in(b, start, self.prefix_key_len)
        } else {
            0
        };
        if self.may_hit(len, h, hp) {
            self.lookup(&b[start..end].to_ascii_lowercase(), h, hp, out);
        }
    }

    /// Cheap test before the table: length and bloom filters. `h` hashes the whole normalised
    /// word, `hp` its first `prefix_key_len` bytes.
    fn may_hit(&self, len: usize, h: u64, hp: u64) -> bool {
        let word = self.word_lens & len_bit(len) != 0 && self.word_bloom.may_contain(h);
        let prefix = len >= self.prefix_key_len
            && !self.prefixes.is_empty()
            && self.prefix_bloom.may_contain(hp);
        word || prefix
    }

    /// Adds the rules triggered by one normalised word.
    fn lookup(&self, w: &[u8], h: u64, hp: u64, out: &mut Vec<u32>) {
        if self.word_lens & len_bit(w.len()) != 0 && self.word_bloom.may_contain(h) {
            if let Some(rules) = self.words.get(w) {
                out.extend_from_slice(rules);
            }
        }
        if w.len() >= self.prefix_key_len
            && !self.prefixes.is_empty()
            && self.prefix_bloom.may_contain(hp)
        {
            if let Some(bucket) = self.prefixes.get(&w[..self.prefix_key_len]) {
                for (p, rules) in bucket {
                    if w.starts_with(p) {
                        out.extend_from_slice(rules);
                    }
                }
            }
        }
    }

    /// Rules evaluated on every post.
    pub(crate) fn untriggered(&self) -> usize {
        self.always.len()
    }
}

/// Every literal atom of `e`, for counting how many rules use each.
fn all_atoms<'e>(e: &'e Expr, out: &mut Vec<&'e str>) {
    let mut term = |t: &'e Term| {
        for w in &t.words {
            out.push(match w {
                WordPat::Exact(s) => s.as_str(),
                WordPat::Wild { prefix, .. } => prefix.as_str(),
            });
        }
    };
    match e {
        Expr::Term(t) => term(t),
        Expr::Near(n) => {
            term(&n.left);
            term(&n.right);
        }
        Expr::Raw(_) | Expr::Meta(_) => {}
        Expr::Not(inner) => all_atoms(inner, out),
        Expr::And(items) | Expr::Or(items) => {
            for item in items {
                all_atoms(item, out);
            }
        }
    }
}

/// Atoms at least one of which occurs whenever `e` matches; `None` if `e` can match without
/// any literal in title or text. `uses` counts the rules each atom appears in.
fn trigger(e: &Expr, uses: &HashMap<&str, u32>) -> Option<Vec<(String, Kind)>> {
    match e {
        Expr::Term(t) => term_atom(t, uses).map(|a| vec![a]),
        Expr::Near(n) => {
            let a = term_atom(&n.left, uses)?;
            let b = term_atom(&n.right, uses)?;
            Some(vec![if cost(&b, uses) < cost(&a, uses) {
                b
            } else {
                a
            }])
        }
        Expr::Raw(_) | Expr::Meta(_) | Expr::Not(_) => None,
        Expr::And(items) => items
            .iter()
            .filter_map(|i| trigger(i, uses))
            .min_by_key(|atoms| {
                let total: u64 = atoms.iter().map(|a| cost(a, uses).0).sum();
                (total, atoms.len())
            }),
        Expr::Or(items) => {
            let mut all = Vec::new();
            for item in items {
                all.extend(trigger(item, uses)?);
            }
            Some(all)
        }
    }
}

/// Lower is a better trigger: fewer rules share it, then longer, then a whole word.
fn cost(atom: &(String, Kind), uses: &HashMap<&str, u32>) -> (u64, usize, bool) {
    let n = uses.get(atom.0.as_str()).copied().unwrap_or(1) as u64;
    (n, usize::MAX - atom.0.len(), atom.1 == Kind::Prefix)
}

/// The best literal of a term searched in title or text (see `cost`).
fn term_atom(t: &Term, uses: &HashMap<&str, u32>) -> Option<(String, Kind)> {
    if t.field == Field::Author {
        return None;
    }
    t.words
        .iter()
        .map(|w| match w {
            WordPat::Exact(s) => (s.clone(), Kind::Word),
            WordPat::Wild { prefix, .. } => (prefix.clone(), Kind::Prefix),
        })
        .min_by_key(|a| cost(a, uses))
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::*;

    #[test]
    fn triggers() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("acme", Some(&["acme"])),
            ("\"acme corporation\"", Some(&["corporation"])),
            ("acme OR globex", Some(&["acme", "globex"])),
            ("acme AND (x OR y)", Some(&["acme"])),
            ("acme NOT hiring", Some(&["acme"])),
            ("NOT hiring", None),
            ("acme OR NOT hiring", None),
            ("refund*", Some(&["refund"])),
            ("acme NEAR/3 refunds", Some(&["refunds"])),
            ("author:acme", None),
            ("title:acme", Some(&["acme"])),
            ("lang:en acme", Some(&["acme"])),
            ("lang:en", None),
            ("raw:Acme", None),
        ];
        for (q, want) in cases {
            let e = parse(q).unwrap();
            let mut atoms = Vec::new();
            all_atoms(&e, &mut atoms);
            let uses = atoms.into_iter().map(|a| (a, 1)).collect();
            let got = trigger(&e, &uses)
                .map(|atoms| atoms.into_iter().map(|(a, _)| a).collect::<Vec<_>>());
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "query {q:?}");
        }
    }

    #[test]
    fn hash_in_place_equals_hash_of_lowercase_copy() {
        let text = b"Hello, WORLD abcdefghIJKLMNOPq x 12ab";
        let mut i = 0;
        while i < text.len() {
            for len in 0..=(text.len() - i) {
                let lower = text[i..i + len].to_ascii_lowercase();
                // Only alphanumeric runs are hashed in place.
                if text[i..i + len].iter().all(u8::is_ascii_alphanumeric) {
                    assert_eq!(key_hash_in(text, i, len), key_hash(&lower), "{i}+{len}");
                }
            }
            i += 1;
        }
    }

    #[test]
    fn shared_context_words_are_not_triggers() {
        let uses: HashMap<&str, u32> = [("acme", 1), ("customer", 40), ("refund", 40), ("corp", 3)]
            .into_iter()
            .collect();
        let cases = [
            ("acme AND customer", "acme"),
            ("customer NEAR/3 acme", "acme"),
            ("\"customer acme\"", "acme"),
            ("(acme OR corp) refund", "acme"),
        ];
        for (q, want) in cases {
            let got = trigger(&parse(q).unwrap(), &uses).unwrap();
            assert_eq!(got[0].0, want, "query {q:?}");
        }
    }

    /// Regression (BENCHMARKS.md "config load"): without a final mix, `Fx::finish` returned
    /// the raw product, whose low bits (the bucket index hashbrown uses) depend only on a
    /// word's first bytes, so stemmed words sharing a prefix (`brabc`, `brabd`, …,
    /// `acmerouter1`, `acmerouter2`, …) piled into a few probe chains. Counts the distinct
    /// buckets and control bytes the keys get in a table of the size hashbrown would use;
    /// uniform hashing gives about 79 % distinct buckets here.
    #[test]
    fn shared_prefix_words_spread_over_buckets() {
        use std::hash::BuildHasher;
        let n = 4096usize;
        let families: [&dyn Fn(usize) -> String; 4] = [
            // The bench's brand words: "br" + base-26 digits, lowest digit first.
            &|i| {
                let (mut n, mut w) = (i, String::from("br"));
                loop {
                    w.push((b'a' + (n % 26) as u8) as char);
                    n /= 26;
                    if n == 0 {
                        break w;
                    }
                }
            },
            &|i| format!("acmerouter{i}"),
            &|i| format!("brand{i:05}"),
            &|i| format!("customersupportteam{i}"),
        ];
        let build = BuildHasherDefault::<Fx>::default();
        let buckets = (n * 8 / 7).next_power_of_two();
        for (f, family) in families.iter().enumerate() {
            let hashes: Vec<u64> = (0..n)
                .map(|i| build.hash_one(family(i).into_bytes().into_boxed_slice()))
                .collect();
            let mut slots = vec![0u32; buckets];
            for h in &hashes {
                slots[(*h as usize) & (buckets - 1)] += 1;
            }
            let distinct = slots.iter().filter(|&&c| c > 0).count();
            let longest = slots.iter().max().copied().unwrap_or(0);
            assert!(
                distinct * 100 >= n * 70 && longest <= 12,
                "family {f}: {distinct} distinct buckets of {buckets} for {n} keys, \
                 fullest holds {longest}"
            );
            // hashbrown's control byte: the top 7 bits.
            let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
            assert!(
                tags.len() >= 120,
                "family {f}: only {} control bytes",
                tags.len()
            );
        }
    }
}
