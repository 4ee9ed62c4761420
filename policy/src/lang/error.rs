//! Compile errors, positioned as `FILE:LINE:COL: message`.
//!
//! Every error a security team sees must point at the exact place to fix, the way a
//! compiler does, so each error carries a file name and a 1-based line and column
//! rather than a byte offset.

use std::fmt;

/// One problem found while compiling a policy, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file the problem is in (the policy file or a list file it names).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// What is wrong, with a suggestion where one fits.
    pub message: String,
}

impl PolicyError {
    /// Builds an error at byte offset `offset` of `source`.
    pub(crate) fn at(file: &str, source: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, col) = line_col(source, offset);
        PolicyError { file: file.to_string(), line, col, message: message.into() }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)
    }
}

impl std::error::Error for PolicyError {}

/// All problems found in one compile, in source order; never empty.
///
/// The compiler keeps going after a semantic error so one run shows every mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    /// The individual errors.
    pub fn errors(&self) -> &[PolicyError] {
        &self.0
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// Converts a byte offset to a 1-based (line, column in chars); offsets past the end or
/// inside a UTF-8 sequence are clamped so hostile input cannot panic here.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while offset > 0 && !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// `; did you mean "x"?` when one candidate is close to `got`, else empty.
pub(crate) fn did_you_mean<'a>(got: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let best = candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(got, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, c)) => format!("; did you mean \"{c}\"?"),
        None => String::new(),
    }
}

/// Quotes each candidate for an "expected one of" list.
pub(crate) fn one_of<'a>(candidates: impl IntoIterator<Item = &'a str>) -> String {
    candidates.into_iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
}

/// Rewrites serde's unknown-field/variant messages into our quoting with a suggestion.
///
/// serde says ``unknown field `burts`, expected one of `key`, `rate` ``; we say
/// `unknown field "burts", expected one of "key", "rate"; did you mean "burst"?`.
pub(crate) fn rewrite_serde_message(message: &str) -> String {
    let message = message.trim_end();
    for prefix in ["unknown field `", "unknown variant `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let Some(end) = rest.find('`') else { break };
            let got = &rest[..end];
            let expected: Vec<&str> = rest[end + 1..]
                .split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s)
                .collect();
            let what = prefix.trim_end_matches(" `");
            if expected.is_empty() {
                return format!("{what} \"{got}\", there are no fields here");
            }
            return format!(
                "{what} \"{got}\", expected one of {}{}",
                one_of(expected.iter().copied()),
                did_you_mean(got, expected.iter().copied())
            );
        }
    }
    message
        .replace('`', "\"")
        .replace("expected i64", "expected an integer")
        .replace("expected u32", "expected an integer")
}
