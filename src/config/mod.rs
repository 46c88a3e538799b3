//! Config file mechanics: reading the TOML file, `${VAR}` interpolation, and a table reader
//! with typed accessors that collects every problem with its key and line (plus did-you-mean)
//! instead of stopping at the first. It knows no component's keys: each component reads and
//! validates its own section with [`Reader`], and `settings` puts the sections together.

mod interpolate;
mod lean;
mod lines;
mod reader;

pub(crate) use lean::{split, RawTable};
pub(crate) use reader::Reader;
pub(crate) use toml_edit::{ImDocument, Item, Table};

#[cfg(test)]
pub(crate) use lines::work;

use lines::LineIndex;
use std::path::{Path, PathBuf};

/// One thing wrong with the config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based; 0 when the value came from an environment variable, not a line of the file.
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl Problem {
    /// `file:line` as editors jump to it, or just `file` for a value from the environment.
    pub fn location(&self, path: &Path) -> String {
        match self.line {
            0 => path.display().to_string(),
            line => format!("{}:{line}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source} (pass --config PATH or set MENTIONDESK_CONFIG)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_problems(.path, .problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let mut out = format!(
        "{} has {} problem{}:",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str(&format!(
            "\n  {}: {}: {}",
            p.location(path),
            p.key,
            p.message.replace('\n', "\n      ")
        ));
    }
    out
}

/// Reads the config file's text.
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses TOML text; a syntax error is one problem with its line, keyed `(syntax)`.
pub(crate) fn parse_document<'t>(
    text: &'t str,
    path: &Path,
) -> Result<ImDocument<&'t str>, ConfigError> {
    ImDocument::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| LineIndex::new(text).line(s.start));
        ConfigError::Invalid {
            path: path.to_path_buf(),
            problems: vec![Problem {
                line,
                key: "(syntax)".into(),
                message: e.message().trim().to_string(),
            }],
        }
    })
}
