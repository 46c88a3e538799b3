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
//! Per post: a bit mask of its letters and digits (16 bytes at a time) gives the words, which
//! are listed first and then looked up. An ASCII word is hashed and compared in place (no
//! copy) in a table whose 16-bit tags turn away nearly every other word with one load
//! (`WordTable`). Non-ASCII text is cut at ASCII separators and at plain non-ASCII
//! separators (emoji, curly quotes); only a piece that still holds non-ASCII characters is
//! normalised by `text.rs`, and its normalised words are looked up the same way.
//!
//! A rule that is one plain word or phrase (`Direct`) is decided from the positions of its
//! trigger word in that word list: it needs neither `eval.rs` nor the post tokenised again.
//! The buffers of a scan live in a `Scratch` reused from post to post.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::ast::{Expr, Field, Joint, Term, WordPat};
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

/// Hash for the word table and the prefix bloom filter, over 8-byte chunks with every byte
/// ORed with 0x20: for ASCII letters and digits that is exactly lowercasing, so a post's words
/// hash in place without being copied. Other bytes are mapped too, identically for atoms and
/// words, so equal words still hash equal (the filters may only err towards a comparison).
fn key_hash(bytes: &[u8]) -> u64 {
    key_hash_in(bytes, 0, bytes.len())
}

/// `key_hash(&b[start..start + len])`, reading whole 8-byte words where the buffer allows.
#[inline(always)]
/// A word of up to 8 bytes hashes to its own (lowercased, zero-padded) bytes, with no
/// arithmetic: the users mix it with one multiply (`WordTable::bucket_tag`, `bit_index`).
/// Words are never empty and never hold a 0x20 or 0x00 byte, so the padding tells lengths
/// apart; equal hashes of different words only cost a key comparison.
fn key_hash_in(b: &[u8], start: usize, len: usize) -> u64 {
    const LOWER: u64 = 0x2020_2020_2020_2020;
    let end = start + len;
    let mut h = load(b, start, len.min(8)) | LOWER;
    let mut at = start + 8;
    while at < end {
        h = h.wrapping_mul(0x517c_c1b7_2722_0a95).rotate_left(29)
            ^ (load(b, at, (end - at).min(8)) | LOWER);
        at += 8;
    }
    h
}

/// Fills `masks` with one bit per byte of `b`: bit `i % 64` of `masks[i / 64]` is set when
/// byte `i` is an ASCII letter or digit, and the same bit of `high` when it is not ASCII.
/// `masks` gets one bit more than `b` has bytes, so every run of set bits ends inside it.
fn byte_masks(b: &[u8], masks: &mut Vec<u64>, high: &mut Vec<u64>) {
    let n = b.len() / 64 + 1;
    masks.clear();
    masks.resize(n, 0);
    high.clear();
    high.resize(n, 0);
    let mut chunks = b.chunks_exact(16);
    let mut put = |c: usize, (alnum, hi): (u16, u16)| {
        masks[c / 4] |= (alnum as u64) << (16 * (c % 4));
        high[c / 4] |= (hi as u64) << (16 * (c % 4));
    };
    let mut c = 0;
    for block in &mut chunks {
        put(c, classify16(block.try_into().expect("16 bytes")));
        c += 1;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Zeros are neither letters, digits nor non-ASCII.
        let mut last = [0u8; 16];
        last[..rest.len()].copy_from_slice(rest);
        put(c, classify16(&last));
    }
}

/// Bit masks of the ASCII letters and digits, and of the non-ASCII bytes, of 16 bytes.
#[cfg(target_arch = "x86_64")]
#[inline]
fn classify16(block: &[u8; 16]) -> (u16, u16) {
    // SSE2 is part of x86_64, so this needs no feature detection. Bytes compare as signed:
    // non-ASCII bytes are negative and so below every range tested.
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is always available on x86_64; the load is unaligned and reads the 16
    // bytes of `block`.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
        let alpha = _mm_and_si128(
            _mm_cmpgt_epi8(lower, _mm_set1_epi8(b'a' as i8 - 1)),
            _mm_cmplt_epi8(lower, _mm_set1_epi8(b'z' as i8 + 1)),
        );
        let digit = _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(b'0' as i8 - 1)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(b'9' as i8 + 1)),
        );
        (
            _mm_movemask_epi8(_mm_or_si128(alpha, digit)) as u16,
            _mm_movemask_epi8(v) as u16,
        )
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn classify16(block: &[u8; 16]) -> (u16, u16) {
    let (mut alnum, mut hi) = (0u16, 0u16);
    for (k, &x) in block.iter().enumerate() {
        alnum |= (x.is_ascii_alphanumeric() as u16) << k;
        hi |= ((x >= 0x80) as u16) << k;
    }
    (alnum, hi)
}

