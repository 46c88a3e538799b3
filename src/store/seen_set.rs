//! The journal's dedup hashes in memory (`SeenSet`): every committed dedup key's 64-bit hash,
//! looked up on every polled mention. It holds the hashes only; hashing and the file they
//! are kept in belong to `journal.rs`.
//!
//! Why packed: with two keys per mention this is the largest thing the daemon holds for a
//! big store (16 MiB as a sorted `Vec<u64>` at a million mentions). A hash is cut to a 48-bit
//! fingerprint (its top 16 bits and its low 32); the top 16 bits pick one of 65,536 buckets
//! and only the low 32 are stored, in order within their bucket: 4 bytes a key plus 256 KiB
//! of bucket starts (8.2 MiB at a million mentions).
//!
//! The price: a new key whose fingerprint equals a seen one's is taken for a duplicate. With
//! `n` keys held that happens to one new key in `2^48 / n` (one in 140 million at 2M keys),
//! and such a mention is not posted. The file keeps the whole hashes, so a later change of
//! the fingerprint's width needs no migration.

use rustc_hash::FxHashSet;

/// New hashes wait in a hash set until there are this many, then merge into the packed array
/// (one linear merge per 64k keys keeps inserts cheap).
const MERGE_AT: usize = 1 << 16;

const BUCKETS: usize = 1 << 16;
const LOW_BITS: u32 = 32;
const LOW_MASK: u64 = (1 << LOW_BITS) - 1;
const ENTRY: usize = 4;

/// The part of a hash the set keeps (see the module's doc): its top 16 bits above its low 32.
fn fingerprint(h: u64) -> u64 {
    ((h >> 48) << LOW_BITS) | (h & LOW_MASK)
}

/// Dedup fingerprints: the packed, sorted array plus the newest ones in a set.
#[derive(Default)]
pub(super) struct SeenSet {
    packed: Packed,
    recent: FxHashSet<u64>,
}

impl SeenSet {
    /// The set of the hashes `read` hands over, in any order (the journal's `seen.hashes`
    /// file, read twice: once to size the buckets, once to fill them, so no unpacked copy
    /// of a large file is ever held).
    pub(super) fn load<E>(
        mut read: impl FnMut(&mut dyn FnMut(u64)) -> Result<(), E>,
    ) -> Result<SeenSet, E> {
        let mut starts = vec![0u32; BUCKETS + 1];
        read(&mut |h| starts[bucket(fingerprint(h)) + 1] += 1)?;
        for b in 0..BUCKETS {
            starts[b + 1] += starts[b];
        }
        let total = starts[BUCKETS] as usize;
        let mut packed = Packed {
            low: vec![0; total * ENTRY],
            starts,
        };
        let mut fill: Vec<u32> = packed.starts[..BUCKETS].to_vec();
        let mut overflow = false;
        read(&mut |h| {
            let f = fingerprint(h);
            let b = bucket(f);
            if fill[b] < packed.starts[b + 1] {
                packed.put(fill[b] as usize, f);
                fill[b] += 1;
            } else {
                // The second read differs from the first (the file changed in between, which
                // the store's lock should prevent): start again the slow way rather than
                // drop a hash.
                overflow = true;
            }
        })?;
        let mut scratch = Vec::new();
        for b in 0..BUCKETS {
            packed.sort_bucket(b, &mut scratch);
        }
        let mut set = SeenSet {
            packed,
            recent: FxHashSet::default(),
        };
        if overflow {
            set.packed = Packed::default();
            read(&mut |h| {
                set.recent.insert(fingerprint(h));
                if set.recent.len() >= MERGE_AT {
                    set.merge();
                }
            })?;
            set.merge();
        }
        Ok(set)
    }

    pub(super) fn contains(&self, h: u64) -> bool {
        let f = fingerprint(h);
        self.recent.contains(&f) || self.packed.contains(f)
    }

    pub(super) fn insert_all(&mut self, hashes: &[u64]) {
        self.recent.extend(hashes.iter().map(|&h| fingerprint(h)));
        if self.recent.len() >= MERGE_AT {
            self.merge();
        }
    }

