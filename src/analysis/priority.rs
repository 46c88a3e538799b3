//! Priority: the rule's own priority, raised one level for a negative mention and one more
//! for an author with a large audience, so the complaints that can hurt most come first.

use crate::model::Priority;

/// Followers (or Hacker News karma) from which an author counts as influential.
pub(crate) const INFLUENTIAL_REACH: u64 = 10_000;
/// Subreddit members from which a Reddit mention counts as far-reaching: most subreddits
/// where products are discussed have tens of thousands, so the followers' bar would raise
/// nearly every Reddit mention.
pub(crate) const INFLUENTIAL_SUBREDDIT: u64 = 1_000_000;

/// `reach_unit` is `Mention::reach_unit()`: what `author_reach` counts.
pub(crate) fn priority(
    rule: Priority,
    negative: bool,
    author_reach: Option<u64>,
    reach_unit: &str,
) -> Priority {
    let mut p = rule;
    if negative {
        p = p.raised();
    }
    let bar = match reach_unit {
        "subreddit members" => INFLUENTIAL_SUBREDDIT,
        _ => INFLUENTIAL_REACH,
    };
    if author_reach.is_some_and(|r| r >= bar) {
        p = p.raised();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negativity_and_reach_raise_priority() {
        let f = "followers";
        assert_eq!(priority(Priority::Normal, false, None, f), Priority::Normal);
        assert_eq!(priority(Priority::Normal, true, None, f), Priority::High);
        assert_eq!(
            priority(Priority::Normal, true, Some(50_000), f),
            Priority::Critical
        );
        assert_eq!(priority(Priority::Low, false, Some(10), f), Priority::Low);
        assert_eq!(
            priority(Priority::Critical, true, Some(1 << 20), f),
            Priority::Critical
        );
        assert_eq!(
            priority(Priority::Normal, false, Some(12_000), "karma"),
            Priority::High
        );
        // A mid-sized subreddit is not a large audience; r/technology is.
        let sub = "subreddit members";
        assert_eq!(
            priority(Priority::Normal, false, Some(48_000), sub),
            Priority::Normal
        );
        assert_eq!(
            priority(Priority::Normal, false, Some(17_000_000), sub),
            Priority::High
        );
    }
}