/// Non-ASCII characters that `text.rs` always treats as separators, whatever is around them:
/// they are not letters, digits or combining marks, and do not decompose into any (general
/// punctuation such as curly quotes and dashes, arrows, symbols, dingbats, emoji). The scan
/// cuts a post at them like at ASCII separators, so a tweet with an emoji or a curly quote is
/// mostly looked up in place rather than normalised; `plain_separators_separate` checks
/// every one of them against `text::tokenize`.
fn is_plain_separator(c: char) -> bool {
    matches!(c as u32,
        0x2000..=0x206F      // general punctuation: spaces, dashes, quotes, ellipsis, ZWJ
        | 0x2190..=0x21FF    // arrows
        | 0x2600..=0x2775    // miscellaneous symbols, dingbats up to the circled digits
        | 0x2794..=0x27BF    // the dingbats after them
        | 0x1F300..=0x1FAFF) // emoji, pictographs, skin tones
}

/// Calls `f(start, end)` for every maximal run of set bits of `masks` (whose last bit is
/// clear), jumping from run to run with `trailing_zeros`, so the loop branches per run, not
/// per byte.
#[inline]
fn for_each_run(masks: &[u64], mut f: impl FnMut(usize, usize)) {
    let n = masks.len() * 64;
    let mut i = 0;
    while i < n {
        let m = masks[i / 64] >> (i % 64);
        if m == 0 {
            i = (i / 64 + 1) * 64;
            continue;
        }
        let start = i + m.trailing_zeros() as usize;
        let mut end = start;
        loop {
            let gap = !masks[end / 64] >> (end % 64);
            if gap != 0 {
                end += gap.trailing_zeros() as usize;
                break;
            }
            end = (end / 64 + 1) * 64;
        }
        f(start, end);
        i = end;
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

/// The word atoms, in an open-addressing table probed with `key_hash`, which the scan
/// computes anyway (no second hash, and an ASCII word is compared in place, not copied).
/// Slots come in buckets of four 16-bit tags of their keys' hashes (0: empty) packed in one
/// `u64`, at most half full: a word that is no atom, i.e. nearly every word of a post, is
/// turned away by one 8-byte load and a few register operations with no unpredictable branch,
/// from an array as small as the bloom filter this replaced (64 KiB for 10,000 atoms), with
/// almost no false positives (the bloom filter passed about 2 % of the words on to a hash
/// map, for an allocation, a second hash and a few cache misses each).
#[derive(Debug, Clone)]
struct WordTable {
    buckets: Vec<u64>,
    /// Per slot (`4 * bucket + lane`): index in `entries`.
    index: Vec<u32>,
    entries: Vec<Atom>,
    /// `64 - log2(buckets)`.
    shift: u32,
}

const SALT_SLOT: u64 = 0x9e37_79b9_7f4a_7c15;
const LANES_LOW: u64 = 0x0001_0001_0001_0001;
const LANES_HIGH: u64 = 0x8000_8000_8000_8000;

/// The high bit of every 16-bit lane of `x` that may be zero: exact when no lane is (the
/// lowest zero lane is always flagged; a lane above it may be flagged wrongly, which only
/// costs a key comparison).
fn zero_lanes(x: u64) -> u64 {
    x.wrapping_sub(LANES_LOW) & !x & LANES_HIGH
}

impl WordTable {
    fn with_capacity(keys: usize) -> WordTable {
        let buckets = (keys / 2).max(16).next_power_of_two();
        WordTable {
            buckets: vec![0; buckets],
            index: vec![0; buckets * 4],
            entries: Vec::with_capacity(keys),
            shift: 64 - buckets.trailing_zeros(),
        }
    }

    /// First bucket and tag for hash `h`, from the high bits of one multiply, which mix
    /// every bit of `h`: the bucket from the top bits, the tag from the 16 bits below them.
    #[inline]
    fn bucket_tag(&self, h: u64) -> (usize, u64) {
        let p = h.wrapping_mul(SALT_SLOT);
        let bucket = (p >> self.shift) as usize;
        let tag = ((p >> (self.shift - 16)) & 0xffff).max(1);
        (bucket, tag)
    }

    /// Adds a key not yet in the table (the caller's keys are unique).
    fn insert(&mut self, key: Box<[u8]>, rules: Box<[u32]>) {
        assert!(
            self.entries.len() < self.buckets.len() * 2,
            "sized for its keys"
        );
        let (mut bucket, tag) = self.bucket_tag(key_hash(&key));
        let mask = self.buckets.len() - 1;
        loop {
            let free = zero_lanes(self.buckets[bucket]);
            if free != 0 {
                let lane = free.trailing_zeros() as usize / 16;
                self.buckets[bucket] |= tag << (16 * lane);
                self.index[4 * bucket + lane] = self.entries.len() as u32;
                self.entries.push((key, rules));
                return;
            }
            bucket = (bucket + 1) & mask;
        }
    }

    /// The rules of the key whose hash is `h` and for which `is_key` holds.
    #[inline]
    fn get(&self, h: u64, is_key: impl Fn(&[u8]) -> bool) -> Option<&[u32]> {
        let (mut bucket, tag) = self.bucket_tag(h);
        let mask = self.buckets.len() - 1;
        loop {
            let b = self.buckets[bucket];
            let mut same = zero_lanes(b ^ tag.wrapping_mul(LANES_LOW));
            while same != 0 {
                let lane = same.trailing_zeros() as usize / 16;
                same &= same - 1;
                let (key, rules) = &self.entries[self.index[4 * bucket + lane] as usize];
                if is_key(key) {
                    return Some(rules);
                }
            }
            // A bucket with a free lane ends the probe: a key is never put past one.
            if zero_lanes(b) != 0 {
                return None;
            }
            bucket = (bucket + 1) & mask;
        }
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

/// An atom (normalised word or wildcard prefix) and the rules it triggers.
type Atom = (Box<[u8]>, Box<[u32]>);

/// Wildcard prefixes sharing their first bytes, each with the rules it triggers.
type PrefixBucket = Vec<Atom>;

/// Set in a rule number of the word table when the rule is a `Direct` term: a hit on its
/// trigger is checked against the scan's word list instead of evaluating the rule.
const DIRECT: u32 = 1 << 31;

/// A rule that is one plain word or phrase searched in title and text (no field, sigil,
/// wildcard or exact separators): whether it matches, and where, follows from the positions of
/// its trigger word in the post, so a post whose candidates are all such rules is never
/// tokenised again nor evaluated. Most rules of a deployment are brand words and phrases.
#[derive(Debug, Clone)]
struct Direct {
    /// The term's normalised words.
    words: Box<[Box<[u8]>]>,
    /// Indices in `words` of the trigger atom (a phrase may repeat a word).
    trigger_at: Box<[u32]>,
}

/// The words of `e` if it is a plain word or phrase (see `Direct`).
fn direct_words(e: &Expr) -> Option<Vec<Box<[u8]>>> {
    match e {
        Expr::Term(t) if t.field == Field::Any && t.sigil.is_none() && t.joint == Joint::Loose => t
            .words
            .iter()
            .map(|w| match w {
                WordPat::Exact(s) => Some(s.as_bytes().into()),
                WordPat::Wild { .. } => None,
            })
            .collect(),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    /// Normalised whole-word atoms → rules they trigger (`DIRECT` set for direct rules).
    words: WordTable,
    /// Bit `n` set if some word atom is `n` bytes long (bit 63: 63 or more), so most words of a
    /// post skip the hash lookup.
    word_lens: u64,
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
    /// Per rule (compile order): its words when it is a direct rule.
    direct: Vec<Option<Direct>>,
}

/// Where a word of a post is: its byte range in the original field, and its normalised form
/// (`nstart == ORIGINAL`: an ASCII word, whose normalised form is the original lowercased).
#[derive(Debug, Clone, Copy)]
struct WordRef {
    ostart: u32,
    oend: u32,
    nstart: u32,
    nend: u32,
}

const ORIGINAL: u32 = u32::MAX;

/// The words of one field of a post, as the scan found them (the same words, in the same
/// order, as `text::tokenize` gives; the property test holds the two to the same matches).
#[derive(Debug, Default)]
struct FieldWords {
    words: Vec<WordRef>,
    /// Normalised forms of the words from non-ASCII pieces, back to back.
    norm: Vec<u8>,
}

impl FieldWords {
    fn clear(&mut self) {
        self.words.clear();
        self.norm.clear();
    }

    /// Whether word `i` of the field `orig` normalises to `pat`. ASCII words compare in place:
    /// `pat` is normalised, so lower case, and an ASCII word normalises to its lower case.
    fn word_is(&self, orig: &[u8], i: usize, pat: &[u8]) -> bool {
        let w = self.words[i];
        if w.nstart == ORIGINAL {
            orig[w.ostart as usize..w.oend as usize].eq_ignore_ascii_case(pat)
        } else {
            &self.norm[w.nstart as usize..w.nend as usize] == pat
        }
    }
}

/// A trigger word of a direct rule found in a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Hit {
    rule: u32,
    in_title: bool,
    /// Index of the word in its field.
    pos: u32,
    /// Its byte range in the original field.
    ostart: u32,
    oend: u32,
}

/// Buffers one scan fills, kept between posts so a post allocates nothing until a rule
/// matches (see `RuleSet::matches_detecting`).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Rules to evaluate (sorted, unique): triggered rules that are not direct, and rules
    /// without a trigger.
    pub(crate) candidates: Vec<u32>,
    hits: Vec<Hit>,
    text: FieldWords,
    title: FieldWords,
    bufs: Buffers,
}

/// Working buffers of `scan_field`.
#[derive(Debug, Default)]
struct Buffers {
    /// See `byte_masks`.
    masks: Vec<u64>,
    high: Vec<u64>,
}

/// What a `Scratch` keeps between posts at most: the buffers of a post of 4 KiB.
pub(crate) const KEEP: usize = 4096;

impl Scratch {
    /// Empty buffers; `const` so the thread-local that holds them needs no lazy set-up.
    pub(crate) const fn new() -> Scratch {
        const NO_WORDS: FieldWords = FieldWords {
            words: Vec::new(),
            norm: Vec::new(),
        };
        Scratch {
            candidates: Vec::new(),
            hits: Vec::new(),
            text: NO_WORDS,
            title: NO_WORDS,
            bufs: Buffers {
                masks: Vec::new(),
                high: Vec::new(),
            },
        }
    }

    /// Frees buffers a long post grew beyond what short posts need, so a thread that once
    /// matched a long article does not keep its word list (16 bytes a word) for good.
    pub(crate) fn shrink(&mut self) {
        for words in [&mut self.text, &mut self.title] {
            words.words.shrink_to(KEEP);
            words.norm.shrink_to(KEEP);
        }
        self.bufs.masks.shrink_to(KEEP / 64);
        self.bufs.high.shrink_to(KEEP / 64);
        self.hits.shrink_to(KEEP);
        self.candidates.shrink_to(KEEP);
    }

    /// Whether the scan found nothing to evaluate or check.
    pub(crate) fn is_empty(&self) -> bool {
        self.candidates.is_empty() && self.hits.is_empty()
    }
}

/// Where the rules a word triggers go.
struct Sink<'s> {
    candidates: &'s mut Vec<u32>,
    hits: &'s mut Vec<Hit>,
    in_title: bool,
}

impl Sink<'_> {
    fn add(&mut self, rules: &[u32], word: Word) {
        for &r in rules {
            if r & DIRECT != 0 {
                self.hits.push(Hit {
                    rule: r & !DIRECT,
                    in_title: self.in_title,
                    pos: word.pos as u32,
                    ostart: word.start as u32,
                    oend: word.end as u32,
                });
            } else {
                self.candidates.push(r);
            }
        }
    }
}

/// The occurrences of the direct phrase `d` around its trigger `hit` (one per position of
/// the trigger in the phrase), found by walking the ASCII text on either side of the hit;
/// `None` when the walk meets a non-ASCII byte, where only the word list can tell. Most
/// trigger hits of phrases are decided this way without listing the post's words.
fn ascii_phrase(b: &[u8], d: &Direct, hit: Hit) -> Option<Vec<super::Span>> {
    let k = d.words.len();
    let mut found = Vec::new();
    'at: for &j in d.trigger_at.iter() {
        let j = j as usize;
        let (mut start, mut end) = (hit.ostart as usize, hit.oend as usize);
        // Words before the trigger, nearest first.
        for m in (0..j).rev() {
            let Some(w) = ascii_word_before(b, start)? else {
                continue 'at;
            };
            if !b[w.0..w.1].eq_ignore_ascii_case(&d.words[m]) {
                continue 'at;
            }
            start = w.0;
        }
        for m in j + 1..k {
            let Some(w) = ascii_word_after(b, end)? else {
                continue 'at;
            };
            if !b[w.0..w.1].eq_ignore_ascii_case(&d.words[m]) {
                continue 'at;
            }
            end = w.1;
        }
        found.push(super::Span { start, end });
    }
    Some(found)
}