    fn merge(&mut self) {
        let mut new: Vec<u64> = self
            .recent
            .drain()
            .filter(|&h| !self.packed.contains(h))
            .collect();
        self.recent.shrink_to(MERGE_AT);
        new.sort_unstable();
        self.packed.merge(&new);
    }

    #[cfg(test)]
    pub(super) fn packed_len(&self) -> usize {
        self.packed.len()
    }

    /// Every fingerprint in the packed array, in order (tests).
    #[cfg(test)]
    fn packed_hashes(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.packed.len());
        for b in 0..BUCKETS {
            for i in self.packed.range(b) {
                out.push(((b as u64) << LOW_BITS) | self.packed.low_at(i));
            }
        }
        out
    }
}

/// A fingerprint's bucket.
fn bucket(f: u64) -> usize {
    (f >> LOW_BITS) as usize
}

/// Sorted fingerprints, 4 bytes each, by bucket (see the module's doc). Every method takes
/// fingerprints, not hashes.
#[derive(Default)]
struct Packed {
    /// `starts[b]..starts[b + 1]`: the entries of bucket `b`. Empty while nothing is packed.
    starts: Vec<u32>,
    /// The low 32 bits of each fingerprint, little-endian.
    low: Vec<u8>,
}

impl Packed {
    fn len(&self) -> usize {
        self.low.len() / ENTRY
    }

    fn range(&self, b: usize) -> std::ops::Range<usize> {
        match self.starts.get(b..b + 2) {
            Some(s) => s[0] as usize..s[1] as usize,
            None => 0..0,
        }
    }

    fn low_at(&self, i: usize) -> u64 {
        let e = &self.low[i * ENTRY..(i + 1) * ENTRY];
        u64::from(u32::from_le_bytes([e[0], e[1], e[2], e[3]]))
    }

    /// Writes the low bits of `f` at entry `i`.
    fn put(&mut self, i: usize, f: u64) {
        self.low[i * ENTRY..(i + 1) * ENTRY]
            .copy_from_slice(&(f & LOW_MASK).to_le_bytes()[..ENTRY]);
    }

