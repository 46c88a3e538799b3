//! What the strict fakes found wrong with the requests they received, and the guard that
//! fails the test holding a fake when any request broke the platform's spec or limits.

use std::fmt;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The platform refuses the request; the fake answered with the platform's error.
    Refused,
    /// The platform accepts it but documents it as wrong (e.g. reused `block_id`s on
    /// `chat.update`); the fake answered as the platform does, and the test still fails.
    Warning,
}

/// One request that broke a documented rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub platform: &'static str,
    /// Method key (`chat.postMessage`, `POST /channels/{channel_id}/messages`).
    pub call: String,
    pub severity: Severity,
    /// Where in the request (`/blocks/0/text/text`, `embeds.0.url`).
    pub field: String,
    /// What is wrong, with the limit and the actual size.
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {} {}: {} — {}",
            match self.severity {
                Severity::Refused => "refused",
                Severity::Warning => "warning",
            },
            self.platform,
            self.call,
            self.field,
            self.rule
        )
    }
}

#[derive(Default)]
struct Inner {
    list: Vec<Violation>,
    expected: bool,
}

/// The violations one fake recorded (a cheap clone of a shared list).
#[derive(Clone, Default)]
pub struct Violations {
    inner: Arc<Mutex<Inner>>,
}

impl Violations {
    pub fn record(&self, v: Violation) {
        eprintln!("strict fake: {v}");
        self.inner.lock().unwrap().list.push(v);
    }

    /// Takes the violations recorded so far (the test then owns them).
    pub fn take(&self) -> Vec<Violation> {
        std::mem::take(&mut self.inner.lock().unwrap().list)
    }

    /// The test sends violating requests on purpose: do not fail it for them.
    pub fn expect(&self) {
        self.inner.lock().unwrap().expected = true;
    }
}

/// Held (behind an `Arc`) by every clone of a fake's handle: when the last clone is dropped
/// at the end of the test, a recorded violation fails the test, unless the test said it
/// expected them or took them.
pub struct Guard {
    pub name: &'static str,
    pub violations: Violations,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let inner = self.violations.inner.lock().unwrap();
        if inner.expected || inner.list.is_empty() {
            return;
        }
        let lines: Vec<String> = inner.list.iter().map(|v| format!("  {v}")).collect();
        panic!(
            "{} received {} request(s) that break the platform's spec or limits:\n{}\n\
             (fix the request; a test that sends them on purpose calls expect_violations() or take_violations())",
            self.name,
            lines.len(),
            lines.join("\n")
        );
    }
}