/// The ASCII word that starts first at or after `at` (`Some(None)`: there is none), or `None`
/// when a non-ASCII byte comes first or touches the word.
fn ascii_word_after(b: &[u8], at: usize) -> Option<Option<(usize, usize)>> {
    let mut i = at;
    while i < b.len() && !b[i].is_ascii_alphanumeric() {
        if b[i] >= 0x80 {
            return None;
        }
        i += 1;
    }
    if i == b.len() {
        return Some(None);
    }
    let start = i;
    while i < b.len() && b[i].is_ascii_alphanumeric() {
        i += 1;
    }
    if i < b.len() && b[i] >= 0x80 {
        return None;
    }
    Some(Some((start, i)))
}

/// The ASCII word that ends last at or before `at`, as `ascii_word_after` looks forwards.
fn ascii_word_before(b: &[u8], at: usize) -> Option<Option<(usize, usize)>> {
    let mut i = at;
    while i > 0 && !b[i - 1].is_ascii_alphanumeric() {
        if b[i - 1] >= 0x80 {
            return None;
        }
        i -= 1;
    }
    if i == 0 {
        return Some(None);
    }
    let end = i;
    while i > 0 && b[i - 1].is_ascii_alphanumeric() {
        i -= 1;
    }
    if i > 0 && b[i - 1] >= 0x80 {
        return None;
    }
    Some(Some((i, end)))
}

