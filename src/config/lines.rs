//! Line numbers for byte offsets, built once per file. It does not read TOML.

/// Where each line starts, built once per parse: a key's line is then a binary search, where
/// counting newlines from the top for every key read made loading quadratic in the file's size.
pub(crate) struct LineIndex {
    /// Byte offset of the first byte of every line; `starts[0] == 0`.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        #[cfg(test)]
        work::add(text.len() as u64);
        let mut starts = Vec::with_capacity(text.len() / 32 + 1);
        starts.push(0);
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        #[cfg(test)]
        work::add(u64::from(self.starts.len().ilog2()) + 1);
        self.starts.partition_point(|&s| s <= offset)
    }
}

/// Counts the work of line look-ups (bytes scanned plus index entries probed), did-you-mean
/// comparisons and name-uniqueness checks on this thread, so a test can prove loading stays
/// linear without timing anything.
#[cfg(test)]
pub(crate) mod work {
    use std::cell::Cell;

    thread_local! {
        static UNITS: Cell<u64> = const { Cell::new(0) };
    }

    pub(crate) fn add(n: u64) {
        UNITS.with(|u| u.set(u.get() + n));
    }

    /// Returns the work counted since the last call and starts counting afresh.
    pub(crate) fn take() -> u64 {
        UNITS.with(|u| u.replace(0))
    }
}
