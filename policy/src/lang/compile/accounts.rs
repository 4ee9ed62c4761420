//! `[accounts]` -> [`AccountLimits`].

use crate::economics::accounts::{AccountLimits, SourceKind};
use crate::lang::error::{did_you_mean, one_of};
use crate::lang::raw::economics::RawAccounts;
use crate::lang::section::{non_negative, positive, SectionError};
use serde_spanned::Spanned;
use std::collections::BTreeMap;

/// Validates `[accounts]`.
pub(crate) fn compile_accounts(raw: &RawAccounts) -> Result<AccountLimits, Vec<SectionError>> {
    let mut errors = Vec::new();
    let defaults = AccountLimits::default();
    let window_secs = positive(&raw.window_secs, "window_secs", defaults.window_secs, &mut errors);
    let mut table = |raw: &Option<BTreeMap<Spanned<String>, Spanned<i64>>>,
                     default: &BTreeMap<SourceKind, u64>,
                     table: &str| {
        let Some(raw) = raw else {
            return default.clone();
        };
        let mut out = BTreeMap::new();
        for (name, value) in raw {
            match source_kind(name) {
                Ok(kind) => {
                    let what = format!("{table}.\"{}\"", name.get_ref());
                    // 0 would refuse every temporary account (every source has an `ip`
                    // key), which a deny rule says far more clearly; leaving a kind out
                    // is how it goes unlimited.
                    if *value.get_ref() == 0 {
                        errors.push(SectionError::at(
                            value,
                            format!(
                                "{what} must be at least 1: 0 would refuse every temporary account; \
                                 to stop account creation use a deny rule on route \"provision-create\", \
                                 to not limit by this key leave it out"
                            ),
                        ));
                        continue;
                    }
                    let n = non_negative(&Some(value.clone()), &what, 0, &mut errors);
                    out.insert(kind, n);
                }
                Err(e) => errors.push(e),
            }
        }
        out
    };
    let live = table(&raw.live, &defaults.live, "live");
    let per_day = table(&raw.per_day, &defaults.per_day, "per_day");
    if errors.is_empty() {
        Ok(AccountLimits { window_secs, live, per_day })
    } else {
        Err(errors)
    }
}

/// Parses a spanned source key kind, with an error listing the valid names.
pub(super) fn source_kind(s: &Spanned<String>) -> Result<SourceKind, SectionError> {
    SourceKind::parse(s.get_ref()).ok_or_else(|| {
        let names = SourceKind::ALL.map(SourceKind::as_str);
        SectionError::at(
            s,
            format!(
                "unknown source key kind \"{}\", expected one of {}{}",
                s.get_ref(),
                one_of(names),
                did_you_mean(s.get_ref(), names)
            ),
        )
    })
}
