//! Lexer for the rule language: splits a query into tokens that carry their byte range and
//! 1-based character column. It does not decide what a token means in context (the parser does)
//! and does not normalise text (see `text.rs`).

use super::error::ParseError;

/// What a token is. Operators are recognised only in upper case so that `and`, `or`, `not`
/// stay searchable words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokKind {
    /// A bare run of characters up to whitespace, a parenthesis or a quote, as written.
    Word(String),
    /// The text between two double quotes, as written.
    Phrase(String),
    LParen,
    RParen,
    And,
    Or,
    Not,
    /// `-` directly before a term or group: NOT.
    Minus,
    /// `NEAR/n` (`ordered: false`) or `ONEAR/n` (`ordered: true`).
    Near {
        distance: u32,
        ordered: bool,
    },
    /// `name:` before a term or group, name lowercased.
    Field(String),
}

impl TokKind {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            TokKind::Word(w) => format!("\"{w}\""),
            TokKind::Phrase(p) => format!("\"\\\"{p}\\\"\""),
            TokKind::LParen => "\"(\"".to_string(),
            TokKind::RParen => "\")\"".to_string(),
            TokKind::And => "AND".to_string(),
            TokKind::Or => "OR".to_string(),
            TokKind::Not => "NOT".to_string(),
            TokKind::Minus => "\"-\"".to_string(),
            TokKind::Near { distance, ordered } => {
                format!("{}NEAR/{distance}", if *ordered { "O" } else { "" })
            }
            TokKind::Field(name) => format!("\"{name}:\""),
        }
    }
}

/// One token with its position in the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: TokKind,
    /// Byte offset of the first character.
    pub(crate) start: usize,
    /// Byte offset just past the last character.
    pub(crate) end: usize,
    /// 1-based character column of the first character, for error carets.
    pub(crate) col: usize,
}

/// Characters that end a bare word.
fn is_delim(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')' || c == '"'
}

/// Position of the `:` of a field prefix (`title:`): letters only before it, and not the `://`
/// of a URL.
fn field_colon(run: &[(usize, char)]) -> Option<usize> {
    let k = run.iter().position(|&(_, c)| !c.is_ascii_alphabetic())?;
    if k == 0 || run[k].1 != ':' || run.get(k + 1).is_some_and(|&(_, c)| c == '/') {
        return None;
    }
    Some(k)
}

/// `NEAR/n` and `ONEAR/n`; `Some(Err)` when the distance is not a number.
fn near(text: &str) -> Option<Result<TokKind, ()>> {
    let (rest, ordered) = if let Some(r) = text.strip_prefix("NEAR/") {
        (r, false)
    } else if let Some(r) = text.strip_prefix("ONEAR/") {
        (r, true)
    } else {
        return None;
    };
    Some(
        rest.parse::<u32>()
            .map(|distance| TokKind::Near { distance, ordered })
            .map_err(|_| ()),
    )
}

/// Splits `q` into tokens. Fails only on an unclosed quote, an empty phrase or a bad NEAR
/// distance; everything else is the parser's business.
pub(crate) fn lex(q: &str) -> Result<Vec<Token>, ParseError> {
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
            '-' if chars
                .get(i + 1)
                .is_some_and(|&(_, n)| !n.is_whitespace() && n != ')') =>
            {
                toks.push(Token {
                    kind: TokKind::Minus,
                    start,
                    end: start + 1,
                    col,
                });
                i += 1;
            }
            _ => {
                let mut j = i;
                while j < chars.len() && !is_delim(chars[j].1) {
                    j += 1;
                }
                if let Some(k) = field_colon(&chars[i..j]).map(|k| i + k) {
                    toks.push(Token {
                        kind: TokKind::Field(q[start..chars[k].0].to_ascii_lowercase()),
                        start,
                        end: chars[k].0 + 1,
                        col,
                    });
                    i = k + 1;
                    continue;
                }
                let end = byte_end(j);
                let text = &q[start..end];
                let kind = match text {
                    "AND" => TokKind::And,
                    "OR" => TokKind::Or,
                    "NOT" => TokKind::Not,
                    _ => match near(text) {
                        Some(Ok(kind)) => kind,
                        Some(Err(())) => {
                            return Err(ParseError::new(
                                q,
                                col,
                                format!("bad distance in \"{text}\""),
                                "write the distance as a number of words, like NEAR/5",
                            ))
                        }
                        None => TokKind::Word(text.to_string()),
                    },
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
    fn minus_fields_and_near() {
        let kinds: Vec<TokKind> = lex("-acme Title:x https://a.b NEAR/3 ONEAR/0 a-b 10:30")
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                TokKind::Minus,
                TokKind::Word("acme".into()),
                TokKind::Field("title".into()),
                TokKind::Word("x".into()),
                TokKind::Word("https://a.b".into()),
                TokKind::Near {
                    distance: 3,
                    ordered: false
                },
                TokKind::Near {
                    distance: 0,
                    ordered: true
                },
                TokKind::Word("a-b".into()),
                TokKind::Word("10:30".into()),
            ]
        );
    }

    #[test]
    fn lowercase_operators_are_words() {
        let toks = lex("and or not").unwrap();
        assert!(toks.iter().all(|t| matches!(t.kind, TokKind::Word(_))));
    }
}
