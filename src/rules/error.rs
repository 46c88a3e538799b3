//! Errors of the rule language: a parse error that points at a column with a hint, and a rule
//! error that names the rule. It does not decide when a query is wrong (the lexer and parser do).

use std::fmt;

/// A query that cannot be parsed. `Display` prints the message, the query and a caret under
/// the column, so `mentiondesk check` can show it as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The query as written.
    pub query: String,
    /// 1-based character column the problem is at (one past the end for "unexpected end").
    pub(crate) column: usize,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
    /// What to type instead.
    pub(crate) hint: String,
}

impl ParseError {
    pub(crate) fn new(
        query: &str,
        column: usize,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ParseError {
        ParseError {
            query: query.to_string(),
            column,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line breaks inside a multi-line TOML query would move the caret; show them as spaces.
        let one_line: String = self
            .query
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        writeln!(
            f,
            "{} at column {}: {}",
            self.message, self.column, self.hint
        )?;
        writeln!(f, "  {one_line}")?;
        write!(f, "  {}^", " ".repeat(self.column.saturating_sub(1)))
    }
}

impl std::error::Error for ParseError {}

/// A rule whose query does not parse, named so a config with many rules can be fixed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The rule's name as configured.
    pub rule: String,
    pub error: ParseError,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule \"{}\": {}", self.rule, self.error)
    }
}

impl std::error::Error for RuleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// A rule that parses but probably does not say what was meant (`acme NEAR refund`): the
/// rule is kept; `check` prints the warning and `run` logs it at start. `warning` reuses the
/// column, hint and caret of `ParseError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleWarning {
    /// The rule's name as configured.
    pub rule: String,
    pub warning: ParseError,
}

impl fmt::Display for RuleWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule \"{}\": {}", self.rule, self.warning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_puts_caret_under_column() {
        let e = ParseError::new(
            "acme OR foo)",
            12,
            "unbalanced \")\"",
            "remove it or add a matching \"(\"",
        );
        assert_eq!(
            e.to_string(),
            "unbalanced \")\" at column 12: remove it or add a matching \"(\"\n  acme OR foo)\n             ^"
        );
        let r = RuleError {
            rule: "acme".into(),
            error: e,
        };
        assert!(r
            .to_string()
            .starts_with("rule \"acme\": unbalanced \")\" at column 12"));
    }
}