/// One word of a field as the split finds it.
#[derive(Debug, Clone, Copy)]
struct Word {
    /// Index in the field.
    pos: usize,
    /// Byte range in the original field.
    start: usize,
    end: usize,
}

/// Calls `f` for every word of `s` in order, with its normalised form (`None` for an ASCII
/// word, whose normalised form is its lowercase). ASCII is split in place (ASCII normalises
/// to its lowercase and its words are runs of ASCII letters and digits, exactly as `text.rs`
/// splits it). Other text is cut at its ASCII separators, which separate words in `text.rs`
/// too (normalisation maps them to themselves), and at plain non-ASCII separators
/// (`is_plain_separator`): only a piece that still holds non-ASCII characters is normalised
/// and split by `text.rs`. The property test `scan_words_are_tokenize_words` holds the words
/// and their offsets to `text::tokenize`'s.
fn split_words(s: &str, bufs: &mut Buffers, mut f: impl FnMut(Word, Option<&[u8]>)) {
    let b = s.as_bytes();
    byte_masks(b, &mut bufs.masks, &mut bufs.high);
    let ascii = bufs.high.iter().all(|&h| h == 0);
    if !ascii {
        for (m, h) in bufs.masks.iter_mut().zip(&bufs.high) {
            *m |= h;
        }
        for_each_run(&bufs.high, |start, end| {
            for (i, c) in s[start..end].char_indices() {
                if is_plain_separator(c) {
                    for k in start + i..start + i + c.len_utf8() {
                        bufs.masks[k / 64] &= !(1 << (k % 64));
                    }
                }
            }
        });
    }
    let mut pos = 0;
    for_each_run(&bufs.masks, |start, end| {
        if ascii || b[start..end].is_ascii() {
            f(Word { pos, start, end }, None);
            pos += 1;
            return;
        }
        // Cut at ASCII bytes only, so `start..end` lies on character boundaries.
        let t = tokenize(&s[start..end]);
        for (i, tok) in t.words.iter().enumerate() {
            let word = Word {
                pos,
                start: start + tok.ostart as usize,
                end: start + tok.oend as usize,
            };
            f(word, Some(t.word(i).as_bytes()));
            pos += 1;
        }
    });
}

