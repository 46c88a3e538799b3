//! Priority: the rule's own priority, raised one level for a negative mention and one more
//! for an author with a large audience, so the complaints that can hurt most come first.

use crate::model::Priority;

/// Followers from which an author counts as influential.
pub(crate) const INFLUENTIAL_REACH: u64 = 10_000;

pub(crate) fn priority(rule: Priority, negative: bool, author_reach: Option<u64>) -> Priority {
    let mut p = rule;
    if negative {
        p = p.raised();
    }
    if author_reach.is_some_and(|r| r >= INFLUENTIAL_REACH) {
        p = p.raised();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negativity_and_reach_raise_priority() {
        assert_eq!(priority(Priority::Normal, false, None), Priority::Normal);
        assert_eq!(priority(Priority::Normal, true, None), Priority::High);
        assert_eq!(
            priority(Priority::Normal, true, Some(50_000)),
            Priority::Critical
        );
        assert_eq!(priority(Priority::Low, false, Some(10)), Priority::Low);
        assert_eq!(
            priority(Priority::Critical, true, Some(1 << 20)),
            Priority::Critical
        );
    }
}