    fn contains(&self, f: u64) -> bool {
        let want = f & LOW_MASK;
        let (mut lo, mut hi) = (self.range(bucket(f)).start, self.range(bucket(f)).end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.low_at(mid).cmp(&want) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    fn sort_bucket(&mut self, b: usize, scratch: &mut Vec<u64>) {
        let range = self.range(b);
        scratch.clear();
        scratch.extend(range.clone().map(|i| self.low_at(i)));
        scratch.sort_unstable();
        for (i, &low) in range.zip(scratch.iter()) {
            self.put(i, low);
        }
    }

    /// Merges `new` (sorted, none of them present) in place, from the back: the array grows
    /// once, and no second copy of it is made.
    fn merge(&mut self, new: &[u64]) {
        if new.is_empty() {
            return;
        }
        if self.starts.is_empty() {
            self.starts = vec![0; BUCKETS + 1];
        }
        let old_len = self.len();
        let total = old_len + new.len();
        self.low.reserve_exact(new.len() * ENTRY);
        self.low.resize(total * ENTRY, 0);
        // `i`: old entries left (the next is `i - 1`, in bucket `ob`); `j`: new ones left;
        // `k`: where the next largest goes. `k >= i`, so no old entry is overwritten unread.
        let (mut i, mut j, mut k) = (old_len, new.len(), total);
        let mut ob = BUCKETS - 1;
        while j > 0 {
            let old = if i > 0 {
                while self.starts[ob] as usize > i - 1 {
                    ob -= 1;
                }
                Some(((ob as u64) << LOW_BITS) | self.low_at(i - 1))
            } else {
                None
            };
            k -= 1;
            match old {
                Some(o) if o > new[j - 1] => {
                    i -= 1;
                    self.put(k, o);
                }
                _ => {
                    j -= 1;
                    self.put(k, new[j]);
                }
            }
        }
        // Each bucket now starts later by the new hashes in the buckets before it.
        let mut added = 0u32;
        let mut n = 0;
        for b in 0..BUCKETS {
            self.starts[b] += added;
            while n < new.len() && bucket(new[n]) == b {
                added += 1;
                n += 1;
            }
        }
        self.starts[BUCKETS] += added;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Spread over every bucket, crowded into a few, and at the edges of the range.
    fn hashes(n: u64) -> Vec<u64> {
        let mut out: Vec<u64> = (0..n)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        out.extend((0..1000).map(|i| (7 << 48) | (i * 977)));
        out.extend([1, u64::MAX, u64::MAX - 1, LOW_MASK, (1 << 48) - 1, 1 << 48]);
        // Unique fingerprints (the journal hands over unique hashes; these tests count
        // entries), in generated order, not sorted.
        let mut seen = BTreeSet::new();
        out.retain(|h| seen.insert(fingerprint(*h)));
        out
    }

    fn check(set: &SeenSet, inserted: &BTreeSet<u64>) {
        assert_eq!(set.packed_len() + set.recent.len(), inserted.len());
        let packed = set.packed_hashes();
        assert!(packed.windows(2).all(|w| w[0] < w[1]), "packed in order");
        for &h in inserted {
            assert!(set.contains(h), "{h:#x} was inserted");
        }
        for h in [12345u64, (7 << 48) | 1, u64::MAX - 2, 2] {
            assert_eq!(set.contains(h), inserted.contains(&h), "{h:#x}");
        }
    }

    #[test]
    fn the_seen_set_finds_every_key_across_merges() {
        let all = hashes(200_000);
        let mut set = SeenSet::default();
        for chunk in all.chunks(777) {
            set.insert_all(chunk);
        }
        assert!(set.packed_len() >= 196_608, "merged at least three times");
        check(&set, &all.iter().copied().collect());
    }

    #[test]
    fn a_loaded_set_is_the_set_that_was_inserted_and_keeps_growing() {
        let all = hashes(150_000);
        let (first, later) = all.split_at(100_000);
        // In file order, not sorted.
        let read = |f: &mut dyn FnMut(u64)| -> Result<(), ()> {
            first.iter().for_each(|&h| f(h));
            Ok(())
        };
        let mut set = SeenSet::load(read).unwrap();
        assert_eq!(set.packed_len(), first.len());
        check(&set, &first.iter().copied().collect());
        for chunk in later.chunks(5000) {
            set.insert_all(chunk);
        }
        set.merge();
        assert_eq!(set.packed_len(), all.len());
        check(&set, &all.iter().copied().collect());
    }

    #[test]
    fn a_file_that_changes_between_the_two_reads_still_loses_no_hash() {
        let all = hashes(10_000);
        let mut calls = 0;
        let read = |f: &mut dyn FnMut(u64)| -> Result<(), ()> {
            calls += 1;
            // From the second read on, one hash is handed over twice as often.
            let extra = if calls > 1 { &all[..100] } else { &[][..] };
            all.iter().chain(extra).for_each(|&h| f(h));
            Ok(())
        };
        let set = SeenSet::load(read).unwrap();
        check(&set, &all.iter().copied().collect());
    }

    /// The documented price of 4-byte entries: only bits 32..48 of a hash are not kept.
    #[test]
    fn a_hash_is_known_by_its_top_16_and_low_32_bits() {
        let seen = 0xabcd_1234_5678_9abc_u64;
        let mut set = SeenSet::default();
        set.insert_all(&[seen]);
        set.merge();
        assert!(set.contains(seen));
        assert!(
            set.contains(seen ^ (0xffff << 32)),
            "bits 32..48 are not kept"
        );
        assert!(!set.contains(seen ^ (1 << 48)), "the top 16 bits are kept");
        assert!(!set.contains(seen ^ (1 << 63)), "the top 16 bits are kept");
        assert!(!set.contains(seen ^ 1), "the low 32 bits are kept");
        assert!(!set.contains(seen ^ (1 << 31)), "the low 32 bits are kept");
    }

    #[test]
    fn hashes_already_known_are_not_stored_twice() {
        let mut set = SeenSet::default();
        set.insert_all(&[5, 6, 7]);
        set.merge();
        set.insert_all(&[6, 7, 8]);
        set.merge();
        assert_eq!(set.packed_hashes(), [5, 6, 7, 8]);
    }
}