impl FieldWords {
    /// Lists the words of `s`, for checking phrases around a trigger hit.
    fn fill(&mut self, s: &str, bufs: &mut Buffers) {
        self.clear();
        split_words(s, bufs, |w, norm| {
            let (nstart, nend) = match norm {
                None => (ORIGINAL, ORIGINAL),
                Some(n) => {
                    let at = self.norm.len();
                    self.norm.extend_from_slice(n);
                    (at as u32, self.norm.len() as u32)
                }
            };
            self.words.push(WordRef {
                ostart: w.start as u32,
                oend: w.end as u32,
                nstart,
                nend,
            });
        });
    }
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
        let mut direct = Vec::with_capacity(exprs.len());
        for (rule, e) in exprs.iter().enumerate() {
            let rule = rule as u32;
            let Some(atoms) = trigger(e, &uses) else {
                always.push(rule);
                direct.push(None);
                continue;
            };
            // A direct rule is a term, so its trigger is one whole word.
            let d = direct_words(e).and_then(|ws| match atoms.as_slice() {
                [(atom, Kind::Word)] => Some(Direct {
                    trigger_at: (0..ws.len() as u32)
                        .filter(|&j| *ws[j as usize] == *atom.as_bytes())
                        .collect(),
                    words: ws.into(),
                }),
                _ => None,
            });
            let flag = if d.is_some() { DIRECT } else { 0 };
            direct.push(d);
            for (atom, kind) in atoms {
                let table = match kind {
                    Kind::Word => &mut words,
                    Kind::Prefix => &mut prefixes,
                };
                let list = table.entry(atom).or_default();
                if list.last() != Some(&(rule | flag)) {
                    list.push(rule | flag);
                }
            }
        }
        let mut c = Compiled {
            words: WordTable::with_capacity(words.len()),
            word_lens: 0,
            prefix_bloom: Bloom::new(prefixes.len()),
            prefix_key_len: prefixes
                .keys()
                .map(String::len)
                .min()
                .unwrap_or(MIN_WILDCARD_PREFIX),
            prefixes: FxMap::default(),
            always,
            direct,
        };
        for (w, rules) in words {
            c.word_lens |= len_bit(w.len());
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

    /// Scans `doc`'s title and text into `s`: the candidate rules to evaluate (those whose
    /// atoms occur, plus those without a trigger) and the trigger hits of direct rules.
    pub(crate) fn scan(&self, doc: &Document, s: &mut Scratch) {
        s.candidates.clear();
        s.hits.clear();
        let mut sink = Sink {
            candidates: &mut s.candidates,
            hits: &mut s.hits,
            in_title: false,
        };
        self.scan_field(doc.text, &mut s.bufs, &mut sink);
        if let Some(title) = doc.title {
            sink.in_title = true;
            self.scan_field(title, &mut s.bufs, &mut sink);
        }
        s.candidates.extend_from_slice(&self.always);
        s.candidates.sort_unstable();
        s.candidates.dedup();
    }

    /// The direct rules that match the post `s` scanned, in rule order, each with its sorted,
    /// merged spans in the text (as `eval::eval` and `eval::tidy` give them).
    pub(crate) fn direct_matches(
        &self,
        doc: &Document,
        s: &mut Scratch,
    ) -> Vec<(usize, Vec<super::Span>)> {
        let mut out = Vec::new();
        s.hits.sort_unstable();
        // Word lists are made only for a phrase's hit, at most once per field.
        let (mut text_listed, mut title_listed) = (false, false);
        let mut at = 0;
        while at < s.hits.len() {
            let rule = s.hits[at].rule;
            let d = self.direct[rule as usize]
                .as_ref()
                .expect("hits are of direct rules");
            let k = d.words.len();
            let mut matched = false;
            let mut spans = Vec::new();
            while at < s.hits.len() && s.hits[at].rule == rule {
                let hit = s.hits[at];
                at += 1;
                if k == 1 {
                    // The hit is the whole term.
                    matched = true;
                    if !hit.in_title {
                        spans.push(super::Span {
                            start: hit.ostart as usize,
                            end: hit.oend as usize,
                        });
                    }
                    continue;
                }
                let (field, orig, listed) = if hit.in_title {
                    (
                        &mut s.title,
                        doc.title.unwrap_or_default(),
                        &mut title_listed,
                    )
                } else {
                    (&mut s.text, doc.text, &mut text_listed)
                };
                if let Some(found) = ascii_phrase(orig.as_bytes(), d, hit) {
                    for span in found {
                        matched = true;
                        if !hit.in_title {
                            spans.push(span);
                        }
                    }
                    continue;
                }
                if !*listed {
                    field.fill(orig, &mut s.bufs);
                    *listed = true;
                }
                let pos = hit.pos as usize;
                for &j in d.trigger_at.iter() {
                    let j = j as usize;
                    let Some(first) = pos.checked_sub(j) else {
                        continue;
                    };
                    if first + k > field.words.len()
                        || !(0..k).all(|m| {
                            m == j || field.word_is(orig.as_bytes(), first + m, &d.words[m])
                        })
                    {
                        continue;
                    }
                    matched = true;
                    if !hit.in_title {
                        spans.push(super::Span {
                            start: field.words[first].ostart as usize,
                            end: field.words[first + k - 1].oend as usize,
                        });
                    }
                }
            }
            if matched {
                out.push((rule as usize, super::eval::tidy(spans)));
            }
        }
        out
    }

    /// Looks every word of `s` up (see `split_words`).
    fn scan_field(&self, s: &str, bufs: &mut Buffers, sink: &mut Sink) {
        let b = s.as_bytes();
        split_words(s, bufs, |word, norm| match norm {
            None => self.ascii_word(b, word, sink),
            Some(w) => {
                let hp = w.get(..self.prefix_key_len).map_or(0, key_hash);
                self.lookup(w, key_hash(w), hp, word, sink);
            }
        });
    }

    /// Looks up the ASCII word `b[start..end]` in place: its hash is that of its lowercase,
    /// and the table compares it ignoring ASCII case. Copied (lowercased) only for the
    /// wildcard prefixes, when their bloom filter lets it by.
    #[inline]
    fn ascii_word(&self, b: &[u8], at: Word, sink: &mut Sink) {
        let (start, end) = (at.start, at.end);
        let len = end - start;
        let word = &b[start..end];
        if self.word_lens & len_bit(len) != 0 {
            let h = key_hash_in(b, start, len);
            if let Some(rules) = self.words.get(h, |k| k.eq_ignore_ascii_case(word)) {
                sink.add(rules, at);
            }
        }
        if len >= self.prefix_key_len
            && !self.prefixes.is_empty()
            && self
                .prefix_bloom
                .may_contain(key_hash_in(b, start, self.prefix_key_len))
        {
            self.prefix_lookup(&word.to_ascii_lowercase(), at, sink);
        }
    }

    /// Adds the rules triggered by one normalised word, word `pos` of its field.
    fn lookup(&self, w: &[u8], h: u64, hp: u64, at: Word, sink: &mut Sink) {
        if self.word_lens & len_bit(w.len()) != 0 {
            if let Some(rules) = self.words.get(h, |k| k == w) {
                sink.add(rules, at);
            }
        }
        if w.len() >= self.prefix_key_len
            && !self.prefixes.is_empty()
            && self.prefix_bloom.may_contain(hp)
        {
            self.prefix_lookup(w, at, sink);
        }
    }

    /// Adds the rules of the wildcard prefixes the normalised word `w` starts with.
    fn prefix_lookup(&self, w: &[u8], at: Word, sink: &mut Sink) {
        if let Some(bucket) = self.prefixes.get(&w[..self.prefix_key_len]) {
            for (p, rules) in bucket {
                if w.starts_with(p) {
                    sink.add(rules, at);
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

    /// Every character the scan cuts at separates words for `text.rs` too, and does not
    /// change the words around it, the original offsets included.
    #[test]
    fn plain_separators_separate() {
        let mut checked = 0;
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            if !is_plain_separator(c) {
                continue;
            }
            checked += 1;
            for text in [
                format!("ab{c}cd"),
                format!("é{c}\u{301}x"),
                format!("{c}{c}"),
            ] {
                let whole = tokenize(&text);
                let cut: Vec<(String, u32, u32)> = text
                    .split(c)
                    .scan(0u32, |at, piece| {
                        let start = *at;
                        *at += (piece.len() + c.len_utf8()) as u32;
                        let t = tokenize(piece);
                        Some(
                            (0..t.words.len())
                                .map(|i| {
                                    let w = t.words[i];
                                    (t.word(i).to_string(), start + w.ostart, start + w.oend)
                                })
                                .collect::<Vec<_>>(),
                        )
                    })
                    .flatten()
                    .collect();
                let got: Vec<(String, u32, u32)> = (0..whole.words.len())
                    .map(|i| {
                        let w = whole.words[i];
                        (whole.word(i).to_string(), w.ostart, w.oend)
                    })
                    .collect();
                assert_eq!(got, cut, "U+{:04X} in {text:?}", c as u32);
            }
        }
        assert!(checked > 2000, "{checked}");
    }

    /// The scan's words of a field, as (normalised word, original start, original end).
    fn scanned_words(text: &str) -> Vec<(String, u32, u32)> {
        let mut s = Scratch::default();
        s.text.fill(text, &mut s.bufs);
        s.text
            .words
            .iter()
            .map(|w| {
                let norm = if w.nstart == ORIGINAL {
                    text[w.ostart as usize..w.oend as usize].to_ascii_lowercase()
                } else {
                    String::from_utf8(s.text.norm[w.nstart as usize..w.nend as usize].to_vec())
                        .unwrap()
                };
                (norm, w.ostart, w.oend)
            })
            .collect()
    }

    /// Characters that exercise every path of the scan: ASCII letters and separators,
    /// non-ASCII letters, marks (folded after Latin, kept elsewhere, leading a piece), CJK
    /// singletons, compatibility forms, plain separators (emoji, curly quotes, ZWJ) and the
    /// variation selector that follows an emoji or a letter.
    const SCAN_CHARS: &[char] = &[
        'a',
        'B',
        'z',
        '0',
        '9',
        ' ',
        '.',
        '_',
        '#',
        '-',
        'é',
        '\u{301}',
        '\u{93f}',
        'ß',
        'ẞ',
        'İ',
        'ς',
        '東',
        'ｶ',
        'ﾞ',
        'ﬁ',
        '²',
        '①',
        '…',
        '\u{2019}',
        '\u{201c}',
        '\u{200d}',
        '😀',
        '❤',
        '\u{fe0f}',
        '\u{1f3fb}',
        'Ａ',
        '\u{3000}',
        'ह',
        '\u{a0}',
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The word list the scan builds (and direct rules are decided on) is exactly
        /// `text::tokenize`'s, offsets included, on ASCII and non-ASCII text, across the
        /// 16- and 64-byte blocks of the word mask.
        #[test]
        fn scan_words_are_tokenize_words(
            chars in proptest::collection::vec(proptest::sample::select(SCAN_CHARS), 0..150)
        ) {
            let text: String = chars.into_iter().collect();
            let t = tokenize(&text);
            let want: Vec<(String, u32, u32)> = (0..t.words.len())
                .map(|i| (t.word(i).to_string(), t.words[i].ostart, t.words[i].oend))
                .collect();
            proptest::prop_assert_eq!(scanned_words(&text), want, "{:?}", text);
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
