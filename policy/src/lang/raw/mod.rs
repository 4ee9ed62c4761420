//! The policy file exactly as written: serde-shaped, spans kept, nothing validated.
//!
//! Kept separate from the compiled model (as River does) so that every check lives in
//! the compiler, and the engine only ever sees a policy that cannot be invalid.

pub(crate) mod economics;

use economics::{RawAccounts, RawBudgets, RawCosts, RawPow, RawQuotas};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::fmt;

/// Spanned string, the common leaf.
pub(crate) type SStr = Spanned<String>;

/// Top level of a policy file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub version: Spanned<i64>,
    pub client: Option<RawClient>,
    pub prefixes: Option<RawPrefixes>,
    pub tables: Option<RawTables>,
    pub routes: Option<BTreeMap<SStr, Spanned<Vec<SStr>>>>,
    pub lists: Option<BTreeMap<SStr, Spanned<RawList>>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
    // The five sections below are plain `Option<T>`, not `Option<Spanned<T>>`: toml 0.8
    // cannot span an implicit table, so `[accounts.live]` or `[[budgets.limit]]` written
    // without their parent header would fail to parse if the parent were spanned. Their
    // own fields are spanned, and the compiler finds the header for unplaced errors.
    /// `[accounts]`: per-source live and per-window temporary-account limits.
    pub accounts: Option<RawAccounts>,
    /// `[quotas]`: per-account resource quotas.
    pub quotas: Option<RawQuotas>,
    /// `[costs]`: cleanup cost of an unclaimed account, in units.
    pub costs: Option<RawCosts>,
    /// `[budgets]`: unclaimed-cleanup budgets per source.
    pub budgets: Option<RawBudgets>,
    /// `[pow]`: adaptive proof-of-work.
    pub pow: Option<RawPow>,
    /// `[fair_share]`: the global creation ceiling, shared among networks.
    pub fair_share: Option<Spanned<RawFairShare>>,
    /// `[store]`: what rules do when the fleet's shared store is unreachable.
    pub store: Option<Spanned<RawStore>>,
}

/// `[store]` as written: the policy-wide `on_store_error` (rules may override it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub on_store_error: Option<SStr>,
}

/// `[fair_share]` as written.
///
/// ```toml
/// [fair_share]
/// route = "provision-create"
/// ceiling = "2000/hour"
/// ipv4 = 16
/// ipv6 = 32
/// share_above = 0.5
/// claimed_weight = 4
/// max_networks = 100000
/// ```
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFairShare {
    pub route: Option<Spanned<OneOrMany>>,
    pub ceiling: SStr,
    pub ipv4: Option<Spanned<i64>>,
    pub ipv6: Option<Spanned<i64>>,
    pub share_above: Option<Spanned<economics::Number>>,
    pub claimed_weight: Option<Spanned<i64>>,
    pub max_networks: Option<Spanned<i64>>,
    pub message: Option<SStr>,
    pub advice: Option<SStr>,
}

/// `[client]`: how the client address and TLS fingerprint are found.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClient {
    pub trusted_proxies: Option<Vec<SStr>>,
    pub ip_header: Option<SStr>,
    pub tls_fingerprint_header: Option<SStr>,
}

/// `[prefixes]`: what the generic `prefix` key means.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrefixes {
    pub ipv4: Option<Spanned<i64>>,
    pub ipv6: Option<Spanned<i64>>,
}

/// `[tables]`: memory bounds of the limit tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTables {
    pub max_keys: Option<Spanned<i64>>,
    pub sweep_secs: Option<Spanned<i64>>,
}

/// `[lists.NAME]`: inline CIDRs and/or a file of them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawList {
    pub cidrs: Option<Vec<SStr>>,
    pub file: Option<SStr>,
}

/// `[[rule]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: SStr,
    #[serde(rename = "match")]
    pub matcher: Option<RawMatch>,
    pub action: SStr,
    pub limits: Option<Spanned<Vec<Spanned<RawLimit>>>>,
    pub message: Option<SStr>,
    pub advice: Option<SStr>,
    /// Overrides `[store] on_store_error` for this rule.
    pub on_store_error: Option<SStr>,
}

/// `match = { ... }`: every field given must hold; within a field any value may.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub list: Option<Spanned<OneOrMany>>,
    pub not_list: Option<Spanned<OneOrMany>>,
    pub route: Option<Spanned<OneOrMany>>,
    pub method: Option<Spanned<OneOrMany>>,
    pub header: Option<Spanned<OneOrMany>>,
    pub no_header: Option<Spanned<OneOrMany>>,
    pub account: Option<Spanned<OneOrMany>>,
}

/// One entry of `limits = [...]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimit {
    pub key: SStr,
    pub rate: SStr,
    pub burst: Option<Spanned<i64>>,
    pub cost: Option<Spanned<i64>>,
    pub missing: Option<SStr>,
}

/// A string or an array of strings, so `route = "claim"` and `route = ["a", "b"]` both read.
pub(crate) struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}
