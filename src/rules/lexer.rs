//! Lexer for the rule language: splits a query into tokens that carry their byte range and
//! 1-based character column. It does not decide what a token means in context (the parser does)
//! and does not normalise text (see `text.rs`).

use super::error::ParseError;

/// What a token is. Operators are recognised only in upper case so that `and`, `or`, `not`
/// stay searchable words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokKind {
    /// A bare run of characters up to whitespace, a parenthesis or a quote, as written.
    Word(String),
    /// The text between two double quotes, as written.
    Phrase(String),
    LParen,
    RParen,
    And,
    Or,
    Not,
}

impl TokKind {
    /// How the token is named in error messages.
    pub fn describe(&self) -> String {
        match self {
            TokKind::Word(w) => format!("\"{w}\""),
            TokKind::Phrase(p) => format!("\"\\\"{p}\\\"\""),
            TokKind::LParen => "\"(\"".to_string(),
            TokKind::RParen => "\")\"".to_string(),
            TokKind::And => "AND".to_string(),
            TokKind::Or => "OR".to_string(),
            TokKind::Not => "NOT".to_string(),
        }
    }
}

/// One token with its position in the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokKind,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset just past the last character.
    pub end: usize,
    /// 1-based character column of the first character, for error carets.
    pub col: usize,
}

/// Characters that end a bare word.
fn is_delim(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')' || c == '"'
}

/// Splits `q` into tokens. Fails only on an unclosed quote or an empty phrase; everything
/// else is the parser's business.
pub fn lex(q: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<(usize, char)> = q.char_indices().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let byte_end = |j: usize| chars.get(j).map_or(q.len(), |&(b, _)| b);
        match c {
            '(' | ')' => {
                let kind = if c == '(' {
                    TokKind::LParen
                } else {
                    TokKind::RParen
                };
                toks.push(Token {
                    kind,
                    start,
                    end: start + 1,
                    col,
                });
                i += 1;
            }
            '"' => {
                let close = (i + 1..chars.len()).find(|&j| chars[j].1 == '"');
                let Some(close) = close else {
                    return Err(ParseError::new(
                        q,
                        col,
                        "unclosed quote",
                        "add a closing \" or remove this one",
                    ));
                };
                let inner = &q[start + 1..chars[close].0];
                if inner.trim().is_empty() {
                    return Err(ParseError::new(
                        q,
                        col,
                        "empty phrase",
                        "put words between the quotes or remove them",
                    ));
                }
                toks.push(Token {
                    kind: TokKind::Phrase(inner.to_string()),
                    start,
                    end: chars[close].0 + 1,
                    col,
                });
                i = close + 1;
            }
            _ => {
                let mut j = i;
                while j < chars.len() && !is_delim(chars[j].1) {
                    j += 1;
                }
                let end = byte_end(j);
                let text = &q[start..end];
                let kind = match text {
                    "AND" => TokKind::And,
                    "OR" => TokKind::Or,
                    "NOT" => TokKind::Not,
                    _ => TokKind::Word(text.to_string()),
                };
                toks.push(Token {
                    kind,
                    start,
                    end,
                    col,
                });
                i = j;
            }
        }
    }
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_byte_range_and_char_column() {
        let toks = lex("é AND (\"x y\")").unwrap();
        let got: Vec<(TokKind, usize, usize, usize)> = toks
            .into_iter()
            .map(|t| (t.kind, t.start, t.end, t.col))
            .collect();
        assert_eq!(
            got,
            vec![
                (TokKind::Word("é".into()), 0, 2, 1),
                (TokKind::And, 3, 6, 3),
                (TokKind::LParen, 7, 8, 7),
                (TokKind::Phrase("x y".into()), 8, 13, 8),
                (TokKind::RParen, 13, 14, 13),
            ]
        );
    }

    #[test]
    fn lowercase_operators_are_words() {
        let toks = lex("and or not").unwrap();
        assert!(toks.iter().all(|t| matches!(t.kind, TokKind::Word(_))));
    }
}
