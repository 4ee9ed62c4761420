//! Errors and helpers shared by the `[accounts]`, `[quotas]`, `[costs]`, `[budgets]` and
//! `[pow]` sections.
//!
//! Errors carry a byte span into the policy text rather than a line and column: the
//! sections are deserialized as part of the whole policy file, so the spans are offsets
//! into that file and the policy compiler turns them into `FILE:LINE:COL` the same way it
//! does for its own errors.

use serde_spanned::Spanned;
use std::fmt;
use std::ops::Range;

/// One problem in a section, with the byte range of the offending text when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SectionError {
    /// What is wrong and, where possible, what to write instead.
    pub(crate) message: String,
    /// Byte range in the policy text; `None` when the problem has no single place
    /// (for example a section that is missing as a whole).
    pub(crate) span: Option<Range<usize>>,
}

impl SectionError {
    /// An error at the place a spanned value was written.
    pub(crate) fn at<T>(value: &Spanned<T>, message: impl Into<String>) -> Self {
        SectionError { message: message.into(), span: Some(value.span()) }
    }
}

impl fmt::Display for SectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.span {
            Some(span) => write!(f, "{} (bytes {}..{})", self.message, span.start, span.end),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SectionError {}

/// Reads an optional non-negative integer, reporting a negative one at its place.
///
/// TOML integers are signed; a negative count or size is always a mistake, and saying
/// so at the value beats a confusing wrap-around later.
pub(crate) fn non_negative(
    value: &Option<Spanned<i64>>,
    name: &str,
    default: u64,
    errors: &mut Vec<SectionError>,
) -> u64 {
    match value {
        None => default,
        Some(v) => match u64::try_from(*v.get_ref()) {
            Ok(n) => n,
            Err(_) => {
                errors.push(SectionError::at(
                    v,
                    format!("{name} must be 0 or more, got {}", v.get_ref()),
                ));
                default
            }
        },
    }
}

/// Like [`non_negative`] but 0 is refused too, for windows and sizes where 0 makes no sense.
pub(crate) fn positive(
    value: &Option<Spanned<i64>>,
    name: &str,
    default: u64,
    errors: &mut Vec<SectionError>,
) -> u64 {
    if let Some(v) = value {
        if *v.get_ref() == 0 {
            errors.push(SectionError::at(v, format!("{name} must be greater than 0")));
            return default;
        }
    }
    non_negative(value, name, default, errors)
}
