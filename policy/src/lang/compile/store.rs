//! `[store]` and each rule's `on_store_error`: what a limit does when the fleet's
//! shared store (Redis) cannot be reached. A gateway without a shared store never
//! reads them.

use super::Ctx;
use crate::lang::error::{did_you_mean, one_of};
use crate::lang::model::{Action, OnStoreError};
use crate::lang::raw::{RawStore, SStr};
use serde_spanned::Spanned;

/// The policy-wide `on_store_error` (`"open"` when `[store]` or the key is absent:
/// the gateway's own limiter then still holds every client to its limit per gateway).
pub(super) fn build_store(cx: &mut Ctx<'_>, raw: Option<Spanned<RawStore>>) -> OnStoreError {
    let Some(raw) = raw else { return OnStoreError::Open };
    match &raw.get_ref().on_store_error {
        None => OnStoreError::Open,
        Some(v) => parse(cx, v).unwrap_or(OnStoreError::Open),
    }
}

/// A rule's `on_store_error`: its own value, else the policy's. Only a `limit` rule
/// asks the store and can refuse, so the key anywhere else is an error.
pub(super) fn rule_on_store_error(
    cx: &mut Ctx<'_>,
    raw: Option<&SStr>,
    action: Option<Action>,
    rule: &str,
    default: OnStoreError,
) -> OnStoreError {
    let Some(v) = raw else { return default };
    let parsed = parse(cx, v);
    if let Some(a @ (Action::Allow | Action::Deny | Action::Shadow)) = action {
        cx.err(
            v.span(),
            format!(
                "rule \"{rule}\": on_store_error only applies to action = \"limit\", not \"{}\" (it never refuses for want of the store)",
                a.as_str()
            ),
        );
    }
    parsed.unwrap_or(default)
}

fn parse(cx: &mut Ctx<'_>, v: &SStr) -> Option<OnStoreError> {
    let text = v.get_ref().as_str();
    match OnStoreError::parse(text) {
        Some(o) => Some(o),
        None => {
            cx.err(
                v.span(),
                format!(
                    "unknown on_store_error \"{text}\", expected one of {}{}",
                    one_of(OnStoreError::NAMES),
                    did_you_mean(text, OnStoreError::NAMES)
                ),
            );
            None
        }
    }
}
